//! EdgeCert's one Lambda binary. Every function template.yaml deploys (one per API route, the
//! dashboard, the authorizer, the issuer and the renewer) runs this same `bootstrap`; the function's
//! `EDGECERT_FUNCTION` variable says which of them this execution environment is.
//!
//! One binary rather than one per function because `sam build` then compiles and links once
//! (every function has the same `CodeUri` and `Metadata`, so SAM builds one artifact and
//! copies it to each function): with cargo-lambda's deployment profile (thin LTO, one codegen
//! unit) 26 binaries took 34 minutes on a 2-core machine, the one binary a fraction of that
//! (README, "Deploy to AWS"). The price is a larger binary per function (every handler is in
//! it), read at a cold start; an invocation runs only its own function's code.

use edgecert_api::routes::DASHBOARD_FUNCTION;
use edgecert_api::{ROUTES, Route};

/// The environment variable naming the function (template.yaml sets it on every function).
pub const FUNCTION_VARIABLE: &str = "EDGECERT_FUNCTION";

/// `EDGECERT_FUNCTION` of the API Gateway authorizer.
pub const AUTHORIZER: &str = "authorizer";
/// `EDGECERT_FUNCTION` of the issuer on the table's stream.
pub const ISSUER: &str = "issuer";
/// `EDGECERT_FUNCTION` of the renewer on its schedule.
pub const RENEWER: &str = "renewer";

/// One function of the deployment.
#[derive(Clone, Copy)]
pub enum LambdaFunction {
    /// The HTTP API's Lambda authorizer.
    Authorizer,
    /// The function serving one API route (its `function` is the `EDGECERT_FUNCTION` value).
    Route(&'static Route),
    /// The web dashboard's pages and assets (`dashboard`).
    Dashboard,
    /// The issuer (DynamoDB stream).
    Issuer,
    /// The renewer (EventBridge Scheduler).
    Renewer,
}

impl std::fmt::Debug for LambdaFunction {
    fn fmt(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        formatter.write_str(self.name())
    }
}

impl LambdaFunction {
    /// The function called `name`, or an error listing the names there are.
    pub fn from_name(name: &str) -> Result<LambdaFunction, String> {
        match name {
            AUTHORIZER => Ok(LambdaFunction::Authorizer),
            ISSUER => Ok(LambdaFunction::Issuer),
            RENEWER => Ok(LambdaFunction::Renewer),
            DASHBOARD_FUNCTION => Ok(LambdaFunction::Dashboard),
            other => ROUTES
                .iter()
                .find(|route| route.function == other)
                .map(LambdaFunction::Route)
                .ok_or_else(|| {
                    format!(
                        "configuration: {FUNCTION_VARIABLE}: '{other}' is no function of \
                         EdgeCert (one of: {})",
                        LambdaFunction::names().collect::<Vec<_>>().join(", ")
                    )
                }),
        }
    }

    /// The function named by the environment's `EDGECERT_FUNCTION`.
    pub fn from_env() -> Result<LambdaFunction, String> {
        let name = std::env::var(FUNCTION_VARIABLE)
            .map_err(|_| format!("configuration: {FUNCTION_VARIABLE}: is required"))?;
        LambdaFunction::from_name(name.trim())
    }

    /// Its `EDGECERT_FUNCTION` value.
    pub fn name(self) -> &'static str {
        match self {
            LambdaFunction::Authorizer => AUTHORIZER,
            LambdaFunction::Route(route) => route.function,
            LambdaFunction::Dashboard => DASHBOARD_FUNCTION,
            LambdaFunction::Issuer => ISSUER,
            LambdaFunction::Renewer => RENEWER,
        }
    }

    /// Every function's name: the routes', then the dashboard's, the authorizer and the
    /// workers.
    pub fn names() -> impl Iterator<Item = &'static str> {
        ROUTES.iter().map(|route| route.function).chain([
            DASHBOARD_FUNCTION,
            AUTHORIZER,
            ISSUER,
            RENEWER,
        ])
    }

    /// Serves this function until the runtime stops it.
    pub async fn serve(self) -> Result<(), lambda_runtime::Error> {
        match self {
            LambdaFunction::Authorizer => edgecert_api::lambda::serve_authorizer().await,
            LambdaFunction::Route(route) => edgecert_api::lambda::serve(route.handler).await,
            LambdaFunction::Dashboard => edgecert_api::lambda::serve_dashboard().await,
            LambdaFunction::Issuer => edgecert_workers::lambda::serve_issuer().await,
            LambdaFunction::Renewer => edgecert_workers::lambda::serve_renewer().await,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_name_reads_back_and_unknown_names_are_refused_with_the_list() {
        for name in LambdaFunction::names() {
            assert_eq!(
                LambdaFunction::from_name(name).map(LambdaFunction::name),
                Ok(name)
            );
        }
        assert_eq!(LambdaFunction::names().count(), ROUTES.len() + 4);
        let error = LambdaFunction::from_name("domains-gte").unwrap_err();
        assert!(
            error.starts_with("configuration: EDGECERT_FUNCTION: 'domains-gte'")
                && error.contains("domains-get, "),
            "{error}"
        );
    }
}

//! The shell of every API Lambda function (run by the one binary of `functions/lambda`):
//! tracing, configuration and AWS services once per cold start (from the deployment
//! configuration every EdgeCert process shares), then the runtime loop around one route's
//! handler ([`serve`]), the dashboard ([`serve_dashboard`]) or the authorizer
//! ([`serve_authorizer`]).

use std::convert::Infallible;
use std::sync::Arc;

use edgecert_aws::{AdminKeySecret, load_sdk_config};
use edgecert_deployment::{DeploymentConfig, ZoneProviders, aws_services, init_tracing};
use lambda_http::{Body, Request, Response, service_fn};

use crate::auth::{ADMIN_KEY_REFRESH, RotatingAdminKey};
use crate::config::AdminKeySource;
use crate::routes::Handler;
use crate::state::ApiState;

/// Builds the API state on the AWS adapters from the environment, with an ACME issuer when
/// the function's configuration names a CA (`EDGECERT_ACME_DIRECTORY`, set in template.yaml
/// only for the functions that need one). Only the authorizer reads the admin key
/// ([`serve_authorizer`]); the handlers check the role the authorizer passes on.
pub async fn aws_state() -> Result<ApiState, lambda_http::Error> {
    let config = DeploymentConfig::from_env()?;
    Ok(ApiState {
        services: aws_services(&config, ZoneProviders::Route53).await?,
        admin_key: None,
    })
}

/// Runs one handler as a Lambda function behind API Gateway.
pub async fn serve(handler: Handler) -> Result<(), lambda_http::Error> {
    init_tracing();
    let state = Arc::new(aws_state().await?);
    lambda_http::run(service_fn(move |request: Request| {
        let state = Arc::clone(&state);
        async move { Ok::<Response<Body>, Infallible>(handler(&state, request).await) }
    }))
    .await
}

/// Runs the dashboard's function (every route of [`crate::routes::DASHBOARD_ROUTES`]): no
/// configuration and no AWS client, only the files embedded in the binary.
pub async fn serve_dashboard() -> Result<(), lambda_http::Error> {
    init_tracing();
    lambda_http::run(service_fn(|request: Request| async move {
        Ok::<Response<Body>, Infallible>(crate::handlers::dashboard::handle(&request))
    }))
    .await
}

/// Runs the API Gateway Lambda authorizer (simple responses): passes the caller's identity, or
/// `anonymous`, in the context; handlers refuse anonymous callers with 401. The admin key is
/// read from its secret (`EDGECERT_ADMIN_KEY_SECRET`) at the cold start and refreshed every
/// [`ADMIN_KEY_REFRESH`](crate::auth::ADMIN_KEY_REFRESH); without a secret, the hash in
/// `EDGECERT_ADMIN_KEY_SHA256` (if any) is the admin key.
pub async fn serve_authorizer() -> Result<(), lambda_runtime::Error> {
    use aws_lambda_events::apigw::{
        ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
    };
    use lambda_runtime::LambdaEvent;

    init_tracing();
    let source = crate::config::admin_key_source_from_env()?;
    let mut state = aws_state().await?;
    let rotating = match source {
        AdminKeySource::Secret(secret_id) => {
            let aws = load_sdk_config().await;
            let secret =
                AdminKeySecret::new(aws_sdk_secretsmanager::Client::new(&aws), secret_id.clone());
            let key = RotatingAdminKey::load(secret, ADMIN_KEY_REFRESH)
                .await
                .map_err(|error| format!("reading the admin key's secret {secret_id}: {error}"))?;
            Some(Arc::new(key))
        }
        AdminKeySource::Hash(hash) => {
            state.admin_key = Some(hash);
            None
        }
        AdminKeySource::None => None,
    };
    let state = Arc::new(state);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| {
            let (state, rotating) = (Arc::clone(&state), rotating.clone());
            async move {
                let admin_key = match &rotating {
                    Some(rotating) => Some(rotating.hash().await),
                    None => state.admin_key.clone(),
                };
                let header = event
                    .payload
                    .headers
                    .get("authorization")
                    .and_then(|value| value.to_str().ok());
                // A denied simple-response authorizer makes API Gateway answer 403 with its own
                // body, but the contract is 401 with our error object. So a presented but unknown
                // key is let through as `anonymous`, and the handler answers 401 itself. (A request
                // without an Authorization header never gets here: API Gateway answers 401.)
                let context =
                    crate::auth::authorize_with(&state.services, admin_key.as_ref(), header)
                        .await
                        .unwrap_or_else(crate::auth::anonymous);
                let mut response =
                    ApiGatewayV2CustomAuthorizerSimpleResponse::<serde_json::Value>::default();
                response.is_authorized = true;
                response.context = serde_json::to_value(context)?;
                Ok::<_, lambda_runtime::Error>(response)
            }
        },
    ))
    .await
}

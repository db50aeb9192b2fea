//! The shell every API Lambda binary shares: tracing, configuration and AWS services once per
//! cold start (from the deployment configuration every EdgeCert process shares), then the
//! runtime loop around one handler.

use std::convert::Infallible;
use std::sync::Arc;

use edgecert_deployment::{DeploymentConfig, ZoneProviders, aws_services, init_tracing};
use lambda_http::{Body, Request, Response, service_fn};

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

/// Runs one route's handler, found by its function name in the route table.
pub async fn serve_route(function: &str) -> Result<(), lambda_http::Error> {
    let route = crate::routes::ROUTES
        .iter()
        .find(|route| route.function == function)
        .ok_or_else(|| format!("no route is served by function {function}"))?;
    serve(route.handler).await
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
/// `anonymous`, in the context; handlers refuse anonymous callers with 401.
pub async fn serve_authorizer() -> Result<(), lambda_runtime::Error> {
    use aws_lambda_events::apigw::{
        ApiGatewayV2CustomAuthorizerSimpleResponse, ApiGatewayV2CustomAuthorizerV2Request,
    };
    use lambda_runtime::LambdaEvent;

    init_tracing();
    let mut state = aws_state().await?;
    state.admin_key = crate::config::admin_key_from_env()?;
    let state = Arc::new(state);
    lambda_runtime::run(lambda_runtime::service_fn(
        move |event: LambdaEvent<ApiGatewayV2CustomAuthorizerV2Request>| {
            let state = Arc::clone(&state);
            async move {
                let header = event
                    .payload
                    .headers
                    .get("authorization")
                    .and_then(|value| value.to_str().ok());
                // A denied simple-response authorizer makes API Gateway answer 403 with its own
                // body, but the contract is 401 with our error object. So a presented but unknown
                // key is let through as `anonymous`, and the handler answers 401 itself. (A request
                // without an Authorization header never gets here: API Gateway answers 401.)
                let context = crate::auth::authorize(&state, header)
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

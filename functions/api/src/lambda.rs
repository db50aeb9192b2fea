//! The shell of every API Lambda function (run by the one binary of `functions/lambda`):
//! tracing, configuration and AWS clients once per cold start, then the runtime loop around one
//! route's handler ([`serve`]) or the authorizer ([`serve_authorizer`]).

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use aws_config::SdkConfig;
use edgecert_acme::{Issuer, IssuerConfig};
use edgecert_aws::{
    AdminKeySecret, DynamoStore, Route53DnsProvider, SecretsManagerVault, load_sdk_config,
};
use edgecert_core::PlanCatalog;
use edgecert_core::ports::{DnsProviders, DnsResolver, SystemClock};
use edgecert_core::usecases::Services;
use edgecert_dns::HickoryResolver;
use lambda_http::{Body, Request, Response, service_fn};

use crate::auth::{ADMIN_KEY_REFRESH, RotatingAdminKey};
use crate::config::{AcmeSettings, ApiConfig, vars};
use crate::routes::Handler;
use crate::state::ApiState;

/// JSON logs with structured fields, level from `RUST_LOG` (default `info`).
pub fn init_tracing() {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .without_time()
        .try_init();
}

fn required(name: &'static str) -> Result<String, lambda_http::Error> {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .ok_or_else(|| format!("configuration: {name}: is required").into())
}

/// The issuer's configuration from the function's ACME settings.
pub fn issuer_config(acme: &AcmeSettings) -> IssuerConfig {
    let mut config = IssuerConfig::new(acme.directory_url.clone());
    if let Some(root) = &acme.ca_root_pem {
        config = config.with_ca_root_pem(root.clone());
    }
    if let Some(email) = &acme.contact_email {
        config = config.with_contact_email(email.clone());
    }
    if !acme.caa_identities.is_empty() {
        config = config.with_caa_identities(acme.caa_identities.iter().cloned());
    }
    config
}

/// Builds the API state on the AWS adapters (DynamoDB, Secrets Manager, Route 53, DNS), with
/// an ACME issuer when the function's configuration names a CA (`EDGECERT_ACME_DIRECTORY`, set
/// in template.yaml only for the functions that need one).
pub async fn aws_state() -> Result<ApiState, lambda_http::Error> {
    let config = ApiConfig::from_env()?;
    let aws = load_sdk_config().await;
    aws_state_on(&aws, config).await
}

/// [`aws_state`] with the SDK configuration and the function's configuration already read.
async fn aws_state_on(aws: &SdkConfig, config: ApiConfig) -> Result<ApiState, lambda_http::Error> {
    let table = required(vars::TABLE_NAME)?;
    let secret_prefix =
        std::env::var(vars::SECRET_PREFIX).unwrap_or_else(|_| "edgecert/".to_owned());
    let resolver: Arc<dyn DnsResolver> = match config.dns_server {
        Some(server) => Arc::new(HickoryResolver::with_name_server(server)),
        None => Arc::new(HickoryResolver::from_system_conf()?),
    };
    // API Gateway gives an integration 30 s: zone verification waits for Route 53's INSYNC
    // well within that, and answers 422 rather than time out when it takes longer.
    let route53 = Route53DnsProvider::from_sdk_config(aws)
        .with_propagation_wait(Duration::from_secs(1), Duration::from_secs(20));
    let dns_providers = DnsProviders::default().with("route53", Arc::new(route53));
    let mut services = Services {
        store: Arc::new(DynamoStore::new(aws_sdk_dynamodb::Client::new(aws), table)),
        vault: Arc::new(SecretsManagerVault::new(
            aws_sdk_secretsmanager::Client::new(aws),
            secret_prefix,
        )),
        resolver,
        clock: Arc::new(SystemClock),
        plans: PlanCatalog::default(),
        edge: config.edge,
        origin_policy: config.origin_policy,
        dns_providers,
        issuance: None,
    };
    // The issuer works on the same services (store, vault, DNS providers); it is built from
    // them first and only then made their `issuance`.
    if let Some(acme) = &config.acme {
        let issuer = Issuer::new(services.clone(), issuer_config(acme))?;
        services.issuance = Some(Arc::new(issuer));
    }
    Ok(ApiState {
        services,
        admin_key: config.admin_key,
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
    let config = ApiConfig::from_env()?;
    let aws = load_sdk_config().await;
    let rotating = match &config.admin_key_secret {
        Some(secret_id) => {
            let secret =
                AdminKeySecret::new(aws_sdk_secretsmanager::Client::new(&aws), secret_id.clone());
            let key = RotatingAdminKey::load(secret, ADMIN_KEY_REFRESH)
                .await
                .map_err(|error| format!("reading the admin key's secret {secret_id}: {error}"))?;
            Some(Arc::new(key))
        }
        None => None,
    };
    let state = Arc::new(aws_state_on(&aws, config).await?);
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

//! The AWS services of a deployed process, built once from its [`DeploymentConfig`]: the
//! DynamoDB store, the vault of its key storage (sealed in the table, or Secrets Manager), the DNS resolver, Route 53 where the process
//! works on zones, and the ACME issuer where it talks to the CA.

use std::sync::Arc;
use std::time::Duration;

use edgecert_acme::{AcmeError, Issuer};
use edgecert_aws::{AwsClients, DynamoStore, KeyStorageVault, Route53DnsProvider, load_sdk_config};
use edgecert_core::PlanCatalog;
use edgecert_core::ports::{DnsProviders, DnsResolver, SystemClock};
use edgecert_core::usecases::Services;
use edgecert_dns::HickoryResolver;

use crate::config::{ConfigError, DeploymentConfig};

/// Why a process could not build its services.
#[derive(thiserror::Error)]
#[non_exhaustive]
pub enum DeploymentError {
    /// A variable is missing or wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The system's DNS configuration could not be read.
    #[error("reading the system's DNS configuration: {0}")]
    Resolver(#[source] edgecert_core::Error),
    /// The ACME issuer could not be built (its CA root, its HTTP client).
    #[error("building the ACME issuer: {0}")]
    Issuer(#[source] AcmeError),
}

/// As its message: a binary whose `main` returns it prints `Error: <message>`.
impl std::fmt::Debug for DeploymentError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        std::fmt::Display::fmt(self, f)
    }
}

/// Which DNS zones a process works on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ZoneProviders {
    /// None: the edge issues over HTTP-01 only.
    None,
    /// Route 53 hosted zones (zone verification, DNS-01).
    Route53,
}

/// How long a Route 53 change may take to reach `INSYNC` before the caller moves on, and how
/// often it is asked. API Gateway gives a function 30 s: zone verification waits well within
/// that and answers 422 rather than time out.
const ROUTE53_POLL: Duration = Duration::from_secs(1);
const ROUTE53_PROPAGATION: Duration = Duration::from_secs(20);

/// The services of a deployed process on AWS: region and credentials from the environment
/// (`AWS_ENDPOINT_URL` when set, as tests set it), the store and vault named by `config`, the
/// resolver it names (else the system's), `zones`' providers, and the ACME issuer as
/// `issuance` when `config` names a CA.
pub async fn aws_services(
    config: &DeploymentConfig,
    zones: ZoneProviders,
) -> Result<Services, DeploymentError> {
    let sdk = load_sdk_config().await;
    let clients = AwsClients::from_sdk_config(&sdk);
    let resolver: Arc<dyn DnsResolver> = match config.dns_server {
        Some(server) => Arc::new(HickoryResolver::with_name_server(server)),
        None => Arc::new(HickoryResolver::from_system_conf().map_err(DeploymentError::Resolver)?),
    };
    let dns_providers = match zones {
        ZoneProviders::None => DnsProviders::default(),
        ZoneProviders::Route53 => DnsProviders::default().with(
            "route53",
            Arc::new(
                Route53DnsProvider::from_sdk_config(&sdk)
                    .with_grants(config.route53_zone_grants.clone())
                    .with_propagation_wait(ROUTE53_POLL, ROUTE53_PROPAGATION),
            ),
        ),
    };
    let vault = Arc::new(key_storage_vault(&clients, config)?);
    let mut services = Services {
        store: Arc::new(DynamoStore::new(
            clients.dynamodb,
            config.table_name.clone(),
        )),
        vault,
        resolver,
        clock: Arc::new(SystemClock),
        plans: PlanCatalog::default(),
        edge: config.edge.clone(),
        origin_policy: config.origin_policy,
        dns_providers,
        issuance: None,
    };
    // The issuer works on the same services (store, vault, DNS providers); it is built from
    // them first and only then made their `issuance`.
    if let Some(acme) = &config.acme {
        let issuer =
            Issuer::new(services.clone(), acme.issuer_config()).map_err(DeploymentError::Issuer)?;
        services.issuance = Some(Arc::new(issuer));
    }
    Ok(services)
}

/// The vault `config` names: keys where its key storage puts them, read wherever they sit.
pub fn key_storage_vault(
    clients: &AwsClients,
    config: &DeploymentConfig,
) -> Result<KeyStorageVault, DeploymentError> {
    KeyStorageVault::new(
        clients,
        config.key_storage,
        config.table_name.clone(),
        config.secret_prefix.clone(),
        config.kms_key_id.clone(),
    )
    .map_err(|problem| {
        DeploymentError::Config(ConfigError::new(crate::config::vars::KMS_KEY_ID, problem))
    })
}

/// JSON logs with structured fields, level from `RUST_LOG` (default `info`), without
/// timestamps: Lambda and the container's log driver stamp every line.
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

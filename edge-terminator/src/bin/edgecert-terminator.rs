//! The edge terminator container's entry point: JSON logs, configuration from the environment,
//! the AWS adapters (DynamoDB, Secrets Manager) and the ACME issuer built once, then the
//! library's [`Terminator`] until SIGTERM.

use std::process::ExitCode;
use std::sync::Arc;

use edgecert_acme::{Issuer, IssuerConfig};
use edgecert_aws::{AwsClients, DynamoStore, SecretsManagerVault};
use edgecert_core::PlanCatalog;
use edgecert_core::ports::{DnsProviders, DnsResolver, SystemClock};
use edgecert_core::usecases::Services;
use edgecert_dns::HickoryResolver;
use edgecert_terminator::{DeploymentConfig, Listeners, Terminator};
use tokio::signal::unix::{SignalKind, signal};

#[tokio::main]
async fn main() -> ExitCode {
    let filter =
        tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into());
    let _ = tracing_subscriber::fmt()
        .json()
        .with_env_filter(filter)
        .with_target(false)
        .with_current_span(false)
        .try_init();
    match run().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(error) => {
            tracing::error!(error = %error, "edge terminator failed");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), Box<dyn std::error::Error>> {
    let config = DeploymentConfig::from_env()?;
    let clients = AwsClients::from_env().await;
    let resolver: Arc<dyn DnsResolver> = match config.dns_server {
        Some(server) => Arc::new(HickoryResolver::with_name_server(server)),
        None => Arc::new(HickoryResolver::from_system_conf()?),
    };
    let services = Services {
        store: Arc::new(DynamoStore::new(
            clients.dynamodb.clone(),
            &config.table_name,
        )),
        vault: Arc::new(SecretsManagerVault::new(
            clients.secrets_manager.clone(),
            config.secret_prefix.clone(),
        )),
        resolver,
        clock: Arc::new(SystemClock),
        plans: PlanCatalog::default(),
        edge: config.edge.clone(),
        origin_policy: config.origin_policy,
        dns_providers: DnsProviders::default(),
        issuance: None,
    };
    let mut issuer_config = IssuerConfig::new(config.acme_directory_url.clone())
        .with_caa_identities(config.caa_identities.clone());
    if let Some(email) = &config.acme_contact_email {
        issuer_config = issuer_config.with_contact_email(email.clone());
    }
    if let Some(root) = &config.acme_ca_root_file {
        issuer_config = issuer_config.with_ca_root_pem(root.clone());
    }
    let issuer = Arc::new(Issuer::new(services.clone(), issuer_config)?);
    let listeners =
        Listeners::bind(config.https_addr, config.http_addr, Some(config.admin_addr)).await?;
    let terminator = Terminator::start(services, issuer, config.terminator, listeners).await?;

    let mut terminate = signal(SignalKind::terminate())?;
    let mut interrupt = signal(SignalKind::interrupt())?;
    tokio::select! {
        _ = terminate.recv() => tracing::info!(signal = "SIGTERM", "shutting down"),
        _ = interrupt.recv() => tracing::info!(signal = "SIGINT", "shutting down"),
    }
    terminator.shutdown().await;
    Ok(())
}

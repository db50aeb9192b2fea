//! The edge terminator container's entry point: JSON logs, configuration from the environment,
//! the AWS adapters (DynamoDB, Secrets Manager) and the ACME issuer built once (as every
//! deployed EdgeCert process builds them), then the library's [`Terminator`] until SIGTERM.

use std::process::ExitCode;

use edgecert_deployment::{ZoneProviders, aws_services};
use edgecert_terminator::{DeploymentConfig, EdgeAllocator, Listeners, Terminator};
use tokio::signal::unix::{SignalKind, signal};

#[global_allocator]
static ALLOCATOR: EdgeAllocator = EdgeAllocator;

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
    // The edge issues over HTTP-01 only: no DNS zones.
    let services = aws_services(&config.shared, ZoneProviders::None).await?;
    let issuer = services
        .issuance
        .clone()
        .ok_or("the terminator's configuration names no CA")?;
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

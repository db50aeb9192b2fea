//! The shell of both worker Lambda functions (run by the one binary of `functions/lambda`):
//! tracing, configuration, AWS clients and the ACME issuer once per cold start (from the
//! deployment configuration every EdgeCert process shares), then the runtime loop around one
//! handler.

use std::sync::Arc;

use aws_lambda_events::dynamodb::Event;
use aws_lambda_events::streams::DynamoDbEventResponse;
use edgecert_core::ports::Issuance;
use edgecert_core::usecases::Services;
use edgecert_deployment::{DeploymentConfig, ZoneProviders, aws_services, init_tracing};
use lambda_runtime::{Error, LambdaEvent, service_fn};

use crate::config::WorkerConfig;
use crate::renewer::ScheduleEvent;
use crate::{issuer, renewer};

/// What a worker function holds between invocations.
#[derive(Clone)]
pub struct Worker {
    /// Store, vault, DNS, clock, plans, edge settings, DNS providers.
    pub services: Services,
    /// The ACME issuer.
    pub issuance: Arc<dyn Issuance>,
    /// Pacing.
    pub config: WorkerConfig,
    /// The table (the dimension of the expiry metric).
    pub table_name: String,
}

/// Builds the worker on the AWS adapters from the environment. A worker without a CA
/// (`EDGECERT_ACME_DIRECTORY`) is a deployment mistake and fails at start.
pub async fn aws_worker() -> Result<Worker, Error> {
    let deployment = DeploymentConfig::from_env()?;
    deployment.required_acme("the workers")?;
    let config = WorkerConfig::from_env()?;
    let services = aws_services(&deployment, ZoneProviders::Route53).await?;
    let issuance = services
        .issuance
        .clone()
        .ok_or("the issuer was not built")?;
    Ok(Worker {
        services,
        issuance,
        config,
        table_name: deployment.table_name.clone(),
    })
}

/// Runs the issuer on the table's stream (with `ReportBatchItemFailures`).
pub async fn serve_issuer() -> Result<(), Error> {
    init_tracing();
    let worker = Arc::new(aws_worker().await?);
    lambda_runtime::run(service_fn(move |event: LambdaEvent<Event>| {
        let worker = Arc::clone(&worker);
        async move {
            Ok::<DynamoDbEventResponse, Error>(
                issuer::handle_stream(
                    &worker.services,
                    worker.issuance.as_ref(),
                    &event.payload,
                    worker.config.concurrency,
                )
                .await,
            )
        }
    }))
    .await
}

/// Runs the renewer on its EventBridge Scheduler event: a run that takes no certificate within
/// [`renewer::DEADLINE_MARGIN`] of the invocation's deadline, then the expiry metric.
pub async fn serve_renewer() -> Result<(), Error> {
    init_tracing();
    let worker = Arc::new(aws_worker().await?);
    let table: Arc<str> = worker.table_name.as_str().into();
    let settings = Arc::new(worker.config.renewal_settings());
    let key_sweep = Arc::new(worker.config.key_sweep_settings());
    // On a cold start: certificates from a CA other than the configured one are due now.
    renewer::replace_from_other_ca(&worker.services, worker.issuance.as_ref()).await;
    lambda_runtime::run(service_fn(move |event: LambdaEvent<ScheduleEvent>| {
        let (worker, settings, key_sweep, table) = (
            Arc::clone(&worker),
            Arc::clone(&settings),
            Arc::clone(&key_sweep),
            Arc::clone(&table),
        );
        async move {
            let settings = renewer::settings_for_deadline(&settings, event.context.deadline());
            let report = renewer::handle_schedule(
                &worker.services,
                worker.issuance.as_ref(),
                &settings,
                &event.payload,
            )
            .await?;
            renewer::publish_expiry_metric(&worker.services, &table).await;
            let sweep =
                renewer::handle_key_storage(&worker.services, &key_sweep, &event.payload).await;
            let mut answer = serde_json::to_value(report)?;
            answer["key_sweep"] = serde_json::to_value(sweep)?;
            Ok::<serde_json::Value, Error>(answer)
        }
    }))
    .await
}

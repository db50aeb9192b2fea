//! EdgeCert's local services and end-to-end test support.
//!
//! [`services`] starts real Pebble (ACME test CA), pebble-challtestsrv (mock DNS and challenge
//! responder) and moto (DynamoDB, Secrets Manager, Route 53) processes on 127.0.0.1, for the
//! end-to-end tests in `tests/`, the adapter test suites and the local runner.
//! [`Http01Responder`] answers Pebble's HTTP-01 validations from the store, as the edge will.
//! [`lambda_runtime`] emulates the AWS Lambda Runtime API, so tests run the Lambda binaries
//! themselves ([`LambdaProcess`]). [`fixtures`] writes store contents as EdgeCert's flows leave
//! them (an issued certificate without ACME), and [`CountingStore`] counts what a flow costs in
//! store calls; [`template`] reads what template.yaml deploys, and
//! [`iam`] checks the AWS calls an [`AwsRecorder`] saw against the template's IAM policies.

mod counting_store;
pub mod fixtures;
mod http01_responder;
pub mod iam;
pub mod lambda_binary;
pub mod lambda_runtime;
pub mod services;
pub mod template;

pub use counting_store::{CallKind, CountingStore, StoreCalls};
pub use http01_responder::Http01Responder;
pub use lambda_runtime::{FunctionError, InitError, InvocationResult, LambdaProcess, RuntimeApi};

pub use services::{
    AwsCall, AwsRecorder, CaaPolicy, CallerCredentials, Challtestsrv, ChalltestsrvHttp01, Moto,
    Pebble, PebbleOptions, Route53Zone, ServiceProcess, free_port, http_client, workspace_root,
};

/// Runs a test's body, failing the test with `what` once it has taken longer than `limit`: a
/// fault or a slow machine makes a test fail with a message, never hang CI.
pub async fn bounded<F: std::future::Future>(
    limit: std::time::Duration,
    what: &str,
    body: F,
) -> F::Output {
    match tokio::time::timeout(limit, body).await {
        Ok(output) => output,
        Err(_) => panic!("{what} did not finish within {limit:?}"),
    }
}

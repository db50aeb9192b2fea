//! Lambda function on an EventBridge schedule: renews, expires and retries what is due.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    edgecert_workers::lambda::serve_renewer().await
}

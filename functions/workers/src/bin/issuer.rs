//! Lambda function on the table's stream: issues the certificates asked for.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    edgecert_workers::lambda::serve_issuer().await
}

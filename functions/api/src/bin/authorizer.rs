//! Lambda authorizer of the HTTP API: API key -> caller identity in the request context.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    edgecert_api::lambda::serve_authorizer().await
}

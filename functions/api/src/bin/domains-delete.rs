//! Lambda function for `DELETE /v1/domains/{id}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    edgecert_api::lambda::serve_route("domains-delete").await
}

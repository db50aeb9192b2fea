//! Lambda function for `GET /v1/domains/{id}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    edgecert_api::lambda::serve_route("domains-get").await
}

//! Lambda function for `GET /v1/domains/{id}/ssl`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    edgecert_api::lambda::serve_route("domains-ssl").await
}

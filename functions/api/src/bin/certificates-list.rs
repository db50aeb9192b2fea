//! Lambda function for `GET /v1/certificates`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    edgecert_api::lambda::serve_route("certificates-list").await
}

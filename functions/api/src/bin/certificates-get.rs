//! Lambda function for `GET /v1/certificates/{id}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    edgecert_api::lambda::serve_route("certificates-get").await
}

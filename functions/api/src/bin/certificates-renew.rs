//! Lambda function for `POST /v1/certificates/{id}/renew`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    edgecert_api::lambda::serve_route("certificates-renew").await
}

//! Lambda function for `DELETE /v1/certificates/{id}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    edgecert_api::lambda::serve_route("certificates-delete").await
}

//! Lambda function for `DELETE /v1/zones/{id}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    edgecert_api::lambda::serve_route("zones-delete").await
}

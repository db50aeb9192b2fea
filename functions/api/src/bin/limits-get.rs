//! Lambda function for `GET /v1/limits`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    edgecert_api::lambda::serve_route("limits-get").await
}

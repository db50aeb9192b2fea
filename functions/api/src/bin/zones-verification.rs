//! Lambda function for `GET /v1/zones/verification`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    edgecert_api::lambda::serve_route("zones-verification").await
}

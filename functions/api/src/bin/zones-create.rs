//! Lambda function for `POST /v1/zones`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    edgecert_api::lambda::serve_route("zones-create").await
}

//! Lambda function for `POST /v1/domains`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    edgecert_api::lambda::serve_route("domains-create").await
}

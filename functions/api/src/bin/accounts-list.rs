//! Lambda function for `GET /v1/accounts`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    edgecert_api::lambda::serve_route("accounts-list").await
}

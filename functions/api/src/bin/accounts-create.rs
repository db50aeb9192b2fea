//! Lambda function for `POST /v1/accounts`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    edgecert_api::lambda::serve_route("accounts-create").await
}

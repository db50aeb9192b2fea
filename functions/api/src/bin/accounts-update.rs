//! Lambda function for `PATCH /v1/accounts/{id}`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    edgecert_api::lambda::serve_route("accounts-update").await
}

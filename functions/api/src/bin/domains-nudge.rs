//! Lambda function for `POST /v1/domains/{id}/ssl/nudge`.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    edgecert_api::lambda::serve_route("domains-nudge").await
}

//! Lambda function for `GET /` and `GET /assets/{proxy+}`: the web dashboard.

#[tokio::main]
async fn main() -> Result<(), lambda_http::Error> {
    edgecert_api::lambda::serve_dashboard().await
}

//! The `bootstrap` of every EdgeCert Lambda function: the function named by `EDGECERT_FUNCTION`.

#[tokio::main]
async fn main() -> Result<(), lambda_runtime::Error> {
    edgecert_lambda::LambdaFunction::from_env()?.serve().await
}

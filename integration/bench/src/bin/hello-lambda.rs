//! The baseline of the Lambda init benchmark (`bench-lambda-init`): the smallest `lambda_http`
//! function, answering 200 to any API Gateway request. It lives in this package so Cargo builds
//! it in the same profile, with the same dependency versions and features, as EdgeCert's
//! function binaries: the difference in start-up time is then what our code adds.

use lambda_http::{Body, Error, Request, Response, run, service_fn};

/// Answers every request with 200 and a fixed text.
async fn hello(_request: Request) -> Result<Response<Body>, Error> {
    let response = Response::builder()
        .status(200)
        .header("content-type", "text/plain")
        .body(Body::from("Hello, world"))?;
    Ok(response)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    run(service_fn(hello)).await
}

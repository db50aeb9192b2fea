//! Building responses, and the one place an [`Error`] becomes an HTTP response.

use edgecert_core::Error;
use lambda_http::http::{HeaderValue, StatusCode, header};
use lambda_http::{Body, Response};
use serde::Serialize;
use serde_json::json;

/// A JSON response.
pub fn json<T: Serialize>(status: u16, value: &T) -> Response<Body> {
    match serde_json::to_string(value) {
        Ok(text) => with_body(status, text),
        Err(error) => {
            tracing::error!(failure = %error, "response serialisation failed");
            with_body(
                500,
                r#"{"error":{"code":"internal_error","message":"Internal error"}}"#.to_owned(),
            )
        }
    }
}

/// `204 No Content`.
pub fn no_content() -> Response<Body> {
    let mut response = Response::new(Body::Empty);
    *response.status_mut() = StatusCode::NO_CONTENT;
    response
}

/// The error as `{"error": {"code", "message"}}` with its status. Internal failures are logged
/// with their source here and shown to the client only as a generic sentence.
pub fn error(error: &Error) -> Response<Body> {
    let status = error.status();
    if status >= 500 {
        tracing::error!(code = error.code(), failure = %error, "request failed");
    } else {
        tracing::info!(code = error.code(), status, "request refused");
    }
    let mut response = json(
        status,
        &json!({ "error": { "code": error.code(), "message": error.public_message() } }),
    );
    if let Some(seconds) = error.retry_after_seconds() {
        response
            .headers_mut()
            .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
    }
    response
}

fn with_body(status: u16, text: String) -> Response<Body> {
    let mut response = Response::new(Body::Text(text));
    *response.status_mut() =
        StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json"),
    );
    response
}

/// Runs a fallible handler body and turns its error into the response.
pub async fn respond(
    outcome: impl Future<Output = edgecert_core::Result<Response<Body>>>,
) -> Response<Body> {
    match outcome.await {
        Ok(response) => response,
        Err(failure) => error(&failure),
    }
}

//! `GET /` and `GET /assets/{proxy+}` (no key): the web dashboard, from
//! [`edgecert_dashboard`]. It needs no state: the page and its assets are in the binary, and
//! the page itself calls the API with the key the user typed.

use lambda_http::http::header;
use lambda_http::{Body, Request, Response};

/// Answers a dashboard request (the page, an asset, or 404), gzip-compressed when the client
/// accepts it.
pub fn handle(request: &Request) -> Response<Body> {
    let accept_encoding = request
        .headers()
        .get(header::ACCEPT_ENCODING)
        .and_then(|value| value.to_str().ok());
    let answer = edgecert_dashboard::dashboard().respond(request.uri().path(), accept_encoding);
    let (parts, bytes) = answer.into_parts();
    // Binary: API Gateway passes it base64-encoded, compressed or not.
    Response::from_parts(parts, Body::Binary(bytes))
}

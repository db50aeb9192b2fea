//! The plain-HTTP listener (port 80 behind the NLB): ACME HTTP-01 answers read from the store,
//! so any terminator answers for an issuance run by any other process, and a permanent
//! redirect to HTTPS for everything else. Request heads are held to the same rules as on
//! HTTPS ([`crate::request_head`]: `431` past `max_header_bytes`, `400` for two `Host`s).

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::uri::Authority;
use http::{Method, Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::cache::normalize_name;
use crate::metrics::HTTP01;
use crate::proxy::{ProxyBody, plain};
use crate::request_head;
use crate::shared::Shared;

/// Path prefix of HTTP-01 validation requests (RFC 8555, section 8.3).
const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// Answers one request on the HTTP listener.
pub(crate) async fn answer(shared: Arc<Shared>, request: Request<Incoming>) -> Response<ProxyBody> {
    if let Some(refusal) = request_head::refusal(&request, shared.config.max_header_bytes) {
        shared.metrics.count(HTTP01, "outcome", "bad_request");
        return refusal;
    }
    if let Some(token) = request.uri().path().strip_prefix(CHALLENGE_PATH) {
        return challenge(&shared, &request, token).await;
    }
    redirect(&shared, &request)
}

async fn challenge(
    shared: &Shared,
    request: &Request<Incoming>,
    token: &str,
) -> Response<ProxyBody> {
    let well_formed = !token.is_empty()
        && token.len() <= 256
        && token
            .bytes()
            .all(|byte| byte.is_ascii_alphanumeric() || byte == b'-' || byte == b'_');
    if !well_formed || !matches!(*request.method(), Method::GET | Method::HEAD) {
        shared.metrics.count(HTTP01, "outcome", "challenge_unknown");
        return plain(StatusCode::NOT_FOUND, "Not Found\n");
    }
    let now = shared.services.clock.now();
    match shared.services.store.get_http01(token, now).await {
        Ok(Some(answer)) => {
            shared
                .metrics
                .count(HTTP01, "outcome", "challenge_answered");
            let mut response = plain(StatusCode::OK, "");
            *response.body_mut() = body(answer.key_authorization);
            response
        }
        Ok(None) => {
            shared.metrics.count(HTTP01, "outcome", "challenge_unknown");
            plain(StatusCode::NOT_FOUND, "Not Found\n")
        }
        Err(error) => {
            // The token and the store's words stay in the log.
            shared.metrics.count(HTTP01, "outcome", "store_unavailable");
            tracing::warn!(%error, "could not read an HTTP-01 answer from the store");
            plain(StatusCode::SERVICE_UNAVAILABLE, "Service Unavailable\n")
        }
    }
}

fn body(text: String) -> ProxyBody {
    use http_body_util::BodyExt as _;
    http_body_util::Full::new(bytes::Bytes::from(text))
        .map_err(|never| match never {})
        .boxed_unsync()
}

/// `308` to the same host and path over HTTPS.
fn redirect(shared: &Shared, request: &Request<Incoming>) -> Response<ProxyBody> {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<Authority>().ok())
        .map(|authority| normalize_name(authority.host()))
        .filter(|host| !host.is_empty());
    let Some(host) = host else {
        shared.metrics.count(HTTP01, "outcome", "bad_request");
        return plain(
            StatusCode::BAD_REQUEST,
            "Bad Request: no host in the request\n",
        );
    };
    let port = match shared.config.redirect_https_port {
        443 => String::new(),
        port => format!(":{port}"),
    };
    let path = request
        .uri()
        .path_and_query()
        .map_or("/", |path| path.as_str());
    let location = format!("https://{host}{port}{path}");
    let Ok(location) = HeaderValue::from_str(&location) else {
        shared.metrics.count(HTTP01, "outcome", "bad_request");
        return plain(StatusCode::BAD_REQUEST, "Bad Request\n");
    };
    shared.metrics.count(HTTP01, "outcome", "redirected");
    let mut response = plain(StatusCode::PERMANENT_REDIRECT, "Permanent Redirect\n");
    response.headers_mut().insert(header::LOCATION, location);
    response
}

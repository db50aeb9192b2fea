//! The admin listener: `/healthz` (the load balancer's and ECS's health check) and `/metrics`
//! (Prometheus text). Not for the internet: the NLB never routes to it.
//!
//! `/healthz` answers 503 until the first read of the store's change feeds finished (a read of
//! the last `change_overlap` of changes: nothing is loaded up front, so this does not grow with
//! the number of domains), and while the store has not been read for longer than
//! `unhealthy_after_store_failures`: the load balancer then prefers terminators that can load
//! names, issue and follow changes. The listeners serve what they hold either way.

use std::sync::Arc;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::proxy::{ProxyBody, plain};
use crate::shared::Shared;

/// Answers one admin request.
pub(crate) fn answer(shared: &Arc<Shared>, request: &Request<Incoming>) -> Response<ProxyBody> {
    match request.uri().path() {
        "/healthz" => match shared.unhealthy() {
            None => plain(StatusCode::OK, "ok\n"),
            Some(reason) => plain(
                StatusCode::SERVICE_UNAVAILABLE,
                format!("unhealthy: {reason}\n"),
            ),
        },
        "/metrics" => {
            use http_body_util::BodyExt as _;
            let text = shared.metrics.render(shared.gauges());
            let mut response = Response::new(
                http_body_util::Full::new(bytes::Bytes::from(text))
                    .map_err(|never| match never {})
                    .boxed_unsync(),
            );
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4"),
            );
            response
        }
        _ => plain(StatusCode::NOT_FOUND, "Not Found\n"),
    }
}

//! The admin listener: `/healthz` (the process serves; the load balancer's and ECS's health
//! check) and `/metrics` (Prometheus text). Not for the internet: the NLB never routes to it.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::proxy::{ProxyBody, plain};
use crate::shared::Shared;

/// Answers one admin request.
pub(crate) fn answer(shared: &Arc<Shared>, request: &Request<Incoming>) -> Response<ProxyBody> {
    match request.uri().path() {
        // Healthy as soon as it listens: serving while the first load runs is by design.
        "/healthz" => {
            if shared.loaded.load(Ordering::Relaxed) {
                plain(StatusCode::OK, "ok\n")
            } else {
                plain(StatusCode::OK, "ok (loading certificates)\n")
            }
        }
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

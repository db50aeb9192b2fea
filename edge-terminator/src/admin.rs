//! The admin listener: `/healthz` (the load balancer's and ECS's health check) and `/metrics`
//! (Prometheus text). Not for the internet: the NLB never routes to it.
//!
//! `/healthz` answers 503 until the first read of the store's change feeds finished (a read of
//! the last `change_overlap` of changes: nothing is loaded up front, so this does not grow with
//! the number of domains), and while the store has not been read for longer than
//! `unhealthy_after_store_failures`: the load balancer then prefers terminators that can load
//! names, issue and follow changes. The listeners serve what they hold either way.
//!
//! `/metrics` also shows the order budget at the CA, which every process shares: read from the
//! store at scrape time (one item read per scrape), so every terminator shows the same level.

use std::sync::Arc;
use std::time::Duration;

use edgecert_core::model::BucketLevel;
use edgecert_core::ports::Issuance;
use time::OffsetDateTime;

use http::header::{self, HeaderValue};
use http::{Request, Response, StatusCode};
use hyper::body::Incoming;

use crate::metrics::gauge;
use crate::proxy::{ProxyBody, plain};
use crate::shared::Shared;

/// The longest a scrape waits for the order budget's level; without it the page leaves the
/// budget's gauges out rather than answer late.
const BUDGET_READ_TIMEOUT: Duration = Duration::from_secs(2);

/// Answers one admin request.
pub(crate) async fn answer(
    shared: &Arc<Shared>,
    issuance: &dyn Issuance,
    request: &Request<Incoming>,
) -> Response<ProxyBody> {
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
            let budget = match tokio::time::timeout(
                BUDGET_READ_TIMEOUT,
                issuance.order_budget_level(),
            )
            .await
            {
                Ok(Ok(level)) => level,
                Ok(Err(error)) => {
                    tracing::warn!(error = %error, "reading the order budget for /metrics failed");
                    None
                }
                Err(_) => {
                    tracing::warn!("reading the order budget for /metrics timed out");
                    None
                }
            };
            let now = shared.services.clock.now();
            let mut text = shared.metrics.render(shared.gauges());
            if let Some(level) = budget {
                text.push_str(&render_order_budget(&level, now));
            }
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

/// The order budget's gauges.
fn render_order_budget(level: &BucketLevel, now: OffsetDateTime) -> String {
    let next_order_in = level
        .next_token_at
        .map_or(0.0, |at| (at - now).as_seconds_f64().max(0.0));
    let mut out = String::new();
    gauge(
        &mut out,
        "edgecert_order_budget_available_orders",
        "New orders the CA account's budget allows now, shared by every process that orders.",
        f64::from(level.available),
    );
    gauge(
        &mut out,
        "edgecert_order_budget_capacity_orders",
        "The most new orders the CA account's budget holds.",
        f64::from(level.capacity),
    );
    gauge(
        &mut out,
        "edgecert_order_budget_next_order_seconds",
        "Seconds until the budget earns its next order; 0 when it is full.",
        next_order_in,
    );
    out
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn the_order_budget_shows_its_level_and_the_wait_for_the_next_order() {
        let now = datetime!(2026-06-01 12:00 UTC);
        let text = render_order_budget(
            &BucketLevel {
                available: 0,
                capacity: 300,
                next_token_at: Some(now + time::Duration::seconds(30)),
            },
            now,
        );
        assert!(
            text.contains("edgecert_order_budget_available_orders 0\n"),
            "{text}"
        );
        assert!(
            text.contains("edgecert_order_budget_capacity_orders 300\n"),
            "{text}"
        );
        assert!(
            text.contains("edgecert_order_budget_next_order_seconds 30\n"),
            "{text}"
        );
    }
}

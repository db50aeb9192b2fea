//! The API over HTTP/1.1 and h2 on a loopback socket, dispatching every request through
//! [`edgecert_api::gateway::dispatch`] exactly as API Gateway would.
//!
//! API Gateway bounds what a client can hold open; this server does it itself
//! ([`ConnectionLimits`]): a request head must arrive within `header_read_timeout`, a body
//! within `body_read_timeout`, a connection with no byte either way for `idle_timeout` is
//! closed, and at most `max_connections` are served at once (more are closed on accept). A
//! client that opens connections and sends nothing useful (slowloris) therefore holds each for
//! a bounded time and never more than its share.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edgecert_api::ApiState;
use edgecert_api::request::MAX_BODY_BYTES;
use edgecert_terminator::IdleTimeout;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use lambda_http::Body;
use tokio::net::TcpListener;
use tokio::sync::{Semaphore, watch};

/// Pause after a failed `accept` (out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// How long and how many connections a client may hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectionLimits {
    /// Time to send a request's head (HTTP/1; also bounds a keep-alive wait for the next).
    pub header_read_timeout: Duration,
    /// Time to send a request's body, once its head arrived.
    pub body_read_timeout: Duration,
    /// A connection with no byte read or written for this long is closed (any protocol).
    pub idle_timeout: Duration,
    /// Connections served at once; more are closed as soon as they are accepted.
    pub max_connections: usize,
}

impl Default for ConnectionLimits {
    fn default() -> Self {
        ConnectionLimits {
            header_read_timeout: Duration::from_secs(10),
            body_read_timeout: Duration::from_secs(30),
            idle_timeout: Duration::from_secs(60),
            max_connections: 1024,
        }
    }
}

/// Serves the API on `listener` until `shutdown` turns true, with the default limits.
pub async fn serve(listener: TcpListener, state: Arc<ApiState>, shutdown: watch::Receiver<bool>) {
    serve_with_limits(listener, state, shutdown, ConnectionLimits::default()).await;
}

/// Serves the API on `listener` until `shutdown` turns true, within `limits`.
pub async fn serve_with_limits(
    listener: TcpListener,
    state: Arc<ApiState>,
    mut shutdown: watch::Receiver<bool>,
    limits: ConnectionLimits,
) {
    let slots = Arc::new(Semaphore::new(limits.max_connections));
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    tracing::warn!(failure = %error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let Ok(slot) = Arc::clone(&slots).try_acquire_owned() else {
            tracing::warn!(%peer, max = limits.max_connections, "connection limit reached; closed");
            drop(stream);
            continue;
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = Arc::clone(&state);
                async move {
                    Ok::<_, std::convert::Infallible>(
                        handle(&state, request, peer, limits.body_read_timeout).await,
                    )
                }
            });
            let mut builder = auto::Builder::new(TokioExecutor::new());
            builder
                .http1()
                .timer(TokioTimer::new())
                .header_read_timeout(limits.header_read_timeout);
            builder.http2().timer(TokioTimer::new());
            let io = TokioIo::new(IdleTimeout::new(stream, limits.idle_timeout));
            if let Err(error) = builder.serve_connection(io, service).await {
                tracing::debug!(%peer, failure = %error, "connection ended with an error");
            }
            drop(slot);
        });
    }
}

async fn handle(
    state: &ApiState,
    request: hyper::Request<Incoming>,
    peer: SocketAddr,
    body_read_timeout: Duration,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    if parts.uri.path() == "/healthz" {
        return hyper::Response::new(Full::new(Bytes::from_static(b"ok\n")));
    }
    // Read one byte past the limit so the gateway can tell "at the limit" from "over it".
    let read = Limited::new(body, MAX_BODY_BYTES + 1).collect();
    let body = match tokio::time::timeout(body_read_timeout, read).await {
        Ok(Ok(collected)) => collected.to_bytes().to_vec(),
        Ok(Err(_)) => vec![0; MAX_BODY_BYTES + 1],
        Err(_) => {
            tracing::info!(%peer, path = parts.uri.path(), "request body not sent in time");
            let mut response = hyper::Response::new(Full::new(Bytes::from_static(
                b"{\"error\":{\"code\":\"request_timeout\",\"message\":\"The request body was not sent in time\"}}",
            )));
            *response.status_mut() = http::StatusCode::REQUEST_TIMEOUT;
            response.headers_mut().insert(
                http::header::CONNECTION,
                http::HeaderValue::from_static("close"),
            );
            return response;
        }
    };
    let method = parts.method.clone();
    let path = parts.uri.path().to_owned();
    let response = edgecert_api::gateway::dispatch(state, parts, body).await;
    tracing::info!(%method, path, status = response.status().as_u16(), peer = %peer, "api request");
    let (parts, body) = response.into_parts();
    let bytes = match body {
        Body::Empty => Bytes::new(),
        Body::Text(text) => Bytes::from(text),
        Body::Binary(bytes) => Bytes::from(bytes),
        _ => Bytes::new(),
    };
    hyper::Response::from_parts(parts, Full::new(bytes))
}

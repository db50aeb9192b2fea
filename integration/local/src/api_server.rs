//! The API over HTTP/1.1 and h2 on a loopback socket, dispatching every request through
//! [`edgecert_api::gateway::dispatch`] exactly as API Gateway would.

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use edgecert_api::ApiState;
use edgecert_api::request::MAX_BODY_BYTES;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo};
use hyper_util::server::conn::auto;
use lambda_http::Body;
use tokio::net::TcpListener;
use tokio::sync::watch;

/// Serves the API on `listener` until `shutdown` turns true.
pub async fn serve(
    listener: TcpListener,
    state: Arc<ApiState>,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(connection) => connection,
                Err(error) => {
                    tracing::warn!(failure = %error, "accept failed");
                    continue;
                }
            },
            _ = shutdown.changed() => return,
        };
        let state = Arc::clone(&state);
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let state = Arc::clone(&state);
                async move { Ok::<_, std::convert::Infallible>(handle(&state, request, peer).await) }
            });
            if let Err(error) = auto::Builder::new(TokioExecutor::new())
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(failure = %error, "connection ended with an error");
            }
        });
    }
}

async fn handle(
    state: &ApiState,
    request: hyper::Request<Incoming>,
    peer: SocketAddr,
) -> hyper::Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    if parts.uri.path() == "/healthz" {
        return hyper::Response::new(Full::new(Bytes::from_static(b"ok\n")));
    }
    // Read one byte past the limit so the gateway can tell "at the limit" from "over it".
    let body = match Limited::new(body, MAX_BODY_BYTES + 1).collect().await {
        Ok(collected) => collected.to_bytes().to_vec(),
        Err(_) => vec![0; MAX_BODY_BYTES + 1],
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

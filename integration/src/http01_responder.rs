//! A store-backed ACME HTTP-01 responder for tests, standing in for the edge terminator's
//! port-80 listener until it exists.
//!
//! It answers `GET /.well-known/acme-challenge/{token}` with the key authorization the issuer
//! put in the store ([`ChallengeStore::get_http01`]), exactly as every terminator will, and 404
//! for anything else. Pebble validates HTTP-01 on [`Pebble::http_port`](crate::Pebble::http_port)
//! of 127.0.0.1, so tests start the responder there.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, PoisonError};

use anyhow::Context as _;
use bytes::Bytes;
use edgecert_core::ports::ChallengeStore;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::CONTENT_TYPE;
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::task::JoinHandle;

/// Path prefix of HTTP-01 validation requests (RFC 8555, section 8.3).
const CHALLENGE_PATH: &str = "/.well-known/acme-challenge/";

/// A running responder on 127.0.0.1; it stops when dropped.
#[derive(Debug)]
pub struct Http01Responder {
    addr: SocketAddr,
    answered: Arc<Answered>,
    task: JoinHandle<()>,
}

/// What the responder answered from the store, for assertions.
#[derive(Debug, Default)]
struct Answered {
    count: AtomicUsize,
    tokens: Mutex<BTreeSet<String>>,
}

impl Answered {
    fn record(&self, token: &str) {
        self.count.fetch_add(1, Ordering::SeqCst);
        self.tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .insert(token.to_owned());
    }
}

impl Http01Responder {
    /// Listens on `127.0.0.1:port` and answers challenges from `store`.
    ///
    /// Generic over the store so an `Arc<dyn Store>` can be passed as is.
    pub async fn start<S>(store: Arc<S>, port: u16) -> anyhow::Result<Http01Responder>
    where
        S: ChallengeStore + ?Sized + 'static,
    {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, port))
            .await
            .with_context(|| format!("binding the HTTP-01 responder on 127.0.0.1:{port}"))?;
        Http01Responder::on(listener, store)
    }

    /// Answers challenges from `store` on `listener` (bound before Pebble was told its port,
    /// so no other listener can take it meanwhile).
    pub fn on<S>(listener: TcpListener, store: Arc<S>) -> anyhow::Result<Http01Responder>
    where
        S: ChallengeStore + ?Sized + 'static,
    {
        let addr = listener
            .local_addr()
            .context("reading the HTTP-01 responder's address")?;
        let answered = Arc::new(Answered::default());
        let task = tokio::spawn(serve(listener, store, answered.clone()));
        Ok(Http01Responder {
            addr,
            answered,
            task,
        })
    }

    /// Where it listens.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// How many validation requests were answered with a stored key authorization (the CA
    /// asks several times per challenge).
    pub fn answered(&self) -> usize {
        self.answered.count.load(Ordering::SeqCst)
    }

    /// The tokens it answered at least once, e.g. to check they are gone from the store after
    /// validation.
    pub fn answered_tokens(&self) -> Vec<String> {
        self.answered
            .tokens
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .iter()
            .cloned()
            .collect()
    }
}

impl Drop for Http01Responder {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn serve<S>(listener: TcpListener, store: Arc<S>, answered: Arc<Answered>)
where
    S: ChallengeStore + ?Sized + 'static,
{
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(error) => {
                tracing::warn!(%error, "HTTP-01 responder could not accept a connection");
                continue;
            }
        };
        let store = store.clone();
        let answered = answered.clone();
        tokio::spawn(async move {
            let service = service_fn(move |request| {
                let store = store.clone();
                let answered = answered.clone();
                async move { Ok::<_, Infallible>(answer(store.as_ref(), &answered, request).await) }
            });
            if let Err(error) = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await
            {
                tracing::debug!(%error, %peer, "HTTP-01 responder connection ended with an error");
            }
        });
    }
}

async fn answer<S>(
    store: &S,
    answered: &Answered,
    request: Request<Incoming>,
) -> Response<Full<Bytes>>
where
    S: ChallengeStore + ?Sized,
{
    let token = request
        .uri()
        .path()
        .strip_prefix(CHALLENGE_PATH)
        .filter(|token| !token.is_empty() && !token.contains('/'));
    let Some(token) = token.filter(|_| request.method() == Method::GET) else {
        return plain(StatusCode::NOT_FOUND, "not found");
    };
    match store
        .get_http01(token, time::OffsetDateTime::now_utc())
        .await
    {
        Ok(Some(challenge)) => {
            answered.record(token);
            plain(StatusCode::OK, &challenge.key_authorization)
        }
        Ok(None) => plain(StatusCode::NOT_FOUND, "unknown token"),
        Err(error) => {
            // Never the token or the store's text in the answer: only a status.
            tracing::warn!(%error, "HTTP-01 responder could not read the store");
            plain(StatusCode::SERVICE_UNAVAILABLE, "store unavailable")
        }
    }
}

fn plain(status: StatusCode, body: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_owned())));
    *response.status_mut() = status;
    response.headers_mut().insert(
        CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain"),
    );
    response
}

//! The HTTP client instant-acme talks to the CA through.
//!
//! [`ca_http_client`] builds it on hyper-rustls with the aws-lc-rs provider passed explicitly
//! (one crypto provider in the tree, none installed process-wide) and a deadline per request.
//! [`RetryAfterRecorder`] wraps any client and remembers the `Retry-After` of the CA's error
//! answers, which instant-acme does not surface, so a failure can be retried no earlier than
//! the CA asked. The value is kept per issuance run in a task-local slot
//! ([`with_retry_after_slot`]): concurrent runs share one ACME account (and so one client) and
//! must not read each other's.

use std::fs;
use std::future::Future;
use std::path::Path;
use std::pin::Pin;
use std::str::FromStr as _;
use std::sync::{Arc, Mutex, OnceLock, PoisonError};
use std::time::Duration;

use bytes::Bytes;
use http::Request;
use http::header::RETRY_AFTER;
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client as HyperClient;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::TokioExecutor;
use instant_acme::{BodyWrapper, BytesResponse, HttpClient};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

use crate::error::{AcmeError, Result};

/// The boxed future every [`HttpClient`] returns.
type ResponseFuture =
    Pin<Box<dyn Future<Output = std::result::Result<BytesResponse, instant_acme::Error>> + Send>>;

/// An HTTP client for an ACME CA: HTTPS only, HTTP/1.1 and h2, each request bounded by
/// `request_timeout`. Trusts only `root_pem` (a PEM file, e.g. Pebble's listener CA) when
/// given, read now so that a bad file stops the process at start; else the system's roots,
/// loaded at the first request: reading them costs milliseconds that a Lambda function which
/// never reaches the CA in an invocation (most of certificates-delete's, the renewer's when
/// nothing is due) should not pay at every cold start.
pub fn ca_http_client(
    root_pem: Option<&Path>,
    request_timeout: Duration,
) -> Result<Box<dyn HttpClient>> {
    let pinned_roots = match root_pem {
        Some(path) => Some(tls_config_trusting(path)?),
        None => None,
    };
    Ok(Box::new(HyperCaClient {
        pinned_roots,
        client: OnceLock::new(),
        request_timeout,
    }))
}

fn crypto_provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::aws_lc_rs::default_provider())
}

/// A TLS configuration that trusts exactly the certificates of the PEM file at `path`.
fn tls_config_trusting(path: &Path) -> Result<rustls::ClientConfig> {
    let pem = fs::read(path).map_err(|error| {
        AcmeError::Config(format!("reading CA root {}: {error}", path.display()))
    })?;
    let mut roots = rustls::RootCertStore::empty();
    for certificate in CertificateDer::pem_slice_iter(&pem) {
        let certificate = certificate.map_err(|error| {
            AcmeError::Config(format!("parsing CA root {}: {error}", path.display()))
        })?;
        roots.add(certificate)?;
    }
    if roots.is_empty() {
        return Err(AcmeError::Config(format!(
            "{} holds no PEM certificate",
            path.display()
        )));
    }
    Ok(
        rustls::ClientConfig::builder_with_provider(crypto_provider())
            .with_safe_default_protocol_versions()?
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}

type CaConnection = HyperClient<HttpsConnector<HttpConnector>, BodyWrapper<Bytes>>;

/// hyper's client as an instant-acme [`HttpClient`], with a deadline on every request.
struct HyperCaClient {
    /// The TLS configuration when the CA's root is given; `None` trusts the system's roots.
    pinned_roots: Option<rustls::ClientConfig>,
    /// Built at the first request.
    client: OnceLock<CaConnection>,
    request_timeout: Duration,
}

impl HyperCaClient {
    fn client(&self) -> std::result::Result<&CaConnection, String> {
        if let Some(client) = self.client.get() {
            return Ok(client);
        }
        let builder = match &self.pinned_roots {
            Some(tls) => hyper_rustls::HttpsConnectorBuilder::new().with_tls_config(tls.clone()),
            None => hyper_rustls::HttpsConnectorBuilder::new()
                .with_provider_and_native_roots(crypto_provider())
                .map_err(|error| format!("loading the system's root certificates: {error}"))?,
        };
        // TCP_NODELAY: an ACME POST leaves as two TLS records (h2 HEADERS, then DATA); with
        // Nagle's algorithm the second waits for the CA's delayed ACK, 40 ms per request on
        // Linux.
        let mut http = HttpConnector::new();
        http.set_nodelay(true);
        http.enforce_http(false);
        let connector = builder
            .https_only()
            .enable_http1()
            .enable_http2()
            .wrap_connector(http);
        // Two first requests at once may both build one; the first stored is kept.
        Ok(self
            .client
            .get_or_init(|| HyperClient::builder(TokioExecutor::new()).build(connector)))
    }
}

impl HttpClient for HyperCaClient {
    fn request(&self, request: Request<BodyWrapper<Bytes>>) -> ResponseFuture {
        let response = match self.client() {
            Ok(client) => client.request(request),
            Err(error) => {
                return Box::pin(async move { Err(instant_acme::Error::Other(error.into())) });
            }
        };
        let deadline = self.request_timeout;
        Box::pin(async move {
            // The deadline covers the whole answer, body included: a CA that sends headers and
            // then stalls must not hold a run (and its lease) forever.
            let whole = async {
                let response = response.await.map_err(|error| {
                    if error.is_connect() {
                        instant_acme::Error::Other(Box::new(CaUnreachable(format!(
                            "cannot connect to the CA: {error}"
                        ))))
                    } else {
                        instant_acme::Error::Other(Box::new(error))
                    }
                })?;
                let (parts, body) = response.into_parts();
                let body = http_body_util::BodyExt::collect(body)
                    .await
                    .map_err(|error| instant_acme::Error::Other(Box::new(error)))?
                    .to_bytes();
                Ok(BytesResponse {
                    parts,
                    body: Box::new(body),
                })
            };
            match tokio::time::timeout(deadline, whole).await {
                Ok(answer) => answer,
                Err(_) => Err(instant_acme::Error::Other(Box::new(CaUnreachable(
                    format!(
                        "no complete answer from the CA within {}s",
                        deadline.as_secs()
                    ),
                )))),
            }
        })
    }
}

/// A request that never reached the CA or never got an answer: the CA is down, stopped or
/// cut off, not merely one connection lost.
#[derive(Debug)]
pub(crate) struct CaUnreachable(pub(crate) String);

impl std::fmt::Display for CaUnreachable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for CaUnreachable {}

/// Shares one client between the accounts built from it (instant-acme takes a `Box`).
pub(crate) struct SharedHttpClient(pub(crate) Arc<dyn HttpClient>);

impl HttpClient for SharedHttpClient {
    fn request(&self, request: Request<BodyWrapper<Bytes>>) -> ResponseFuture {
        self.0.request(request)
    }
}

tokio::task_local! {
    /// The `Retry-After` of the last error answer the CA gave the current issuance run.
    static RETRY_AFTER_SLOT: Arc<Mutex<Option<Duration>>>;
}

/// Runs `future` with a fresh `Retry-After` slot that [`RetryAfterRecorder`] fills.
pub(crate) async fn with_retry_after_slot<F: Future>(future: F) -> F::Output {
    RETRY_AFTER_SLOT
        .scope(Arc::new(Mutex::new(None)), future)
        .await
}

/// Takes the `Retry-After` recorded in the current slot, if any.
pub(crate) fn take_retry_after() -> Option<Duration> {
    RETRY_AFTER_SLOT
        .try_with(|slot| slot.lock().unwrap_or_else(PoisonError::into_inner).take())
        .ok()
        .flatten()
}

/// Wraps a CA client and records the `Retry-After` of error answers (4xx/5xx) in the current
/// run's slot.
pub(crate) struct RetryAfterRecorder {
    pub(crate) inner: Box<dyn HttpClient>,
}

impl HttpClient for RetryAfterRecorder {
    fn request(&self, request: Request<BodyWrapper<Bytes>>) -> ResponseFuture {
        // Read the slot now: this runs inside the caller's task, where the task-local is set.
        let slot = RETRY_AFTER_SLOT.try_with(Arc::clone).ok();
        let response = self.inner.request(request);
        Box::pin(async move {
            let response = response.await?;
            let status = response.parts.status;
            if status.is_client_error() || status.is_server_error() {
                let delay = response
                    .parts
                    .headers
                    .get(RETRY_AFTER)
                    .and_then(|value| value.to_str().ok())
                    .and_then(|value| parse_retry_after(value, time::OffsetDateTime::now_utc()));
                if let (Some(slot), Some(delay)) = (slot, delay) {
                    *slot.lock().unwrap_or_else(PoisonError::into_inner) = Some(delay);
                }
            }
            Ok(response)
        })
    }
}

/// A `Retry-After` value (RFC 9110: delay-seconds or an HTTP-date) as a delay from `now`.
fn parse_retry_after(value: &str, now: time::OffsetDateTime) -> Option<Duration> {
    let value = value.trim();
    if let Ok(seconds) = u64::from_str(value) {
        return Some(Duration::from_secs(seconds));
    }
    // IMF-fixdate (`Sun, 06 Nov 1994 08:49:37 GMT`) is RFC 2822 with the obsolete `GMT` zone.
    let at =
        time::OffsetDateTime::parse(value, &time::format_description::well_known::Rfc2822).ok()?;
    let delay = at - now;
    Some(if delay.is_positive() {
        Duration::try_from(delay).unwrap_or_default()
    } else {
        Duration::ZERO
    })
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn retry_after_reads_seconds_and_http_dates() {
        let now = datetime!(2026-06-01 12:00 UTC);
        assert_eq!(
            parse_retry_after("120", now),
            Some(Duration::from_secs(120))
        );
        assert_eq!(
            parse_retry_after("Mon, 01 Jun 2026 12:05:00 GMT", now),
            Some(Duration::from_secs(300))
        );
        assert_eq!(
            parse_retry_after("Mon, 01 Jun 2026 11:00:00 GMT", now),
            Some(Duration::ZERO)
        );
        assert_eq!(parse_retry_after("soon", now), None);
    }
}

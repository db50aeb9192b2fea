//! The way to origins: a pooled hyper client whose connector resolves the origin's host,
//! applies the core's [`OriginPolicy`] to every resolved address and connects only to allowed
//! ones ([`GuardedConnector`]), with TLS for `https` origins on top; and [`IdleBody`], which cuts
//! an origin response body that goes silent.
//!
//! Checking the address actually connected to — not the name, not an address resolved when the
//! domain was saved — is what stops DNS rebinding: a name that later resolves to 127.0.0.1 or
//! 169.254.169.254 is refused at connect time.

use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use edgecert_core::origin::OriginPolicy;
use edgecert_core::ports::DnsResolver;
use http::Uri;
use http_body_util::BodyExt as _;
use hyper::body::{Body, Frame, Incoming, SizeHint};
use hyper_rustls::HttpsConnector;
use hyper_util::client::legacy::Client;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::pki_types::CertificateDer;
use tokio::net::TcpStream;
use tokio::time::{Instant, Sleep};

use crate::config::TerminatorConfig;
use crate::error::{Result, TerminatorError};
use crate::metrics::{Metrics, ORIGIN_REFUSED};

/// Boxed error of bodies and connectors.
pub(crate) type BoxError = Box<dyn std::error::Error + Send + Sync>;

/// The pooled client to origins.
pub(crate) type OriginClient = Client<HttpsConnector<GuardedConnector>, Incoming>;

/// Why no connection to the origin was made.
#[derive(Debug, thiserror::Error)]
pub(crate) enum ConnectError {
    /// The URL has no host.
    #[error("the origin URL has no host")]
    NoHost,
    /// Every address the host resolved to is refused by the policy.
    #[error("origin address {address} is refused: {reason}")]
    Refused {
        /// The first refused address.
        address: IpAddr,
        /// Why (`loopback`, `link-local`...).
        reason: &'static str,
    },
    /// The host has no address.
    #[error("origin host {0} has no address")]
    NoAddress(String),
    /// The resolver failed.
    #[error("resolving the origin host failed: {0}")]
    Resolve(String),
    /// Resolution and connection took longer than allowed.
    #[error("connecting to the origin timed out")]
    Timeout,
    /// Every allowed address refused the connection.
    #[error("connecting to the origin failed: {0}")]
    Io(#[source] io::Error),
}

/// Resolves, checks every address against the policy, connects to an allowed one.
#[derive(Clone)]
pub(crate) struct GuardedConnector {
    resolver: Arc<dyn DnsResolver>,
    policy: OriginPolicy,
    timeout: Duration,
    metrics: Arc<Metrics>,
}

impl GuardedConnector {
    async fn connect(self, uri: Uri) -> std::result::Result<TokioIo<TcpStream>, ConnectError> {
        let host = uri
            .host()
            .map(|host| host.trim_start_matches('[').trim_end_matches(']'))
            .filter(|host| !host.is_empty())
            .ok_or(ConnectError::NoHost)?;
        let port = uri.port_u16().unwrap_or(match uri.scheme_str() {
            Some("https") => 443,
            _ => 80,
        });
        let candidates = match host.parse::<IpAddr>() {
            Ok(address) => vec![address],
            Err(_) => self
                .resolver
                .ip_addresses(host)
                .await
                .map_err(|error| ConnectError::Resolve(error.to_string()))?,
        };
        if candidates.is_empty() {
            return Err(ConnectError::NoAddress(host.to_owned()));
        }
        let mut allowed = Vec::new();
        let mut first_refusal = None;
        for address in candidates {
            match self.policy.check_address(address) {
                Ok(()) => allowed.push(address),
                Err(reason) => {
                    self.metrics
                        .count(ORIGIN_REFUSED, "reason", reason.as_str());
                    tracing::warn!(
                        origin_host = host,
                        address = %address,
                        reason = reason.as_str(),
                        "origin address refused by the address policy"
                    );
                    first_refusal.get_or_insert((address, reason.as_str()));
                }
            }
        }
        let mut last_error = None;
        for address in allowed {
            match TcpStream::connect(SocketAddr::new(address, port)).await {
                Ok(stream) => {
                    // Small writes (headers) go out at once.
                    let _ = stream.set_nodelay(true);
                    return Ok(TokioIo::new(stream));
                }
                Err(error) => last_error = Some(error),
            }
        }
        match (last_error, first_refusal) {
            (Some(error), _) => Err(ConnectError::Io(error)),
            (None, Some((address, reason))) => Err(ConnectError::Refused { address, reason }),
            (None, None) => Err(ConnectError::NoAddress(host.to_owned())),
        }
    }
}

impl tower_service::Service<Uri> for GuardedConnector {
    type Response = TokioIo<TcpStream>;
    type Error = ConnectError;
    type Future =
        Pin<Box<dyn Future<Output = std::result::Result<TokioIo<TcpStream>, ConnectError>> + Send>>;

    fn poll_ready(&mut self, _: &mut Context<'_>) -> Poll<std::result::Result<(), ConnectError>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, uri: Uri) -> Self::Future {
        let connector = self.clone();
        let timeout = self.timeout;
        Box::pin(async move {
            tokio::time::timeout(timeout, connector.connect(uri))
                .await
                .map_err(|_| ConnectError::Timeout)?
        })
    }
}

/// The pooled client: HTTP/1.1 to origins (WebSocket upgrades need it), TLS on aws-lc-rs with
/// the system roots plus `origin_extra_roots`.
pub(crate) fn client(
    config: &TerminatorConfig,
    resolver: Arc<dyn DnsResolver>,
    policy: OriginPolicy,
    metrics: Arc<Metrics>,
) -> Result<OriginClient> {
    let mut roots = rustls::RootCertStore::empty();
    let native = rustls_native_certs::load_native_certs();
    for error in &native.errors {
        tracing::warn!(%error, "could not read some system CA roots");
    }
    roots.add_parsable_certificates(native.certs);
    for root in &config.origin_extra_roots {
        roots
            .add(root.clone())
            .map_err(|error| TerminatorError::OriginRoots(error.to_string()))?;
    }
    if roots.is_empty() {
        tracing::warn!("no CA roots trusted for HTTPS origins");
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()?
    .with_root_certificates(roots)
    .with_no_client_auth();
    let connector = GuardedConnector {
        resolver,
        policy,
        timeout: config.origin_connect_timeout,
        metrics,
    };
    let https = hyper_rustls::HttpsConnectorBuilder::new()
        .with_tls_config(tls)
        .https_or_http()
        .enable_http1()
        .wrap_connector(connector);
    Ok(Client::builder(TokioExecutor::new())
        .pool_idle_timeout(config.origin_pool_idle_timeout)
        .pool_max_idle_per_host(config.origin_pool_max_idle_per_host)
        .pool_timer(TokioTimer::new())
        .timer(TokioTimer::new())
        .build(https))
}

/// Whether `error` (from the client) comes from the connector, and which.
pub(crate) fn connect_error<'a>(
    error: &'a (dyn std::error::Error + 'static),
) -> Option<&'a ConnectError> {
    let mut current: Option<&'a (dyn std::error::Error + 'static)> = Some(error);
    while let Some(error) = current {
        if let Some(found) = error.downcast_ref::<ConnectError>() {
            return Some(found);
        }
        current = error.source();
    }
    None
}

/// The certificates of a PEM text (unparsable blocks skipped): extra roots for
/// [`TerminatorConfig::origin_extra_roots`], or roots a test client trusts.
pub fn roots_from_pem(pem: &str) -> Vec<CertificateDer<'static>> {
    use rustls::pki_types::pem::PemObject as _;
    CertificateDer::pem_slice_iter(pem.as_bytes())
        .filter_map(std::result::Result::ok)
        .collect()
}

/// A body that fails when the origin sends nothing for `idle` while the client waits for more.
pub(crate) struct IdleBody<B> {
    inner: B,
    idle: Duration,
    sleep: Pin<Box<Sleep>>,
    /// A frame was handed out since the timer was last set: the next poll is a new wait.
    delivered: bool,
}

impl<B> IdleBody<B> {
    pub(crate) fn new(inner: B, idle: Duration) -> Self {
        IdleBody {
            inner,
            idle,
            sleep: Box::pin(tokio::time::sleep(idle)),
            delivered: false,
        }
    }
}

impl<B> Body for IdleBody<B>
where
    B: Body<Data = Bytes> + Unpin,
    B::Error: Into<BoxError>,
{
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<std::result::Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        if this.delivered {
            // Time spent while the client was slow to read is not the origin's silence.
            this.sleep.as_mut().reset(Instant::now() + this.idle);
            this.delivered = false;
        }
        match Pin::new(&mut this.inner).poll_frame(cx) {
            Poll::Ready(Some(Ok(frame))) => {
                this.delivered = true;
                Poll::Ready(Some(Ok(frame)))
            }
            Poll::Ready(Some(Err(error))) => Poll::Ready(Some(Err(error.into()))),
            Poll::Ready(None) => Poll::Ready(None),
            Poll::Pending => match this.sleep.as_mut().poll(cx) {
                Poll::Ready(()) => Poll::Ready(Some(Err(Box::new(io::Error::new(
                    io::ErrorKind::TimedOut,
                    "the origin sent nothing for too long",
                ))))),
                Poll::Pending => Poll::Pending,
            },
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.inner.size_hint()
    }
}

/// Boxes an origin body with its idle limit.
pub(crate) fn limited(body: Incoming, idle: Duration) -> crate::proxy::ProxyBody {
    IdleBody::new(body, idle).boxed_unsync()
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use async_trait::async_trait;
    use edgecert_core::ports::CaaRecord;
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    /// Answers every name with fixed addresses.
    struct FixedResolver(Vec<IpAddr>);

    #[async_trait]
    impl DnsResolver for FixedResolver {
        async fn txt(&self, _: &str) -> edgecert_core::Result<Vec<String>> {
            Ok(vec![])
        }
        async fn ip_addresses(&self, _: &str) -> edgecert_core::Result<Vec<IpAddr>> {
            Ok(self.0.clone())
        }
        async fn cname(&self, _: &str) -> edgecert_core::Result<Option<String>> {
            Ok(None)
        }
        async fn caa(&self, _: &str) -> edgecert_core::Result<Vec<CaaRecord>> {
            Ok(vec![])
        }
    }

    fn connector(addresses: Vec<IpAddr>, policy: OriginPolicy) -> GuardedConnector {
        GuardedConnector {
            resolver: Arc::new(FixedResolver(addresses)),
            policy,
            timeout: Duration::from_secs(2),
            metrics: Arc::new(Metrics::default()),
        }
    }

    #[tokio::test]
    async fn refused_addresses_are_never_connected_to() {
        let strict = OriginPolicy::default();
        for uri in [
            "http://127.0.0.1:9/",
            "http://169.254.169.254/",
            "http://[::ffff:a9fe:a9fe]/",
            "http://[::1]:9/",
            "http://10.1.2.3/",
            // IPv6 forms that carry an IPv4 address, and special-purpose IPv4 blocks: the
            // connector judges them with the core's registry table (issue 12, defect 3).
            "http://[64:ff9b::a9fe:a9fe]/",
            "http://[2002:a9fe:a9fe::1]/",
            "http://[::a9fe:a9fe]/",
            "http://[64:ff9b::a00:1]/",
            "http://198.18.0.1/",
            "http://192.0.0.1/",
        ] {
            let error = connector(vec![], strict)
                .connect(uri.parse().unwrap())
                .await
                .unwrap_err();
            assert!(
                matches!(error, ConnectError::Refused { .. }),
                "{uri}: {error}"
            );
        }
        let rebinding = connector(
            vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ],
            strict,
        );
        let error = rebinding
            .clone()
            .connect("http://rebind.example.com/".parse().unwrap())
            .await
            .unwrap_err();
        assert!(
            matches!(
                error,
                ConnectError::Refused {
                    reason: "loopback",
                    ..
                }
            ),
            "{error}"
        );
        assert_eq!(rebinding.metrics.counter(ORIGIN_REFUSED, "loopback"), 2);

        // A name that resolves to NAT64 or 6to4 forms of internal addresses is refused too,
        // even where loopback origins are allowed: a translator's loopback is not ours.
        let local = OriginPolicy {
            allow_loopback: true,
            allow_private: false,
        };
        let embedded = connector(
            vec![
                "64:ff9b::7f00:1".parse().unwrap(),
                "2002:a9fe:a9fe::1".parse().unwrap(),
            ],
            local,
        );
        let error = embedded
            .clone()
            .connect("http://rebind.example.com/".parse().unwrap())
            .await
            .unwrap_err();
        assert!(matches!(error, ConnectError::Refused { .. }), "{error}");
        assert_eq!(embedded.metrics.counter(ORIGIN_REFUSED, "loopback"), 1);
        assert_eq!(
            embedded.metrics.counter(ORIGIN_REFUSED, "ipv6-transition"),
            1
        );
    }

    #[tokio::test]
    async fn allowed_addresses_are_tried_and_refused_ones_skipped() {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let local = OriginPolicy {
            allow_loopback: true,
            allow_private: false,
        };
        let mixed = connector(
            vec![
                "169.254.169.254".parse().unwrap(),
                IpAddr::V4(Ipv4Addr::LOCALHOST),
            ],
            local,
        );
        let uri: Uri = format!("http://origin.example.com:{port}/")
            .parse()
            .unwrap();
        assert!(mixed.connect(uri).await.is_ok());
    }
}

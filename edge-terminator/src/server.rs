//! [`Terminator`]: the listeners, the per-connection pipeline and graceful shutdown.
//!
//! One HTTPS connection, with a deadline on every phase (after tokio-rustls'
//! `examples/server.rs`):
//!
//! 1. the ClientHello, read by `LazyConfigAcceptor` within `client_hello_timeout`;
//! 2. a server name the cache does not hold goes through on-demand handling (bounded by
//!    `on_demand_wait`; refusals fail fast);
//! 3. the handshake proper within `handshake_timeout`, the certificate chosen synchronously
//!    from memory;
//! 4. HTTP/1.1 (headers within `header_read_timeout`, which also bounds a keep-alive wait) or
//!    h2 by ALPN; `idle_timeout` closes a connection silent both ways.
//!
//! Each listener admits at most `max_connections` connections; more are closed at once. On
//! shutdown the listeners stop accepting, open connections finish their requests
//! (`graceful_shutdown`), and the terminator waits up to `shutdown_grace` for them.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use edgecert_core::ports::Issuance;
use edgecert_core::usecases::Services;
use hyper::server::conn::{http1, http2};
use hyper::service::service_fn;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use rustls::server::ServerConfig;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinHandle;
use tokio_rustls::LazyConfigAcceptor;

use crate::admin;
use crate::cache::normalize_name;
use crate::config::TerminatorConfig;
use crate::error::{Result, TerminatorError};
use crate::http01;
use crate::io::IdleTimeout;
use crate::metrics::{CONNECTIONS_REJECTED, HANDSHAKES};
use crate::on_demand::OnDemand;
use crate::origin;
use crate::proxy::{ClientConnection, Proxy};
use crate::refresh::Refresher;
use crate::shared::Shared;
use crate::tls::{self, ALPN_H2};

/// Serves a hyper connection until it ends, or shuts it down gracefully (in-flight requests
/// finish, no new ones) once `shutdown` fires. A macro because hyper's connection types share
/// `graceful_shutdown` by name only.
macro_rules! drive {
    ($connection:expr, $shutdown:expr, $peer:expr) => {{
        let mut shutdown = $shutdown;
        let connection = $connection;
        tokio::pin!(connection);
        tokio::select! {
            result = connection.as_mut() => {
                if let Err(error) = result {
                    tracing::debug!(peer = ?$peer, %error, "connection ended with an error");
                }
            }
            () = stopping(&mut shutdown) => {
                connection.as_mut().graceful_shutdown();
                if let Err(error) = connection.await {
                    tracing::debug!(peer = ?$peer, %error, "connection ended during shutdown");
                }
            }
        }
    }};
}

/// Longest wait to send the alert of a refused handshake.
const REFUSAL_DEADLINE: Duration = Duration::from_secs(2);
/// Pause after a failed `accept` (out of file descriptors), so the loop does not spin.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(50);

/// The sockets a terminator serves, bound by the caller (so tests and the local runner choose
/// ports, and Pebble's `httpPort` can be the HTTP listener's).
#[derive(Debug)]
pub struct Listeners {
    /// TLS: the reverse proxy.
    pub https: TcpListener,
    /// Plain HTTP: ACME HTTP-01 answers and redirects to HTTPS.
    pub http: TcpListener,
    /// `/healthz` and `/metrics`; `None` to serve neither.
    pub admin: Option<TcpListener>,
}

impl Listeners {
    /// Binds the three addresses (`admin` optional).
    pub async fn bind(
        https: SocketAddr,
        http: SocketAddr,
        admin: Option<SocketAddr>,
    ) -> std::io::Result<Listeners> {
        Ok(Listeners {
            https: TcpListener::bind(https).await?,
            http: TcpListener::bind(http).await?,
            admin: match admin {
                Some(address) => Some(TcpListener::bind(address).await?),
                None => None,
            },
        })
    }
}

/// What every connection task needs.
struct Edge {
    shared: Arc<Shared>,
    on_demand: Arc<OnDemand>,
    proxy: Arc<Proxy>,
    tls: Arc<ServerConfig>,
}

/// Which listener a connection came from.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Https,
    Http,
    Admin,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Https => "https",
            Kind::Http => "http",
            Kind::Admin => "admin",
        }
    }
}

/// A running edge terminator.
///
/// ```no_run
/// # async fn example(
/// #     services: edgecert_core::usecases::Services,
/// #     issuance: std::sync::Arc<dyn edgecert_core::ports::Issuance>,
/// # ) -> Result<(), Box<dyn std::error::Error>> {
/// use edgecert_terminator::{Listeners, Terminator, TerminatorConfig};
/// let listeners = Listeners::bind(
///     "127.0.0.1:8443".parse()?,
///     "127.0.0.1:5002".parse()?,
///     Some("127.0.0.1:9090".parse()?),
/// )
/// .await?;
/// let terminator =
///     Terminator::start(services, issuance, TerminatorConfig::default(), listeners).await?;
/// // ... until it is time to stop:
/// terminator.shutdown().await;
/// # Ok(()) }
/// ```
pub struct Terminator {
    shared: Arc<Shared>,
    https_addr: SocketAddr,
    http_addr: SocketAddr,
    admin_addr: Option<SocketAddr>,
    shutdown: watch::Sender<bool>,
    limits: Vec<(Arc<Semaphore>, usize)>,
    tasks: Vec<JoinHandle<()>>,
}

impl Terminator {
    /// Starts serving on `listeners`: nothing is loaded up front; a name's route and
    /// certificate are loaded from `services.store` and `services.vault` on its first handshake
    /// and kept, within `config.cache_memory_budget`, while the change feeds keep them current;
    /// whitelisted names with no certificate yet are issued through `issuance`; origins are
    /// reached under
    /// `services.origin_policy`, resolved by `services.resolver`.
    ///
    /// Must be called inside a Tokio runtime. Fails only on a configuration rustls refuses or
    /// a listener whose address cannot be read.
    pub async fn start(
        services: Services,
        issuance: Arc<dyn Issuance>,
        config: TerminatorConfig,
        listeners: Listeners,
    ) -> Result<Terminator> {
        let shared = Arc::new(Shared::new(services, config));
        let tls = tls::server_config(Arc::clone(&shared.cache), &shared.config)?;
        let client = origin::client(
            &shared.config,
            Arc::clone(&shared.services.resolver),
            shared.services.origin_policy,
            Arc::clone(&shared.metrics),
        )?;
        let edge = Arc::new(Edge {
            on_demand: Arc::new(OnDemand::new(Arc::clone(&shared), issuance)),
            proxy: Arc::new(Proxy::new(Arc::clone(&shared), client)),
            tls,
            shared: Arc::clone(&shared),
        });
        let address = |listener: &TcpListener, name: &'static str| {
            listener
                .local_addr()
                .map_err(|source| TerminatorError::Listener {
                    listener: name,
                    source,
                })
        };
        let https_addr = address(&listeners.https, "https")?;
        let http_addr = address(&listeners.http, "http")?;
        let admin_addr = match &listeners.admin {
            Some(listener) => Some(address(listener, "admin")?),
            None => None,
        };
        let (shutdown, watcher) = watch::channel(false);
        let max = shared.config.max_connections;
        let mut limits = Vec::new();
        let mut tasks = vec![tokio::spawn(
            Refresher::new(Arc::clone(&shared)).run(watcher.clone()),
        )];
        let mut serve = |listener: TcpListener, kind: Kind, max: usize| {
            let limit = Arc::new(Semaphore::new(max));
            limits.push((Arc::clone(&limit), max));
            tasks.push(tokio::spawn(accept_loop(
                listener,
                kind,
                Arc::clone(&edge),
                watcher.clone(),
                limit,
            )));
        };
        serve(listeners.https, Kind::Https, max);
        serve(listeners.http, Kind::Http, max);
        if let Some(admin) = listeners.admin {
            // A few scrapers and health checks; never worth the whole budget.
            serve(admin, Kind::Admin, 64);
        }
        tracing::info!(
            https = %https_addr,
            http = %http_addr,
            admin = %admin_addr.map(|address| address.to_string()).unwrap_or_default(),
            "edge terminator listening"
        );
        Ok(Terminator {
            shared,
            https_addr,
            http_addr,
            admin_addr,
            shutdown,
            limits,
            tasks,
        })
    }

    /// Where the HTTPS listener is.
    pub fn https_addr(&self) -> SocketAddr {
        self.https_addr
    }

    /// Where the HTTP listener is (give its port to Pebble as `httpPort`).
    pub fn http_addr(&self) -> SocketAddr {
        self.http_addr
    }

    /// Where the admin listener is, if any.
    pub fn admin_addr(&self) -> Option<SocketAddr> {
        self.admin_addr
    }

    /// Whether the first read of the store's change feeds finished (what `/healthz` waits
    /// for; it does not grow with the number of domains).
    pub fn is_loaded(&self) -> bool {
        self.shared.loaded.load(Ordering::Relaxed)
    }

    /// Waits until the first read of the change feeds finished, at most `timeout`; `false` if
    /// it did not.
    pub async fn wait_loaded(&self, timeout: Duration) -> bool {
        let deadline = tokio::time::Instant::now() + timeout;
        while !self.is_loaded() {
            if tokio::time::Instant::now() >= deadline {
                return false;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        true
    }

    /// Certificates held in memory (those of recently used names).
    pub fn certificates_cached(&self) -> usize {
        self.shared.cache.sizes().0
    }

    /// What `/metrics` would answer now.
    pub fn metrics_text(&self) -> String {
        self.shared.metrics.render(self.shared.gauges())
    }

    /// Stops accepting, lets open connections finish their requests, and waits for them up to
    /// `shutdown_grace`; then stops the background tasks.
    pub async fn shutdown(self) {
        let _ = self.shutdown.send(true);
        let grace = self.shared.config.shutdown_grace;
        let drained = tokio::time::timeout(grace, async {
            for (limit, max) in &self.limits {
                let permits = u32::try_from(*max).unwrap_or(u32::MAX);
                // All permits back means every connection task ended.
                let _ = limit.acquire_many(permits).await;
            }
        })
        .await;
        if drained.is_err() {
            tracing::warn!(
                grace_secs = grace.as_secs(),
                "connections still open at the end of the shutdown grace period"
            );
        }
        for task in self.tasks {
            task.abort();
        }
        tracing::info!("edge terminator stopped");
    }
}

/// Resolves when `shutdown` is (or becomes) true, or its sender is gone.
async fn stopping(shutdown: &mut watch::Receiver<bool>) {
    let _ = shutdown.wait_for(|stop| *stop).await;
}

async fn accept_loop(
    listener: TcpListener,
    kind: Kind,
    edge: Arc<Edge>,
    mut shutdown: watch::Receiver<bool>,
    limit: Arc<Semaphore>,
) {
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    tracing::warn!(listener = kind.as_str(), %error, "accept failed");
                    tokio::time::sleep(ACCEPT_BACKOFF).await;
                    continue;
                }
            },
            () = stopping(&mut shutdown) => return,
        };
        let Ok(permit) = Arc::clone(&limit).try_acquire_owned() else {
            edge.shared
                .metrics
                .count(CONNECTIONS_REJECTED, "listener", kind.as_str());
            tracing::debug!(listener = kind.as_str(), %peer, "connection limit reached");
            drop(stream);
            continue;
        };
        let _ = stream.set_nodelay(true);
        let edge = Arc::clone(&edge);
        let shutdown = shutdown.clone();
        tokio::spawn(async move {
            edge.shared.metrics.connections(1);
            match kind {
                Kind::Https => serve_https(stream, peer, &edge, shutdown).await,
                Kind::Http => serve_http(stream, &edge, shutdown).await,
                Kind::Admin => serve_admin(stream, &edge, shutdown).await,
            }
            edge.shared.metrics.connections(-1);
            drop(permit);
        });
    }
}

async fn serve_https(
    stream: TcpStream,
    peer: SocketAddr,
    edge: &Edge,
    shutdown: watch::Receiver<bool>,
) {
    let config = &edge.shared.config;
    let metrics = &edge.shared.metrics;
    let acceptor = LazyConfigAcceptor::new(rustls::server::Acceptor::default(), stream);
    let start = match tokio::time::timeout(config.client_hello_timeout, acceptor).await {
        Ok(Ok(start)) => start,
        Ok(Err(error)) => {
            metrics.count(HANDSHAKES, "outcome", "bad_client_hello");
            tracing::debug!(%peer, %error, "unreadable ClientHello");
            return;
        }
        Err(_) => {
            metrics.count(HANDSHAKES, "outcome", "client_hello_timeout");
            tracing::debug!(%peer, "no ClientHello in time");
            return;
        }
    };
    let server_name = start.client_hello().server_name().map(normalize_name);
    let refusal = match &server_name {
        None => Some("no_sni"),
        Some(name) => edge
            .on_demand
            .obtain(name, peer.ip())
            .await
            .err()
            .map(|refusal| refusal.as_str()),
    };
    if let Some(failure) = refusal {
        metrics.count(HANDSHAKES, "outcome", failure);
        tracing::debug!(
            %peer,
            sni = server_name.as_deref().unwrap_or(""),
            failure,
            "handshake refused"
        );
        // The resolver finds no certificate for this name, so rustls answers with an alert
        // rather than the connection just dropping.
        let _ =
            tokio::time::timeout(REFUSAL_DEADLINE, start.into_stream(Arc::clone(&edge.tls))).await;
        return;
    }
    let server_name = server_name.unwrap_or_default();
    let tls = match tokio::time::timeout(
        config.handshake_timeout,
        start.into_stream(Arc::clone(&edge.tls)),
    )
    .await
    {
        Ok(Ok(tls)) => tls,
        Ok(Err(error)) => {
            metrics.count(HANDSHAKES, "outcome", "handshake_failed");
            tracing::debug!(%peer, sni = %server_name, %error, "handshake failed");
            return;
        }
        Err(_) => {
            metrics.count(HANDSHAKES, "outcome", "handshake_timeout");
            tracing::debug!(%peer, sni = %server_name, "handshake not finished in time");
            return;
        }
    };
    metrics.count(HANDSHAKES, "outcome", "ok");
    let h2 = tls.get_ref().1.alpn_protocol() == Some(ALPN_H2);
    let io = TokioIo::new(IdleTimeout::new(tls, config.idle_timeout));
    let owner = edge
        .shared
        .cache
        .route(&server_name)
        .map(|route| route.owner);
    let connection = Arc::new(ClientConnection {
        peer,
        server_name,
        owner,
    });
    let proxy = Arc::clone(&edge.proxy);
    let service =
        service_fn(move |request| Arc::clone(&proxy).handle(request, Arc::clone(&connection)));
    if h2 {
        let mut builder = http2::Builder::new(TokioExecutor::new());
        builder
            .timer(TokioTimer::new())
            .max_concurrent_streams(config.max_concurrent_streams)
            .max_header_list_size(u32::try_from(coarse_head_limit(config)).unwrap_or(u32::MAX));
        let connection = builder.serve_connection(io, service);
        drive!(connection, shutdown, peer);
    } else {
        let connection = http1_builder(config)
            .serve_connection(io, service)
            .with_upgrades();
        drive!(connection, shutdown, peer);
    }
}

async fn serve_http(stream: TcpStream, edge: &Edge, shutdown: watch::Receiver<bool>) {
    let config = &edge.shared.config;
    let peer = stream.peer_addr().ok();
    let io = TokioIo::new(IdleTimeout::new(stream, config.idle_timeout));
    let shared = Arc::clone(&edge.shared);
    let service = service_fn(move |request| {
        let shared = Arc::clone(&shared);
        async move { Ok::<_, std::convert::Infallible>(http01::answer(shared, request).await) }
    });
    let connection = http1_builder(config).serve_connection(io, service);
    drive!(connection, shutdown, peer);
}

async fn serve_admin(stream: TcpStream, edge: &Edge, shutdown: watch::Receiver<bool>) {
    let config = &edge.shared.config;
    let peer = stream.peer_addr().ok();
    let io = TokioIo::new(IdleTimeout::new(stream, config.idle_timeout));
    let shared = Arc::clone(&edge.shared);
    let issuance = edge.on_demand.issuance();
    let service = service_fn(move |request| {
        let (shared, issuance) = (Arc::clone(&shared), Arc::clone(&issuance));
        async move {
            let response = admin::answer(&shared, issuance.as_ref(), &request).await;
            Ok::<_, std::convert::Infallible>(response)
        }
    });
    let connection = http1_builder(config).serve_connection(io, service);
    drive!(connection, shutdown, peer);
}

fn http1_builder(config: &TerminatorConfig) -> http1::Builder {
    let mut builder = http1::Builder::new();
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(config.header_read_timeout)
        .max_buf_size(coarse_head_limit(config).max(8192));
    builder
}

/// The bound hyper (and h2) put on a request head: twice `max_header_bytes`. The exact limit is
/// `crate::request_head`'s, on every head hyper parsed; hyper's own is only the backstop
/// against unbounded heads, and is set above the exact one so that a head somewhat over the
/// limit is read whole and answered `431` cleanly, rather than cut off mid-send (a connection
/// closed with unread bytes is reset, and the client may never see the answer).
fn coarse_head_limit(config: &TerminatorConfig) -> usize {
    config.max_header_bytes.saturating_mul(2)
}

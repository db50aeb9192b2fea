//! The local API server against clients that hold connections open without sending a request
//! (issue 12, defect 9: 50 slowloris connections stayed open past 40 s): each is closed within
//! its bound while normal requests keep being answered, and connections past the cap are
//! closed at once. The server runs on a real loopback socket over a real SQLite store.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgecert_api::ApiState;
use edgecert_core::PlanCatalog;
use edgecert_core::model::ApiKeyHash;
use edgecert_core::origin::OriginPolicy;
use edgecert_core::ports::{DnsProviders, SystemClock};
use edgecert_core::usecases::{EdgeSettings, Services};
use edgecert_dns::HickoryResolver;
use edgecert_local::api_server::{self, ConnectionLimits};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinSet;

/// The API on a free loopback port over a fresh SQLite file; stops when dropped.
struct Server {
    addr: SocketAddr,
    _shutdown: watch::Sender<bool>,
    _dir: tempfile::TempDir,
}

impl Server {
    async fn start(limits: Option<ConnectionLimits>) -> Server {
        let dir = tempfile::tempdir().unwrap();
        let database = edgecert_embedded::Database::open(dir.path().join("edgecert.db")).unwrap();
        let services = Services {
            store: Arc::new(database.store()),
            vault: Arc::new(database.vault()),
            // Nothing here resolves names; a closed port answers nothing.
            resolver: Arc::new(HickoryResolver::with_name_server(SocketAddr::from((
                Ipv4Addr::LOCALHOST,
                9,
            )))),
            clock: Arc::new(SystemClock),
            plans: PlanCatalog::default(),
            edge: EdgeSettings {
                hostname: "edge.edgecert-operator.com".to_owned(),
                addresses: vec![],
            },
            origin_policy: OriginPolicy::default(),
            dns_providers: DnsProviders::default(),
            issuance: None,
        };
        let state = Arc::new(ApiState {
            services,
            admin_key: Some(ApiKeyHash::of("admin-key-of-the-slow-client-tests")),
        });
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (shutdown, watcher) = watch::channel(false);
        match limits {
            None => tokio::spawn(api_server::serve(listener, state, watcher)),
            Some(limits) => tokio::spawn(api_server::serve_with_limits(
                listener, state, watcher, limits,
            )),
        };
        Server {
            addr,
            _shutdown: shutdown,
            _dir: dir,
        }
    }

    /// `GET /healthz` over a fresh connection, within 5 s.
    async fn healthy(&self) -> bool {
        let url = format!("http://{}/healthz", self.addr);
        let request = client().get(url).timeout(Duration::from_secs(5)).send();
        matches!(request.await, Ok(response) if response.status() == 200)
    }

    /// An API request through the gateway (an unknown key: 401), within 5 s.
    async fn api_answers(&self) -> bool {
        let url = format!("http://{}/v1/limits", self.addr);
        let request = client()
            .get(url)
            .bearer_auth("eck_unknown")
            .timeout(Duration::from_secs(5))
            .send();
        matches!(request.await, Ok(response) if response.status() == 401)
    }
}

fn client() -> reqwest::Client {
    edgecert_integration::services::http_client(&[]).expect("http client")
}

/// How a slow client behaves.
#[derive(Debug, Clone, Copy)]
enum Slow {
    /// Connects and sends nothing.
    Silent,
    /// Sends half a request head, then one byte of it every 300 ms, never finishing.
    DrippingHead,
    /// Sends a whole head announcing a body, then one body byte every 300 ms.
    DrippingBody,
}

/// Opens a slow connection and waits until the server closes it, at most `bound`; how long
/// it stayed open, or `Err` with what happened.
async fn hold_open(addr: SocketAddr, slow: Slow, bound: Duration) -> Result<Duration, String> {
    let opened = Instant::now();
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|error| format!("{slow:?}: connect: {error}"))?;
    let (mut reader, mut writer) = stream.into_split();
    let drip = tokio::spawn(async move {
        let start: &[u8] = match slow {
            Slow::Silent => return,
            Slow::DrippingHead => b"GET /healthz HTTP/1.1\r\nhost: 127.0.0.1\r\nx-slow: ",
            Slow::DrippingBody => {
                b"POST /v1/accounts HTTP/1.1\r\nhost: 127.0.0.1\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{"
            }
        };
        if writer.write_all(start).await.is_err() {
            return;
        }
        loop {
            tokio::time::sleep(Duration::from_millis(300)).await;
            if writer.write_all(b"a").await.is_err() {
                return;
            }
        }
    });
    let mut buffer = [0u8; 1024];
    let closed = tokio::time::timeout(bound, async {
        loop {
            match reader.read(&mut buffer).await {
                Ok(0) | Err(_) => return,
                // A 408 or a 431 may come before the close.
                Ok(_) => {}
            }
        }
    })
    .await;
    drip.abort();
    match closed {
        Ok(()) => Ok(opened.elapsed()),
        Err(_) => Err(format!(
            "{slow:?}: still open after {:?} (bound {bound:?})",
            opened.elapsed()
        )),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_slowloris_connections_are_closed_while_requests_are_served() {
    // The server as the local stack runs it: the default limits.
    let limits = ConnectionLimits::default();
    let server = Server::start(None).await;
    assert!(server.healthy().await, "the API answers before the test");
    // A slow client is closed once its head is overdue; a little margin for a loaded machine.
    let bound = limits.header_read_timeout + Duration::from_secs(5);
    let mut slow = JoinSet::new();
    for index in 0..50 {
        let kind = if index % 2 == 0 {
            Slow::Silent
        } else {
            Slow::DrippingHead
        };
        slow.spawn(hold_open(server.addr, kind, bound));
    }
    // While the 50 are open, requests are served.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert!(
        server.healthy().await,
        "a request while 50 slow clients are connected"
    );
    assert!(
        server.api_answers().await,
        "an API request while 50 slow clients are connected"
    );
    let mut longest = Duration::ZERO;
    while let Some(result) = slow.join_next().await {
        let open_for = result
            .unwrap()
            .unwrap_or_else(|failure| panic!("{failure}"));
        longest = longest.max(open_for);
    }
    assert!(
        longest >= limits.header_read_timeout - Duration::from_millis(500),
        "slow clients were closed after {longest:?}, before their header timeout"
    );
    assert!(
        server.healthy().await,
        "the API answers after the slow clients"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dripping_body_is_cut_off_and_connections_past_the_cap_are_closed() {
    let limits = ConnectionLimits {
        header_read_timeout: Duration::from_secs(2),
        body_read_timeout: Duration::from_secs(2),
        idle_timeout: Duration::from_secs(3),
        max_connections: 4,
    };
    let server = Server::start(Some(limits)).await;
    assert!(server.healthy().await);

    // A body sent a byte at a time is answered 408 and closed within its timeout.
    let open_for = hold_open(
        server.addr,
        Slow::DrippingBody,
        limits.body_read_timeout + Duration::from_secs(4),
    )
    .await
    .unwrap_or_else(|failure| panic!("{failure}"));
    assert!(open_for >= limits.body_read_timeout - Duration::from_millis(500));

    // Four silent connections take every slot; a fifth is closed at once.
    let mut silent = JoinSet::new();
    for _ in 0..limits.max_connections {
        silent.spawn(hold_open(
            server.addr,
            Slow::Silent,
            limits.header_read_timeout + Duration::from_secs(4),
        ));
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    let refused = hold_open(server.addr, Slow::Silent, Duration::from_secs(1))
        .await
        .unwrap_or_else(|failure| panic!("past the cap: {failure}"));
    assert!(refused < Duration::from_secs(1));
    while let Some(result) = silent.join_next().await {
        result
            .unwrap()
            .unwrap_or_else(|failure| panic!("{failure}"));
    }
    // Once they are gone, their slots serve requests again.
    assert!(
        server.healthy().await,
        "the API answers once the slots are free"
    );
}

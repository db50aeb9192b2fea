//! What the terminator tests share: a SQLite store and vault with an account ([`Env`]), a
//! test CA for certificates that need no ACME ([`TestCa`]), a test origin, fakes, TLS and HTTP
//! clients speaking to the terminator over real loopback sockets, and a Pebble per test binary
//! for the tests that issue nothing but need a CA client or a DNS server.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod fakes;
pub mod origin;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use edgecert_core::model::{Account, Certificate, Domain, KeyType, SecretString};
use edgecert_core::origin::OriginPolicy;
use edgecert_core::ports::{CertificateMaterial, DnsResolver, Issuance, Store, SystemClock, Vault};
use edgecert_core::usecases::Services;
use edgecert_core::{AccountId, Hostname};
// Not every test binary that includes this module uses it.
#[allow(unused_imports)]
pub use edgecert_integration::fixtures::NoIssuance;
use edgecert_integration::fixtures::install_issued_certificate;
use edgecert_integration::{Pebble, PebbleOptions};
use edgecert_terminator::{Listeners, Terminator, TerminatorConfig};
use edgecert_testkit::{Adapters, elite_account, services_over};
use http::{HeaderMap, Request, StatusCode};
use http_body_util::combinators::UnsyncBoxBody;
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use rand::Rng as _;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use rustls::pki_types::{CertificateDer, ServerName};
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::OnceCell;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;

/// Request bodies of the test clients.
pub type ClientBody = UnsyncBoxBody<Bytes, Box<dyn std::error::Error + Send + Sync>>;

static SHARED_PEBBLE: OnceCell<Pebble> = OnceCell::const_new();

/// A Pebble (and its challtestsrv) for tests that do not issue through it.
pub async fn shared_pebble() -> &'static Pebble {
    SHARED_PEBBLE
        .get_or_init(|| async { Pebble::start(PebbleOptions::default()).await.unwrap() })
        .await
}

/// A random DNS name under example.com, so tests never share names.
pub fn unique_name(prefix: &str) -> String {
    let random: u64 = rand::thread_rng().r#gen();
    format!("{prefix}-{random:016x}.example.com")
}

/// Short timeouts and a fast refresh, so tests run in seconds.
pub fn test_config() -> TerminatorConfig {
    let mut config = TerminatorConfig::default();
    config.client_hello_timeout = Duration::from_secs(1);
    config.handshake_timeout = Duration::from_secs(5);
    config.header_read_timeout = Duration::from_secs(1);
    config.idle_timeout = Duration::from_secs(10);
    config.refresh_interval = Duration::from_millis(200);
    config.change_overlap = Duration::from_secs(5);
    config.origin_connect_timeout = Duration::from_secs(2);
    config.origin_header_timeout = Duration::from_secs(5);
    config.shutdown_grace = Duration::from_secs(2);
    config.feed_page_size = 7;
    config
}

/// A CA for certificates seeded straight into the store and vault.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub root: CertificateDer<'static>,
}

impl TestCa {
    pub fn new() -> TestCa {
        let key = KeyPair::generate().unwrap();
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "EdgeCert terminator test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let root = params.self_signed(&key).unwrap();
        TestCa {
            root: root.der().clone(),
            issuer: Issuer::new(params, key),
        }
    }

    /// Chain and key PEM of a leaf for `names`.
    pub fn leaf(&self, names: &[String]) -> (String, String) {
        let key = KeyPair::generate().unwrap();
        let params = CertificateParams::new(names.to_vec()).unwrap();
        let leaf = params.signed_by(&key, &self.issuer).unwrap();
        (leaf.pem(), key.serialize_pem())
    }
}

/// A SQLite store and vault with one Elite account, and services over them (the shared
/// `edgecert_testkit` pieces, with the system clock: the edge reads real time).
pub struct Env {
    pub store: Arc<dyn Store>,
    pub vault: Arc<dyn Vault>,
    pub account: Account,
    pub ca: TestCa,
    _adapters: Adapters,
}

impl Env {
    pub async fn new() -> Env {
        Env::in_dir(tempfile::tempdir().unwrap()).await
    }

    /// An env whose SQLite file is on tmpfs (`/dev/shm`) when there is one, for tests that
    /// seed thousands of items: every commit is an fsync on a disk.
    pub async fn on_tmpfs() -> Env {
        let shm = std::path::Path::new("/dev/shm");
        let dir = if shm.is_dir() {
            tempfile::Builder::new()
                .prefix("edgecert-terminator-test-")
                .tempdir_in(shm)
                .unwrap()
        } else {
            tempfile::tempdir().unwrap()
        };
        Env::in_dir(dir).await
    }

    async fn in_dir(dir: tempfile::TempDir) -> Env {
        let adapters = Adapters::sqlite_in(dir);
        let account = elite_account(
            adapters.store.as_ref(),
            "Terminator tests",
            OffsetDateTime::now_utc(),
        )
        .await;
        Env {
            store: adapters.store.clone(),
            vault: adapters.vault.clone(),
            account,
            ca: TestCa::new(),
            _adapters: adapters,
        }
    }

    /// Services over `store` and `vault` (this env's, or fakes around them).
    pub fn services(
        &self,
        store: Arc<dyn Store>,
        vault: Arc<dyn Vault>,
        resolver: Arc<dyn DnsResolver>,
        origin_policy: OriginPolicy,
    ) -> Services {
        Env::services_over(store, vault, resolver, origin_policy)
    }

    /// Services over any `store` and `vault`, with the tests' edge settings.
    pub fn services_over(
        store: Arc<dyn Store>,
        vault: Arc<dyn Vault>,
        resolver: Arc<dyn DnsResolver>,
        origin_policy: OriginPolicy,
    ) -> Services {
        services_over(store, vault, resolver, Arc::new(SystemClock), origin_policy)
    }

    /// Whitelists `hostname` (step `waiting_dns`, no certificate), as the API would.
    pub async fn whitelist(&self, hostname: &str, origin_url: &str) -> Domain {
        self.whitelist_for(&self.account.id, hostname, origin_url)
            .await
    }

    /// Whitelists `hostname` for `account` (step `waiting_dns`, no certificate).
    pub async fn whitelist_for(
        &self,
        account: &AccountId,
        hostname: &str,
        origin_url: &str,
    ) -> Domain {
        self.whitelist_within(account, hostname, origin_url, 1000)
            .await
    }

    /// Whitelists `hostname` for `account`, whose domain count may reach `max_domains`.
    async fn whitelist_within(
        &self,
        account: &AccountId,
        hostname: &str,
        origin_url: &str,
        max_domains: u32,
    ) -> Domain {
        let domain = Domain::whitelisted(
            account.clone(),
            Hostname::parse_domain(hostname).unwrap(),
            origin_url.to_owned(),
            false,
            OffsetDateTime::now_utc(),
        );
        self.store
            .create_domain(&domain, max_domains)
            .await
            .unwrap();
        domain
    }

    /// A whitelisted, active `hostname` whose managed certificate (from the test CA) is issued
    /// and stored.
    pub async fn seed_issued(&self, hostname: &str, origin_url: &str) -> (Domain, Certificate) {
        let domain = self.whitelist(hostname, origin_url).await;
        self.seed_certificate(domain).await
    }

    /// Gives `domain` an issued managed certificate from the test CA and makes it active.
    pub async fn seed_certificate(&self, domain: Domain) -> (Domain, Certificate) {
        let (chain, key) = self.ca.leaf(&[domain.hostname.to_string()]);
        self.seed_certificate_with(domain, &chain, &key).await
    }

    /// Whitelists every name of `hostnames`, active, each with an issued managed certificate
    /// of its own in the store and the vault, all made of the same chain and key (a leaf
    /// covering every name, e.g. a wildcard): thousands of names without thousands of keys.
    pub async fn seed_many_sharing(
        &self,
        hostnames: &[String],
        origin_url: &str,
        chain_pem: &str,
        key_pem: &str,
    ) {
        use futures::StreamExt as _;
        // A few in flight: the store's connection thread never waits for the next write.
        futures::stream::iter(hostnames)
            .for_each_concurrent(8, |hostname| async move {
                let domain = self
                    .whitelist_within(&self.account.id, hostname, origin_url, u32::MAX)
                    .await;
                self.seed_certificate_with(domain, chain_pem, key_pem).await;
            })
            .await;
    }

    /// Gives `domain` an issued managed certificate made of `chain_pem` and `key_pem`.
    pub async fn seed_certificate_with(
        &self,
        domain: Domain,
        chain_pem: &str,
        key_pem: &str,
    ) -> (Domain, Certificate) {
        let material = CertificateMaterial {
            chain_pem: Some(chain_pem.to_owned()),
            private_key_pem: SecretString::new(key_pem.to_owned()),
        };
        install_issued_certificate(
            self.store.as_ref(),
            self.vault.as_ref(),
            domain,
            &material,
            KeyType::EcdsaP256,
            OffsetDateTime::now_utc(),
        )
        .await
        .unwrap()
    }
}

/// Starts a terminator on free loopback ports (HTTP on `http_listener` when given).
pub async fn start(
    services: Services,
    issuance: Arc<dyn Issuance>,
    config: TerminatorConfig,
    http_listener: Option<TcpListener>,
) -> Terminator {
    let http = match http_listener {
        Some(listener) => listener,
        None => TcpListener::bind("127.0.0.1:0").await.unwrap(),
    };
    let listeners = Listeners {
        https: TcpListener::bind("127.0.0.1:0").await.unwrap(),
        http,
        admin: Some(TcpListener::bind("127.0.0.1:0").await.unwrap()),
    };
    Terminator::start(services, issuance, config, listeners)
        .await
        .unwrap()
}

/// A rustls client trusting `roots`, offering `alpn`.
pub fn tls_client(roots: &[CertificateDer<'static>], alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Arc::new(config)
}

/// A TLS connection to `addr` with server name `sni`, verified against the client's roots.
pub async fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    client: Arc<rustls::ClientConfig>,
) -> std::io::Result<TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned())
        .map_err(|error| std::io::Error::other(error.to_string()))?;
    TlsConnector::from(client).connect(name, tcp).await
}

/// Sends one HTTP/1.1 request over a new TLS connection and reads the whole answer.
pub async fn request(
    addr: SocketAddr,
    sni: &str,
    roots: &[CertificateDer<'static>],
    request: Request<ClientBody>,
) -> anyhow::Result<(StatusCode, HeaderMap, String)> {
    let tls = tls_connect(addr, sni, tls_client(roots, &[b"http/1.1"])).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
    tokio::spawn(connection);
    let response = sender.send_request(request).await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
}

/// `GET path` with `Host: host` over TLS to `sni`.
pub async fn get(
    addr: SocketAddr,
    sni: &str,
    host: &str,
    path: &str,
    roots: &[CertificateDer<'static>],
) -> anyhow::Result<(StatusCode, String)> {
    let built = Request::get(path)
        .header("host", host)
        .body(empty_body())
        .unwrap();
    let (status, _, body) = request(addr, sni, roots, built).await?;
    Ok((status, body))
}

pub fn empty_body() -> ClientBody {
    Empty::new().map_err(|never| match never {}).boxed_unsync()
}

/// A plain HTTP/1.1 GET to a listener that is not TLS (port 80, admin).
pub async fn plain_get(
    addr: SocketAddr,
    host: &str,
    path: &str,
) -> anyhow::Result<(StatusCode, HeaderMap, String)> {
    let tcp = TcpStream::connect(addr).await?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp)).await?;
    tokio::spawn(connection);
    let response = sender
        .send_request(
            Request::get(path)
                .header("host", host)
                .body(empty_body())
                .unwrap(),
        )
        .await?;
    let status = response.status();
    let headers = response.headers().clone();
    let body = response.into_body().collect().await?.to_bytes();
    Ok((status, headers, String::from_utf8_lossy(&body).into_owned()))
}

/// The value of one sample in the terminator's `/metrics`, e.g.
/// `edgecert_terminator_origin_refused_total{reason="loopback"}`; 0 when absent.
pub fn metric(text: &str, sample: &str) -> f64 {
    text.lines()
        .find_map(|line| {
            let (name, value) = line.rsplit_once(' ')?;
            (name == sample).then(|| value.parse().ok()).flatten()
        })
        .unwrap_or(0.0)
}

/// Polls `condition` every 20 ms until it holds, at most `timeout`.
pub async fn eventually(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + timeout;
    while tokio::time::Instant::now() < deadline {
        if condition() {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    condition()
}

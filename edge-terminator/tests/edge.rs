//! The terminator over real loopback sockets: TLS by SNI, the proxy and its limits, the SSRF
//! rule at connect time, the HTTP listener, the admin port, and resilience to a store and
//! vault outage. Certificates come from a test CA seeded into SQLite, except in `on_demand`
//! tests, which issue from a real Pebble.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::Ipv4Addr;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use edgecert_acme::testing::CaFaults;
use edgecert_acme::{Issuer, IssuerConfig, ca_http_client};
use edgecert_core::model::{Http01Challenge, ProvisioningStep};
use edgecert_core::origin::OriginPolicy;
use edgecert_core::ports::{DnsResolver, MaterialVersion};
use edgecert_core::usecases::issuance::OrderBudget;
use edgecert_dns::HickoryResolver;
use edgecert_integration::{CountingStore, Pebble, PebbleOptions};
use edgecert_terminator::roots_from_pem;
use futures::{SinkExt as _, StreamExt as _};
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use support::fakes::{FakeStore, FakeVault};
use support::origin::Origin;
use support::*;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};

const LOOPBACK_ALLOWED: OriginPolicy = OriginPolicy {
    allow_loopback: true,
    allow_private: false,
};

/// A resolver for tests whose origins are IP literals: challtestsrv of the shared Pebble.
async fn resolver() -> Arc<dyn DnsResolver> {
    let pebble = shared_pebble().await;
    Arc::new(HickoryResolver::with_name_server(
        pebble.challtestsrv().dns_server_addr(),
    ))
}

/// An env with `count` seeded hostnames behind one origin, and a terminator serving them.
struct Served {
    env: Env,
    origin: Origin,
    names: Vec<String>,
    terminator: edgecert_terminator::Terminator,
}

impl Served {
    async fn start(count: usize, config: edgecert_terminator::TerminatorConfig) -> Served {
        let env = Env::new().await;
        let origin = Origin::start().await;
        let mut names = Vec::new();
        for _ in 0..count {
            let name = unique_name("known");
            env.seed_issued(&name, &origin.url()).await;
            names.push(name);
        }
        let services = env.services(
            env.store.clone(),
            env.vault.clone(),
            resolver().await,
            LOOPBACK_ALLOWED,
        );
        let terminator = start(services, Arc::new(NoIssuance::default()), config, None).await;
        assert!(terminator.wait_loaded(Duration::from_secs(10)).await);
        Served {
            env,
            origin,
            names,
            terminator,
        }
    }

    fn roots(&self) -> Vec<rustls::pki_types::CertificateDer<'static>> {
        vec![self.env.ca.root.clone()]
    }

    async fn get(&self, name: &str, path: &str) -> anyhow::Result<(StatusCode, String)> {
        get(
            self.terminator.https_addr(),
            name,
            name,
            path,
            &self.roots(),
        )
        .await
    }

    async fn metrics(&self) -> String {
        let admin = self.terminator.admin_addr().unwrap();
        plain_get(admin, "localhost", "/metrics").await.unwrap().2
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_known_name_is_served_from_memory_and_proxied_with_forwarded_headers() {
    let served = Served::start(2, test_config()).await;
    let name = &served.names[0];
    let request = Request::get("/hello?x=1")
        .header("host", name.as_str())
        .header("x-forwarded-for", "6.6.6.6")
        .header("connection", "keep-alive, x-hop")
        .header("x-hop", "must not reach the origin")
        .body(empty_body())
        .unwrap();
    let (status, _, body) = support::request(
        served.terminator.https_addr(),
        name,
        &served.roots(),
        request,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    // Host is the origin URL's; the client's X-Forwarded-For is replaced, not trusted.
    assert_eq!(
        body,
        format!(
            "origin path=/hello?x=1 host={} xff=127.0.0.1 xfp=https xfh={name}",
            served.origin.addr
        )
    );
    // Only the name used is held: the other one waits for its first handshake.
    assert_eq!(served.terminator.certificates_cached(), 1);
    let metrics = served.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "edgecert_terminator_proxy_responses_total{code=\"200\"}"
        ),
        1.0
    );
    assert!(metric(&metrics, "edgecert_terminator_origin_latency_seconds_count") >= 1.0);
    assert_eq!(
        metric(&metrics, "edgecert_terminator_certificates_cached"),
        1.0
    );
    assert!(metric(&metrics, "edgecert_terminator_cache_bytes") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn preserve_host_sends_the_client_host_to_the_origin() {
    let mut config = test_config();
    config.preserve_host = true;
    let served = Served::start(1, config).await;
    let name = &served.names[0];
    let (status, body) = served.get(name, "/").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(body.contains(&format!("host={name} ")), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_host_that_differs_from_the_server_name_is_misdirected() {
    let served = Served::start(2, test_config()).await;
    let (first, second) = (&served.names[0], &served.names[1]);
    // A certificate valid for the first name must not reach the second one's origin.
    let (status, body) = get(
        served.terminator.https_addr(),
        first,
        second,
        "/",
        &served.roots(),
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::MISDIRECTED_REQUEST);
    assert!(!body.contains("origin"), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_one_mebibyte_header_gets_431() {
    let served = Served::start(1, test_config()).await;
    let name = &served.names[0];
    let tls = tls_connect(
        served.terminator.https_addr(),
        name,
        tls_client(&served.roots(), &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let (mut reader, mut writer) = tokio::io::split(tls);
    let head = format!(
        "GET / HTTP/1.1\r\nhost: {name}\r\nx-big: {}\r\n\r\n",
        "a".repeat(1024 * 1024)
    );
    // Write in the background: the server answers before reading it all.
    let writing = tokio::spawn(async move {
        let _ = writer.write_all(head.as_bytes()).await;
        writer
    });
    let mut answer = vec![0u8; 256];
    let read = tokio::time::timeout(Duration::from_secs(10), reader.read(&mut answer))
        .await
        .expect("an answer")
        .expect("readable answer");
    let answer = String::from_utf8_lossy(&answer[..read]).into_owned();
    assert!(
        answer.starts_with("HTTP/1.1 431"),
        "expected 431, got {answer:?}"
    );
    drop(writing);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn slow_clients_are_cut_by_the_deadlines() {
    let served = Served::start(1, test_config()).await;
    let name = served.names[0].clone();
    let addr = served.terminator.https_addr();

    // No ClientHello at all: closed after client_hello_timeout (1 s).
    let started = Instant::now();
    let mut silent = TcpStream::connect(addr).await.unwrap();
    let mut buf = [0u8; 16];
    let read = tokio::time::timeout(Duration::from_secs(5), silent.read(&mut buf)).await;
    assert!(matches!(read, Ok(Ok(0)) | Ok(Err(_))), "{read:?}");
    assert!(started.elapsed() < Duration::from_secs(3));

    // Slowloris: headers trickling in, one byte every 300 ms; header_read_timeout is 1 s.
    let mut tls = tls_connect(addr, &name, tls_client(&served.roots(), &[b"http/1.1"]))
        .await
        .unwrap();
    let started = Instant::now();
    let head = format!("GET / HTTP/1.1\r\nhost: {name}\r\nx-slow: aaaaaaaaaaaaaaaaaaaa");
    let mut closed = false;
    for byte in head.bytes() {
        if tls.write_all(&[byte]).await.is_err() {
            closed = true;
            break;
        }
        let mut probe = [0u8; 64];
        match tokio::time::timeout(Duration::from_millis(300), tls.read(&mut probe)).await {
            Ok(Ok(_)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Err(_) => {}
        }
        if started.elapsed() > Duration::from_secs(6) {
            break;
        }
    }
    assert!(closed, "the slow client was not cut");
    assert!(
        started.elapsed() < Duration::from_secs(3),
        "cut after {:?}",
        started.elapsed()
    );
    let metrics = served.metrics().await;
    assert!(
        metric(
            &metrics,
            "edgecert_terminator_tls_handshakes_total{outcome=\"client_hello_timeout\"}"
        ) >= 1.0
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_messages_echo_through_the_proxy() {
    let served = Served::start(1, test_config()).await;
    let name = &served.names[0];
    let tls = tls_connect(
        served.terminator.https_addr(),
        name,
        tls_client(&served.roots(), &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let (mut socket, response) = tokio_tungstenite::client_async(format!("wss://{name}/ws"), tls)
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    for text in ["hello", "through the edge"] {
        socket
            .send(tokio_tungstenite::tungstenite::Message::text(text))
            .await
            .unwrap();
        let echoed = tokio::time::timeout(Duration::from_secs(5), socket.next())
            .await
            .unwrap()
            .unwrap()
            .unwrap();
        assert_eq!(echoed.into_text().unwrap().as_str(), text);
    }
    socket
        .send(tokio_tungstenite::tungstenite::Message::binary(vec![
            1u8, 2, 3,
        ]))
        .await
        .unwrap();
    let echoed = socket.next().await.unwrap().unwrap();
    assert_eq!(echoed.into_data().as_ref(), &[1u8, 2, 3]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_h2_client_is_served() {
    let served = Served::start(1, test_config()).await;
    let name = &served.names[0];
    let tls = tls_connect(
        served.terminator.https_addr(),
        name,
        tls_client(&served.roots(), &[b"h2", b"http/1.1"]),
    )
    .await
    .unwrap();
    assert_eq!(tls.get_ref().1.alpn_protocol(), Some(&b"h2"[..]));
    let (mut sender, connection) = hyper::client::conn::http2::handshake(
        hyper_util::rt::TokioExecutor::new(),
        TokioIo::new(tls),
    )
    .await
    .unwrap();
    tokio::spawn(connection);
    // Several streams on one connection, with :authority and no Host header.
    for path in ["/one", "/two"] {
        let request = Request::get(format!("https://{name}{path}"))
            .body(empty_body())
            .unwrap();
        let response = sender.send_request(request).await.unwrap();
        assert_eq!(response.status(), StatusCode::OK);
        assert_eq!(response.version(), http::Version::HTTP_2);
        let body = response.into_body().collect().await.unwrap().to_bytes();
        let body = String::from_utf8_lossy(&body);
        assert!(body.starts_with(&format!("origin path={path} ")), "{body}");
        assert!(body.ends_with(&format!("xfh={name}")), "{body}");
    }
    let wrong = Request::get(format!("https://{}/", unique_name("other")))
        .body(empty_body())
        .unwrap();
    let response = sender.send_request(wrong).await.unwrap();
    assert_eq!(response.status(), StatusCode::MISDIRECTED_REQUEST);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_origin_gets_504_and_a_dead_one_502_without_internals() {
    let mut config = test_config();
    config.origin_header_timeout = Duration::from_secs(1);
    let served = Served::start(1, config).await;
    let name = &served.names[0];
    let (status, body) = served.get(name, "/slow").await.unwrap();
    assert_eq!(status, StatusCode::GATEWAY_TIMEOUT);
    assert_eq!(body, "Gateway Timeout\n");

    // An origin port nobody listens on.
    let closed = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let dead_name = unique_name("dead");
    served.env.seed_issued(&dead_name, &dead).await;
    let (status, body) = served.get(&dead_name, "/").await.unwrap();
    assert_eq!(status, StatusCode::BAD_GATEWAY);
    assert_eq!(body, "Bad Gateway\n");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_site_whose_origin_is_the_edge_itself_gets_508_instead_of_a_loop() {
    let env = Env::new().await;
    let pebble = shared_pebble().await;
    let mut config = test_config();
    // The edge trusts its own certificates when it connects to itself as an origin.
    config.origin_extra_roots = vec![env.ca.root.clone()];
    let services = env.services(
        env.store.clone(),
        env.vault.clone(),
        resolver().await,
        LOOPBACK_ALLOWED,
    );
    let terminator = start(services, Arc::new(NoIssuance::default()), config, None).await;
    assert!(terminator.wait_loaded(Duration::from_secs(10)).await);
    // GIVEN a site whose origin URL is its own name, which points at the edge
    let name = unique_name("loop");
    pebble
        .challtestsrv()
        .add_a(&name, &[Ipv4Addr::LOCALHOST])
        .await
        .unwrap();
    let port = terminator.https_addr().port();
    env.seed_issued(&name, &format!("https://{name}:{port}/"))
        .await;

    // WHEN a client requests it
    let (status, body) = get(
        terminator.https_addr(),
        &name,
        &name,
        "/",
        std::slice::from_ref(&env.ca.root),
    )
    .await
    .unwrap();

    // THEN the second pass through the edge refuses it, and the client gets that answer
    // at once instead of waiting on a request that proxies itself until something gives
    assert_eq!(status, StatusCode::LOOP_DETECTED);
    assert_eq!(
        body,
        "Loop Detected: this site's origin leads back to the edge\n"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_via_header_from_other_proxies_does_not_stop_a_request() {
    let served = Served::start(1, test_config()).await;
    let name = &served.names[0];
    let request = Request::get("/")
        .header("host", name.as_str())
        .header("via", "1.1 corporate-proxy, 1.0 edge.example.net")
        .body(empty_body())
        .unwrap();
    let (status, _, body) = support::request(
        served.terminator.https_addr(),
        name,
        &served.roots(),
        request,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_resolving_to_internal_addresses_are_refused_at_connect_time() {
    let env = Env::new().await;
    let origin = Origin::start().await;
    let pebble = shared_pebble().await;
    let challtestsrv = pebble.challtestsrv();
    let resolver = resolver().await;
    let port = origin.addr.port();
    // Strict policy: what production runs.
    let services = env.services(
        env.store.clone(),
        env.vault.clone(),
        resolver.clone(),
        OriginPolicy::default(),
    );

    // A name that resolves to a public address when whitelisted, and to loopback later. (A
    // globally reachable address: documentation ranges are refused. Never connected to: the
    // record is replaced before any request.)
    let rebinding_origin = unique_name("rebind");
    challtestsrv
        .add_a(&rebinding_origin, &[Ipv4Addr::new(1, 0, 0, 10)])
        .await
        .unwrap();
    let rebinding_name = unique_name("rebinding");
    let domain = edgecert_core::usecases::domains::create_domain(
        &services,
        &env.account.id,
        &rebinding_name,
        &format!("http://{rebinding_origin}:{port}/"),
    )
    .await
    .expect("a public origin is accepted when whitelisted");
    env.seed_certificate(domain).await;

    // Origins stored as they might be by an older rule set or a manual edit.
    let mut cases = vec![
        (unique_name("loopback"), format!("http://127.0.0.1:{port}/")),
        (
            unique_name("metadata"),
            "http://169.254.169.254/".to_owned(),
        ),
        (
            unique_name("mapped"),
            "http://[::ffff:a9fe:a9fe]/".to_owned(),
        ),
        (unique_name("hex"), format!("http://0x7f000001:{port}/")),
    ];
    for (name, origin_url) in &cases {
        env.seed_issued(name, origin_url).await;
    }
    let terminator = start(
        services,
        Arc::new(NoIssuance::default()),
        test_config(),
        None,
    )
    .await;
    assert!(terminator.wait_loaded(Duration::from_secs(10)).await);

    challtestsrv.clear_a(&rebinding_origin).await.unwrap();
    challtestsrv
        .add_a(&rebinding_origin, &[Ipv4Addr::LOCALHOST])
        .await
        .unwrap();
    cases.push((rebinding_name, String::new()));

    let roots = vec![env.ca.root.clone()];
    for (name, origin_url) in &cases {
        let (status, body) = get(terminator.https_addr(), name, name, "/", &roots)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::BAD_GATEWAY, "{name} -> {origin_url}");
        assert_eq!(body, "Bad Gateway\n", "no internals in the answer");
    }
    let metrics = plain_get(terminator.admin_addr().unwrap(), "localhost", "/metrics")
        .await
        .unwrap()
        .2;
    // loopback, hex loopback and the rebound name; the metadata address twice (v4 and mapped).
    assert_eq!(
        metric(
            &metrics,
            "edgecert_terminator_origin_refused_total{reason=\"loopback\"}"
        ),
        3.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "edgecert_terminator_origin_refused_total{reason=\"link-local\"}"
        ),
        2.0,
        "{metrics}"
    );
    assert_eq!(
        metric(
            &metrics,
            "edgecert_terminator_proxy_responses_total{code=\"502\"}"
        ),
        5.0
    );
    terminator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_http_listener_answers_challenges_from_the_store_and_redirects_the_rest() {
    let mut config = test_config();
    config.redirect_https_port = 8443;
    let served = Served::start(1, config).await;
    let http = served.terminator.http_addr();
    served
        .env
        .store
        .put_http01(&Http01Challenge {
            token: "tok-123_abc".to_owned(),
            key_authorization: "tok-123_abc.thumbprint".to_owned(),
            expires_at: time::OffsetDateTime::now_utc() + time::Duration::hours(1),
        })
        .await
        .unwrap();
    let (status, _, body) = plain_get(
        http,
        "any.example.com",
        "/.well-known/acme-challenge/tok-123_abc",
    )
    .await
    .unwrap();
    assert_eq!(
        (status, body.as_str()),
        (StatusCode::OK, "tok-123_abc.thumbprint")
    );
    let (status, _, _) = plain_get(
        http,
        "any.example.com",
        "/.well-known/acme-challenge/unknown",
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, headers, _) = plain_get(http, "Shop.Example.com:80", "/cart?id=7")
        .await
        .unwrap();
    assert_eq!(status, StatusCode::PERMANENT_REDIRECT);
    assert_eq!(
        headers["location"],
        "https://shop.example.com:8443/cart?id=7"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_admin_port_reports_health_and_metrics() {
    let served = Served::start(1, test_config()).await;
    let admin = served.terminator.admin_addr().unwrap();
    let (status, _, body) = plain_get(admin, "localhost", "/healthz").await.unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "ok\n"));
    served.get(&served.names[0], "/").await.unwrap();
    let (status, headers, text) = plain_get(admin, "localhost", "/metrics").await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert!(
        headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    for family in [
        "edgecert_terminator_tls_handshakes_total{outcome=\"ok\"}",
        "edgecert_terminator_certificates_cached",
        "edgecert_terminator_proxy_responses_total{code=\"200\"}",
        "edgecert_terminator_origin_latency_seconds_count",
        "edgecert_terminator_cache_loaded",
    ] {
        assert!(metric(&text, family) >= 1.0, "{family} in\n{text}");
    }
    assert!(text.contains("# TYPE edgecert_terminator_on_demand_total counter"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn known_names_keep_being_served_while_store_and_vault_fail() {
    let env = Env::new().await;
    let origin = Origin::start().await;
    let names = [unique_name("steady"), unique_name("steady")];
    let mut certificates = Vec::new();
    for name in &names {
        certificates.push(env.seed_issued(name, &origin.url()).await.1);
    }
    let store = FakeStore::new(env.store.clone());
    let vault = FakeVault::new(env.vault.clone());
    let services = env.services(
        store.clone(),
        vault.clone(),
        resolver().await,
        LOOPBACK_ALLOWED,
    );
    let terminator = start(
        services,
        Arc::new(NoIssuance::default()),
        test_config(),
        None,
    )
    .await;
    assert!(terminator.wait_loaded(Duration::from_secs(10)).await);
    let roots = vec![env.ca.root.clone()];
    let https = terminator.https_addr();
    for name in &names {
        assert_eq!(
            get(https, name, name, "/", &roots).await.unwrap().0,
            StatusCode::OK
        );
    }

    // GIVEN the store and the vault both down for several refresh rounds
    store.fail(true);
    vault.fail(true);
    let failed_rounds = || {
        metric(
            &terminator.metrics_text(),
            "edgecert_terminator_cache_refreshes_total{outcome=\"failed\"}",
        )
    };
    assert!(eventually(Duration::from_secs(5), || failed_rounds() >= 3.0).await);

    // THEN known names still complete handshakes and reach their origin
    for name in &names {
        let (status, body) = get(https, name, name, "/during-outage", &roots)
            .await
            .unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
    }
    // AND an unknown name is refused quickly instead of waiting on the store
    let started = Instant::now();
    let unknown = unique_name("unknown");
    assert!(get(https, &unknown, &unknown, "/", &roots).await.is_err());
    assert!(started.elapsed() < Duration::from_secs(2));

    // GIVEN the store back but the vault still down, and a newer version of a certificate
    // whose material cannot be read
    store.fail(false);
    let mut renewed = certificates[0].clone();
    renewed.material_version = Some("missing-version".to_owned());
    renewed.updated_at = time::OffsetDateTime::now_utc();
    env.store.update_certificate(&renewed).await.unwrap();
    let ok_rounds = metric(
        &terminator.metrics_text(),
        "edgecert_terminator_cache_refreshes_total{outcome=\"ok\"}",
    );
    assert!(
        eventually(Duration::from_secs(5), || metric(
            &terminator.metrics_text(),
            "edgecert_terminator_cache_refreshes_total{outcome=\"ok\"}"
        ) >= ok_rounds + 2.0)
        .await
    );
    // THEN the last good certificate stays served
    let (status, _) = get(https, &names[0], &names[0], "/", &roots).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(terminator.certificates_cached(), 2);
    vault.fail(false);
    // The vault never had that version: still the last good one.
    assert!(
        env.vault
            .get_material(&renewed.id, &MaterialVersion("missing-version".to_owned()))
            .await
            .is_err()
    );
    assert_eq!(
        get(https, &names[0], &names[0], "/", &roots)
            .await
            .unwrap()
            .0,
        StatusCode::OK
    );
    terminator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_thousand_unknown_names_cost_no_store_write_and_no_acme_call() {
    let env = Env::new().await;
    let origin = Origin::start().await;
    let known = unique_name("known");
    env.seed_issued(&known, &origin.url()).await;
    let pebble = shared_pebble().await;
    let store = FakeStore::new(env.store.clone());
    let services = env.services(
        store.clone(),
        env.vault.clone(),
        resolver().await,
        LOOPBACK_ALLOWED,
    );
    let faults = CaFaults::new();
    let issuer = issuer(&services, pebble, &faults);
    // No lookup limit here: every fresh name is looked up in the store.
    let mut config = test_config();
    config.lookups_per_second = 100_000.0;
    config.lookup_burst = 100_000;
    let terminator = start(services, issuer, config, None).await;
    assert!(terminator.wait_loaded(Duration::from_secs(10)).await);
    let https = terminator.https_addr();
    let roots = vec![env.ca.root.clone()];
    let writes_before = store.writes();
    let reads_before = store.reads();

    // The known name is requested all along, on fresh connections.
    let storm_over = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let known_ok = Arc::new(AtomicUsize::new(0));
    let known_failed = Arc::new(AtomicUsize::new(0));
    let steady = {
        let (storm_over, known_ok, known_failed) =
            (storm_over.clone(), known_ok.clone(), known_failed.clone());
        let (known, roots) = (known.clone(), roots.clone());
        tokio::spawn(async move {
            while !storm_over.load(Ordering::SeqCst) {
                match get(https, &known, &known, "/", &roots).await {
                    Ok((StatusCode::OK, _)) => known_ok.fetch_add(1, Ordering::SeqCst),
                    _ => known_failed.fetch_add(1, Ordering::SeqCst),
                };
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
    };

    let client = tls_client(&roots, &[b"http/1.1"]);
    let refused = futures::stream::iter(0..1000)
        .map(|n| {
            let client = client.clone();
            async move {
                // Mostly fresh names, some repeated, and an IP literal now and then.
                let name = match n % 10 {
                    0 => "repeat.example.com".to_owned(),
                    _ => unique_name("random"),
                };
                if n % 100 == 1 {
                    return tls_connect(https, "127.0.0.1", client).await.is_err();
                }
                tls_connect(https, &name, client).await.is_err()
            }
        })
        .buffer_unordered(32)
        .filter(|refused| futures::future::ready(*refused))
        .count()
        .await;
    storm_over.store(true, Ordering::SeqCst);
    steady.await.unwrap();

    assert_eq!(refused, 1000, "every unknown name is refused");
    assert_eq!(store.writes(), writes_before, "no store write");
    assert_eq!(faults.requests(), 0, "no request to the CA at all");
    assert_eq!(known_failed.load(Ordering::SeqCst), 0);
    assert!(known_ok.load(Ordering::SeqCst) >= 5);
    let metrics = terminator.metrics_text();
    let refusals: f64 = [
        "not_whitelisted",
        "rate_limited",
        "negative_cached",
        "no_sni",
        "not_a_name",
    ]
    .iter()
    .map(|outcome| {
        metric(
            &metrics,
            &format!("edgecert_terminator_tls_handshakes_total{{outcome=\"{outcome}\"}}"),
        )
    })
    .sum();
    assert_eq!(refusals, 1000.0, "{metrics}");
    // Every fresh name was looked up in the store (a read), the repeated one only until its
    // refusal was cached; handshakes for a name being looked up joined that lookup.
    let lookups = metric(
        &metrics,
        "edgecert_terminator_on_demand_total{outcome=\"not_whitelisted\"}",
    );
    assert!(lookups >= 880.0, "{metrics}");
    assert!(store.reads() - reads_before >= lookups as usize);
    terminator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_whitelisted_after_a_refusal_is_requested_at_once() {
    let env = Env::new().await;
    let services = env.services(
        env.store.clone(),
        env.vault.clone(),
        resolver().await,
        LOOPBACK_ALLOWED,
    );
    let issuance = Arc::new(NoIssuance::default());
    let terminator = start(services, issuance.clone(), test_config(), None).await;
    assert!(terminator.wait_loaded(Duration::from_secs(10)).await);
    let name = unique_name("later");
    let roots = vec![env.ca.root.clone()];
    let https = terminator.https_addr();
    assert!(get(https, &name, &name, "/", &roots).await.is_err());

    // GIVEN the name is whitelisted within the refusal's 30 s, and the edge read the change
    let domain = env.whitelist(&name, "http://127.0.0.1:9/").await;
    assert!(
        eventually(Duration::from_secs(5), || metric(
            &terminator.metrics_text(),
            "edgecert_terminator_feed_changes_total{kind=\"domain\"}"
        ) >= 1.0)
        .await
    );

    // WHEN a client asks again
    assert!(get(https, &name, &name, "/", &roots).await.is_err());

    // THEN the core's domain step ran (DNS points here: issuing, with a pending managed
    // certificate) and issuance was asked for it
    assert_eq!(issuance.calls(), 1);
    let stored = env
        .store
        .get_domain(&env.account.id, &domain.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.provisioning_step, ProvisioningStep::Issuing);
    let certificate = env
        .store
        .get_certificate(
            &env.account.id,
            &edgecert_core::CertificateId::managed_for(&domain.id),
        )
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        certificate.status,
        edgecert_core::model::CertificateStatus::Pending
    );
    terminator.shutdown().await;
}

/// Issues from a test CA after a delay, as a slow CA would.
struct SlowIssuance {
    store: Arc<dyn edgecert_core::ports::Store>,
    vault: Arc<dyn edgecert_core::ports::Vault>,
    ca: TestCa,
    delay: Duration,
}

#[async_trait::async_trait]
impl edgecert_core::ports::Issuance for SlowIssuance {
    async fn issue(
        &self,
        account: &edgecert_core::AccountId,
        id: &edgecert_core::CertificateId,
    ) -> edgecert_core::Result<edgecert_core::ports::IssueOutcome> {
        tokio::time::sleep(self.delay).await;
        let mut certificate = self.store.get_certificate(account, id).await?.unwrap();
        let (chain, key) = self.ca.leaf(&[certificate.domain.to_string()]);
        let version = self
            .vault
            .put_material(
                id,
                &edgecert_core::ports::CertificateMaterial {
                    chain_pem: Some(chain),
                    private_key_pem: edgecert_core::model::SecretString::new(key),
                },
            )
            .await?;
        let now = time::OffsetDateTime::now_utc();
        certificate.status = edgecert_core::model::CertificateStatus::Issued;
        certificate.material_version = Some(version.0);
        certificate.expires_at = Some(now + time::Duration::days(90));
        certificate.next_attempt_at = None;
        certificate.updated_at = now;
        let stored = self.store.update_certificate(&certificate).await?;
        Ok(edgecert_core::ports::IssueOutcome::Issued(stored))
    }

    async fn revoke(&self, _: &edgecert_core::model::Certificate) -> edgecert_core::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn past_the_wait_bound_the_handshake_fails_and_the_next_one_is_served() {
    let env = Env::new().await;
    let origin = Origin::start().await;
    let services = env.services(
        env.store.clone(),
        env.vault.clone(),
        resolver().await,
        LOOPBACK_ALLOWED,
    );
    let issuance = SlowIssuance {
        store: env.store.clone(),
        vault: env.vault.clone(),
        ca: TestCa::new(),
        delay: Duration::from_millis(1500),
    };
    let roots = vec![issuance.ca.root.clone()];
    let mut config = test_config();
    config.on_demand_wait = Duration::from_millis(300);
    let terminator = start(services, Arc::new(issuance), config, None).await;
    assert!(terminator.wait_loaded(Duration::from_secs(10)).await);
    let name = unique_name("slow");
    env.whitelist(&name, &origin.url()).await;
    let https = terminator.https_addr();

    let started = Instant::now();
    assert!(get(https, &name, &name, "/", &roots).await.is_err());
    let held = started.elapsed();
    assert!(
        held >= Duration::from_millis(300) && held < Duration::from_millis(1400),
        "held {held:?}"
    );
    // Issuance goes on in the background; a later handshake finds the certificate.
    assert!(
        eventually(Duration::from_secs(5), || terminator.certificates_cached()
            == 1)
        .await
    );
    let (status, body) = get(https, &name, &name, "/", &roots).await.unwrap();
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(
        metric(
            &terminator.metrics_text(),
            "edgecert_terminator_tls_handshakes_total{outcome=\"timed_out\"}"
        ),
        1.0
    );
    terminator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_lookups_are_rate_limited_per_client() {
    let mut config = test_config();
    config.lookups_per_second = 0.01;
    config.lookup_burst = 3;
    let served = Served::start(1, config).await;
    let client = tls_client(&served.roots(), &[b"http/1.1"]);
    // A known name's first handshake loads it from the store: a lookup that serves, which
    // costs the client no token (the burst below still gets 3 lookups).
    assert_eq!(
        served.get(&served.names[0], "/").await.unwrap().0,
        StatusCode::OK
    );
    for _ in 0..10 {
        let name = unique_name("limited");
        assert!(
            tls_connect(served.terminator.https_addr(), &name, client.clone())
                .await
                .is_err()
        );
    }
    // Names in memory are never limited.
    assert_eq!(
        served.get(&served.names[0], "/").await.unwrap().0,
        StatusCode::OK
    );
    let metrics = served.metrics().await;
    let outcome = |name: &str| {
        metric(
            &metrics,
            &format!("edgecert_terminator_tls_handshakes_total{{outcome=\"{name}\"}}"),
        )
    };
    assert_eq!(outcome("not_whitelisted"), 3.0);
    assert_eq!(outcome("rate_limited"), 7.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_idle_terminator_stops_reading_what_it_already_holds() {
    let env = Env::new().await;
    for _ in 0..5 {
        env.seed_issued(&unique_name("idle"), "http://127.0.0.1:9")
            .await;
    }
    let store = FakeStore::new(env.store.clone());
    let services = env.services(
        store.clone(),
        env.vault.clone(),
        resolver().await,
        LOOPBACK_ALLOWED,
    );
    let mut config = test_config();
    config.refresh_interval = Duration::from_millis(100);
    config.change_overlap = Duration::from_secs(1);
    let terminator = start(services, Arc::new(NoIssuance::default()), config, None).await;
    assert!(terminator.wait_loaded(Duration::from_secs(10)).await);

    // Once the overlap has passed with no change, a pass finds nothing to read.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let before = store.feed_items();
    tokio::time::sleep(Duration::from_millis(800)).await;
    assert_eq!(
        store.feed_items(),
        before,
        "idle refresh passes read unchanged items again"
    );

    // A change made now is still read.
    let name = unique_name("late");
    env.seed_issued(&name, "http://127.0.0.1:9").await;
    assert!(
        eventually(Duration::from_secs(5), || store.feed_items() >= before + 2).await,
        "a domain and certificate added after the start were not read"
    );
    terminator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_domain_stops_being_served_from_its_tombstone() {
    let served = Served::start(1, test_config()).await;
    let name = &served.names[0];
    assert_eq!(served.get(name, "/").await.unwrap().0, StatusCode::OK);
    let domain = served
        .env
        .store
        .domain_by_hostname(&edgecert_core::Hostname::parse_domain(name).unwrap())
        .await
        .unwrap()
        .unwrap();
    // Deleted as the API does: the domain, its managed certificate and its material.
    let services = served.env.services(
        served.env.store.clone(),
        served.env.vault.clone(),
        resolver().await,
        LOOPBACK_ALLOWED,
    );
    edgecert_core::usecases::domains::delete_domain(&services, &served.env.account.id, &domain.id)
        .await
        .unwrap();
    // With no request for it at all, the feed's tombstone removes it within a refresh.
    assert!(
        eventually(Duration::from_secs(5), || served
            .terminator
            .certificates_cached()
            == 0)
        .await,
        "the deleted domain's certificate is still held"
    );
    assert!(served.get(name, "/").await.is_err());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_stops_accepting_and_returns() {
    let served = Served::start(1, test_config()).await;
    let https = served.terminator.https_addr();
    assert_eq!(
        served.get(&served.names[0], "/").await.unwrap().0,
        StatusCode::OK
    );
    let roots = served.roots();
    let name = served.names[0].clone();
    let Served { terminator, .. } = served;
    let started = Instant::now();
    terminator.shutdown().await;
    assert!(started.elapsed() < Duration::from_secs(3));
    // The port is free again, so a test running alongside may have been given it: what must
    // hold is that nothing there serves this name any more.
    if TcpStream::connect(https).await.is_ok() {
        assert!(
            get(https, &name, &name, "/", &roots).await.is_err(),
            "a request for {name} was still answered after the shutdown"
        );
    }
}

/// An issuer on `pebble` whose CA traffic is counted by `faults`.
fn issuer(
    services: &edgecert_core::usecases::Services,
    pebble: &Pebble,
    faults: &CaFaults,
) -> Arc<Issuer> {
    issuer_with_budget(
        services,
        pebble,
        faults,
        OrderBudget::default_for(&pebble.directory_url()),
    )
}

/// [`issuer`] drawing new orders from `budget`.
fn issuer_with_budget(
    services: &edgecert_core::usecases::Services,
    pebble: &Pebble,
    faults: &CaFaults,
    budget: OrderBudget,
) -> Arc<Issuer> {
    let mut config = IssuerConfig::new(pebble.directory_url())
        .with_order_budget(budget)
        .with_ca_root_pem(pebble.listener_ca_pem_path())
        .with_caa_identities(["pebble.letsencrypt.org"])
        .with_poll_initial_delay(Duration::from_millis(25));
    config.attempt_pause = Duration::from_millis(50);
    config.poll_timeout = Duration::from_secs(30);
    let http = ca_http_client(config.ca_root_pem.as_deref(), config.request_timeout).unwrap();
    Arc::new(Issuer::with_http_client(
        services.clone(),
        config,
        faults.client(http),
    ))
}

/// Tests issuing from a Pebble that validates HTTP-01 on the terminator's HTTP listener.
mod on_demand {
    use super::*;

    struct Issuing {
        env: Env,
        origin: Origin,
        faults: CaFaults,
        /// Every store call the terminator and its issuer make.
        counted: Arc<CountingStore>,
        terminator: edgecert_terminator::Terminator,
        roots: Vec<rustls::pki_types::CertificateDer<'static>>,
        _pebble: Pebble,
    }

    impl Issuing {
        async fn start() -> Issuing {
            Issuing::start_with_budget(None).await
        }

        /// A terminator whose issuer draws from `budget` (`None`: the default).
        async fn start_with_budget(budget: Option<(u32, time::Duration)>) -> Issuing {
            let env = Env::new().await;
            let origin = Origin::start().await;
            // Pebble validates on the port the terminator's HTTP listener holds.
            let http = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let pebble = Pebble::start(PebbleOptions {
                http_port: Some(http.local_addr().unwrap().port()),
                ..PebbleOptions::default()
            })
            .await
            .unwrap();
            let resolver: Arc<dyn DnsResolver> = Arc::new(HickoryResolver::with_name_server(
                pebble.challtestsrv().dns_server_addr(),
            ));
            let counted = Arc::new(CountingStore::new(env.store.clone()));
            let services = env.services(
                counted.clone(),
                env.vault.clone(),
                resolver,
                LOOPBACK_ALLOWED,
            );
            let faults = CaFaults::new();
            let issuer = match budget {
                None => issuer(&services, &pebble, &faults),
                Some((orders, period)) => issuer_with_budget(
                    &services,
                    &pebble,
                    &faults,
                    OrderBudget::new(&pebble.directory_url(), orders, period),
                ),
            };
            let terminator = start(services, issuer, test_config(), Some(http)).await;
            let roots = roots_from_pem(&pebble.issuing_root_pem().await.unwrap());
            Issuing {
                env,
                origin,
                faults,
                counted,
                terminator,
                roots,
                _pebble: pebble,
            }
        }

        async fn get(&self, name: &str) -> anyhow::Result<(StatusCode, String)> {
            get(
                self.terminator.https_addr(),
                name,
                name,
                "/first",
                &self.roots,
            )
            .await
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_first_request_gets_a_certificate_issued_and_the_second_does_not_touch_the_ca() {
        let issuing = Issuing::start().await;
        let name = unique_name("first");
        let domain = issuing.env.whitelist(&name, &issuing.origin.url()).await;

        // Verified by a rustls client against Pebble's issuing root, with SNI.
        let (status, body) = issuing.get(&name).await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        assert!(body.starts_with("origin path=/first "), "{body}");
        assert_eq!(issuing.faults.new_orders(), 1);
        let requests = issuing.faults.requests();

        let (status, _) = issuing.get(&name).await.unwrap();
        assert_eq!(status, StatusCode::OK);
        assert_eq!(issuing.faults.new_orders(), 1);
        assert_eq!(
            issuing.faults.requests(),
            requests,
            "the CA was not asked again"
        );

        // The core's domain logic ran: the domain is active with its managed certificate.
        let stored = issuing
            .env
            .store
            .get_domain(&issuing.env.account.id, &domain.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.provisioning_step, ProvisioningStep::Active);
        assert_eq!(
            stored.certificate_id,
            Some(edgecert_core::CertificateId::managed_for(&domain.id))
        );
        issuing.terminator.shutdown().await;
    }

    /// What the first request for a name costs in store calls, from the handshake to the
    /// certificate served (BENCHMARKS.md, "Store calls per issuance"). The refresher's change
    /// feeds are left out: they run on their own clock, whatever the traffic.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn store_calls_of_an_on_demand_issuance() {
        let issuing = Issuing::start().await;
        let name = unique_name("counted");
        issuing.env.whitelist(&name, &issuing.origin.url()).await;
        issuing.counted.take();
        let (status, body) = issuing.get(&name).await.unwrap();
        assert_eq!(status, StatusCode::OK, "{body}");
        let calls = issuing.counted.take();
        println!("on-demand issuance: {calls}");
        assert_eq!(issuing.faults.new_orders(), 1);
        issuing.terminator.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn fifty_concurrent_first_requests_for_ten_names_make_ten_orders() {
        let issuing = Arc::new(Issuing::start().await);
        let mut names = Vec::new();
        for _ in 0..10 {
            let name = unique_name("burst");
            issuing.env.whitelist(&name, &issuing.origin.url()).await;
            names.push(name);
        }
        let requests: Vec<_> = (0..50)
            .map(|n| {
                let issuing = issuing.clone();
                let name = names[n % 10].clone();
                tokio::spawn(async move { (name.clone(), issuing.get(&name).await) })
            })
            .collect();
        for request in requests {
            let (name, result) = request.await.unwrap();
            let (status, body) = result.unwrap_or_else(|error| panic!("{name}: {error:#}"));
            assert_eq!(status, StatusCode::OK, "{name}: {body}");
        }
        assert_eq!(issuing.faults.new_orders(), 10);
        let metrics = issuing.terminator.metrics_text();
        assert_eq!(
            metric(
                &metrics,
                "edgecert_terminator_on_demand_total{outcome=\"served\"}"
            ),
            10.0,
            "{metrics}"
        );
    }

    /// The order budget spent: first requests past it fail at once, order nothing, and are
    /// counted apart in `/metrics` for the operator.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn first_requests_past_the_order_budget_fail_at_once_and_are_counted() {
        let issuing = Issuing::start_with_budget(Some((2, time::Duration::hours(1)))).await;
        let mut served = 0;
        for _ in 0..5 {
            let name = unique_name("budget");
            issuing.env.whitelist(&name, &issuing.origin.url()).await;
            served += usize::from(issuing.get(&name).await.is_ok());
        }
        assert_eq!((served, issuing.faults.new_orders()), (2, 2));
        let metrics = issuing.terminator.metrics_text();
        assert_eq!(
            metric(
                &metrics,
                "edgecert_terminator_on_demand_total{outcome=\"order_budget_spent\"}"
            ),
            3.0,
            "{metrics}"
        );
        // The budget itself, as the operator's scrape of the admin listener reads it from the
        // store: spent, 2 at most, the next order within the 30 minutes one takes to earn.
        let admin = issuing.terminator.admin_addr().unwrap();
        let (status, _, scraped) = plain_get(admin, "localhost", "/metrics").await.unwrap();
        assert_eq!(status, StatusCode::OK, "{scraped}");
        assert_eq!(
            metric(&scraped, "edgecert_order_budget_available_orders"),
            0.0,
            "{scraped}"
        );
        assert_eq!(
            metric(&scraped, "edgecert_order_budget_capacity_orders"),
            2.0,
            "{scraped}"
        );
        let next = metric(&scraped, "edgecert_order_budget_next_order_seconds");
        assert!(next > 0.0 && next <= 1800.0, "{scraped}");
        issuing.terminator.shutdown().await;
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn names_that_are_not_whitelisted_fail_fast_without_writes() {
        let issuing = Issuing::start().await;
        let started = Instant::now();
        let stranger = unique_name("stranger");
        assert!(issuing.get(&stranger).await.is_err());
        assert!(issuing.get(&stranger).await.is_err());
        assert!(started.elapsed() < Duration::from_secs(2));
        assert_eq!(issuing.faults.requests(), 0);
        let metrics = issuing.terminator.metrics_text();
        assert_eq!(
            metric(
                &metrics,
                "edgecert_terminator_tls_handshakes_total{outcome=\"not_whitelisted\"}"
            ),
            1.0
        );
        assert_eq!(
            metric(
                &metrics,
                "edgecert_terminator_tls_handshakes_total{outcome=\"negative_cached\"}"
            ),
            1.0
        );
    }
}

/// Bodies larger than memory would allow stream through (see also `tests/streaming.rs`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn uploads_and_downloads_stream_through() {
    let served = Served::start(1, test_config()).await;
    let name = &served.names[0];
    let size = 8 * 1024 * 1024;
    let (status, body) = served.get(name, &format!("/stream/{size}")).await.unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body.len(), size);
    let chunks = futures::stream::iter(0..128).map(|_| {
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(hyper::body::Frame::data(
            Bytes::from_static(&[7u8; 65536]),
        ))
    });
    let upload = Request::post("/count")
        .header("host", name.as_str())
        .body(http_body_util::StreamBody::new(chunks).boxed_unsync())
        .unwrap();
    let (status, _, body) = support::request(
        served.terminator.https_addr(),
        name,
        &served.roots(),
        upload,
    )
    .await
    .unwrap();
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body, (128 * 65536).to_string());
}

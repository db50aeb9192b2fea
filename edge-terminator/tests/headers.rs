//! Request heads at the edge (issue 12, defect 7), over real loopback sockets with the
//! recording test origin: the 64 KiB head limit is exact on the HTTPS and the plain-HTTP
//! listeners, two `Host` headers are refused, the client's address headers never reach the
//! origin as sent, and hop-by-hop headers and non-WebSocket upgrades stay at the edge.
//!
//! Requests are written as raw bytes, so what the edge receives is exactly what is sent.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::Duration;

use edgecert_core::origin::OriginPolicy;
use edgecert_dns::HickoryResolver;
use edgecert_terminator::Terminator;
use futures::{SinkExt as _, StreamExt as _};
use http::StatusCode;
use support::origin::Origin;
use support::*;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _};
use tokio::net::TcpStream;

const LIMIT: usize = 64 * 1024;

/// One site behind the recording origin, served by a terminator.
struct Site {
    env: Env,
    origin: Origin,
    name: String,
    terminator: Terminator,
}

impl Site {
    async fn start() -> Site {
        let env = Env::new().await;
        let origin = Origin::start().await;
        let name = unique_name("headers");
        env.seed_issued(&name, &origin.url()).await;
        let pebble = shared_pebble().await;
        let resolver = Arc::new(HickoryResolver::with_name_server(
            pebble.challtestsrv().dns_server_addr(),
        ));
        let services = env.services(
            env.store.clone(),
            env.vault.clone(),
            resolver,
            OriginPolicy {
                allow_loopback: true,
                allow_private: false,
            },
        );
        let mut config = test_config();
        assert_eq!(config.max_header_bytes, LIMIT, "the default head limit");
        config.header_read_timeout = Duration::from_secs(5);
        let terminator = start(services, Arc::new(NoIssuance::default()), config, None).await;
        assert!(
            terminator.wait_loaded(Duration::from_secs(10)).await,
            "the terminator did not load its certificates within 10 s"
        );
        Site {
            env,
            origin,
            name,
            terminator,
        }
    }

    /// Sends `head` (and nothing more) over TLS; the response's status and text.
    async fn https(&self, head: &[u8]) -> (Option<u16>, String) {
        let tls = tls_connect(
            self.terminator.https_addr(),
            &self.name,
            tls_client(std::slice::from_ref(&self.env.ca.root), &[b"http/1.1"]),
        )
        .await
        .expect("TLS handshake with the edge");
        exchange(tls, head).await
    }

    /// Sends `head` to the plain-HTTP listener.
    async fn http(&self, head: &[u8]) -> (Option<u16>, String) {
        let tcp = TcpStream::connect(self.terminator.http_addr())
            .await
            .unwrap();
        exchange(tcp, head).await
    }

    /// `GET path` with the given extra header lines; the head as bytes.
    fn head(&self, path: &str, extra: &[String]) -> Vec<u8> {
        let mut text = format!("GET {path} HTTP/1.1\r\nhost: {}\r\n", self.name);
        for line in extra {
            text.push_str(line);
            text.push_str("\r\n");
        }
        text.push_str("connection: close\r\n\r\n");
        text.into_bytes()
    }
}

/// Writes `head`, then reads until the peer closes (or 10 s pass): the status code of the
/// response, if one came, and the whole text.
async fn exchange(
    mut stream: impl AsyncRead + AsyncWrite + Unpin,
    head: &[u8],
) -> (Option<u16>, String) {
    // The edge may answer and close before reading everything: a failed write is not the end.
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.write_all(head)).await;
    let _ = stream.flush().await;
    let mut received = Vec::new();
    let _ = tokio::time::timeout(Duration::from_secs(10), stream.read_to_end(&mut received)).await;
    let text = String::from_utf8_lossy(&received).into_owned();
    let status = text
        .strip_prefix("HTTP/1.1 ")
        .and_then(|rest| rest.get(..3))
        .and_then(|code| code.parse().ok());
    (status, text)
}

/// `count` header lines `x-filler-<i>: aaaa...` whose whole lines (with CRLF) make `each` bytes.
fn filler(count: usize, each: usize) -> Vec<String> {
    (0..count)
        .map(|index| {
            let name = format!("x-filler-{index:03}");
            let value_len = each - name.len() - 4;
            format!("{name}: {}", "a".repeat(value_len))
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn heads_over_64_kib_get_431_on_https_and_never_reach_the_origin() {
    let site = Site::start().await;
    for (what, lines) in [
        ("one 66 KB header", filler(1, 66 * 1000)),
        ("one 70 KB header", filler(1, 70 * 1000)),
        ("90 headers of 1 KB", filler(90, 1024)),
        ("a head one byte over", {
            let base = site.head("/", &[]).len();
            filler(1, LIMIT + 1 - base)
        }),
    ] {
        let head = site.head("/", &lines);
        assert!(head.len() > LIMIT, "{what}: {} bytes", head.len());
        let (status, text) = site.https(&head).await;
        assert_eq!(status, Some(431), "{what}: {text}");
    }
    assert_eq!(
        site.origin.requests(),
        0,
        "a refused head reached the origin"
    );

    // A head of exactly 64 KiB is served.
    let base = site.head("/", &[]).len();
    let head = site.head("/", &filler(1, LIMIT - base));
    assert_eq!(head.len(), LIMIT);
    let (status, text) = site.https(&head).await;
    assert_eq!(status, Some(200), "{text}");
    assert_eq!(site.origin.requests(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_plain_http_listener_holds_heads_to_the_same_limit() {
    let site = Site::start().await;
    for (what, lines) in [
        ("one 100 KB header", filler(1, 100 * 1000)),
        ("one 66 KB header", filler(1, 66 * 1000)),
        ("90 headers of 1 KB", filler(90, 1024)),
    ] {
        let (status, text) = site.http(&site.head("/", &lines)).await;
        assert_eq!(status, Some(431), "{what}: {text}");
    }
    // Far past the limit hyper cuts the head off itself; whatever the client sees, it is not
    // an answer to the request.
    let (status, text) = site.http(&site.head("/", &filler(1, 300 * 1000))).await;
    assert!(
        matches!(status, None | Some(431)),
        "a 300 KB head was answered: {text}"
    );
    // A normal request is still redirected.
    let (status, text) = site.http(&site.head("/page", &[])).await;
    assert_eq!(status, Some(308), "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_host_headers_get_400_on_both_listeners() {
    let site = Site::start().await;
    let second_host = [format!("host: {}", site.name)];
    let other_host = ["Host: other.example.com".to_owned()];
    for extra in [&second_host, &other_host] {
        let head = site.head("/", extra);
        let (status, text) = site.https(&head).await;
        assert_eq!(status, Some(400), "HTTPS: {text}");
        let (status, text) = site.http(&head).await;
        assert_eq!(status, Some(400), "HTTP: {text}");
    }
    assert_eq!(site.origin.requests(), 0);
}

/// The origin's `/headers` report: `name: value` lines, names in lower case.
fn received(text: &str) -> Vec<(String, String)> {
    let body = text.split_once("\r\n\r\n").map_or("", |(_, body)| body);
    body.lines()
        .filter_map(|line| line.split_once(": "))
        .map(|(name, value)| (name.to_owned(), value.to_owned()))
        .collect()
}

fn values<'a>(headers: &'a [(String, String)], name: &str) -> Vec<&'a str> {
    headers
        .iter()
        .filter(|(header, _)| header == name)
        .map(|(_, value)| value.as_str())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_client_cannot_choose_the_address_the_origin_sees() {
    let site = Site::start().await;
    let head = site.head(
        "/headers",
        &[
            "X-Real-IP: 6.6.6.6".to_owned(),
            "Forwarded: for=6.6.6.6;proto=http".to_owned(),
            "X-Forwarded-For: 6.6.6.6".to_owned(),
            "X-Forwarded-Proto: http".to_owned(),
            "X-Client-IP: 6.6.6.6".to_owned(),
            "True-Client-IP: 6.6.6.6".to_owned(),
            "X-Cluster-Client-IP: 6.6.6.6".to_owned(),
        ],
    );
    let (status, text) = site.https(&head).await;
    assert_eq!(status, Some(200), "{text}");
    let headers = received(&text);
    assert!(
        !text.contains("6.6.6.6"),
        "a client address got through: {text}"
    );
    assert_eq!(values(&headers, "x-real-ip"), ["127.0.0.1"], "{text}");
    assert_eq!(values(&headers, "x-forwarded-for"), ["127.0.0.1"], "{text}");
    assert_eq!(values(&headers, "x-forwarded-proto"), ["https"], "{text}");
    assert_eq!(
        values(&headers, "forwarded"),
        [format!("for=127.0.0.1;host=\"{}\";proto=https", site.name).as_str()],
        "{text}"
    );
    for dropped in ["x-client-ip", "true-client-ip", "x-cluster-client-ip"] {
        assert!(values(&headers, dropped).is_empty(), "{dropped}: {text}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hop_by_hop_headers_and_non_websocket_upgrades_stay_at_the_edge() {
    let site = Site::start().await;
    let hop_by_hop = [
        "connection",
        "upgrade",
        "http2-settings",
        "keep-alive",
        "te",
        "proxy-connection",
        "x-hop",
        "trailer",
    ];
    for (what, extra) in [
        (
            "an h2c upgrade",
            vec![
                "Connection: Upgrade, HTTP2-Settings".to_owned(),
                "Upgrade: h2c".to_owned(),
                "HTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA".to_owned(),
            ],
        ),
        (
            "a bare Connection: upgrade",
            vec!["Connection: upgrade".to_owned()],
        ),
        (
            "headers named by Connection and the fixed hop-by-hop ones",
            vec![
                "Connection: keep-alive, X-Hop".to_owned(),
                "X-Hop: secret".to_owned(),
                "Keep-Alive: timeout=5".to_owned(),
                "TE: trailers".to_owned(),
                "Trailer: x-checksum".to_owned(),
                "Proxy-Connection: keep-alive".to_owned(),
                "X-Kept: yes".to_owned(),
            ],
        ),
    ] {
        let (status, text) = site.https(&site.head("/headers", &extra)).await;
        assert_eq!(status, Some(200), "{what}: {text}");
        let headers = received(&text);
        for name in hop_by_hop {
            assert!(
                values(&headers, name).is_empty(),
                "{what}: {name} reached the origin: {text}"
            );
        }
    }
    let (_, text) = site
        .https(&site.head("/headers", &["X-Kept: yes".to_owned()]))
        .await;
    assert_eq!(values(&received(&text), "x-kept"), ["yes"], "{text}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_websocket_upgrade_still_goes_through() {
    let site = Site::start().await;
    let tls = tls_connect(
        site.terminator.https_addr(),
        &site.name,
        tls_client(std::slice::from_ref(&site.env.ca.root), &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let (mut socket, response) = tokio::time::timeout(
        Duration::from_secs(10),
        tokio_tungstenite::client_async(format!("wss://{}/ws", site.name), tls),
    )
    .await
    .expect("the WebSocket handshake finishes within 10 s")
    .unwrap();
    assert_eq!(response.status(), StatusCode::SWITCHING_PROTOCOLS);
    socket
        .send(tokio_tungstenite::tungstenite::Message::text("through"))
        .await
        .unwrap();
    let echoed = tokio::time::timeout(Duration::from_secs(5), socket.next())
        .await
        .expect("an echo within 5 s")
        .unwrap()
        .unwrap();
    assert_eq!(echoed.into_text().unwrap().as_str(), "through");
}

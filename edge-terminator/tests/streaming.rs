//! 100 MB up and 100 MB down through the terminator without the process's memory growing by
//! more than a few MB: bodies are streamed, never buffered whole. Alone in its test binary so
//! the resident set it measures is this test's only.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edgecert_core::origin::OriginPolicy;
use edgecert_dns::HickoryResolver;
use futures::StreamExt as _;
use http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use hyper_util::rt::TokioIo;
use support::origin::Origin;
use support::*;

const MIB: usize = 1024 * 1024;
const SIZE: usize = 100 * MIB;
/// Growth of the peak resident set allowed while 200 MB stream through.
const ALLOWED_GROWTH: u64 = 8 * MIB as u64;

static CHUNK: [u8; 64 * 1024] = [42u8; 64 * 1024];

/// A field of /proc/self/status, in bytes.
fn status_bytes(field: &str) -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|line| line.starts_with(field))
        .unwrap_or_else(|| panic!("{field} in /proc/self/status"));
    let kib: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|value| value.parse().ok())
        .unwrap();
    kib * 1024
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hundred_megabytes_each_way_do_not_grow_memory() {
    let env = Env::new().await;
    let origin = Origin::start().await;
    let name = unique_name("stream");
    env.seed_issued(&name, &origin.url()).await;
    // Origins are IP literals here: the resolver is never asked.
    let resolver = Arc::new(HickoryResolver::with_name_server(
        "127.0.0.1:9".parse().unwrap(),
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
    config.idle_timeout = Duration::from_secs(30);
    let terminator = start(services, Arc::new(NoIssuance::default()), config, None).await;
    assert!(terminator.wait_loaded(Duration::from_secs(10)).await);
    let roots = vec![env.ca.root.clone()];

    let tls = tls_connect(
        terminator.https_addr(),
        &name,
        tls_client(&roots, &[b"http/1.1"]),
    )
    .await
    .unwrap();
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);

    // Warm up every buffer and pool once with a small exchange each way.
    let warm_up = Request::get("/stream/1048576")
        .header("host", name.as_str())
        .body(empty_body())
        .unwrap();
    let response = sender.send_request(warm_up).await.unwrap();
    response.into_body().collect().await.unwrap();

    // Forget the peak so far (write 5 to clear_refs), then measure from here.
    std::fs::write("/proc/self/clear_refs", "5").unwrap();
    let resident_before = status_bytes("VmRSS:");
    let started = Instant::now();

    let chunks = futures::stream::iter(0..SIZE / CHUNK.len()).map(|_| {
        Ok::<_, Box<dyn std::error::Error + Send + Sync>>(hyper::body::Frame::data(
            Bytes::from_static(&CHUNK),
        ))
    });
    let upload = Request::post("/count")
        .header("host", name.as_str())
        .body(http_body_util::StreamBody::new(chunks).boxed_unsync())
        .unwrap();
    sender.ready().await.unwrap();
    let response = sender.send_request(upload).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let body = response.into_body().collect().await.unwrap().to_bytes();
    assert_eq!(body, SIZE.to_string());

    let download = Request::get(format!("/stream/{SIZE}"))
        .header("host", name.as_str())
        .body(empty_body())
        .unwrap();
    sender.ready().await.unwrap();
    let response = sender.send_request(download).await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);
    let mut body = response.into_body();
    let mut received = 0usize;
    while let Some(frame) = body.frame().await {
        if let Ok(data) = frame.unwrap().into_data() {
            received += data.len();
        }
    }
    assert_eq!(received, SIZE);

    let peak = status_bytes("VmHWM:");
    let growth = peak.saturating_sub(resident_before);
    eprintln!(
        "streamed {} MiB in {:?}; resident before {} KiB, peak {} KiB, growth {} KiB",
        2 * SIZE / MIB,
        started.elapsed(),
        resident_before / 1024,
        peak / 1024,
        growth / 1024
    );
    assert!(
        growth < ALLOWED_GROWTH,
        "peak resident set grew by {} KiB while streaming",
        growth / 1024
    );
}

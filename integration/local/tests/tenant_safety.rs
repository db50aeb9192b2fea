//! Tenant safety through the whole system (the `edgecert-local` binary with its API, issuer
//! and edge, Pebble and challtestsrv), on SQLite and on DynamoDB + Secrets Manager in moto:
//!
//! - a deleted hostname stops being served at once, and when another account claims it, the
//!   edge shows that account's origin with a certificate from that account's own order within
//!   two seconds of its first request (issue 12, defect 1);
//! - the edge serves a name as soon as the API says it is active, and a name refused before
//!   it was whitelisted as soon as it is (defect 5).
//!
//! Every wait is bounded and fails with what it waited for.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::time::{Duration, Instant};

use serde_json::json;
use support::*;

/// A name of this run's own under a test domain.
fn unique_name(label: &str) -> String {
    format!("{label}.t{}-{}.com", std::process::id(), rand_suffix())
}

fn rand_suffix() -> String {
    use std::sync::atomic::{AtomicU64, Ordering};
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .subsec_nanos();
    format!("{nanos:x}{}", COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// Retries `attempt` every 50 ms until it returns `Some`, at most `within`; the elapsed time
/// and the value.
async fn within<T, F, Fut>(within: Duration, what: &str, mut attempt: F) -> (Duration, T)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let started = Instant::now();
    loop {
        if let Some(value) = attempt().await {
            return (started.elapsed(), value);
        }
        assert!(started.elapsed() < within, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn reclaim(storage: Storage) {
    let dir = data_dir();
    let runner = Runner::start(dir.path(), &storage, &[]).await;
    let (origin_a, origin_b) = (start_origin("A").await, start_origin("B").await);
    let (_, key_a) = runner.account("pro", false).await;
    let (_, key_b) = runner.account("pro", false).await;
    let name = unique_name("ro2");

    // GIVEN account A's domain, issued on its first request
    let (status, domain_a) = runner
        .call(
            "POST",
            "/v1/domains",
            &key_a,
            Some(json!({"hostname": name, "origin_url": origin_a})),
        )
        .await;
    assert_eq!(status, 201, "{domain_a}");
    let (status, body) = runner.https_get(&name, "/a").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "origin A path=/a"));
    let serial_a = served_serial(&runner, &name).await.unwrap();

    // WHEN A deletes it
    let id_a = domain_a["id"].as_str().unwrap();
    let (status, _) = runner
        .call("DELETE", &format!("/v1/domains/{id_a}"), &key_a, None)
        .await;
    assert_eq!(status, 204);
    // THEN nobody is served under that name any more, without waiting for a full resync
    let (gone_after, ()) = within(
        Duration::from_secs(3),
        "the deleted name refused",
        || async { runner.https_get(&name, "/").await.is_err().then_some(()) },
    )
    .await;
    eprintln!("deleted name refused after {gone_after:?}");

    // WHEN account B claims the hostname with its own origin
    let (status, domain_b) = runner
        .call(
            "POST",
            "/v1/domains",
            &key_b,
            Some(json!({"hostname": name, "origin_url": origin_b})),
        )
        .await;
    assert_eq!(status, 201, "{domain_b}");
    // THEN within two seconds of B's first request, B's origin answers with a certificate
    // from B's own order, and A's origin is never reached again
    let (served_after, serial_b) = within(
        Duration::from_secs(2),
        "B's origin with B's certificate",
        || async {
            match runner.https_get(&name, "/b").await {
                Ok((_, body)) => {
                    assert!(
                        !body.contains("origin A"),
                        "A's origin reached after the delete"
                    );
                    if body == "origin B path=/b" {
                        served_serial(&runner, &name).await.ok()
                    } else {
                        None
                    }
                }
                Err(_) => None,
            }
        },
    )
    .await;
    eprintln!("B served after {served_after:?}");
    assert_ne!(serial_b, serial_a, "B was served A's certificate");
    // AND B's own view says so
    let id_b = domain_b["id"].as_str().unwrap();
    let ssl = runner
        .poll(
            &format!("/v1/domains/{id_b}/ssl"),
            &key_b,
            Duration::from_secs(5),
            |ssl| ssl["provisioning_step"] == "active",
        )
        .await;
    assert_eq!(ssl["certificate"]["status"], "issued", "{ssl}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reclaimed_name_serves_the_new_account_within_two_seconds_on_sqlite() {
    edgecert_integration::bounded(
        std::time::Duration::from_secs(300),
        "a_reclaimed_name_serves_the_new_account_within_two_seconds_on_sqlite",
        reclaim(Storage::Sqlite),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reclaimed_name_serves_the_new_account_within_two_seconds_on_moto() {
    edgecert_integration::bounded(
        std::time::Duration::from_secs(300),
        "a_reclaimed_name_serves_the_new_account_within_two_seconds_on_moto",
        reclaim(Storage::moto("reclaim").await),
    )
    .await;
}

async fn served_when_the_api_says_so(storage: Storage) {
    let dir = data_dir();
    let runner = Runner::start(dir.path(), &storage, &[]).await;
    let origin = start_origin("ready").await;
    let (_, key) = runner.account("pro", false).await;

    // GIVEN a name refused at the edge before anyone whitelisted it
    let early = unique_name("early");
    assert!(runner.https_get(&early, "/").await.is_err());
    // WHEN it is whitelisted THEN its next handshakes succeed at once (issued on demand)
    let (status, created) = runner
        .call(
            "POST",
            "/v1/domains",
            &key,
            Some(json!({"hostname": early, "origin_url": origin})),
        )
        .await;
    assert_eq!(status, 201, "{created}");
    let (after, ()) = within(
        Duration::from_secs(3),
        "the newly whitelisted name served",
        || async { runner.https_get(&early, "/").await.is_ok().then_some(()) },
    )
    .await;
    eprintln!("whitelisted name served after {after:?}");

    // GIVEN a name whose DNS points elsewhere, refused at the edge while it does
    let later = unique_name("later");
    runner
        .challtestsrv(
            "/add-a",
            json!({"host": format!("{later}."), "addresses": ["1.1.1.1"]}),
        )
        .await;
    let (status, domain) = runner
        .call(
            "POST",
            "/v1/domains",
            &key,
            Some(json!({"hostname": later, "origin_url": origin})),
        )
        .await;
    assert_eq!(status, 201, "{domain}");
    assert!(runner.https_get(&later, "/").await.is_err());
    // WHEN DNS is fixed and a nudge has the issuer (not the edge) issue it
    runner
        .challtestsrv("/clear-a", json!({"host": format!("{later}.")}))
        .await;
    let id = domain["id"].as_str().unwrap();
    let (status, nudged) = runner
        .call("POST", &format!("/v1/domains/{id}/ssl/nudge"), &key, None)
        .await;
    assert_eq!(status, 200, "{nudged}");
    runner
        .poll(
            &format!("/v1/domains/{id}/ssl"),
            &key,
            Duration::from_secs(15),
            |ssl| ssl["provisioning_step"] == "active",
        )
        .await;
    // THEN the edge serves it as soon as the API says `active`
    let (after, ()) = within(
        Duration::from_millis(1500),
        "the active name served",
        || async { runner.https_get(&later, "/").await.is_ok().then_some(()) },
    )
    .await;
    eprintln!("active name served after {after:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_serves_a_name_once_the_api_says_it_can_on_sqlite() {
    edgecert_integration::bounded(
        std::time::Duration::from_secs(300),
        "the_edge_serves_a_name_once_the_api_says_it_can_on_sqlite",
        served_when_the_api_says_so(Storage::Sqlite),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_edge_serves_a_name_once_the_api_says_it_can_on_moto() {
    edgecert_integration::bounded(
        std::time::Duration::from_secs(300),
        "the_edge_serves_a_name_once_the_api_says_it_can_on_moto",
        served_when_the_api_says_so(Storage::moto("ready").await),
    )
    .await;
}

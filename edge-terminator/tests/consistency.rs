//! The edge follows the store: deletions and re-claims arrive as tombstones and new routes
//! through the change feed, a certificate is served only for the domain record it was issued
//! for, requests on a connection opened before a re-claim are refused, store reads grow with
//! changes and not with traffic (10,000 names), memory stays within its budget while hot
//! names stay loaded, and `/healthz` tells whether the terminator can vouch for what it
//! serves.
//! Certificates come from a test CA seeded into SQLite; every wait is bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edgecert_core::model::{Account, ApiKey};
use edgecert_core::origin::OriginPolicy;
use edgecert_core::ports::Store;
use edgecert_core::usecases::domains::delete_domain;
use edgecert_core::{AccountId, PlanName};
use edgecert_dns::HickoryResolver;
use futures::StreamExt as _;
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use support::fakes::{FakeStore, FakeVault};
use support::*;
use time::OffsetDateTime;
use tokio::net::TcpListener;

const LOOPBACK_ALLOWED: OriginPolicy = OriginPolicy {
    allow_loopback: true,
    allow_private: false,
};

/// An origin answering `origin <tag>` to everything.
async fn tagged_origin(tag: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |_: Request<_>| async move {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(format!(
                        "origin {tag}"
                    )))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{address}")
}

/// A second account in the env's store.
async fn other_account(store: &Arc<dyn Store>) -> AccountId {
    let account = Account::new(
        "Another platform".to_owned(),
        PlanName::Elite,
        false,
        OffsetDateTime::now_utc(),
    );
    store
        .create_account(&account, &ApiKey::generate().hash)
        .await
        .unwrap();
    account.id
}

/// The serial of the leaf served for `name`, or the handshake's error.
async fn served_serial(
    addr: std::net::SocketAddr,
    name: &str,
    roots: &[CertificateDer<'static>],
) -> std::io::Result<Vec<u8>> {
    let tls = tls_connect(addr, name, tls_client(roots, &[b"http/1.1"])).await?;
    let leaf = tls.get_ref().1.peer_certificates().unwrap()[0].clone();
    let (_, parsed) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
    Ok(parsed.raw_serial().to_vec())
}

fn serial_of(chain_pem: &str) -> Vec<u8> {
    let der = edgecert_terminator::roots_from_pem(chain_pem)[0].clone();
    let (_, parsed) = x509_parser::parse_x509_certificate(der.as_ref()).unwrap();
    parsed.raw_serial().to_vec()
}

async fn resolver() -> Arc<dyn edgecert_core::ports::DnsResolver> {
    Arc::new(HickoryResolver::with_name_server(
        shared_pebble().await.challtestsrv().dns_server_addr(),
    ))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reclaimed_hostname_serves_only_the_new_owners_certificate_and_origin() {
    let env = Env::new().await;
    let name = unique_name("reclaimed");
    let (origin_a, origin_b) = (tagged_origin("A").await, tagged_origin("B").await);
    let (domain_a, certificate_a) = env.seed_issued(&name, &origin_a).await;
    let services = env.services(
        env.store.clone(),
        env.vault.clone(),
        resolver().await,
        LOOPBACK_ALLOWED,
    );
    let terminator = start(
        services.clone(),
        Arc::new(NoIssuance::default()),
        test_config(),
        None,
    )
    .await;
    assert!(terminator.wait_loaded(Duration::from_secs(10)).await);
    let https = terminator.https_addr();
    let roots = vec![env.ca.root.clone()];
    let serial_a = served_serial(https, &name, &roots).await.unwrap();
    // A keep-alive connection opened while A holds the name.
    let tls = tls_connect(https, &name, tls_client(&roots, &[b"http/1.1"]))
        .await
        .unwrap();
    let (mut kept, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .unwrap();
    tokio::spawn(connection);
    let ask = |path: &'static str| {
        Request::get(path)
            .header("host", name.as_str())
            .body(empty_body())
            .unwrap()
    };
    let first = kept.send_request(ask("/")).await.unwrap();
    assert_eq!(
        first.into_body().collect().await.unwrap().to_bytes(),
        "origin A"
    );

    // GIVEN A deletes the domain and B claims the hostname with its own origin and certificate
    delete_domain(&services, &env.account.id, &domain_a.id)
        .await
        .unwrap();
    let account_b = other_account(&env.store).await;
    let claim = env.whitelist_for(&account_b, &name, &origin_b).await;
    let (_, certificate_b) = env.seed_certificate(claim).await;
    let material_b = env
        .vault
        .get_material(
            &certificate_b.id,
            &edgecert_core::ports::MaterialVersion(certificate_b.material_version.unwrap()),
        )
        .await
        .unwrap();
    let serial_b = serial_of(material_b.chain_pem.as_deref().unwrap());
    assert_ne!(serial_a, serial_b);
    assert_eq!(certificate_a.account_id, env.account.id);

    // THEN within a bound, new connections get B's certificate and reach B's origin, and A's
    // certificate is never served again once B's was
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut switched = false;
    while Instant::now() < deadline {
        match served_serial(https, &name, &roots).await {
            Ok(serial) if serial == serial_b => switched = true,
            Ok(serial) => assert!(
                !switched,
                "A's certificate served again after B's: {serial:?}"
            ),
            Err(_) => {}
        }
        if switched {
            let (status, body) = get(https, &name, &name, "/", &roots).await.unwrap();
            assert_eq!((status, body.as_str()), (StatusCode::OK, "origin B"));
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(switched, "the edge never served B's certificate for {name}");
    // AND the connection opened under A reaches nobody's origin any more
    let stale = kept.send_request(ask("/again")).await.unwrap();
    assert_eq!(stale.status(), StatusCode::MISDIRECTED_REQUEST);
    terminator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_name_claimed_again_before_its_new_certificate_exists_is_not_served_the_old_one() {
    let env = Env::new().await;
    let name = unique_name("gap");
    let origin = tagged_origin("A").await;
    let (domain_a, _) = env.seed_issued(&name, &origin).await;
    let services = env.services(
        env.store.clone(),
        env.vault.clone(),
        resolver().await,
        LOOPBACK_ALLOWED,
    );
    let terminator = start(
        services.clone(),
        Arc::new(NoIssuance::default()),
        test_config(),
        None,
    )
    .await;
    assert!(terminator.wait_loaded(Duration::from_secs(10)).await);
    let https = terminator.https_addr();
    let roots = vec![env.ca.root.clone()];
    assert!(served_serial(https, &name, &roots).await.is_ok());

    // The domain is deleted and the same account whitelists the name again (a new record):
    // the old record's certificate must not be served for the new one.
    delete_domain(&services, &env.account.id, &domain_a.id)
        .await
        .unwrap();
    env.whitelist(&name, &origin).await;
    assert!(
        eventually(Duration::from_secs(5), || terminator.certificates_cached()
            == 0)
        .await,
        "the deleted record's certificate is still held"
    );
    assert!(
        served_serial(https, &name, &roots).await.is_err(),
        "a handshake for the new record got a certificate it was never issued"
    );
    terminator.shutdown().await;
}

/// A client for many connections: trusts `roots` and resumes TLS sessions (a ticket per
/// name), so that repeated requests cost the test little.
fn resuming_client(roots: &[CertificateDer<'static>]) -> Arc<rustls::ClientConfig> {
    let mut config = (*tls_client(roots, &[b"http/1.1"])).clone();
    config.resumption = rustls::client::Resumption::in_memory_sessions(20_000);
    Arc::new(config)
}

/// `requests` times `GET /` for every name, over a TLS connection of its own per name (kept
/// alive between its requests), eight names at a time; fails unless every answer is 200 with
/// `body`.
async fn get_every(
    https: std::net::SocketAddr,
    names: &[String],
    client: &Arc<rustls::ClientConfig>,
    body: &str,
    requests: usize,
) {
    let answers: Vec<(String, anyhow::Result<(StatusCode, String)>)> =
        futures::stream::iter(names.iter().cloned())
            .map(|name| {
                let client = client.clone();
                let expected = body.to_owned();
                async move {
                    let answer = async {
                        let tls = tls_connect(https, &name, client).await?;
                        let (mut sender, connection) =
                            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
                        tokio::spawn(connection);
                        let mut answer = None;
                        for _ in 0..requests {
                            let request = Request::get("/")
                                .header("host", name.as_str())
                                .body(empty_body())?;
                            sender.ready().await?;
                            let response = sender.send_request(request).await?;
                            let status = response.status();
                            let bytes = response.into_body().collect().await?.to_bytes();
                            let body = String::from_utf8_lossy(&bytes).into_owned();
                            // The first wrong answer is the one to show.
                            let wrong = status != StatusCode::OK || body != expected;
                            answer = Some((status, body));
                            if wrong {
                                break;
                            }
                        }
                        answer.ok_or_else(|| anyhow::anyhow!("no request sent"))
                    };
                    let answer = tokio::time::timeout(Duration::from_secs(10), answer)
                        .await
                        .unwrap_or_else(|_| Err(anyhow::anyhow!("no answer within 10 s")));
                    (name, answer)
                }
            })
            .buffer_unordered(8)
            .collect()
            .await;
    let wrong: Vec<String> = answers
        .iter()
        .filter(|(_, answer)| !matches!(answer, Ok((StatusCode::OK, got)) if got == body))
        .take(5)
        .map(|(name, answer)| format!("{name}: {answer:?}"))
        .collect();
    assert!(
        wrong.is_empty(),
        "expected 200 '{body}' for all {} names; among the failures:\n{}",
        names.len(),
        wrong.join("\n")
    );
}

fn refreshes(terminator: &edgecert_terminator::Terminator) -> usize {
    metric(
        &terminator.metrics_text(),
        "edgecert_terminator_cache_refreshes_total{outcome=\"ok\"}",
    ) as usize
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_reads_grow_with_changes_not_with_traffic_to_ten_thousand_names() {
    const NAMES: usize = 10_000;
    const CHANGED: usize = 100;
    let started = Instant::now();
    let env = Env::on_tmpfs().await;
    let (origin, new_origin) = (tagged_origin("bulk").await, tagged_origin("moved").await);
    // Every name has its own domain record and certificate item, all made of one wildcard
    // leaf: thousands of names without thousands of keys.
    let zone = unique_name("bulk");
    let (chain, key) = env.ca.leaf(&[format!("*.{zone}")]);
    let names: Vec<String> = (0..NAMES).map(|n| format!("n{n:05}.{zone}")).collect();
    env.seed_many_sharing(&names, &origin, &chain, &key).await;
    let seeded = started.elapsed();
    let store = FakeStore::new(env.store.clone());
    let vault = FakeVault::new(env.vault.clone());
    let services = env.services(
        store.clone(),
        vault.clone(),
        resolver().await,
        LOOPBACK_ALLOWED,
    );
    let mut config = test_config();
    // Many feed passes while the traffic runs.
    config.refresh_interval = Duration::from_millis(100);
    config.change_overlap = Duration::from_millis(500);
    let terminator = start(services, Arc::new(NoIssuance::default()), config, None).await;

    // GIVEN a terminator ready over 10k names: it read none of them to get there
    assert!(terminator.wait_loaded(Duration::from_secs(10)).await);
    assert_eq!(terminator.certificates_cached(), 0);
    assert_eq!((store.lookups(), vault.material_reads()), (0, 0));
    let https = terminator.https_addr();
    let client = resuming_client(std::slice::from_ref(&env.ca.root));

    // WHEN every name gets its first request THEN each is loaded once, on that request
    get_every(https, &names, &client, "origin bulk", 1).await;
    let first_round = started.elapsed();
    let loaded = (store.lookups(), vault.material_reads());
    assert_eq!(
        loaded,
        (2 * NAMES, NAMES),
        "first requests: one domain and one certificate lookup, and one vault read, per name"
    );
    assert_eq!(terminator.certificates_cached(), NAMES);

    // WHEN 20,000 more requests come, with nothing changing in the store: a fifth of the names
    // each get a new (resumed) connection and ten requests on it (new handshakes and requests
    // alike, and few handshakes: they are what costs this test its time)
    let (feed_before, reads_before, passes_before) =
        (store.feed_items(), store.reads(), refreshes(&terminator));
    let again: Vec<String> = names.iter().step_by(5).cloned().collect();
    get_every(https, &again, &client, "origin bulk", 10).await;
    // THEN they cost no lookup and no vault read; the feeds were read once per pass and
    // returned nothing
    assert_eq!(
        (store.lookups(), vault.material_reads()),
        loaded,
        "20,000 requests to 2,000 loaded names looked names up or read the vault"
    );
    let passes = refreshes(&terminator) - passes_before;
    assert!(passes >= 5, "only {passes} feed passes during the traffic");
    assert_eq!(
        store.feed_items(),
        feed_before,
        "the feeds returned items with no change"
    );
    assert!(
        store.reads() - reads_before <= 2 * (passes + 1),
        "{} store reads in {passes} passes",
        store.reads() - reads_before
    );

    // WHEN 100 of the names move to another origin
    let domain_changes = || {
        metric(
            &terminator.metrics_text(),
            "edgecert_terminator_feed_changes_total{kind=\"domain\"}",
        ) as usize
    };
    let (feed_before, changes_before) = (store.feed_items(), domain_changes());
    for name in &names[..CHANGED] {
        let hostname = edgecert_core::Hostname::parse_domain(name).unwrap();
        let mut domain = env
            .store
            .domain_by_hostname(&hostname)
            .await
            .unwrap()
            .unwrap();
        domain.origin_url = new_origin.clone();
        domain.updated_at = OffsetDateTime::now_utc();
        env.store.update_domain(&domain).await.unwrap();
    }
    // THEN the feed brings the changes, and reads in proportion to them (each change is read
    // again in the passes within its overlap)
    assert!(
        eventually(Duration::from_secs(5), || domain_changes()
            >= changes_before + CHANGED)
        .await,
        "the changes never came through the feed"
    );
    tokio::time::sleep(Duration::from_millis(800)).await;
    let read_again = store.feed_items() - feed_before;
    assert!(
        (CHANGED..=CHANGED * 10).contains(&read_again),
        "{read_again} feed items read for {CHANGED} changes"
    );
    // AND the next requests reach the new origin, still with no lookup
    get_every(https, &names[..CHANGED], &client, "origin moved", 1).await;
    get_every(
        https,
        &names[CHANGED..2 * CHANGED],
        &client,
        "origin bulk",
        1,
    )
    .await;
    assert_eq!((store.lookups(), vault.material_reads()), loaded);
    eprintln!(
        "seeded {NAMES} names in {seeded:?}; first requests done at {first_round:?}; \
         everything in {:?}",
        started.elapsed()
    );
    terminator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn within_its_memory_budget_the_edge_keeps_hot_names_and_serves_every_name() {
    let env = Env::new().await;
    let origin = tagged_origin("budget").await;
    let zone = unique_name("budget");
    let (chain, key) = env.ca.leaf(&[format!("*.{zone}")]);
    let hot = format!("hot.{zone}");
    let cold: Vec<String> = (0..150).map(|n| format!("cold{n:03}.{zone}")).collect();
    env.seed_many_sharing(std::slice::from_ref(&hot), &origin, &chain, &key)
        .await;
    env.seed_many_sharing(&cold, &origin, &chain, &key).await;
    let store = FakeStore::new(env.store.clone());
    let services = env.services(
        store.clone(),
        env.vault.clone(),
        resolver().await,
        LOOPBACK_ALLOWED,
    );
    let mut config = test_config();
    // Room for a few dozen names at most.
    let budget = 64 * 1024;
    config.cache_memory_budget = budget;
    let terminator = start(services, Arc::new(NoIssuance::default()), config, None).await;
    assert!(terminator.wait_loaded(Duration::from_secs(10)).await);
    let https = terminator.https_addr();
    let client = resuming_client(std::slice::from_ref(&env.ca.root));

    // WHEN 150 names come one after the other, and the hot one is used between any two
    for name in &cold {
        get_every(
            https,
            std::slice::from_ref(&hot),
            &client,
            "origin budget",
            1,
        )
        .await;
        get_every(
            https,
            std::slice::from_ref(name),
            &client,
            "origin budget",
            1,
        )
        .await;
    }

    // THEN every name was served, memory stayed within the budget by evicting cold names,
    // and the hot name was loaded once: it never waited on the store again
    let metrics = terminator.metrics_text();
    let bytes = metric(&metrics, "edgecert_terminator_cache_bytes");
    assert!(
        bytes > 0.0 && bytes <= budget as f64,
        "{bytes} bytes held over a budget of {budget}"
    );
    assert!(
        metric(&metrics, "edgecert_terminator_cache_evictions_total") >= 50.0,
        "{metrics}"
    );
    assert!(terminator.certificates_cached() < 100);
    assert_eq!(store.lookups_of(&hot), 1, "the hot name was loaded again");
    // AND an evicted name is loaded again on its next handshake
    assert_eq!(store.lookups_of(&cold[0]), 1);
    get_every(https, &cold[..1], &client, "origin budget", 1).await;
    assert_eq!(store.lookups_of(&cold[0]), 2);
    terminator.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn healthz_fails_until_the_first_load_and_while_the_store_is_unreachable() {
    let env = Env::new().await;
    let origin = tagged_origin("health").await;
    let name = unique_name("health");
    env.seed_issued(&name, &origin).await;
    let store = FakeStore::new(env.store.clone());
    store.fail(true);
    let services = env.services(
        store.clone(),
        env.vault.clone(),
        resolver().await,
        LOOPBACK_ALLOWED,
    );
    let mut config = test_config();
    config.unhealthy_after_store_failures = Duration::from_millis(500);
    let terminator = start(services, Arc::new(NoIssuance::default()), config, None).await;
    let admin = terminator.admin_addr().unwrap();
    let health = || async { plain_get(admin, "localhost", "/healthz").await.unwrap() };

    // GIVEN a store that cannot be read: nothing loaded, unhealthy
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, _, body) = health().await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{body}");
    assert!(body.contains("first load"), "{body}");

    // WHEN it comes back: healthy once loaded
    store.fail(false);
    assert!(terminator.wait_loaded(Duration::from_secs(10)).await);
    let deadline = Instant::now() + Duration::from_secs(5);
    while health().await.0 != StatusCode::OK {
        assert!(Instant::now() < deadline, "never healthy after the load");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // AND the name, used once, is held (names load on their first handshake)
    let roots = vec![env.ca.root.clone()];
    let (status, body) = get(terminator.https_addr(), &name, &name, "/", &roots)
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "origin health"));

    // WHEN it fails again past the bound: unhealthy, while the loaded name is still served
    store.fail(true);
    let deadline = Instant::now() + Duration::from_secs(5);
    loop {
        let (status, _, body) = health().await;
        if status == StatusCode::SERVICE_UNAVAILABLE {
            assert!(body.contains("store"), "{body}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still healthy with the store down"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, body) = get(terminator.https_addr(), &name, &name, "/", &roots)
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "origin health"));
    terminator.shutdown().await;
}

//! The edge follows the store: deletions and re-claims arrive as tombstones and new routes
//! through the change feed, a certificate is served only for the domain record it was issued
//! for, requests on a connection opened before a re-claim are refused, traffic costs no store
//! lookups, and `/healthz` tells whether the terminator can vouch for what it serves.
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
use http::{Request, StatusCode};
use http_body_util::{BodyExt as _, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::CertificateDer;
use support::fakes::FakeStore;
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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn traffic_to_cached_names_costs_no_store_lookups() {
    let env = Env::new().await;
    let origin = tagged_origin("steady").await;
    let mut names = Vec::new();
    for _ in 0..20 {
        let name = unique_name("busy");
        env.seed_issued(&name, &origin).await;
        names.push(name);
    }
    let store = FakeStore::new(env.store.clone());
    let services = env.services(
        store.clone(),
        env.vault.clone(),
        resolver().await,
        LOOPBACK_ALLOWED,
    );
    let mut config = test_config();
    config.refresh_interval = Duration::from_millis(50);
    let terminator = start(services, Arc::new(NoIssuance::default()), config, None).await;
    assert!(terminator.wait_loaded(Duration::from_secs(10)).await);
    let roots = vec![env.ca.root.clone()];
    let before = store.lookups();
    // Far longer than the old per-hostname revalidation period of the test config, and many
    // requests per name.
    for round in 0..10 {
        for name in &names {
            let (status, _) = get(terminator.https_addr(), name, name, "/", &roots)
                .await
                .unwrap();
            assert_eq!(status, StatusCode::OK, "round {round}, {name}");
        }
    }
    assert_eq!(
        store.lookups() - before,
        0,
        "200 requests to 20 cached names looked domains or certificates up in the store"
    );
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
    let roots = vec![env.ca.root.clone()];
    let (status, body) = get(terminator.https_addr(), &name, &name, "/", &roots)
        .await
        .unwrap();
    assert_eq!((status, body.as_str()), (StatusCode::OK, "origin health"));
    terminator.shutdown().await;
}

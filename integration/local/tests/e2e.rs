//! End to end: the `edgecert-local` binary as a real process (API, issuer, renewer and edge
//! terminator, with Pebble and challtestsrv), a tiny origin HTTP server in the test, and a
//! rustls client with SNI trusting Pebble's issuing root — all over loopback. Every flow runs
//! on the embedded SQLite store and on DynamoDB + Secrets Manager in moto.
//!
//! Flows: AutoSSL (first HTTPS request issues on demand), Vector (TXT ownership, DNS check,
//! proactive provisioning, nudge), CertaDNS (DNS-01 certificates and every plan error),
//! Renewal (short-lived certificates renewed while handshakes keep succeeding) and Restart
//! (the runner killed with SIGKILL mid-issuance, then started again on the same storage).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation in a helper is a failed test

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use serde_json::{Value, json};

mod support;

use support::*;

// ---------------------------------------------------------------------------------------------
// AutoSSL

async fn autossl(storage: Storage) {
    let dir = data_dir();
    let runner = Runner::start(dir.path(), &storage, &[]).await;
    let origin = start_origin("autossl").await;
    let (_, key) = runner.account("pro", false).await;
    let name = "shop.autossl-e2e.com";
    let (status, domain) = runner
        .call(
            "POST",
            "/v1/domains",
            &key,
            Some(json!({"hostname": name, "origin_url": origin})),
        )
        .await;
    assert_eq!(status, 201, "{domain}");
    let id = domain["id"].as_str().unwrap().to_owned();
    let (status, dns) = runner
        .call("GET", &format!("/v1/domains/{id}/dns"), &key, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(dns["dns_instructions"]["records"][0]["type"], "CNAME");
    assert_eq!(
        dns["dns_instructions"]["records"][0]["value"],
        "edge.edgecert.localhost"
    );

    // challtestsrv answers 127.0.0.1 for every name: the customer's DNS points at the edge.
    // The first HTTPS request has the certificate issued by Pebble and reaches the origin.
    let (status, body) = runner.https_get(name, "/first").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "origin autossl path=/first"));
    let ssl = runner
        .poll(
            &format!("/v1/domains/{id}/ssl"),
            &key,
            Duration::from_secs(10),
            |ssl| ssl["provisioning_step"] == "active",
        )
        .await;
    assert_eq!(ssl["certificate"]["status"], "issued", "{ssl}");
    let (status, body) = runner.https_get(name, "/second").await.unwrap();
    assert_eq!(
        (status, body.as_str()),
        (200, "origin autossl path=/second")
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autossl_on_sqlite() {
    edgecert_integration::bounded(
        std::time::Duration::from_secs(300),
        "autossl_on_sqlite",
        autossl(Storage::Sqlite),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn autossl_on_moto() {
    edgecert_integration::bounded(
        std::time::Duration::from_secs(300),
        "autossl_on_moto",
        autossl(Storage::moto("autossl").await),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Vector

async fn vector(storage: Storage) {
    let dir = data_dir();
    let runner = Runner::start(dir.path(), &storage, &[]).await;
    let origin = start_origin("vector").await;
    let (_, key) = runner.account("pro", true).await;
    let name = "status.vector-e2e.com";
    // The customer's name points elsewhere at first.
    runner
        .challtestsrv(
            "/add-a",
            json!({"host": format!("{name}."), "addresses": ["203.0.113.7"]}),
        )
        .await;
    let (status, domain) = runner
        .call(
            "POST",
            "/v1/domains",
            &key,
            Some(json!({"hostname": name, "origin_url": origin})),
        )
        .await;
    assert_eq!(status, 201, "{domain}");
    assert_eq!(domain["provisioning_step"], "waiting_ownership");
    let id = domain["id"].as_str().unwrap().to_owned();
    let txt = &domain["ownership_verification"];
    runner
        .challtestsrv(
            "/set-txt",
            json!({"host": format!("{}.", txt["name"].as_str().unwrap()), "value": txt["value"]}),
        )
        .await;
    let (status, verified) = runner
        .call("POST", &format!("/v1/domains/{id}/verify"), &key, None)
        .await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["provisioning_step"], "waiting_dns");

    // The DNS check fails and says why.
    let (status, nudged) = runner
        .call("POST", &format!("/v1/domains/{id}/ssl/nudge"), &key, None)
        .await;
    assert_eq!(status, 200, "{nudged}");
    assert_eq!(nudged["provisioning_step"], "waiting_dns", "{nudged}");
    assert!(
        nudged["error"].as_str().unwrap().contains("203.0.113.7"),
        "{nudged}"
    );

    // The customer points the name at the edge; a nudge retries the failed step now, and the
    // certificate is provisioned with no client request.
    runner
        .challtestsrv("/clear-a", json!({"host": format!("{name}.")}))
        .await;
    let (status, nudged) = runner
        .call("POST", &format!("/v1/domains/{id}/ssl/nudge"), &key, None)
        .await;
    assert_eq!(status, 200, "{nudged}");
    let ssl = runner
        .poll(
            &format!("/v1/domains/{id}/ssl"),
            &key,
            Duration::from_secs(30),
            |ssl| ssl["provisioning_step"] == "active",
        )
        .await;
    assert_eq!(ssl["certificate"]["status"], "issued", "{ssl}");
    assert!(ssl["error"].is_null(), "{ssl}");
    let (status, body) = runner.https_get(name, "/").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "origin vector path=/"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_on_sqlite() {
    edgecert_integration::bounded(
        std::time::Duration::from_secs(300),
        "vector_on_sqlite",
        vector(Storage::Sqlite),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn vector_on_moto() {
    edgecert_integration::bounded(
        std::time::Duration::from_secs(300),
        "vector_on_moto",
        vector(Storage::moto("vector").await),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// CertaDNS

/// Imports `name` for the account of `key`, after publishing the account's zone token (read
/// through the API) at `_edgecert-zone.<name>` in challtestsrv, as the zone's owner would.
async fn zone(runner: &Runner, key: &str, name: &str) -> String {
    let (status, record) = runner
        .call(
            "GET",
            &format!("/v1/zones/verification?name={name}"),
            key,
            None,
        )
        .await;
    assert_eq!(status, 200, "{record}");
    assert_eq!(record["name"], format!("_edgecert-zone.{name}"), "{record}");
    runner
        .challtestsrv(
            "/set-txt",
            json!({"host": format!("_edgecert-zone.{name}."), "value": record["value"]}),
        )
        .await;
    let (status, zone) = runner
        .call(
            "POST",
            "/v1/zones",
            key,
            Some(json!({"name": name, "provider": "challtestsrv", "provider_zone_id": name})),
        )
        .await;
    assert_eq!(status, 201, "{zone}");
    zone["id"].as_str().unwrap().to_owned()
}

async fn request_certificate(runner: &Runner, key: &str, body: Value) -> (u16, Value) {
    runner
        .call("POST", "/v1/certificates", key, Some(body))
        .await
}

fn assert_error(response: &(u16, Value), status: u16, message: &str) {
    assert_eq!(response.0, status, "{}", response.1);
    assert_eq!(
        response.1["error"]["message"].as_str(),
        Some(message),
        "{}",
        response.1
    );
}

/// Downloads `id` and checks the PEMs: the leaf chains to Pebble's root for every name and the
/// key is the leaf's. Returns the leaf's serial.
async fn download_and_verify(runner: &Runner, key: &str, id: &str, names: &[&str]) -> Vec<u8> {
    use rustls::pki_types::pem::PemObject as _;
    let (status, download) = runner
        .call("GET", &format!("/v1/certificates/{id}/download"), key, None)
        .await;
    assert_eq!(status, 200, "{download}");
    let leaf =
        CertificateDer::from_pem_slice(download["certificate_pem"].as_str().unwrap().as_bytes())
            .unwrap();
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(download["chain_pem"].as_str().unwrap().as_bytes())
            .collect::<Result<_, _>>()
            .unwrap();
    assert!(!chain.is_empty());
    let private_key =
        PrivateKeyDer::from_pem_slice(download["private_key_pem"].as_str().unwrap().as_bytes())
            .unwrap();
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let signing_key = provider.key_provider.load_private_key(private_key).unwrap();
    let mut full_chain = vec![leaf.clone()];
    full_chain.extend(
        chain
            .iter()
            .filter(|c| c.as_ref() != leaf.as_ref())
            .cloned(),
    );
    rustls::sign::CertifiedKey::new(full_chain, signing_key)
        .keys_match()
        .expect("the private key is the leaf's");

    let mut roots = rustls::RootCertStore::empty();
    for root in &runner.roots {
        roots.add(root.clone()).unwrap();
    }
    let verifier =
        rustls::client::WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider)
            .build()
            .unwrap();
    let intermediates: Vec<_> = chain
        .iter()
        .filter(|c| c.as_ref() != leaf.as_ref())
        .cloned()
        .collect();
    for name in names {
        use rustls::client::danger::ServerCertVerifier as _;
        let server_name = ServerName::try_from(name.to_string()).unwrap();
        verifier
            .verify_server_cert(&leaf, &intermediates, &server_name, &[], UnixTime::now())
            .unwrap_or_else(|error| panic!("{name}: {error}"));
    }
    serial_of(leaf.as_ref())
}

async fn certadns(storage: Storage) {
    let dir = data_dir();
    let runner = Runner::start(dir.path(), &storage, &[]).await;

    // Elite: a zone, a certificate with SANs over DNS-01, issued within seconds.
    let (_, elite) = runner.account("elite", false).await;
    let zone_id = zone(&runner, &elite, "certa-e2e.com").await;
    let names = ["certa-e2e.com", "www.certa-e2e.com", "api.certa-e2e.com"];
    let created = request_certificate(
        &runner,
        &elite,
        json!({"zone_id": zone_id, "domain": names[0], "sans": names[1..], "auto_renew": false}),
    )
    .await;
    assert_eq!(created.0, 202, "{}", created.1);
    assert_eq!(created.1["status"], "pending");
    let id = created.1["id"].as_str().unwrap().to_owned();
    let path = format!("/v1/certificates/{id}");
    let issued = runner
        .poll(&path, &elite, Duration::from_secs(60), |c| {
            c["status"] == "issued"
        })
        .await;
    assert_eq!(issued["sans"].as_array().unwrap().len(), 2, "{issued}");
    let first_serial = download_and_verify(&runner, &elite, &id, &names).await;

    // Duplicate, out of zone, unknown zone.
    assert_error(
        &request_certificate(
            &runner,
            &elite,
            json!({"zone_id": zone_id, "domain": names[0]}),
        )
        .await,
        409,
        "Certificate already exists for domain",
    );
    assert_error(
        &request_certificate(
            &runner,
            &elite,
            json!({"zone_id": zone_id, "domain": "shop.elsewhere-e2e.com"}),
        )
        .await,
        400,
        "Domain not under zone",
    );

    // Renew: a new certificate (new serial), issued again.
    let (status, renewing) = runner
        .call("POST", &format!("{path}/renew"), &elite, None)
        .await;
    assert!(status == 200 || status == 202, "{status} {renewing}");
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let (_, now) = runner.call("GET", &path, &elite, None).await;
        if now["status"] == "issued" {
            let serial = download_and_verify(&runner, &elite, &id, &names).await;
            if serial != first_serial {
                break;
            }
        }
        assert!(Instant::now() < deadline, "never renewed: {now}");
        tokio::time::sleep(Duration::from_millis(250)).await;
    }

    // Auto-renew toggle.
    for value in [true, false] {
        let (status, updated) = runner
            .call("PATCH", &path, &elite, Some(json!({"auto_renew": value})))
            .await;
        assert_eq!(status, 200, "{updated}");
        assert_eq!(updated["auto_renew"], value);
    }

    // Delete with revocation at the CA.
    let (status, body) = runner
        .call("DELETE", &format!("{path}?revoke=true"), &elite, None)
        .await;
    assert!(status == 204 || status == 200, "{status} {body}");
    let (status, _) = runner.call("GET", &path, &elite, None).await;
    assert_eq!(status, 404);

    // Every plan error, with its exact message.
    let (_, free) = runner.account("free", false).await;
    assert_error(
        &request_certificate(
            &runner,
            &free,
            json!({"zone_id": zone_id, "domain": names[0]}),
        )
        .await,
        403,
        "Certificate management requires paid subscription",
    );
    let (_, pro) = runner.account("pro", false).await;
    let pro_zone = zone(&runner, &pro, "pro-e2e.com").await;
    assert_error(
        &request_certificate(
            &runner,
            &pro,
            json!({"zone_id": pro_zone, "domain": "pro-e2e.com", "wildcard": true}),
        )
        .await,
        403,
        "Wildcard certificates require Elite plan",
    );
    let (_, plus) = runner.account("plus", false).await;
    let plus_zone = zone(&runner, &plus, "plus-e2e.com").await;
    assert_error(
        &request_certificate(
            &runner,
            &plus,
            json!({"zone_id": plus_zone, "domain": "plus-e2e.com", "auto_renew": true}),
        )
        .await,
        403,
        "Auto-renewal requires Pro or Elite plan",
    );
    assert_error(
        &request_certificate(
            &runner,
            &plus,
            json!({"zone_id": zone_id, "domain": names[0]}),
        )
        .await,
        404,
        "Zone not found or no permission",
    );
    let mut plus_certificates = Vec::new();
    for n in 0..5 {
        let created = request_certificate(
            &runner,
            &plus,
            json!({"zone_id": plus_zone, "domain": format!("n{n}.plus-e2e.com")}),
        )
        .await;
        assert_eq!(created.0, 202, "{}", created.1);
        plus_certificates.push(created.1["id"].as_str().unwrap().to_owned());
    }
    assert_error(
        &request_certificate(
            &runner,
            &plus,
            json!({"zone_id": plus_zone, "domain": "n5.plus-e2e.com"}),
        )
        .await,
        403,
        "Certificate limit reached for plan",
    );
    // Spare Pebble five orders nobody needs.
    for id in plus_certificates {
        let (status, _) = runner
            .call("DELETE", &format!("/v1/certificates/{id}"), &plus, None)
            .await;
        assert!(status == 204 || status == 200);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certadns_on_sqlite() {
    edgecert_integration::bounded(
        std::time::Duration::from_secs(300),
        "certadns_on_sqlite",
        certadns(Storage::Sqlite),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn certadns_on_moto() {
    edgecert_integration::bounded(
        std::time::Duration::from_secs(300),
        "certadns_on_moto",
        certadns(Storage::moto("certadns").await),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Renewal

async fn renewal(storage: Storage) {
    let dir = data_dir();
    let runner = Runner::start(
        dir.path(),
        &storage,
        &[
            ("EDGECERT_CERTIFICATE_VALIDITY_SECONDS", "30"),
            ("EDGECERT_RENEWAL_INTERVAL_SECONDS", "2"),
        ],
    )
    .await;
    let origin = start_origin("renewal").await;
    let (_, key) = runner.account("pro", false).await;
    let name = "www.renewal-e2e.com";
    let (status, domain) = runner
        .call(
            "POST",
            "/v1/domains",
            &key,
            Some(json!({"hostname": name, "origin_url": origin})),
        )
        .await;
    assert_eq!(status, 201, "{domain}");
    let (status, body) = runner.https_get(name, "/").await.unwrap();
    assert_eq!((status, body.as_str()), (200, "origin renewal path=/"));

    // Handshake (verifying validity against Pebble's root) every 200 ms for 45 s: the served
    // certificate changes at least once, and no handshake fails.
    let mut serials = vec![served_serial(&runner, name).await.unwrap()];
    let mut handshakes = 0;
    let started = Instant::now();
    while started.elapsed() < Duration::from_secs(45) {
        let serial = served_serial(&runner, name)
            .await
            .unwrap_or_else(|error| panic!("handshake {handshakes} failed: {error}"));
        handshakes += 1;
        if serials.last() != Some(&serial) {
            serials.push(serial);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert!(
        serials.len() >= 2,
        "the served certificate never changed in {handshakes} handshakes"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_on_sqlite() {
    edgecert_integration::bounded(
        std::time::Duration::from_secs(300),
        "renewal_on_sqlite",
        renewal(Storage::Sqlite),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn renewal_on_moto() {
    edgecert_integration::bounded(
        std::time::Duration::from_secs(300),
        "renewal_on_moto",
        renewal(Storage::moto("renewal").await),
    )
    .await;
}

// ---------------------------------------------------------------------------------------------
// Restart

async fn restart(storage: Storage) {
    let dir = data_dir();
    let data: PathBuf = dir.path().to_path_buf();
    let runner = Runner::start(&data, &storage, &[]).await;
    let (_, key) = runner.account("elite", false).await;
    let zone_id = zone(&runner, &key, "restart-e2e.com").await;
    let (status, domain) = runner
        .call(
            "POST",
            "/v1/domains",
            &key,
            Some(
                json!({"hostname": "shop.restart-e2e.com", "origin_url": "http://127.0.0.1:3000"}),
            ),
        )
        .await;
    assert_eq!(status, 201, "{domain}");
    let domain_id = domain["id"].as_str().unwrap().to_owned();
    let created = request_certificate(
        &runner,
        &key,
        json!({"zone_id": zone_id, "domain": "restart-e2e.com", "sans": ["www.restart-e2e.com"]}),
    )
    .await;
    assert_eq!(created.0, 202, "{}", created.1);
    let id = created.1["id"].as_str().unwrap().to_owned();
    // Killed as soon as the issuer has an order open at the CA (`validating`), or after 3 s.
    let path = format!("/v1/certificates/{id}");
    let deadline = Instant::now() + Duration::from_secs(3);
    let mut mid_order = false;
    while Instant::now() < deadline {
        let (_, now) = runner.call("GET", &path, &key, None).await;
        if now["status"] != "pending" {
            mid_order = now["status"] == "validating";
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let admin_key = runner.admin_key.clone();
    runner.kill_hard();

    // Same data dir (SQLite) or table (moto); Pebble is a new CA and the old order is gone.
    let runner = Runner::start(&data, &storage, &[]).await;
    assert_eq!(runner.admin_key, admin_key);
    let issued = runner
        .poll(&path, &key, Duration::from_secs(75), |c| {
            c["status"] == "issued"
        })
        .await;
    assert_eq!(issued["domain"], "restart-e2e.com");
    if mid_order {
        // The old Pebble's order died with it: the issuer placed a new one at the new CA.
        let (_, logs) = runner
            .call("GET", &format!("{path}/logs"), &key, None)
            .await;
        assert!(
            logs.to_string()
                .contains("belongs to another certificate authority"),
            "{logs}"
        );
    } else {
        eprintln!("restart: the runner was killed before an order was open");
    }
    download_and_verify(
        &runner,
        &key,
        &id,
        &["restart-e2e.com", "www.restart-e2e.com"],
    )
    .await;
    let (status, domain) = runner
        .call("GET", &format!("/v1/domains/{domain_id}"), &key, None)
        .await;
    assert_eq!(status, 200, "{domain}");
    assert_eq!(domain["hostname"], "shop.restart-e2e.com");
    let (status, zones) = runner.call("GET", "/v1/zones", &key, None).await;
    assert_eq!(status, 200);
    assert!(zones.to_string().contains(&zone_id), "{zones}");
    let (status, limits) = runner.call("GET", "/v1/limits", &key, None).await;
    assert_eq!(status, 200);
    assert_eq!(limits["plan"], "elite");
    assert_eq!(limits["current_count"], 1, "{limits}");
    assert_eq!(limits["domain_count"], 1, "{limits}");
}

/// The CA changed (issue 13): the stack restarted on its data directory starts a new Pebble,
/// whose root no certificate issued before verifies against. Within 30 s of the restart every
/// earlier name serves a certificate that verifies against the new root.
async fn restart_with_a_new_ca(storage: Storage) {
    const NAMES: [&str; 3] = [
        "a.ca-change-e2e.com",
        "b.ca-change-e2e.com",
        "c.ca-change-e2e.com",
    ];
    let dir = data_dir();
    let data: PathBuf = dir.path().to_path_buf();
    let runner = Runner::start(&data, &storage, &[]).await;
    let origin = start_origin("ca-change").await;
    let (_, key) = runner.account("pro", false).await;
    // GIVEN names served with certificates of the first Pebble
    for name in NAMES {
        let (status, domain) = runner
            .call(
                "POST",
                "/v1/domains",
                &key,
                Some(json!({"hostname": name, "origin_url": origin})),
            )
            .await;
        assert_eq!(status, 201, "{domain}");
        let (status, _) = runner.https_get(name, "/").await.unwrap();
        assert_eq!(status, 200, "{name} before the restart");
    }
    let first_root = runner.roots.clone();
    runner.kill_hard();

    // WHEN the stack starts again on the same storage, with a new Pebble and a new root
    let restarted = Instant::now();
    let runner = Runner::start(&data, &storage, &[]).await;
    assert_ne!(runner.roots, first_root, "the new Pebble has a new root");

    // THEN within 30 s every name serves a certificate verifying against the new root only
    let bound = Duration::from_secs(30);
    for name in NAMES {
        loop {
            match runner.https_get(name, "/").await {
                Ok((200, _)) => break,
                outcome => assert!(
                    restarted.elapsed() < bound,
                    "{name} still not served with a certificate of the new CA {:?} after the \
                     restart: {outcome:?}",
                    restarted.elapsed()
                ),
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    eprintln!(
        "every name served by the new CA {:?} after the restart",
        restarted.elapsed()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_a_new_ca_on_sqlite() {
    edgecert_integration::bounded(
        std::time::Duration::from_secs(300),
        "restart_with_a_new_ca_on_sqlite",
        restart_with_a_new_ca(Storage::Sqlite),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_with_a_new_ca_on_moto() {
    edgecert_integration::bounded(
        std::time::Duration::from_secs(300),
        "restart_with_a_new_ca_on_moto",
        restart_with_a_new_ca(Storage::moto("cachange").await),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_sqlite() {
    edgecert_integration::bounded(
        std::time::Duration::from_secs(300),
        "restart_on_sqlite",
        restart(Storage::Sqlite),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn restart_on_moto() {
    edgecert_integration::bounded(
        std::time::Duration::from_secs(300),
        "restart_on_moto",
        restart(Storage::moto("restart").await),
    )
    .await;
}

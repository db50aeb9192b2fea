//! The local stack renews on its own: a domain's certificate from a Pebble issuing 30-second
//! certificates is issued by the in-process issuer, then renewed by the renewer's timer at two
//! thirds of its lifetime (20 s), and the certificate served from the vault changes with no
//! moment where what is served has expired — once on SQLite, once on DynamoDB + Secrets
//! Manager in moto.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::time::Duration;

use edgecert_core::CertificateId;
use edgecert_core::model::{Certificate, CertificateStatus};
use edgecert_core::ports::MaterialVersion;
use edgecert_integration::services::Moto;
use edgecert_local::{LocalOptions, LocalStack};
use serde_json::{Value, json};
use time::OffsetDateTime;

/// What the stack serves for a certificate at one instant: the stored item and its leaf.
struct Served {
    certificate: Certificate,
    serial: Vec<u8>,
    not_before: OffsetDateTime,
    not_after: OffsetDateTime,
}

async fn served(
    stack: &LocalStack,
    account: &edgecert_core::AccountId,
    id: &CertificateId,
) -> Option<Served> {
    let services = stack.services();
    let certificate = services.store.get_certificate(account, id).await.unwrap()?;
    let version = certificate.material_version.clone()?;
    let material = services
        .vault
        .get_material(id, &MaterialVersion(version))
        .await
        .unwrap();
    let chain = material.chain_pem.unwrap();
    let (_, pem) = x509_parser::pem::parse_x509_pem(chain.as_bytes()).unwrap();
    let leaf = pem.parse_x509().unwrap();
    let at = |time: &x509_parser::time::ASN1Time| {
        OffsetDateTime::from_unix_timestamp(time.timestamp()).unwrap()
    };
    Some(Served {
        serial: leaf.raw_serial().to_vec(),
        not_before: at(&leaf.validity().not_before),
        not_after: at(&leaf.validity().not_after),
        certificate,
    })
}

async fn call(
    stack: &LocalStack,
    method: &str,
    path: &str,
    key: &str,
    body: Option<Value>,
) -> (u16, Value) {
    let client = edgecert_integration::services::http_client(&[]).unwrap();
    let mut request = client
        .request(
            method.parse().unwrap(),
            format!("{}{path}", stack.info.api_url),
        )
        .bearer_auth(key);
    if let Some(body) = body {
        request = request.json(&body);
    }
    let response = request.send().await.unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        if text.is_empty() {
            Value::Null
        } else {
            serde_json::from_str(&text).unwrap()
        },
    )
}

async fn renews_without_a_gap(mut options: LocalOptions) {
    options.api_addr = "127.0.0.1:0".parse().unwrap();
    // Both storage variants run at once: the edge cannot take the default 8443 twice.
    options.edge_https_addr = "127.0.0.1:0".parse().unwrap();
    // A 90-second lifetime (under 10 days) renews at half its life: at 45 s (issue 14).
    options.certificate_validity = Some(Duration::from_secs(90));
    options.renewal_interval = Duration::from_secs(1);
    let stack = LocalStack::start(options).await.unwrap();

    // An account and a domain that points at the edge (challtestsrv answers 127.0.0.1).
    let (status, account) = call(
        &stack,
        "POST",
        "/v1/accounts",
        &stack.admin_key,
        Some(json!({"name": "Renewals", "plan": "pro"})),
    )
    .await;
    assert_eq!(status, 201, "{account}");
    let key = account["api_key"].as_str().unwrap().to_owned();
    let account_id = edgecert_core::AccountId::parse(account["id"].as_str().unwrap()).unwrap();
    let random: u64 = rand_suffix();
    let hostname = format!("renew{random:012x}.example.com");
    let (status, domain) = call(
        &stack,
        "POST",
        "/v1/domains",
        &key,
        Some(json!({"hostname": hostname, "origin_url": "http://127.0.0.1:3000"})),
    )
    .await;
    assert_eq!(status, 201, "{domain}");
    let domain_id = domain["id"].as_str().unwrap().to_owned();
    let (status, nudged) = call(
        &stack,
        "POST",
        &format!("/v1/domains/{domain_id}/ssl/nudge"),
        &key,
        None,
    )
    .await;
    assert_eq!(status, 200, "{nudged}");
    assert_eq!(nudged["provisioning_step"], "issuing", "{nudged}");
    let certificate_id =
        CertificateId::managed_for(&edgecert_core::DomainId::parse(&domain_id).unwrap());

    // The issuer loop issues it within seconds.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let first = loop {
        if let Some(first) = served(&stack, &account_id, &certificate_id).await {
            break first;
        }
        assert!(tokio::time::Instant::now() < deadline, "not issued in time");
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let lifetime = first.not_after - first.not_before;
    assert!(lifetime <= time::Duration::seconds(90), "{lifetime}");
    let renew_at = first.not_before + lifetime / 2;
    assert_eq!(first.certificate.next_renewal_at, Some(renew_at));
    let (status, ssl) = call(
        &stack,
        "GET",
        &format!("/v1/domains/{domain_id}/ssl"),
        &key,
        None,
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(ssl["provisioning_step"], "active", "{ssl}");

    // Watch what is served until it changes: never expired, switched after the renewal time.
    let deadline = first.not_after + time::Duration::seconds(5);
    let second = loop {
        let now = OffsetDateTime::now_utc();
        assert!(
            now < deadline,
            "not renewed before the first certificate expired"
        );
        let current = served(&stack, &account_id, &certificate_id)
            .await
            .expect("a certificate is served");
        assert!(
            now < current.not_after,
            "served an expired certificate at {now}"
        );
        assert_eq!(current.certificate.status, CertificateStatus::Issued);
        if current.serial != first.serial {
            assert!(
                now >= renew_at,
                "renewed at {now}, before its renewal time {renew_at}"
            );
            break current;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        second.not_before >= renew_at - time::Duration::seconds(1),
        "{} vs {renew_at}",
        second.not_before
    );
    assert!(second.not_after > first.not_after);
    let lifetime = second.not_after - second.not_before;
    assert_eq!(
        second.certificate.next_renewal_at,
        Some(second.not_before + lifetime / 2)
    );
    let (_, ssl) = call(
        &stack,
        "GET",
        &format!("/v1/domains/{domain_id}/ssl"),
        &key,
        None,
    )
    .await;
    assert_eq!(ssl["provisioning_step"], "active", "{ssl}");
    stack.stop().await;
}

fn rand_suffix() -> u64 {
    // Unique enough across the two tests of this binary and earlier runs.
    let nanos = OffsetDateTime::now_utc().unix_timestamp_nanos();
    (nanos as u64) ^ u64::from(std::process::id()).rotate_left(32)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sqlite_certificates_renew_at_half_their_short_lifetime_without_a_gap() {
    let data_dir = tempfile::tempdir().unwrap();
    renews_without_a_gap(LocalOptions::new(data_dir.path().to_path_buf())).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dynamodb_certificates_renew_at_half_their_short_lifetime_without_a_gap() {
    let data_dir = tempfile::tempdir().unwrap();
    let moto = Moto::shared().await.expect("moto_server");
    let mut options = LocalOptions::new(data_dir.path().to_path_buf());
    options.aws_endpoint = Some(moto.endpoint_url());
    options.table_name = format!("edgecert-renewal-{:x}", rand_suffix());
    options.secret_prefix = format!("{}/", options.table_name);
    renews_without_a_gap(options).await;
}

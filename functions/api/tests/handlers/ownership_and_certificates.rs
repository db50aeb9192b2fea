//! Ownership, DNS checks and certificates: verify, ssl and nudge.

use serde_json::{Value, json};
use time::OffsetDateTime;

use crate::harness::{EDGE_HOSTNAME, Harness, unique_apex};
use crate::{limits, timestamp};

#[tokio::test]
async fn ownership_is_verified_once_the_txt_record_exists() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", true).await;
    let hostname = format!("shop.{}", unique_apex("verify"));
    let created = harness.create_domain(&account, &hostname).await;
    let id = created["id"].as_str().unwrap();
    let record = created["ownership_verification"]["name"].as_str().unwrap();
    let token = created["ownership_verification"]["value"].as_str().unwrap();

    // Not there yet.
    let message = harness
        .on_domain("domains-verify", &account, id)
        .await
        .expect_error(422, "txt_not_found");
    assert!(message.contains(record), "{message}");
    let still = harness
        .on_domain("domains-get", &account, id)
        .await
        .expect(200);
    assert_eq!(still["provisioning_step"], "waiting_ownership");

    // A record with another value does not count.
    harness
        .dns
        .set_txt(record, "edgecert-verify-someone-else")
        .await
        .unwrap();
    harness
        .on_domain("domains-verify", &account, id)
        .await
        .expect_error(422, "txt_not_found");

    // The customer creates it: verified, on to the DNS step.
    harness.dns.set_txt(record, token).await.unwrap();
    let verified = harness
        .on_domain("domains-verify", &account, id)
        .await
        .expect(200);
    assert_eq!(verified["ownership_verified"], true);
    assert_eq!(verified["provisioning_step"], "waiting_dns");
    assert!(
        verified.get("ownership_verification").is_none(),
        "{verified}"
    );
    let dns = harness
        .on_domain("domains-dns", &account, id)
        .await
        .expect(200);
    assert!(dns.get("ownership_verification").is_none(), "{dns}");

    // The check runs now, every time: once the record is gone, it is not found.
    harness.dns.clear_txt(record).await.unwrap();
    harness
        .on_domain("domains-verify", &account, id)
        .await
        .expect_error(422, "txt_not_found");
}

#[tokio::test]
async fn a_fresh_domain_has_no_certificate_yet() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let created = harness
        .create_domain(&account, "shop.customer-one.com")
        .await;

    let ssl = harness
        .on_domain("domains-ssl", &account, created["id"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(
        ssl,
        json!({
            "provisioning_step": "waiting_dns",
            "error": null,
            "next_attempt_at": null,
            "dns_instructions": created["dns_instructions"],
            "certificate": null,
        })
    );
}

#[tokio::test]
async fn a_nudge_on_a_domain_pointing_at_the_edge_requests_its_certificate_once() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let hostname = format!("shop.{}", unique_apex("nudge-ok"));
    let created = harness.create_domain(&account, &hostname).await;
    let id = created["id"].as_str().unwrap();

    // challtestsrv answers the hostname with 127.0.0.1, the edge's address.
    let first = harness
        .on_domain("domains-nudge", &account, id)
        .await
        .expect(200);
    assert_eq!(first["provisioning_step"], "issuing", "{first}");
    assert_eq!(first["error"], Value::Null);
    let certificate = &first["certificate"];
    let certificate_id = certificate["id"].as_str().expect("a managed certificate");
    assert!(certificate_id.starts_with("cert_"), "{certificate}");
    assert_eq!(certificate["status"], "pending");
    assert_eq!(certificate["issued_at"], Value::Null);

    // /ssl and the domain show the same.
    let ssl = harness
        .on_domain("domains-ssl", &account, id)
        .await
        .expect(200);
    assert_eq!(ssl["provisioning_step"], "issuing");
    assert_eq!(ssl["certificate"]["id"], json!(certificate_id));
    let domain = harness
        .on_domain("domains-get", &account, id)
        .await
        .expect(200);
    assert_eq!(domain["certificate_id"], json!(certificate_id));

    // Nudging again is safe: same step, same certificate, nothing new.
    let second = harness
        .on_domain("domains-nudge", &account, id)
        .await
        .expect(200);
    assert_eq!(second["provisioning_step"], "issuing");
    assert_eq!(second["error"], Value::Null);
    assert_eq!(second["certificate"]["id"], json!(certificate_id));
    assert_eq!(second["certificate"]["status"], "pending");
    assert_eq!(second["dns_instructions"], first["dns_instructions"]);

    // A managed certificate is not one of the plan's downloadable certificates.
    let usage = limits(&harness, &account).await;
    assert_eq!(usage["current_count"], 0);
    assert_eq!(usage["domain_count"], 1);
}

/// Issue 12's soak: the issuer stores an issued certificate first and its domain's step after,
/// best-effort. The store became unavailable between the two writes, and the domain stayed
/// `issuing` with no error and no next attempt while the edge served its certificate: /ssl
/// never said `active`, and neither the issuer nor a nudge ever moved it on.
#[tokio::test]
async fn a_domain_left_issuing_behind_its_issued_certificate_is_active_in_ssl_and_after_a_nudge() {
    use edgecert_core::model::CertificateStatus;

    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let account_id = edgecert_core::AccountId::parse(&account.id).unwrap();
    let store = &harness.state.services.store;
    // GIVEN two domains whose certificates were issued while their own writes were lost
    let mut ids = Vec::new();
    for label in ["ssl", "nudge"] {
        let hostname = format!("shop.{}", unique_apex(&format!("left-{label}")));
        let created = harness.create_domain(&account, &hostname).await;
        let id = created["id"].as_str().unwrap().to_owned();
        let nudged = harness
            .on_domain("domains-nudge", &account, &id)
            .await
            .expect(200);
        assert_eq!(nudged["provisioning_step"], "issuing", "{nudged}");
        let certificate_id =
            edgecert_core::CertificateId::parse(nudged["certificate"]["id"].as_str().unwrap())
                .unwrap();
        let mut certificate = store
            .get_certificate(&account_id, &certificate_id)
            .await
            .unwrap()
            .unwrap();
        let now = OffsetDateTime::now_utc();
        certificate.status = CertificateStatus::Issued;
        certificate.material_version = Some("v1".to_owned());
        certificate.issued_at = Some(now);
        certificate.not_before = Some(now);
        certificate.expires_at = Some(now + time::Duration::days(90));
        certificate.next_renewal_at = Some(now + time::Duration::days(60));
        certificate.next_attempt_at = None;
        store.update_certificate(&certificate).await.unwrap();
        ids.push(id);
    }

    // WHEN its SSL status is read THEN it is active, and stored so
    let ssl = harness
        .on_domain("domains-ssl", &account, &ids[0])
        .await
        .expect(200);
    assert_eq!(ssl["provisioning_step"], "active", "{ssl}");
    assert_eq!(ssl["error"], Value::Null, "{ssl}");
    assert_eq!(ssl["next_attempt_at"], Value::Null, "{ssl}");
    let domain = harness
        .on_domain("domains-get", &account, &ids[0])
        .await
        .expect(200);
    assert_eq!(domain["provisioning_step"], "active", "{domain}");

    // WHEN the other is nudged (the use case the API and the edge run) THEN it is active
    let domain_id = edgecert_core::DomainId::parse(&ids[1]).unwrap();
    edgecert_core::usecases::domains::nudge(&harness.state.services, &account_id, &domain_id)
        .await
        .unwrap();
    let nudged = harness
        .on_domain("domains-get", &account, &ids[1])
        .await
        .expect(200);
    // (read without /ssl, which would catch it up by itself)
    assert_eq!(nudged["provisioning_step"], "active", "{nudged}");
}

#[tokio::test]
async fn a_cname_to_the_edge_hostname_counts_as_pointing() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let hostname = format!("shop.{}", unique_apex("nudge-cname"));
    // Its own A record says elsewhere: only the CNAME can make it pass.
    harness
        .dns
        .add_a(&hostname, &[std::net::Ipv4Addr::new(203, 0, 113, 78)])
        .await
        .unwrap();
    harness
        .dns
        .set_cname(&hostname, EDGE_HOSTNAME)
        .await
        .unwrap();
    let created = harness.create_domain(&account, &hostname).await;

    let ssl = harness
        .on_domain("domains-nudge", &account, created["id"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(ssl["provisioning_step"], "issuing", "{ssl}");

    // A CNAME to a name that resolves elsewhere does not.
    let elsewhere = format!("www.{}", unique_apex("nudge-cname"));
    let other_provider = format!("edge.{}", unique_apex("other-provider"));
    harness
        .dns
        .add_a(&other_provider, &[std::net::Ipv4Addr::new(203, 0, 113, 79)])
        .await
        .unwrap();
    harness
        .dns
        .set_cname(&elsewhere, &other_provider)
        .await
        .unwrap();
    let created = harness.create_domain(&account, &elsewhere).await;
    let ssl = harness
        .on_domain("domains-nudge", &account, created["id"].as_str().unwrap())
        .await
        .expect(200);
    assert_eq!(ssl["provisioning_step"], "waiting_dns", "{ssl}");
}

#[tokio::test]
async fn a_nudge_on_a_domain_pointing_elsewhere_says_why_and_when_it_runs_again() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", false).await;
    let hostname = format!("shop.{}", unique_apex("nudge-elsewhere"));
    harness
        .dns
        .add_a(&hostname, &[std::net::Ipv4Addr::new(203, 0, 113, 77)])
        .await
        .unwrap();
    let created = harness.create_domain(&account, &hostname).await;
    let id = created["id"].as_str().unwrap();

    let before = OffsetDateTime::now_utc();
    let first = harness
        .on_domain("domains-nudge", &account, id)
        .await
        .expect(200);
    assert_eq!(first["provisioning_step"], "waiting_dns", "{first}");
    let error = first["error"].as_str().expect("a reason");
    assert!(
        error.contains("203.0.113.77") && error.contains(EDGE_HOSTNAME),
        "{error}"
    );
    assert_eq!(first["certificate"], Value::Null);
    let next = timestamp(&first["next_attempt_at"]);
    assert!(next > before, "the next attempt is in the future: {next}");

    // /ssl shows the same reason and time.
    let ssl = harness
        .on_domain("domains-ssl", &account, id)
        .await
        .expect(200);
    assert_eq!(ssl["error"], first["error"]);
    assert_eq!(ssl["next_attempt_at"], first["next_attempt_at"]);
    let domain = harness
        .on_domain("domains-get", &account, id)
        .await
        .expect(200);
    assert_eq!(domain["error"], first["error"]);

    // Nudging again resets the backoff rather than growing it.
    let second = harness
        .on_domain("domains-nudge", &account, id)
        .await
        .expect(200);
    assert_eq!(second["provisioning_step"], "waiting_dns");
    assert_eq!(second["error"], first["error"]);
    let again = timestamp(&second["next_attempt_at"]);
    assert!(
        again - next < time::Duration::seconds(30),
        "backoff grew from {next} to {again}"
    );

    // Once the customer fixes DNS, the next nudge moves on.
    harness.dns.clear_a(&hostname).await.unwrap();
    let fixed = harness
        .on_domain("domains-nudge", &account, id)
        .await
        .expect(200);
    assert_eq!(fixed["provisioning_step"], "issuing", "{fixed}");
    assert_eq!(fixed["error"], Value::Null);
    assert!(
        !fixed["next_attempt_at"].is_null(),
        "the certificate is due now"
    );
}

#[tokio::test]
async fn a_nudge_waits_for_ownership_before_looking_at_dns() {
    let harness = Harness::start().await;
    let account = harness.create_account("pro", true).await;
    let hostname = format!("shop.{}", unique_apex("nudge-owner"));
    let created = harness.create_domain(&account, &hostname).await;
    let id = created["id"].as_str().unwrap();

    let ssl = harness
        .on_domain("domains-nudge", &account, id)
        .await
        .expect(200);
    assert_eq!(ssl["provisioning_step"], "waiting_ownership", "{ssl}");
    assert!(
        ssl["error"].as_str().unwrap().contains("TXT record"),
        "{ssl}"
    );
    assert!(!ssl["next_attempt_at"].is_null());
    assert_eq!(ssl["certificate"], Value::Null);

    // With the TXT record in place, one nudge goes through ownership and DNS.
    let record = created["ownership_verification"]["name"].as_str().unwrap();
    let token = created["ownership_verification"]["value"].as_str().unwrap();
    harness.dns.set_txt(record, token).await.unwrap();
    let ssl = harness
        .on_domain("domains-nudge", &account, id)
        .await
        .expect(200);
    assert_eq!(ssl["provisioning_step"], "issuing", "{ssl}");
    let domain = harness
        .on_domain("domains-get", &account, id)
        .await
        .expect(200);
    assert_eq!(domain["ownership_verified"], true);
    harness.dns.clear_txt(record).await.unwrap();
}

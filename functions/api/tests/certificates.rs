//! Handler tests of the zones and certificates routes on the real API Gateway events in
//! `events/`: every success path, every plan error with the reference's sentence and status,
//! isolation between accounts, and one certificate's whole life (request, DNS-01 issuance by
//! `edgecert-acme` against Pebble, download, renewal, auto-renew toggle, revocation).
//!
//! State is a fresh SQLite file per test. Zones are served by pebble-challtestsrv: its
//! management API is the `challtestsrv` DNS provider and its DNS server is the resolver, so a
//! zone verifies like a real one, and the zone owner's TXT record holding an account's zone
//! token is set there too. A `skipping` provider that writes nothing stands for a zone whose
//! provider does not serve its public DNS.

// Test code: an unwrap that fails is a failed test, reported with its line.
#![allow(clippy::unwrap_used)]

mod harness;

use std::sync::Arc;
use std::time::Duration;

use edgecert_acme::testing::{CaFaults, Endpoint, Fault, SkippingDnsProvider};
use edgecert_acme::{Issuer, IssuerConfig, ca_http_client};
use edgecert_core::ids::{AccountId, CertificateId, ZoneId};
use edgecert_core::model::{CertificateStatus, SecretString, Zone};
use edgecert_core::ports::{
    CertificateMaterial, Clock, DnsProviders, Issuance, IssueOutcome, ManualClock, MaterialVersion,
};
use edgecert_core::usecases::renewals::{EXPIRING_STEP, RenewalSettings, run_renewals};
use edgecert_core::{Error, Hostname, RenewalWindow};
use edgecert_dns::ChalltestsrvDnsProvider;
use edgecert_testkit::{Adapters, Backend, MotoKeys};
use harness::{ApiCall, Harness, Reply, TestAccount, unique_apex};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// Every route that takes `{id}` of a certificate.
const CERTIFICATE_ID_ROUTES: [&str; 6] = [
    "certificates-get",
    "certificates-download",
    "certificates-renew",
    "certificates-update",
    "certificates-delete",
    "certificates-logs",
];

/// The CA identity Pebble stands for in CAA records.
const PEBBLE_CAA_IDENTITY: &str = "pebble.letsencrypt.org";

const PAID_PLAN: &str = "Certificate management requires paid subscription";
const WILDCARD_PLAN: &str = "Wildcard certificates require Elite plan";
const AUTO_RENEW_PLAN: &str = "Auto-renewal requires Pro or Elite plan";
const LIMIT: &str = "Certificate limit reached for plan";
const EXISTS: &str = "Certificate already exists for domain";
const NOT_UNDER_ZONE: &str = "Domain not under zone";
const ZONE_NOT_FOUND: &str = "Zone not found or no permission";

/// The API with the `challtestsrv` and `skipping` DNS providers.
async fn start() -> Harness {
    let mut harness = Harness::start().await;
    let challtestsrv = ChalltestsrvDnsProvider::new(harness.dns.management_url())
        .expect("challtestsrv's management URL is on loopback");
    harness.state.services.dns_providers = DnsProviders::default()
        .with("challtestsrv", Arc::new(challtestsrv))
        .with("skipping", Arc::new(SkippingDnsProvider::new()));
    harness
}

fn timestamp(value: &Value) -> OffsetDateTime {
    OffsetDateTime::parse(value.as_str().expect("a timestamp"), &Rfc3339)
        .unwrap_or_else(|error| panic!("{value} is not RFC 3339: {error}"))
}

fn text(value: &Value) -> &str {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a string"))
}

/// The account's zone token, read through `GET /v1/zones/verification`.
async fn zone_token(harness: &Harness, account: &TestAccount) -> String {
    let record = harness
        .call(
            ApiCall::new("zones-verification")
                .by_account(&account.id)
                .query(&[]),
        )
        .await
        .expect(200);
    text(&record["value"]).to_owned()
}

/// The zone's owner publishes the account's zone token at `_edgecert-zone.<name>` (alongside
/// any other account's it published).
async fn publish_token(harness: &Harness, account: &TestAccount, name: &str) {
    let token = zone_token(harness, account).await;
    let zone = name.trim_end_matches('.').to_ascii_lowercase();
    harness
        .dns
        .set_txt(&format!("_edgecert-zone.{zone}"), &token)
        .await
        .unwrap();
}

/// `POST /v1/zones` for `name` on challtestsrv, as it is: no token is published.
async fn import_unproven_zone(harness: &Harness, account: &TestAccount, name: &str) -> Reply {
    harness
        .call(
            ApiCall::new("zones-create").by_account(&account.id).json(
                json!({ "name": name, "provider": "challtestsrv", "provider_zone_id": "local" }),
            ),
        )
        .await
}

/// Publishes the account's zone token for `name`, then imports it.
async fn import_zone(harness: &Harness, account: &TestAccount, name: &str) -> Reply {
    publish_token(harness, account, name).await;
    import_unproven_zone(harness, account, name).await
}

/// A new verified zone `<unique>.com` of `account`; its id and name.
async fn zone(harness: &Harness, account: &TestAccount) -> (String, String) {
    let name = unique_apex("zone");
    let zone = import_zone(harness, account, &name).await.expect(201);
    (text(&zone["id"]).to_owned(), name)
}

async fn request(harness: &Harness, account: &TestAccount, body: Value) -> Reply {
    harness
        .call(
            ApiCall::new("certificates-create")
                .by_account(&account.id)
                .json(body),
        )
        .await
}

/// Requests `app.<zone>` (no SANs, no auto-renew) and returns the certificate.
async fn certificate(harness: &Harness, account: &TestAccount, zone: &(String, String)) -> Value {
    request(
        harness,
        account,
        json!({ "zone_id": zone.0, "domain": format!("app.{}", zone.1) }),
    )
    .await
    .expect(202)
}

fn on_certificate(function: &'static str, account: &TestAccount, id: &str) -> ApiCall {
    let call = ApiCall::new(function).by_account(&account.id).id(id);
    match function {
        "certificates-update" => call.json(json!({ "auto_renew": false })),
        "certificates-delete" => call.query(&[]),
        _ => call,
    }
}

async fn list(harness: &Harness, account: &TestAccount) -> Value {
    harness
        .call(ApiCall::new("certificates-list").by_account(&account.id))
        .await
        .expect(200)
}

async fn change_plan(harness: &Harness, account: &TestAccount, plan: &str) {
    harness
        .call(
            ApiCall::new("accounts-update")
                .by_admin()
                .id(&account.id)
                .json(json!({ "plan": plan })),
        )
        .await
        .expect(200);
}

fn account_id(account: &TestAccount) -> AccountId {
    AccountId::parse(&account.id).expect("an account id")
}

fn certificate_id(certificate: &Value) -> CertificateId {
    CertificateId::parse(text(&certificate["id"])).expect("a certificate id")
}

// ---------------------------------------------------------------------------------------------
// Zones

#[tokio::test]
async fn a_zone_verified_through_its_provider_is_imported_listed_and_deleted() {
    let harness = start().await;
    let account = harness.create_account("plus", false).await;
    let name = unique_apex("import");

    let zone = import_zone(&harness, &account, &format!("{}.", name.to_uppercase()))
        .await
        .expect(201);
    let id = text(&zone["id"]);
    assert!(id.starts_with("zone_"), "{zone}");
    assert_eq!(zone["name"], json!(name));
    assert_eq!(zone["provider"], "challtestsrv");
    assert_eq!(zone["provider_zone_id"], "local");
    assert_eq!(zone["verified"], true);
    timestamp(&zone["created_at"]);
    // The verification record is gone again.
    let resolver = edgecert_dns::HickoryResolver::with_name_server(harness.dns.dns_server_addr());
    let record = format!("_edgecert-zone-verify.{name}");
    assert!(
        edgecert_core::ports::DnsResolver::txt(&resolver, &record)
            .await
            .unwrap()
            .is_empty()
    );

    let listed = harness
        .call(ApiCall::new("zones-list").by_account(&account.id))
        .await
        .expect(200);
    assert_eq!(listed, json!({ "zones": [zone], "next_cursor": null }));

    harness
        .call(ApiCall::new("zones-delete").by_account(&account.id).id(id))
        .await
        .expect(204);
    let message = harness
        .call(ApiCall::new("zones-delete").by_account(&account.id).id(id))
        .await
        .expect_error(404, "zone_not_found");
    assert_eq!(message, ZONE_NOT_FOUND);
    let listed = harness
        .call(ApiCall::new("zones-list").by_account(&account.id))
        .await
        .expect(200);
    assert_eq!(listed["zones"], json!([]));
}

#[tokio::test]
async fn the_fixture_body_names_a_provider_that_must_exist() {
    let harness = start().await;
    let account = harness.create_account("pro", false).await;
    // events/zones-create.json asks for route53, which this deployment does not have.
    let message = harness
        .call(ApiCall::new("zones-create").by_account(&account.id))
        .await
        .expect_error(400, "unknown_dns_provider");
    assert_eq!(
        message,
        "DNS provider must be one of: challtestsrv, skipping"
    );
}

#[tokio::test]
async fn a_zone_whose_dns_does_not_serve_the_record_is_refused_and_not_stored() {
    let harness = start().await;
    let account = harness.create_account("pro", false).await;

    // A provider whose writes never reach DNS.
    let name = unique_apex("unserved");
    publish_token(&harness, &account, &name).await;
    let message = harness
        .call(
            ApiCall::new("zones-create")
                .by_account(&account.id)
                .json(json!({ "name": name, "provider": "skipping", "provider_zone_id": "Z123" })),
        )
        .await
        .expect_error(422, "zone_verification_failed");
    assert!(
        message.starts_with("Zone verification failed: ")
            && message.contains(&format!("_edgecert-zone-verify.{name}"))
            && message.contains("not found in DNS"),
        "{message}"
    );

    // A zone whose name servers fail (SERVFAIL on the record).
    let name = unique_apex("servfail");
    let record = format!("_edgecert-zone-verify.{name}");
    harness.dns.set_servfail(&record).await.unwrap();
    let message = import_zone(&harness, &account, &name)
        .await
        .expect_error(422, "zone_verification_failed");
    assert!(message.contains("lookup"), "{message}");
    harness.dns.clear_servfail(&record).await.unwrap();

    let listed = harness
        .call(ApiCall::new("zones-list").by_account(&account.id))
        .await
        .expect(200);
    assert_eq!(listed["zones"], json!([]));
}

#[tokio::test]
async fn zone_imports_with_bad_input_or_on_the_free_plan_are_refused() {
    let harness = start().await;
    let free = harness.create_account("free", false).await;
    let message = import_zone(&harness, &free, &unique_apex("free"))
        .await
        .expect_error(403, "paid_plan_required");
    assert_eq!(message, PAID_PLAN);

    let account = harness.create_account("plus", false).await;
    for (body, status, code) in [
        (
            json!({ "name": "com", "provider": "challtestsrv", "provider_zone_id": "local" }),
            400,
            "invalid_hostname",
        ),
        (
            json!({ "name": "*.example.com", "provider": "challtestsrv", "provider_zone_id": "local" }),
            400,
            "invalid_hostname",
        ),
        (
            json!({ "name": "example.com", "provider": "bind", "provider_zone_id": "local" }),
            400,
            "unknown_dns_provider",
        ),
        (
            json!({ "name": "example.com", "provider": "challtestsrv", "provider_zone_id": " " }),
            400,
            "invalid_provider_zone_id",
        ),
        (
            json!({ "name": "example.com", "provider": "challtestsrv" }),
            400,
            "invalid_field",
        ),
        (
            json!({ "name": "example.com", "provider": "challtestsrv", "provider_zone_id": "x", "ttl": 5 }),
            400,
            "unknown_field",
        ),
    ] {
        harness
            .call(
                ApiCall::new("zones-create")
                    .by_account(&account.id)
                    .json(body.clone()),
            )
            .await
            .expect_error(status, code);
    }
}

#[tokio::test]
async fn another_accounts_zone_is_not_found_anywhere() {
    let harness = start().await;
    let owner = harness.create_account("elite", false).await;
    let intruder = harness.create_account("elite", false).await;
    let (id, name) = zone(&harness, &owner).await;

    let message = harness
        .call(
            ApiCall::new("zones-delete")
                .by_account(&intruder.id)
                .id(&id),
        )
        .await
        .expect_error(404, "zone_not_found");
    assert_eq!(message, ZONE_NOT_FOUND);
    let message = request(
        &harness,
        &intruder,
        json!({ "zone_id": id, "domain": format!("app.{name}") }),
    )
    .await
    .expect_error(404, "zone_not_found");
    assert_eq!(message, ZONE_NOT_FOUND);
    let listed = harness
        .call(ApiCall::new("zones-list").by_account(&intruder.id))
        .await
        .expect(200);
    assert_eq!(listed["zones"], json!([]));
    for malformed in ["zone_", "zone_a.b", "dom_00000000000000000000"] {
        harness
            .call(
                ApiCall::new("zones-delete")
                    .by_account(&owner.id)
                    .id(malformed),
            )
            .await
            .expect_error(404, "zone_not_found");
    }
    // The owner still has it.
    certificate(&harness, &owner, &(id, name)).await;
}

#[tokio::test]
async fn an_account_reads_its_zone_token_and_imports_a_zone_only_with_it_in_dns() {
    let harness = start().await;
    let account = harness.create_account("pro", false).await;
    let other = harness.create_account("pro", false).await;
    let name = unique_apex("proven");

    // GIVEN the record the account must publish, read before any import: its zone token,
    // stable for the account and not another account's
    let record = harness
        .call(
            ApiCall::new("zones-verification")
                .by_account(&account.id)
                .query(&[("name", &format!("{}.", name.to_uppercase()))]),
        )
        .await
        .expect(200);
    let token = text(&record["value"]).to_owned();
    assert_eq!(
        record,
        json!({
            "type": "TXT",
            "name": format!("_edgecert-zone.{name}"),
            "label": "_edgecert-zone",
            "value": token,
        })
    );
    assert!(token.starts_with("edgecert-zone-"), "{token}");
    assert_eq!(zone_token(&harness, &account).await, token);
    assert_ne!(zone_token(&harness, &other).await, token);
    harness
        .call(
            ApiCall::new("zones-verification")
                .by_account(&account.id)
                .query(&[("name", "com")]),
        )
        .await
        .expect_error(400, "invalid_hostname");

    // WHEN the zone is imported with no token in its DNS, or only another account's
    // THEN it is refused with the exact record and value to create, and nothing is stored
    for published in [None, Some(&other)] {
        if let Some(publisher) = published {
            publish_token(&harness, publisher, &name).await;
        }
        let message = import_unproven_zone(&harness, &account, &name)
            .await
            .expect_error(422, "zone_token_not_found");
        assert_eq!(
            message,
            format!(
                "Zone ownership not proven: create the TXT record _edgecert-zone.{name} with the value {token} (this account's zone token), then import the zone again"
            )
        );
    }
    let listed = harness
        .call(ApiCall::new("zones-list").by_account(&account.id))
        .await
        .expect(200);
    assert_eq!(listed["zones"], json!([]));

    // WHEN the account's own token is published THEN the import succeeds
    harness
        .dns
        .set_txt(&format!("_edgecert-zone.{name}"), &token)
        .await
        .unwrap();
    let zone = import_unproven_zone(&harness, &account, &name)
        .await
        .expect(201);
    assert_eq!(zone["name"], json!(name));
    assert_eq!(zone["role_arn"], Value::Null);
}

#[tokio::test]
async fn a_zone_name_belongs_to_one_account_until_it_deletes_the_zone() {
    let harness = start().await;
    let first = harness.create_account("pro", false).await;
    let second = harness.create_account("elite", false).await;
    let name = unique_apex("exclusive");
    let zone = import_zone(&harness, &first, &name).await.expect(201);

    // Another account, even one the zone's owner also authorised, and the same account
    // again: 409, and nothing stored.
    publish_token(&harness, &second, &name).await;
    for (account, spelled) in [(&second, name.clone()), (&first, name.to_uppercase())] {
        let message = import_unproven_zone(&harness, account, &spelled)
            .await
            .expect_error(409, "zone_exists");
        assert_eq!(
            message,
            "Zone already exists: a zone belongs to one account at a time"
        );
    }
    let listed = harness
        .call(ApiCall::new("zones-list").by_account(&second.id))
        .await
        .expect(200);
    assert_eq!(listed["zones"], json!([]));

    // Deleting the zone frees its name.
    harness
        .call(
            ApiCall::new("zones-delete")
                .by_account(&first.id)
                .id(text(&zone["id"])),
        )
        .await
        .expect(204);
    import_unproven_zone(&harness, &second, &name)
        .await
        .expect(201);
}

/// Issue 12, defect 2, as reproduced: "Account PRO imported a zone covering a hostname that
/// account PLUS1 had whitelisted, got a certificate for shop.<that zone>, and downloaded its
/// private key" and "A zone another account had already imported was imported again (201)".
#[tokio::test]
async fn issue_12_another_accounts_hostname_and_zone_stay_theirs() {
    let harness = start().await;
    let plus1 = harness.create_account("plus", false).await;
    let pro = harness.create_account("pro", false).await;
    let elite = harness.create_account("elite", false).await;
    let zone_name = unique_apex("shared");
    let shop = format!("shop.{zone_name}");
    harness.create_domain(&plus1, &shop).await;

    // PRO imports the zone covering PLUS1's hostname (the zone's owner published PRO's
    // token: several platforms may serve one customer's zone).
    let zone = import_zone(&harness, &pro, &zone_name).await.expect(201);
    let zone_id = text(&zone["id"]).to_owned();

    // It cannot get a certificate for PLUS1's hostname: as the primary name, as a SAN.
    for body in [
        json!({ "zone_id": zone_id, "domain": shop }),
        json!({ "zone_id": zone_id, "domain": format!("www.{zone_name}"), "sans": [shop] }),
    ] {
        let message = request(&harness, &pro, body)
            .await
            .expect_error(409, "name_claimed_by_another_account");
        assert_eq!(
            message,
            format!("The name {shop} is whitelisted by another account")
        );
    }
    // So there is nothing to download.
    let listed = list(&harness, &pro).await;
    assert_eq!(listed["certificates"], json!([]));
    assert_eq!(listed["limits"]["current_count"], 0);
    // Its other names in the zone are its own.
    request(
        &harness,
        &pro,
        json!({ "zone_id": zone_id, "domain": format!("www.{zone_name}") }),
    )
    .await
    .expect(202);

    // A zone another account had already imported cannot be imported again.
    import_zone(&harness, &elite, &zone_name)
        .await
        .expect_error(409, "zone_exists");
    // And a zone of its own under PLUS1's hostname gets no wildcard of that hostname.
    let sub_zone = import_zone(&harness, &elite, &shop).await.expect(201);
    let message = request(
        &harness,
        &elite,
        json!({ "zone_id": text(&sub_zone["id"]), "domain": shop, "wildcard": true }),
    )
    .await
    .expect_error(409, "name_claimed_by_another_account");
    assert_eq!(
        message,
        format!("The name {shop} is whitelisted by another account")
    );
    // A name PLUS1 whitelists itself stays PLUS1's to certify.
    let plus1_zone = import_zone(&harness, &plus1, &unique_apex("own")).await;
    let plus1_zone = plus1_zone.expect(201);
    let own = format!("app.{}", text(&plus1_zone["name"]));
    harness.create_domain(&plus1, &own).await;
    request(
        &harness,
        &plus1,
        json!({ "zone_id": text(&plus1_zone["id"]), "domain": own }),
    )
    .await
    .expect(202);
}

// ---------------------------------------------------------------------------------------------
// Requesting certificates

#[tokio::test]
async fn a_requested_certificate_is_pending_due_now_and_counted() {
    let harness = start().await;
    let account = harness.create_account("pro", false).await;
    let (zone_id, name) = zone(&harness, &account).await;

    let before = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let created = request(
        &harness,
        &account,
        json!({
            "zone_id": zone_id,
            "domain": format!("App.{name}"),
            "sans": [format!("www.{name}"), name, format!("www.{name}")],
            "auto_renew": true,
            "key_type": "rsa-2048",
        }),
    )
    .await
    .expect(202);
    let id = text(&created["id"]);
    assert!(id.starts_with("cert_"), "{created}");
    assert_eq!(created["domain"], json!(format!("app.{name}")));
    assert_eq!(created["sans"], json!([format!("www.{name}"), name]));
    assert_eq!(created["is_wildcard"], false);
    assert_eq!(created["auto_renew"], true);
    assert_eq!(created["status"], "pending");
    assert_eq!(created["key_type"], "rsa-2048");
    assert_eq!(created["zone_id"], json!(zone_id));
    for field in ["issued_at", "expires_at", "next_renewal_at", "error"] {
        assert_eq!(created[field], Value::Null, "{field}");
    }
    let due = timestamp(&created["next_attempt_at"]);
    assert!(due >= before && due <= OffsetDateTime::now_utc(), "{due}");

    // The object reads back, and the list holds it with the limits card.
    let read = harness
        .call(on_certificate("certificates-get", &account, id))
        .await
        .expect(200);
    assert_eq!(read, created);
    let listed = list(&harness, &account).await;
    assert_eq!(
        listed,
        json!({
            "certificates": [created],
            "limits": { "max_certificates": 25, "current_count": 1, "wildcard_enabled": false, "auto_renew_enabled": true },
            "next_cursor": null,
        })
    );
    let limits = harness
        .call(ApiCall::new("limits-get").by_account(&account.id))
        .await
        .expect(200);
    assert_eq!(limits["current_count"], 1);

    // The log starts with the request.
    let logs = harness
        .call(on_certificate("certificates-logs", &account, id))
        .await
        .expect(200);
    let events = logs["events"].as_array().unwrap();
    assert_eq!(events.len(), 1, "{logs}");
    assert_eq!(events[0]["step"], "requested");
    assert_eq!(events[0]["level"], "info");
    assert_eq!(events[0]["acme_problem"], Value::Null);
    timestamp(&events[0]["at"]);

    // Not downloadable before it is issued.
    let message = harness
        .call(on_certificate("certificates-download", &account, id))
        .await
        .expect_error(409, "not_issued");
    assert_eq!(message, "Certificate is not issued yet");
}

#[tokio::test]
async fn the_fixture_body_requests_a_certificate_in_the_placeholder_zone() {
    let harness = start().await;
    let account = harness.create_account("pro", false).await;
    // events/certificates-create.json names zone_placeholder…, which this account lacks.
    let message = harness
        .call(ApiCall::new("certificates-create").by_account(&account.id))
        .await
        .expect_error(404, "zone_not_found");
    assert_eq!(message, ZONE_NOT_FOUND);
}

#[tokio::test]
async fn wildcards_on_elite_take_the_flag_or_the_name() {
    let harness = start().await;
    let account = harness.create_account("elite", false).await;
    let (zone_id, name) = zone(&harness, &account).await;

    let wildcard = request(
        &harness,
        &account,
        json!({ "zone_id": zone_id, "domain": name, "wildcard": true, "sans": [name] }),
    )
    .await
    .expect(202);
    assert_eq!(wildcard["domain"], json!(format!("*.{name}")));
    assert_eq!(wildcard["is_wildcard"], true);
    assert_eq!(wildcard["sans"], json!([name]));
    assert_eq!(wildcard["key_type"], "ecdsa-p256");

    // The same name spelled with its `*.` is the same certificate.
    let message = request(
        &harness,
        &account,
        json!({ "zone_id": zone_id, "domain": format!("*.{name}"), "wildcard": true }),
    )
    .await
    .expect_error(409, "certificate_exists");
    assert_eq!(message, EXISTS);
    let deeper = request(
        &harness,
        &account,
        json!({ "zone_id": zone_id, "domain": format!("*.eu.{name}"), "wildcard": true }),
    )
    .await
    .expect(202);
    assert_eq!(deeper["domain"], json!(format!("*.eu.{name}")));

    // A `*.` name without the flag is a contradiction.
    request(
        &harness,
        &account,
        json!({ "zone_id": zone_id, "domain": format!("*.us.{name}") }),
    )
    .await
    .expect_error(400, "invalid_hostname");
}

#[tokio::test]
async fn every_plan_rule_answers_with_the_reference_sentence_in_order() {
    let harness = start().await;

    // Free: nothing at all, before anything else is looked at.
    let free = harness.create_account("free", false).await;
    let message = request(
        &harness,
        &free,
        json!({ "zone_id": "zone_nope", "domain": "app.example.com", "wildcard": true }),
    )
    .await
    .expect_error(403, "paid_plan_required");
    assert_eq!(message, PAID_PLAN);

    let plus = harness.create_account("plus", false).await;
    let (zone_id, name) = zone(&harness, &plus).await;

    // Zone: unknown, malformed, or not verified.
    for missing in [
        json!("zone_00000000000000000000"),
        json!("zone_a.b"),
        json!("cert_00000000000000000000"),
        json!(""),
    ] {
        let message = request(
            &harness,
            &plus,
            json!({ "zone_id": missing, "domain": format!("app.{name}"), "wildcard": true }),
        )
        .await
        .expect_error(404, "zone_not_found");
        assert_eq!(message, ZONE_NOT_FOUND);
    }
    let unverified = Zone {
        id: ZoneId::generate(),
        account_id: account_id(&plus),
        name: Hostname::parse_domain(&unique_apex("unverified")).unwrap(),
        provider: "challtestsrv".to_owned(),
        provider_zone_id: "local".to_owned(),
        role_arn: None,
        verified: false,
        created_at: OffsetDateTime::now_utc(),
        version: 1,
    };
    harness
        .state
        .services
        .store
        .create_zone(&unverified)
        .await
        .unwrap();
    let message = request(
        &harness,
        &plus,
        json!({ "zone_id": unverified.id.as_str(), "domain": format!("app.{}", unverified.name) }),
    )
    .await
    .expect_error(404, "zone_not_found");
    assert_eq!(message, ZONE_NOT_FOUND);

    // Names under the zone: the primary name and every SAN (before the wildcard rule).
    for body in [
        json!({ "zone_id": zone_id, "domain": "app.other.com", "wildcard": true }),
        json!({ "zone_id": zone_id, "domain": format!("app.{name}"), "sans": ["www.other.com"] }),
        json!({ "zone_id": zone_id, "domain": format!("x{name}") }),
    ] {
        let message = request(&harness, &plus, body)
            .await
            .expect_error(400, "domain_not_under_zone");
        assert_eq!(message, NOT_UNDER_ZONE);
    }

    // Wildcards (also as a SAN), then auto-renewal.
    for body in [
        json!({ "zone_id": zone_id, "domain": name, "wildcard": true, "auto_renew": true }),
        json!({ "zone_id": zone_id, "domain": name, "sans": [format!("*.{name}")] }),
    ] {
        let message = request(&harness, &plus, body)
            .await
            .expect_error(403, "wildcard_requires_elite");
        assert_eq!(message, WILDCARD_PLAN);
    }
    let message = request(
        &harness,
        &plus,
        json!({ "zone_id": zone_id, "domain": format!("app.{name}"), "auto_renew": true }),
    )
    .await
    .expect_error(403, "auto_renew_requires_pro");
    assert_eq!(message, AUTO_RENEW_PLAN);

    // The limit (plus: 5), and one certificate per primary name.
    for index in 0..5 {
        request(
            &harness,
            &plus,
            json!({ "zone_id": zone_id, "domain": format!("n{index}.{name}") }),
        )
        .await
        .expect(202);
    }
    let message = request(
        &harness,
        &plus,
        json!({ "zone_id": zone_id, "domain": format!("n5.{name}") }),
    )
    .await
    .expect_error(403, "certificate_limit_reached");
    assert_eq!(message, LIMIT);
    let limits = list(&harness, &plus).await["limits"].clone();
    assert_eq!(
        limits,
        json!({ "max_certificates": 5, "current_count": 5, "wildcard_enabled": false, "auto_renew_enabled": false })
    );

    let pro = harness.create_account("pro", false).await;
    let pro_zone = zone(&harness, &pro).await;
    certificate(&harness, &pro, &pro_zone).await;
    let message = request(
        &harness,
        &pro,
        json!({ "zone_id": pro_zone.0, "domain": format!("APP.{}.", pro_zone.1), "sans": [format!("www.{}", pro_zone.1)] }),
    )
    .await
    .expect_error(409, "certificate_exists");
    assert_eq!(message, EXISTS);
    assert_eq!(list(&harness, &pro).await["limits"]["current_count"], 1);
}

#[tokio::test]
async fn malformed_certificate_requests_are_refused() {
    let harness = start().await;
    let account = harness.create_account("elite", false).await;
    let (zone_id, name) = zone(&harness, &account).await;
    let too_many: Vec<String> = (0..100).map(|i| format!("n{i}.{name}")).collect();
    for (body, code) in [
        (
            json!({ "zone_id": zone_id, "domain": format!("app.{name}"), "key_type": "rsa-4096" }),
            "invalid_field",
        ),
        (json!({ "zone_id": zone_id }), "invalid_field"),
        (
            json!({ "zone_id": zone_id, "domain": format!("app.{name}"), "colour": "red" }),
            "unknown_field",
        ),
        (
            json!({ "zone_id": zone_id, "domain": format!("a..{name}") }),
            "invalid_hostname",
        ),
        (
            json!({ "zone_id": zone_id, "domain": format!("app.{name}"), "sans": ["127.0.0.1"] }),
            "invalid_hostname",
        ),
        (
            json!({ "zone_id": zone_id, "domain": format!("app.{name}"), "sans": too_many }),
            "too_many_names",
        ),
    ] {
        request(&harness, &account, body)
            .await
            .expect_error(400, code);
    }
    assert_eq!(list(&harness, &account).await["certificates"], json!([]));
}

// ---------------------------------------------------------------------------------------------
// Renewal, auto-renew, deletion

#[tokio::test]
async fn a_manual_renewal_resets_the_backoff_and_is_idempotent_while_queued() {
    let harness = start().await;
    let account = harness.create_account("plus", false).await;
    let zone = zone(&harness, &account).await;
    let created = certificate(&harness, &account, &zone).await;
    let id = text(&created["id"]);

    // Still queued: renewing changes nothing.
    let again = harness
        .call(on_certificate("certificates-renew", &account, id))
        .await
        .expect(202);
    assert_eq!(again, created);

    // GIVEN the first attempt failed and backs off for an hour
    let store = &harness.state.services.store;
    let mut stored = store
        .get_certificate(&account_id(&account), &certificate_id(&created))
        .await
        .unwrap()
        .unwrap();
    stored.status = CertificateStatus::Failed;
    stored.consecutive_failures = 3;
    stored.last_error = Some("DNS problem".to_owned());
    stored.next_attempt_at = Some(OffsetDateTime::now_utc() + time::Duration::hours(1));
    store.update_certificate(&stored).await.unwrap();

    // WHEN it is renewed by hand THEN it is validating, due now, and the failure is cleared
    let before = OffsetDateTime::now_utc() - time::Duration::seconds(1);
    let renewed = harness
        .call(on_certificate("certificates-renew", &account, id))
        .await
        .expect(202);
    assert_eq!(renewed["status"], "validating");
    assert_eq!(renewed["error"], Value::Null);
    let due = timestamp(&renewed["next_attempt_at"]);
    assert!(due >= before && due <= OffsetDateTime::now_utc(), "{due}");
    let stored = store
        .get_certificate(&account_id(&account), &certificate_id(&created))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.consecutive_failures, 0);
    assert_eq!(stored.due_at(), Some(due));

    // AND repeating it while validating changes nothing
    let repeated = harness
        .call(on_certificate("certificates-renew", &account, id))
        .await
        .expect(202);
    assert_eq!(repeated, renewed);
    let logs = harness
        .call(on_certificate("certificates-logs", &account, id))
        .await
        .expect(200);
    let steps: Vec<&str> = logs["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|event| text(&event["step"]))
        .collect();
    assert_eq!(steps, ["renewal", "requested"], "newest first");
}

#[tokio::test]
async fn renewal_and_auto_renew_follow_the_plan_in_force() {
    let harness = start().await;
    let account = harness.create_account("elite", false).await;
    let (zone_id, name) = zone(&harness, &account).await;
    let wildcard = request(
        &harness,
        &account,
        json!({ "zone_id": zone_id, "domain": name, "wildcard": true, "auto_renew": true }),
    )
    .await
    .expect(202);
    let plain = certificate(&harness, &account, &(zone_id, name)).await;
    let (wildcard_id, plain_id) = (text(&wildcard["id"]), text(&plain["id"]));
    for id in [wildcard_id, plain_id] {
        let mut stored = harness
            .state
            .services
            .store
            .get_certificate(&account_id(&account), &CertificateId::parse(id).unwrap())
            .await
            .unwrap()
            .unwrap();
        stored.status = CertificateStatus::Failed;
        harness
            .state
            .services
            .store
            .update_certificate(&stored)
            .await
            .unwrap();
    }

    // Pro: no wildcard renewals, auto-renew still allowed.
    change_plan(&harness, &account, "pro").await;
    let message = harness
        .call(on_certificate("certificates-renew", &account, wildcard_id))
        .await
        .expect_error(403, "wildcard_requires_elite");
    assert_eq!(message, WILDCARD_PLAN);
    let on = harness
        .call(
            on_certificate("certificates-update", &account, plain_id)
                .json(json!({ "auto_renew": true })),
        )
        .await
        .expect(200);
    assert_eq!(on["auto_renew"], true);

    // Plus: no auto-renew (turning it off is always allowed), manual renewal still allowed.
    change_plan(&harness, &account, "plus").await;
    let message = harness
        .call(
            on_certificate("certificates-update", &account, wildcard_id)
                .json(json!({ "auto_renew": true })),
        )
        .await
        .expect_error(403, "auto_renew_requires_pro");
    assert_eq!(message, AUTO_RENEW_PLAN);
    let off = harness
        .call(on_certificate("certificates-update", &account, plain_id))
        .await
        .expect(200);
    assert_eq!(off["auto_renew"], false);
    let renewed = harness
        .call(on_certificate("certificates-renew", &account, plain_id))
        .await
        .expect(202);
    assert_eq!(renewed["status"], "validating");

    // Free: no manual renewal.
    change_plan(&harness, &account, "free").await;
    let message = harness
        .call(on_certificate("certificates-renew", &account, wildcard_id))
        .await
        .expect_error(403, "paid_plan_required");
    assert_eq!(message, PAID_PLAN);

    // A malformed PATCH body.
    for body in [
        json!({}),
        json!({ "auto_renew": "yes" }),
        json!({ "auto_renew": true, "x": 1 }),
    ] {
        let reply = harness
            .call(on_certificate("certificates-update", &account, plain_id).json(body))
            .await;
        assert_eq!(reply.status, 400, "{}", reply.body);
    }
}

#[tokio::test]
async fn a_deleted_certificate_frees_its_name_and_its_place() {
    let harness = start().await;
    let account = harness.create_account("plus", false).await;
    let zone = zone(&harness, &account).await;
    let created = certificate(&harness, &account, &zone).await;
    let id = text(&created["id"]);

    // Without revoke (nothing to revoke either way, and no CA needed for it).
    harness
        .call(on_certificate("certificates-delete", &account, id))
        .await
        .expect(204);
    harness
        .call(on_certificate("certificates-get", &account, id))
        .await
        .expect_error(404, "not_found");
    harness
        .call(on_certificate("certificates-delete", &account, id))
        .await
        .expect_error(404, "not_found");
    assert_eq!(list(&harness, &account).await["limits"]["current_count"], 0);

    // A never-issued certificate asked to be revoked is simply deleted.
    let again = certificate(&harness, &account, &zone).await;
    harness
        .call(
            on_certificate("certificates-delete", &account, text(&again["id"]))
                .query(&[("revoke", "true")]),
        )
        .await
        .expect(204);
    assert_eq!(list(&harness, &account).await["certificates"], json!([]));

    let third = certificate(&harness, &account, &zone).await;
    harness
        .call(
            on_certificate("certificates-delete", &account, text(&third["id"]))
                .query(&[("revoke", "maybe")]),
        )
        .await
        .expect_error(400, "invalid_parameter");
}

#[tokio::test]
async fn revoking_without_a_ca_in_this_function_deletes_nothing() {
    let harness = start().await;
    let account = harness.create_account("pro", false).await;
    let zone = zone(&harness, &account).await;
    let created = certificate(&harness, &account, &zone).await;
    let id = certificate_id(&created);

    // GIVEN the certificate holds (pretend) issued material
    let services = &harness.state.services;
    let version = services
        .vault
        .put_material(
            &id,
            &CertificateMaterial {
                chain_pem: Some(
                    "-----BEGIN CERTIFICATE-----\nAA==\n-----END CERTIFICATE-----\n".to_owned(),
                ),
                private_key_pem: SecretString::new("key"),
            },
        )
        .await
        .unwrap();
    let mut stored = services
        .store
        .get_certificate(&account_id(&account), &id)
        .await
        .unwrap()
        .unwrap();
    let now = OffsetDateTime::now_utc();
    stored.status = CertificateStatus::Issued;
    stored.material_version = Some(version.0.clone());
    stored.issued_at = Some(now);
    stored.expires_at = Some(now + time::Duration::days(90));
    services.store.update_certificate(&stored).await.unwrap();

    // WHEN revocation is asked of a function without an issuer THEN 503, and it all stays
    let message = harness
        .call(
            on_certificate("certificates-delete", &account, id.as_str())
                .query(&[("revoke", "true")]),
        )
        .await
        .expect_error(503, "issuance_unavailable");
    assert!(message.contains("retry later"), "{message}");
    harness
        .call(on_certificate("certificates-get", &account, id.as_str()))
        .await
        .expect(200);
    services.vault.get_material(&id, &version).await.unwrap();

    // AND a plain delete still works, with the material
    harness
        .call(on_certificate("certificates-delete", &account, id.as_str()))
        .await
        .expect(204);
    assert!(matches!(
        services.vault.get_material(&id, &version).await,
        Err(Error::NotFound(_))
    ));
}

// ---------------------------------------------------------------------------------------------
// Isolation

#[tokio::test]
async fn another_accounts_certificate_and_managed_certificates_answer_404_on_every_route() {
    let harness = start().await;
    let owner = harness.create_account("elite", false).await;
    let intruder = harness.create_account("elite", false).await;
    let zone = zone(&harness, &owner).await;
    let created = certificate(&harness, &owner, &zone).await;
    let id = text(&created["id"]);

    // A managed certificate: a domain pointing at the edge, nudged.
    let domain = harness
        .create_domain(&owner, &format!("shop.{}", unique_apex("managed")))
        .await;
    let ssl = harness
        .on_domain("domains-nudge", &owner, text(&domain["id"]))
        .await
        .expect(200);
    let managed = text(&ssl["certificate"]["id"]).to_owned();

    for function in CERTIFICATE_ID_ROUTES {
        for (account, target) in [(&intruder, id), (&owner, managed.as_str())] {
            let reply = harness
                .call(on_certificate(function, account, target))
                .await;
            let body = reply.body.to_string();
            let message = reply.expect_error(404, "not_found");
            assert_eq!(message, "Certificate not found", "{function}");
            assert!(
                !body.contains(&zone.1),
                "{function} leaked the name: {body}"
            );
        }
        for malformed in ["cert_", "cert_a.b", "dom_00000000000000000000"] {
            harness
                .call(on_certificate(function, &owner, malformed))
                .await
                .expect_error(404, "not_found");
        }
    }

    // Nothing changed, and the lists stay apart (the managed certificate is the domain's).
    let after = harness
        .call(on_certificate("certificates-get", &owner, id))
        .await
        .expect(200);
    assert_eq!(after, created);
    assert_eq!(list(&harness, &intruder).await["certificates"], json!([]));
    let listed = list(&harness, &owner).await;
    assert_eq!(listed["certificates"], json!([created]));
    assert_eq!(listed["limits"]["current_count"], 1);
}

// ---------------------------------------------------------------------------------------------
// A certificate's whole life against Pebble

fn leaf_and_key_match(certificate_pem: &str, private_key_pem: &str) -> bool {
    use rcgen::PublicKeyData as _;
    let (_, pem) = x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes()).expect("PEM");
    let leaf = pem.parse_x509().expect("an X.509 certificate");
    let key = rcgen::KeyPair::from_pem(private_key_pem).expect("a PKCS#8 key");
    leaf.public_key().raw == key.subject_public_key_info().as_slice()
}

fn leaf_serial_and_names(certificate_pem: &str) -> (String, Vec<String>) {
    let (_, pem) = x509_parser::pem::parse_x509_pem(certificate_pem.as_bytes()).expect("PEM");
    let leaf = pem.parse_x509().expect("an X.509 certificate");
    let mut names: Vec<String> = leaf
        .subject_alternative_name()
        .expect("one SAN extension")
        .expect("a SAN extension")
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            x509_parser::extensions::GeneralName::DNSName(dns) => Some((*dns).to_owned()),
            _ => None,
        })
        .collect();
    names.sort();
    (leaf.serial.to_str_radix(16), names)
}

fn pem_blocks(text: &str) -> usize {
    text.matches("-----BEGIN CERTIFICATE-----").count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns01_certificate_lives_its_whole_life_on_sqlite() {
    a_dns01_certificate_is_issued_downloaded_renewed_and_revoked(Backend::Sqlite).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dns01_certificate_lives_its_whole_life_on_dynamodb() {
    a_dns01_certificate_is_issued_downloaded_renewed_and_revoked(Backend::Dynamo).await;
}

async fn a_dns01_certificate_is_issued_downloaded_renewed_and_revoked(backend: Backend) {
    let mut harness = start().await;
    // The harness's own SQLite file, or DynamoDB with Secrets Manager on moto.
    let _adapters = if backend == Backend::Dynamo {
        let adapters = Adapters::start(backend, MotoKeys::SecretsManager).await;
        harness.state.services.store = adapters.store.clone();
        harness.state.services.vault = adapters.vault.clone();
        Some(adapters)
    } else {
        None
    };
    let pebble = harness::pebble().await;
    let config = IssuerConfig::new(pebble.directory_url())
        .with_ca_root_pem(pebble.listener_ca_pem_path())
        .with_caa_identities([PEBBLE_CAA_IDENTITY])
        .with_poll_initial_delay(Duration::from_millis(25));
    let issuer: Arc<Issuer> =
        Arc::new(Issuer::new(harness.state.services.clone(), config).unwrap());
    let issuance: Arc<dyn Issuance> = issuer.clone();
    harness.state.services.issuance = Some(issuance);

    // GIVEN a Pro account with a verified zone
    let account = harness.create_account("pro", false).await;
    let (zone_id, name) = zone(&harness, &account).await;

    // WHEN it requests a certificate with a SAN
    let created = request(
        &harness,
        &account,
        json!({ "zone_id": zone_id, "domain": format!("app.{name}"), "sans": [format!("www.{name}")] }),
    )
    .await
    .expect(202);
    let id = text(&created["id"]).to_owned();
    let cert_id = certificate_id(&created);

    // AND the issuer (the worker's job) runs
    let outcome = issuer.issue(&account_id(&account), &cert_id).await.unwrap();
    assert!(matches!(outcome, IssueOutcome::Issued(_)), "{outcome:?}");

    // THEN it is issued, with dates
    let issued = harness
        .call(on_certificate("certificates-get", &account, &id))
        .await
        .expect(200);
    assert_eq!(issued["status"], "issued", "{issued}");
    let (issued_at, expires_at) = (
        timestamp(&issued["issued_at"]),
        timestamp(&issued["expires_at"]),
    );
    assert!(expires_at > issued_at);
    assert!(timestamp(&issued["next_renewal_at"]) < expires_at);
    assert_eq!(issued["next_attempt_at"], Value::Null);
    assert_eq!(issued["error"], Value::Null);

    // AND it downloads: a leaf for both names, its intermediates, and the matching key
    let download = harness
        .call(on_certificate("certificates-download", &account, &id))
        .await
        .expect(200);
    let keys: Vec<&String> = download.as_object().unwrap().keys().collect();
    assert_eq!(keys, ["certificate_pem", "chain_pem", "private_key_pem"]);
    let (leaf, chain, key) = (
        text(&download["certificate_pem"]),
        text(&download["chain_pem"]),
        text(&download["private_key_pem"]),
    );
    assert_eq!(pem_blocks(leaf), 1);
    assert!(pem_blocks(chain) >= 1, "{chain}");
    for block in chain.split_inclusive("-----END CERTIFICATE-----\n") {
        x509_parser::pem::parse_x509_pem(block.as_bytes())
            .unwrap()
            .1
            .parse_x509()
            .unwrap();
    }
    assert!(key.starts_with("-----BEGIN PRIVATE KEY-----"), "PKCS#8");
    assert!(leaf_and_key_match(leaf, key));
    let (first_serial, names) = leaf_serial_and_names(leaf);
    assert_eq!(names, [format!("app.{name}"), format!("www.{name}")]);

    // WHEN it is renewed by hand (and again, while queued)
    let renewing = harness
        .call(on_certificate("certificates-renew", &account, &id))
        .await
        .expect(202);
    assert_eq!(renewing["status"], "validating");
    let repeated = harness
        .call(on_certificate("certificates-renew", &account, &id))
        .await
        .expect(202);
    assert_eq!(repeated, renewing);
    // THEN the current certificate stays downloadable meanwhile
    let meanwhile = harness
        .call(on_certificate("certificates-download", &account, &id))
        .await
        .expect(200);
    assert_eq!(meanwhile["certificate_pem"], download["certificate_pem"]);
    // AND the issuer replaces it with a new one, under a new key
    let outcome = issuer.issue(&account_id(&account), &cert_id).await.unwrap();
    assert!(matches!(outcome, IssueOutcome::Issued(_)), "{outcome:?}");
    let renewed = harness
        .call(on_certificate("certificates-download", &account, &id))
        .await
        .expect(200);
    let renewed_leaf = text(&renewed["certificate_pem"]);
    assert_ne!(leaf_serial_and_names(renewed_leaf).0, first_serial);
    assert_ne!(text(&renewed["private_key_pem"]), key);
    assert!(leaf_and_key_match(
        renewed_leaf,
        text(&renewed["private_key_pem"])
    ));
    let after_renewal = harness
        .call(on_certificate("certificates-get", &account, &id))
        .await
        .expect(200);
    assert_eq!(after_renewal["status"], "issued");
    assert!(timestamp(&after_renewal["issued_at"]) >= issued_at);

    // WHEN auto-renewal is turned on, THEN the renewer will find it at its renewal time
    let on = harness
        .call(
            on_certificate("certificates-update", &account, &id)
                .json(json!({ "auto_renew": true })),
        )
        .await
        .expect(200);
    assert_eq!(on["auto_renew"], true);
    let stored = harness
        .state
        .services
        .store
        .get_certificate(&account_id(&account), &cert_id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.due_at(), stored.next_renewal_at);
    let off = harness
        .call(on_certificate("certificates-update", &account, &id))
        .await
        .expect(200);
    assert_eq!(off["auto_renew"], false);

    // AND the logs tell the story, newest first
    let logs = harness
        .call(on_certificate("certificates-logs", &account, &id))
        .await
        .expect(200);
    let events = logs["events"].as_array().unwrap();
    let steps: Vec<&str> = events.iter().map(|event| text(&event["step"])).collect();
    assert_eq!(steps.first(), Some(&"settings"), "{steps:?}");
    assert_eq!(steps.last(), Some(&"requested"), "{steps:?}");
    for step in [
        "renewal",
        "preflight",
        "order",
        "challenge",
        "stored",
        "issued",
    ] {
        assert!(steps.contains(&step), "no {step} in {steps:?}");
    }
    let times: Vec<OffsetDateTime> = events.iter().map(|event| timestamp(&event["at"])).collect();
    assert!(times.windows(2).all(|pair| pair[0] >= pair[1]), "{times:?}");

    // WHEN it is deleted with revocation
    let version = stored.material_version.clone().unwrap();
    harness
        .call(on_certificate("certificates-delete", &account, &id).query(&[("revoke", "true")]))
        .await
        .expect(204);

    // THEN the CA has revoked the served certificate
    let (serial, _) = leaf_serial_and_names(renewed_leaf);
    let status: Value = pebble
        .http_client()
        .unwrap()
        .get(format!(
            "{}/cert-status-by-serial/{serial}",
            pebble.management_url()
        ))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["Status"], "Revoked", "{status}");
    // AND the certificate, its key and its place in the plan are gone
    harness
        .call(on_certificate("certificates-get", &account, &id))
        .await
        .expect_error(404, "not_found");
    assert!(matches!(
        harness
            .state
            .services
            .vault
            .get_material(&cert_id, &MaterialVersion(version))
            .await,
        Err(Error::NotFound(_))
    ));
    assert_eq!(list(&harness, &account).await["limits"]["current_count"], 0);
    // AND no TXT record is left in the zone
    let resolver = edgecert_dns::HickoryResolver::with_name_server(harness.dns.dns_server_addr());
    for record in [
        format!("_acme-challenge.app.{name}"),
        format!("_acme-challenge.www.{name}"),
    ] {
        assert!(
            edgecert_core::ports::DnsResolver::txt(&resolver, &record)
                .await
                .unwrap()
                .is_empty()
        );
    }
}

// ---------------------------------------------------------------------------------------------
// ACME profiles and the renewal plan

/// The harness's issuer on the shared Pebble through the fault layer `faults` (built after the
/// services it works on are final, then made their issuance).
async fn issuer_through(harness: &mut Harness, faults: &CaFaults) -> Arc<Issuer> {
    let pebble = harness::pebble().await;
    let config = IssuerConfig::new(pebble.directory_url())
        .with_ca_root_pem(pebble.listener_ca_pem_path())
        .with_caa_identities([PEBBLE_CAA_IDENTITY])
        .with_poll_initial_delay(Duration::from_millis(25));
    let http = ca_http_client(config.ca_root_pem.as_deref(), config.request_timeout).unwrap();
    let issuer = Arc::new(Issuer::with_http_client(
        harness.state.services.clone(),
        config,
        faults.client(http),
    ));
    harness.state.services.issuance = Some(issuer.clone());
    issuer
}

/// A platform chooses ACME profiles through the API: for the account (operator), a domain and
/// a certificate, each among those the CA advertises (anything else is 400 `unknown_profile`
/// listing them). The certificate is ordered with the most specific one, shows it and its
/// lifetime once issued, and its `next_renewal_at` is the CA's ARI plan, inside the window.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn profiles_are_chosen_through_the_api_and_the_renewal_plan_follows_ari() {
    edgecert_integration::bounded(
        Duration::from_secs(120),
        "profiles through the API",
        profiles_through_the_api(),
    )
    .await;
}

async fn profiles_through_the_api() {
    let mut harness = start().await;
    // The fault layer stands for a CA with profiles and ARI (Pebble 2.4 has neither).
    let faults = CaFaults::new();
    faults.advertise_profiles(&[
        ("classic", "The default profile"),
        ("shortlived", "6-day certificates"),
        ("tlsserver", "45-day certificates"),
    ]);
    let now = OffsetDateTime::now_utc();
    let window = RenewalWindow {
        start: now + time::Duration::days(20),
        end: now + time::Duration::days(21),
    };
    faults.serve_renewal_info(window, Duration::from_secs(3600));
    let issuer = issuer_through(&mut harness, &faults).await;
    let account = harness.create_account("elite", false).await;
    let unknown = "Unknown ACME profile \"longlived\": the certificate authority offers classic, \
                   shortlived, tlsserver";

    // The operator's account setting
    let set_account = |profile: Value| {
        ApiCall::new("accounts-update")
            .by_admin()
            .id(&account.id)
            .json(json!({ "acme_profile": profile }))
    };
    let refused = harness
        .call(set_account(json!("longlived")))
        .await
        .expect_error(400, "unknown_profile");
    assert_eq!(refused, unknown);
    let updated = harness
        .call(set_account(json!("tlsserver")))
        .await
        .expect(200);
    assert_eq!(updated["acme_profile"], "tlsserver");

    // A domain's own, set on creation and cleared with null
    let domain_body = |profile: &str| json!({ "hostname": unique_apex("profiled"), "origin_url": harness::origin_url(), "acme_profile": profile });
    let refused = harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&account.id)
                .json(domain_body("longlived")),
        )
        .await
        .expect_error(400, "unknown_profile");
    assert_eq!(refused, unknown);
    let domain = harness
        .call(
            ApiCall::new("domains-create")
                .by_account(&account.id)
                .json(domain_body("shortlived")),
        )
        .await
        .expect(201);
    assert_eq!(domain["acme_profile"], "shortlived");
    let domain = harness
        .call(
            ApiCall::new("domains-update")
                .by_account(&account.id)
                .id(text(&domain["id"]))
                .json(json!({ "acme_profile": null })),
        )
        .await
        .expect(200);
    assert_eq!(domain["acme_profile"], Value::Null);
    assert_eq!(domain["origin_url"], harness::origin_url(), "origin kept");

    // A certificate's own wins over the account's
    let (zone_id, name) = zone(&harness, &account).await;
    let with_profile = |profile: &str| json!({ "zone_id": zone_id, "domain": format!("app.{name}"), "acme_profile": profile });
    let refused = request(&harness, &account, with_profile("longlived"))
        .await
        .expect_error(400, "unknown_profile");
    assert_eq!(refused, unknown);
    let created = request(&harness, &account, with_profile("shortlived"))
        .await
        .expect(202);
    assert_eq!(created["acme_profile"], "shortlived");
    assert_eq!(created["issued_profile"], Value::Null);
    let id = text(&created["id"]).to_owned();
    let outcome = issuer
        .issue(&account_id(&account), &certificate_id(&created))
        .await;
    assert!(
        matches!(outcome, Ok(IssueOutcome::Issued(_))),
        "{outcome:?}"
    );
    assert_eq!(faults.order_profiles(), [Some("shortlived".to_owned())]);
    let issued = harness
        .call(on_certificate("certificates-get", &account, &id))
        .await
        .expect(200);
    assert_eq!(issued["issued_profile"], "shortlived", "{issued}");
    let lifetime = issued["lifetime_seconds"].as_i64().expect("a lifetime");
    // (notBefore is a moment before the issue time the API shows.)
    let issued_for = timestamp(&issued["expires_at"]) - timestamp(&issued["issued_at"]);
    assert!(
        (lifetime - issued_for.whole_seconds()).abs() <= 60,
        "lifetime {lifetime} s: {issued}"
    );
    // The renewal plan shown is the CA's: a point of its ARI window
    let next_renewal_at = timestamp(&issued["next_renewal_at"]);
    assert!(
        next_renewal_at >= window.start && next_renewal_at < window.end,
        "next_renewal_at {next_renewal_at} outside the ARI window {window:?}"
    );

    // Cleared on the certificate, the account's applies to the next order
    let cleared = harness
        .call(
            ApiCall::new("certificates-update")
                .by_account(&account.id)
                .id(&id)
                .json(json!({ "acme_profile": null })),
        )
        .await
        .expect(200);
    assert_eq!(cleared["acme_profile"], Value::Null);
    assert_eq!(cleared["issued_profile"], "shortlived");
    harness
        .call(on_certificate("certificates-renew", &account, &id))
        .await
        .expect(202);
    let outcome = issuer
        .issue(&account_id(&account), &certificate_id(&created))
        .await;
    assert!(
        matches!(outcome, Ok(IssueOutcome::Issued(_))),
        "{outcome:?}"
    );
    assert_eq!(faults.order_profiles()[1].as_deref(), Some("tlsserver"));
    let renewed = harness
        .call(on_certificate("certificates-get", &account, &id))
        .await
        .expect(200);
    assert_eq!(renewed["issued_profile"], "tlsserver", "{renewed}");
}

/// A platform reads the escalation of a renewal that keeps failing through the API: the
/// certificate's `expiring_notice_days` and its logs' `certificate.expiring` event, once the
/// renewer has recorded the notice (here 7 days before expiry, the CA refusing every order).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_renewal_failing_near_expiry_shows_its_expiring_notice_in_the_api() {
    edgecert_integration::bounded(
        Duration::from_secs(120),
        "expiring notice through the API",
        expiring_notice_through_the_api(),
    )
    .await;
}

async fn expiring_notice_through_the_api() {
    let mut harness = start().await;
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    harness.state.services.clock = clock.clone();
    let faults = CaFaults::new();
    let issuer = issuer_through(&mut harness, &faults).await;
    let account = harness.create_account("pro", false).await;
    let zone = zone(&harness, &account).await;
    let created = request(
        &harness,
        &account,
        json!({ "zone_id": zone.0, "domain": format!("app.{}", zone.1), "auto_renew": true }),
    )
    .await
    .expect(202);
    let id = text(&created["id"]).to_owned();
    let outcome = issuer
        .issue(&account_id(&account), &certificate_id(&created))
        .await;
    assert!(
        matches!(outcome, Ok(IssueOutcome::Issued(_))),
        "{outcome:?}"
    );
    let issued = harness
        .call(on_certificate("certificates-get", &account, &id))
        .await
        .expect(200);
    assert_eq!(issued["expiring_notice_days"], Value::Null, "{issued}");

    // WHEN the CA refuses every order and the renewer runs 6 days before expiry
    faults.inject(Endpoint::NewOrder, Fault::ServiceUnavailable, usize::MAX);
    let expires_at = timestamp(&issued["expires_at"]);
    clock.advance(expires_at - time::Duration::days(6) - clock.now());
    let report = run_renewals(
        &harness.state.services,
        issuer.as_ref(),
        &RenewalSettings::new(),
    )
    .await
    .unwrap();
    assert_eq!((report.failed, report.expiring.len()), (1, 1), "{report:?}");

    // THEN the certificate says so, still issued, and its logs tell why
    let got = harness
        .call(on_certificate("certificates-get", &account, &id))
        .await
        .expect(200);
    assert_eq!(got["status"], "issued", "{got}");
    assert_eq!(got["expiring_notice_days"], 7, "{got}");
    let logs = harness
        .call(on_certificate("certificates-logs", &account, &id))
        .await
        .expect(200);
    let latest = &logs["events"][0];
    assert_eq!(latest["step"], EXPIRING_STEP, "{logs}");
    assert_eq!(latest["level"], "warning", "{logs}");
    assert!(
        text(&latest["message"]).contains("within 7 days"),
        "{latest}"
    );
}

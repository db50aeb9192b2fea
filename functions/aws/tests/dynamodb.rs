//! DynamoDB-specific behaviour the conformance suite cannot see: the table and item layout
//! other components rely on (template, stream consumers), cursor checks, immutable claim keys
//! and error mapping. Runs against moto_server (see `support`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, StreamViewType, TimeToLiveStatus};
use edgecert_aws::{DynamoStore, create_table, schema};
use edgecert_core::model::{
    Account, ApiKey, Certificate, CertificateEvent, CertificateStatus, Domain, EventLevel,
    Http01Challenge,
};
use edgecert_core::ports::{
    AccountStore, CertificateStore, ChallengeStore, DomainStore, EventLog, LeaseStore, PageRequest,
    ZoneStore,
};
use edgecert_core::{
    AccountId, CertificateId, DomainId, Error, Hostname, ItemKind, PlanName, ZoneId,
};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

fn hostname(label: &str) -> Hostname {
    let unique = DomainId::generate();
    Hostname::parse_domain(&format!("{label}.c{}.example.com", &unique.as_str()[4..14])).unwrap()
}

fn account() -> Account {
    Account::new("Layout Test".to_owned(), PlanName::Elite, false, NOW)
}

fn domain(account: &AccountId) -> Domain {
    Domain::whitelisted(
        account.clone(),
        hostname("shop"),
        "https://origin.example.net".to_owned(),
        false,
        NOW,
    )
}

fn issued_certificate(account: &AccountId, renew_at: OffsetDateTime) -> Certificate {
    let mut certificate = Certificate::downloadable(
        account.clone(),
        ZoneId::generate(),
        hostname("api"),
        vec![],
        NOW,
    )
    .with_auto_renew(true);
    certificate.status = CertificateStatus::Issued;
    certificate.issued_at = Some(NOW - Duration::days(60));
    certificate.not_before = Some(NOW - Duration::days(60));
    certificate.expires_at = Some(renew_at + Duration::days(30));
    certificate.next_renewal_at = Some(renew_at);
    certificate.next_attempt_at = None;
    certificate
}

async fn new_account(store: &DynamoStore) -> AccountId {
    let account = account();
    store
        .create_account(&account, &ApiKey::generate().hash)
        .await
        .unwrap();
    account.id
}

async fn raw_item(
    client: &aws_sdk_dynamodb::Client,
    store: &DynamoStore,
    pk: String,
    sk: &str,
) -> HashMap<String, AttributeValue> {
    client
        .get_item()
        .table_name(store.table_name())
        .key(schema::PK, AttributeValue::S(pk))
        .key(schema::SK, AttributeValue::S(sk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
        .expect("item exists")
}

fn string<'a>(item: &'a HashMap<String, AttributeValue>, name: &str) -> Option<&'a str> {
    item.get(name)
        .and_then(|value| value.as_s().ok())
        .map(String::as_str)
}

fn number(item: &HashMap<String, AttributeValue>, name: &str) -> Option<i64> {
    item.get(name)
        .and_then(|value| value.as_n().ok())
        .and_then(|n| n.parse().ok())
}

#[tokio::test]
async fn create_table_is_idempotent_and_sets_up_indexes_stream_and_ttl() {
    let clients = support::clients().await;
    let table = support::unique_name("table");
    create_table(&clients.dynamodb, &table).await.unwrap();
    create_table(&clients.dynamodb, &table).await.unwrap();

    let described = clients
        .dynamodb
        .describe_table()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let description = described.table().unwrap();
    let mut global: Vec<_> = description
        .global_secondary_indexes()
        .iter()
        .filter_map(|index| index.index_name())
        .collect();
    global.sort_unstable();
    assert_eq!(
        global,
        [schema::BY_DUE, schema::BY_HOSTNAME, schema::BY_UPDATED]
    );
    let local: Vec<_> = description
        .local_secondary_indexes()
        .iter()
        .filter_map(|index| index.index_name())
        .collect();
    assert_eq!(local, [schema::BY_CREATED]);
    let stream = description.stream_specification().unwrap();
    assert!(stream.stream_enabled());
    assert_eq!(
        stream.stream_view_type(),
        Some(&StreamViewType::NewAndOldImages)
    );
    let ttl = clients
        .dynamodb
        .describe_time_to_live()
        .table_name(&table)
        .send()
        .await
        .unwrap();
    let ttl = ttl.time_to_live_description().unwrap();
    assert_eq!(ttl.attribute_name(), Some(schema::TTL));
    assert!(matches!(
        ttl.time_to_live_status(),
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ));
}

#[tokio::test]
async fn items_keep_the_documented_layout() {
    let clients = support::clients().await;
    let store = support::fresh_store(&clients).await;
    let account = new_account(&store).await;
    let account_pk = format!("ACCT#{account}");

    // GIVEN a domain and a certificate due for renewal
    let domain = domain(&account);
    store.create_domain(&domain, 10).await.unwrap();
    let certificate = issued_certificate(&account, NOW - Duration::minutes(1));
    store.create_certificate(&certificate, 10).await.unwrap();
    let shard_pk = |id: &str| {
        format!(
            "{account_pk}#{:02}",
            schema::shard_of(id, schema::ACCOUNT_SHARDS)
        )
    };
    let index_shard = |prefix: &str, id: &str| {
        format!("{prefix}#{:02}", schema::shard_of(id, schema::INDEX_SHARDS))
    };

    // THEN the account counts them, the domain is in the hostname index and the certificate in
    // the due index, and `data` carries the same version as `version`
    let account_item = raw_item(&clients.dynamodb, &store, account_pk.clone(), "ACCOUNT").await;
    assert_eq!(number(&account_item, "domain_count"), Some(1));
    assert_eq!(number(&account_item, "certificate_count"), Some(1));
    let domain_item = raw_item(
        &clients.dynamodb,
        &store,
        shard_pk(domain.id.as_str()),
        &format!("DOM#{}", domain.id),
    )
    .await;
    assert_eq!(
        string(&domain_item, schema::GSI3PK),
        Some(index_shard(schema::CHANGED_DOMAINS, domain.id.as_str()).as_str())
    );
    assert_eq!(string(&domain_item, schema::ENTITY), Some("domain"));
    assert_eq!(
        string(&domain_item, schema::GSI1PK),
        Some(domain.hostname.as_str())
    );
    assert!(
        string(&domain_item, schema::LSI1SK)
            .unwrap()
            .starts_with("DOM#")
    );
    let host_item = raw_item(
        &clients.dynamodb,
        &store,
        format!("HOST#{}", domain.hostname),
        "HOST",
    )
    .await;
    assert_eq!(string(&host_item, "domain_id"), Some(domain.id.as_str()));
    let cert_sk = format!("CERT#{}", certificate.id);
    let cert_pk = shard_pk(certificate.id.as_str());
    let cert_item = raw_item(&clients.dynamodb, &store, cert_pk.clone(), &cert_sk).await;
    assert_eq!(
        string(&cert_item, schema::GSI2PK),
        Some(index_shard(schema::DUE_PREFIX, certificate.id.as_str()).as_str())
    );
    assert_eq!(
        string(&cert_item, schema::GSI3PK),
        Some(index_shard(schema::CHANGED_CERTIFICATES, certificate.id.as_str()).as_str())
    );
    assert!(
        string(&cert_item, schema::GSI2SK)
            .unwrap()
            .ends_with(certificate.id.as_str())
    );
    assert_eq!(string(&cert_item, schema::STATUS), Some("issued"));

    // WHEN it is revoked, THEN it leaves the due index and the copies follow
    let mut revoked = certificate.clone();
    revoked.status = CertificateStatus::Revoked;
    let stored = store.update_certificate(&revoked).await.unwrap();
    let cert_item = raw_item(&clients.dynamodb, &store, cert_pk, &cert_sk).await;
    assert!(!cert_item.contains_key(schema::GSI2PK));
    assert!(!cert_item.contains_key(schema::GSI2SK));
    assert_eq!(string(&cert_item, schema::STATUS), Some("revoked"));
    assert_eq!(number(&cert_item, schema::VERSION), Some(2));
    let data: Certificate =
        serde_json::from_str(string(&cert_item, schema::DATA).unwrap()).unwrap();
    assert_eq!(data, stored);
}

#[tokio::test]
async fn a_zone_claims_its_name_and_zones_stored_before_claims_hold_none() {
    use edgecert_core::model::Zone;

    let clients = support::clients().await;
    let store = support::fresh_store(&clients).await;
    let zone_for = |account: AccountId, name: &Hostname| Zone {
        id: ZoneId::generate(),
        account_id: account,
        name: name.clone(),
        provider: "route53".to_owned(),
        provider_zone_id: "Z0123".to_owned(),
        role_arn: Some("arn:aws:iam::111122223333:role/EdgeCertDns".to_owned()),
        verified: true,
        created_at: NOW,
        version: 1,
    };
    let name = hostname("zone");

    // GIVEN a zone stored by this build: its claim item names it
    let first = zone_for(new_account(&store).await, &name);
    store.create_zone(&first).await.unwrap();
    let claim = raw_item(
        &clients.dynamodb,
        &store,
        format!("ZONENAME#{name}"),
        "ZONENAME",
    )
    .await;
    assert_eq!(string(&claim, schema::ENTITY), Some("zone_name"));
    assert_eq!(string(&claim, "zone_id"), Some(first.id.as_str()));
    assert_eq!(
        string(&claim, "account_id"),
        Some(first.account_id.as_str())
    );

    // AND a zone of the same name stored before claims existed: its item alone (as the
    // earlier build wrote it, in the account shard a migrated table keeps it in), in another
    // account
    let legacy = zone_for(new_account(&store).await, &name);
    clients
        .dynamodb
        .put_item()
        .table_name(store.table_name())
        .item(
            schema::PK,
            AttributeValue::S(format!(
                "ACCT#{}#{:02}",
                legacy.account_id,
                schema::shard_of(legacy.id.as_str(), schema::ACCOUNT_SHARDS)
            )),
        )
        .item(schema::SK, AttributeValue::S(format!("ZONE#{}", legacy.id)))
        .item(schema::ENTITY, AttributeValue::S("zone".to_owned()))
        .item(
            schema::LSI1SK,
            AttributeValue::S(format!("ZONE#000000000000000#{}", legacy.id)),
        )
        .item(
            schema::DATA,
            AttributeValue::S(serde_json::to_string(&legacy).unwrap()),
        )
        .item(schema::VERSION, AttributeValue::N("1".to_owned()))
        .send()
        .await
        .unwrap();

    // THEN the legacy zone is found by id but does not hold the name, and deleting it leaves
    // the claim with the zone that holds it
    assert_eq!(
        store
            .get_zone(&legacy.account_id, &legacy.id)
            .await
            .unwrap(),
        Some(legacy.clone())
    );
    assert_eq!(
        store.zone_by_name(&name).await.unwrap(),
        Some(first.clone())
    );
    store
        .delete_zone(&legacy.account_id, &legacy.id)
        .await
        .unwrap();
    assert_eq!(
        store
            .get_zone(&legacy.account_id, &legacy.id)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        store.zone_by_name(&name).await.unwrap(),
        Some(first.clone())
    );

    // WHEN the claiming zone is deleted THEN its claim goes with it
    store
        .delete_zone(&first.account_id, &first.id)
        .await
        .unwrap();
    assert_eq!(store.zone_by_name(&name).await.unwrap(), None);
    let claim = clients
        .dynamodb
        .get_item()
        .table_name(store.table_name())
        .key(schema::PK, AttributeValue::S(format!("ZONENAME#{name}")))
        .key(schema::SK, AttributeValue::S("ZONENAME".to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert!(claim.item.is_none(), "{claim:?}");
}

#[tokio::test]
async fn claimed_names_cannot_be_changed_by_an_update() {
    let clients = support::clients().await;
    let store = support::fresh_store(&clients).await;
    let account = new_account(&store).await;
    let domain = domain(&account);
    store.create_domain(&domain, 10).await.unwrap();

    let mut renamed = domain.clone();
    renamed.hostname = hostname("other");
    let error = store.update_domain(&renamed).await.unwrap_err();
    assert_eq!(error.code(), "immutable_field", "{error:?}");
    assert_eq!(
        store.domain_by_hostname(&domain.hostname).await.unwrap(),
        Some(domain.clone())
    );

    let certificate = issued_certificate(&account, NOW + Duration::days(10));
    store.create_certificate(&certificate, 10).await.unwrap();
    let mut renamed = certificate.clone();
    renamed.domain = hostname("renamed");
    let error = store.update_certificate(&renamed).await.unwrap_err();
    assert_eq!(error.code(), "immutable_field", "{error:?}");
}

#[tokio::test]
async fn updates_tell_a_deleted_item_from_a_stale_version() {
    let clients = support::clients().await;
    let store = support::fresh_store(&clients).await;
    let account = new_account(&store).await;

    let domain = domain(&account);
    store.create_domain(&domain, 10).await.unwrap();
    store.update_domain(&domain).await.unwrap();
    let stale = store.update_domain(&domain).await.unwrap_err();
    assert!(
        matches!(stale, Error::VersionConflict(ItemKind::Domain)),
        "{stale:?}"
    );
    store
        .delete_domain(&account, &domain.id, OffsetDateTime::now_utc())
        .await
        .unwrap();
    let gone = store.update_domain(&domain).await.unwrap_err();
    assert!(
        matches!(gone, Error::NotFound(ItemKind::Domain)),
        "{gone:?}"
    );

    let certificate = issued_certificate(&account, NOW);
    store.create_certificate(&certificate, 10).await.unwrap();
    store
        .delete_certificate(&account, &certificate.id)
        .await
        .unwrap();
    let gone = store.update_certificate(&certificate).await.unwrap_err();
    assert!(
        matches!(gone, Error::NotFound(ItemKind::Certificate)),
        "{gone:?}"
    );
    let again = store
        .delete_certificate(&account, &certificate.id)
        .await
        .unwrap_err();
    assert!(
        matches!(again, Error::NotFound(ItemKind::Certificate)),
        "{again:?}"
    );
}

#[tokio::test]
async fn limits_of_an_unknown_account_answer_not_found() {
    let clients = support::clients().await;
    let store = support::fresh_store(&clients).await;
    let nobody = AccountId::generate();

    let error = store.create_domain(&domain(&nobody), 10).await.unwrap_err();
    assert!(
        matches!(error, Error::NotFound(ItemKind::Account)),
        "{error:?}"
    );
    let certificate = issued_certificate(&nobody, NOW);
    let error = store
        .create_certificate(&certificate, 10)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::NotFound(ItemKind::Account)),
        "{error:?}"
    );
    let error = store.account_usage(&nobody).await.unwrap_err();
    assert!(
        matches!(error, Error::NotFound(ItemKind::Account)),
        "{error:?}"
    );
}

#[tokio::test]
async fn cursors_continue_only_their_own_list() {
    let clients = support::clients().await;
    let store = support::fresh_store(&clients).await;
    let owner = new_account(&store).await;
    let stranger = new_account(&store).await;
    for _ in 0..2 {
        store.create_domain(&domain(&owner), 10).await.unwrap();
    }

    let first = store
        .list_domains(&owner, PageRequest::first(1))
        .await
        .unwrap();
    let cursor = first.next_cursor.expect("a second page");
    let foreign = PageRequest {
        cursor: Some(cursor.clone()),
        limit: 1,
    };
    let error = store
        .list_domains(&stranger, foreign.clone())
        .await
        .unwrap_err();
    assert_eq!((error.status(), error.code()), (400, "invalid_cursor"));
    let error = store.list_zones(&owner, foreign).await.unwrap_err();
    assert_eq!(error.code(), "invalid_cursor");
    let garbage = PageRequest {
        cursor: Some("eyJub3QiOiJhIGtleSJ9".to_owned()),
        limit: 1,
    };
    let error = store.due_certificates(NOW, garbage).await.unwrap_err();
    assert_eq!(error.code(), "invalid_cursor");

    let second = store
        .list_domains(
            &owner,
            PageRequest {
                cursor: Some(cursor),
                limit: 1,
            },
        )
        .await
        .unwrap();
    assert_eq!(second.items.len(), 1);
    assert_eq!(second.next_cursor, None);
    assert_ne!(second.items[0].id, first.items[0].id);
}

#[tokio::test]
async fn due_query_is_exact_below_the_millisecond_of_its_index_key() {
    let clients = support::clients().await;
    let store = support::fresh_store(&clients).await;
    let account = new_account(&store).await;
    let now = NOW + Duration::microseconds(200);
    let on_time = issued_certificate(&account, now);
    let later_same_ms = issued_certificate(&account, now + Duration::microseconds(500));
    store.create_certificate(&on_time, 10).await.unwrap();
    store.create_certificate(&later_same_ms, 10).await.unwrap();

    let page = store
        .due_certificates(now, PageRequest::first(10))
        .await
        .unwrap();
    let ids: Vec<_> = page.items.iter().map(|c| &c.id).collect();
    assert_eq!(ids, [&on_time.id]);
}

#[tokio::test]
async fn events_of_one_instant_list_in_reverse_append_order_and_expire_by_ttl() {
    let clients = support::clients().await;
    let store = support::fresh_store(&clients).await;
    let certificate = CertificateId::generate();
    for step in ["order", "challenge", "finalize"] {
        let event = CertificateEvent {
            certificate_id: certificate.clone(),
            at: NOW,
            step: step.to_owned(),
            level: EventLevel::Info,
            message: format!("{step} done"),
            acme_problem: None,
        };
        store.append_event(&event).await.unwrap();
    }
    let events = store.list_events(&certificate, 10).await.unwrap();
    let steps: Vec<_> = events.iter().map(|e| e.step.as_str()).collect();
    assert_eq!(steps, ["finalize", "challenge", "order"]);
    assert!(store.list_events(&certificate, 0).await.unwrap().is_empty());

    let listed = clients
        .dynamodb
        .query()
        .table_name(store.table_name())
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("EVENTS#{certificate}")))
        .send()
        .await
        .unwrap();
    let expected_ttl = (NOW + CertificateEvent::RETENTION).unix_timestamp();
    assert!(
        listed
            .items()
            .iter()
            .all(|item| number(item, schema::TTL) == Some(expected_ttl))
    );
}

#[tokio::test]
async fn long_lease_names_and_implausible_tokens_are_handled() {
    let clients = support::clients().await;
    let store = support::fresh_store(&clients).await;

    // A lease on 100 long names exceeds DynamoDB's key size unless hashed.
    let name = format!(
        "issue:{}",
        vec!["a".repeat(60) + ".example.com"; 100].join(",")
    );
    let lease = store
        .acquire_lease(&name, "me", Duration::seconds(30), NOW)
        .await
        .unwrap();
    assert_eq!(lease.name, name);
    let held = store
        .acquire_lease(&name, "you", Duration::seconds(30), NOW)
        .await
        .unwrap_err();
    assert!(matches!(held, Error::LeaseHeld { .. }), "{held:?}");
    let renewed = store
        .renew_lease(&lease, Duration::seconds(30), NOW + Duration::seconds(10))
        .await
        .unwrap();
    store.release_lease(&renewed).await.unwrap();
    store
        .acquire_lease(&name, "you", Duration::seconds(30), NOW)
        .await
        .unwrap();

    // Whatever reaches port 80 is answered without an error.
    let long_token = "x".repeat(10_000);
    assert_eq!(store.get_http01(&long_token, NOW).await.unwrap(), None);
    assert_eq!(store.get_http01("", NOW).await.unwrap(), None);
    store.delete_http01(&long_token).await.unwrap();
    let refused = store
        .put_http01(&Http01Challenge {
            token: long_token,
            key_authorization: "k".to_owned(),
            expires_at: NOW,
        })
        .await
        .unwrap_err();
    assert_eq!(refused.status(), 400);
}

#[tokio::test]
async fn a_missing_table_is_a_retryable_store_error_naming_the_operation() {
    let clients = support::clients().await;
    let store = DynamoStore::new(clients.dynamodb.clone(), support::unique_name("absent"));
    let error = store
        .get_zone(&AccountId::generate(), &ZoneId::generate())
        .await
        .unwrap_err();
    assert!(matches!(error, Error::Store(_)), "{error:?}");
    assert!(error.is_retryable());
    assert_eq!(error.status(), 503);
    let text = error.to_string();
    assert!(text.contains("DynamoDB GetItem failed"), "{text}");
    assert!(text.contains("ResourceNotFoundException"), "{text}");
}

//! The sharded layout on moto_server: account lists, change feeds and the due query merged
//! from several shards in exact order behind opaque cursors; and a table of the earlier layout
//! (one `ACCT#` partition per account, single `DUE` and `CHANGED#*` keys) read as it is, then
//! migrated, by the library and by the `edgecert-migrate-table` command.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::collections::{BTreeSet, HashMap};
use std::future::Future;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::types::AttributeValue;
use edgecert_aws::schema::{self, ACCOUNT_SHARDS, INDEX_SHARDS, shard_of};
use edgecert_aws::{DynamoStore, MigrationOptions};
use edgecert_core::model::{
    Account, ApiKey, Certificate, CertificateKind, CertificateStatus, DeletedDomain, Domain,
    DomainChange, Zone,
};
use edgecert_core::ports::{
    AccountStore, CertificateStore, DomainStore, Page, PageRequest, ZoneStore,
};
use edgecert_core::{AccountId, CertificateId, DomainId, Hostname, PlanName, ZoneId};
use time::macros::datetime;
use time::{Duration, OffsetDateTime};

const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

fn hostname(label: &str) -> Hostname {
    let unique = DomainId::generate();
    Hostname::parse_domain(&format!("{label}.c{}.example.com", &unique.as_str()[4..14])).unwrap()
}

/// A new id of the kind `generate` makes whose shard over `shards` is `shard`.
fn id_in<T: AsRef<str>>(shard: u32, shards: u32, generate: impl Fn() -> T) -> T {
    loop {
        let id = generate();
        if shard_of(id.as_ref(), shards) == shard {
            return id;
        }
    }
}

fn domain_id_in(shard: u32, shards: u32) -> DomainId {
    let id = id_in(shard, shards, || DomainId::generate().as_str().to_owned());
    DomainId::parse(&id).unwrap()
}

fn certificate_id_in(shard: u32, shards: u32) -> CertificateId {
    let id = id_in(shard, shards, || {
        CertificateId::generate().as_str().to_owned()
    });
    CertificateId::parse(&id).unwrap()
}

fn zone_id_in(shard: u32) -> ZoneId {
    let id = id_in(shard, ACCOUNT_SHARDS, || {
        ZoneId::generate().as_str().to_owned()
    });
    ZoneId::parse(&id).unwrap()
}

async fn new_account(store: &DynamoStore) -> AccountId {
    let mut account = Account::new("Sharded Platform".to_owned(), PlanName::Elite, false, NOW);
    account.zone_token = None;
    store
        .create_account(&account, &ApiKey::generate().hash)
        .await
        .unwrap();
    account.id
}

fn domain(account: &AccountId, id: DomainId, at: OffsetDateTime) -> Domain {
    let mut domain = Domain::whitelisted(
        account.clone(),
        hostname("shop"),
        "https://origin.example.net".to_owned(),
        false,
        at,
    );
    domain.id = id;
    domain.ownership_token = "token".to_owned();
    domain
}

/// An issued managed certificate renewing at `renew_at`.
fn certificate(
    account: &AccountId,
    id: CertificateId,
    at: OffsetDateTime,
    renew_at: OffsetDateTime,
) -> Certificate {
    let owner = domain(account, DomainId::generate(), at);
    let mut certificate = Certificate::managed(&owner, at);
    certificate.id = id;
    certificate.domain = hostname("api");
    certificate.status = CertificateStatus::Issued;
    certificate.issued_at = Some(renew_at - Duration::days(60));
    certificate.not_before = Some(renew_at - Duration::days(60));
    certificate.expires_at = Some(renew_at + Duration::days(30));
    certificate.next_renewal_at = Some(renew_at);
    certificate.next_attempt_at = None;
    certificate
}

fn zone(account: &AccountId, id: ZoneId, at: OffsetDateTime) -> Zone {
    Zone {
        id,
        account_id: account.clone(),
        name: hostname("zone"),
        provider: "challtestsrv".to_owned(),
        provider_zone_id: "Z123".to_owned(),
        role_arn: None,
        verified: true,
        created_at: at,
        version: 1,
    }
}

/// What paging through a list with pages of `limit` saw.
struct Paged<T> {
    items: Vec<T>,
    pages: Vec<usize>,
    most_read_by_a_page: u64,
}

/// Pages through a list with pages of `limit`, following cursors (at most 200 pages).
async fn page_all<T, F, Fut>(limit: u32, read: F) -> Paged<T>
where
    F: Fn(PageRequest) -> Fut,
    Fut: Future<Output = edgecert_core::Result<Page<T>>>,
{
    let mut paged = Paged {
        items: Vec::new(),
        pages: Vec::new(),
        most_read_by_a_page: 0,
    };
    let mut request = PageRequest::first(limit);
    for _ in 0..200 {
        let page = read(request.clone()).await.unwrap();
        assert!(page.items.len() <= limit as usize, "a page over its limit");
        paged.pages.push(page.items.len());
        paged.most_read_by_a_page = paged.most_read_by_a_page.max(page.items_read);
        paged.items.extend(page.items);
        match page.next_cursor {
            Some(cursor) => {
                request = PageRequest {
                    cursor: Some(cursor),
                    limit,
                }
            }
            None => return paged,
        }
    }
    panic!("the list did not end after 200 pages of {limit}");
}

/// Every page but the last is full: the merge fills pages whatever shards the items are in.
fn assert_full_pages(pages: &[usize], limit: u32, what: &str) {
    let (last, rest) = pages.split_last().unwrap();
    assert!(
        rest.iter().all(|size| *size == limit as usize) && *last <= limit as usize,
        "{what}: pages of {limit} were {pages:?}"
    );
}

/// A shard per item, cycling, except a run of `crowded` items in shard `crowd` first: a merge
/// must refill that shard several times within one page.
fn shard_plan(count: u32, crowded: u32, crowd: u32, shards: u32) -> Vec<u32> {
    (0..count)
        .map(|n| if n < crowded { crowd } else { n % shards })
        .collect()
}

#[tokio::test]
async fn account_lists_merge_their_shards_in_creation_order() {
    let clients = support::clients().await;
    let store = support::fresh_store(&clients).await;
    let account = new_account(&store).await;
    let other_account = new_account(&store).await;

    // GIVEN 34 domains: 12 in one shard created one after the other, then one in each shard
    // in turn; zones and certificates of the same account in several shards
    let plan = shard_plan(34, 12, 3, ACCOUNT_SHARDS);
    let mut expected = Vec::new();
    for (n, shard) in plan.iter().enumerate() {
        let at = NOW + Duration::seconds(n as i64);
        let domain = domain(&account, domain_id_in(*shard, ACCOUNT_SHARDS), at);
        store.create_domain(&domain, 1000).await.unwrap();
        expected.push(domain.id);
    }
    let used: BTreeSet<u32> = plan.iter().copied().collect();
    assert_eq!(
        used.len(),
        ACCOUNT_SHARDS as usize,
        "the domains use every shard"
    );
    let mut expected_zones = Vec::new();
    let mut expected_certificates = Vec::new();
    for n in 0..6u32 {
        let at = NOW + Duration::seconds(i64::from(n));
        let zone = zone(&account, zone_id_in(n * 2), at);
        store.create_zone(&zone).await.unwrap();
        expected_zones.push(zone.id);
        let id = certificate_id_in((n * 5) % ACCOUNT_SHARDS, ACCOUNT_SHARDS);
        let certificate = certificate(&account, id, at, NOW + Duration::days(30));
        store.create_certificate(&certificate, 100).await.unwrap();
        expected_certificates.push(certificate.id);
    }

    // THEN every page size lists every domain once, oldest first, in full pages, and a page
    // reads little more than it returns
    for limit in [1, 2, 5, 7, 34, 100] {
        let paged = page_all(limit, |page| store.list_domains(&account, page)).await;
        let ids: Vec<DomainId> = paged.items.iter().map(|d| d.id.clone()).collect();
        assert_eq!(ids, expected, "pages of {limit}");
        assert_full_pages(&paged.pages, limit, "domains");
        assert!(
            paged.most_read_by_a_page <= u64::from(limit + 3 * ACCOUNT_SHARDS),
            "a page of {limit} read {} items",
            paged.most_read_by_a_page
        );
    }
    let zones = page_all(4, |page| store.list_zones(&account, page)).await;
    assert_eq!(
        zones.items.iter().map(|z| z.id.clone()).collect::<Vec<_>>(),
        expected_zones
    );
    let certificates = page_all(4, |page| store.list_certificates(&account, page)).await;
    assert_eq!(
        certificates
            .items
            .iter()
            .map(|c| c.id.clone())
            .collect::<Vec<_>>(),
        expected_certificates
    );

    // AND a cursor continues only the list it came from
    let first = store
        .list_domains(&account, PageRequest::first(3))
        .await
        .unwrap();
    let cursor = first.next_cursor.unwrap();
    assert!(cursor.len() < 200, "cursors stay short: {cursor}");
    let elsewhere = [
        store
            .list_domains(
                &other_account,
                PageRequest {
                    cursor: Some(cursor.clone()),
                    limit: 3,
                },
            )
            .await
            .map(|page| page.items.len()),
        store
            .list_zones(
                &account,
                PageRequest {
                    cursor: Some(cursor.clone()),
                    limit: 3,
                },
            )
            .await
            .map(|page| page.items.len()),
        store
            .domains_changed_since(
                NOW - Duration::hours(1),
                PageRequest {
                    cursor: Some(cursor),
                    limit: 3,
                },
            )
            .await
            .map(|page| page.items.len()),
    ];
    for outcome in elsewhere {
        assert_eq!(outcome.unwrap_err().code(), "invalid_cursor");
    }
}

#[tokio::test]
async fn change_feeds_and_the_due_query_merge_their_shards_in_order() {
    let clients = support::clients().await;
    let store = support::fresh_store(&clients).await;
    let account = new_account(&store).await;

    // GIVEN domains changed 10 s apart, five in a row in one index shard, then the others in
    // turn, two of them deleted later (tombstones in their shard)
    let plan = shard_plan(17, 5, 6, INDEX_SHARDS);
    let mut domains = Vec::new();
    for (n, shard) in plan.iter().enumerate() {
        let at = NOW - Duration::minutes(30) + Duration::seconds(10 * n as i64);
        let domain = domain(&account, domain_id_in(*shard, INDEX_SHARDS), at);
        store.create_domain(&domain, 1000).await.unwrap();
        domains.push(domain);
    }
    store
        .delete_domain(&account, &domains[1].id, NOW - Duration::minutes(2))
        .await
        .unwrap();
    store
        .delete_domain(&account, &domains[9].id, NOW - Duration::minutes(1))
        .await
        .unwrap();
    let mut expected: Vec<String> = domains
        .iter()
        .enumerate()
        .filter(|(n, _)| ![1, 9].contains(n))
        .map(|(_, domain)| domain.id.to_string())
        .collect();
    expected.push(format!("deleted {}", domains[1].id));
    expected.push(format!("deleted {}", domains[9].id));

    // THEN the domain feed merges them by change time, tombstones included, at any page size
    let change_id = |change: &DomainChange| match change {
        DomainChange::Changed(domain) => domain.id.to_string(),
        DomainChange::Deleted(deleted) => format!("deleted {}", deleted.id),
    };
    for limit in [1, 3, 4, 100] {
        let paged = page_all(limit, |page| {
            store.domains_changed_since(NOW - Duration::hours(1), page)
        })
        .await;
        let ids: Vec<String> = paged.items.iter().map(change_id).collect();
        assert_eq!(ids, expected, "domain feed in pages of {limit}");
        assert_full_pages(&paged.pages, limit, "domain feed");
    }
    // AND `since` holds in every shard
    let since = domains[12].updated_at;
    let paged = page_all(2, |page| store.domains_changed_since(since, page)).await;
    let ids: Vec<String> = paged.items.iter().map(change_id).collect();
    assert_eq!(ids, expected[10..].to_vec());

    // GIVEN certificates changed in one order and due in another, over every due shard
    let plan = shard_plan(14, 4, 1, INDEX_SHARDS);
    let mut certificates = Vec::new();
    for (n, shard) in plan.iter().enumerate() {
        let n = n as i64;
        let at = NOW - Duration::minutes(40) + Duration::seconds(n);
        let renew_at =
            NOW - Duration::minutes(14 - n) + Duration::seconds(if n % 2 == 0 { 30 } else { 0 });
        let id = certificate_id_in(*shard, INDEX_SHARDS);
        let certificate = certificate(&account, id, at, renew_at);
        store.create_certificate(&certificate, 100).await.unwrap();
        certificates.push(certificate);
    }
    // One not due yet, in a crowded shard: never read by the due query.
    let later = certificate(
        &account,
        certificate_id_in(1, INDEX_SHARDS),
        NOW,
        NOW + Duration::days(3),
    );
    store.create_certificate(&later, 100).await.unwrap();
    let mut by_due = certificates.clone();
    by_due.sort_by_key(|c| (c.next_renewal_at, c.id.clone()));
    let due_ids: Vec<CertificateId> = by_due.iter().map(|c| c.id.clone()).collect();

    // THEN the due query merges the due shards by due time and reads only due items
    for limit in [1, 2, 5, 100] {
        let paged = page_all(limit, |page| store.due_certificates(NOW, page)).await;
        let ids: Vec<CertificateId> = paged.items.iter().map(|c| c.id.clone()).collect();
        assert_eq!(ids, due_ids, "due query in pages of {limit}");
        assert_full_pages(&paged.pages, limit, "due query");
    }
    let whole = store
        .due_certificates(NOW, PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(whole.next_cursor, None);
    assert_eq!(whole.items_read, certificates.len() as u64);
    // AND the certificate feed merges by change time
    let mut changed_ids: Vec<CertificateId> = certificates.iter().map(|c| c.id.clone()).collect();
    changed_ids.push(later.id.clone());
    for limit in [1, 6] {
        let paged = page_all(limit, |page| {
            store.certificates_changed_since(NOW - Duration::hours(1), page)
        })
        .await;
        let ids: Vec<CertificateId> = paged.items.iter().map(|c| c.id.clone()).collect();
        assert_eq!(ids, changed_ids, "certificate feed in pages of {limit}");
    }
    // AND a due-query cursor is refused by the feed
    let first = store
        .due_certificates(NOW, PageRequest::first(2))
        .await
        .unwrap();
    let error = store
        .certificates_changed_since(
            NOW - Duration::hours(1),
            PageRequest {
                cursor: first.next_cursor,
                limit: 2,
            },
        )
        .await
        .unwrap_err();
    assert_eq!(error.code(), "invalid_cursor");
}

#[tokio::test]
async fn items_sit_in_the_shards_their_ids_name() {
    let clients = support::clients().await;
    let store = support::fresh_store(&clients).await;
    let account = new_account(&store).await;
    let domain = domain(&account, domain_id_in(5, ACCOUNT_SHARDS), NOW);
    store.create_domain(&domain, 10).await.unwrap();
    let id = certificate_id_in(11, ACCOUNT_SHARDS);
    let due = certificate(&account, id, NOW, NOW - Duration::minutes(1));
    store.create_certificate(&due, 10).await.unwrap();

    let domain_item = raw(
        &clients.dynamodb,
        &store,
        &format!("ACCT#{account}#05"),
        &format!("DOM#{}", domain.id),
    )
    .await
    .expect("the domain in its account shard");
    assert_eq!(
        text(&domain_item, schema::GSI3PK),
        format!(
            "CHANGED#DOM#{:02}",
            shard_of(domain.id.as_str(), INDEX_SHARDS)
        )
    );
    let cert_item = raw(
        &clients.dynamodb,
        &store,
        &format!("ACCT#{account}#11"),
        &format!("CERT#{}", due.id),
    )
    .await
    .expect("the certificate in its account shard");
    let index_shard = shard_of(due.id.as_str(), INDEX_SHARDS);
    assert_eq!(
        text(&cert_item, schema::GSI2PK),
        format!("DUE#{index_shard:02}")
    );
    assert_eq!(
        text(&cert_item, schema::GSI3PK),
        format!("CHANGED#CERT#{index_shard:02}")
    );
    // Only the account item is left in the account's own partition.
    let in_account_partition = clients
        .dynamodb
        .query()
        .table_name(store.table_name())
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("ACCT#{account}")))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(in_account_partition.count, 1);
    // A new table records that it has the sharded layout.
    let marker = raw(
        &clients.dynamodb,
        &store,
        schema::LAYOUT_PK,
        schema::LAYOUT_SK,
    )
    .await
    .expect("the layout item");
    assert_eq!(
        marker
            .get(schema::LAYOUT_VERSION)
            .and_then(|v| v.as_n().ok()),
        Some(&schema::SHARDED_LAYOUT.to_string())
    );
}

async fn raw(
    client: &Client,
    store: &DynamoStore,
    pk: &str,
    sk: &str,
) -> Option<HashMap<String, AttributeValue>> {
    client
        .get_item()
        .table_name(store.table_name())
        .key(schema::PK, AttributeValue::S(pk.to_owned()))
        .key(schema::SK, AttributeValue::S(sk.to_owned()))
        .consistent_read(true)
        .send()
        .await
        .unwrap()
        .item
}

fn text(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    item.get(name)
        .and_then(|value| value.as_s().ok())
        .cloned()
        .unwrap_or_default()
}

// ---------------------------------------------------------------------------------------------
// The earlier layout, written as the build before the shards wrote it.
// ---------------------------------------------------------------------------------------------

/// The table's items as the earlier build wrote them.
struct EarlierBuild<'a> {
    client: &'a Client,
    table: String,
}

fn millis(at: OffsetDateTime) -> String {
    format!(
        "{:015}",
        at.unix_timestamp_nanos().div_euclid(1_000_000).max(0)
    )
}

fn attributes(pairs: Vec<(&str, String)>) -> HashMap<String, AttributeValue> {
    pairs
        .into_iter()
        .map(|(name, value)| (name.to_owned(), AttributeValue::S(value)))
        .collect()
}

impl EarlierBuild<'_> {
    async fn put(&self, mut item: HashMap<String, AttributeValue>, version: u64) {
        item.insert("version".to_owned(), AttributeValue::N(version.to_string()));
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .unwrap();
    }

    async fn count(&self, account: &AccountId, counter: &str) {
        self.client
            .update_item()
            .table_name(&self.table)
            .key("PK", AttributeValue::S(format!("ACCT#{account}")))
            .key("SK", AttributeValue::S("ACCOUNT".to_owned()))
            .update_expression("ADD #count :one")
            .expression_attribute_names("#count", counter)
            .expression_attribute_values(":one", AttributeValue::N("1".to_owned()))
            .send()
            .await
            .unwrap();
    }

    async fn domain(&self, domain: &Domain) {
        let item = attributes(vec![
            ("PK", format!("ACCT#{}", domain.account_id)),
            ("SK", format!("DOM#{}", domain.id)),
            ("entity", "domain".to_owned()),
            ("data", serde_json::to_string(domain).unwrap()),
            (
                "LSI1SK",
                format!("DOM#{}#{}", millis(domain.created_at), domain.id),
            ),
            ("GSI1PK", domain.hostname.to_string()),
            ("GSI3PK", "CHANGED#DOM".to_owned()),
            (
                "GSI3SK",
                format!("{}#{}", millis(domain.updated_at), domain.id),
            ),
        ]);
        self.put(item, domain.version).await;
        let claim = attributes(vec![
            ("PK", format!("HOST#{}", domain.hostname)),
            ("SK", "HOST".to_owned()),
            ("entity", "hostname".to_owned()),
            ("account_id", domain.account_id.to_string()),
            ("domain_id", domain.id.to_string()),
        ]);
        self.put(claim, 0).await;
        self.count(&domain.account_id, "domain_count").await;
    }

    async fn tombstone(&self, deleted: &DeletedDomain) {
        let mut item = attributes(vec![
            ("PK", format!("TOMB#{}", deleted.id)),
            ("SK", format!("DOM#{}", deleted.id)),
            ("entity", "domain_tombstone".to_owned()),
            ("data", serde_json::to_string(deleted).unwrap()),
            ("GSI3PK", "CHANGED#DOM".to_owned()),
            (
                "GSI3SK",
                format!("{}#{}", millis(deleted.deleted_at), deleted.id),
            ),
        ]);
        item.insert(
            "ttl".to_owned(),
            AttributeValue::N(
                (deleted.deleted_at + Duration::days(2))
                    .unix_timestamp()
                    .to_string(),
            ),
        );
        self.put(item, 1).await;
    }

    async fn certificate(&self, certificate: &Certificate) {
        let mut pairs = vec![
            ("PK", format!("ACCT#{}", certificate.account_id)),
            ("SK", format!("CERT#{}", certificate.id)),
            ("entity", "certificate".to_owned()),
            ("data", serde_json::to_string(certificate).unwrap()),
            (
                "LSI1SK",
                format!("CERT#{}#{}", millis(certificate.created_at), certificate.id),
            ),
            ("primary_name", certificate.domain.to_string()),
            ("status", certificate.status.as_str().to_owned()),
            ("GSI3PK", "CHANGED#CERT".to_owned()),
            (
                "GSI3SK",
                format!("{}#{}", millis(certificate.updated_at), certificate.id),
            ),
        ];
        if let Some(due_at) = certificate.due_at() {
            pairs.push(("GSI2PK", "DUE".to_owned()));
            pairs.push(("GSI2SK", format!("{}#{}", millis(due_at), certificate.id)));
        }
        self.put(attributes(pairs), certificate.version).await;
        if matches!(certificate.kind, CertificateKind::Downloadable { .. }) {
            let claim = attributes(vec![
                (
                    "PK",
                    format!("CERTNAME#{}#{}", certificate.account_id, certificate.domain),
                ),
                ("SK", "CERTNAME".to_owned()),
                ("entity", "certificate_name".to_owned()),
                ("certificate_id", certificate.id.to_string()),
            ]);
            self.put(claim, 0).await;
            self.count(&certificate.account_id, "certificate_count")
                .await;
        }
    }

    async fn zone(&self, zone: &Zone) {
        let item = attributes(vec![
            ("PK", format!("ACCT#{}", zone.account_id)),
            ("SK", format!("ZONE#{}", zone.id)),
            ("entity", "zone".to_owned()),
            ("data", serde_json::to_string(zone).unwrap()),
            (
                "LSI1SK",
                format!("ZONE#{}#{}", millis(zone.created_at), zone.id),
            ),
        ]);
        self.put(item, zone.version).await;
        let claim = attributes(vec![
            ("PK", format!("ZONENAME#{}", zone.name)),
            ("SK", "ZONENAME".to_owned()),
            ("entity", "zone_name".to_owned()),
            ("account_id", zone.account_id.to_string()),
            ("zone_id", zone.id.to_string()),
        ]);
        self.put(claim, 0).await;
    }
}

/// A table as the earlier build left it: created without the `layout` item.
async fn earlier_table(clients: &edgecert_aws::AwsClients) -> DynamoStore {
    let store = support::fresh_store(clients).await;
    clients
        .dynamodb
        .delete_item()
        .table_name(store.table_name())
        .key(schema::PK, AttributeValue::S(schema::LAYOUT_PK.to_owned()))
        .key(schema::SK, AttributeValue::S(schema::LAYOUT_SK.to_owned()))
        .send()
        .await
        .unwrap();
    // A store that has not looked at the table yet.
    DynamoStore::new(clients.dynamodb.clone(), store.table_name()).with_serialized_writes()
}

/// Items of an account in the earlier layout, and a few written by this build.
struct Mixed {
    account: AccountId,
    domains: Vec<Domain>,
    zones: Vec<Zone>,
    certificates: Vec<Certificate>,
    tombstones: Vec<DeletedDomain>,
}

async fn mixed_layouts(store: &DynamoStore, earlier: &EarlierBuild<'_>) -> Mixed {
    let account = new_account(store).await;
    let mut domains = Vec::new();
    let mut certificates = Vec::new();
    let mut zones = Vec::new();
    for n in 0..9i64 {
        let at = NOW - Duration::minutes(50) + Duration::minutes(n);
        // Every third item is written by this build, the others by the earlier one.
        let domain = domain(&account, DomainId::generate(), at);
        let mut certificate = certificate(
            &account,
            CertificateId::generate(),
            at,
            NOW - Duration::minutes(20 - n),
        );
        if n == 4 {
            certificate.kind = CertificateKind::Downloadable {
                zone_id: ZoneId::generate(),
            };
        }
        let zone = zone(&account, ZoneId::generate(), at);
        if n % 3 == 2 {
            store.create_domain(&domain, 100).await.unwrap();
            store.create_certificate(&certificate, 100).await.unwrap();
            store.create_zone(&zone).await.unwrap();
        } else {
            earlier.domain(&domain).await;
            earlier.certificate(&certificate).await;
            earlier.zone(&zone).await;
        }
        domains.push(domain);
        certificates.push(certificate);
        zones.push(zone);
    }
    let gone = self::domain(&account, DomainId::generate(), NOW - Duration::hours(2));
    let tombstone = DeletedDomain::of(&gone, NOW - Duration::minutes(5));
    earlier.tombstone(&tombstone).await;
    Mixed {
        account,
        domains,
        zones,
        certificates,
        tombstones: vec![tombstone],
    }
}

/// Everything the store reads of `mixed`, checked against what was written.
async fn assert_reads_everything(store: &DynamoStore, mixed: &Mixed, stage: &str) {
    let account = &mixed.account;
    for domain in &mixed.domains {
        assert_eq!(
            store
                .get_domain(account, &domain.id)
                .await
                .unwrap()
                .as_ref(),
            Some(domain),
            "{stage}: get_domain"
        );
        assert_eq!(
            store
                .domain_by_hostname(&domain.hostname)
                .await
                .unwrap()
                .as_ref(),
            Some(domain),
            "{stage}: domain_by_hostname"
        );
    }
    for zone in &mixed.zones {
        assert_eq!(
            store.get_zone(account, &zone.id).await.unwrap().as_ref(),
            Some(zone),
            "{stage}: get_zone"
        );
        assert_eq!(
            store.zone_by_name(&zone.name).await.unwrap().as_ref(),
            Some(zone),
            "{stage}: zone_by_name"
        );
    }
    for certificate in &mixed.certificates {
        assert_eq!(
            store
                .get_certificate(account, &certificate.id)
                .await
                .unwrap()
                .as_ref(),
            Some(certificate),
            "{stage}: get_certificate"
        );
    }
    let listed = page_all(2, |page| store.list_domains(account, page)).await;
    assert_eq!(listed.items, mixed.domains, "{stage}: list_domains");
    let listed = page_all(4, |page| store.list_zones(account, page)).await;
    assert_eq!(listed.items, mixed.zones, "{stage}: list_zones");
    let listed = page_all(3, |page| store.list_certificates(account, page)).await;
    assert_eq!(
        listed.items, mixed.certificates,
        "{stage}: list_certificates"
    );

    let mut feed: Vec<DomainChange> = mixed
        .domains
        .iter()
        .cloned()
        .map(DomainChange::Changed)
        .collect();
    feed.extend(mixed.tombstones.iter().cloned().map(DomainChange::Deleted));
    feed.sort_by_key(|change| (change.changed_at(), change.domain_id().clone()));
    let read = page_all(3, |page| {
        store.domains_changed_since(NOW - Duration::hours(1), page)
    })
    .await;
    assert_eq!(read.items, feed, "{stage}: domains_changed_since");
    let mut changed = mixed.certificates.clone();
    changed.sort_by_key(|c| (c.updated_at, c.id.clone()));
    let read = page_all(4, |page| {
        store.certificates_changed_since(NOW - Duration::hours(1), page)
    })
    .await;
    assert_eq!(read.items, changed, "{stage}: certificates_changed_since");
    let mut due: Vec<Certificate> = mixed
        .certificates
        .iter()
        .filter(|c| c.due_at().is_some_and(|due_at| due_at <= NOW))
        .cloned()
        .collect();
    due.sort_by_key(|c| (c.due_at(), c.id.clone()));
    let read = page_all(2, |page| store.due_certificates(NOW, page)).await;
    assert_eq!(read.items, due, "{stage}: due_certificates");
}

#[tokio::test]
async fn a_table_of_the_earlier_layout_is_read_as_it_is_then_migrated() {
    let clients = support::clients().await;
    let store = earlier_table(&clients).await;
    let earlier = EarlierBuild {
        client: &clients.dynamodb,
        table: store.table_name().to_owned(),
    };

    // GIVEN an account whose items are partly in the earlier layout
    let mut mixed = mixed_layouts(&store, &earlier).await;

    // THEN this build reads all of them, in order, wherever they are
    assert_reads_everything(&store, &mixed, "before the migration").await;

    // AND it updates items of the earlier layout where they are (version-checked), and the
    // updates reach the feeds
    let mut moved = mixed.domains[0].clone();
    moved.origin_url = "https://moved.example.net".to_owned();
    moved.updated_at = NOW - Duration::seconds(30);
    mixed.domains[0] = store.update_domain(&moved).await.unwrap();
    let stale = store.update_domain(&moved).await.unwrap_err();
    assert!(
        matches!(stale, edgecert_core::Error::VersionConflict(_)),
        "{stale:?}"
    );
    let mut revoked = mixed.certificates[1].clone();
    revoked.status = CertificateStatus::Revoked;
    revoked.updated_at = NOW - Duration::seconds(20);
    mixed.certificates[1] = store.update_certificate(&revoked).await.unwrap();
    let mut verified = mixed.zones[3].clone();
    verified.verified = false;
    mixed.zones[3] = store.update_zone(&verified).await.unwrap();
    assert_reads_everything(&store, &mixed, "after updates in place").await;
    // AND deletes them, freeing their claims and counters
    let usage = store.account_usage(&mixed.account).await.unwrap();
    let downloadable = mixed.certificates.remove(4);
    store
        .delete_certificate(&mixed.account, &downloadable.id)
        .await
        .unwrap();
    let deleted = mixed.domains.remove(1);
    store
        .delete_domain(&mixed.account, &deleted.id, NOW - Duration::seconds(10))
        .await
        .unwrap();
    let zone = mixed.zones.remove(0);
    store.delete_zone(&mixed.account, &zone.id).await.unwrap();
    let after = store.account_usage(&mixed.account).await.unwrap();
    assert_eq!(after.domains, usage.domains - 1);
    assert_eq!(after.certificates, usage.certificates - 1);
    assert_eq!(
        store.domain_by_hostname(&deleted.hostname).await.unwrap(),
        None
    );
    assert_eq!(store.zone_by_name(&zone.name).await.unwrap(), None);
    let newest = store
        .domains_changed_since(NOW - Duration::seconds(15), PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(
        newest.items,
        vec![DomainChange::Deleted(DeletedDomain::of(
            &deleted,
            NOW - Duration::seconds(10)
        ))]
    );
    mixed
        .tombstones
        .push(DeletedDomain::of(&deleted, NOW - Duration::seconds(10)));

    // WHEN the table is migrated
    let report = store
        .migrate_layout(&MigrationOptions {
            segments: 3,
            concurrency: 4,
            max_passes: 3,
        })
        .await
        .unwrap();

    // THEN every item of the earlier layout moved (the updated ones too), a second pass found
    // nothing, and the table says so
    assert!(report.complete, "{report:?}");
    assert_eq!(report.passes, 2, "{report:?}");
    assert_eq!(report.domains_moved, 5, "{report:?}");
    assert_eq!(report.zones_moved, 5, "{report:?}");
    assert_eq!(report.certificates_moved, 5, "{report:?}");
    assert_eq!(report.tombstones_rekeyed, 1, "{report:?}");
    let left = clients
        .dynamodb
        .query()
        .table_name(store.table_name())
        .key_condition_expression("PK = :pk")
        .expression_attribute_values(":pk", AttributeValue::S(format!("ACCT#{}", mixed.account)))
        .consistent_read(true)
        .send()
        .await
        .unwrap();
    assert_eq!(
        left.count, 1,
        "only the account item stays: {:?}",
        left.items
    );
    let old_tombstone = raw(
        &clients.dynamodb,
        &store,
        &format!("TOMB#{}", mixed.tombstones[0].id),
        &format!("DOM#{}", mixed.tombstones[0].id),
    )
    .await
    .unwrap();
    assert!(text(&old_tombstone, schema::GSI3PK).starts_with("CHANGED#DOM#"));

    // AND a store that starts now reads the same, from the sharded keys only: an item
    // written at an earlier-layout key afterwards is not read
    let fresh = DynamoStore::new(clients.dynamodb.clone(), store.table_name());
    assert_reads_everything(&fresh, &mixed, "after the migration").await;
    let stray = domain(&mixed.account, DomainId::generate(), NOW);
    earlier.domain(&stray).await;
    assert_eq!(
        fresh.get_domain(&mixed.account, &stray.id).await.unwrap(),
        None
    );
    let feed = fresh
        .domains_changed_since(NOW - Duration::seconds(1), PageRequest::first(10))
        .await
        .unwrap();
    assert!(feed.items.is_empty(), "{:?}", feed.items);

    // AND migrating again does nothing
    let again = fresh
        .migrate_layout(&MigrationOptions::default())
        .await
        .unwrap();
    assert!(again.already_migrated && again.complete, "{again:?}");
    assert_eq!(again.items_scanned, 0);
}

#[tokio::test]
async fn updates_made_while_items_move_are_kept() {
    let clients = support::clients().await;
    let store = earlier_table(&clients).await;
    let earlier = EarlierBuild {
        client: &clients.dynamodb,
        table: store.table_name().to_owned(),
    };
    // GIVEN domains in the earlier layout
    let account = new_account(&store).await;
    let mut domains = Vec::new();
    for n in 0..24i64 {
        let domain = domain(&account, DomainId::generate(), NOW + Duration::seconds(n));
        earlier.domain(&domain).await;
        domains.push(domain);
    }

    // WHEN the migration runs while a writer updates every domain three times
    const ROUNDS: u64 = 3;
    let writer = {
        let store = store.clone();
        let account = account.clone();
        let ids: Vec<DomainId> = domains.iter().map(|d| d.id.clone()).collect();
        tokio::spawn(async move {
            for round in 0..ROUNDS {
                for id in &ids {
                    loop {
                        let mut current = store
                            .get_domain(&account, id)
                            .await
                            .unwrap()
                            .expect("a domain is found while it moves");
                        current.origin_url = format!("https://round{round}.example.net");
                        match store.update_domain(&current).await {
                            Ok(_) => break,
                            Err(edgecert_core::Error::VersionConflict(_)) => {}
                            Err(error) => panic!("update while moving: {error:?}"),
                        }
                    }
                }
            }
        })
    };
    let report = tokio::time::timeout(
        std::time::Duration::from_secs(120),
        store.migrate_layout(&MigrationOptions {
            segments: 2,
            concurrency: 8,
            max_passes: 5,
        }),
    )
    .await
    .expect("the migration ends within 2 minutes")
    .unwrap();
    tokio::time::timeout(std::time::Duration::from_secs(120), writer)
        .await
        .expect("the writer ends within 2 minutes")
        .unwrap();

    // THEN every domain moved once and kept every update
    assert!(report.complete, "{report:?}");
    assert_eq!(report.domains_moved, domains.len() as u64, "{report:?}");
    for domain in &domains {
        let stored = store
            .get_domain(&account, &domain.id)
            .await
            .unwrap()
            .unwrap();
        assert_eq!(stored.version, 1 + ROUNDS, "{}", domain.id);
        assert_eq!(
            stored.origin_url,
            format!("https://round{}.example.net", ROUNDS - 1)
        );
        let shard = shard_of(domain.id.as_str(), ACCOUNT_SHARDS);
        assert!(
            raw(
                &clients.dynamodb,
                &store,
                &format!("ACCT#{account}#{shard:02}"),
                &format!("DOM#{}", domain.id)
            )
            .await
            .is_some(),
            "{} is in its shard",
            domain.id
        );
    }
}

/// Runs the `edgecert-migrate-table` binary with `args`, within a minute.
async fn migrate_command(args: &[&str]) -> (Option<i32>, String) {
    let output = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        tokio::process::Command::new(env!("CARGO_BIN_EXE_edgecert-migrate-table"))
            .args(args)
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("edgecert-migrate-table ends within a minute")
    .unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

#[tokio::test]
async fn the_migration_command_migrates_a_table_once() {
    let clients = support::clients().await;
    let store = earlier_table(&clients).await;
    let earlier = EarlierBuild {
        client: &clients.dynamodb,
        table: store.table_name().to_owned(),
    };
    let account = new_account(&store).await;
    let domain = domain(&account, DomainId::generate(), NOW);
    earlier.domain(&domain).await;
    let certificate = certificate(&account, CertificateId::generate(), NOW, NOW);
    earlier.certificate(&certificate).await;
    let endpoint = support::endpoint().await;
    let table = store.table_name().to_owned();
    let args = ["--table", table.as_str(), "--endpoint", endpoint.as_str()];

    let (status, output) = migrate_command(&args).await;
    assert_eq!(status, Some(0), "{output}");
    assert!(
        output.contains("moved 1 domains, 0 zones, 1 certificates")
            && output.contains("migrated: every item has the sharded layout"),
        "{output}"
    );
    let fresh = DynamoStore::new(clients.dynamodb.clone(), table.clone());
    assert_eq!(
        fresh.get_domain(&account, &domain.id).await.unwrap(),
        Some(domain)
    );
    let due = fresh
        .due_certificates(NOW, PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(due.items, vec![certificate]);

    let (status, output) = migrate_command(&args).await;
    assert_eq!(status, Some(0), "{output}");
    assert!(output.contains("already migrated"), "{output}");

    let (status, output) = migrate_command(&["--table"]).await;
    assert_eq!(status, Some(1), "{output}");
    assert!(output.contains("usage: edgecert-migrate-table"), "{output}");
    let (status, output) = migrate_command(&["--segments", "0", "--table", "t"]).await;
    assert_eq!(status, Some(1), "{output}");
    assert!(
        output.contains("--segments takes a positive number"),
        "{output}"
    );
}

//! The conformance cases. Each takes fresh, empty adapters and panics on a contract breach.

use std::collections::HashSet;

use edgecert_core::Error;
use edgecert_core::Hostname;
use edgecert_core::ItemKind;
use edgecert_core::PlanName;
use edgecert_core::ids::{AccountId, CertificateId, DomainId, ZoneId};
use edgecert_core::model::{
    ApiKey, ApiKeyHash, BucketLimits, CertificateEvent, CertificateStatus, DeletedDomain,
    DomainChange, EventLevel, Http01Challenge, ProvisioningStep, SecretString,
};
use edgecert_core::ports::{CertificateMaterial, MAX_MATERIAL_BYTES, MaterialVersion, PageRequest};
use time::Duration;

use crate::Adapters;
use crate::fixtures::{self, NOW};

async fn new_account(adapters: &Adapters, plan: PlanName) -> AccountId {
    let account = fixtures::account(plan);
    adapters
        .store
        .create_account(&account, &ApiKey::generate().hash)
        .await
        .unwrap();
    account.id
}

/// Accounts read back as written and are found by the hash of their API key only.
pub async fn account_round_trip_and_api_key_lookup(adapters: &Adapters) {
    let account = fixtures::account(PlanName::Pro);
    let key = ApiKey::generate();
    adapters
        .store
        .create_account(&account, &key.hash)
        .await
        .unwrap();

    assert_eq!(
        adapters.store.get_account(&account.id).await.unwrap(),
        Some(account.clone())
    );
    let found = adapters
        .store
        .account_for_api_key(&ApiKeyHash::of(key.plaintext.expose()))
        .await
        .unwrap();
    assert_eq!(found, Some(account.id.clone()));
    assert_eq!(
        adapters
            .store
            .account_for_api_key(&ApiKey::generate().hash)
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        adapters
            .store
            .get_account(&AccountId::generate())
            .await
            .unwrap(),
        None
    );
    let usage = adapters.store.account_usage(&account.id).await.unwrap();
    assert_eq!((usage.domains, usage.certificates), (0, 0));
}

/// A stale account update is refused; a current one bumps the version.
pub async fn account_update_is_version_checked(adapters: &Adapters) {
    let account = fixtures::account(PlanName::Plus);
    adapters
        .store
        .create_account(&account, &ApiKey::generate().hash)
        .await
        .unwrap();

    let mut upgraded = account.clone();
    upgraded.plan = PlanName::Elite;
    let stored = adapters.store.update_account(&upgraded).await.unwrap();
    assert_eq!(
        (stored.plan, stored.version),
        (PlanName::Elite, account.version + 1)
    );

    let mut stale = account.clone();
    stale.plan = PlanName::Free;
    let error = adapters.store.update_account(&stale).await.unwrap_err();
    assert!(
        matches!(error, Error::VersionConflict(ItemKind::Account)),
        "{error:?}"
    );
    assert_eq!(
        adapters
            .store
            .get_account(&account.id)
            .await
            .unwrap()
            .unwrap()
            .plan,
        PlanName::Elite
    );

    let missing = fixtures::account(PlanName::Plus);
    let error = adapters.store.update_account(&missing).await.unwrap_err();
    assert!(
        matches!(error, Error::NotFound(ItemKind::Account)),
        "{error:?}"
    );
}

/// The operator's list holds every account once, oldest first, across pages, with an
/// account updated between two pages neither lost nor repeated; a forged cursor is refused.
pub async fn accounts_are_listed_once_in_creation_order(adapters: &Adapters) {
    let mut expected = Vec::new();
    for n in 0..7 {
        let mut account = fixtures::account(PlanName::Plus);
        account.name = format!("Customer {n}");
        account.created_at = NOW + Duration::seconds(n);
        adapters
            .store
            .create_account(&account, &ApiKey::generate().hash)
            .await
            .unwrap();
        expected.push(account);
    }
    let mut seen = Vec::new();
    let mut request = PageRequest::first(3);
    let mut pages = 0;
    loop {
        let page = adapters.store.list_accounts(request.clone()).await.unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items);
        pages += 1;
        assert!(pages <= 4, "pagination does not end");
        if pages == 1 {
            // Two accounts change plan while the operator reads: one already listed, one not.
            for index in [0, 5] {
                let mut upgraded = expected[index].clone();
                upgraded.plan = PlanName::Elite;
                expected[index] = adapters.store.update_account(&upgraded).await.unwrap();
            }
        }
        match page.next_cursor {
            Some(cursor) => {
                request = PageRequest {
                    cursor: Some(cursor),
                    limit: 3,
                }
            }
            None => break,
        }
    }
    let ids = |accounts: &[edgecert_core::model::Account]| -> Vec<AccountId> {
        accounts.iter().map(|account| account.id.clone()).collect()
    };
    assert_eq!(ids(&seen), ids(&expected));
    // Pages read after the update show it.
    assert_eq!(seen[5], expected[5]);
    assert_eq!(seen[5].plan, PlanName::Elite);

    let forged = adapters
        .store
        .list_accounts(PageRequest {
            cursor: Some("not-a-cursor".to_owned()),
            limit: 3,
        })
        .await
        .unwrap_err();
    assert!(
        matches!(
            forged,
            Error::BadRequest {
                code: "invalid_cursor",
                ..
            }
        ),
        "{forged:?}"
    );
}

/// A hostname belongs to one account at most, whatever account asks.
pub async fn hostnames_are_unique_across_accounts(adapters: &Adapters) {
    let first = new_account(adapters, PlanName::Pro).await;
    let second = new_account(adapters, PlanName::Pro).await;
    let hostname = fixtures::unique_hostname("shop");

    adapters
        .store
        .create_domain(&fixtures::domain(&first, &hostname), 25)
        .await
        .unwrap();
    let same_account = adapters
        .store
        .create_domain(&fixtures::domain(&first, &hostname), 25)
        .await
        .unwrap_err();
    let other_account = adapters
        .store
        .create_domain(&fixtures::domain(&second, &hostname), 25)
        .await
        .unwrap_err();

    assert!(
        matches!(same_account, Error::DomainExists),
        "{same_account:?}"
    );
    assert!(
        matches!(other_account, Error::DomainExists),
        "{other_account:?}"
    );
    assert_eq!(
        adapters.store.account_usage(&first).await.unwrap().domains,
        1
    );
    assert_eq!(
        adapters.store.account_usage(&second).await.unwrap().domains,
        0
    );
}

/// 20 parallel creates against a limit of 5: exactly 5 land, the rest are refused, and the
/// counter says 5.
pub async fn domain_limit_holds_under_parallel_creates(adapters: &Adapters) {
    let account = new_account(adapters, PlanName::Plus).await;
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = adapters.store.clone();
            let domain = fixtures::domain(&account, &fixtures::unique_hostname(&format!("d{n}")));
            tokio::spawn(async move { store.create_domain(&domain, 5).await })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => created += 1,
            Err(Error::DomainLimitReached) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(created, 5);
    assert_eq!(
        adapters
            .store
            .account_usage(&account)
            .await
            .unwrap()
            .domains,
        5
    );
    let listed = adapters
        .store
        .list_domains(&account, PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 5);
}

/// Deleting a domain frees its hostname for anyone and its place in the limit.
pub async fn deleting_a_domain_frees_its_hostname_and_its_place(adapters: &Adapters) {
    let first = new_account(adapters, PlanName::Plus).await;
    let second = new_account(adapters, PlanName::Plus).await;
    let hostname = fixtures::unique_hostname("www");
    let domain = fixtures::domain(&first, &hostname);
    adapters.store.create_domain(&domain, 1).await.unwrap();
    let full = adapters
        .store
        .create_domain(
            &fixtures::domain(&first, &fixtures::unique_hostname("x")),
            1,
        )
        .await;
    assert!(matches!(full, Err(Error::DomainLimitReached)), "{full:?}");

    adapters
        .store
        .delete_domain(&first, &domain.id, NOW)
        .await
        .unwrap();

    assert_eq!(
        adapters.store.account_usage(&first).await.unwrap().domains,
        0
    );
    assert_eq!(
        adapters.store.domain_by_hostname(&hostname).await.unwrap(),
        None
    );
    adapters
        .store
        .create_domain(&fixtures::domain(&second, &hostname), 1)
        .await
        .unwrap();
    adapters
        .store
        .create_domain(
            &fixtures::domain(&first, &fixtures::unique_hostname("y")),
            1,
        )
        .await
        .unwrap();
    let again = adapters
        .store
        .delete_domain(&first, &domain.id, NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(again, Error::NotFound(ItemKind::Domain)),
        "{again:?}"
    );
}

/// Another account's domain reads as absent and cannot be deleted; the edge's hostname lookup
/// finds it in any account.
pub async fn domains_are_invisible_to_other_accounts(adapters: &Adapters) {
    let owner = new_account(adapters, PlanName::Plus).await;
    let stranger = new_account(adapters, PlanName::Plus).await;
    let hostname = fixtures::unique_hostname("status");
    let domain = fixtures::domain(&owner, &hostname);
    adapters.store.create_domain(&domain, 5).await.unwrap();

    assert_eq!(
        adapters.store.get_domain(&owner, &domain.id).await.unwrap(),
        Some(domain.clone())
    );
    assert_eq!(
        adapters
            .store
            .get_domain(&stranger, &domain.id)
            .await
            .unwrap(),
        None
    );
    let error = adapters
        .store
        .delete_domain(&stranger, &domain.id, NOW)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::NotFound(ItemKind::Domain)),
        "{error:?}"
    );
    assert!(
        adapters
            .store
            .list_domains(&stranger, PageRequest::first(10))
            .await
            .unwrap()
            .items
            .is_empty()
    );
    assert_eq!(
        adapters.store.domain_by_hostname(&hostname).await.unwrap(),
        Some(domain)
    );
    assert_eq!(
        adapters
            .store
            .domain_by_hostname(&fixtures::unique_hostname("nope"))
            .await
            .unwrap(),
        None
    );
}

/// Listing pages through every domain once, oldest first.
pub async fn domain_list_paginates_in_creation_order(adapters: &Adapters) {
    let account = new_account(adapters, PlanName::Elite).await;
    let mut expected = Vec::new();
    for n in 0..7 {
        let mut domain = fixtures::domain(&account, &fixtures::unique_hostname(&format!("p{n}")));
        domain.created_at = NOW + Duration::seconds(n);
        adapters.store.create_domain(&domain, 100).await.unwrap();
        expected.push(domain.id);
    }
    let mut seen = Vec::new();
    let mut request = PageRequest::first(3);
    let mut pages = 0;
    loop {
        let page = adapters
            .store
            .list_domains(&account, request.clone())
            .await
            .unwrap();
        assert!(page.items.len() <= 3);
        seen.extend(page.items.into_iter().map(|d| d.id));
        pages += 1;
        assert!(pages <= 4, "pagination does not end");
        match page.next_cursor {
            Some(cursor) => {
                request = PageRequest {
                    cursor: Some(cursor),
                    limit: 3,
                }
            }
            None => break,
        }
    }
    assert_eq!(seen, expected);
}

/// A domain update with a stale version is refused and changes nothing.
pub async fn domain_update_is_version_checked(adapters: &Adapters) {
    let account = new_account(adapters, PlanName::Plus).await;
    let domain = fixtures::domain(&account, &fixtures::unique_hostname("app"));
    adapters.store.create_domain(&domain, 5).await.unwrap();

    let mut first_writer = domain.clone();
    first_writer.provisioning_step = ProvisioningStep::Issuing;
    let mut second_writer = domain.clone();
    second_writer.origin_url = "https://other-origin.example.net".to_owned();

    let stored = adapters.store.update_domain(&first_writer).await.unwrap();
    assert_eq!(stored.version, domain.version + 1);
    let error = adapters
        .store
        .update_domain(&second_writer)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::VersionConflict(ItemKind::Domain)),
        "{error:?}"
    );

    let current = adapters
        .store
        .get_domain(&account, &domain.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.provisioning_step, ProvisioningStep::Issuing);
    assert_eq!(current.origin_url, domain.origin_url);
    assert_eq!(
        adapters
            .store
            .domain_by_hostname(&domain.hostname)
            .await
            .unwrap(),
        Some(current)
    );

    let ghost = fixtures::domain(&account, &fixtures::unique_hostname("ghost"));
    let error = adapters.store.update_domain(&ghost).await.unwrap_err();
    assert!(
        matches!(error, Error::NotFound(ItemKind::Domain)),
        "{error:?}"
    );
}

/// Zones read back, update with a version check, list and delete within their account only.
pub async fn zones_round_trip_and_stay_in_their_account(adapters: &Adapters) {
    let owner = new_account(adapters, PlanName::Pro).await;
    let stranger = new_account(adapters, PlanName::Pro).await;
    let zone = fixtures::zone(&owner, &fixtures::unique_hostname("zone"));
    adapters.store.create_zone(&zone).await.unwrap();

    assert_eq!(
        adapters.store.get_zone(&owner, &zone.id).await.unwrap(),
        Some(zone.clone())
    );
    assert_eq!(
        adapters.store.get_zone(&stranger, &zone.id).await.unwrap(),
        None
    );
    let mut verified = zone.clone();
    verified.verified = true;
    let stored = adapters.store.update_zone(&verified).await.unwrap();
    assert!(stored.verified);
    let stale = adapters.store.update_zone(&verified).await.unwrap_err();
    assert!(
        matches!(stale, Error::VersionConflict(ItemKind::Zone)),
        "{stale:?}"
    );
    let listed = adapters
        .store
        .list_zones(&owner, PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(listed.items, vec![stored]);

    let error = adapters
        .store
        .delete_zone(&stranger, &zone.id)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::NotFound(ItemKind::Zone)),
        "{error:?}"
    );
    adapters.store.delete_zone(&owner, &zone.id).await.unwrap();
    assert_eq!(
        adapters.store.get_zone(&owner, &zone.id).await.unwrap(),
        None
    );
    assert_eq!(
        adapters
            .store
            .get_zone(&owner, &ZoneId::generate())
            .await
            .unwrap(),
        None
    );
}

/// A zone name is claimed by one zone of one account at a time: a second import of the name,
/// in the same account or another, is refused; deleting the zone frees the name for anyone.
pub async fn zone_names_are_unique_across_accounts_until_deleted(adapters: &Adapters) {
    let owner = new_account(adapters, PlanName::Pro).await;
    let other = new_account(adapters, PlanName::Pro).await;
    let name = fixtures::unique_hostname("zone");
    let zone = fixtures::zone(&owner, &name);
    adapters.store.create_zone(&zone).await.unwrap();

    for account in [&owner, &other] {
        let error = adapters
            .store
            .create_zone(&fixtures::zone(account, &name))
            .await
            .unwrap_err();
        assert!(matches!(error, Error::ZoneExists), "{error:?}");
    }
    assert_eq!(
        adapters.store.zone_by_name(&name).await.unwrap(),
        Some(zone.clone())
    );
    assert_eq!(
        adapters
            .store
            .list_zones(&other, PageRequest::first(10))
            .await
            .unwrap()
            .items,
        vec![]
    );
    // A name under the zone, or above it, is another name.
    let under = Hostname::parse_domain(&format!("sub.{name}")).unwrap();
    assert_eq!(adapters.store.zone_by_name(&under).await.unwrap(), None);
    adapters
        .store
        .create_zone(&fixtures::zone(&other, &under))
        .await
        .unwrap();

    // Another account cannot free it.
    let error = adapters
        .store
        .delete_zone(&other, &zone.id)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::NotFound(ItemKind::Zone)),
        "{error:?}"
    );
    assert!(adapters.store.zone_by_name(&name).await.unwrap().is_some());

    adapters.store.delete_zone(&owner, &zone.id).await.unwrap();
    assert_eq!(adapters.store.zone_by_name(&name).await.unwrap(), None);
    let claimed = fixtures::zone(&other, &name);
    adapters.store.create_zone(&claimed).await.unwrap();
    assert_eq!(
        adapters.store.zone_by_name(&name).await.unwrap(),
        Some(claimed)
    );
}

/// 20 accounts import one zone name at once: exactly one zone is stored, and it holds the name.
pub async fn zone_name_claim_holds_under_parallel_imports(adapters: &Adapters) {
    let name = fixtures::unique_hostname("contested");
    let mut zones = Vec::new();
    for _ in 0..20 {
        let account = new_account(adapters, PlanName::Pro).await;
        zones.push(fixtures::zone(&account, &name));
    }
    let tasks: Vec<_> = zones
        .iter()
        .cloned()
        .map(|zone| {
            let store = adapters.store.clone();
            tokio::spawn(async move { store.create_zone(&zone).await.map(|()| zone) })
        })
        .collect();
    let mut winners = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(zone) => winners.push(zone),
            Err(Error::ZoneExists) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(winners.len(), 1, "{winners:?}");
    assert_eq!(
        adapters.store.zone_by_name(&name).await.unwrap(),
        Some(winners[0].clone())
    );
    for zone in &zones {
        let stored = adapters
            .store
            .get_zone(&zone.account_id, &zone.id)
            .await
            .unwrap();
        assert_eq!(stored.is_some(), zone.id == winners[0].id, "{}", zone.id);
    }
}

/// One downloadable certificate per primary name per account; other accounts may have their
/// own, and deleting frees the name.
pub async fn certificate_names_are_unique_per_account(adapters: &Adapters) {
    let first = new_account(adapters, PlanName::Pro).await;
    let second = new_account(adapters, PlanName::Pro).await;
    let name = fixtures::unique_hostname("api");
    let certificate = fixtures::downloadable(&first, &name);
    adapters
        .store
        .create_certificate(&certificate, 25)
        .await
        .unwrap();

    let duplicate = adapters
        .store
        .create_certificate(&fixtures::downloadable(&first, &name), 25)
        .await
        .unwrap_err();
    assert!(
        matches!(duplicate, Error::CertificateExists),
        "{duplicate:?}"
    );
    adapters
        .store
        .create_certificate(&fixtures::downloadable(&second, &name), 25)
        .await
        .unwrap();
    assert_eq!(
        adapters
            .store
            .account_usage(&first)
            .await
            .unwrap()
            .certificates,
        1
    );

    assert_eq!(
        adapters
            .store
            .get_certificate(&first, &certificate.id)
            .await
            .unwrap(),
        Some(certificate.clone())
    );
    assert_eq!(
        adapters
            .store
            .get_certificate(&second, &certificate.id)
            .await
            .unwrap(),
        None
    );
    let error = adapters
        .store
        .delete_certificate(&second, &certificate.id)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::NotFound(ItemKind::Certificate)),
        "{error:?}"
    );

    adapters
        .store
        .delete_certificate(&first, &certificate.id)
        .await
        .unwrap();
    assert_eq!(
        adapters
            .store
            .account_usage(&first)
            .await
            .unwrap()
            .certificates,
        0
    );
    adapters
        .store
        .create_certificate(&fixtures::downloadable(&first, &name), 25)
        .await
        .unwrap();
}

/// 20 parallel certificate requests against a limit of 5: exactly 5 land.
pub async fn certificate_limit_holds_under_parallel_creates(adapters: &Adapters) {
    let account = new_account(adapters, PlanName::Plus).await;
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = adapters.store.clone();
            let certificate =
                fixtures::downloadable(&account, &fixtures::unique_hostname(&format!("c{n}")));
            tokio::spawn(async move { store.create_certificate(&certificate, 5).await })
        })
        .collect();
    let mut created = 0;
    for task in tasks {
        match task.await.unwrap() {
            Ok(()) => created += 1,
            Err(Error::CertificateLimitReached) => {}
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(created, 5);
    assert_eq!(
        adapters
            .store
            .account_usage(&account)
            .await
            .unwrap()
            .certificates,
        5
    );
    let listed = adapters
        .store
        .list_certificates(&account, PageRequest::first(100))
        .await
        .unwrap();
    assert_eq!(listed.items.len(), 5);
}

/// Managed certificates (serving whitelisted domains) ignore the certificate limit and counter.
pub async fn managed_certificates_do_not_count_against_the_plan(adapters: &Adapters) {
    let account = new_account(adapters, PlanName::Free).await;
    let managed = fixtures::managed(&account, &fixtures::unique_hostname("edge"));
    adapters
        .store
        .create_certificate(&managed, 0)
        .await
        .unwrap();
    assert_eq!(
        adapters
            .store
            .account_usage(&account)
            .await
            .unwrap()
            .certificates,
        0
    );
    // A domain's managed certificate is created once: two callers racing to create it (the
    // edge and the issuer worker) learn that it exists, and the first one stays.
    let mut second = managed.clone();
    second.last_error = Some("second".to_owned());
    let twice = adapters.store.create_certificate(&second, 0).await;
    assert!(matches!(twice, Err(Error::CertificateExists)), "{twice:?}");
    assert_eq!(
        adapters
            .store
            .get_certificate(&account, &managed.id)
            .await
            .unwrap(),
        Some(managed.clone())
    );
    let refused = adapters
        .store
        .create_certificate(
            &fixtures::downloadable(&account, &fixtures::unique_hostname("dl")),
            0,
        )
        .await;
    assert!(
        matches!(refused, Err(Error::CertificateLimitReached)),
        "{refused:?}"
    );
    adapters
        .store
        .delete_certificate(&account, &managed.id)
        .await
        .unwrap();
    assert_eq!(
        adapters
            .store
            .account_usage(&account)
            .await
            .unwrap()
            .certificates,
        0
    );
}

/// Two writers from the same version: the second is refused.
pub async fn certificate_update_is_version_checked(adapters: &Adapters) {
    let account = new_account(adapters, PlanName::Pro).await;
    let certificate = fixtures::downloadable(&account, &fixtures::unique_hostname("v"));
    adapters
        .store
        .create_certificate(&certificate, 25)
        .await
        .unwrap();

    let mut validating = certificate.clone();
    validating.status = CertificateStatus::Validating;
    validating.order_url = Some("https://ca.example/order/1".to_owned());
    let stored = adapters
        .store
        .update_certificate(&validating)
        .await
        .unwrap();
    assert_eq!(stored.version, certificate.version + 1);
    assert_eq!(
        stored.order_url.as_deref(),
        Some("https://ca.example/order/1")
    );

    let mut failed = certificate.clone();
    failed.status = CertificateStatus::Failed;
    let error = adapters
        .store
        .update_certificate(&failed)
        .await
        .unwrap_err();
    assert!(
        matches!(error, Error::VersionConflict(ItemKind::Certificate)),
        "{error:?}"
    );
    let current = adapters
        .store
        .get_certificate(&account, &certificate.id)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(current.status, CertificateStatus::Validating);

    let ghost = fixtures::downloadable(&account, &fixtures::unique_hostname("ghost"));
    let error = adapters.store.update_certificate(&ghost).await.unwrap_err();
    assert!(
        matches!(error, Error::NotFound(ItemKind::Certificate)),
        "{error:?}"
    );
}

/// The due query returns due certificates only, earliest first, and reads only those.
pub async fn due_query_returns_only_due_certificates_in_order(adapters: &Adapters) {
    let account = new_account(adapters, PlanName::Elite).await;
    let offsets_minutes = [-30i64, 45, -5, -120, 10, -60];
    let mut due_expected = Vec::new();
    for (n, offset) in offsets_minutes.iter().enumerate() {
        let base = fixtures::downloadable(&account, &fixtures::unique_hostname(&format!("r{n}")));
        let certificate = fixtures::issued(base, NOW + Duration::minutes(*offset));
        adapters
            .store
            .create_certificate(&certificate, 100)
            .await
            .unwrap();
        if *offset <= 0 {
            due_expected.push((*offset, certificate.id.clone()));
        }
    }
    // Never due: revoked, and pending without a retry time.
    let mut revoked = fixtures::issued(
        fixtures::downloadable(&account, &fixtures::unique_hostname("rev")),
        NOW - Duration::days(1),
    );
    revoked.status = CertificateStatus::Revoked;
    adapters
        .store
        .create_certificate(&revoked, 100)
        .await
        .unwrap();
    adapters
        .store
        .create_certificate(
            &fixtures::downloadable(&account, &fixtures::unique_hostname("new")),
            100,
        )
        .await
        .unwrap();

    due_expected.sort();
    let expected: Vec<CertificateId> = due_expected.into_iter().map(|(_, id)| id).collect();
    let page = adapters
        .store
        .due_certificates(NOW, PageRequest::first(100))
        .await
        .unwrap();
    let got: Vec<CertificateId> = page.items.iter().map(|c| c.id.clone()).collect();
    assert_eq!(got, expected);
    assert_eq!(page.next_cursor, None);
    assert_eq!(
        page.items_read,
        expected.len() as u64,
        "the due query read items that are not due"
    );
}

/// Paging through due items visits each once; an update moves a certificate in or out of the
/// due set.
pub async fn due_query_pages_and_follows_updates(adapters: &Adapters) {
    let account = new_account(adapters, PlanName::Elite).await;
    let mut ids = Vec::new();
    for n in 0..5 {
        let base = fixtures::downloadable(&account, &fixtures::unique_hostname(&format!("q{n}")));
        let certificate = fixtures::issued(base, NOW - Duration::minutes(10 - n));
        adapters
            .store
            .create_certificate(&certificate, 100)
            .await
            .unwrap();
        ids.push(certificate);
    }
    let mut seen = Vec::new();
    let mut request = PageRequest::first(2);
    for _ in 0..5 {
        let page = adapters
            .store
            .due_certificates(NOW, request.clone())
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|c| c.id.clone()));
        match page.next_cursor {
            Some(cursor) => {
                request = PageRequest {
                    cursor: Some(cursor),
                    limit: 2,
                }
            }
            None => break,
        }
    }
    let expected: Vec<_> = ids.iter().map(|c| c.id.clone()).collect();
    assert_eq!(seen, expected);

    // Renewed: next renewal far away, so it leaves the due set.
    let mut renewed = ids[0].clone();
    renewed.next_renewal_at = Some(NOW + Duration::days(60));
    adapters.store.update_certificate(&renewed).await.unwrap();
    // Auto-renew turned off: due only at expiry, which is in the future.
    let mut manual = ids[1].clone();
    manual.auto_renew = false;
    adapters.store.update_certificate(&manual).await.unwrap();

    let page = adapters
        .store
        .due_certificates(NOW, PageRequest::first(100))
        .await
        .unwrap();
    let got: HashSet<_> = page.items.iter().map(|c| c.id.clone()).collect();
    let want: HashSet<_> = ids[2..].iter().map(|c| c.id.clone()).collect();
    assert_eq!(got, want);
    let later = adapters
        .store
        .due_certificates(NOW + Duration::days(31), PageRequest::first(100))
        .await
        .unwrap();
    assert!(
        later.items.iter().any(|c| c.id == manual.id),
        "expiry of a manual certificate is due"
    );

    adapters
        .store
        .delete_certificate(&account, &ids[2].id)
        .await
        .unwrap();
    let page = adapters
        .store
        .due_certificates(NOW, PageRequest::first(100))
        .await
        .unwrap();
    assert!(page.items.iter().all(|c| c.id != ids[2].id));
}

/// Every id of a change feed, following cursors with pages of `limit`.
async fn feed_ids<T, F, Fut>(limit: u32, read: F, id: impl Fn(&T) -> String) -> Vec<String>
where
    F: Fn(PageRequest) -> Fut,
    Fut: std::future::Future<Output = edgecert_core::Result<edgecert_core::ports::Page<T>>>,
{
    let mut ids = Vec::new();
    let mut request = PageRequest::first(limit);
    for _ in 0..50 {
        let page = read(request.clone()).await.unwrap();
        ids.extend(page.items.iter().map(&id));
        match page.next_cursor {
            Some(cursor) => {
                request = PageRequest {
                    cursor: Some(cursor),
                    limit,
                }
            }
            None => return ids,
        }
    }
    panic!("the change feed did not end after 50 pages");
}

/// The change feeds return domains and certificates of every account changed at or after a
/// time, oldest change first, across pages; an update moves an item to the end, and deleted
/// items are gone.
pub async fn change_feeds_follow_updates_in_order(adapters: &Adapters) {
    let first_account = new_account(adapters, PlanName::Elite).await;
    let second_account = new_account(adapters, PlanName::Elite).await;
    let store = &adapters.store;
    let mut domains = Vec::new();
    let mut certificates = Vec::new();
    for n in 0..3i64 {
        let account = if n == 1 {
            &second_account
        } else {
            &first_account
        };
        let at = NOW - Duration::minutes(30 - 10 * n);
        let hostname = fixtures::unique_hostname(&format!("feed{n}"));
        let mut domain = fixtures::domain(account, &hostname);
        domain.updated_at = at;
        store.create_domain(&domain, 100).await.unwrap();
        domains.push(domain);
        let mut certificate = if n == 2 {
            fixtures::downloadable(account, &hostname)
        } else {
            fixtures::managed(account, &hostname)
        };
        certificate.updated_at = at;
        store.create_certificate(&certificate, 100).await.unwrap();
        certificates.push(certificate);
    }
    let domain_ids = |picked: &[usize]| -> Vec<String> {
        picked.iter().map(|n| domains[*n].id.to_string()).collect()
    };
    let certificate_ids = |picked: &[usize]| -> Vec<String> {
        picked
            .iter()
            .map(|n| certificates[*n].id.to_string())
            .collect()
    };
    let changed_domains = |since: time::OffsetDateTime, limit: u32| {
        feed_ids(
            limit,
            move |page| store.domains_changed_since(since, page),
            |change: &DomainChange| match change {
                DomainChange::Changed(domain) => domain.id.to_string(),
                DomainChange::Deleted(deleted) => format!("deleted {}", deleted.id),
            },
        )
    };
    let changed_certificates = |since: time::OffsetDateTime, limit: u32| {
        feed_ids(
            limit,
            move |page| store.certificates_changed_since(since, page),
            |certificate: &edgecert_core::model::Certificate| certificate.id.to_string(),
        )
    };

    assert_eq!(
        changed_domains(NOW - Duration::hours(1), 1).await,
        domain_ids(&[0, 1, 2])
    );
    assert_eq!(
        changed_domains(NOW - Duration::minutes(20), 100).await,
        domain_ids(&[1, 2]),
        "a change exactly at `since` is included, earlier ones are not"
    );
    assert_eq!(
        changed_certificates(NOW - Duration::hours(1), 2).await,
        certificate_ids(&[0, 1, 2])
    );
    assert_eq!(
        changed_certificates(NOW - Duration::minutes(15), 100).await,
        certificate_ids(&[2])
    );
    assert!(changed_domains(NOW, 100).await.is_empty());

    // Updates move items to the end of the feed.
    let mut moved = domains[0].clone();
    moved.updated_at = NOW;
    moved.origin_url = "https://moved.example.net".to_owned();
    store.update_domain(&moved).await.unwrap();
    let mut issued = certificates[0].clone();
    issued.updated_at = NOW;
    issued.status = CertificateStatus::Issued;
    store.update_certificate(&issued).await.unwrap();
    assert_eq!(
        changed_domains(NOW - Duration::minutes(25), 1).await,
        domain_ids(&[1, 2, 0])
    );
    assert_eq!(
        changed_certificates(NOW - Duration::minutes(25), 1).await,
        certificate_ids(&[1, 2, 0])
    );
    let page = store
        .domains_changed_since(NOW, PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(page.items.len(), 1);
    assert!(
        matches!(&page.items[0], DomainChange::Changed(domain) if domain.origin_url == "https://moved.example.net"),
        "{:?}",
        page.items
    );

    // Deleted domains leave a tombstone at their deletion time; deleted certificates leave.
    store
        .delete_domain(&second_account, &domains[1].id, NOW + Duration::minutes(1))
        .await
        .unwrap();
    store
        .delete_certificate(&second_account, &certificates[1].id)
        .await
        .unwrap();
    let mut expected = domain_ids(&[2, 0]);
    expected.push(format!("deleted {}", domains[1].id));
    assert_eq!(
        changed_domains(NOW - Duration::hours(1), 100).await,
        expected
    );
    assert_eq!(
        changed_certificates(NOW - Duration::hours(1), 100).await,
        certificate_ids(&[2, 0])
    );
}

/// A deleted domain appears in the feed as a tombstone naming its record, account and
/// hostname; when another account claims the hostname afterwards, the feed shows the tombstone
/// first and the new claim after it, and the hostname lookup finds only the new claim.
pub async fn a_deleted_domain_leaves_a_tombstone_before_its_reclaim(adapters: &Adapters) {
    let first = new_account(adapters, PlanName::Plus).await;
    let second = new_account(adapters, PlanName::Plus).await;
    let store = &adapters.store;
    let hostname = fixtures::unique_hostname("reclaimed");
    let mut original = fixtures::domain(&first, &hostname);
    original.updated_at = NOW - Duration::minutes(10);
    store.create_domain(&original, 5).await.unwrap();

    store
        .delete_domain(&first, &original.id, NOW)
        .await
        .unwrap();
    let mut reclaim = fixtures::domain(&second, &hostname);
    reclaim.updated_at = NOW + Duration::seconds(1);
    store.create_domain(&reclaim, 5).await.unwrap();

    let page = store
        .domains_changed_since(NOW - Duration::minutes(1), PageRequest::first(10))
        .await
        .unwrap();
    assert_eq!(
        page.items,
        vec![
            DomainChange::Deleted(DeletedDomain {
                id: original.id.clone(),
                account_id: first.clone(),
                hostname: hostname.clone(),
                deleted_at: NOW,
            }),
            DomainChange::Changed(reclaim.clone()),
        ]
    );
    // Paged one change at a time, the same order.
    let mut cursor = None;
    let mut seen = Vec::new();
    for _ in 0..5 {
        let page = store
            .domains_changed_since(
                NOW - Duration::minutes(1),
                PageRequest {
                    cursor: cursor.take(),
                    limit: 1,
                },
            )
            .await
            .unwrap();
        seen.extend(page.items.iter().map(|change| change.domain_id().clone()));
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    assert_eq!(seen, vec![original.id.clone(), reclaim.id.clone()]);
    assert_eq!(
        store
            .domains_changed_since(NOW + Duration::milliseconds(500), PageRequest::first(10))
            .await
            .unwrap()
            .items,
        vec![DomainChange::Changed(reclaim.clone())]
    );
    assert_eq!(
        store.domain_by_hostname(&hostname).await.unwrap(),
        Some(reclaim)
    );
}

/// Events list newest first, only the certificate's own, up to the limit.
pub async fn events_are_listed_newest_first_per_certificate(adapters: &Adapters) {
    let certificate = CertificateId::generate();
    let other = CertificateId::generate();
    for n in 0..5i64 {
        let event = CertificateEvent {
            certificate_id: certificate.clone(),
            at: NOW + Duration::seconds(n),
            step: format!("step{n}"),
            level: if n == 4 {
                EventLevel::Error
            } else {
                EventLevel::Info
            },
            message: format!("message {n}"),
            acme_problem: (n == 4).then(|| "urn:ietf:params:acme:error:dns".to_owned()),
        };
        adapters.store.append_event(&event).await.unwrap();
    }
    let foreign = CertificateEvent {
        certificate_id: other.clone(),
        at: NOW,
        step: "order".to_owned(),
        level: EventLevel::Info,
        message: "other".to_owned(),
        acme_problem: None,
    };
    adapters.store.append_event(&foreign).await.unwrap();

    let events = adapters.store.list_events(&certificate, 3).await.unwrap();
    let steps: Vec<_> = events.iter().map(|e| e.step.as_str()).collect();
    assert_eq!(steps, vec!["step4", "step3", "step2"]);
    assert_eq!(
        events[0].acme_problem.as_deref(),
        Some("urn:ietf:params:acme:error:dns")
    );
    assert_eq!(events[0].level, EventLevel::Error);
    assert_eq!(
        adapters.store.list_events(&other, 10).await.unwrap(),
        vec![foreign]
    );
}

/// HTTP-01 answers are readable by token until they expire or are deleted.
pub async fn http01_answers_round_trip_and_expire(adapters: &Adapters) {
    let challenge = Http01Challenge {
        token: "tok-Abc_123".to_owned(),
        key_authorization: "tok-Abc_123.thumbprint".to_owned(),
        expires_at: NOW + Duration::minutes(10),
    };
    adapters.store.put_http01(&challenge).await.unwrap();
    assert_eq!(
        adapters
            .store
            .get_http01(&challenge.token, NOW)
            .await
            .unwrap(),
        Some(challenge.clone())
    );
    assert_eq!(
        adapters
            .store
            .get_http01(&challenge.token, NOW + Duration::minutes(11))
            .await
            .unwrap(),
        None
    );
    assert_eq!(
        adapters.store.get_http01("other-token", NOW).await.unwrap(),
        None
    );
    adapters
        .store
        .delete_http01(&challenge.token)
        .await
        .unwrap();
    assert_eq!(
        adapters
            .store
            .get_http01(&challenge.token, NOW)
            .await
            .unwrap(),
        None
    );
    adapters
        .store
        .delete_http01(&challenge.token)
        .await
        .unwrap();
}

/// 20 parallel acquires of one lease: exactly one holder.
pub async fn lease_is_exclusive_under_parallel_acquires(adapters: &Adapters) {
    let tasks: Vec<_> = (0..20)
        .map(|n| {
            let store = adapters.store.clone();
            tokio::spawn(async move {
                store
                    .acquire_lease(
                        "issue:shop.example.com",
                        &format!("owner-{n}"),
                        Duration::minutes(5),
                        NOW,
                    )
                    .await
            })
        })
        .collect();
    let mut holders = Vec::new();
    for task in tasks {
        match task.await.unwrap() {
            Ok(lease) => holders.push(lease),
            Err(Error::LeaseHeld { name }) => assert_eq!(name, "issue:shop.example.com"),
            Err(other) => panic!("unexpected error: {other:?}"),
        }
    }
    assert_eq!(holders.len(), 1, "more than one lease holder: {holders:?}");
    assert_eq!(holders[0].expires_at, NOW + Duration::minutes(5));
    // Other names are independent.
    adapters
        .store
        .acquire_lease(
            "issue:other.example.com",
            "owner-x",
            Duration::minutes(5),
            NOW,
        )
        .await
        .unwrap();
}

/// Once expired by the taker's clock, a lease is taken over, and the old holder can no longer
/// renew it.
pub async fn expired_lease_is_taken_over(adapters: &Adapters) {
    let first = adapters
        .store
        .acquire_lease("issue:a.example.com", "first", Duration::seconds(30), NOW)
        .await
        .unwrap();
    let early = adapters
        .store
        .acquire_lease(
            "issue:a.example.com",
            "second",
            Duration::seconds(30),
            NOW + Duration::seconds(29),
        )
        .await;
    assert!(matches!(early, Err(Error::LeaseHeld { .. })), "{early:?}");

    let second = adapters
        .store
        .acquire_lease(
            "issue:a.example.com",
            "second",
            Duration::seconds(30),
            NOW + Duration::seconds(31),
        )
        .await
        .unwrap();
    assert_eq!(second.owner, "second");
    assert!(second.version > first.version);

    let stale_renew = adapters
        .store
        .renew_lease(&first, Duration::seconds(30), NOW + Duration::seconds(32))
        .await;
    assert!(
        matches!(stale_renew, Err(Error::LeaseHeld { .. })),
        "{stale_renew:?}"
    );
}

/// Only the holder renews or releases; a release by a former holder leaves the lease alone.
pub async fn lease_renew_and_release_need_the_owner(adapters: &Adapters) {
    let lease = adapters
        .store
        .acquire_lease("renew:b.example.com", "holder", Duration::seconds(30), NOW)
        .await
        .unwrap();
    let renewed = adapters
        .store
        .renew_lease(&lease, Duration::seconds(60), NOW + Duration::seconds(20))
        .await
        .unwrap();
    assert_eq!(renewed.expires_at, NOW + Duration::seconds(80));
    assert!(renewed.version > lease.version);
    // Renewed past the original expiry: still held.
    let taker = adapters
        .store
        .acquire_lease(
            "renew:b.example.com",
            "taker",
            Duration::seconds(30),
            NOW + Duration::seconds(40),
        )
        .await;
    assert!(matches!(taker, Err(Error::LeaseHeld { .. })), "{taker:?}");

    let impostor = edgecert_core::model::Lease {
        owner: "impostor".to_owned(),
        ..renewed.clone()
    };
    adapters.store.release_lease(&impostor).await.unwrap();
    let still_held = adapters
        .store
        .acquire_lease(
            "renew:b.example.com",
            "taker",
            Duration::seconds(30),
            NOW + Duration::seconds(41),
        )
        .await;
    assert!(
        matches!(still_held, Err(Error::LeaseHeld { .. })),
        "{still_held:?}"
    );

    adapters.store.release_lease(&renewed).await.unwrap();
    adapters
        .store
        .acquire_lease(
            "renew:b.example.com",
            "taker",
            Duration::seconds(30),
            NOW + Duration::seconds(42),
        )
        .await
        .unwrap();
}

fn material(label: &str) -> CertificateMaterial {
    CertificateMaterial {
        chain_pem: Some(format!(
            "-----BEGIN CERTIFICATE-----\n{label}\n-----END CERTIFICATE-----\n"
        )),
        private_key_pem: SecretString::new(format!(
            "-----BEGIN PRIVATE KEY-----\n{label}\n-----END PRIVATE KEY-----\n"
        )),
    }
}

/// Every write is a new version; every version stays readable until the material is deleted.
pub async fn vault_round_trip_keeps_every_version(adapters: &Adapters) {
    let certificate = CertificateId::generate();
    let key_only = CertificateMaterial {
        chain_pem: None,
        private_key_pem: SecretString::new(
            "-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n",
        ),
    };
    let v0 = adapters
        .vault
        .put_material(&certificate, &key_only)
        .await
        .unwrap();
    let v1 = adapters
        .vault
        .put_material(&certificate, &material("first"))
        .await
        .unwrap();
    let v2 = adapters
        .vault
        .put_material(&certificate, &material("second"))
        .await
        .unwrap();
    assert_ne!(v1, v2);
    assert_ne!(v0, v1);

    assert_eq!(
        adapters
            .vault
            .get_material(&certificate, &v1)
            .await
            .unwrap(),
        material("first")
    );
    assert_eq!(
        adapters
            .vault
            .get_material(&certificate, &v2)
            .await
            .unwrap(),
        material("second")
    );
    assert_eq!(
        adapters
            .vault
            .get_material(&certificate, &v0)
            .await
            .unwrap(),
        key_only
    );

    let unknown = adapters
        .vault
        .get_material(&CertificateId::generate(), &v1)
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, Error::NotFound(ItemKind::CertificateMaterial)),
        "{unknown:?}"
    );

    adapters.vault.delete_material(&certificate).await.unwrap();
    let gone = adapters
        .vault
        .get_material(&certificate, &v2)
        .await
        .unwrap_err();
    assert!(
        matches!(gone, Error::NotFound(ItemKind::CertificateMaterial)),
        "{gone:?}"
    );
    adapters.vault.delete_material(&certificate).await.unwrap();
}

/// A write that fails (material over the vault's size limit) leaves the previous version
/// readable and adds nothing.
pub async fn vault_keeps_previous_version_when_a_write_fails(adapters: &Adapters) {
    let certificate = CertificateId::generate();
    let current = adapters
        .vault
        .put_material(&certificate, &material("served"))
        .await
        .unwrap();
    let oversized = CertificateMaterial {
        chain_pem: Some("A".repeat(MAX_MATERIAL_BYTES)),
        private_key_pem: SecretString::new(
            "-----BEGIN PRIVATE KEY-----\nnew\n-----END PRIVATE KEY-----\n",
        ),
    };
    let error = adapters
        .vault
        .put_material(&certificate, &oversized)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::MaterialTooLarge { .. }), "{error:?}");
    assert!(
        !format!("{error:?} {error}").contains("PRIVATE KEY"),
        "key material leaked into an error"
    );
    assert_eq!(
        adapters
            .vault
            .get_material(&certificate, &current)
            .await
            .unwrap(),
        material("served")
    );
    let bogus = MaterialVersion("no-such-version".to_owned());
    assert!(
        adapters
            .vault
            .get_material(&certificate, &bogus)
            .await
            .is_err()
    );
}

/// ACME account credentials are kept per directory URL and replaced on write.
pub async fn vault_keeps_acme_account_credentials(adapters: &Adapters) {
    let directory = format!("https://127.0.0.1:14000/dir?{}", DomainId::generate());
    assert_eq!(
        adapters.vault.get_acme_account(&directory).await.unwrap(),
        None
    );
    adapters
        .vault
        .put_acme_account(&directory, &SecretString::new(r#"{"id":"1"}"#))
        .await
        .unwrap();
    adapters
        .vault
        .put_acme_account(&directory, &SecretString::new(r#"{"id":"2"}"#))
        .await
        .unwrap();
    let stored = adapters
        .vault
        .get_acme_account(&directory)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.expose(), r#"{"id":"2"}"#);
    assert_eq!(
        adapters
            .vault
            .get_acme_account("https://other.example/dir")
            .await
            .unwrap(),
        None
    );
}

/// Pruning deletes only what the certificate no longer refers to: the version it keeps, and
/// every other certificate's material, stay readable.
pub async fn vault_prune_keeps_what_the_certificate_refers_to(adapters: &Adapters) {
    let vault = &adapters.vault;
    let (certificate, other) = (CertificateId::generate(), CertificateId::generate());
    let old = vault
        .put_material(&certificate, &material("old"))
        .await
        .unwrap();
    let new = vault
        .put_material(&certificate, &material("new"))
        .await
        .unwrap();
    let others = vault
        .put_material(&other, &material("other"))
        .await
        .unwrap();

    vault
        .prune_material(&certificate, std::slice::from_ref(&new), &[old])
        .await
        .unwrap();
    assert_eq!(
        vault.get_material(&certificate, &new).await.unwrap(),
        material("new")
    );
    assert_eq!(
        vault.get_material(&other, &others).await.unwrap(),
        material("other")
    );
    // Nothing superseded, everything kept: nothing changes.
    vault
        .prune_material(&certificate, std::slice::from_ref(&new), &[])
        .await
        .unwrap();
    assert_eq!(
        vault.get_material(&certificate, &new).await.unwrap(),
        material("new")
    );
}

/// A rotated data key seals what is stored next; what the older key sealed stays readable
/// (until the key storage sweep moves it) and is known to be outside the new generation.
pub async fn vault_rotation_keeps_material_readable(adapters: &Adapters) {
    let vault = &adapters.vault;
    let certificate = CertificateId::generate();
    let before = vault
        .put_material(&certificate, &material("before"))
        .await
        .unwrap();
    let first = vault.storage_generation().await.unwrap();
    let rotated = vault.rotate_data_key().await.unwrap();
    let second = vault.storage_generation().await.unwrap();
    let after = vault
        .put_material(&certificate, &material("after"))
        .await
        .unwrap();
    assert_eq!(
        vault.get_material(&certificate, &before).await.unwrap(),
        material("before")
    );
    assert_eq!(
        vault.get_material(&certificate, &after).await.unwrap(),
        material("after")
    );
    if let Some(second) = &second {
        assert!(vault.is_in_generation(&after, second));
        if rotated && first.as_ref() != Some(second) {
            assert!(
                !vault.is_in_generation(&before, second),
                "material sealed before the rotation counts as re-sealed"
            );
        }
    }
    if !rotated {
        assert_eq!(first, second, "the generation changed without a rotation");
    }
}

/// The key storage sweep moves every certificate's served and pending material to the vault's
/// current generation a bounded number per run, switches each certificate only to stored
/// material (every certificate's material stays readable between runs), and then finishes.
pub async fn key_storage_sweep_moves_material_to_the_current_generation(adapters: &Adapters) {
    use edgecert_core::ports::ManualClock;
    use edgecert_core::usecases::key_storage::{KeySweepSettings, SETTLE, sweep_key_storage};

    let (store, vault) = (&adapters.store, &adapters.vault);
    let clock = ManualClock::new(NOW);
    let account = new_account(adapters, PlanName::Elite).await;
    let mut stored = Vec::new();
    for n in 0..5 {
        let hostname = fixtures::unique_hostname(&format!("sweep{n}"));
        let mut certificate = fixtures::managed(&account, &hostname);
        certificate.updated_at = NOW - Duration::minutes(10 - n);
        let mut expected = Vec::new();
        if n < 3 {
            certificate = fixtures::issued(certificate, NOW + Duration::days(30));
            let served = material(&format!("served{n}"));
            let version = vault.put_material(&certificate.id, &served).await.unwrap();
            certificate.material_version = Some(version.0);
            expected.push(served);
        }
        if n == 0 || n == 3 {
            let pending = CertificateMaterial {
                chain_pem: None,
                ..material(&format!("pending{n}"))
            };
            let version = vault.put_material(&certificate.id, &pending).await.unwrap();
            certificate.pending_material_version = Some(version.0);
            expected.push(pending);
        }
        store.create_certificate(&certificate, 100).await.unwrap();
        stored.push((certificate, expected));
    }
    let with_material = stored
        .iter()
        .filter(|(_, expected)| !expected.is_empty())
        .count();
    let readable = || async {
        for (certificate, expected) in &stored {
            let current = store
                .get_certificate(&account, &certificate.id)
                .await
                .unwrap()
                .unwrap();
            let versions: Vec<_> = current.material_versions().cloned().collect();
            assert_eq!(versions.len(), expected.len(), "{current:?}");
            for (version, material) in versions.into_iter().zip(expected) {
                assert_eq!(
                    &vault
                        .get_material(&certificate.id, &MaterialVersion(version))
                        .await
                        .unwrap(),
                    material,
                    "a certificate names material that is not stored"
                );
            }
        }
    };

    let before = vault.storage_generation().await.unwrap();
    let rotated = vault.rotate_data_key().await.unwrap();
    let settings = KeySweepSettings {
        per_run: 2,
        concurrency: 2,
        page_size: 2,
        ..KeySweepSettings::default()
    };
    let mut moved = 0;
    let mut runs = 0;
    let generation = loop {
        let report = sweep_key_storage(store.as_ref(), vault.as_ref(), &clock, &settings)
            .await
            .unwrap();
        assert_eq!(report.error_count, 0, "{report:?}");
        assert!(
            report.moved <= 3,
            "a run moved more than a page past its budget"
        );
        moved += report.moved;
        readable().await;
        runs += 1;
        if report.finished {
            break report.generation;
        }
        assert!(runs < 20, "the sweep does not finish: {report:?}");
        clock.advance(SETTLE / 4);
    };
    let Some(generation) = generation else {
        assert_eq!(moved, 0, "a vault with one place moved material");
        return;
    };
    for (certificate, _) in &stored {
        let current = store
            .get_certificate(&account, &certificate.id)
            .await
            .unwrap()
            .unwrap();
        for version in current.material_versions() {
            assert!(
                vault.is_in_generation(&MaterialVersion(version.clone()), &generation),
                "{version} was left outside {generation}"
            );
        }
    }
    let changed = rotated && before.as_ref() != Some(&generation);
    assert_eq!(moved, if changed { with_material as u64 } else { 0 });
    // Finished: a run reads the saved progress and nothing else.
    let again = sweep_key_storage(store.as_ref(), vault.as_ref(), &clock, &settings)
        .await
        .unwrap();
    assert!(again.finished && again.examined == 0, "{again:?}");
}

/// A token bucket starts full, grants at most what it holds, refills at its rate by the
/// caller's clock, keeps buckets apart by name, and reads back as stored.
pub async fn token_bucket_grants_its_capacity_then_refills(adapters: &Adapters) {
    let store = &adapters.store;
    let limits = BucketLimits::per_period(50, Duration::hours(1));
    let take = |name: &'static str, wanted: u32, at| async move {
        store.take_tokens(name, wanted, &limits, at).await.unwrap()
    };
    assert_eq!(store.read_token_bucket("orders:a").await.unwrap(), None);
    assert_eq!(take("orders:a", 30, NOW).await, 30);
    // Read back as stored, and reading takes nothing.
    let stored = store.read_token_bucket("orders:a").await.unwrap();
    let level = stored.expect("a used bucket is stored").level(&limits, NOW);
    assert_eq!((level.available, level.capacity), (20, 50));
    assert_eq!(level.next_token_at, Some(NOW + Duration::seconds(72)));
    assert_eq!(take("orders:a", 30, NOW).await, 20);
    assert_eq!(take("orders:a", 1, NOW).await, 0);
    // Another bucket is untouched.
    assert_eq!(take("orders:b", 5, NOW).await, 5);
    // One token every 72 s: after 10 minutes, 8 tokens (8.33 earned).
    assert_eq!(take("orders:a", 50, NOW + Duration::minutes(10)).await, 8);
    // The fraction is kept: 48 s later the 9th token is whole.
    assert_eq!(take("orders:a", 50, NOW + Duration::seconds(647)).await, 0);
    assert_eq!(take("orders:a", 50, NOW + Duration::seconds(648)).await, 1);
    // A caller whose clock is behind gets no refill.
    assert_eq!(take("orders:a", 50, NOW).await, 0);
    // After a long pause the bucket is full again, never fuller.
    assert_eq!(take("orders:a", 500, NOW + Duration::days(1)).await, 50);
}

/// Parallel takers on one bucket share exactly its tokens: none is granted twice.
pub async fn token_bucket_is_exact_under_parallel_takers(adapters: &Adapters) {
    let limits = BucketLimits::per_period(25, Duration::hours(3));
    let tasks: Vec<_> = (0..12)
        .map(|_| {
            let store = adapters.store.clone();
            tokio::spawn(async move {
                let mut granted = 0;
                for _ in 0..4 {
                    granted += store
                        .take_tokens("orders:parallel", 1, &limits, NOW)
                        .await
                        .unwrap();
                }
                granted
            })
        })
        .collect();
    let mut granted = 0;
    for task in tasks {
        granted += task.await.unwrap();
    }
    assert_eq!(granted, 25, "12 takers x 4 on a bucket of 25");
}

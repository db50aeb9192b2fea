//! The change feeds of domains and certificates, with the tombstones of deleted domains.

use edgecert_core::PlanName;
use edgecert_core::model::{CertificateStatus, DeletedDomain, DomainChange};
use edgecert_core::ports::PageRequest;
use time::Duration;

use super::new_account;
use crate::Adapters;
use crate::fixtures::{self, NOW};

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

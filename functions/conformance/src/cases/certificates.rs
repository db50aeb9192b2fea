//! Certificates: unique names, the plan's limit, versioned updates and the due query.

use std::collections::HashSet;

use edgecert_core::Error;
use edgecert_core::ItemKind;
use edgecert_core::PlanName;
use edgecert_core::ids::CertificateId;
use edgecert_core::model::CertificateStatus;
use edgecert_core::ports::PageRequest;
use time::Duration;

use super::new_account;
use crate::Adapters;
use crate::fixtures::{self, NOW};

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

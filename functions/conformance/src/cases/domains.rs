//! Domains: unique hostnames, the plan's limit, deletion, isolation, pages, versioned updates.

use edgecert_core::Error;
use edgecert_core::ItemKind;
use edgecert_core::PlanName;
use edgecert_core::model::ProvisioningStep;
use edgecert_core::ports::PageRequest;
use time::Duration;

use super::new_account;
use crate::Adapters;
use crate::fixtures::{self, NOW};

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

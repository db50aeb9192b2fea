//! Accounts: round trips, API key lookup, versioned updates and listing.

use edgecert_core::Error;
use edgecert_core::ItemKind;
use edgecert_core::PlanName;
use edgecert_core::ids::AccountId;
use edgecert_core::model::{ApiKey, ApiKeyHash};
use edgecert_core::ports::PageRequest;
use time::Duration;

use crate::Adapters;
use crate::fixtures::{self, NOW};

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

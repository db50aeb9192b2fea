//! Zones: round trips within an account and names unique across accounts.

use edgecert_core::Error;
use edgecert_core::Hostname;
use edgecert_core::ItemKind;
use edgecert_core::PlanName;
use edgecert_core::ids::ZoneId;
use edgecert_core::ports::PageRequest;

use super::new_account;
use crate::Adapters;
use crate::fixtures;

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

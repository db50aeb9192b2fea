//! Leases: exclusive, taken over once expired, renewed and released by their owner only.

use edgecert_core::Error;
use time::Duration;

use crate::Adapters;
use crate::fixtures::NOW;

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

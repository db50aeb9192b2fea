//! Token buckets: capacity, refill and exactness under parallel takers.

use edgecert_core::model::BucketLimits;
use time::Duration;

use crate::Adapters;
use crate::fixtures::NOW;

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

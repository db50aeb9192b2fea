//! One conformance suite for every store and vault adapter pair.
//!
//! An adapter crate runs it from its tests with
//! `edgecert_conformance::conformance_suite!(sqlite, make_adapters);` where `make_adapters` is an
//! `async fn() -> Adapters` returning fresh, empty adapters. Each case becomes its own test, so
//! the output names the adapter and the case (`sqlite::lease_is_exclusive ... ok`).

#![allow(clippy::unwrap_used, clippy::expect_used)] // a failed expectation is a failed test here

use std::any::Any;
use std::sync::Arc;

use edgecert_core::ports::{Store, Vault};

pub mod cases;
mod fixtures;

/// A fresh, empty store and vault under test, plus whatever keeps them alive (a temporary
/// directory, a table to drop).
pub struct Adapters {
    /// The store under test.
    pub store: Arc<dyn Store>,
    /// The vault under test.
    pub vault: Arc<dyn Vault>,
    /// Dropped with the adapters.
    pub guard: Box<dyn Any + Send + Sync>,
}

/// Expands to a module named `$adapter` with one `#[tokio::test]` per conformance case, each on
/// fresh adapters from `$make` (an `async fn() -> Adapters`).
#[macro_export]
macro_rules! conformance_suite {
    ($adapter:ident, $make:path) => {
        mod $adapter {
            #[allow(unused_imports)]
            use super::*;
            $crate::conformance_suite!(@cases $make;
                account_round_trip_and_api_key_lookup,
                account_update_is_version_checked,
                accounts_are_listed_once_in_creation_order,
                hostnames_are_unique_across_accounts,
                domain_limit_holds_under_parallel_creates,
                deleting_a_domain_frees_its_hostname_and_its_place,
                domains_are_invisible_to_other_accounts,
                domain_list_paginates_in_creation_order,
                domain_update_is_version_checked,
                zones_round_trip_and_stay_in_their_account,
                zone_names_are_unique_across_accounts_until_deleted,
                zone_name_claim_holds_under_parallel_imports,
                certificate_names_are_unique_per_account,
                certificate_limit_holds_under_parallel_creates,
                managed_certificates_do_not_count_against_the_plan,
                certificate_update_is_version_checked,
                due_query_returns_only_due_certificates_in_order,
                due_query_pages_and_follows_updates,
                change_feeds_follow_updates_in_order,
                a_deleted_domain_leaves_a_tombstone_before_its_reclaim,
                events_are_listed_newest_first_per_certificate,
                http01_answers_round_trip_and_expire,
                lease_is_exclusive_under_parallel_acquires,
                expired_lease_is_taken_over,
                lease_renew_and_release_need_the_owner,
                vault_round_trip_keeps_every_version,
                vault_keeps_previous_version_when_a_write_fails,
                vault_keeps_acme_account_credentials,
                token_bucket_grants_its_capacity_then_refills,
                token_bucket_is_exact_under_parallel_takers,
            );
        }
    };
    (@cases $make:path; $($case:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 4)]
            async fn $case() {
                // A fault or a slow machine fails the case with a message, never hangs CI.
                let bounded = async {
                    let adapters = $make().await;
                    $crate::cases::$case(&adapters).await;
                };
                if tokio::time::timeout(std::time::Duration::from_secs(180), bounded)
                    .await
                    .is_err()
                {
                    panic!("{} did not finish within 180 s", stringify!($case));
                }
            }
        )*
    };
}

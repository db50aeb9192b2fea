//! The conformance cases. Each takes fresh, empty adapters and panics on a contract breach.

mod accounts;
mod certificates;
mod change_feeds;
mod domains;
mod events;
mod leases;
mod token_buckets;
mod vault;
mod zones;

pub use accounts::*;
pub use certificates::*;
pub use change_feeds::*;
pub use domains::*;
pub use events::*;
pub use leases::*;
pub use token_buckets::*;
pub use vault::*;
pub use zones::*;

use edgecert_core::PlanName;
use edgecert_core::ids::AccountId;
use edgecert_core::model::ApiKey;

use crate::Adapters;
use crate::fixtures;

async fn new_account(adapters: &Adapters, plan: PlanName) -> AccountId {
    let account = fixtures::account(plan);
    adapters
        .store
        .create_account(&account, &ApiKey::generate().hash)
        .await
        .unwrap();
    account.id
}

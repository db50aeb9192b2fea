//! Leases: one owner at a time for an operation on a name (one ACME order per name set).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

/// A held lease. Whoever holds it may act on `name` until `expires_at`; after that anyone may
/// take it over, judged by the taker's own clock.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Lease {
    /// What is leased, e.g. `issue:a.example.com,b.example.com`.
    pub name: String,
    /// Random token of the holder; only it can renew or release.
    pub owner: String,
    /// Expiry.
    #[serde(with = "time::serde::rfc3339")]
    pub expires_at: OffsetDateTime,
    /// Bumped on every acquire and renew.
    pub version: u64,
}

//! DNS zones an account controls, required for DNS-01 certificates.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::hostname::Hostname;
use crate::ids::{AccountId, ZoneId};

/// A DNS zone imported by an account, reachable through one DNS provider.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Zone {
    /// `zone_…`
    pub id: ZoneId,
    /// Owner.
    pub account_id: AccountId,
    /// The zone apex, e.g. `example.com`.
    pub name: Hostname,
    /// Which DNS provider adapter serves it (`route53`, `challtestsrv`).
    pub provider: String,
    /// The provider's id for the zone (a Route 53 hosted zone id).
    pub provider_zone_id: String,
    /// The role the provider assumes to reach the zone in the account's own provider account
    /// (Route 53: an IAM role ARN, assumed with the EdgeCert account id as ExternalId).
    /// `None` when the provider reaches the zone with EdgeCert's own credentials.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub role_arn: Option<String>,
    /// Whether a TXT written through the provider was read back from DNS.
    pub verified: bool,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Optimistic-concurrency version, maintained by the store.
    pub version: u64,
}

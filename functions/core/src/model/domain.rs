//! Whitelisted customer domains served by the edge.

use rand::Rng as _;
use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

use crate::hostname::Hostname;
use crate::ids::{AccountId, CertificateId, DomainId};

/// Where a domain is on its way to being served over HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProvisioningStep {
    /// The account requires a TXT ownership record that has not been seen yet.
    WaitingOwnership,
    /// DNS does not point at the edge yet.
    WaitingDns,
    /// A certificate is being issued.
    Issuing,
    /// Served over HTTPS.
    Active,
    /// The last step failed; see `last_error` and `next_attempt_at`.
    Failed,
    /// DNS never pointed at the edge within the wait ([`RenewalPolicy::dns_wait`](crate::RenewalPolicy)):
    /// no longer checked on a schedule. A nudge, or a request for the name reaching the edge,
    /// checks it again.
    Stale,
}

impl ProvisioningStep {
    /// The step as used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            ProvisioningStep::WaitingOwnership => "waiting_ownership",
            ProvisioningStep::WaitingDns => "waiting_dns",
            ProvisioningStep::Issuing => "issuing",
            ProvisioningStep::Active => "active",
            ProvisioningStep::Failed => "failed",
            ProvisioningStep::Stale => "stale",
        }
    }
}

/// A customer hostname whitelisted by an account, with the origin the edge proxies to.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Domain {
    /// `dom_…`
    pub id: DomainId,
    /// Owner.
    pub account_id: AccountId,
    /// Globally unique across accounts.
    pub hostname: Hostname,
    /// Where the edge sends requests for this hostname.
    pub origin_url: String,
    /// Value the ownership TXT record must hold.
    pub ownership_token: String,
    /// Whether ownership was proven (or not required).
    pub ownership_verified: bool,
    /// Current step.
    pub provisioning_step: ProvisioningStep,
    /// Why the last attempt at the current step failed, for humans.
    pub last_error: Option<String>,
    /// When the current step runs again on its own.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Failures in a row at the current step (drives the backoff).
    pub consecutive_failures: u32,
    /// The managed certificate, once one was requested.
    pub certificate_id: Option<CertificateId>,
    /// The ACME profile for its managed certificate, overriding the account's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme_profile: Option<String>,
    /// Since when the domain waits for its DNS to point at the edge (`None` when it does not).
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub dns_waiting_since: Option<OffsetDateTime>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Optimistic-concurrency version, maintained by the store.
    pub version: u64,
}

impl Domain {
    /// `hostname` whitelisted by `account_id` at `now`, proxied to `origin_url`, with a new
    /// random ownership token. It waits for its ownership TXT record first when
    /// `ownership_required`, else for its DNS to point at the edge.
    pub fn whitelisted(
        account_id: AccountId,
        hostname: Hostname,
        origin_url: String,
        ownership_required: bool,
        now: OffsetDateTime,
    ) -> Domain {
        Domain {
            id: DomainId::generate(),
            account_id,
            hostname,
            origin_url,
            ownership_token: Domain::new_ownership_token(),
            ownership_verified: !ownership_required,
            provisioning_step: if ownership_required {
                ProvisioningStep::WaitingOwnership
            } else {
                ProvisioningStep::WaitingDns
            },
            last_error: None,
            next_attempt_at: None,
            consecutive_failures: 0,
            certificate_id: None,
            acme_profile: None,
            dns_waiting_since: None,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    /// A new ownership token: `edgecert-verify-` and 32 random lower-case letters and digits.
    fn new_ownership_token() -> String {
        const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyz0123456789";
        let mut rng = rand::thread_rng();
        let random: String = (0..32)
            .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
            .collect();
        format!("edgecert-verify-{random}")
    }

    /// The DNS name of the ownership TXT record.
    pub fn ownership_record_name(&self) -> String {
        format!("_edgecert-verify.{}", self.hostname)
    }
}

/// A deleted domain as the change feed reports it (a tombstone): which record of which account
/// held the hostname. Every edge drops the hostname's route and certificate when they belong to
/// that record, and only then: the name may already be claimed again, by another account.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeletedDomain {
    /// The deleted record.
    pub id: DomainId,
    /// Its owner.
    pub account_id: AccountId,
    /// The hostname it held.
    pub hostname: Hostname,
    /// When it was deleted (the writer's clock, like `updated_at`).
    #[serde(with = "time::serde::rfc3339")]
    pub deleted_at: OffsetDateTime,
}

impl DeletedDomain {
    /// How long stores keep tombstones in the feed. A reader whose last look is older than
    /// this may have missed deletions and must read everything again instead.
    pub const RETENTION: Duration = Duration::days(1);

    /// The tombstone of `domain`, deleted at `at`.
    pub fn of(domain: &Domain, at: OffsetDateTime) -> DeletedDomain {
        DeletedDomain {
            id: domain.id.clone(),
            account_id: domain.account_id.clone(),
            hostname: domain.hostname.clone(),
            deleted_at: at,
        }
    }
}

/// One entry of the domain change feed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DomainChange {
    /// The domain as stored now (created or updated).
    Changed(Domain),
    /// The domain was deleted.
    Deleted(DeletedDomain),
}

impl DomainChange {
    /// When the change happened: `updated_at`, or `deleted_at`.
    pub fn changed_at(&self) -> OffsetDateTime {
        match self {
            DomainChange::Changed(domain) => domain.updated_at,
            DomainChange::Deleted(deleted) => deleted.deleted_at,
        }
    }

    /// The hostname the change is about.
    pub fn hostname(&self) -> &Hostname {
        match self {
            DomainChange::Changed(domain) => &domain.hostname,
            DomainChange::Deleted(deleted) => &deleted.hostname,
        }
    }

    /// The domain record the change is about.
    pub fn domain_id(&self) -> &DomainId {
        match self {
            DomainChange::Changed(domain) => &domain.id,
            DomainChange::Deleted(deleted) => &deleted.id,
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn a_whitelisted_domain_waits_for_ownership_only_when_required() {
        let now = datetime!(2026-01-15 10:30 UTC);
        let whitelist = |required| {
            Domain::whitelisted(
                AccountId::generate(),
                Hostname::parse_domain("shop.example.com").unwrap(),
                "https://origin.example.net".to_owned(),
                required,
                now,
            )
        };
        let open = whitelist(false);
        assert_eq!(open.provisioning_step, ProvisioningStep::WaitingDns);
        assert!(open.ownership_verified);
        let proving = whitelist(true);
        assert_eq!(
            proving.provisioning_step,
            ProvisioningStep::WaitingOwnership
        );
        assert!(!proving.ownership_verified);
        assert!(proving.ownership_token.starts_with("edgecert-verify-"));
        assert_ne!(proving.ownership_token, open.ownership_token);
        assert_eq!((proving.created_at, proving.version), (now, 1));
    }
}

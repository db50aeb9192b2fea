//! The store port: accounts, domains, zones, certificates, events, HTTP-01 answers and leases.
//!
//! Contract shared by every adapter (and checked by the conformance suite):
//! - `update_*` writes only if the stored `version` equals the given one, stores `version + 1`
//!   and returns the stored item; otherwise [`Error::VersionConflict`](crate::Error), or
//!   [`Error::NotFound`](crate::Error) when the item is gone.
//! - Reads scoped by account return `None` for another account's item: callers answer 404.
//! - Uniqueness and limits are enforced atomically by the store, never read-then-write.
//! - The change feeds ([`DomainStore::domains_changed_since`],
//!   [`CertificateStore::certificates_changed_since`]) read an index of `updated_at`, so a
//!   reader that keeps a copy (the edge terminator) pays for what changed, not for everything.
//!   A deleted domain appears in its feed as a tombstone
//!   ([`DeletedDomain`](crate::model::DeletedDomain)) for its `RETENTION`; deleted
//!   certificates do not appear (a managed certificate is deleted only with its domain, and
//!   downloadable ones are never served).

use async_trait::async_trait;
use time::{Duration, OffsetDateTime};

use crate::error::Result;
use crate::hostname::Hostname;
use crate::ids::{AccountId, CertificateId, DomainId, ZoneId};
use crate::model::{
    Account, AccountUsage, ApiKeyHash, BucketLimits, Certificate, CertificateEvent, Domain,
    DomainChange, Http01Challenge, Lease, TokenBucket, Zone,
};

/// Which page of a list to read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PageRequest {
    /// Opaque cursor from a previous [`Page::next_cursor`]; `None` for the first page.
    pub cursor: Option<String>,
    /// Maximum items to return (adapters may return fewer).
    pub limit: u32,
}

impl PageRequest {
    /// The first page of up to `limit` items.
    pub fn first(limit: u32) -> Self {
        PageRequest {
            cursor: None,
            limit,
        }
    }
}

/// One page of a list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Page<T> {
    /// The items.
    pub items: Vec<T>,
    /// Cursor of the next page, `None` on the last one.
    pub next_cursor: Option<String>,
    /// Stored items the adapter read to answer (what a query costs; equals `items.len()` for an
    /// index that holds exactly what is asked).
    pub items_read: u64,
}

/// Accounts and API keys.
#[async_trait]
pub trait AccountStore: Send + Sync {
    /// Stores a new account with its first API key (hash only).
    async fn create_account(&self, account: &Account, api_key: &ApiKeyHash) -> Result<()>;
    /// Reads an account.
    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>>;
    /// Version-checked update (plan, name, settings).
    async fn update_account(&self, account: &Account) -> Result<Account>;
    /// The account an API key belongs to.
    async fn account_for_api_key(&self, api_key: &ApiKeyHash) -> Result<Option<AccountId>>;
    /// The account's limit counters.
    async fn account_usage(&self, id: &AccountId) -> Result<AccountUsage>;
    /// Every account, in creation order (the operator's list); an account appears once even
    /// when it is updated between two pages.
    async fn list_accounts(&self, page: PageRequest) -> Result<Page<Account>>;
}

/// Whitelisted domains, with a global unique index on hostname.
#[async_trait]
pub trait DomainStore: Send + Sync {
    /// Stores a new domain if its hostname is free in every account
    /// ([`DomainExists`](crate::Error::DomainExists)) and the account holds fewer than
    /// `max_domains` ([`DomainLimitReached`](crate::Error::DomainLimitReached)), atomically.
    async fn create_domain(&self, domain: &Domain, max_domains: u32) -> Result<()>;
    /// Reads one of the account's domains.
    async fn get_domain(&self, account: &AccountId, id: &DomainId) -> Result<Option<Domain>>;
    /// Finds a domain by hostname, in any account (the edge's lookup). Strongly consistent: a
    /// domain deleted before the call is never returned, and a re-claimed hostname returns
    /// the new claim.
    async fn domain_by_hostname(&self, hostname: &Hostname) -> Result<Option<Domain>>;
    /// Lists the account's domains, oldest first.
    async fn list_domains(&self, account: &AccountId, page: PageRequest) -> Result<Page<Domain>>;
    /// Version-checked update.
    async fn update_domain(&self, domain: &Domain) -> Result<Domain>;
    /// Deletes the domain, frees its hostname and its place in the limit, and leaves a
    /// tombstone dated `at` in the change feed, all at once.
    async fn delete_domain(
        &self,
        account: &AccountId,
        id: &DomainId,
        at: OffsetDateTime,
    ) -> Result<()>;
    /// Changes to domains of every account at or after `since`, oldest first: domains whose
    /// `updated_at` is that late, and tombstones of domains deleted that late (kept for
    /// [`DeletedDomain::RETENTION`](crate::model::DeletedDomain::RETENTION)). Read from an
    /// index of change times (never a scan of all domains). Adapters may keep that index at
    /// millisecond precision, so changes in `since`'s millisecond but before it may be returned
    /// too.
    async fn domains_changed_since(
        &self,
        since: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<DomainChange>>;
}

/// DNS zones, with a global unique claim on the zone name.
///
/// Zones stored before names were claimed (an earlier schema) hold no claim: they are found by
/// id but not by [`ZoneStore::zone_by_name`], and deleting them frees nothing.
#[async_trait]
pub trait ZoneStore: Send + Sync {
    /// Stores a new zone if its name is not claimed by any zone of any account
    /// ([`ZoneExists`](crate::Error::ZoneExists)), claiming the name, atomically.
    async fn create_zone(&self, zone: &Zone) -> Result<()>;
    /// Reads one of the account's zones.
    async fn get_zone(&self, account: &AccountId, id: &ZoneId) -> Result<Option<Zone>>;
    /// The zone, in any account, that holds the claim on `name`.
    async fn zone_by_name(&self, name: &Hostname) -> Result<Option<Zone>>;
    /// Lists the account's zones, oldest first.
    async fn list_zones(&self, account: &AccountId, page: PageRequest) -> Result<Page<Zone>>;
    /// Version-checked update. A zone's name never changes (its claim stays on the name it
    /// was created with): callers keep it.
    async fn update_zone(&self, zone: &Zone) -> Result<Zone>;
    /// Deletes a zone and frees its name when it holds the claim.
    async fn delete_zone(&self, account: &AccountId, id: &ZoneId) -> Result<()>;
}

/// Certificates, with a per-account unique primary name and a due-for-renewal index.
#[async_trait]
pub trait CertificateStore: Send + Sync {
    /// Stores a new certificate. A downloadable one is refused when the account already has a
    /// certificate for the same primary name
    /// ([`CertificateExists`](crate::Error::CertificateExists)) or holds `max_certificates`
    /// ([`CertificateLimitReached`](crate::Error::CertificateLimitReached)), atomically.
    /// Managed certificates count against neither.
    async fn create_certificate(
        &self,
        certificate: &Certificate,
        max_certificates: u32,
    ) -> Result<()>;
    /// Reads one of the account's certificates.
    async fn get_certificate(
        &self,
        account: &AccountId,
        id: &CertificateId,
    ) -> Result<Option<Certificate>>;
    /// Lists the account's certificates, oldest first.
    async fn list_certificates(
        &self,
        account: &AccountId,
        page: PageRequest,
    ) -> Result<Page<Certificate>>;
    /// Version-checked update; also moves the item in the due index (see
    /// [`Certificate::due_at`]).
    async fn update_certificate(&self, certificate: &Certificate) -> Result<Certificate>;
    /// Deletes a certificate and frees its name and its place in the limit.
    async fn delete_certificate(&self, account: &AccountId, id: &CertificateId) -> Result<()>;
    /// Certificates whose [`Certificate::due_at`] is at or before `now`, earliest first, read
    /// from the due index only (never a scan of all certificates).
    async fn due_certificates(
        &self,
        now: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<Certificate>>;
    /// Certificates of every account whose `updated_at` is at or after `since`, oldest change
    /// first, read from an index of change times (never a scan of all certificates); the same
    /// precision rule as [`DomainStore::domains_changed_since`]. Deleted certificates are not
    /// returned.
    async fn certificates_changed_since(
        &self,
        since: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<Certificate>>;
}

/// Certificate events (the logs).
#[async_trait]
pub trait EventLog: Send + Sync {
    /// Appends an event; events older than [`CertificateEvent::RETENTION`] may be dropped.
    async fn append_event(&self, event: &CertificateEvent) -> Result<()>;
    /// The certificate's events, newest first.
    async fn list_events(
        &self,
        certificate: &CertificateId,
        limit: u32,
    ) -> Result<Vec<CertificateEvent>>;
}

/// HTTP-01 answers, readable by every terminator.
#[async_trait]
pub trait ChallengeStore: Send + Sync {
    /// Stores (or replaces) the answer for a token.
    async fn put_http01(&self, challenge: &Http01Challenge) -> Result<()>;
    /// The answer for a token, if stored and not expired at `now`.
    async fn get_http01(&self, token: &str, now: OffsetDateTime)
    -> Result<Option<Http01Challenge>>;
    /// Removes the answer for a token (no error when absent).
    async fn delete_http01(&self, token: &str) -> Result<()>;
}

/// Leases: one holder per name at a time, across processes.
#[async_trait]
pub trait LeaseStore: Send + Sync {
    /// Takes the lease on `name` for `owner` until `now + ttl` if it is free or expired at
    /// `now`; otherwise [`LeaseHeld`](crate::Error::LeaseHeld).
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Lease>;
    /// Extends a held lease; fails with `LeaseHeld` if it was taken over meanwhile.
    async fn renew_lease(&self, lease: &Lease, ttl: Duration, now: OffsetDateTime)
    -> Result<Lease>;
    /// Releases a held lease (no error when it was already taken over or gone).
    async fn release_lease(&self, lease: &Lease) -> Result<()>;
}

/// Token buckets shared by every process (the order budget at the CA).
#[async_trait]
pub trait TokenBucketStore: Send + Sync {
    /// Refills bucket `name` for the time since its last use (a bucket never used starts
    /// full), then takes up to `wanted` tokens and returns how many it granted (`0..=wanted`),
    /// following [`TokenBucket::take`](crate::model::TokenBucket::take) and judged by the
    /// caller's clock `now`. Atomic across processes: concurrent takers never share a token.
    async fn take_tokens(
        &self,
        name: &str,
        wanted: u32,
        limits: &BucketLimits,
        now: OffsetDateTime,
    ) -> Result<u32>;
    /// Bucket `name` as last stored, without refilling or taking anything; `None` when it was
    /// never used (it is full).
    async fn read_token_bucket(&self, name: &str) -> Result<Option<TokenBucket>>;
}

/// Everything the core needs from storage.
pub trait Store:
    AccountStore
    + DomainStore
    + ZoneStore
    + CertificateStore
    + EventLog
    + ChallengeStore
    + LeaseStore
    + TokenBucketStore
{
}

impl<T> Store for T where
    T: AccountStore
        + DomainStore
        + ZoneStore
        + CertificateStore
        + EventLog
        + ChallengeStore
        + LeaseStore
        + TokenBucketStore
{
}

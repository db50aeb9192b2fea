//! [`CountingStore`]: a store decorator that counts every call by operation, for tests and
//! benchmarks that report what a flow costs in store reads and writes (BENCHMARKS.md, "Store
//! calls per issuance"). It forwards everything to the store it wraps and changes nothing.

use std::collections::BTreeMap;
use std::fmt;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use edgecert_core::model::{
    Account, AccountUsage, ApiKeyHash, BucketLimits, Certificate, CertificateEvent, Domain,
    DomainChange, Http01Challenge, Lease, TokenBucket, Zone,
};
use edgecert_core::ports::{
    AccountStore, CertificateStore, ChallengeStore, DomainStore, EventLog, LeaseStore, Page,
    PageRequest, Store, TokenBucketStore, ZoneStore,
};
use edgecert_core::{AccountId, CertificateId, DomainId, Hostname, Result, ZoneId};
use time::{Duration, OffsetDateTime};

/// What a store operation does, for the totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum CallKind {
    /// Reads one item or one page of an index.
    Read,
    /// Writes (creates, updates, deletes, appends, takes or renews).
    Write,
    /// Reads a change feed (the edge's refresher, on its own clock).
    Feed,
}

/// Calls seen, by operation name (`get_certificate`, `update_domain`...).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StoreCalls {
    /// Calls per operation, with its kind.
    pub by_operation: BTreeMap<&'static str, (CallKind, u64)>,
}

impl StoreCalls {
    /// Calls of one operation.
    pub fn of(&self, operation: &str) -> u64 {
        self.by_operation
            .get(operation)
            .map_or(0, |(_, count)| *count)
    }

    /// Calls of every operation of `kind`.
    pub fn total(&self, kind: CallKind) -> u64 {
        self.by_operation
            .values()
            .filter(|(of, _)| *of == kind)
            .map(|(_, count)| count)
            .sum()
    }

    /// Reads and writes, change feeds left out: what the flow itself cost.
    pub fn item_calls(&self) -> u64 {
        self.total(CallKind::Read) + self.total(CallKind::Write)
    }
}

impl fmt::Display for StoreCalls {
    /// `reads R (op n, ...), writes W (op n, ...)`, feeds left out.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (index, kind) in [CallKind::Read, CallKind::Write].into_iter().enumerate() {
            let parts: Vec<String> = self
                .by_operation
                .iter()
                .filter(|(_, (of, _))| *of == kind)
                .map(|(name, (_, count))| format!("{name} {count}"))
                .collect();
            let label = if kind == CallKind::Read {
                "reads"
            } else {
                "writes"
            };
            if index > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{label} {} ({})", self.total(kind), parts.join(", "))?;
        }
        Ok(())
    }
}

/// Counts the calls made to the store it wraps.
pub struct CountingStore {
    inner: Arc<dyn Store>,
    calls: Mutex<StoreCalls>,
}

impl CountingStore {
    /// Counts calls to `inner`, from zero.
    pub fn new(inner: Arc<dyn Store>) -> CountingStore {
        CountingStore {
            inner,
            calls: Mutex::new(StoreCalls::default()),
        }
    }

    /// The calls counted since the start or the last [`CountingStore::take`].
    pub fn calls(&self) -> StoreCalls {
        self.lock().clone()
    }

    /// The calls counted so far, and the counters back to zero.
    pub fn take(&self) -> StoreCalls {
        std::mem::take(&mut *self.lock())
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, StoreCalls> {
        self.calls.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn count(&self, operation: &'static str, kind: CallKind) {
        self.lock()
            .by_operation
            .entry(operation)
            .or_insert((kind, 0))
            .1 += 1;
    }
}

use CallKind::{Feed, Read, Write};

#[async_trait]
impl AccountStore for CountingStore {
    async fn create_account(&self, account: &Account, api_key: &ApiKeyHash) -> Result<()> {
        self.count("create_account", Write);
        self.inner.create_account(account, api_key).await
    }
    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>> {
        self.count("get_account", Read);
        self.inner.get_account(id).await
    }
    async fn update_account(&self, account: &Account) -> Result<Account> {
        self.count("update_account", Write);
        self.inner.update_account(account).await
    }
    async fn account_for_api_key(&self, api_key: &ApiKeyHash) -> Result<Option<AccountId>> {
        self.count("account_for_api_key", Read);
        self.inner.account_for_api_key(api_key).await
    }
    async fn account_usage(&self, id: &AccountId) -> Result<AccountUsage> {
        self.count("account_usage", Read);
        self.inner.account_usage(id).await
    }
    async fn list_accounts(&self, page: PageRequest) -> Result<Page<Account>> {
        self.count("list_accounts", Read);
        self.inner.list_accounts(page).await
    }
}

#[async_trait]
impl DomainStore for CountingStore {
    async fn create_domain(&self, domain: &Domain, max_domains: u32) -> Result<()> {
        self.count("create_domain", Write);
        self.inner.create_domain(domain, max_domains).await
    }
    async fn get_domain(&self, account: &AccountId, id: &DomainId) -> Result<Option<Domain>> {
        self.count("get_domain", Read);
        self.inner.get_domain(account, id).await
    }
    async fn domain_by_hostname(&self, hostname: &Hostname) -> Result<Option<Domain>> {
        self.count("domain_by_hostname", Read);
        self.inner.domain_by_hostname(hostname).await
    }
    async fn list_domains(&self, account: &AccountId, page: PageRequest) -> Result<Page<Domain>> {
        self.count("list_domains", Read);
        self.inner.list_domains(account, page).await
    }
    async fn update_domain(&self, domain: &Domain) -> Result<Domain> {
        self.count("update_domain", Write);
        self.inner.update_domain(domain).await
    }
    async fn delete_domain(
        &self,
        account: &AccountId,
        id: &DomainId,
        at: OffsetDateTime,
    ) -> Result<()> {
        self.count("delete_domain", Write);
        self.inner.delete_domain(account, id, at).await
    }
    async fn domains_changed_since(
        &self,
        since: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<DomainChange>> {
        self.count("domains_changed_since", Feed);
        self.inner.domains_changed_since(since, page).await
    }
}

#[async_trait]
impl ZoneStore for CountingStore {
    async fn create_zone(&self, zone: &Zone) -> Result<()> {
        self.count("create_zone", Write);
        self.inner.create_zone(zone).await
    }
    async fn get_zone(&self, account: &AccountId, id: &ZoneId) -> Result<Option<Zone>> {
        self.count("get_zone", Read);
        self.inner.get_zone(account, id).await
    }
    async fn zone_by_name(&self, name: &Hostname) -> Result<Option<Zone>> {
        self.count("zone_by_name", Read);
        self.inner.zone_by_name(name).await
    }
    async fn list_zones(&self, account: &AccountId, page: PageRequest) -> Result<Page<Zone>> {
        self.count("list_zones", Read);
        self.inner.list_zones(account, page).await
    }
    async fn update_zone(&self, zone: &Zone) -> Result<Zone> {
        self.count("update_zone", Write);
        self.inner.update_zone(zone).await
    }
    async fn delete_zone(&self, account: &AccountId, id: &ZoneId) -> Result<()> {
        self.count("delete_zone", Write);
        self.inner.delete_zone(account, id).await
    }
}

#[async_trait]
impl CertificateStore for CountingStore {
    async fn create_certificate(
        &self,
        certificate: &Certificate,
        max_certificates: u32,
    ) -> Result<()> {
        self.count("create_certificate", Write);
        self.inner
            .create_certificate(certificate, max_certificates)
            .await
    }
    async fn get_certificate(
        &self,
        account: &AccountId,
        id: &CertificateId,
    ) -> Result<Option<Certificate>> {
        self.count("get_certificate", Read);
        self.inner.get_certificate(account, id).await
    }
    async fn list_certificates(
        &self,
        account: &AccountId,
        page: PageRequest,
    ) -> Result<Page<Certificate>> {
        self.count("list_certificates", Read);
        self.inner.list_certificates(account, page).await
    }
    async fn update_certificate(&self, certificate: &Certificate) -> Result<Certificate> {
        self.count("update_certificate", Write);
        self.inner.update_certificate(certificate).await
    }
    async fn delete_certificate(&self, account: &AccountId, id: &CertificateId) -> Result<()> {
        self.count("delete_certificate", Write);
        self.inner.delete_certificate(account, id).await
    }
    async fn due_certificates(
        &self,
        now: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<Certificate>> {
        self.count("due_certificates", Read);
        self.inner.due_certificates(now, page).await
    }
    async fn certificates_changed_since(
        &self,
        since: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<Certificate>> {
        self.count("certificates_changed_since", Feed);
        self.inner.certificates_changed_since(since, page).await
    }
}

#[async_trait]
impl EventLog for CountingStore {
    async fn append_event(&self, event: &CertificateEvent) -> Result<()> {
        self.count("append_event", Write);
        self.inner.append_event(event).await
    }
    async fn list_events(
        &self,
        certificate: &CertificateId,
        limit: u32,
    ) -> Result<Vec<CertificateEvent>> {
        self.count("list_events", Read);
        self.inner.list_events(certificate, limit).await
    }
}

#[async_trait]
impl ChallengeStore for CountingStore {
    async fn put_http01(&self, challenge: &Http01Challenge) -> Result<()> {
        self.count("put_http01", Write);
        self.inner.put_http01(challenge).await
    }
    async fn get_http01(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Http01Challenge>> {
        self.count("get_http01", Read);
        self.inner.get_http01(token, now).await
    }
    async fn delete_http01(&self, token: &str) -> Result<()> {
        self.count("delete_http01", Write);
        self.inner.delete_http01(token).await
    }
}

#[async_trait]
impl LeaseStore for CountingStore {
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Lease> {
        self.count("acquire_lease", Write);
        self.inner.acquire_lease(name, owner, ttl, now).await
    }
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Lease> {
        self.count("renew_lease", Write);
        self.inner.renew_lease(lease, ttl, now).await
    }
    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.count("release_lease", Write);
        self.inner.release_lease(lease).await
    }
}

#[async_trait]
impl TokenBucketStore for CountingStore {
    async fn take_tokens(
        &self,
        name: &str,
        wanted: u32,
        limits: &BucketLimits,
        now: OffsetDateTime,
    ) -> Result<u32> {
        self.count("take_tokens", Write);
        self.inner.take_tokens(name, wanted, limits, now).await
    }
    async fn read_token_bucket(&self, name: &str) -> Result<Option<TokenBucket>> {
        self.count("read_token_bucket", Read);
        self.inner.read_token_bucket(name).await
    }
}

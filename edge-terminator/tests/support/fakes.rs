//! Fakes around real adapters, for tests only: [`FakeStore`] counts reads and writes and can
//! fail every call; [`FakeVault`] counts material reads and can fail every call. Both forward
//! to the SQLite adapters otherwise.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use edgecert_core::model::{
    Account, AccountUsage, ApiKeyHash, BucketLimits, Certificate, CertificateEvent, Domain,
    DomainChange, Http01Challenge, Lease, SecretString, TokenBucket, Zone,
};
use edgecert_core::ports::{
    AccountStore, CertificateMaterial, CertificateStore, ChallengeStore, DomainStore, EventLog,
    LeaseStore, MaterialVersion, Page, PageRequest, Store, TokenBucketStore, Vault, ZoneStore,
};
use edgecert_core::{AccountId, CertificateId, DomainId, Error, Hostname, Result, ZoneId};
use time::{Duration, OffsetDateTime};

fn outage() -> Error {
    Error::store(std::io::Error::other("fake store outage"))
}

/// A store that counts writes and fails every call while told to.
pub struct FakeStore {
    inner: Arc<dyn Store>,
    failing: AtomicBool,
    writes: AtomicUsize,
    reads: AtomicUsize,
    lookups: AtomicUsize,
    hostname_lookups: Mutex<HashMap<String, usize>>,
    feed_items: AtomicUsize,
}

impl FakeStore {
    pub fn new(inner: Arc<dyn Store>) -> Arc<FakeStore> {
        Arc::new(FakeStore {
            inner,
            failing: AtomicBool::new(false),
            writes: AtomicUsize::new(0),
            reads: AtomicUsize::new(0),
            lookups: AtomicUsize::new(0),
            hostname_lookups: Mutex::new(HashMap::new()),
            feed_items: AtomicUsize::new(0),
        })
    }

    /// Fails every call from now on (`true`) or forwards again (`false`).
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    /// Writes attempted so far (including failed ones).
    pub fn writes(&self) -> usize {
        self.writes.load(Ordering::SeqCst)
    }

    /// Reads attempted so far.
    pub fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    /// Reads of one domain or certificate (by hostname or id) so far: what a terminator would
    /// pay per request if it looked names up on traffic.
    pub fn lookups(&self) -> usize {
        self.lookups.load(Ordering::SeqCst)
    }

    /// Lookups of one hostname (`domain_by_hostname`) so far.
    pub fn lookups_of(&self, hostname: &str) -> usize {
        self.hostname_lookups
            .lock()
            .unwrap()
            .get(hostname)
            .copied()
            .unwrap_or(0)
    }

    fn lookup(&self) -> Result<()> {
        self.lookups.fetch_add(1, Ordering::SeqCst);
        self.read()
    }

    /// Items the change feeds (domains and certificates) returned so far.
    pub fn feed_items(&self) -> usize {
        self.feed_items.load(Ordering::SeqCst)
    }

    fn read(&self) -> Result<()> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(outage());
        }
        Ok(())
    }

    fn write(&self) -> Result<()> {
        self.writes.fetch_add(1, Ordering::SeqCst);
        if self.failing.load(Ordering::SeqCst) {
            return Err(outage());
        }
        Ok(())
    }
}

#[async_trait]
impl AccountStore for FakeStore {
    async fn create_account(&self, account: &Account, api_key: &ApiKeyHash) -> Result<()> {
        self.write()?;
        self.inner.create_account(account, api_key).await
    }
    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>> {
        self.read()?;
        self.inner.get_account(id).await
    }
    async fn update_account(&self, account: &Account) -> Result<Account> {
        self.write()?;
        self.inner.update_account(account).await
    }
    async fn account_for_api_key(&self, api_key: &ApiKeyHash) -> Result<Option<AccountId>> {
        self.read()?;
        self.inner.account_for_api_key(api_key).await
    }
    async fn account_usage(&self, id: &AccountId) -> Result<AccountUsage> {
        self.read()?;
        self.inner.account_usage(id).await
    }
    async fn list_accounts(&self, page: PageRequest) -> Result<Page<Account>> {
        self.read()?;
        self.inner.list_accounts(page).await
    }
}

#[async_trait]
impl DomainStore for FakeStore {
    async fn create_domain(&self, domain: &Domain, max_domains: u32) -> Result<()> {
        self.write()?;
        self.inner.create_domain(domain, max_domains).await
    }
    async fn get_domain(&self, account: &AccountId, id: &DomainId) -> Result<Option<Domain>> {
        self.lookup()?;
        self.inner.get_domain(account, id).await
    }
    async fn domain_by_hostname(&self, hostname: &Hostname) -> Result<Option<Domain>> {
        *self
            .hostname_lookups
            .lock()
            .unwrap()
            .entry(hostname.as_str().to_owned())
            .or_default() += 1;
        self.lookup()?;
        self.inner.domain_by_hostname(hostname).await
    }
    async fn list_domains(&self, account: &AccountId, page: PageRequest) -> Result<Page<Domain>> {
        self.read()?;
        self.inner.list_domains(account, page).await
    }
    async fn update_domain(&self, domain: &Domain) -> Result<Domain> {
        self.write()?;
        self.inner.update_domain(domain).await
    }
    async fn delete_domain(
        &self,
        account: &AccountId,
        id: &DomainId,
        at: OffsetDateTime,
    ) -> Result<()> {
        self.write()?;
        self.inner.delete_domain(account, id, at).await
    }
    async fn domains_changed_since(
        &self,
        since: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<DomainChange>> {
        self.read()?;
        let page = self.inner.domains_changed_since(since, page).await?;
        self.feed_items
            .fetch_add(page.items.len(), Ordering::SeqCst);
        Ok(page)
    }
}

#[async_trait]
impl ZoneStore for FakeStore {
    async fn create_zone(&self, zone: &Zone) -> Result<()> {
        self.write()?;
        self.inner.create_zone(zone).await
    }
    async fn get_zone(&self, account: &AccountId, id: &ZoneId) -> Result<Option<Zone>> {
        self.read()?;
        self.inner.get_zone(account, id).await
    }
    async fn zone_by_name(&self, name: &Hostname) -> Result<Option<Zone>> {
        self.read()?;
        self.inner.zone_by_name(name).await
    }
    async fn list_zones(&self, account: &AccountId, page: PageRequest) -> Result<Page<Zone>> {
        self.read()?;
        self.inner.list_zones(account, page).await
    }
    async fn update_zone(&self, zone: &Zone) -> Result<Zone> {
        self.write()?;
        self.inner.update_zone(zone).await
    }
    async fn delete_zone(&self, account: &AccountId, id: &ZoneId) -> Result<()> {
        self.write()?;
        self.inner.delete_zone(account, id).await
    }
}

#[async_trait]
impl CertificateStore for FakeStore {
    async fn create_certificate(
        &self,
        certificate: &Certificate,
        max_certificates: u32,
    ) -> Result<()> {
        self.write()?;
        self.inner
            .create_certificate(certificate, max_certificates)
            .await
    }
    async fn get_certificate(
        &self,
        account: &AccountId,
        id: &CertificateId,
    ) -> Result<Option<Certificate>> {
        self.lookup()?;
        self.inner.get_certificate(account, id).await
    }
    async fn list_certificates(
        &self,
        account: &AccountId,
        page: PageRequest,
    ) -> Result<Page<Certificate>> {
        self.read()?;
        self.inner.list_certificates(account, page).await
    }
    async fn update_certificate(&self, certificate: &Certificate) -> Result<Certificate> {
        self.write()?;
        self.inner.update_certificate(certificate).await
    }
    async fn delete_certificate(&self, account: &AccountId, id: &CertificateId) -> Result<()> {
        self.write()?;
        self.inner.delete_certificate(account, id).await
    }
    async fn due_certificates(
        &self,
        now: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<Certificate>> {
        self.read()?;
        self.inner.due_certificates(now, page).await
    }
    async fn certificates_changed_since(
        &self,
        since: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<Certificate>> {
        self.read()?;
        let page = self.inner.certificates_changed_since(since, page).await?;
        self.feed_items
            .fetch_add(page.items.len(), Ordering::SeqCst);
        Ok(page)
    }
}

#[async_trait]
impl EventLog for FakeStore {
    async fn append_event(&self, event: &CertificateEvent) -> Result<()> {
        self.write()?;
        self.inner.append_event(event).await
    }
    async fn list_events(
        &self,
        certificate: &CertificateId,
        limit: u32,
    ) -> Result<Vec<CertificateEvent>> {
        self.read()?;
        self.inner.list_events(certificate, limit).await
    }
}

#[async_trait]
impl ChallengeStore for FakeStore {
    async fn put_http01(&self, challenge: &Http01Challenge) -> Result<()> {
        self.write()?;
        self.inner.put_http01(challenge).await
    }
    async fn get_http01(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Http01Challenge>> {
        self.read()?;
        self.inner.get_http01(token, now).await
    }
    async fn delete_http01(&self, token: &str) -> Result<()> {
        self.write()?;
        self.inner.delete_http01(token).await
    }
}

#[async_trait]
impl LeaseStore for FakeStore {
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Lease> {
        self.write()?;
        self.inner.acquire_lease(name, owner, ttl, now).await
    }
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Lease> {
        self.write()?;
        self.inner.renew_lease(lease, ttl, now).await
    }
    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        self.write()?;
        self.inner.release_lease(lease).await
    }
}

#[async_trait]
impl TokenBucketStore for FakeStore {
    async fn take_tokens(
        &self,
        name: &str,
        wanted: u32,
        limits: &BucketLimits,
        now: OffsetDateTime,
    ) -> Result<u32> {
        self.write()?;
        self.inner.take_tokens(name, wanted, limits, now).await
    }
    async fn read_token_bucket(&self, name: &str) -> Result<Option<TokenBucket>> {
        self.read()?;
        self.inner.read_token_bucket(name).await
    }
}

/// A vault that counts material reads and fails every call while told to.
pub struct FakeVault {
    inner: Arc<dyn Vault>,
    failing: AtomicBool,
    material_reads: AtomicUsize,
}

impl FakeVault {
    pub fn new(inner: Arc<dyn Vault>) -> Arc<FakeVault> {
        Arc::new(FakeVault {
            inner,
            failing: AtomicBool::new(false),
            material_reads: AtomicUsize::new(0),
        })
    }

    /// Certificate material reads so far.
    pub fn material_reads(&self) -> usize {
        self.material_reads.load(Ordering::SeqCst)
    }

    /// Fails every call from now on (`true`) or forwards again (`false`).
    pub fn fail(&self, failing: bool) {
        self.failing.store(failing, Ordering::SeqCst);
    }

    fn check(&self) -> Result<()> {
        if self.failing.load(Ordering::SeqCst) {
            return Err(Error::vault(std::io::Error::other("fake vault outage")));
        }
        Ok(())
    }
}

#[async_trait]
impl Vault for FakeVault {
    async fn put_material(
        &self,
        certificate: &CertificateId,
        material: &CertificateMaterial,
    ) -> Result<MaterialVersion> {
        self.check()?;
        self.inner.put_material(certificate, material).await
    }
    async fn get_material(
        &self,
        certificate: &CertificateId,
        version: &MaterialVersion,
    ) -> Result<CertificateMaterial> {
        self.material_reads.fetch_add(1, Ordering::SeqCst);
        self.check()?;
        self.inner.get_material(certificate, version).await
    }
    async fn delete_material(&self, certificate: &CertificateId) -> Result<()> {
        self.check()?;
        self.inner.delete_material(certificate).await
    }
    async fn put_acme_account(
        &self,
        directory_url: &str,
        credentials: &SecretString,
    ) -> Result<()> {
        self.check()?;
        self.inner
            .put_acme_account(directory_url, credentials)
            .await
    }
    async fn get_acme_account(&self, directory_url: &str) -> Result<Option<SecretString>> {
        self.check()?;
        self.inner.get_acme_account(directory_url).await
    }
}

//! [`EdgeCache`]: the sites the terminator serves from memory, so that a handshake or a request
//! for a recently used hostname never waits on the store or the vault.
//!
//! A *site* is one hostname's route (its domain record, account and domain id, and origin) and,
//! once loaded, that record's managed certificate. The cache holds the recently used sites
//! only, within a memory budget (`cache_memory_budget`); any other whitelisted name is loaded
//! from the store and the vault on its first handshake (`crate::on_demand`). Nothing is read
//! at start, so start time and memory do not grow with the number of domains.
//!
//! # What stays resident, and why that is enough for tenant safety
//!
//! The rule: a certificate is served for a name only while the name's route belongs to the
//! domain record the certificate was issued for. When a hostname is deleted and claimed again,
//! by another account or the same one, the old record's certificate stops being served the
//! moment the new route or the old record's tombstone arrives through the change feed.
//!
//! - **A certificate and its name's route are one entry.** A certificate is attached to a site
//!   only when the site's route belongs to the certificate's record, so the feed never has to
//!   look anywhere else: a route of another record replaces the site's route and drops its
//!   certificate; a tombstone removes the site. Evicting a site evicts both.
//! - **Names that are not resident need nothing.** Nothing is served for them from memory, so
//!   there is nothing a change could invalidate; the feed still lifts refusals of the negative
//!   cache for them (`crate::refresh`). Their first handshake reads the record holding the
//!   name now (the store's hostname lookup is strongly consistent) and its certificate.
//! - **Two short memories close the race between such a read and the feed.** A load reads the
//!   store, then inserts; the feed may apply a change in between, while the site is not
//!   resident yet. So the cache remembers the records deleted in the last
//!   [`DELETED_MEMORY`] (a load of one of them is refused, whenever it read) and the routes the
//!   feed applied in the last [`RECENT_ROUTE_MEMORY`] (a load that read an older version of the
//!   same record gets the newer route). Both grow with the number of changes, not with the
//!   number of domains or with traffic. Once inserted, a site is kept current by the feed.
//!
//! # Eviction
//!
//! Sampled least-recently-used (as Redis does it): the cache counts inserts (its *tick*), and
//! every use of a site (a handshake choosing its certificate, a request reading its route)
//! stamps the site with the current tick: an atomic load, and a store only when the tick moved,
//! under the read lock, so hot names cost no more than a hash lookup. When an insert takes the
//! cache over its budget, the [`EVICTION_SAMPLE`] sites after a hand are compared and the
//! least recently used goes; the hand moves on. A name used since the last few inserts is
//! therefore never evicted while older ones are in the sample, and a hot name stays held as
//! long as the names in use fit the budget. (One flag per site, as in CLOCK, is not enough: a
//! burst of new names, each used once by its own handshake, sets every flag, and the hand then
//! evicts whatever it starts on, hot or not.) Sizes are estimates of what each site holds (chain DER,
//! parsed key, strings, map slots), calibrated against resident memory in the many-certificates
//! benchmark.
//!
//! Only background tasks (the refresher, on-demand loads) write here; they replace a
//! certificate only with a complete, parsed one of the same or a newer store version, so a
//! failed read elsewhere leaves the last good certificate in place.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, PoisonError, RwLock, RwLockReadGuard, RwLockWriteGuard};
use std::time::{Duration, Instant};

use edgecert_core::model::{Certificate, CertificateKind, DeletedDomain, Domain};
use edgecert_core::{AccountId, CertificateId, DomainId};
use rustls::SignatureAlgorithm;
use rustls::sign::CertifiedKey;
use url::Url;

/// Lower-case, without a trailing dot: how names are keyed here.
pub(crate) fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// [`normalize_name`] without an allocation when the name is already normal, as server
/// names mostly are (the handshake path).
fn normalized(name: &str) -> Cow<'_, str> {
    if name.ends_with('.') || name.bytes().any(|byte| byte.is_ascii_uppercase()) {
        Cow::Owned(normalize_name(name))
    } else {
        Cow::Borrowed(name)
    }
}

/// How long a deleted domain record is remembered: a read of it that started before the
/// deletion and ends after its tombstone was applied must not bring its route back.
pub(crate) const DELETED_MEMORY: Duration = Duration::from_secs(600);

/// How long a route the feed applied to a name that was not resident is remembered: a load
/// that read an older version of the same record before the change, and inserts after it,
/// gets this route instead. Covers a store read, retries included.
pub(crate) const RECENT_ROUTE_MEMORY: Duration = Duration::from_secs(120);

/// Sites compared to choose one to evict: enough that the least recently used of them is
/// among the least recently used of all.
const EVICTION_SAMPLE: usize = 16;

/// Estimated bytes of a site besides its strings and certificate: the slot, its index entry,
/// the route, the origin's parsed `Url` and the allocator's rounding.
const SITE_OVERHEAD: usize = 448;
/// Estimated bytes of a served certificate besides its chain and key: the `CertifiedKey`, its
/// `Arc`, the chain's vector and the ids.
const CERTIFICATE_OVERHEAD: usize = 320;

/// The domain record a route or a certificate belongs to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Owner {
    /// The account.
    pub(crate) account_id: AccountId,
    /// The domain record.
    pub(crate) domain_id: DomainId,
}

/// Where a hostname's requests go.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// The domain record holding the hostname.
    pub(crate) owner: Owner,
    /// The origin URL as stored; `None` when it does not parse (answered 502).
    pub(crate) origin: Option<Arc<Url>>,
    /// The domain's version, to keep only the newest of two reads.
    pub(crate) version: u64,
}

impl Route {
    fn from_domain(domain: &Domain) -> Route {
        let origin = Url::parse(domain.origin_url.trim())
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
            .map(Arc::new);
        Route {
            owner: Owner {
                account_id: domain.account_id.clone(),
                domain_id: domain.id.clone(),
            },
            origin,
            version: domain.version,
        }
    }

    fn bytes(&self) -> usize {
        self.owner.account_id.as_str().len()
            + self.owner.domain_id.as_str().len()
            + self.origin.as_ref().map_or(0, |url| url.as_str().len())
    }
}

/// What [`EdgeCache::insert_route`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteChange {
    /// The hostname had no route: just whitelisted, re-claimed after a deletion, or first seen.
    New,
    /// Another record now holds the hostname (a re-claim), or this record has a newer version.
    Updated,
    /// Nothing new: the same or an older read of the held record, a deleted record, or (from
    /// the feed) a hostname that is not resident.
    Unchanged,
}

/// Where a route comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// The change feed: applied to resident sites only, and remembered for a while.
    Feed,
    /// A read of one record (a handshake's load): inserted.
    Load,
}

/// A certificate being served for a site.
#[derive(Debug, Clone)]
struct Served {
    id: CertificateId,
    /// The certificate item's store version, so an older read never replaces a newer one.
    item_version: u64,
    /// The vault version its key and chain came from.
    material_version: String,
    key: Arc<CertifiedKey>,
}

impl Served {
    fn bytes(&self) -> usize {
        let chain: usize = self.key.cert.iter().map(|der| der.len()).sum();
        let key = match self.key.key.algorithm() {
            // aws-lc's parsed key: the EC_KEY with its group and public point.
            SignatureAlgorithm::ECDSA => 640,
            // n, e, d, p, q, the CRT values and Montgomery contexts (RSA-2048).
            SignatureAlgorithm::RSA => 3072,
            _ => 512,
        };
        CERTIFICATE_OVERHEAD
            + chain
            + key
            + self.key.ocsp.as_ref().map_or(0, Vec::len)
            + self.id.as_str().len()
            + self.material_version.len()
    }
}

/// One hostname's route and, once loaded, its certificate.
#[derive(Debug)]
struct Site {
    name: Box<str>,
    route: Route,
    certificate: Option<Served>,
    /// The cache's tick at its last use (or its insert).
    last_used: AtomicU64,
    /// Estimated bytes held.
    bytes: usize,
}

impl Site {
    fn estimate(&self) -> usize {
        SITE_OVERHEAD
            + 2 * self.name.len()
            + self.route.bytes()
            + self.certificate.as_ref().map_or(0, Served::bytes)
    }

    fn touch(&self, tick: u64) {
        // A load first: hot names are mostly stamped already, and a plain load keeps the cache
        // line shared between the cores.
        if self.last_used.load(Ordering::Relaxed) != tick {
            self.last_used.store(tick, Ordering::Relaxed);
        }
    }
}

#[derive(Debug, Default)]
struct CacheState {
    /// Hostname -> its slot.
    index: HashMap<Box<str>, usize>,
    slots: Vec<Option<Site>>,
    /// Empty slots, reused first.
    free: Vec<usize>,
    /// The eviction hand: the first slot of the next sample.
    hand: usize,
    /// Inserts so far: the clock of `Site::last_used`.
    tick: AtomicU64,
    /// Estimated bytes of every site held.
    bytes: usize,
    /// Sites holding a certificate.
    certificates: usize,
    /// Domain records recently deleted, and when their tombstone was applied.
    deleted: HashMap<DomainId, Instant>,
    /// Routes the feed applied lately to names, resident or not, and when.
    recent: HashMap<String, (Route, Instant)>,
}

impl CacheState {
    fn site(&self, name: &str) -> Option<&Site> {
        let slot = *self.index.get(name)?;
        self.slots.get(slot)?.as_ref()
    }

    fn slot_of(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    fn site_mut(&mut self, slot: usize) -> Option<&mut Site> {
        self.slots.get_mut(slot)?.as_mut()
    }

    /// Re-estimates a site after a change, keeping the totals right.
    fn resize(&mut self, slot: usize) {
        let Some(site) = self.site_mut(slot) else {
            return;
        };
        let (before, after) = (site.bytes, site.estimate());
        site.bytes = after;
        self.bytes = self.bytes - before + after;
    }

    fn add(&mut self, name: &str, route: Route) -> usize {
        let mut site = Site {
            name: name.into(),
            route,
            certificate: None,
            // The newest: the handshake that loaded it uses it next.
            last_used: AtomicU64::new(self.tick.fetch_add(1, Ordering::Relaxed) + 1),
            bytes: 0,
        };
        site.bytes = site.estimate();
        self.bytes += site.bytes;
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(site);
                slot
            }
            None => {
                self.slots.push(Some(site));
                self.slots.len() - 1
            }
        };
        self.index.insert(name.into(), slot);
        slot
    }

    fn remove(&mut self, slot: usize) -> Option<Site> {
        let site = self.slots.get_mut(slot)?.take()?;
        self.index.remove(&site.name);
        self.bytes -= site.bytes;
        if site.certificate.is_some() {
            self.certificates -= 1;
        }
        self.free.push(slot);
        Some(site)
    }

    fn drop_certificate(&mut self, slot: usize) {
        let Some(site) = self.site_mut(slot) else {
            return;
        };
        if site.certificate.take().is_some() {
            self.certificates -= 1;
            self.resize(slot);
        }
    }

    /// Evicts the least recently used of each sample after the hand until the total is
    /// within `budget`, sparing `keep` (the site just inserted or grown).
    fn evict(&mut self, budget: usize, keep: usize) -> u64 {
        let mut evicted = 0;
        while self.bytes > budget && !self.slots.is_empty() {
            let mut oldest: Option<(u64, usize)> = None;
            let (mut sampled, mut looked) = (0, 0);
            while sampled < EVICTION_SAMPLE && looked < self.slots.len() {
                looked += 1;
                let slot = self.hand % self.slots.len();
                self.hand = slot + 1;
                let Some(site) = self.slots[slot].as_ref().filter(|_| slot != keep) else {
                    continue;
                };
                sampled += 1;
                let last_used = site.last_used.load(Ordering::Relaxed);
                if oldest.is_none_or(|(tick, _)| last_used < tick) {
                    oldest = Some((last_used, slot));
                }
            }
            let Some((_, slot)) = oldest else {
                // Nothing but `keep`: a site larger than the budget stays alone.
                break;
            };
            self.remove(slot);
            evicted += 1;
        }
        evicted
    }

    fn forget_old(&mut self, now: Instant) {
        self.deleted
            .retain(|_, at| now.duration_since(*at) < DELETED_MEMORY);
        self.recent
            .retain(|_, (_, at)| now.duration_since(*at) < RECENT_ROUTE_MEMORY);
    }
}

/// The sites held in memory, within a budget.
#[derive(Debug)]
pub(crate) struct EdgeCache {
    state: RwLock<CacheState>,
    budget: usize,
    evictions: AtomicU64,
}

impl EdgeCache {
    /// An empty cache holding at most about `budget` bytes of sites.
    pub(crate) fn new(budget: usize) -> EdgeCache {
        EdgeCache {
            state: RwLock::new(CacheState::default()),
            budget,
            evictions: AtomicU64::new(0),
        }
    }

    fn read(&self) -> RwLockReadGuard<'_, CacheState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> RwLockWriteGuard<'_, CacheState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The certificate for a server name, if its site is held with one. The certificate of a
    /// site always belongs to the site's own domain record.
    pub(crate) fn certificate_for(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let name = normalized(server_name);
        let state = self.read();
        let site = state.site(&name)?;
        let served = site.certificate.as_ref()?;
        site.touch(state.tick.load(Ordering::Relaxed));
        Some(served.key.clone())
    }

    /// The route of a hostname, if its site is held.
    pub(crate) fn route(&self, hostname: &str) -> Option<Route> {
        let state = self.read();
        let site = state.site(hostname)?;
        site.touch(state.tick.load(Ordering::Relaxed));
        Some(site.route.clone())
    }

    /// Whether the domain record was deleted lately (its tombstone applied).
    pub(crate) fn was_deleted(&self, domain: &DomainId) -> bool {
        self.read().deleted.contains_key(domain)
    }

    /// The vault version `certificate` is served from, if it is held.
    pub(crate) fn material_version(&self, certificate: &Certificate) -> Option<String> {
        let name = normalize_name(certificate.domain.as_str());
        let state = self.read();
        let served = state.site(&name)?.certificate.as_ref()?;
        (served.id == certificate.id).then(|| served.material_version.clone())
    }

    /// Whether `certificate` belongs to a site held now (its name's route is its record's):
    /// then a change to it must be applied; otherwise it is loaded when its name is next used.
    pub(crate) fn holds_record_of(&self, certificate: &Certificate) -> bool {
        let Some(owner) = owner_of(certificate) else {
            return false;
        };
        let name = normalize_name(certificate.domain.as_str());
        self.read()
            .site(&name)
            .is_some_and(|site| site.route.owner == owner)
    }

    /// Serves `key` (from vault version `material_version`) for `certificate`'s name, if the
    /// name's site is held and its route belongs to the certificate's domain record, and no
    /// newer version of the certificate is served already. Only managed certificates serve at
    /// the edge. Returns whether it is served.
    pub(crate) fn insert_certificate(
        &self,
        certificate: &Certificate,
        material_version: &str,
        key: Arc<CertifiedKey>,
    ) -> bool {
        let Some(owner) = owner_of(certificate) else {
            return false;
        };
        let name = normalize_name(certificate.domain.as_str());
        let mut state = self.write();
        if state.deleted.contains_key(&owner.domain_id) {
            return false;
        }
        let Some(slot) = state.slot_of(&name) else {
            // Evicted or removed since its route was read: the next handshake loads it again.
            return false;
        };
        let Some(site) = state.site_mut(slot) else {
            return false;
        };
        if site.route.owner != owner {
            return false;
        }
        if site.certificate.as_ref().is_some_and(|held| {
            held.id == certificate.id && held.item_version > certificate.version
        }) {
            // An older read of the certificate than the one served.
            return true;
        }
        let added = site.certificate.is_none();
        site.certificate = Some(Served {
            id: certificate.id.clone(),
            item_version: certificate.version,
            material_version: material_version.to_owned(),
            key,
        });
        // Not a use: the refresher replaces certificates of idle sites too.
        if added {
            state.certificates += 1;
        }
        state.resize(slot);
        self.evict(&mut state, slot);
        true
    }

    /// Stops serving `certificate` (its site keeps its route).
    pub(crate) fn remove_certificate(&self, certificate: &Certificate) {
        let name = normalize_name(certificate.domain.as_str());
        let mut state = self.write();
        let Some(slot) = state.slot_of(&name) else {
            return;
        };
        let held = state
            .site(&name)
            .and_then(|site| site.certificate.as_ref())
            .is_some_and(|served| served.id == certificate.id);
        if held {
            state.drop_certificate(slot);
        }
    }

    /// Routes a domain's hostname to its origin after a read of that one record (a handshake's
    /// load): the site is added if it is not held. Unless the record was deleted meanwhile, or
    /// the same or a newer version of it is held; a newer version the feed applied while this
    /// was read wins. A site of another record (a re-claim) is replaced, its certificate
    /// dropped.
    pub(crate) fn insert_route(&self, domain: &Domain) -> RouteChange {
        self.put_route(domain, Source::Load)
    }

    /// Applies a domain change read from the feed: a held site of the hostname follows it (a
    /// newer version of its record, or another record: its certificate dropped); a name not
    /// held is only remembered for a while, for loads under way.
    pub(crate) fn apply_change(&self, domain: &Domain) -> RouteChange {
        self.put_route(domain, Source::Feed)
    }

    fn put_route(&self, domain: &Domain, source: Source) -> RouteChange {
        let hostname = normalize_name(domain.hostname.as_str());
        let mut route = Route::from_domain(domain);
        let mut state = self.write();
        if state.deleted.contains_key(&domain.id) {
            // A read that began before the deletion.
            return RouteChange::Unchanged;
        }
        match source {
            Source::Feed => {
                let newer = match state.recent.get(&hostname) {
                    Some((seen, _)) => seen.owner != route.owner || seen.version < route.version,
                    None => true,
                };
                if newer {
                    state
                        .recent
                        .insert(hostname.clone(), (route.clone(), Instant::now()));
                }
            }
            Source::Load => {
                if let Some((seen, _)) = state.recent.get(&hostname)
                    && seen.owner == route.owner
                    && seen.version > route.version
                {
                    route = seen.clone();
                }
            }
        }
        let Some(slot) = state.slot_of(&hostname) else {
            if source == Source::Feed {
                return RouteChange::Unchanged;
            }
            let slot = state.add(&hostname, route);
            self.evict(&mut state, slot);
            return RouteChange::New;
        };
        let Some(site) = state.site_mut(slot) else {
            return RouteChange::Unchanged;
        };
        if site.route.owner == route.owner {
            if site.route.version >= route.version {
                // An older read (the feed overlaps itself) must not undo a newer one.
                return RouteChange::Unchanged;
            }
            site.route = route;
            state.resize(slot);
            return RouteChange::Updated;
        }
        // Another record holds the name now: the previous record's certificate goes at once.
        site.route = route;
        state.drop_certificate(slot);
        state.resize(slot);
        RouteChange::Updated
    }

    /// Applies a tombstone: the deleted record's site goes (unless another record holds the
    /// hostname by now), and loads of the record under way are refused from now on. Returns
    /// whether a site was removed.
    pub(crate) fn apply_deletion(&self, deleted: &DeletedDomain) -> bool {
        let hostname = normalize_name(deleted.hostname.as_str());
        let owner = Owner {
            account_id: deleted.account_id.clone(),
            domain_id: deleted.id.clone(),
        };
        let mut state = self.write();
        let now = Instant::now();
        state.forget_old(now);
        state.deleted.insert(deleted.id.clone(), now);
        if state
            .recent
            .get(&hostname)
            .is_some_and(|(route, _)| route.owner == owner)
        {
            state.recent.remove(&hostname);
        }
        let Some(slot) = state.slot_of(&hostname) else {
            return false;
        };
        if state
            .site(&hostname)
            .is_some_and(|site| site.route.owner == owner)
        {
            state.remove(slot);
            true
        } else {
            false
        }
    }

    /// Forgets the short memories older than their bounds (the refresher calls it every
    /// pass, so they stay bounded when no tombstone comes).
    pub(crate) fn forget_old(&self) {
        self.write().forget_old(Instant::now());
    }

    /// Drops every site: after a gap in the feed longer than the store keeps tombstones, no
    /// held site can be vouched for. Names are loaded again on their next handshake.
    pub(crate) fn clear(&self) -> usize {
        let mut state = self.write();
        let held = state.index.len();
        let deleted = std::mem::take(&mut state.deleted);
        *state = CacheState {
            deleted,
            ..CacheState::default()
        };
        held
    }

    fn evict(&self, state: &mut CacheState, keep: usize) {
        if state.bytes <= self.budget {
            return;
        }
        let evicted = state.evict(self.budget, keep);
        if evicted > 0 {
            self.evictions.fetch_add(evicted, Ordering::Relaxed);
        }
    }

    /// Certificates and sites held.
    pub(crate) fn sizes(&self) -> (usize, usize) {
        let state = self.read();
        (state.certificates, state.index.len())
    }

    /// Estimated bytes held, and the budget.
    pub(crate) fn bytes(&self) -> (usize, usize) {
        (self.read().bytes, self.budget)
    }

    /// Sites evicted so far to stay within the budget.
    pub(crate) fn evictions(&self) -> u64 {
        self.evictions.load(Ordering::Relaxed)
    }
}

/// The domain record a managed certificate belongs to; `None` for other kinds.
fn owner_of(certificate: &Certificate) -> Option<Owner> {
    let CertificateKind::Managed { domain_id } = &certificate.kind else {
        return None;
    };
    Some(Owner {
        account_id: certificate.account_id.clone(),
        domain_id: domain_id.clone(),
    })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use edgecert_core::model::{CertificateStatus, ProvisioningStep};
    use edgecert_core::{AccountId, Hostname};
    use rustls::crypto::aws_lc_rs::default_provider;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};
    use time::OffsetDateTime;

    use super::*;

    const UNLIMITED: usize = usize::MAX;

    fn key(name: &str) -> Arc<CertifiedKey> {
        let generated = rcgen::generate_simple_self_signed(vec![name.to_owned()]).unwrap();
        let der = PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(
            generated.signing_key.serialize_der(),
        ));
        Arc::new(
            CertifiedKey::from_der(vec![generated.cert.der().clone()], der, &default_provider())
                .unwrap(),
        )
    }

    fn domain(hostname: &str) -> Domain {
        let mut domain = Domain::whitelisted(
            AccountId::generate(),
            Hostname::parse_domain(hostname).unwrap(),
            "https://origin.example.net".to_owned(),
            false,
            OffsetDateTime::now_utc(),
        );
        domain.provisioning_step = ProvisioningStep::Active;
        domain
    }

    /// The managed certificate of `domain`.
    fn certificate(domain: &Domain) -> Certificate {
        let mut certificate = Certificate::managed(domain, OffsetDateTime::now_utc());
        certificate.status = CertificateStatus::Issued;
        certificate.next_attempt_at = None;
        certificate.material_version = Some("v1".to_owned());
        certificate
    }

    fn served(cache: &EdgeCache, name: &str) -> Option<*const CertifiedKey> {
        cache.certificate_for(name).map(|key| Arc::as_ptr(&key))
    }

    /// A site for `domain` with its certificate, as a handshake's load leaves it.
    fn loaded(cache: &EdgeCache, domain: &Domain) -> Arc<CertifiedKey> {
        let key = key(domain.hostname.as_str());
        cache.insert_route(domain);
        assert!(cache.insert_certificate(&certificate(domain), "v1", key.clone()));
        key
    }

    #[test]
    fn a_certificate_is_served_only_with_its_own_domains_route() {
        let cache = EdgeCache::new(UNLIMITED);
        let shop = domain("shop.example.com");
        let shop_key = key("shop.example.com");
        assert!(
            !cache.insert_certificate(&certificate(&shop), "v1", shop_key.clone()),
            "no route yet"
        );
        assert_eq!(served(&cache, "shop.example.com"), None);

        assert_eq!(cache.insert_route(&shop), RouteChange::New);
        assert!(cache.insert_certificate(&certificate(&shop), "v1", shop_key.clone()));
        assert_eq!(
            served(&cache, "Shop.Example.com."),
            Some(Arc::as_ptr(&shop_key))
        );
        assert_eq!(cache.insert_route(&shop), RouteChange::Unchanged);
        let mut newer = shop.clone();
        newer.version = 2;
        assert_eq!(cache.insert_route(&newer), RouteChange::Updated);
        assert_eq!(
            cache.insert_route(&shop),
            RouteChange::Unchanged,
            "older read"
        );
        // Another record's certificate for the same name is never attached.
        let other = domain("shop.example.com");
        assert!(!cache.insert_certificate(&certificate(&other), "v1", key("shop.example.com")));
        assert_eq!(
            served(&cache, "shop.example.com"),
            Some(Arc::as_ptr(&shop_key))
        );
    }

    #[test]
    fn a_reclaimed_hostname_never_serves_the_previous_owners_certificate() {
        let cache = EdgeCache::new(UNLIMITED);
        let first = domain("shop.example.com");
        loaded(&cache, &first);
        assert!(served(&cache, "shop.example.com").is_some());

        // Another account claims the name: its route arrives through the feed before any
        // tombstone.
        let reclaim = domain("shop.example.com");
        assert_eq!(cache.apply_change(&reclaim), RouteChange::Updated);
        assert_eq!(served(&cache, "shop.example.com"), None);
        assert_eq!(cache.sizes(), (0, 1), "the previous certificate is dropped");
        let route = cache.route("shop.example.com").unwrap();
        assert_eq!(route.owner.domain_id, reclaim.id);

        // The old record's tombstone, late, leaves the new claim alone; the new record's own
        // certificate is served.
        assert!(!cache.apply_deletion(&DeletedDomain::of(&first, OffsetDateTime::now_utc())));
        let own = key("shop.example.com");
        assert!(cache.insert_certificate(&certificate(&reclaim), "v1", own.clone()));
        assert_eq!(served(&cache, "shop.example.com"), Some(Arc::as_ptr(&own)));
        // A stale read of the deleted record changes nothing.
        assert_eq!(cache.insert_route(&first), RouteChange::Unchanged);
        assert!(!cache.insert_certificate(&certificate(&first), "v1", key("shop.example.com")));
        assert_eq!(served(&cache, "shop.example.com"), Some(Arc::as_ptr(&own)));
    }

    #[test]
    fn a_tombstone_removes_the_site() {
        let cache = EdgeCache::new(UNLIMITED);
        let shop = domain("shop.example.com");
        loaded(&cache, &shop);
        assert!(cache.apply_deletion(&DeletedDomain::of(&shop, OffsetDateTime::now_utc())));
        assert_eq!(served(&cache, "shop.example.com"), None);
        assert!(cache.route("shop.example.com").is_none());
        assert_eq!(cache.sizes(), (0, 0));
        assert_eq!(cache.bytes().0, 0);
        assert!(cache.was_deleted(&shop.id));
    }

    #[test]
    fn the_feed_leaves_names_not_held_alone_but_a_load_never_goes_back_past_it() {
        let cache = EdgeCache::new(UNLIMITED);
        let shop = domain("shop.example.com");
        // A handshake's load reads version 1; meanwhile the origin changes (version 2) and the
        // feed applies it while the name is not held.
        let mut changed = shop.clone();
        changed.version = 2;
        changed.origin_url = "https://new-origin.example.net".to_owned();
        assert_eq!(cache.apply_change(&changed), RouteChange::Unchanged);
        assert_eq!(cache.sizes(), (0, 0), "the feed loads nothing");

        // THEN the load's insert, though it read version 1, routes to version 2
        assert_eq!(cache.insert_route(&shop), RouteChange::New);
        let route = cache.route("shop.example.com").unwrap();
        assert_eq!(route.version, 2);
        assert_eq!(
            route.origin.unwrap().as_str(),
            "https://new-origin.example.net/"
        );

        // A load of a record whose tombstone was applied is refused, route and certificate.
        let gone = domain("gone.example.com");
        assert!(!cache.apply_deletion(&DeletedDomain::of(&gone, OffsetDateTime::now_utc())));
        assert_eq!(cache.insert_route(&gone), RouteChange::Unchanged);
        assert!(!cache.insert_certificate(&certificate(&gone), "v1", key("gone.example.com")));
        assert!(cache.route("gone.example.com").is_none());
    }

    #[test]
    fn an_older_read_of_a_certificate_never_replaces_a_newer_one() {
        let cache = EdgeCache::new(UNLIMITED);
        let shop = domain("shop.example.com");
        cache.insert_route(&shop);
        let mut renewed = certificate(&shop);
        renewed.version = 3;
        renewed.material_version = Some("v2".to_owned());
        let new_key = key("shop.example.com");
        assert!(cache.insert_certificate(&renewed, "v2", new_key.clone()));
        // A load that read version 1 before the renewal finishes after it.
        assert!(cache.insert_certificate(&certificate(&shop), "v1", key("shop.example.com")));
        assert_eq!(
            served(&cache, "shop.example.com"),
            Some(Arc::as_ptr(&new_key))
        );
        assert_eq!(cache.material_version(&renewed).as_deref(), Some("v2"));

        cache.remove_certificate(&renewed);
        assert!(cache.certificate_for("shop.example.com").is_none());
        assert!(cache.route("shop.example.com").is_some(), "the route stays");
        assert_eq!(cache.sizes(), (0, 1));
    }

    #[test]
    fn the_budget_evicts_unused_sites_first_and_never_a_hot_one() {
        let probe = EdgeCache::new(UNLIMITED);
        loaded(&probe, &domain("probe.example.com"));
        let one_site = probe.bytes().0;
        // Room for about ten sites.
        let cache = EdgeCache::new(one_site * 10);
        let hot = domain("hot.example.com");
        let hot_key = loaded(&cache, &hot);
        for n in 0..100 {
            let cold = domain(&format!("cold-{n}.example.com"));
            loaded(&cache, &cold);
            // Its own handshake uses it once: every site held has been used lately, the case
            // one flag per site (CLOCK) gets wrong.
            assert!(served(&cache, cold.hostname.as_str()).is_some());
            // The hot name is used between every two new names.
            assert_eq!(
                served(&cache, "hot.example.com"),
                Some(Arc::as_ptr(&hot_key)),
                "the hot name was evicted after {n} new names"
            );
            let (bytes, budget) = cache.bytes();
            assert!(bytes <= budget, "{bytes} bytes over the budget {budget}");
        }
        let (certificates, sites) = cache.sizes();
        assert!((8..=10).contains(&sites), "{sites} sites held");
        assert_eq!(certificates, sites);
        assert!(cache.evictions() >= 90);
        // The most recent name is held; the oldest cold ones are gone.
        assert!(served(&cache, "cold-99.example.com").is_some());
        assert!(cache.route("cold-0.example.com").is_none());
    }

    #[test]
    fn clearing_keeps_the_memory_of_deletions() {
        let cache = EdgeCache::new(UNLIMITED);
        let shop = domain("shop.example.com");
        loaded(&cache, &shop);
        let gone = domain("gone.example.com");
        cache.apply_deletion(&DeletedDomain::of(&gone, OffsetDateTime::now_utc()));
        assert_eq!(cache.clear(), 1);
        assert_eq!(cache.sizes(), (0, 0));
        assert_eq!(cache.bytes().0, 0);
        assert!(cache.was_deleted(&gone.id));
    }
}

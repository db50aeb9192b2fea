//! [`EdgeCache`]: what the terminator serves from memory — certificates by server name (exact
//! name, then the wildcard one label up) and routes (hostname -> origin) — so a handshake or a
//! request for a known hostname never waits on the store or the vault.
//!
//! A certificate is served for a name only while the name's route belongs to the domain
//! record (account and domain id) the certificate was issued for. When a hostname is deleted
//! and claimed again, by another account or the same one, the old record's certificate stops
//! being served the moment the new route (or the tombstone) arrives, even before anything
//! removes it; until the new record has its own certificate, the name is not in the cache and
//! goes through on-demand issuance.
//!
//! Only background tasks (the refresher, on-demand issuance) write here; they replace an entry
//! only with a complete, parsed one, so a failed read elsewhere leaves the last good
//! certificate in place.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::{Duration, Instant};

use edgecert_core::model::{Certificate, CertificateKind, DeletedDomain, Domain};
use edgecert_core::{AccountId, CertificateId, DomainId};
use rustls::sign::CertifiedKey;
use url::Url;

/// Lower-case, without a trailing dot: how names are keyed here.
pub(crate) fn normalize_name(name: &str) -> String {
    name.trim_end_matches('.').to_ascii_lowercase()
}

/// The wildcard name covering `name` (`a.b.example.com` -> `*.b.example.com`).
fn wildcard_of(name: &str) -> Option<String> {
    let (_, parent) = name.split_once('.')?;
    parent.contains('.').then(|| format!("*.{parent}"))
}

/// How long a deleted domain record is remembered: a read of it that started before the
/// deletion and ends after its tombstone was applied must not bring its route back.
const DELETED_MEMORY: Duration = Duration::from_secs(600);

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
}

/// What [`EdgeCache::insert_route`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RouteChange {
    /// The hostname had no route: just whitelisted, re-claimed after a deletion, or first seen.
    New,
    /// Another record now holds the hostname (a re-claim), or this record has a newer version.
    Updated,
    /// Nothing new: the same or an older read of the held record, or a deleted record.
    Unchanged,
}

/// A certificate being served.
#[derive(Debug, Clone)]
struct CertificateEntry {
    /// Names it is served for (normalised).
    names: Vec<String>,
    /// The vault version its key and chain came from.
    material_version: String,
    key: Arc<CertifiedKey>,
}

/// Which certificate serves a name, and for which domain record.
#[derive(Debug, Clone)]
struct NameEntry {
    certificate: CertificateId,
    owner: Owner,
    key: Arc<CertifiedKey>,
}

#[derive(Debug, Default)]
struct CacheState {
    /// Server name (or `*.parent`) -> which certificate serves it.
    names: HashMap<String, NameEntry>,
    certificates: HashMap<CertificateId, CertificateEntry>,
    routes: HashMap<String, Route>,
    /// Domain records recently deleted, and when their tombstone was applied.
    deleted: HashMap<DomainId, Instant>,
}

impl CacheState {
    /// Whether `owner` holds `name`'s route now.
    fn holds(&self, name: &str, owner: &Owner) -> bool {
        self.routes
            .get(name)
            .is_some_and(|route| route.owner == *owner)
    }
}

/// Certificates and routes held in memory.
#[derive(Debug, Default)]
pub(crate) struct EdgeCache {
    state: RwLock<CacheState>,
}

impl EdgeCache {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, CacheState> {
        self.state.read().unwrap_or_else(PoisonError::into_inner)
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, CacheState> {
        self.state.write().unwrap_or_else(PoisonError::into_inner)
    }

    /// The certificate for a server name: the exact name, else the wildcard one label up;
    /// either only while the name's route belongs to the certificate's domain record.
    pub(crate) fn certificate_for(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let name = normalize_name(server_name);
        let state = self.read();
        let bound = |entry: &NameEntry| state.holds(&name, &entry.owner);
        if let Some(entry) = state.names.get(&name).filter(|entry| bound(entry)) {
            return Some(entry.key.clone());
        }
        let wildcard = wildcard_of(&name)?;
        state
            .names
            .get(&wildcard)
            .filter(|entry| bound(entry))
            .map(|entry| entry.key.clone())
    }

    /// The vault version a certificate is served from, if it is held.
    pub(crate) fn material_version(&self, id: &CertificateId) -> Option<String> {
        self.read()
            .certificates
            .get(id)
            .map(|entry| entry.material_version.clone())
    }

    /// Serves `key` (from vault version `material_version`) for every name of `certificate`,
    /// replacing what that certificate served before, for as long as the names' routes belong
    /// to its domain. Only managed certificates serve at the edge; others are ignored.
    pub(crate) fn insert_certificate(
        &self,
        certificate: &Certificate,
        material_version: &str,
        key: Arc<CertifiedKey>,
    ) {
        let CertificateKind::Managed { domain_id } = &certificate.kind else {
            return;
        };
        let owner = Owner {
            account_id: certificate.account_id.clone(),
            domain_id: domain_id.clone(),
        };
        let names: Vec<String> = certificate
            .names()
            .map(|name| normalize_name(name.as_str()))
            .collect();
        let mut state = self.write();
        if state.deleted.contains_key(domain_id) {
            return;
        }
        remove_certificate_locked(&mut state, &certificate.id);
        for name in &names {
            state.names.insert(
                name.clone(),
                NameEntry {
                    certificate: certificate.id.clone(),
                    owner: owner.clone(),
                    key: key.clone(),
                },
            );
        }
        state.certificates.insert(
            certificate.id.clone(),
            CertificateEntry {
                names,
                material_version: material_version.to_owned(),
                key,
            },
        );
    }

    /// Stops serving a certificate.
    pub(crate) fn remove_certificate(&self, id: &CertificateId) {
        remove_certificate_locked(&mut self.write(), id);
    }

    /// The route of a hostname.
    pub(crate) fn route(&self, hostname: &str) -> Option<Route> {
        self.read().routes.get(hostname).cloned()
    }

    /// Routes a domain's hostname to its origin, unless the same or a newer version of that
    /// record is held, or the record was deleted. A route of another record (a re-claim)
    /// is replaced, and that record's certificate dropped.
    pub(crate) fn insert_route(&self, domain: &Domain) -> RouteChange {
        let hostname = normalize_name(domain.hostname.as_str());
        let route = Route::from_domain(domain);
        let mut state = self.write();
        if state.deleted.contains_key(&domain.id) {
            // A read that began before the deletion.
            return RouteChange::Unchanged;
        }
        let change = match state.routes.get(&hostname) {
            None => RouteChange::New,
            Some(held) if held.owner == route.owner => {
                if held.version >= route.version {
                    // An older read (the feed overlaps itself) must not undo a newer one.
                    return RouteChange::Unchanged;
                }
                RouteChange::Updated
            }
            Some(held) => {
                let previous = CertificateId::managed_for(&held.owner.domain_id);
                remove_certificate_locked(&mut state, &previous);
                RouteChange::Updated
            }
        };
        state.routes.insert(hostname, route);
        change
    }

    /// Applies a tombstone: the deleted record's route goes (unless another record holds the
    /// hostname by now) and so does its certificate; reads of the record that were under way
    /// are ignored from now on. Returns whether a route was removed.
    pub(crate) fn apply_deletion(&self, deleted: &DeletedDomain) -> bool {
        let hostname = normalize_name(deleted.hostname.as_str());
        let owner = Owner {
            account_id: deleted.account_id.clone(),
            domain_id: deleted.id.clone(),
        };
        let mut state = self.write();
        let now = Instant::now();
        state
            .deleted
            .retain(|_, at| now.duration_since(*at) < DELETED_MEMORY);
        state.deleted.insert(deleted.id.clone(), now);
        remove_certificate_locked(&mut state, &CertificateId::managed_for(&deleted.id));
        if state.holds(&hostname, &owner) {
            state.routes.remove(&hostname);
            true
        } else {
            false
        }
    }

    /// Keeps only the certificates and hostnames listed (after a complete read of the store).
    pub(crate) fn retain(
        &self,
        certificates: &HashSet<CertificateId>,
        hostnames: &HashSet<String>,
    ) -> (usize, usize) {
        let mut state = self.write();
        let stale: Vec<CertificateId> = state
            .certificates
            .keys()
            .filter(|id| !certificates.contains(*id))
            .cloned()
            .collect();
        for id in &stale {
            remove_certificate_locked(&mut state, id);
        }
        let before = state.routes.len();
        state
            .routes
            .retain(|hostname, _| hostnames.contains(hostname));
        (stale.len(), before - state.routes.len())
    }

    /// Certificates and routes held.
    pub(crate) fn sizes(&self) -> (usize, usize) {
        let state = self.read();
        (state.certificates.len(), state.routes.len())
    }
}

fn remove_certificate_locked(state: &mut CacheState, id: &CertificateId) {
    let Some(entry) = state.certificates.remove(id) else {
        return;
    };
    for name in entry.names {
        // Another certificate may have taken the name over meanwhile; leave it.
        if state
            .names
            .get(&name)
            .is_some_and(|entry| entry.certificate == *id)
        {
            state.names.remove(&name);
        }
    }
    drop(entry.key);
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

    /// The managed certificate of `domain` (extra names in `sans`).
    fn certificate(domain: &Domain, sans: &[&str]) -> Certificate {
        let mut certificate = Certificate::managed(domain, OffsetDateTime::now_utc());
        certificate.sans = sans
            .iter()
            .map(|name| Hostname::parse_certificate_name(name).unwrap())
            .collect();
        certificate.status = CertificateStatus::Issued;
        certificate.next_attempt_at = None;
        certificate.material_version = Some("v1".to_owned());
        certificate
    }

    fn served(cache: &EdgeCache, name: &str) -> Option<*const CertifiedKey> {
        cache.certificate_for(name).map(|key| Arc::as_ptr(&key))
    }

    #[test]
    fn a_certificate_is_served_only_with_its_own_domains_route() {
        let cache = EdgeCache::default();
        let shop = domain("shop.example.com");
        let shop_key = key("shop.example.com");
        cache.insert_certificate(&certificate(&shop, &[]), "v1", shop_key.clone());
        assert_eq!(served(&cache, "shop.example.com"), None, "no route yet");

        assert_eq!(cache.insert_route(&shop), RouteChange::New);
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
    }

    #[test]
    fn a_reclaimed_hostname_never_serves_the_previous_owners_certificate() {
        let cache = EdgeCache::default();
        let first = domain("shop.example.com");
        cache.insert_route(&first);
        cache.insert_certificate(&certificate(&first, &[]), "v1", key("shop.example.com"));
        assert!(served(&cache, "shop.example.com").is_some());

        // Another account claims the name: its route arrives before any tombstone.
        let reclaim = domain("shop.example.com");
        assert_eq!(cache.insert_route(&reclaim), RouteChange::Updated);
        assert_eq!(served(&cache, "shop.example.com"), None);
        assert_eq!(cache.sizes(), (0, 1), "the previous certificate is dropped");
        let route = cache.route("shop.example.com").unwrap();
        assert_eq!(route.owner.domain_id, reclaim.id);

        // The old record's tombstone, late, leaves the new claim alone; the new record's own
        // certificate is served.
        assert!(!cache.apply_deletion(&DeletedDomain::of(&first, OffsetDateTime::now_utc())));
        let own = key("shop.example.com");
        cache.insert_certificate(&certificate(&reclaim, &[]), "v1", own.clone());
        assert_eq!(served(&cache, "shop.example.com"), Some(Arc::as_ptr(&own)));
        // A stale read of the deleted record changes nothing.
        assert_eq!(cache.insert_route(&first), RouteChange::Unchanged);
        cache.insert_certificate(&certificate(&first, &[]), "v1", key("shop.example.com"));
        assert_eq!(served(&cache, "shop.example.com"), Some(Arc::as_ptr(&own)));
    }

    #[test]
    fn a_tombstone_removes_the_route_and_the_certificate() {
        let cache = EdgeCache::default();
        let shop = domain("shop.example.com");
        cache.insert_route(&shop);
        cache.insert_certificate(&certificate(&shop, &[]), "v1", key("shop.example.com"));
        assert!(cache.apply_deletion(&DeletedDomain::of(&shop, OffsetDateTime::now_utc())));
        assert_eq!(served(&cache, "shop.example.com"), None);
        assert!(cache.route("shop.example.com").is_none());
        assert_eq!(cache.sizes(), (0, 0));
    }

    #[test]
    fn exact_names_win_over_the_wildcard_one_label_up() {
        let cache = EdgeCache::default();
        let shop = domain("shop.example.com");
        let blog = domain("blog.example.com");
        // A certificate of one domain record naming a wildcard (the cache's rule, though
        // managed certificates name their hostname only).
        let wildcard = certificate(&blog, &["*.example.com"]);
        let wildcard_key = key("*.example.com");
        let exact_key = key("shop.example.com");
        cache.insert_route(&shop);
        cache.insert_route(&blog);
        cache.insert_certificate(&wildcard, "v1", wildcard_key.clone());
        cache.insert_certificate(&certificate(&shop, &[]), "v1", exact_key.clone());

        assert_eq!(
            served(&cache, "shop.example.com"),
            Some(Arc::as_ptr(&exact_key))
        );
        assert_eq!(
            served(&cache, "blog.example.com"),
            Some(Arc::as_ptr(&wildcard_key))
        );
        // A wildcard covers one label only, never the bare parent, and never a name routed to
        // another record.
        assert_eq!(served(&cache, "a.blog.example.com"), None);
        assert_eq!(served(&cache, "example.com"), None);
        let other = domain("other.example.com");
        cache.insert_route(&other);
        assert_eq!(served(&cache, "other.example.com"), None);
    }

    #[test]
    fn replacing_and_removing_a_certificate_updates_every_name() {
        let cache = EdgeCache::default();
        let shop = domain("a.example.com");
        cache.insert_route(&shop);
        let mut first = certificate(&shop, &["b.example.com"]);
        cache.insert_certificate(&first, "v1", key("a.example.com"));
        assert_eq!(cache.sizes(), (1, 1));

        first.sans = vec![];
        cache.insert_certificate(&first, "v2", key("a.example.com"));
        assert_eq!(cache.material_version(&first.id).as_deref(), Some("v2"));
        assert!(served(&cache, "a.example.com").is_some());

        cache.remove_certificate(&first.id);
        assert!(cache.certificate_for("a.example.com").is_none());
        assert_eq!(cache.sizes(), (0, 1));
    }
}

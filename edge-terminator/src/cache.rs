//! [`EdgeCache`]: what the terminator serves from memory — certificates by server name (exact
//! name, then the wildcard one label up) and routes (hostname -> origin) — so a handshake or a
//! request for a known hostname never waits on the store or the vault.
//!
//! Only background tasks (the refresher, on-demand issuance, revalidation) write here; they
//! replace an entry only with a complete, parsed one, so a failed read elsewhere leaves the
//! last good certificate in place.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, PoisonError, RwLock};
use std::time::Instant;

use edgecert_core::model::{Certificate, Domain};
use edgecert_core::{CertificateId, DomainId};
use rustls::sign::CertifiedKey;
use time::OffsetDateTime;
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

/// Where a hostname's requests go.
#[derive(Debug, Clone)]
pub(crate) struct Route {
    /// The domain.
    pub(crate) domain_id: DomainId,
    /// The origin URL as stored; `None` when it does not parse (answered 502).
    pub(crate) origin: Option<Arc<Url>>,
    /// The domain's `updated_at`, to keep only the newest of two reads.
    pub(crate) updated_at: OffsetDateTime,
    /// When the store last confirmed the domain.
    pub(crate) checked_at: Instant,
}

impl Route {
    fn from_domain(domain: &Domain) -> Route {
        let origin = Url::parse(domain.origin_url.trim())
            .ok()
            .filter(|url| matches!(url.scheme(), "http" | "https") && url.host().is_some())
            .map(Arc::new);
        Route {
            domain_id: domain.id.clone(),
            origin,
            updated_at: domain.updated_at,
            checked_at: Instant::now(),
        }
    }
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

#[derive(Debug, Default)]
struct CacheState {
    /// Server name (or `*.parent`) -> which certificate serves it.
    names: HashMap<String, (CertificateId, Arc<CertifiedKey>)>,
    certificates: HashMap<CertificateId, CertificateEntry>,
    routes: HashMap<String, Route>,
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

    /// The certificate for a server name: the exact name, else the wildcard one label up.
    pub(crate) fn certificate_for(&self, server_name: &str) -> Option<Arc<CertifiedKey>> {
        let name = normalize_name(server_name);
        let state = self.read();
        if let Some((_, key)) = state.names.get(&name) {
            return Some(key.clone());
        }
        let wildcard = wildcard_of(&name)?;
        state.names.get(&wildcard).map(|(_, key)| key.clone())
    }

    /// The vault version a certificate is served from, if it is held.
    pub(crate) fn material_version(&self, id: &CertificateId) -> Option<String> {
        self.read()
            .certificates
            .get(id)
            .map(|entry| entry.material_version.clone())
    }

    /// Serves `key` (from vault version `material_version`) for every name of `certificate`,
    /// replacing what that certificate served before.
    pub(crate) fn insert_certificate(
        &self,
        certificate: &Certificate,
        material_version: &str,
        key: Arc<CertifiedKey>,
    ) {
        let names: Vec<String> = certificate
            .names()
            .map(|name| normalize_name(name.as_str()))
            .collect();
        let mut state = self.write();
        remove_certificate_locked(&mut state, &certificate.id);
        for name in &names {
            state
                .names
                .insert(name.clone(), (certificate.id.clone(), key.clone()));
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

    /// Routes a domain's hostname to its origin, unless a newer read is already held. Returns
    /// whether the hostname had no route before (just whitelisted, or seen for the first time).
    pub(crate) fn insert_route(&self, domain: &Domain) -> bool {
        let hostname = normalize_name(domain.hostname.as_str());
        let route = Route::from_domain(domain);
        let mut state = self.write();
        match state.routes.get(&hostname) {
            Some(held)
                if held.domain_id == route.domain_id && held.updated_at > route.updated_at =>
            {
                // An older read (the feed overlaps itself) must not undo a newer one.
                false
            }
            held => {
                let new = held.is_none();
                state.routes.insert(hostname, route);
                new
            }
        }
    }

    /// Marks a route as just confirmed by the store.
    pub(crate) fn confirm_route(&self, hostname: &str) {
        if let Some(route) = self.write().routes.get_mut(hostname) {
            route.checked_at = Instant::now();
        }
    }

    /// Forgets a hostname that is no longer whitelisted: its route and the managed
    /// certificate of the domain that had it.
    pub(crate) fn remove_hostname(&self, hostname: &str) {
        let mut state = self.write();
        if let Some(route) = state.routes.remove(hostname) {
            let managed = CertificateId::managed_for(&route.domain_id);
            remove_certificate_locked(&mut state, &managed);
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
            .is_some_and(|(holder, _)| holder == id)
        {
            state.names.remove(&name);
        }
    }
    drop(entry.key);
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use edgecert_core::model::{CertificateKind, CertificateStatus, KeyType};
    use edgecert_core::{AccountId, Hostname};
    use rustls::crypto::aws_lc_rs::default_provider;
    use rustls::pki_types::{PrivateKeyDer, PrivatePkcs8KeyDer};

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

    fn certificate(primary: &str, sans: &[&str]) -> Certificate {
        let now = OffsetDateTime::now_utc();
        Certificate {
            id: CertificateId::generate(),
            account_id: AccountId::generate(),
            kind: CertificateKind::Managed {
                domain_id: DomainId::generate(),
            },
            domain: Hostname::parse_certificate_name(primary).unwrap(),
            sans: sans
                .iter()
                .map(|name| Hostname::parse_certificate_name(name).unwrap())
                .collect(),
            is_wildcard: primary.starts_with('*'),
            key_type: KeyType::EcdsaP256,
            auto_renew: true,
            status: CertificateStatus::Issued,
            issued_at: None,
            not_before: None,
            expires_at: None,
            next_renewal_at: None,
            next_attempt_at: None,
            consecutive_failures: 0,
            last_error: None,
            order_url: None,
            material_version: Some("v1".to_owned()),
            pending_material_version: None,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    #[test]
    fn exact_names_win_over_the_wildcard_one_label_up() {
        let cache = EdgeCache::default();
        let wildcard = certificate("*.example.com", &[]);
        let exact = certificate("shop.example.com", &[]);
        let wildcard_key = key("*.example.com");
        let exact_key = key("shop.example.com");
        cache.insert_certificate(&wildcard, "v1", wildcard_key.clone());
        cache.insert_certificate(&exact, "v1", exact_key.clone());

        let served = |name| cache.certificate_for(name).map(|k| Arc::as_ptr(&k));
        assert_eq!(served("shop.example.com"), Some(Arc::as_ptr(&exact_key)));
        assert_eq!(served("Shop.Example.com."), Some(Arc::as_ptr(&exact_key)));
        assert_eq!(served("blog.example.com"), Some(Arc::as_ptr(&wildcard_key)));
        // A wildcard covers one label only, and never the bare parent.
        assert_eq!(served("a.blog.example.com"), None);
        assert_eq!(served("example.com"), None);
    }

    #[test]
    fn replacing_and_removing_a_certificate_updates_every_name() {
        let cache = EdgeCache::default();
        let mut first = certificate("a.example.com", &["b.example.com"]);
        cache.insert_certificate(&first, "v1", key("a.example.com"));
        assert!(cache.certificate_for("b.example.com").is_some());

        first.sans = vec![];
        cache.insert_certificate(&first, "v2", key("a.example.com"));
        assert!(cache.certificate_for("b.example.com").is_none());
        assert_eq!(cache.material_version(&first.id).as_deref(), Some("v2"));

        cache.remove_certificate(&first.id);
        assert!(cache.certificate_for("a.example.com").is_none());
        assert_eq!(cache.sizes(), (0, 0));
    }
}

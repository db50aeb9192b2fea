//! [`Shared`]: what every task of one terminator reads — the core's services, the
//! configuration, the cache and the metrics — plus the operation several of them need:
//! loading a certificate's material into the cache.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use edgecert_core::model::{Certificate, Servable};
use edgecert_core::ports::MaterialVersion;
use edgecert_core::usecases::Services;

use crate::cache::EdgeCache;
use crate::config::TerminatorConfig;
use crate::limits::NegativeCache;
use crate::metrics::{CacheGauges, Metrics};
use crate::tls::certified_key;

/// State shared by the listeners, the refresher and on-demand issuance.
pub(crate) struct Shared {
    /// Store, vault, resolver, clock, origin policy.
    pub(crate) services: Services,
    /// Tunables.
    pub(crate) config: TerminatorConfig,
    /// Certificates and routes.
    pub(crate) cache: Arc<EdgeCache>,
    /// Counters.
    pub(crate) metrics: Arc<Metrics>,
    /// Names recently refused.
    pub(crate) negative: NegativeCache,
    /// Whether the first read of the change feeds finished.
    pub(crate) loaded: AtomicBool,
    /// When the refresher last read the store successfully.
    last_store_read: Mutex<Option<Instant>>,
}

/// How loading a certificate ended.
#[derive(Debug)]
pub(crate) enum Loaded {
    /// The vault version it names is now served (or already was).
    Served,
    /// It was dropped from the cache, or has nothing to serve.
    NotServed,
}

impl Shared {
    pub(crate) fn new(services: Services, config: TerminatorConfig) -> Shared {
        let negative = NegativeCache::new(config.negative_cache_capacity);
        let cache = Arc::new(EdgeCache::new(config.cache_memory_budget));
        Shared {
            services,
            config,
            cache,
            metrics: Arc::new(Metrics::default()),
            negative,
            loaded: AtomicBool::new(false),
            last_store_read: Mutex::new(None),
        }
    }

    /// Notes that the refresher just read the store.
    pub(crate) fn store_read_succeeded(&self) {
        *self
            .last_store_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
    }

    /// Why this terminator should not take new traffic, if it should not: the first read of
    /// the change feeds has not finished, or the store has not been read for longer than
    /// `unhealthy_after_store_failures`. Serving what it holds goes on either way.
    pub(crate) fn unhealthy(&self) -> Option<String> {
        if !self.loaded.load(Ordering::Relaxed) {
            return Some(
                "the first load from the store's change feeds has not finished".to_owned(),
            );
        }
        let last = *self
            .last_store_read
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let since = last.map(|at| at.elapsed())?;
        (since > self.config.unhealthy_after_store_failures).then(|| {
            format!(
                "the store has not been read for {} s; serving the certificates already loaded",
                since.as_secs()
            )
        })
    }

    /// Gauges for `/metrics`.
    pub(crate) fn gauges(&self) -> CacheGauges {
        let (certificates, routes) = self.cache.sizes();
        let (bytes, budget) = self.cache.bytes();
        CacheGauges {
            certificates,
            routes,
            loaded: self.loaded.load(Ordering::Relaxed),
            bytes,
            budget,
            evictions: self.cache.evictions(),
        }
    }

    /// Makes the cache serve what `certificate` says: loads its material from the vault unless
    /// that version is already served, or drops it. On any failure the cache keeps what it had
    /// (the last good certificate) and the error is returned for a later retry.
    pub(crate) async fn load_certificate(
        &self,
        certificate: &Certificate,
    ) -> Result<Loaded, String> {
        match certificate.servable(self.services.clock.now()) {
            Servable::Ignore => Ok(Loaded::NotServed),
            Servable::Drop => {
                self.cache.remove_certificate(certificate);
                Ok(Loaded::NotServed)
            }
            Servable::Serve(version) => {
                if self.cache.material_version(certificate).as_deref() == Some(&version) {
                    return Ok(Loaded::Served);
                }
                let material = self
                    .services
                    .vault
                    .get_material(&certificate.id, &MaterialVersion(version.clone()))
                    .await
                    .map_err(|error| format!("reading the vault: {error}"))?;
                let key = certified_key(&material)?;
                // Not held when its site went meanwhile (evicted, deleted, claimed again): the
                // name's next handshake decides.
                if self.cache.insert_certificate(certificate, &version, key) {
                    tracing::info!(
                        certificate = %certificate.id,
                        sni = %certificate.domain,
                        material_version = %version,
                        "certificate loaded"
                    );
                }
                Ok(Loaded::Served)
            }
        }
    }
}

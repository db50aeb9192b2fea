//! The refresher: the background task that fills the cache from the store and the vault and
//! keeps it current.
//!
//! - At start, a full pass reads both change feeds from the beginning, a page at a time, and
//!   loads the vault material of each page's certificates in parallel
//!   (`load_concurrency`) while the next page is fetched. Listeners serve meanwhile: a name not
//!   loaded yet goes through the on-demand path, which reads that one certificate directly.
//! - Then, every `refresh_interval` (a second), it reads only what changed since the previous
//!   pass began (minus `change_overlap` for writers' clock skew and index propagation), and
//!   skips the vault when the served material version did not change. That is O(changes), not
//!   O(certificates), and not O(traffic): no hostname is looked up again because it is used.
//! - Deleted domains come through the domain feed as tombstones: the hostname's route and
//!   certificate go at once when they belong to the deleted record (account and domain id),
//!   and stay when another record has claimed the name since. A route of a new record replaces
//!   the old one and stops its certificate being served ([`EdgeCache`](crate::cache)).
//! - A domain change the negative cache's refusal did not see lifts the refusal, so a name
//!   whitelisted, nudged or issued since is tried again on its next handshake.
//! - Every `full_resync_interval`, and whenever the last pass is older than the store keeps
//!   tombstones, a full pass reads everything again and drops whatever it did not see.
//! - A failed read changes nothing in the cache (the last good certificates stay served); a
//!   certificate whose material could not be read is retried on the next round.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Instant;

use edgecert_core::model::{Certificate, DeletedDomain, DomainChange};
use edgecert_core::ports::{Page, PageRequest};
use edgecert_core::{CertificateId, Error};
use futures::StreamExt as _;
use time::OffsetDateTime;
use tokio::sync::watch;

use crate::cache::{RouteChange, normalize_name};
use crate::metrics::CACHE_REFRESHES;
use crate::shared::Shared;

/// What one read of a feed saw.
struct FeedRead<Id> {
    seen: HashSet<Id>,
    newest: Option<OffsetDateTime>,
}

/// Keeps the cache in step with the store.
pub(crate) struct Refresher {
    shared: Arc<Shared>,
    certificates_since: Option<OffsetDateTime>,
    domains_since: Option<OffsetDateTime>,
    /// Certificates whose material could not be loaded, tried again next round.
    retry: HashMap<CertificateId, Certificate>,
    last_full_pass: Option<Instant>,
}

impl Refresher {
    pub(crate) fn new(shared: Arc<Shared>) -> Refresher {
        Refresher {
            shared,
            certificates_since: None,
            domains_since: None,
            retry: HashMap::new(),
            last_full_pass: None,
        }
    }

    /// Whether the next pass must read everything: the first one, one per
    /// `full_resync_interval`, and any after a gap long enough for the store to have dropped
    /// tombstones this terminator has not read.
    fn needs_full_pass(&self) -> bool {
        let resync_due = self
            .last_full_pass
            .is_none_or(|at| at.elapsed() >= self.shared.config.full_resync_interval);
        let tombstones_may_be_gone = self.domains_since.is_some_and(|since| {
            self.shared.services.clock.now() - since > DeletedDomain::RETENTION / 2
        });
        resync_due || tombstones_may_be_gone
    }

    /// Runs until `shutdown` turns true.
    pub(crate) async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            let full = self.needs_full_pass();
            let started = Instant::now();
            let result = if full {
                self.full_pass().await
            } else {
                self.incremental_pass().await
            };
            let kind = if full { "full" } else { "incremental" };
            match result {
                Ok(()) => {
                    self.shared.store_read_succeeded();
                    self.shared.metrics.count(CACHE_REFRESHES, "outcome", "ok");
                    let (certificates, routes) = self.shared.cache.sizes();
                    tracing::debug!(
                        kind,
                        certificates,
                        routes,
                        elapsed_ms = started.elapsed().as_millis(),
                        "cache refreshed"
                    );
                }
                Err(error) => {
                    self.shared
                        .metrics
                        .count(CACHE_REFRESHES, "outcome", "failed");
                    tracing::warn!(
                        kind,
                        %error,
                        "could not read the store; serving the certificates already loaded"
                    );
                }
            }
            tokio::select! {
                () = tokio::time::sleep(self.shared.config.refresh_interval) => {}
                _ = shutdown.changed() => return,
            }
            if *shutdown.borrow() {
                return;
            }
        }
    }

    /// Reads everything, then forgets what the store no longer has.
    async fn full_pass(&mut self) -> Result<(), Error> {
        let started = Instant::now();
        let pass_start = self.shared.services.clock.now();
        let since = OffsetDateTime::UNIX_EPOCH;
        let certificates = self.read_certificates(since).await?;
        let domains = self.read_domains(since).await?;
        let (dropped_certificates, dropped_routes) =
            self.shared.cache.retain(&certificates.seen, &domains.seen);
        self.certificates_since = Some(
            certificates
                .newest
                .map_or(pass_start, |newest| newest.max(pass_start)),
        );
        self.domains_since = Some(
            domains
                .newest
                .map_or(pass_start, |newest| newest.max(pass_start)),
        );
        self.last_full_pass = Some(Instant::now());
        let first = !self.shared.loaded.swap(true, Ordering::Relaxed);
        let (served, routes) = self.shared.cache.sizes();
        tracing::info!(
            first_load = first,
            certificates = served,
            routes,
            dropped_certificates,
            dropped_routes,
            elapsed_ms = started.elapsed().as_millis(),
            "full cache load finished"
        );
        Ok(())
    }

    /// Reads what changed since the last change seen, and retries failed loads.
    async fn incremental_pass(&mut self) -> Result<(), Error> {
        let overlap = self.shared.config.change_overlap;
        let retry: Vec<Certificate> = self.retry.drain().map(|(_, item)| item).collect();
        if !retry.is_empty() {
            let failed = self.apply_certificates(retry).await;
            self.retry.extend(failed);
        }
        // The next window starts at this pass's start (or the newest change seen, if later)
        // minus the overlap. Anchoring it on the newest change alone would re-read everything
        // changed in the overlap before it on every pass for as long as nothing newer comes
        // (after a bulk import, all of it, forever).
        let now = self.shared.services.clock.now();
        let advance = |since: Option<OffsetDateTime>, newest: Option<OffsetDateTime>| {
            Some(
                [since, newest, Some(now)]
                    .into_iter()
                    .flatten()
                    .fold(now, OffsetDateTime::max),
            )
        };
        let since = self.certificates_since.unwrap_or(now) - overlap;
        let certificates = self.read_certificates(since).await?;
        self.certificates_since = advance(self.certificates_since, certificates.newest);
        let since = self.domains_since.unwrap_or(now) - overlap;
        let domains = self.read_domains(since).await?;
        self.domains_since = advance(self.domains_since, domains.newest);
        Ok(())
    }

    async fn certificates_page(
        &self,
        since: OffsetDateTime,
        cursor: Option<String>,
    ) -> Result<Page<Certificate>, Error> {
        let request = PageRequest {
            cursor,
            limit: self.shared.config.feed_page_size,
        };
        self.shared
            .services
            .store
            .certificates_changed_since(since, request)
            .await
    }

    /// Pages through the certificate feed, loading each page while fetching the next.
    async fn read_certificates(
        &mut self,
        since: OffsetDateTime,
    ) -> Result<FeedRead<CertificateId>, Error> {
        let mut read = FeedRead {
            seen: HashSet::new(),
            newest: None,
        };
        let mut page = Some(self.certificates_page(since, None).await?);
        while let Some(current) = page.take() {
            for certificate in &current.items {
                read.seen.insert(certificate.id.clone());
                read.newest = read.newest.max(Some(certificate.updated_at));
            }
            let next = current.next_cursor.clone();
            let fetch_next = async {
                match next {
                    Some(cursor) => Some(self.certificates_page(since, Some(cursor)).await),
                    None => None,
                }
            };
            let (failed, fetched) =
                tokio::join!(self.apply_certificates(current.items), fetch_next);
            self.retry.extend(failed);
            page = fetched.transpose()?;
        }
        Ok(read)
    }

    /// Applies certificates to the cache, `load_concurrency` vault reads at a time; returns the
    /// ones whose material could not be loaded (the cache keeps their previous version).
    async fn apply_certificates(
        &self,
        certificates: Vec<Certificate>,
    ) -> Vec<(CertificateId, Certificate)> {
        let shared = &self.shared;
        futures::stream::iter(certificates)
            .map(|certificate| async move {
                match shared.load_certificate(&certificate).await {
                    Ok(_) => None,
                    Err(reason) => {
                        tracing::warn!(
                            certificate = %certificate.id,
                            sni = %certificate.domain,
                            reason,
                            "could not load a certificate; keeping the last good one"
                        );
                        Some((certificate.id.clone(), certificate))
                    }
                }
            })
            .buffer_unordered(shared.config.load_concurrency.max(1))
            .filter_map(|failed| async move { failed })
            .collect()
            .await
    }

    /// Pages through the domain feed: routes every hostname it returns, and applies every
    /// tombstone.
    async fn read_domains(&mut self, since: OffsetDateTime) -> Result<FeedRead<String>, Error> {
        let mut read = FeedRead {
            seen: HashSet::new(),
            newest: None,
        };
        let mut cursor = None;
        loop {
            let request = PageRequest {
                cursor,
                limit: self.shared.config.feed_page_size,
            };
            let page = self
                .shared
                .services
                .store
                .domains_changed_since(since, request)
                .await?;
            for change in &page.items {
                let hostname = normalize_name(change.hostname().as_str());
                match change {
                    DomainChange::Changed(domain) => {
                        self.apply_domain(&hostname, domain);
                        read.seen.insert(hostname);
                    }
                    DomainChange::Deleted(deleted) => {
                        if self.shared.cache.apply_deletion(deleted) {
                            tracing::info!(
                                sni = %hostname,
                                domain = %deleted.id,
                                "domain deleted; stopped serving it"
                            );
                        }
                    }
                }
                read.newest = read.newest.max(Some(change.changed_at()));
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => return Ok(read),
            }
        }
    }

    fn apply_domain(&self, hostname: &str, domain: &edgecert_core::model::Domain) {
        let change = self.shared.cache.insert_route(domain);
        if change != RouteChange::Unchanged {
            // A refusal decided on an older version of this domain (or before it existed) no
            // longer holds: the next handshake asks again.
            self.shared.negative.forget_before(hostname, domain.version);
        }
    }
}

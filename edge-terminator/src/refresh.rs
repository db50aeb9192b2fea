//! The refresher: the background task that keeps the cache's sites current from the store's
//! change feeds.
//!
//! - Nothing is loaded at start. The first pass reads the feeds' last `change_overlap` only
//!   (what a writer with a slow clock may still be adding), then the terminator is ready:
//!   start time does not grow with the number of domains or certificates. Names are loaded on
//!   their first handshake (`crate::on_demand`).
//! - Then, every `refresh_interval` (a second), it reads what changed since the previous pass
//!   began (minus `change_overlap` for writers' clock skew and index propagation). That is
//!   O(changes), not O(certificates), and not O(traffic): no hostname is looked up again
//!   because it is used.
//! - Domain changes: the site of a held hostname follows its record, and a route of another
//!   record replaces it and drops its certificate at once; tombstones remove the deleted
//!   record's site ([`EdgeCache`](crate::cache) explains why nothing else needs to be
//!   resident). Every domain change lifts a refusal of the negative cache decided on an older
//!   version of the domain, held or not, so a name whitelisted, nudged or issued since is tried
//!   again on its next handshake.
//! - Certificate changes are applied to held sites only: new material is read from the vault
//!   (skipped when the served version did not change), a revoked or expired certificate is
//!   dropped. Certificates of names not held are left for their next handshake, so the vault
//!   is read for what is used, not for what exists.
//! - A failed read changes nothing in the cache (the last good certificates stay served); a
//!   certificate whose material could not be read is retried on the next round.
//! - After a gap between two reads longer than half the time the store keeps tombstones,
//!   deletions may have been missed: every site is dropped, and names load again on their
//!   next handshake.

use std::collections::HashMap;
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
use crate::metrics::{CACHE_REFRESHES, FEED_CHANGES};
use crate::shared::Shared;

/// What one read of a feed saw.
#[derive(Debug, Default)]
struct FeedRead {
    /// Items read.
    items: u64,
    /// Of those, applied to held sites (routes followed, sites removed, certificates loaded
    /// or dropped).
    applied: u64,
    newest: Option<OffsetDateTime>,
}

/// Keeps the cache in step with the store.
pub(crate) struct Refresher {
    shared: Arc<Shared>,
    certificates_since: Option<OffsetDateTime>,
    domains_since: Option<OffsetDateTime>,
    /// Certificates whose material could not be loaded, tried again next round.
    retry: HashMap<CertificateId, Certificate>,
}

impl Refresher {
    pub(crate) fn new(shared: Arc<Shared>) -> Refresher {
        Refresher {
            shared,
            certificates_since: None,
            domains_since: None,
            retry: HashMap::new(),
        }
    }

    /// Whether the store may have dropped tombstones this terminator has not read.
    fn tombstones_may_be_gone(&self) -> bool {
        self.domains_since.is_some_and(|since| {
            self.shared.services.clock.now() - since > DeletedDomain::RETENTION / 2
        })
    }

    /// Runs until `shutdown` turns true.
    pub(crate) async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        loop {
            if self.tombstones_may_be_gone() {
                let dropped = self.shared.cache.clear();
                self.retry.clear();
                self.certificates_since = None;
                self.domains_since = None;
                tracing::warn!(
                    dropped,
                    "the change feeds were not read for longer than the store keeps tombstones; \
                     dropped every held site, names load again on their next handshake"
                );
            }
            let started = Instant::now();
            match self.pass().await {
                Ok((domains, certificates)) => {
                    self.shared.store_read_succeeded();
                    self.shared.metrics.count(CACHE_REFRESHES, "outcome", "ok");
                    let (held_certificates, sites) = self.shared.cache.sizes();
                    let first = !self.shared.loaded.swap(true, Ordering::Relaxed);
                    if first {
                        tracing::info!(
                            domain_changes = domains.items,
                            certificate_changes = certificates.items,
                            elapsed_ms = started.elapsed().as_millis(),
                            "first read of the change feeds finished; serving"
                        );
                    } else {
                        tracing::debug!(
                            domain_changes = domains.items,
                            domain_changes_applied = domains.applied,
                            certificate_changes = certificates.items,
                            certificate_changes_applied = certificates.applied,
                            certificates = held_certificates,
                            sites,
                            elapsed_ms = started.elapsed().as_millis(),
                            "cache refreshed"
                        );
                    }
                }
                Err(error) => {
                    self.shared
                        .metrics
                        .count(CACHE_REFRESHES, "outcome", "failed");
                    tracing::warn!(
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

    /// Reads what changed since the last change seen (the feeds' last `change_overlap` on the
    /// first pass), and retries failed loads.
    async fn pass(&mut self) -> Result<(FeedRead, FeedRead), Error> {
        self.shared.cache.forget_old();
        let overlap = self.shared.config.change_overlap;
        let retry: Vec<Certificate> = self
            .retry
            .drain()
            .map(|(_, item)| item)
            .filter(|item| self.shared.cache.holds_record_of(item))
            .collect();
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
        // Domains first: a route that changed hands this pass drops its certificate before a
        // certificate of the same pass could be attached to it.
        let since = self.domains_since.unwrap_or(now) - overlap;
        let domains = self.read_domains(since).await?;
        self.domains_since = advance(self.domains_since, domains.newest);
        let since = self.certificates_since.unwrap_or(now) - overlap;
        let certificates = self.read_certificates(since).await?;
        self.certificates_since = advance(self.certificates_since, certificates.newest);
        Ok((domains, certificates))
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

    /// Pages through the certificate feed, applying each page's certificates of held sites
    /// while fetching the next.
    async fn read_certificates(&mut self, since: OffsetDateTime) -> Result<FeedRead, Error> {
        let mut read = FeedRead::default();
        let mut page = Some(self.certificates_page(since, None).await?);
        while let Some(current) = page.take() {
            read.items += current.items.len() as u64;
            let mut held = Vec::new();
            for certificate in current.items {
                read.newest = read.newest.max(Some(certificate.updated_at));
                if self.shared.cache.holds_record_of(&certificate) {
                    held.push(certificate);
                }
            }
            read.applied += held.len() as u64;
            let next = current.next_cursor;
            let fetch_next = async {
                match next {
                    Some(cursor) => Some(self.certificates_page(since, Some(cursor)).await),
                    None => None,
                }
            };
            let (failed, fetched) = tokio::join!(self.apply_certificates(held), fetch_next);
            self.retry.extend(failed);
            page = fetched.transpose()?;
        }
        self.shared
            .metrics
            .add(FEED_CHANGES, "kind", "certificate", read.items);
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

    /// Pages through the domain feed: held sites follow their records, tombstones remove
    /// theirs, and refusals decided on older versions are lifted.
    async fn read_domains(&mut self, since: OffsetDateTime) -> Result<FeedRead, Error> {
        let mut read = FeedRead::default();
        let (mut changed, mut tombstones) = (0, 0);
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
                let applied = match change {
                    DomainChange::Changed(domain) => {
                        changed += 1;
                        // A refusal decided on an older version of this domain (or before it
                        // existed) no longer holds: the next handshake asks again.
                        self.shared
                            .negative
                            .forget_before(&hostname, domain.version);
                        self.shared.cache.apply_change(domain) != RouteChange::Unchanged
                    }
                    DomainChange::Deleted(deleted) => {
                        tombstones += 1;
                        let removed = self.shared.cache.apply_deletion(deleted);
                        if removed {
                            tracing::info!(
                                sni = %hostname,
                                domain = %deleted.id,
                                "domain deleted; stopped serving it"
                            );
                        }
                        removed
                    }
                };
                read.items += 1;
                read.applied += u64::from(applied);
                read.newest = read.newest.max(Some(change.changed_at()));
            }
            match page.next_cursor {
                Some(next) => cursor = Some(next),
                None => break,
            }
        }
        let metrics = &self.shared.metrics;
        metrics.add(FEED_CHANGES, "kind", "domain", changed);
        metrics.add(FEED_CHANGES, "kind", "tombstone", tombstones);
        Ok(read)
    }
}

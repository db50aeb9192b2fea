//! The renewer: one run over the certificates that are due, written once for the scheduled
//! Lambda and the local runner's timer.
//!
//! A run pages through the store's due index ([`CertificateStore::due_certificates`], never a
//! scan) and looks at each certificate with bounded concurrency:
//!
//! - past its expiry with nothing left to serve (status `issued` or `failed`): it becomes
//!   `expired`, with an event; a managed certificate's domain shows why in `/ssl`;
//! - a downloadable certificate whose plan no longer includes auto-renewal is held (looked at
//!   again daily, so upgrading the plan applies from then on) and expires when its time comes;
//! - a managed certificate goes to the one use case every caller shares,
//!   [`ensure_for_certificate`]: a domain whose DNS no longer points at the edge is not sent to
//!   the CA (the reason is recorded on the certificate and the domain, `waiting_dns`, and it is
//!   tried again after the policy's backoff; a domain that never pointed there goes stale after
//!   the policy's wait);
//! - before any order (this run's [`OrderGate`]): a renewal whose CA offers ARI asks the CA
//!   again, and a window that moved later reschedules it (honouring the CA's clamped
//!   `Retry-After`, never past the emergency point), an open window renews now;
//! - the order budget every path shares is the issue use case's ([`OrderBudget`]): a renewal it
//!   refuses waits, its reason and next attempt recorded, for a later run;
//! - the order itself is the issue use case's ([`Issuance`]), which keeps the old certificate
//!   served until its successor is stored whole;
//! - a renewal that has not succeeded 14, 7 and 1 days before expiry is recorded once each as
//!   a `certificate.expiring` event (and in [`RenewalReport::expiring`]).
//!
//! Two runs at once (or a duplicated schedule event) renew each certificate once: the issuer
//! holds a lease per name set and re-reads the certificate under it, so the second caller finds
//! it in progress or no longer due. Every write here is version-checked and re-read on conflict.

use std::collections::{HashMap, HashSet};
use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, PoisonError};

use futures::StreamExt as _;
use futures::stream::FuturesUnordered;
use rand::Rng as _;
use serde::Serialize;
use time::{Duration, OffsetDateTime};

use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{AccountId, CertificateId};
use crate::model::{
    Certificate, CertificateEvent, CertificateKind, CertificateStatus, EventLevel, ProvisioningStep,
};
use crate::plan::Plan;
use crate::ports::{Issuance, IssueOutcome, PageRequest};
use crate::renewal::RenewalPolicy;
use crate::usecases::Services;
use crate::usecases::domains::points_at_edge;
use crate::usecases::managed::{
    Admission, Ensured, Held, Issue, OrderGate, ensure_for_certificate,
};
use crate::usecases::versioned::{change_certificate, change_domain};

/// How long a certificate whose plan no longer renews it waits before it is looked at again.
const PLAN_RECHECK: Duration = Duration::days(1);
/// Most per-certificate errors a report keeps for the logs.
const MAX_REPORTED_ERRORS: usize = 20;

/// How a run behaves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalSettings {
    /// Certificates worked on at once.
    pub concurrency: usize,
    /// Certificates read per page of the due index.
    pub page_size: u32,
    /// Backoff of certificates held back before the CA (DNS no longer at the edge).
    pub policy: RenewalPolicy,
    /// No certificate is started at or after this time (by the services' clock), and no
    /// further page of the due index is read: what is left stays due for the next run. The
    /// Lambda renewer sets it some minutes before its deadline, so that what it started
    /// finishes; `None` runs until everything due was looked at.
    pub take_work_until: Option<OffsetDateTime>,
}

impl RenewalSettings {
    /// Defaults: 8 at once, pages of 100.
    pub fn new() -> RenewalSettings {
        RenewalSettings::default()
    }
}

impl Default for RenewalSettings {
    fn default() -> RenewalSettings {
        RenewalSettings {
            concurrency: 8,
            page_size: 100,
            policy: RenewalPolicy::default(),
            take_work_until: None,
        }
    }
}

/// What one run did, for the logs and for tests.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct RenewalReport {
    /// Due certificates looked at.
    pub examined: usize,
    /// Items the due query read from the store (what the run cost in reads).
    pub items_read: u64,
    /// Handed to the issuer and issued (or found issued).
    pub issued: usize,
    /// Handed to the issuer, which recorded a failure and a next attempt.
    pub failed: usize,
    /// Handed to the issuer, which found another owner working on them.
    pub in_progress: usize,
    /// Not worked on: not due any more, deleted, or handled by another run.
    pub skipped: usize,
    /// Marked `expired`.
    pub expired: usize,
    /// Held back because their domain no longer points at the edge.
    pub waiting_dns: usize,
    /// Moved to a later time (the CA's ARI window, or a plan without auto-renewal).
    pub rescheduled: usize,
    /// Left for a later run because the order budget was spent (the reason and the next
    /// attempt are on the certificate, and on a domain waiting for its first one).
    pub deferred: usize,
    /// Read but not started, still due: the run's time was up
    /// ([`RenewalSettings::take_work_until`]); the pages after them were not read either.
    pub unstarted: usize,
    /// Failures of the store, the vault or DNS while looking at a certificate (retried next
    /// run), as (certificate, error) for the logs, at most 20.
    pub errors: Vec<(CertificateId, String)>,
    /// How many errors there were in all.
    pub error_count: usize,
    /// The `certificate.expiring` notices this run recorded: renewals that had not succeeded
    /// 14, 7 or 1 days before expiry, as (certificate, days before expiry).
    pub expiring: Vec<(CertificateId, u32)>,
}

/// What happened to one certificate.
#[derive(Debug)]
enum Handled {
    Issued,
    Failed,
    InProgress,
    Skipped,
    Expired,
    WaitingDns,
    Rescheduled,
    Deferred,
}

/// Makes every certificate whose material came from a CA other than `configured_ca` due now
/// ([`Certificate::due_for_ca_change`]), so the renewer's next run replaces it while the old
/// material stays served: switching from staging to production, or a local stack restarted
/// with a new Pebble (a new root that no client of the old certificates trusts). Material
/// stored before certificates recorded their CA counts as another CA's too when the deployment
/// has an ACME account with the other of Let's Encrypt's staging and production
/// ([`LETS_ENCRYPT_DIRECTORIES`]): the staging-to-production switch of a deployment older than
/// that record. Returns how many it marked.
///
/// It reads every certificate (the change index from the beginning), so a process runs it
/// once, when it starts with its configured CA, not on every renewal run.
pub async fn replace_certificates_from_other_ca(
    services: &Services,
    configured_ca: &str,
) -> Result<usize> {
    let now = services.clock.now();
    let earlier_ca = earlier_well_known_ca(services, configured_ca).await?;
    let unrecorded_from_other_ca = earlier_ca.is_some();
    let mut cursor = None;
    let mut marked = 0;
    loop {
        let page = services
            .store
            .certificates_changed_since(
                OffsetDateTime::UNIX_EPOCH,
                PageRequest { cursor, limit: 100 },
            )
            .await?;
        for certificate in page.items {
            let due = |stored: &mut Certificate| {
                stored.due_for_ca_change(configured_ca, unrecorded_from_other_ca, now)
            };
            if !due(&mut certificate.clone()) {
                continue;
            }
            let from = match (&certificate.ca_directory_url, earlier_ca) {
                (Some(recorded), _) => recorded.clone(),
                (None, Some(earlier)) => format!(
                    "issued before certificates recorded their CA, while this deployment also \
                     used {earlier}"
                ),
                (None, None) => String::new(),
            };
            let changed = change_certificate(services, certificate, due).await?;
            if let Some(changed) = changed {
                marked += 1;
                let event = CertificateEvent {
                    certificate_id: changed.id.clone(),
                    at: now,
                    step: "renewal".to_owned(),
                    level: EventLevel::Info,
                    message: format!(
                        "Issued by another certificate authority ({from}); replaced now by the \
                         configured one ({configured_ca}), the current certificate served until then"
                    ),
                    acme_problem: None,
                };
                // The log is best effort; the certificate is due either way.
                let _ = services.store.append_event(&event).await;
            }
        }
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(marked),
        }
    }
}

/// The ACME directories a deployment switches between with `AcmeEnvironment`: Let's
/// Encrypt's staging and production.
pub const LETS_ENCRYPT_DIRECTORIES: [&str; 2] = [
    "https://acme-staging-v02.api.letsencrypt.org/directory",
    "https://acme-v02.api.letsencrypt.org/directory",
];

/// One of [`LETS_ENCRYPT_DIRECTORIES`] other than `configured_ca` that this deployment has an
/// ACME account with (kept in the vault by directory URL): then it has used another CA, and
/// material whose CA was not recorded may be that CA's.
async fn earlier_well_known_ca(
    services: &Services,
    configured_ca: &str,
) -> Result<Option<&'static str>> {
    for directory in LETS_ENCRYPT_DIRECTORIES {
        if directory.trim_end_matches('/') == configured_ca.trim_end_matches('/') {
            continue;
        }
        if services.vault.get_acme_account(directory).await?.is_some() {
            return Ok(Some(directory));
        }
    }
    Ok(None)
}

/// Runs the renewer once over everything due now.
///
/// Fails only when the due index cannot be read; a certificate that cannot be worked on is
/// counted in [`RenewalReport::errors`] and stays due for the next run.
pub async fn run_renewals(
    services: &Services,
    issuance: &dyn Issuance,
    settings: &RenewalSettings,
) -> Result<RenewalReport> {
    let run = Run {
        services,
        issuance,
        settings,
        plans: Mutex::new(HashMap::new()),
        expiring: Mutex::new(Vec::new()),
    };
    let now = services.clock.now();
    let out_of_time = || {
        settings
            .take_work_until
            .is_some_and(|until| services.clock.now() >= until)
    };
    let concurrency = settings.concurrency.max(1);
    let mut report = RenewalReport::default();
    let mut seen = HashSet::new();
    let mut working = FuturesUnordered::new();
    let mut cursor = None;
    let outcome = loop {
        let page = match services
            .store
            .due_certificates(
                now,
                PageRequest {
                    cursor: cursor.take(),
                    limit: settings.page_size.max(1),
                },
            )
            .await
        {
            Ok(page) => page,
            Err(error) => break Err(error),
        };
        report.items_read += page.items_read;
        for certificate in page.items {
            // A certificate met twice in one run (it moved within the index) is worked on once.
            if !seen.insert(certificate.id.clone()) {
                continue;
            }
            while working.len() >= concurrency {
                if let Some((id, handled)) = working.next().await {
                    report.count(id, handled);
                }
            }
            // Checked after waiting for a free slot: the wait itself may have used the time up.
            if out_of_time() {
                report.unstarted += 1;
                continue;
            }
            working.push(run.handle_one(certificate));
        }
        match page.next_cursor {
            Some(next) if !out_of_time() => cursor = Some(next),
            _ => break Ok(()),
        }
    };
    // Whatever was started finishes, even when the next page could not be read.
    while let Some((id, handled)) = working.next().await {
        report.count(id, handled);
    }
    report.expiring =
        std::mem::take(&mut *run.expiring.lock().unwrap_or_else(PoisonError::into_inner));
    outcome.map(|()| report)
}

/// How close to expiry a certificate that renews itself may come unrenewed before the renewer
/// reports it (a CloudWatch metric on AWS, which alarms).
pub const EXPIRY_WARNING: Duration = Duration::days(7);

/// The certificates that renew automatically, are valid now, and expire within `within`:
/// renewals that have not happened in time (the renewer publishes this count after each run).
///
/// Read from the due index up to `now + within`, never a scan: every such certificate is due by
/// then, because its renewal falls before its expiry and its retries are at most a day apart
/// ([`RenewalPolicy`]).
pub async fn count_expiring_unrenewed(services: &Services, within: Duration) -> Result<usize> {
    let now = services.clock.now();
    let horizon = now + within;
    let mut count = 0;
    let mut cursor = None;
    loop {
        let page = services
            .store
            .due_certificates(
                horizon,
                PageRequest {
                    cursor: cursor.take(),
                    limit: 100,
                },
            )
            .await?;
        count += page
            .items
            .iter()
            .filter(|certificate| {
                certificate.renews_automatically()
                    && !matches!(
                        certificate.status,
                        CertificateStatus::Expired | CertificateStatus::Revoked
                    )
                    && certificate
                        .expires_at
                        .is_some_and(|expiry| now < expiry && expiry <= horizon)
            })
            .count();
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => return Ok(count),
        }
    }
}

impl RenewalReport {
    fn count(&mut self, id: CertificateId, handled: Result<Handled>) {
        self.examined += 1;
        let counter = match handled {
            Ok(Handled::Issued) => &mut self.issued,
            Ok(Handled::Failed) => &mut self.failed,
            Ok(Handled::InProgress) => &mut self.in_progress,
            Ok(Handled::Skipped) => &mut self.skipped,
            Ok(Handled::Expired) => &mut self.expired,
            Ok(Handled::WaitingDns) => &mut self.waiting_dns,
            Ok(Handled::Rescheduled) => &mut self.rescheduled,
            Ok(Handled::Deferred) => &mut self.deferred,
            Err(error) => {
                self.error_count += 1;
                if self.errors.len() < MAX_REPORTED_ERRORS {
                    self.errors.push((id, error.to_string()));
                }
                return;
            }
        };
        *counter += 1;
    }
}

/// One run's shared state.
struct Run<'a> {
    services: &'a Services,
    issuance: &'a dyn Issuance,
    settings: &'a RenewalSettings,
    /// Plans of the accounts seen in this run.
    plans: Mutex<HashMap<AccountId, Option<Plan>>>,
    /// The `certificate.expiring` notices recorded in this run.
    expiring: Mutex<Vec<(CertificateId, u32)>>,
}

/// One certificate's work, boxed so that the run's set of them has one type (and is `Send`,
/// which the workers need to spawn a run).
type Work<'a> = Pin<Box<dyn Future<Output = (CertificateId, Result<Handled>)> + Send + 'a>>;

impl Run<'_> {
    fn now(&self) -> OffsetDateTime {
        self.services.clock.now()
    }

    fn handle_one(&self, certificate: Certificate) -> Work<'_> {
        Box::pin(async move {
            let id = certificate.id.clone();
            (id, self.handle(certificate).await)
        })
    }

    async fn handle(&self, certificate: Certificate) -> Result<Handled> {
        let notice = certificate.expiring_notice_due(self.now());
        let handled = self.advance(certificate.clone()).await?;
        // A renewal that has not succeeded by 14, 7 and 1 days before expiry is recorded as
        // such, once each, for the platform to see (`certificate.expiring`).
        if notice.is_some() && !matches!(handled, Handled::Issued | Handled::Expired) {
            self.record_expiring(&certificate).await?;
        }
        Ok(handled)
    }

    async fn advance(&self, certificate: Certificate) -> Result<Handled> {
        let now = self.now();
        if certificate.is_past_expiry(now) {
            return self.expire(certificate).await;
        }
        match certificate.status {
            CertificateStatus::Expired | CertificateStatus::Revoked => return Ok(Handled::Skipped),
            // Due only to expire, and not expired yet.
            CertificateStatus::Issued if !certificate.renews_automatically() => {
                return Ok(Handled::Skipped);
            }
            _ => {}
        }
        if certificate.managed_domain().is_some() {
            let issue = Issue::Now {
                issuance: self.issuance,
                gate: Some(self),
            };
            return Ok(
                match ensure_for_certificate(self.services, certificate, issue).await? {
                    Ensured::Served(_) => Handled::Issued,
                    Ensured::InProgress => Handled::InProgress,
                    Ensured::Held(Held::Rescheduled) => Handled::Rescheduled,
                    Ensured::Deferred { .. } => Handled::Deferred,
                    Ensured::NotWhitelisted | Ensured::Requested(_) => Handled::Skipped,
                    Ensured::NotReady { domain, .. } if domain.is_waiting() => Handled::WaitingDns,
                    Ensured::NotReady { .. } => Handled::Failed,
                },
            );
        }
        if certificate.is_renewal() {
            let Some(plan) = self.plan(&certificate.account_id).await? else {
                return Ok(Handled::Skipped);
            };
            if !plan.auto_renew_enabled {
                return self.hold_for_plan(certificate).await;
            }
        }
        if let Admission::Held(held) = self.admit(&certificate).await? {
            return Ok(match held {
                Held::Rescheduled => Handled::Rescheduled,
            });
        }
        Ok(match self.issuance.issue_certificate(&certificate).await? {
            IssueOutcome::Issued(_) => Handled::Issued,
            IssueOutcome::Failed(_) => Handled::Failed,
            IssueOutcome::Deferred(_) => Handled::Deferred,
            IssueOutcome::InProgress => Handled::InProgress,
            IssueOutcome::Skipped => Handled::Skipped,
        })
    }

    /// The account's plan, read once per run; `None` when the account is gone.
    async fn plan(&self, account: &AccountId) -> Result<Option<Plan>> {
        if let Some(known) = self.lock_plans().get(account) {
            return Ok(*known);
        }
        let plan = self
            .services
            .store
            .get_account(account)
            .await?
            .map(|account| *self.services.plans.get(account.plan));
        self.lock_plans().insert(account.clone(), plan);
        Ok(plan)
    }

    fn lock_plans(&self) -> std::sync::MutexGuard<'_, HashMap<AccountId, Option<Plan>>> {
        self.plans.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Marks a certificate past its expiry `expired`, and shows it on its domain.
    async fn expire(&self, certificate: Certificate) -> Result<Handled> {
        let now = self.now();
        let Some(expired) = change_certificate(self.services, certificate, |stored| {
            // Renewed (or revoked) meanwhile: nothing to expire.
            let past = stored.is_past_expiry(now);
            if past {
                stored.expire();
            }
            past
        })
        .await?
        else {
            return Ok(Handled::Skipped);
        };
        let expired_at = expired.expires_at.map(rfc3339).unwrap_or_default();
        let why = match (&expired.kind, expired.auto_renew, &expired.last_error) {
            (CertificateKind::Downloadable { .. }, false, _) => {
                " without renewal: auto-renewal is off".to_owned()
            }
            (_, _, Some(error)) => format!(" without renewal: {error}"),
            _ => " without renewal".to_owned(),
        };
        self.event(
            &expired.id,
            "expired",
            EventLevel::Error,
            format!("The certificate expired at {expired_at}{why}"),
        )
        .await;
        if let Some(domain_id) = expired.managed_domain() {
            let Some(domain) = self
                .services
                .store
                .get_domain(&expired.account_id, domain_id)
                .await?
            else {
                return Ok(Handled::Expired);
            };
            let dns = match points_at_edge(
                self.services.resolver.as_ref(),
                &self.services.edge,
                &domain.hostname,
            )
            .await
            {
                Ok(dns) => dns,
                // The expiry is recorded; the domain shows the certificate's reason instead.
                Err(_) => Ok(()),
            };
            let (step, reason) = match dns {
                Err(reason) => (
                    ProvisioningStep::WaitingDns,
                    format!("The certificate expired at {expired_at}: {reason}"),
                ),
                Ok(()) => (
                    ProvisioningStep::Failed,
                    format!(
                        "The certificate expired at {expired_at}{why}; nudge the domain to \
                         request a new one"
                    ),
                ),
            };
            change_domain(self.services, domain, |domain| {
                domain.certificate_expired(step, reason.clone());
                true
            })
            .await?;
        }
        Ok(Handled::Expired)
    }

    /// Holds a downloadable certificate whose plan no longer includes auto-renewal: looked at
    /// again daily (so an upgrade applies), and expired at its expiry.
    async fn hold_for_plan(&self, certificate: Certificate) -> Result<Handled> {
        let now = self.now();
        let mut recheck = now + PLAN_RECHECK;
        if let Some(expires_at) = certificate.expires_at {
            recheck = recheck.min(expires_at);
        }
        const REASON: &str = "Auto-renewal requires Pro or Elite plan";
        let Some(held) = change_certificate(self.services, certificate, |stored| {
            let due = stored.is_due(now);
            if due {
                stored.hold_for_plan(REASON, recheck);
            }
            due
        })
        .await?
        else {
            return Ok(Handled::Skipped);
        };
        self.event(
            &held.id,
            "renewal",
            EventLevel::Warning,
            format!(
                "Not renewed: {REASON}; checked again at {}",
                rfc3339(recheck)
            ),
        )
        .await;
        Ok(Handled::Rescheduled)
    }

    /// Moves a renewal to `at` because the CA's window opens later.
    async fn reschedule(&self, certificate: Certificate, at: OffsetDateTime) -> Result<Held> {
        let now = self.now();
        let moved = change_certificate(self.services, certificate, |stored| {
            let scheduled = stored.is_due(now) && stored.next_attempt_at.is_none();
            if scheduled {
                stored.reschedule_renewal(at);
            }
            scheduled
        })
        .await?;
        if let Some(moved) = moved {
            self.event(
                &moved.id,
                "renewal",
                EventLevel::Info,
                format!(
                    "The certificate authority's renewal window opens later; renewal moved to {}",
                    rfc3339(at)
                ),
            )
            .await;
        }
        Ok(Held::Rescheduled)
    }

    /// Records the `certificate.expiring` notice due for the certificate (read again: the run
    /// just worked on it), with an event.
    async fn record_expiring(&self, certificate: &Certificate) -> Result<()> {
        let now = self.now();
        let Some(latest) = self
            .services
            .store
            .get_certificate(&certificate.account_id, &certificate.id)
            .await?
        else {
            return Ok(());
        };
        let Some(days) = latest.expiring_notice_due(now) else {
            return Ok(());
        };
        let Some(noted) = change_certificate(self.services, latest, |stored| {
            let due = stored.expiring_notice_due(now) == Some(days);
            if due {
                stored.record_expiring_notice(days);
            }
            due
        })
        .await?
        else {
            return Ok(());
        };
        let expires_at = noted.expires_at.map(rfc3339).unwrap_or_default();
        let why = noted
            .last_error
            .as_deref()
            .map(|error| format!(": {error}"))
            .unwrap_or_default();
        self.event(
            &noted.id,
            EXPIRING_STEP,
            EventLevel::Warning,
            format!(
                "The certificate expires at {expires_at}, within {days} day{}, and its renewal \
                 has not succeeded yet{why}",
                if days == 1 { "" } else { "s" }
            ),
        )
        .await;
        tracing::warn!(certificate = %noted.id, days, expires_at, "certificate expiring unrenewed");
        self.expiring
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((noted.id.clone(), days));
        Ok(())
    }

    /// Appends an event; the log is best-effort and never stops a run.
    async fn event(
        &self,
        certificate: &CertificateId,
        step: &str,
        level: EventLevel,
        message: String,
    ) {
        let event = CertificateEvent {
            certificate_id: certificate.clone(),
            at: self.now(),
            step: step.to_owned(),
            level,
            message,
            acme_problem: None,
        };
        let _ = self.services.store.append_event(&event).await;
    }
}

#[async_trait]
impl OrderGate for Run<'_> {
    /// A renewal at its scheduled time asks the CA whether its window moved (retries after a
    /// failure keep to their backoff). The order budget is the issue use case's.
    async fn admit(&self, certificate: &Certificate) -> Result<Admission> {
        let now = self.now();
        if certificate.is_renewal() && certificate.next_attempt_at.is_none() {
            if let (Some(suggestion), Some(not_before), Some(not_after)) = (
                self.issuance.renewal_window(certificate).await?,
                certificate.not_before,
                certificate.expires_at,
            ) {
                let position = rand::thread_rng().r#gen::<f64>();
                if let Some(at) = self.settings.policy.reschedule_within_window(
                    now,
                    &suggestion,
                    position,
                    (not_before, not_after),
                ) {
                    return Ok(Admission::Held(
                        self.reschedule(certificate.clone(), at).await?,
                    ));
                }
            }
        }
        Ok(Admission::Order)
    }
}

/// The step of `certificate.expiring` events.
pub const EXPIRING_STEP: &str = "certificate.expiring";

fn rfc3339(at: OffsetDateTime) -> String {
    crate::model::rfc3339(at)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The workers spawn runs on a multi-threaded runtime: a run must stay `Send`.
    #[allow(dead_code)]
    fn runs_are_send(services: &Services, issuance: &dyn Issuance, settings: &RenewalSettings) {
        fn send<T: Send>(_: T) {}
        send(run_renewals(services, issuance, settings));
    }
}

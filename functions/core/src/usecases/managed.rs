//! Ensure the managed certificate for a hostname: the one use case the edge (a TLS handshake
//! for the name), the API (nudge), the issuer worker and the renewer (the certificate is due)
//! all call, so a domain moves through its steps the same way whoever asks.
//!
//! [`ensure_managed_certificate`] takes the domain one step as far as it can go now:
//! 1. asked again (traffic at the edge, a nudge), a stale domain waits for its DNS afresh and
//!    the backoff is reset; on a schedule a stale domain is left alone;
//! 2. ownership: looked up on a nudge or a schedule; traffic never waits on DNS lookups for it;
//! 3. DNS: the name must point at the edge before anything is ordered. Not yet: the reason and
//!    the next check after the backoff go on the domain and its certificate (whose place in the
//!    due index is the domain's schedule), until the domain has waited
//!    [`dns_wait`](crate::RenewalPolicy::dns_wait) and goes stale. A served certificate whose
//!    name left the edge stays served and keeps being retried while it is valid;
//! 4. the certificate: created (pending) the first time; a served one that needs nothing is
//!    the answer; a failed one backing off waits for its next attempt unless nudged;
//! 5. issuance: queued for the issuer worker ([`Issue::Queue`], the API's way), or run now
//!    ([`Issue::Now`]) after an optional gate (the renewer's ARI window and order budget).
//!
//! Every decision is a transition of the model ([`crate::model::lifecycle`] is the state
//! machine); this module only reads, asks DNS, writes what changed and calls the issuer.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::{Error, ItemKind, Result};
use crate::hostname::Hostname;
use crate::ids::{AccountId, CertificateId, DomainId};
use crate::model::{Certificate, CertificateStatus, DnsCheck, Domain, ProvisioningStep, Servable};
use crate::ports::{Issuance, IssueOutcome};
use crate::renewal::RenewalPolicy;
use crate::usecases::Services;
use crate::usecases::domains::points_at_edge;
use crate::usecases::versioned::{change_certificate, change_domain};

/// Who asks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Trigger {
    /// A TLS handshake for the name reached the edge.
    Traffic,
    /// The platform nudged the domain through the API.
    Nudge,
    /// The certificate is due (the issuer worker, the renewer).
    Schedule,
}

/// Whether ordering happens now, and through what.
#[derive(Clone, Copy)]
pub enum Issue<'a> {
    /// Leave the certificate due now for the issuer worker (API functions do not talk to the
    /// CA).
    Queue,
    /// Order now through `issuance`, once `gate` (if any) admits it.
    Now {
        /// The issue use case.
        issuance: &'a dyn Issuance,
        /// Asked just before ordering.
        gate: Option<&'a dyn OrderGate>,
    },
}

/// Asked just before a certificate is ordered: the renewer's CA renewal window.
#[async_trait]
pub trait OrderGate: Send + Sync {
    /// Whether `certificate` may be ordered now.
    async fn admit(&self, certificate: &Certificate) -> Result<Admission>;
}

/// A gate's answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Admission {
    /// Order now.
    Order,
    /// Not now; the gate already recorded why (moved to a later time, or left due).
    Held(Held),
}

/// Why a gate held a certificate back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Held {
    /// Moved to a later time (the CA's renewal window opens later).
    Rescheduled,
}

/// How ensuring ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ensured {
    /// The certificate is served (issued now, or earlier and nothing is due).
    Served(Certificate),
    /// Queued for the issuer worker.
    Requested(Domain),
    /// Another process is issuing it.
    InProgress,
    /// A gate held the order back.
    Held(Held),
    /// Nothing can be served now: `reason`, and when it is tried again on its own (`None`:
    /// on no schedule). `domain` is the record this was decided on.
    NotReady {
        /// The domain as stored.
        domain: Box<Domain>,
        /// Why.
        reason: String,
        /// The next attempt on its own.
        retry_at: Option<OffsetDateTime>,
    },
    /// Not ordered: the order budget is spent. The certificate and its domain show `reason`
    /// until `retry_at`, when a token is next expected.
    Deferred {
        /// Why.
        reason: String,
        /// The next attempt on its own.
        retry_at: Option<OffsetDateTime>,
    },
    /// No domain has this hostname.
    NotWhitelisted,
}

/// [`ensure_managed_certificate`] for whatever domain holds `hostname` (the edge's lookup).
pub async fn ensure_for_hostname(
    services: &Services,
    hostname: &Hostname,
    trigger: Trigger,
    issue: Issue<'_>,
) -> Result<Ensured> {
    match services.store.domain_by_hostname(hostname).await? {
        Some(domain) => ensure_managed_certificate(services, domain, None, trigger, issue).await,
        None => Ok(Ensured::NotWhitelisted),
    }
}

/// [`ensure_managed_certificate`] for one of the account's domains, or 404.
pub async fn ensure_for_domain(
    services: &Services,
    account: &AccountId,
    id: &DomainId,
    trigger: Trigger,
    issue: Issue<'_>,
) -> Result<Ensured> {
    let domain = services
        .store
        .get_domain(account, id)
        .await?
        .ok_or(Error::NotFound(ItemKind::Domain))?;
    ensure_managed_certificate(services, domain, None, trigger, issue).await
}

/// [`ensure_managed_certificate`] for a managed certificate that came due (as read from the
/// due index or the table's stream). A certificate whose domain is gone is left alone: it goes
/// with its domain.
pub async fn ensure_for_certificate(
    services: &Services,
    certificate: Certificate,
    issue: Issue<'_>,
) -> Result<Ensured> {
    let Some(domain_id) = certificate.managed_domain().cloned() else {
        return Err(Error::Corrupt(format!(
            "{} is not a managed certificate",
            certificate.id
        )));
    };
    match services
        .store
        .get_domain(&certificate.account_id, &domain_id)
        .await?
    {
        Some(domain) => {
            ensure_managed_certificate(
                services,
                domain,
                Some(certificate),
                Trigger::Schedule,
                issue,
            )
            .await
        }
        None => Ok(Ensured::NotWhitelisted),
    }
}

/// Puts a domain whose ownership is settled on the schedule: its managed certificate,
/// pending and due now, so the issuer worker checks its DNS (and issues it once it points at
/// the edge) without waiting for a nudge or traffic. Best-effort: a domain without it is still
/// served on its first request and checked on a nudge.
pub async fn schedule_first_check(services: &Services, domain: &Domain) {
    let certificate = Certificate::managed(domain, services.clock.now());
    match services.store.create_certificate(&certificate, 0).await {
        Ok(()) | Err(Error::CertificateExists) => {}
        Err(error) => {
            tracing::warn!(%error, domain = %domain.id, "could not schedule the domain's first DNS check");
        }
    }
}

/// Takes `domain` (and its managed certificate, when the caller already read it) as far as
/// it can go now; see the [module](self).
pub async fn ensure_managed_certificate(
    services: &Services,
    domain: Domain,
    certificate: Option<Certificate>,
    trigger: Trigger,
    issue: Issue<'_>,
) -> Result<Ensured> {
    let mut run = Run {
        services,
        policy: RenewalPolicy::default(),
        stored_domain: domain.clone(),
        domain,
        now: services.clock.now(),
    };
    run.ensure(certificate, trigger, issue).await
}

/// One call's state: the domain as stored and as changed so far.
struct Run<'a> {
    services: &'a Services,
    policy: RenewalPolicy,
    stored_domain: Domain,
    domain: Domain,
    now: OffsetDateTime,
}

impl Run<'_> {
    async fn ensure(
        &mut self,
        certificate: Option<Certificate>,
        trigger: Trigger,
        issue: Issue<'_>,
    ) -> Result<Ensured> {
        let now = self.now;
        let configured_ca = match issue {
            Issue::Now { issuance, .. } => issuance.ca_directory_url().unwrap_or_default(),
            Issue::Queue => "",
        };
        match trigger {
            Trigger::Traffic | Trigger::Nudge => self.domain.asked_again(now),
            // Stale domains are not checked on a schedule; nor is a certificate whose time has
            // not come (a stream record of our own backoff write).
            Trigger::Schedule => {
                let early = certificate.as_ref().is_some_and(|certificate| {
                    !certificate.needs_issuance(now, configured_ca) && !certificate.is_due(now)
                });
                if early || self.domain.provisioning_step == ProvisioningStep::Stale {
                    let retry_at = certificate.and_then(|certificate| certificate.next_attempt_at);
                    return Ok(self.refused_until(self.domain_reason(), retry_at));
                }
            }
        }
        if self.domain.provisioning_step == ProvisioningStep::WaitingOwnership {
            if trigger == Trigger::Traffic {
                return Ok(self.refused("the domain's ownership is not verified yet"));
            }
            let record = self.domain.ownership_record_name();
            let found = self
                .services
                .resolver
                .txt(&record)
                .await?
                .iter()
                .any(|value| value.trim() == self.domain.ownership_token);
            self.domain.ownership_checked(found, now, &self.policy);
            if !found {
                let retry_at = self.domain.next_attempt_at;
                return self.not_ready(retry_at).await;
            }
        }
        let certificate = match certificate {
            Some(certificate) => Some(certificate),
            None => {
                self.services
                    .store
                    .get_certificate(
                        &self.domain.account_id,
                        &CertificateId::managed_for(&self.domain.id),
                    )
                    .await?
            }
        };
        let serving = certificate
            .as_ref()
            .is_some_and(|certificate| certificate.material_to_serve(now).is_some());
        let needs_issuance = certificate
            .as_ref()
            .is_none_or(|certificate| certificate.needs_issuance(now, configured_ca));
        // Nothing to order and nothing to wait for: serve what is there, without asking DNS.
        if serving && !needs_issuance && !self.domain.is_waiting() {
            return self.served(certificate).await;
        }
        match points_at_edge(
            self.services.resolver.as_ref(),
            &self.services.edge,
            &self.domain.hostname,
        )
        .await?
        {
            Ok(()) => {}
            Err(reason) => return self.dns_not_ready(certificate, reason).await,
        }
        self.domain
            .dns_checked(&DnsCheck::PointsAtEdge, now, &self.policy);
        if serving {
            // Back at the edge with a certificate still served: active again.
            self.domain.back_at_edge();
        }
        // A nudge cannot hurry an order the budget holds back: say until when, rather than
        // reset a wait that would only be refused again.
        if trigger == Trigger::Nudge {
            if let Some(until) = certificate
                .as_ref()
                .and_then(|certificate| certificate.held_by_order_budget(now))
            {
                return Err(Error::order_budget_spent(until, now));
            }
        }
        let certificate = match certificate {
            // Asked for again by a nudge, or only waiting for DNS, which now points here:
            // due now with the backoff reset. Traffic alone never resets a failure's backoff,
            // so handshakes cannot hammer the CA.
            Some(mut certificate)
                if !serving
                    && (trigger == Trigger::Nudge
                        || certificate.status == CertificateStatus::Pending
                        || self.stored_domain.provisioning_step == ProvisioningStep::Stale)
                    && !certificate.needs_issuance(now, configured_ca) =>
            {
                certificate.request_again(now);
                self.write_certificate(certificate).await?
            }
            Some(certificate) => certificate,
            None => self.create_certificate(None).await?,
        };
        if !certificate.needs_issuance(now, configured_ca) {
            if serving {
                return self.served(Some(certificate)).await;
            }
            // Failed and backing off: refused until its next attempt, which the domain shows
            // (its DNS may have been the last thing it waited for).
            if certificate.status == CertificateStatus::Failed {
                self.domain.certificate_failed(
                    certificate.last_error.clone(),
                    certificate.next_attempt_at,
                    certificate.consecutive_failures,
                );
            }
            self.write_domain().await?;
            let reason = certificate_reason(&certificate);
            return Ok(self.refused_until(reason, certificate.next_attempt_at));
        }
        if self.domain.provisioning_step != ProvisioningStep::Active {
            self.domain.certificate_requested(certificate.id.clone());
        }
        match issue {
            Issue::Queue => {
                let domain = self.write_domain().await?;
                Ok(Ensured::Requested(domain))
            }
            Issue::Now { issuance, gate } => {
                self.write_domain().await?;
                if let Some(gate) = gate {
                    if let Admission::Held(held) = gate.admit(&certificate).await? {
                        return Ok(Ensured::Held(held));
                    }
                }
                self.issue_now(issuance, certificate).await
            }
        }
    }

    /// Runs the issue use case on `certificate` and says what it came to.
    async fn issue_now(
        &mut self,
        issuance: &dyn Issuance,
        certificate: Certificate,
    ) -> Result<Ensured> {
        match issuance.issue_certificate(&certificate).await? {
            IssueOutcome::Issued(issued) => Ok(Ensured::Served(issued)),
            IssueOutcome::Deferred(deferred) => Ok(Ensured::Deferred {
                reason: certificate_reason(&deferred),
                retry_at: deferred.next_attempt_at,
            }),
            IssueOutcome::Failed(failed) => {
                let reason = certificate_reason(&failed);
                Ok(self.refused_until(reason, failed.next_attempt_at))
            }
            IssueOutcome::InProgress => Ok(Ensured::InProgress),
            // Nothing was due: someone else may just have issued it.
            IssueOutcome::Skipped => {
                let latest = self
                    .services
                    .store
                    .get_certificate(&certificate.account_id, &certificate.id)
                    .await?;
                match latest {
                    Some(latest) if latest.material_to_serve(self.now).is_some() => {
                        Ok(Ensured::Served(latest))
                    }
                    Some(latest) => {
                        let reason = certificate_reason(&latest);
                        Ok(self.refused_until(reason, latest.next_attempt_at))
                    }
                    None => Ok(self.refused("the certificate was deleted")),
                }
            }
        }
    }

    /// The name does not point at the edge (`reason`). A served certificate stays served and
    /// its renewal waits with the backoff, the domain showing why; otherwise the domain waits
    /// (or goes stale) and its certificate, created if need be, carries the next check in the
    /// due index.
    async fn dns_not_ready(
        &mut self,
        certificate: Option<Certificate>,
        reason: String,
    ) -> Result<Ensured> {
        let now = self.now;
        match certificate {
            Some(mut certificate) if certificate.material_to_serve(now).is_some() => {
                certificate.wait_for_dns(&reason, now, &self.policy);
                let certificate = self.write_certificate(certificate).await?;
                // The certificate's log says why its renewal did not start (best effort).
                let event = crate::model::CertificateEvent {
                    certificate_id: certificate.id.clone(),
                    at: now,
                    step: "preflight".to_owned(),
                    level: crate::model::EventLevel::Warning,
                    message: format!("Renewal held back: {reason}"),
                    acme_problem: None,
                };
                let _ = self.services.store.append_event(&event).await;
                self.domain.dns_left_edge(
                    &reason,
                    certificate.next_attempt_at,
                    certificate.consecutive_failures,
                    now,
                );
                self.not_ready(certificate.next_attempt_at).await
            }
            certificate => {
                self.domain
                    .dns_checked(&DnsCheck::NotYet(reason), now, &self.policy);
                let retry_at = self.domain.next_attempt_at;
                let reason = self.domain_reason();
                match certificate {
                    Some(mut certificate) => {
                        certificate.wait_with_domain(&reason, retry_at);
                        self.write_certificate(certificate).await?;
                    }
                    None => {
                        self.create_certificate(Some((&reason, retry_at))).await?;
                    }
                }
                self.not_ready(retry_at).await
            }
        }
    }

    /// Creates the domain's managed certificate: due now, or waiting with the domain
    /// (`waiting`: why, and its next check). One created meanwhile by another caller is read
    /// instead.
    async fn create_certificate(
        &self,
        waiting: Option<(&str, Option<OffsetDateTime>)>,
    ) -> Result<Certificate> {
        let mut certificate = Certificate::managed(&self.domain, self.now);
        if let Some((reason, retry_at)) = waiting {
            certificate.wait_with_domain(reason, retry_at);
        }
        match self
            .services
            .store
            .create_certificate(&certificate, 0)
            .await
        {
            Ok(()) => Ok(certificate),
            Err(Error::CertificateExists) => self
                .services
                .store
                .get_certificate(&certificate.account_id, &certificate.id)
                .await?
                .ok_or(Error::NotFound(ItemKind::Certificate)),
            Err(error) => Err(error),
        }
    }

    /// Stores the domain if this call changed it; the stored item.
    async fn write_domain(&mut self) -> Result<Domain> {
        if self.domain == self.stored_domain {
            return Ok(self.domain.clone());
        }
        let wanted = self.domain.clone();
        let stored = change_domain(self.services, self.stored_domain.clone(), |stored| {
            if stored.version != wanted.version {
                // Someone else wrote it since it was read (its origin, say): this call's
                // step goes on top of what they left.
                stored.provisioning_step = wanted.provisioning_step;
                stored.last_error = wanted.last_error.clone();
                stored.next_attempt_at = wanted.next_attempt_at;
                stored.consecutive_failures = wanted.consecutive_failures;
                stored.ownership_verified |= wanted.ownership_verified;
                stored.dns_waiting_since = wanted.dns_waiting_since;
                if wanted.certificate_id.is_some() {
                    stored.certificate_id = wanted.certificate_id.clone();
                }
            } else {
                *stored = wanted.clone();
            }
            true
        })
        .await?
        .ok_or(Error::NotFound(ItemKind::Domain))?;
        self.stored_domain = stored.clone();
        self.domain = stored.clone();
        Ok(stored)
    }

    /// Stores the certificate; after a conflict, the other writer's item stands (it did this
    /// call's work, or newer).
    async fn write_certificate(&self, certificate: Certificate) -> Result<Certificate> {
        let (account, id, version) = (
            certificate.account_id.clone(),
            certificate.id.clone(),
            certificate.version,
        );
        let wanted = certificate.clone();
        let stored = change_certificate(self.services, certificate, |stored| {
            let ours = stored.version == version;
            if ours {
                *stored = wanted.clone();
            }
            ours
        })
        .await?;
        match stored {
            Some(stored) => Ok(stored),
            None => self
                .services
                .store
                .get_certificate(&account, &id)
                .await?
                .ok_or(Error::NotFound(ItemKind::Certificate)),
        }
    }

    /// Served: the domain shows it (when it did not yet) and the certificate is the answer.
    async fn served(&mut self, certificate: Option<Certificate>) -> Result<Ensured> {
        let Some(certificate) = certificate else {
            return Ok(self.refused("nothing to serve"));
        };
        if matches!(certificate.servable(self.now), Servable::Serve(_))
            && (self.domain.provisioning_step != ProvisioningStep::Active
                || self.domain.certificate_id.as_ref() != Some(&certificate.id))
        {
            self.domain.certificate_issued(certificate.id.clone());
        }
        self.write_domain().await?;
        Ok(Ensured::Served(certificate))
    }

    /// Not ready: the domain as stored with this call's step, why, and its next attempt.
    async fn not_ready(&mut self, retry_at: Option<OffsetDateTime>) -> Result<Ensured> {
        let domain = self.write_domain().await?;
        let reason = self.domain_reason();
        Ok(Ensured::NotReady {
            domain: Box::new(domain),
            reason,
            retry_at,
        })
    }

    /// Why the domain is where it is, for refusals.
    fn domain_reason(&self) -> String {
        self.domain
            .last_error
            .clone()
            .unwrap_or_else(|| format!("the domain is {}", self.domain.provisioning_step.as_str()))
    }

    fn refused(&self, reason: &str) -> Ensured {
        self.refused_until(reason.to_owned(), None)
    }

    fn refused_until(&self, reason: String, retry_at: Option<OffsetDateTime>) -> Ensured {
        Ensured::NotReady {
            domain: Box::new(self.domain.clone()),
            reason,
            retry_at,
        }
    }
}

/// Why a certificate is not served, for refusals.
fn certificate_reason(certificate: &Certificate) -> String {
    certificate
        .last_error
        .clone()
        .unwrap_or_else(|| format!("the certificate is {}", certificate.status.as_str()))
}

/// How the issuer worker's handling of one requested certificate ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Worked {
    /// Issued (or found served, with nothing due).
    Issued(Box<Certificate>),
    /// Not issued now: why, and when it is tried again on its own (`None`: on no schedule).
    NotReady {
        /// Why.
        reason: String,
        /// The next attempt on its own.
        retry_at: Option<OffsetDateTime>,
    },
    /// Another process is issuing it.
    InProgress,
    /// Nothing to do (not due, deleted, or its domain is gone).
    Skipped,
}

/// What the issuer worker does with a certificate someone asked for (a record of the table's
/// stream, or the due index): a managed certificate goes through
/// [`ensure_managed_certificate`], so its domain's steps (DNS first) come before any order;
/// a downloadable one goes to the issue use case. Safe to call again and again.
pub async fn issue_requested(
    services: &Services,
    issuance: &dyn Issuance,
    account: &AccountId,
    id: &CertificateId,
) -> Result<Worked> {
    let Some(certificate) = services.store.get_certificate(account, id).await? else {
        return Ok(Worked::Skipped);
    };
    if certificate.managed_domain().is_none() {
        return Ok(match issuance.issue_certificate(&certificate).await? {
            IssueOutcome::Issued(issued) => Worked::Issued(Box::new(issued)),
            IssueOutcome::Failed(failed) | IssueOutcome::Deferred(failed) => Worked::NotReady {
                reason: certificate_reason(&failed),
                retry_at: failed.next_attempt_at,
            },
            IssueOutcome::InProgress => Worked::InProgress,
            IssueOutcome::Skipped => Worked::Skipped,
        });
    }
    let issue = Issue::Now {
        issuance,
        gate: None,
    };
    Ok(
        match ensure_for_certificate(services, certificate, issue).await? {
            Ensured::Served(issued) => Worked::Issued(Box::new(issued)),
            Ensured::InProgress => Worked::InProgress,
            Ensured::NotReady {
                reason, retry_at, ..
            } => Worked::NotReady { reason, retry_at },
            Ensured::Deferred { reason, retry_at } => Worked::NotReady { reason, retry_at },
            Ensured::NotWhitelisted | Ensured::Requested(_) | Ensured::Held(_) => Worked::Skipped,
        },
    )
}

//! The issue use case: one code path for API requests, the edge's first TLS request and
//! renewals, over any [`CertificateAuthority`] (the ACME adapter in production).
//!
//! One run of [`Issuance::issue`]:
//! 1. returns at once when the certificate needs no issuance
//!    ([`Certificate::needs_issuance`]);
//! 2. takes the lease on its sorted name set (held elsewhere: `InProgress`), kept alive in the
//!    background while the run works, then reads the certificate again, because the previous
//!    holder may just have issued it;
//! 3. runs pre-flight (a refusal is recorded and never reaches the CA); a run that is about
//!    to place a new order then takes its tokens from the order budget every path and process
//!    shares (`order_budget.rs`), and when it is spent records why and when a token is next
//!    expected, without a request to the CA;
//! 4. attempts the order: resume the stored order or place a new one (carrying `replaces` for
//!    a renewal, and the ACME profile), take the pending key from the vault or generate and
//!    store one, and record both on the certificate at once, so a crash resumes them; then
//!    validate (answers published through the store or the zone's DNS provider), finalize,
//!    download, store chain and key as a new vault version, and only then flip the
//!    certificate to `issued`, due for renewal after the [`RenewalPolicy`](crate::RenewalPolicy);
//! 5. retries the attempt within the run when the CA failed transiently (the stored order is
//!    resumed), otherwise records the failure with its backoff and the CA's `Retry-After`.
//!
//! Every durable step appends a certificate event. A crash at any point leaves the certificate
//! due again once the lease has expired, with everything it needs to resume. A CA found
//! unreachable is not asked again for a cool-down ([`ca_outage`]).

mod ca_outage;
mod lease;
mod order_budget;
mod preflight;
mod steps;
mod validation;

use std::sync::Arc;

use async_trait::async_trait;
use rand::{Rng as _, RngCore as _};
use time::{Duration, OffsetDateTime};
use tracing::Instrument as _;

use self::ca_outage::CaOutage;
use self::lease::LeaseKeeper;
pub use self::order_budget::OrderBudget;
use self::order_budget::{OrderBudgetGate, Spent};
use self::preflight::{Cleared, Refusal, Validation};
pub use self::steps::{Step, StepHook};
use self::validation::ValidationContext;
use crate::error::{Error, Result};
use crate::ids::{AccountId, CertificateId};
use crate::model::{
    BucketLevel, Certificate, CertificateEvent, CertificateStatus, Domain, EventLevel,
    IssueFailure, IssueStop, IssuedMaterial,
};
use crate::ports::{
    CertificateAuthority, CertificateMaterial, Issuance, IssueOutcome, MaterialVersion, OrderNote,
    OrderRequest, OrderState, Profiles,
};
use crate::renewal::{RenewalPolicy, RenewalSuggestion};
use crate::usecases::Services;
use crate::usecases::versioned::{change_certificate, change_domain};

/// How the issue use case paces its work; everything about the CA's protocol is the CA
/// adapter's.
#[derive(Debug, Clone, PartialEq)]
pub struct IssuanceSettings {
    /// Identities of the CA in CAA records (`issue "letsencrypt.org"`); a name whose closest
    /// CAA record set names none of them is refused before any order.
    pub caa_identities: Vec<String>,
    /// How long the lease on a name set lasts without renewal; also when an interrupted
    /// issuance becomes due again.
    pub lease_ttl: Duration,
    /// How long an HTTP-01 answer stays in the store.
    pub http01_ttl: Duration,
    /// Attempts within one run when the CA fails transiently (connection reset, 5xx, a nonce
    /// rejected more often than the protocol client retries); the run resumes its stored order.
    pub attempts_per_run: u32,
    /// Pause before the second attempt of a run; grows linearly.
    pub attempt_pause: std::time::Duration,
    /// How long runs fail at once, without a request, after the CA could not be reached
    /// (doubling while it stays unreachable, up to `ca_cool_down_max`).
    pub ca_cool_down: Duration,
    /// The longest cool-down: how late, at worst, a CA that is back is asked again.
    pub ca_cool_down_max: Duration,
    /// The budgets of new orders every path and process draws from.
    pub order_budget: OrderBudget,
    /// Renewal time and retry backoff.
    pub renewal_policy: RenewalPolicy,
}

/// Obtains, renews and revokes certificates at one CA; implements [`Issuance`].
///
/// Build it once per process and share it (`Arc<dyn Issuance>`).
pub struct IssuanceEngine {
    services: Services,
    ca: Arc<dyn CertificateAuthority>,
    settings: IssuanceSettings,
    /// Whether the CA was just found unreachable.
    ca_outage: CaOutage,
    /// The order budget, and whether it was just found spent.
    order_budget: OrderBudgetGate,
    hook: Option<Arc<dyn StepHook>>,
}

/// What an attempt works with: the lease, how names are validated, and what pre-flight read.
struct Attempt<'a> {
    lease: &'a LeaseKeeper,
    cleared: &'a Cleared,
}

impl IssuanceEngine {
    /// An engine over `services` (store, vault, resolver, clock, plans, edge settings, DNS
    /// providers; `services.issuance` is not used) ordering from `ca`.
    pub fn new(
        services: Services,
        ca: Arc<dyn CertificateAuthority>,
        settings: IssuanceSettings,
    ) -> IssuanceEngine {
        IssuanceEngine {
            ca_outage: CaOutage::new(settings.ca_cool_down, settings.ca_cool_down_max),
            order_budget: OrderBudgetGate::new(settings.order_budget.clone()),
            services,
            ca,
            settings,
            hook: None,
        }
    }

    /// Calls `hook` after each [`Step`] of every run (crash-safety tests).
    pub fn with_step_hook(mut self, hook: Arc<dyn StepHook>) -> IssuanceEngine {
        self.hook = Some(hook);
        self
    }

    /// The settings in force.
    pub fn settings(&self) -> &IssuanceSettings {
        &self.settings
    }

    fn now(&self) -> OffsetDateTime {
        self.services.clock.now()
    }

    fn step(&self, step: Step, certificate: &CertificateId) {
        tracing::debug!(step = step.as_str(), "issuance step done");
        if let Some(hook) = &self.hook {
            hook.after(step, certificate);
        }
    }

    /// Appends an event; the log is best-effort and never stops a run.
    async fn event(
        &self,
        certificate: &CertificateId,
        step: &str,
        level: EventLevel,
        message: impl Into<String>,
        acme_problem: Option<String>,
    ) {
        let event = CertificateEvent {
            certificate_id: certificate.clone(),
            at: self.now(),
            step: step.to_owned(),
            level,
            message: message.into(),
            acme_problem,
        };
        if let Err(error) = self.services.store.append_event(&event).await {
            tracing::warn!(%error, step, "could not append a certificate event");
        }
    }

    /// Applies `change` to `latest` and stores it (version-checked, re-read on a conflict); a
    /// gone certificate ends the run, a failed write is a failure of `step`. `latest` becomes
    /// the stored item.
    async fn save(
        &self,
        step: &'static str,
        latest: &mut Certificate,
        change: impl Fn(&mut Certificate),
    ) -> Result<(), IssueStop> {
        let changed = change_certificate(&self.services, latest.clone(), |stored| {
            change(stored);
            true
        })
        .await;
        match changed {
            Ok(Some(stored)) => {
                *latest = stored;
                Ok(())
            }
            Ok(None) => Err(IssueStop::Gone),
            Err(error) => {
                Err(IssueFailure::from_core(step, "Saving the certificate", &error).into())
            }
        }
    }

    /// Issues `certificate` (as just read by the caller) under the lease on its names.
    async fn issue_read(&self, certificate: &Certificate) -> Result<IssueOutcome> {
        if !certificate.needs_issuance(self.now(), self.ca.directory_url()) {
            return Ok(IssueOutcome::Skipped);
        }
        let lease = match self
            .services
            .store
            .acquire_lease(
                &lease_name(certificate),
                &lease_owner(),
                self.settings.lease_ttl,
                self.now(),
            )
            .await
        {
            Ok(lease) => lease,
            Err(Error::LeaseHeld { .. }) => return Ok(IssueOutcome::InProgress),
            Err(error) => return Err(error),
        };
        let keeper = LeaseKeeper::start(
            Arc::clone(&self.services.store),
            Arc::clone(&self.services.clock),
            lease,
            self.settings.lease_ttl,
        );
        // Stopped where it stands once the lease is lost, as a crash would stop it: the new
        // owner resumes from what was stored.
        let outcome = tokio::select! {
            outcome = self.run(&keeper, &certificate.account_id, &certificate.id) => outcome,
            () = keeper.lost() => Ok(IssueOutcome::InProgress),
        };
        keeper.release().await;
        outcome
    }

    /// Everything after the lease: pre-flight, then attempts.
    async fn run(
        &self,
        lease: &LeaseKeeper,
        account: &AccountId,
        id: &CertificateId,
    ) -> Result<IssueOutcome> {
        let Some(mut latest) = self.services.store.get_certificate(account, id).await? else {
            return Ok(IssueOutcome::Skipped);
        };
        if !latest.needs_issuance(self.now(), self.ca.directory_url()) {
            // The previous lease holder finished while we were waiting for the lease.
            return Ok(match latest.status {
                CertificateStatus::Issued => IssueOutcome::Issued(latest),
                _ => IssueOutcome::Skipped,
            });
        }
        // A new order while this process knows the budget is spent: refused before pre-flight's
        // DNS lookups, which a renewer run would otherwise spend on every certificate left.
        if self.places_new_order(&latest) {
            if let Some(spent) = self.order_budget.known_spent(self.now()) {
                let domain = self.read_domain(&latest).await;
                return self.defer(latest, domain.as_ref(), spent).await;
            }
        }
        let cleared =
            match preflight::check(&self.services, &self.settings.caa_identities, &latest).await {
                Ok(cleared) => cleared,
                Err(Refusal::Skip(reason)) => {
                    tracing::info!(reason, "issuance skipped");
                    return Ok(IssueOutcome::Skipped);
                }
                Err(Refusal::Fail(failure)) => {
                    // Pre-flight stopped before handing back the domain it read: a refused managed
                    // certificate still fails its domain, so read it again (refusals are rare).
                    let domain = self.read_domain(&latest).await;
                    return self.record_failure(latest, domain.as_ref(), failure).await;
                }
            };
        let how = match &cleared.validation {
            Validation::Http01 => "HTTP-01 through the edge".to_owned(),
            Validation::Dns01 { zone, .. } => format!("DNS-01 in zone {}", zone.name),
        };
        self.event(
            id,
            "preflight",
            EventLevel::Info,
            format!(
                "Pre-flight checks passed for {}; validating by {how}",
                names_text(&latest)
            ),
            None,
        )
        .await;
        if let Some(until) = self.ca_outage.cooling_down(self.now()) {
            // The CA did not answer a moment ago: say so now rather than wait for its timeout.
            let wait = std::time::Duration::try_from(until - self.now()).unwrap_or_default();
            return self
                .record_failure(
                    latest,
                    cleared.domain.as_ref(),
                    IssueFailure::ca_cooling_down(wait),
                )
                .await;
        }
        // Only a new order draws from the budget: a stored one is resumed.
        if self.places_new_order(&latest) {
            let spent = self
                .order_budget
                .take(self.services.store.as_ref(), &latest, self.now())
                .await?;
            if let Some(spent) = spent {
                return self.defer(latest, cleared.domain.as_ref(), spent).await;
            }
        }
        let attempt_with = Attempt {
            lease,
            cleared: &cleared,
        };
        let mut attempt = 1;
        loop {
            match self.attempt(&mut latest, &attempt_with).await {
                Ok(()) => {
                    self.ca_outage.answered();
                    return Ok(IssueOutcome::Issued(latest));
                }
                Err(IssueStop::Gone) => return Ok(IssueOutcome::Skipped),
                Err(IssueStop::LeaseLost) => return Ok(IssueOutcome::InProgress),
                Err(IssueStop::Failed(failure))
                    if failure.transient && attempt < self.settings.attempts_per_run =>
                {
                    self.event(
                        id,
                        failure.step,
                        EventLevel::Warning,
                        format!("{}; retrying", failure.message),
                        failure.problem.clone(),
                    )
                    .await;
                    tokio::time::sleep(self.settings.attempt_pause * attempt).await;
                    attempt += 1;
                }
                Err(IssueStop::Failed(mut failure)) => {
                    if lease.check().is_err() {
                        return Ok(IssueOutcome::InProgress);
                    }
                    if failure.ca_unreachable {
                        let until = self.ca_outage.unreachable(self.now());
                        let wait =
                            std::time::Duration::try_from(until - self.now()).unwrap_or_default();
                        failure.retry_after =
                            Some(failure.retry_after.unwrap_or_default().max(wait));
                    } else if failure.problem.is_some() {
                        self.ca_outage.answered();
                    }
                    return self
                        .record_failure(latest, cleared.domain.as_ref(), failure)
                        .await;
                }
            }
        }
    }

    /// One attempt at the order, from opening it to `latest` flipped to `issued`.
    async fn attempt(&self, latest: &mut Certificate, with: &Attempt<'_>) -> Result<(), IssueStop> {
        with.lease.check()?;
        let mut order = self.open_order(latest, with).await?;
        self.step(Step::OrderCreated, &latest.id);

        let names: Vec<_> = latest.names().cloned().collect();
        let context = ValidationContext {
            engine: self,
            certificate: latest,
            validation: &with.cleared.validation,
            lease: with.lease,
        };
        order
            .validate(with.cleared.validation.kind(), &names, &context)
            .await?;
        with.lease.check()?;
        // The key only now: an order that fails validation never costs a key in the vault.
        let key = self.take_key(latest, order.state()).await?;
        self.step(Step::KeyStored, &latest.id);
        with.lease.check()?;

        if order.finalize(&names, &key).await? {
            self.event(
                &latest.id,
                "finalize",
                EventLevel::Info,
                "Sent the certificate signing request; the certificate authority is issuing",
                None,
            )
            .await;
        }
        self.step(Step::Finalized, &latest.id);
        let chain = order.certificate(&key).await?;
        with.lease.check()?;
        self.store_issued(latest, with.cleared, chain, key).await
    }

    /// Resumes the stored order when it can still complete, else places a new one, and records
    /// it on the certificate, marking it in flight until the lease would have expired, so a
    /// crashed run is picked up again by the due index and resumes it.
    async fn open_order(
        &self,
        latest: &mut Certificate,
        with: &Attempt<'_>,
    ) -> Result<Box<dyn crate::ports::CaOrder>, IssueStop> {
        let mut resume = latest.order_url.clone();
        if let Some(url) = resume
            .as_deref()
            .filter(|url| !same_ca(url, self.ca.directory_url()))
        {
            // The directory moved (staging -> production, or a local Pebble restarted on a new
            // port): that CA is not ours any more, and asking it would only fail as
            // "unreachable" and back off forever.
            tracing::info!(order_url = %url, "stored order is from another CA; not resuming it");
            self.event(
                &latest.id,
                "order",
                EventLevel::Warning,
                "The stored order belongs to another certificate authority; placing a new one",
                None,
            )
            .await;
            resume = None;
        }
        let names: Vec<_> = latest.names().cloned().collect();
        // A renewal of this CA's certificate says which one it replaces (ARI): inside the
        // CA's window, such orders are exempt from its rate limits.
        let replaces = latest
            .ari_id
            .clone()
            .filter(|_| latest.is_renewal() && !latest.from_other_ca(self.ca.directory_url()));
        let profile = latest
            .profile_for(with.cleared.domain.as_ref(), &with.cleared.account)
            .map(str::to_owned);
        let opened = self
            .ca
            .open_order(OrderRequest {
                names: &names,
                resume: resume.as_deref(),
                replaces: replaces.as_deref(),
                profile: profile.as_deref(),
            })
            .await?;
        for note in &opened.notes {
            let (message, problem) = match note {
                OrderNote::StoredInvalid => (
                    "The stored order is invalid; placing a new one".to_owned(),
                    None,
                ),
                OrderNote::StoredUnknown { detail, problem } => (
                    format!("The stored order cannot be resumed ({detail}); placing a new one"),
                    problem.clone(),
                ),
                OrderNote::ReplacesRefused { detail, problem } => (
                    format!(
                        "The certificate authority refused to mark the order as replacing the \
                         current certificate ({detail}); ordered without it"
                    ),
                    problem.clone(),
                ),
            };
            self.event(&latest.id, "order", EventLevel::Warning, message, problem)
                .await;
        }
        let mut order = opened.order;
        let url = order.url().to_owned();
        let in_flight_until = self.now() + self.settings.lease_ttl;
        self.save("order", latest, |stored| {
            stored.order_opened(url.clone(), in_flight_until);
        })
        .await?;
        let mut message = if opened.resumed {
            format!("Resumed the stored ACME order ({})", order.state().as_str())
        } else {
            format!("Placed an ACME order for {}", names_text(latest))
        };
        if let Some(profile) = &profile {
            message.push_str(&format!(" with profile {profile}"));
        }
        let replacing = replaces.is_some()
            && !opened.resumed
            && !opened
                .notes
                .iter()
                .any(|note| matches!(note, OrderNote::ReplacesRefused { .. }));
        if replacing {
            message.push_str(", replacing the current certificate");
        }
        self.event(&latest.id, "order", EventLevel::Info, message, None)
            .await;
        Ok(order)
    }

    /// The key to finalize with: the pending one, or a new one stored in the vault and recorded
    /// on the certificate before the CA ever sees it, so a crash after finalizing resumes with it.
    async fn take_key(
        &self,
        latest: &mut Certificate,
        state: OrderState,
    ) -> Result<crate::model::SecretString, IssueStop> {
        let (key, new_key) = self.order_key(latest, state).await?;
        if let Some(version) = new_key {
            self.save("key", latest, |stored| stored.key_stored(version.0.clone()))
                .await?;
            self.event(
                &latest.id,
                "key",
                EventLevel::Info,
                format!(
                    "Generated a new {} key and stored it",
                    latest.key_type.describe()
                ),
                None,
            )
            .await;
        }
        Ok(key)
    }

    /// The key of the order: the pending one from the vault, or a new one stored in the vault
    /// (its version returned, to be recorded on the certificate) before the CA sees it. An
    /// order past `ready` whose key is gone can never complete.
    async fn order_key(
        &self,
        latest: &Certificate,
        state: OrderState,
    ) -> Result<(crate::model::SecretString, Option<MaterialVersion>), IssueStop> {
        if let Some(version) = latest.pending_material_version.clone() {
            match self
                .services
                .vault
                .get_material(&latest.id, &MaterialVersion(version))
                .await
            {
                Ok(material) => return Ok((material.private_key_pem, None)),
                Err(Error::NotFound(_)) => {
                    self.event(
                        &latest.id,
                        "key",
                        EventLevel::Warning,
                        "The pending key is no longer in the vault",
                        None,
                    )
                    .await;
                }
                Err(error) => {
                    return Err(
                        IssueFailure::from_core("key", "Reading the pending key", &error).into(),
                    );
                }
            }
        }
        if matches!(state, OrderState::Processing | OrderState::Valid) {
            return Err(IssueFailure::new(
                "key",
                "The order was finalized with a key that is no longer stored; \
                 a new order will be placed",
            )
            .with_dead_order()
            .into());
        }
        let key = self.ca.generate_key(latest.key_type)?;
        let material = CertificateMaterial {
            chain_pem: None,
            private_key_pem: key.clone(),
        };
        let version = self
            .services
            .vault
            .put_material(&latest.id, &material)
            .await
            .map_err(|error| IssueFailure::from_core("key", "Storing the new key", &error))?;
        Ok((key, Some(version)))
    }

    /// Stores chain and key as a new vault version, then flips the certificate to `issued`,
    /// due for renewal after the policy's plan (a random point of the CA's ARI window when it
    /// offers one), and shows it on its domain.
    async fn store_issued(
        &self,
        latest: &mut Certificate,
        cleared: &Cleared,
        chain: crate::ports::IssuedChain,
        key: crate::model::SecretString,
    ) -> Result<(), IssueStop> {
        let material = CertificateMaterial {
            chain_pem: Some(chain.chain_pem.clone()),
            private_key_pem: key,
        };
        let version = self
            .services
            .vault
            .put_material(&latest.id, &material)
            .await
            .map_err(|error| {
                IssueFailure::from_core("stored", "Storing the certificate", &error)
            })?;
        self.event(
            &latest.id,
            "stored",
            EventLevel::Info,
            "Stored the certificate chain and key",
            None,
        )
        .await;
        let now = self.now();
        // A window already open for a certificate just issued (or outside its life) is a CA
        // mistake: renewing at once would loop, so the policy's own schedule applies instead.
        let window = match &chain.ari_id {
            Some(ari_id) => self.ca.renewal_info(ari_id).await,
            None => None,
        }
        .map(|suggestion| suggestion.window)
        .filter(|window| {
            window.start > now && window.end >= window.start && window.start < chain.not_after
        });
        let position = rand::thread_rng().r#gen::<f64>();
        let plan =
            self.settings
                .renewal_policy
                .plan(chain.not_before, chain.not_after, window, position);
        let profile = latest
            .profile_for(cleared.domain.as_ref(), &cleared.account)
            .map(str::to_owned);
        let issued = IssuedMaterial {
            version: version.0.clone(),
            not_before: chain.not_before,
            not_after: chain.not_after,
            ca_directory_url: self.ca.directory_url().to_owned(),
            ari_id: chain.ari_id.clone(),
            profile: profile.clone(),
        };
        let before = latest.clone();
        self.save("stored", latest, |stored| {
            stored.record_issued(issued.clone(), plan.at, now);
        })
        .await?;
        // The versions the certificate no longer refers to (the chain it served before, the
        // pending key now stored with its chain) go, so a vault holds about one version per
        // certificate; a failure leaves them for the next issuance.
        let superseded: Vec<crate::ports::MaterialVersion> = before
            .material_versions()
            .filter(|old| **old != version.0)
            .map(|old| crate::ports::MaterialVersion(old.clone()))
            .collect();
        if !superseded.is_empty() {
            if let Err(error) = self
                .services
                .vault
                .prune_material(&latest.id, std::slice::from_ref(&version), &superseded)
                .await
            {
                tracing::warn!(%error, "could not delete the superseded certificate material");
            }
        }
        if let Some(domain) = &cleared.domain {
            self.update_domain(domain, |domain| {
                let fresh = domain.provisioning_step != crate::model::ProvisioningStep::Active
                    || domain.certificate_id.as_ref() != Some(&latest.id);
                domain.certificate_issued(latest.id.clone());
                fresh
            })
            .await;
        }
        let lifetime = chain.not_after - chain.not_before;
        let profile_text = profile
            .map(|profile| format!(", profile {profile}"))
            .unwrap_or_default();
        self.event(
            &latest.id,
            "issued",
            EventLevel::Info,
            format!(
                "Issued for {}, valid until {} ({}{profile_text}); renewal due {} ({})",
                names_text(latest),
                rfc3339(chain.not_after),
                describe_lifetime(lifetime),
                rfc3339(plan.at),
                plan.basis.describe()
            ),
            None,
        )
        .await;
        tracing::info!(expires_at = %rfc3339(chain.not_after), "certificate issued");
        Ok(())
    }

    /// Records a failed run on `latest` (re-read on a conflict): the reason, the backoff
    /// (never before the CA's `Retry-After`), and status `failed` unless valid material is
    /// still served; a domain waiting for its first certificate shows the failure.
    async fn record_failure(
        &self,
        latest: Certificate,
        domain: Option<&Domain>,
        failure: IssueFailure,
    ) -> Result<IssueOutcome> {
        let now = self.now();
        let policy = &self.settings.renewal_policy;
        let Some(stored) = change_certificate(&self.services, latest, |stored| {
            stored.record_failure(&failure, now, policy);
            true
        })
        .await?
        else {
            return Ok(IssueOutcome::Skipped);
        };
        tracing::warn!(
            step = failure.step,
            problem = failure.problem.as_deref().unwrap_or(""),
            failures = stored.consecutive_failures,
            next_attempt_at = %stored.next_attempt_at.map(rfc3339).unwrap_or_default(),
            "issuance failed"
        );
        let next = stored
            .next_attempt_at
            .map(|at| format!("; next attempt at {}", rfc3339(at)))
            .unwrap_or_default();
        self.event(
            &stored.id,
            failure.step,
            EventLevel::Error,
            format!("{}{next}", failure.message),
            failure.problem.clone(),
        )
        .await;
        if stored.status == CertificateStatus::Failed {
            if let Some(domain) = domain {
                let (reason, at, count) = (
                    stored.last_error.clone(),
                    stored.next_attempt_at,
                    stored.consecutive_failures,
                );
                self.update_domain(domain, |domain| {
                    domain.certificate_failed(reason.clone(), at, count)
                })
                .await;
            }
        }
        Ok(IssueOutcome::Failed(stored))
    }

    /// Records that the order budget is spent: the reason and the next attempt on the
    /// certificate, an event, and the same on a domain still waiting for its first
    /// certificate.
    async fn defer(
        &self,
        latest: Certificate,
        domain: Option<&Domain>,
        spent: Spent,
    ) -> Result<IssueOutcome> {
        let now = self.now();
        let Some(stored) = change_certificate(&self.services, latest, |stored| {
            stored.wait_for_order_budget(&spent.reason, spent.retry_at, now);
            true
        })
        .await?
        else {
            return Ok(IssueOutcome::Skipped);
        };
        tracing::info!(next_attempt_at = %rfc3339(spent.retry_at), "order budget spent");
        self.event(
            &stored.id,
            "order",
            EventLevel::Warning,
            format!(
                "{}; next attempt at {}",
                spent.reason,
                rfc3339(spent.retry_at)
            ),
            None,
        )
        .await;
        if stored.status == CertificateStatus::Failed {
            if let Some(domain) = domain {
                let failures = stored.consecutive_failures;
                self.update_domain(domain, |domain| {
                    domain.certificate_failed(
                        Some(spent.reason.clone()),
                        Some(spent.retry_at),
                        failures,
                    )
                })
                .await;
            }
        }
        Ok(IssueOutcome::Deferred(stored))
    }

    /// Whether a run on `certificate` places a new order: it has none stored, or the stored
    /// one is from another CA ([`IssuanceEngine::open_order`] does not resume it).
    fn places_new_order(&self, certificate: &Certificate) -> bool {
        certificate
            .order_url
            .as_deref()
            .is_none_or(|url| !same_ca(url, self.ca.directory_url()))
    }

    /// The domain of a managed certificate, as stored; `None` for a downloadable one, or when
    /// it cannot be read (its view is refreshed by the next run anyway).
    async fn read_domain(&self, certificate: &Certificate) -> Option<Domain> {
        let domain_id = certificate.managed_domain()?;
        self.services
            .store
            .get_domain(&certificate.account_id, domain_id)
            .await
            .ok()
            .flatten()
    }

    /// Best-effort update of a managed certificate's domain: the certificate is the source of
    /// truth, and the domain's view is refreshed by the next run anyway. `change` returns
    /// `false` to leave it alone.
    async fn update_domain(&self, domain: &Domain, change: impl Fn(&mut Domain) -> bool) {
        if let Err(error) = change_domain(&self.services, domain.clone(), change).await {
            tracing::warn!(%error, "could not update the certificate's domain");
        }
    }

    /// The served chain of `certificate`, from the vault.
    async fn served_chain(&self, certificate: &Certificate) -> Result<Option<String>> {
        let Some(version) = certificate.material_version.clone() else {
            return Ok(None);
        };
        let material = self
            .services
            .vault
            .get_material(&certificate.id, &MaterialVersion(version))
            .await?;
        Ok(material.chain_pem)
    }
}

#[async_trait]
impl Issuance for IssuanceEngine {
    async fn issue(
        &self,
        account: &AccountId,
        certificate: &CertificateId,
    ) -> Result<IssueOutcome> {
        let span = tracing::info_span!("issue", certificate = %certificate);
        async {
            match self
                .services
                .store
                .get_certificate(account, certificate)
                .await?
            {
                Some(stored) => self.issue_read(&stored).await,
                None => Ok(IssueOutcome::Skipped),
            }
        }
        .instrument(span)
        .await
    }

    async fn issue_certificate(&self, certificate: &Certificate) -> Result<IssueOutcome> {
        let span = tracing::info_span!("issue", certificate = %certificate.id);
        self.issue_read(certificate).instrument(span).await
    }

    async fn revoke(&self, certificate: &Certificate) -> Result<()> {
        let chain = self
            .served_chain(certificate)
            .await?
            .ok_or(Error::NotIssued)?;
        self.ca.revoke(&chain).await?;
        self.event(
            &certificate.id,
            "revoke",
            EventLevel::Info,
            "Revoked at the certificate authority",
            None,
        )
        .await;
        Ok(())
    }

    async fn renewal_window(&self, certificate: &Certificate) -> Result<Option<RenewalSuggestion>> {
        let Some(ari_id) = certificate.ari_id.clone() else {
            return Ok(None);
        };
        Ok(self.ca.renewal_info(&ari_id).await)
    }

    async fn profiles(&self) -> Result<Option<Profiles>> {
        self.ca
            .profiles()
            .await
            .map(Some)
            .map_err(|failure| Error::Acme {
                problem: failure.problem,
                message: failure.message,
            })
    }

    async fn order_budget_level(&self) -> Result<Option<BucketLevel>> {
        let level = (self.settings.order_budget)
            .account_level(self.services.store.as_ref(), self.now())
            .await?;
        Ok(Some(level))
    }

    fn ca_directory_url(&self) -> Option<&str> {
        Some(self.ca.directory_url())
    }
}

/// The lease name of a certificate's name set (the model's rule, shared with the key storage
/// sweep).
fn lease_name(certificate: &Certificate) -> String {
    certificate.issuance_lease_name()
}

/// A random lease owner token.
fn lease_owner() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// Whether `order_url` is served by the CA of `directory_url` (same scheme, host and port):
/// an order can only be resumed at the CA that created it.
fn same_ca(order_url: &str, directory_url: &str) -> bool {
    fn origin(url: &str) -> Option<&str> {
        let rest_start = url.find("://")? + 3;
        let end = url[rest_start..]
            .find('/')
            .map_or(url.len(), |slash| rest_start + slash);
        Some(&url[..end])
    }
    match (origin(order_url), origin(directory_url)) {
        (Some(order), Some(directory)) => order.eq_ignore_ascii_case(directory),
        // Not a URL we understand: let the CA say whether it knows the order.
        _ => true,
    }
}

/// The certificate's names for messages, primary first.
pub(crate) fn names_text(certificate: &Certificate) -> String {
    certificate
        .names()
        .map(|name| name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// A lifetime as people say it: days, or hours and minutes under a day.
fn describe_lifetime(lifetime: Duration) -> String {
    if lifetime >= Duration::days(1) {
        let days = lifetime.as_seconds_f64() / 86_400.0;
        if (days - days.round()).abs() < 0.01 {
            format!("{}-day lifetime", days.round())
        } else {
            format!("{days:.1}-day lifetime")
        }
    } else {
        format!("{}-minute lifetime", lifetime.whole_minutes())
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    crate::model::rfc3339(at)
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;
    use crate::hostname::Hostname;
    use crate::ids::ZoneId;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn certificate() -> Certificate {
        Certificate::downloadable(
            AccountId::generate(),
            ZoneId::generate(),
            Hostname::parse_certificate_name("www.example.com").unwrap(),
            vec![
                Hostname::parse_certificate_name("example.com").unwrap(),
                Hostname::parse_certificate_name("*.example.com").unwrap(),
            ],
            NOW,
        )
    }

    #[test]
    fn lease_names_do_not_depend_on_name_order() {
        let first = certificate();
        let mut second = first.clone();
        second.domain = first.sans[1].clone();
        second.sans = vec![first.sans[0].clone(), first.domain.clone()];
        assert_eq!(lease_name(&first), lease_name(&second));
        assert_eq!(
            lease_name(&first),
            "issue:*.example.com,example.com,www.example.com"
        );
    }

    #[test]
    fn an_order_is_resumed_only_at_the_ca_that_created_it() {
        let directory = "https://127.0.0.1:14000/dir";
        assert!(same_ca("https://127.0.0.1:14000/my-order/abc", directory));
        assert!(same_ca("HTTPS://127.0.0.1:14000/my-order/abc", directory));
        // A local Pebble restarted on another port; staging vs production.
        assert!(!same_ca("https://127.0.0.1:14001/my-order/abc", directory));
        assert!(!same_ca(
            "https://acme-staging-v02.api.letsencrypt.org/acme/order/1/2",
            "https://acme-v02.api.letsencrypt.org/directory"
        ));
    }

    #[test]
    fn lifetimes_read_as_days_or_minutes() {
        assert_eq!(describe_lifetime(Duration::days(90)), "90-day lifetime");
        assert_eq!(describe_lifetime(Duration::days(6)), "6-day lifetime");
        assert_eq!(describe_lifetime(Duration::hours(36)), "1.5-day lifetime");
        assert_eq!(
            describe_lifetime(Duration::seconds(90)),
            "1-minute lifetime"
        );
    }
}

//! [`Issuer`]: the issue use case over ACME, and revocation.
//!
//! One run of [`Issuance::issue`]:
//! 1. reads the certificate and returns at once when nothing is due;
//! 2. takes the lease on its sorted name set (held elsewhere: `InProgress`), then reads the
//!    certificate again, because the previous holder may just have issued it;
//! 3. runs pre-flight (a refusal is recorded and never reaches the CA);
//! 4. attempts the order: resume the stored order or place a new one (its URL stored at once,
//!    so a crash resumes it), solve the challenges, take the pending key from the vault or
//!    generate and store one *before* finalizing, finalize, download, store chain and key as a
//!    new vault version, and only then flip the certificate to `issued`;
//! 5. retries the attempt within the run when the CA failed transiently (the stored order is
//!    resumed), otherwise records the failure with its backoff and the CA's `Retry-After`.
//!
//! Every durable step appends a certificate event. A crash at any point leaves the certificate
//! due again once the lease has expired, with everything it needs to resume.

use std::collections::BTreeSet;
use std::sync::Arc;

use async_trait::async_trait;
use edgecert_core::model::{
    Certificate, CertificateEvent, CertificateKind, CertificateStatus, Domain, EventLevel,
    ProvisioningStep, SecretString,
};
use edgecert_core::ports::{CertificateMaterial, Issuance, IssueOutcome, MaterialVersion};
use edgecert_core::usecases::Services;
use edgecert_core::usecases::versioned::{change_certificate, change_domain};
use edgecert_core::{AccountId, CertificateId, Error, RenewalSuggestion};
use instant_acme::{
    Account, HttpClient, Identifier, NewOrder, Order, OrderStatus, RetryPolicy, RevocationRequest,
};
use rand::{Rng as _, RngCore as _};
use rcgen::KeyPair;
use rustls::pki_types::CertificateDer;
use time::OffsetDateTime;
use tracing::Instrument as _;

use crate::account::AccountSlot;
use crate::ari;
use crate::ca_outage::CaOutage;
use crate::config::IssuerConfig;
use crate::error::{AcmeError, Result};
use crate::failure::{Failure, Stop};
use crate::http::{self, RetryAfterRecorder};
use crate::keys;
use crate::lease::LeaseKeeper;
use crate::preflight::{self, Refusal, Validation};
use crate::steps::{Step, StepHook};

/// Obtains, renews and revokes certificates over ACME; implements
/// [`Issuance`](edgecert_core::ports::Issuance).
///
/// Build it once per process and share it (`Arc<dyn Issuance>`): it holds the ACME account,
/// loaded from the vault or registered on first use.
pub struct Issuer {
    pub(crate) services: Services,
    pub(crate) config: IssuerConfig,
    account: AccountSlot,
    /// Whether the CA was just found unreachable.
    ca_outage: CaOutage,
    hook: Option<Arc<dyn StepHook>>,
}

impl Issuer {
    /// An issuer over `services` (store, vault, resolver, clock, plans, edge settings, DNS
    /// providers) talking to `config.directory_url` with the default CA client
    /// ([`ca_http_client`](crate::ca_http_client)).
    ///
    /// `services.issuance` is not used. Fails when the CA root file cannot be read.
    pub fn new(services: Services, config: IssuerConfig) -> Result<Issuer> {
        let http = http::ca_http_client(config.ca_root_pem.as_deref(), config.request_timeout)?;
        Ok(Issuer::with_http_client(services, config, http))
    }

    /// An issuer talking to the CA through `http` (a fault layer in tests, or a client with
    /// other TLS settings); `config.ca_root_pem` and `config.request_timeout` are then up to
    /// that client.
    pub fn with_http_client(
        services: Services,
        config: IssuerConfig,
        http: Box<dyn HttpClient>,
    ) -> Issuer {
        let http: Arc<dyn HttpClient> = Arc::new(RetryAfterRecorder { inner: http });
        let account = AccountSlot::new(
            config.directory_url.clone(),
            config.contact_email.clone(),
            http,
        );
        Issuer {
            ca_outage: CaOutage::new(config.ca_cool_down),
            services,
            config,
            account,
            hook: None,
        }
    }

    /// Calls `hook` after each [`Step`] of every run (crash-safety tests).
    pub fn with_step_hook(mut self, hook: Arc<dyn StepHook>) -> Issuer {
        self.hook = Some(hook);
        self
    }

    /// The configuration in force.
    pub fn config(&self) -> &IssuerConfig {
        &self.config
    }

    pub(crate) fn now(&self) -> OffsetDateTime {
        self.services.clock.now()
    }

    pub(crate) fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy::new()
            .initial_delay(self.config.poll_initial_delay)
            .backoff(2.0)
            .timeout(self.config.poll_timeout)
    }

    pub(crate) fn step(&self, step: Step, certificate: &CertificateId) {
        tracing::debug!(step = step.as_str(), "issuance step done");
        if let Some(hook) = &self.hook {
            hook.after(step, certificate);
        }
    }

    /// Appends an event; the log is best-effort and never stops a run.
    pub(crate) async fn event(
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

    async fn read(
        &self,
        account: &AccountId,
        id: &CertificateId,
    ) -> edgecert_core::Result<Option<Certificate>> {
        self.services.store.get_certificate(account, id).await
    }

    /// Version-checked read-modify-write ([`change_certificate`]) of a change that always
    /// applies. `Ok(None)` when the certificate is gone.
    async fn modify(
        &self,
        current: Certificate,
        change: impl Fn(&mut Certificate),
    ) -> edgecert_core::Result<Option<Certificate>> {
        change_certificate(&self.services, current, |stored| {
            change(stored);
            true
        })
        .await
    }

    /// [`Issuer::modify`] inside a run: a gone certificate ends the run, a failed write is a
    /// failure of `step`.
    pub(crate) async fn save(
        &self,
        step: &'static str,
        current: Certificate,
        change: impl Fn(&mut Certificate),
    ) -> Result<Certificate, Stop> {
        match self.modify(current, change).await {
            Ok(Some(stored)) => Ok(stored),
            Ok(None) => Err(Stop::Gone),
            Err(error) => Err(Failure::from_core(step, "Saving the certificate", &error).into()),
        }
    }

    /// Everything after the lease: pre-flight, then attempts.
    async fn run(
        &self,
        lease: &LeaseKeeper,
        account: &AccountId,
        id: &CertificateId,
    ) -> edgecert_core::Result<IssueOutcome> {
        let Some(certificate) = self.read(account, id).await? else {
            return Ok(IssueOutcome::Skipped);
        };
        if !is_due(&certificate, self.now()) {
            // The previous lease holder finished while we were waiting for the lease.
            return Ok(match certificate.status {
                CertificateStatus::Issued => IssueOutcome::Issued(certificate),
                _ => IssueOutcome::Skipped,
            });
        }
        let validation =
            match preflight::check(&self.services, &self.config.caa_identities, &certificate).await
            {
                Ok(validation) => validation,
                Err(Refusal::Skip(reason)) => {
                    tracing::info!(reason, "issuance skipped");
                    return Ok(IssueOutcome::Skipped);
                }
                Err(Refusal::Fail(failure)) => {
                    return self.record_failure(certificate, failure).await;
                }
            };
        let how = match &validation {
            Validation::Http01 => "HTTP-01 through the edge".to_owned(),
            Validation::Dns01 { zone, .. } => format!("DNS-01 in zone {}", zone.name),
        };
        self.event(
            id,
            "preflight",
            EventLevel::Info,
            format!(
                "Pre-flight checks passed for {}; validating by {how}",
                names_text(&certificate)
            ),
            None,
        )
        .await;
        if let Some(until) = self.ca_outage.cooling_down(self.now()) {
            // The CA did not answer a moment ago: say so now rather than wait for its timeout.
            let wait = std::time::Duration::try_from(until - self.now()).unwrap_or_default();
            return self
                .record_failure(certificate, Failure::ca_cooling_down(wait))
                .await;
        }
        let mut attempt = 1;
        loop {
            let Some(certificate) = self.read(account, id).await? else {
                return Ok(IssueOutcome::Skipped);
            };
            match self.attempt(certificate, &validation, lease).await {
                Ok(issued) => {
                    self.ca_outage.answered();
                    return Ok(IssueOutcome::Issued(issued));
                }
                Err(Stop::Gone) => return Ok(IssueOutcome::Skipped),
                Err(Stop::LeaseLost) => return Ok(IssueOutcome::InProgress),
                Err(Stop::Failed(failure))
                    if failure.transient && attempt < self.config.attempts_per_run =>
                {
                    self.event(
                        id,
                        failure.step,
                        EventLevel::Warning,
                        format!("{}; retrying", failure.message),
                        failure.problem.clone(),
                    )
                    .await;
                    tokio::time::sleep(self.config.attempt_pause * attempt).await;
                    attempt += 1;
                }
                Err(Stop::Failed(mut failure)) => {
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
                    let Some(latest) = self.read(account, id).await? else {
                        return Ok(IssueOutcome::Skipped);
                    };
                    return self.record_failure(latest, failure).await;
                }
            }
        }
    }

    /// One attempt at the order, from opening it to the certificate flipped to `issued`.
    async fn attempt(
        &self,
        certificate: Certificate,
        validation: &Validation,
        lease: &LeaseKeeper,
    ) -> Result<Certificate, Stop> {
        let account = self
            .account
            .get(self.services.vault.as_ref())
            .await
            .map_err(Failure::from_account)?;
        lease.check()?;
        let (mut order, certificate) = self.open_order(account, certificate).await?;
        self.step(Step::OrderCreated, &certificate.id);

        let mut withdrawn = BTreeSet::new();
        let validated = if order.state().status == OrderStatus::Pending {
            self.validate(&mut order, &certificate, validation, lease, &mut withdrawn)
                .await
        } else {
            Ok(())
        };
        // Answers left by an interrupted run (or for reused authorizations) go too.
        self.sweep(&mut order, &certificate, validation, &withdrawn)
            .await;
        validated?;
        lease.check()?;

        let (key, certificate) = self.order_key(&mut order, certificate).await?;
        self.step(Step::KeyStored, &certificate.id);

        if order.state().status == OrderStatus::Ready {
            let csr = keys::csr(certificate.names(), &key)
                .map_err(|error| Failure::from_local("finalize", "Building the CSR", &error))?;
            order
                .finalize_csr(&csr)
                .await
                .map_err(|error| Failure::from_acme("finalize", "Finalizing the order", error))?;
            self.event(
                &certificate.id,
                "finalize",
                EventLevel::Info,
                "Sent the certificate signing request; the certificate authority is issuing",
                None,
            )
            .await;
        }
        self.step(Step::Finalized, &certificate.id);

        let downloading =
            |error| Failure::from_acme("download", "Downloading the certificate", error);
        // A CA that issued while answering the finalize has the chain ready: take it without
        // waiting for the first poll.
        let chain = if order.state().status == OrderStatus::Valid {
            order
                .certificate()
                .await
                .map_err(downloading)?
                .ok_or_else(|| {
                    downloading(instant_acme::Error::Str(
                        "no certificates received from ACME CA",
                    ))
                })?
        } else {
            order
                .poll_certificate(&self.retry_policy())
                .await
                .map_err(downloading)?
        };
        let leaf = keys::leaf(&chain).map_err(|error| {
            Failure::from_local("download", "Reading the certificate", &error).with_dead_order()
        })?;
        if !leaf.matches(&key) {
            return Err(Failure::new(
                "download",
                "The certificate from the certificate authority does not match the stored key; \
                 a new order will be placed",
            )
            .with_dead_order()
            .into());
        }
        lease.check()?;
        self.store_issued(account, certificate, chain, &key, &leaf)
            .await
    }

    /// Resumes the stored order when it can still complete, else places a new one and stores
    /// its URL at once. Marks the certificate in flight until the lease would have expired, so
    /// a crashed run is picked up again by the due index.
    async fn open_order(
        &self,
        account: &Account,
        certificate: Certificate,
    ) -> Result<(Order, Certificate), Stop> {
        let mut resumed = None;
        let mut order_url = certificate.order_url.as_deref();
        if let Some(url) = order_url.filter(|url| !same_ca(url, &self.config.directory_url)) {
            // The directory moved (staging -> production, or a local Pebble restarted on a new
            // port): that CA is not ours any more, and asking it would only fail as
            // "unreachable" and back off forever.
            tracing::info!(order_url = %url, "stored order is from another CA; not resuming it");
            self.event(
                &certificate.id,
                "order",
                EventLevel::Warning,
                "The stored order belongs to another certificate authority; placing a new one",
                None,
            )
            .await;
            order_url = None;
        }
        if let Some(url) = order_url {
            match account.order(url.to_owned()).await {
                Ok(mut order) => {
                    if order.state().status != OrderStatus::Invalid {
                        resumed = Some(order);
                    } else {
                        self.event(
                            &certificate.id,
                            "order",
                            EventLevel::Warning,
                            "The stored order is invalid; placing a new one",
                            None,
                        )
                        .await;
                    }
                }
                // An order the CA no longer knows (expired, or another account's).
                Err(instant_acme::Error::Api(problem)) => {
                    self.event(
                        &certificate.id,
                        "order",
                        EventLevel::Warning,
                        format!(
                            "The stored order cannot be resumed ({}); placing a new one",
                            problem.detail.as_deref().unwrap_or("no detail given")
                        ),
                        problem.r#type.clone(),
                    )
                    .await;
                }
                Err(error) => {
                    return Err(Failure::from_acme("order", "Resuming the order", error).into());
                }
            }
        }
        let created = resumed.is_none();
        let mut order = match resumed {
            Some(order) => order,
            None => {
                let identifiers: Vec<Identifier> = certificate
                    .names()
                    .map(|name| Identifier::Dns(name.to_string()))
                    .collect();
                account
                    .new_order(&NewOrder::new(&identifiers))
                    .await
                    .map_err(|error| Failure::from_acme("order", "Creating the order", error))?
            }
        };
        let url = order.url().to_owned();
        let in_flight_until = self.now() + self.config.lease_ttl;
        let certificate = self
            .save("order", certificate, |stored| {
                stored.order_url = Some(url.clone());
                // A renewal keeps serving its current material meanwhile.
                if matches!(
                    stored.status,
                    CertificateStatus::Pending | CertificateStatus::Failed
                ) {
                    stored.status = CertificateStatus::Validating;
                }
                stored.next_attempt_at = Some(in_flight_until);
            })
            .await?;
        let message = if created {
            format!("Placed an ACME order for {}", names_text(&certificate))
        } else {
            format!(
                "Resumed the stored ACME order ({})",
                order_status_text(order.state().status)
            )
        };
        self.event(&certificate.id, "order", EventLevel::Info, message, None)
            .await;
        Ok((order, certificate))
    }

    /// The key of the order: the pending one from the vault, or a new one stored (and recorded
    /// on the certificate) before it is ever sent to the CA.
    async fn order_key(
        &self,
        order: &mut Order,
        certificate: Certificate,
    ) -> Result<(KeyPair, Certificate), Stop> {
        if let Some(version) = certificate.pending_material_version.clone() {
            match self
                .services
                .vault
                .get_material(&certificate.id, &MaterialVersion(version))
                .await
            {
                Ok(material) => {
                    let key = keys::parse(material.private_key_pem.expose()).map_err(|error| {
                        Failure::from_local("key", "Reading the pending key", &error)
                    })?;
                    return Ok((key, certificate));
                }
                Err(Error::NotFound(_)) => {
                    self.event(
                        &certificate.id,
                        "key",
                        EventLevel::Warning,
                        "The pending key is no longer in the vault",
                        None,
                    )
                    .await;
                }
                Err(error) => {
                    return Err(Failure::from_core("key", "Reading the pending key", &error).into());
                }
            }
        }
        if order.state().status != OrderStatus::Ready {
            return Err(Failure::new(
                "key",
                "The order was finalized with a key that is no longer stored; \
                 a new order will be placed",
            )
            .with_dead_order()
            .into());
        }
        let key = keys::generate(certificate.key_type)
            .map_err(|error| Failure::from_local("key", "Generating the key", &error))?;
        let material = CertificateMaterial {
            chain_pem: None,
            private_key_pem: SecretString::new(key.serialize_pem()),
        };
        let version = self
            .services
            .vault
            .put_material(&certificate.id, &material)
            .await
            .map_err(|error| Failure::from_core("key", "Storing the new key", &error))?;
        let certificate = self
            .save("key", certificate, |stored| {
                stored.pending_material_version = Some(version.0.clone());
            })
            .await?;
        self.event(
            &certificate.id,
            "key",
            EventLevel::Info,
            format!(
                "Generated a new {} key and stored it",
                keys::describe(certificate.key_type)
            ),
            None,
        )
        .await;
        Ok((key, certificate))
    }

    /// Stores chain and key as a new vault version, then flips the certificate to `issued`,
    /// due for renewal at a random point of the CA's ARI window when it offers one, else at
    /// two thirds of the lifetime.
    async fn store_issued(
        &self,
        account: &Account,
        certificate: Certificate,
        chain: String,
        key: &KeyPair,
        leaf: &keys::Leaf,
    ) -> Result<Certificate, Stop> {
        let material = CertificateMaterial {
            chain_pem: Some(chain),
            private_key_pem: SecretString::new(key.serialize_pem()),
        };
        let version = self
            .services
            .vault
            .put_material(&certificate.id, &material)
            .await
            .map_err(|error| Failure::from_core("stored", "Storing the certificate", &error))?;
        self.event(
            &certificate.id,
            "stored",
            EventLevel::Info,
            "Stored the certificate chain and key",
            None,
        )
        .await;
        let now = self.now();
        // A window already open for a certificate just issued (or outside its life) is a CA
        // mistake: renewing at once would loop, so the policy's own schedule applies instead.
        let window = ari::suggestion(account, &leaf.der)
            .await
            .map(|suggestion| suggestion.window)
            .filter(|window| {
                window.start > now && window.end >= window.start && window.start < leaf.not_after
            });
        let position = rand::thread_rng().r#gen::<f64>();
        let renew_at = self.config.renewal_policy.next_renewal_at(
            leaf.not_before,
            leaf.not_after,
            window,
            position,
        );
        let schedule = if window.is_some() {
            "inside the certificate authority's renewal window"
        } else {
            "at two thirds of its lifetime"
        };
        let issued = self
            .save("stored", certificate, |stored| {
                stored.status = CertificateStatus::Issued;
                stored.material_version = Some(version.0.clone());
                stored.issued_at = Some(now);
                stored.not_before = Some(leaf.not_before);
                stored.expires_at = Some(leaf.not_after);
                stored.next_renewal_at = Some(renew_at);
                stored.next_attempt_at = None;
                stored.order_url = None;
                stored.pending_material_version = None;
                stored.last_error = None;
                stored.consecutive_failures = 0;
            })
            .await?;
        self.update_domain(&issued, |domain| {
            domain.provisioning_step = ProvisioningStep::Active;
            domain.last_error = None;
            domain.next_attempt_at = None;
            domain.consecutive_failures = 0;
            domain.certificate_id = Some(issued.id.clone());
        })
        .await;
        self.event(
            &issued.id,
            "issued",
            EventLevel::Info,
            format!(
                "Issued for {}, valid until {}; renewal due {} ({schedule})",
                names_text(&issued),
                rfc3339(leaf.not_after),
                rfc3339(renew_at)
            ),
            None,
        )
        .await;
        tracing::info!(expires_at = %rfc3339(leaf.not_after), "certificate issued");
        Ok(issued)
    }

    /// Records a failed run: reason, backoff (never before the CA's `Retry-After`), and status
    /// `failed` unless valid material is still being served (a failed renewal stays `issued`).
    async fn record_failure(
        &self,
        certificate: Certificate,
        failure: Failure,
    ) -> edgecert_core::Result<IssueOutcome> {
        let now = self.now();
        let retry_at = failure
            .retry_after
            .and_then(|delay| time::Duration::try_from(delay).ok())
            .map(|delay| now + delay);
        let policy = &self.config.renewal_policy;
        let Some(stored) = self
            .modify(certificate, |stored| {
                stored.consecutive_failures = stored.consecutive_failures.saturating_add(1);
                stored.last_error = Some(failure.message.clone());
                stored.next_attempt_at = Some(policy.next_attempt_at(
                    now,
                    stored.consecutive_failures,
                    stored.expires_at,
                    retry_at,
                ));
                stored.status = if serves_material(stored, now) {
                    CertificateStatus::Issued
                } else {
                    CertificateStatus::Failed
                };
                if failure.order_dead {
                    stored.order_url = None;
                }
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
            let (reason, at, count) = (
                stored.last_error.clone(),
                stored.next_attempt_at,
                stored.consecutive_failures,
            );
            self.update_domain(&stored, |domain| {
                // An active domain keeps serving; only a domain waiting for its first
                // certificate shows the failure.
                if domain.provisioning_step != ProvisioningStep::Active {
                    domain.provisioning_step = ProvisioningStep::Failed;
                    domain.last_error = reason.clone();
                    domain.next_attempt_at = at;
                    domain.consecutive_failures = count;
                }
            })
            .await;
        }
        Ok(IssueOutcome::Failed(stored))
    }

    /// Best-effort update of a managed certificate's domain: the certificate is the source of
    /// truth, and the domain's view is refreshed by the next run anyway.
    async fn update_domain(&self, certificate: &Certificate, change: impl Fn(&mut Domain)) {
        let CertificateKind::Managed { domain_id } = &certificate.kind else {
            return;
        };
        let domain = match self
            .services
            .store
            .get_domain(&certificate.account_id, domain_id)
            .await
        {
            Ok(Some(domain)) => domain,
            Ok(None) => return,
            Err(error) => {
                tracing::warn!(%error, "could not read the certificate's domain");
                return;
            }
        };
        let changed = change_domain(&self.services, domain, |domain| {
            change(domain);
            true
        })
        .await;
        if let Err(error) = changed {
            tracing::warn!(%error, "could not update the certificate's domain");
        }
    }
}

#[async_trait]
impl Issuance for Issuer {
    async fn issue(
        &self,
        account: &AccountId,
        certificate: &CertificateId,
    ) -> edgecert_core::Result<IssueOutcome> {
        let span = tracing::info_span!("issue", certificate = %certificate);
        async {
            let now = self.now();
            let Some(stored) = self.read(account, certificate).await? else {
                return Ok(IssueOutcome::Skipped);
            };
            if !is_due(&stored, now) {
                return Ok(IssueOutcome::Skipped);
            }
            let name = lease_name(&stored);
            let lease = match self
                .services
                .store
                .acquire_lease(&name, &lease_owner(), self.config.lease_ttl, now)
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
                self.config.lease_ttl,
            );
            // Stopped where it stands once the lease is lost, as a crash would stop it: the
            // new owner resumes from what was stored.
            let outcome = tokio::select! {
                outcome = http::with_retry_after_slot(self.run(&keeper, account, certificate)) => outcome,
                () = keeper.lost() => Ok(IssueOutcome::InProgress),
            };
            keeper.release().await;
            outcome
        }
        .instrument(span)
        .await
    }

    async fn revoke(&self, certificate: &Certificate) -> edgecert_core::Result<()> {
        let version = certificate
            .material_version
            .clone()
            .ok_or(Error::NotIssued)?;
        let material = self
            .services
            .vault
            .get_material(&certificate.id, &MaterialVersion(version))
            .await?;
        let chain = material.chain_pem.ok_or(Error::NotIssued)?;
        let leaf = keys::leaf(&chain)?;
        let account = self
            .account
            .get(self.services.vault.as_ref())
            .await
            .map_err(|failure| match failure {
                crate::account::AccountFailure::Vault(error) => error,
                crate::account::AccountFailure::Acme(error) => Error::from(error),
            })?;
        let der = CertificateDer::from(leaf.der);
        let revoked = http::with_retry_after_slot(account.revoke(&RevocationRequest {
            certificate: &der,
            reason: None,
        }))
        .await;
        match revoked {
            Ok(()) => {}
            // Revoking twice is not an error for the caller: the outcome is what was asked.
            Err(instant_acme::Error::Api(problem))
                if problem.r#type.as_deref()
                    == Some("urn:ietf:params:acme:error:alreadyRevoked") => {}
            Err(error) => return Err(AcmeError::from(error).into()),
        }
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

    async fn renewal_window(
        &self,
        certificate: &Certificate,
    ) -> edgecert_core::Result<Option<RenewalSuggestion>> {
        let Some(version) = certificate.material_version.clone() else {
            return Ok(None);
        };
        let account = match self.account.get(self.services.vault.as_ref()).await {
            Ok(account) => account,
            Err(crate::account::AccountFailure::Vault(error)) => return Err(error),
            // The renewal itself will meet (and record) the same CA failure.
            Err(crate::account::AccountFailure::Acme(error)) => {
                tracing::warn!(%error, "no ACME account to ask for the renewal window");
                return Ok(None);
            }
        };
        let material = self
            .services
            .vault
            .get_material(&certificate.id, &MaterialVersion(version))
            .await?;
        let Some(chain) = material.chain_pem else {
            return Ok(None);
        };
        let leaf = match keys::leaf(&chain) {
            Ok(leaf) => leaf,
            Err(error) => {
                tracing::warn!(%error, certificate = %certificate.id, "unreadable served chain");
                return Ok(None);
            }
        };
        Ok(ari::suggestion(account, &leaf.der).await)
    }
}

/// Whether a run has work to do now. In-flight certificates (`validating`) always do: the
/// lease decides whether someone else is on them.
fn is_due(certificate: &Certificate, now: OffsetDateTime) -> bool {
    match certificate.status {
        CertificateStatus::Expired | CertificateStatus::Revoked => false,
        CertificateStatus::Validating => true,
        CertificateStatus::Pending | CertificateStatus::Failed => {
            certificate.next_attempt_at.is_none_or(|at| at <= now)
        }
        CertificateStatus::Issued => {
            certificate.renews_automatically() && certificate.due_at().is_some_and(|at| at <= now)
        }
    }
}

/// Whether the certificate has material that is still valid to serve.
fn serves_material(certificate: &Certificate, now: OffsetDateTime) -> bool {
    certificate.material_version.is_some() && certificate.expires_at.is_some_and(|at| at > now)
}

/// The lease name of a certificate's name set: sorted, so the same names always share it.
fn lease_name(certificate: &Certificate) -> String {
    let names: BTreeSet<&str> = certificate.names().map(|name| name.as_str()).collect();
    format!("issue:{}", names.into_iter().collect::<Vec<_>>().join(","))
}

/// A random lease owner token.
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

fn lease_owner() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

pub(crate) fn names_text(certificate: &Certificate) -> String {
    certificate
        .names()
        .map(|name| name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

fn order_status_text(status: OrderStatus) -> &'static str {
    match status {
        OrderStatus::Pending => "pending",
        OrderStatus::Ready => "ready",
        OrderStatus::Processing => "processing",
        OrderStatus::Valid => "valid",
        OrderStatus::Invalid => "invalid",
    }
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

#[cfg(test)]
mod tests {
    use edgecert_core::Hostname;
    use edgecert_core::ids::ZoneId;
    use time::macros::datetime;

    use super::*;

    const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn certificate(status: CertificateStatus) -> Certificate {
        let mut certificate = Certificate::downloadable(
            AccountId::generate(),
            ZoneId::generate(),
            Hostname::parse_certificate_name("www.example.com").unwrap(),
            vec![
                Hostname::parse_certificate_name("example.com").unwrap(),
                Hostname::parse_certificate_name("*.example.com").unwrap(),
            ],
            NOW,
        )
        .with_auto_renew(true);
        certificate.status = status;
        certificate.next_attempt_at = None;
        certificate
    }

    #[test]
    fn lease_names_do_not_depend_on_name_order() {
        let first = certificate(CertificateStatus::Pending);
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
    fn due_follows_status_backoff_and_renewal_time() {
        let pending = certificate(CertificateStatus::Pending);
        assert!(is_due(&pending, NOW));
        let mut backing_off = certificate(CertificateStatus::Failed);
        backing_off.next_attempt_at = Some(NOW + time::Duration::minutes(2));
        assert!(!is_due(&backing_off, NOW));
        assert!(is_due(&backing_off, NOW + time::Duration::minutes(2)));
        let mut issued = certificate(CertificateStatus::Issued);
        issued.material_version = Some("v1".to_owned());
        issued.expires_at = Some(NOW + time::Duration::days(60));
        issued.next_renewal_at = Some(NOW + time::Duration::days(30));
        assert!(!is_due(&issued, NOW));
        assert!(is_due(&issued, NOW + time::Duration::days(30)));
        issued.auto_renew = false;
        assert!(!is_due(&issued, NOW + time::Duration::days(30)));
        assert!(is_due(&certificate(CertificateStatus::Validating), NOW));
        assert!(!is_due(&certificate(CertificateStatus::Revoked), NOW));
    }

    #[test]
    fn only_unexpired_material_keeps_a_certificate_served() {
        let mut renewing = certificate(CertificateStatus::Validating);
        assert!(!serves_material(&renewing, NOW));
        renewing.material_version = Some("v1".to_owned());
        renewing.expires_at = Some(NOW + time::Duration::days(1));
        assert!(serves_material(&renewing, NOW));
        assert!(!serves_material(&renewing, NOW + time::Duration::days(2)));
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
}

//! On-demand certificates: what happens when a ClientHello names a server the cache does not
//! hold.
//!
//! The cache holds recently used names only, so this is also how a whitelisted name that is
//! not in memory (never used on this terminator, or evicted) is loaded from the store and the
//! vault on its first handshake.
//!
//! Cheap refusals come first and touch nothing: no name or an IP literal (not a hostname we
//! could certify), a name refused a moment ago (negative cache), a client over its rate of
//! lookups that served nothing.
//! Then one *flight* per name runs in the background, whatever the number of handshakes
//! waiting for it:
//!
//! 1. `domain_by_hostname`: not whitelisted -> refused and remembered briefly, with no write.
//! 2. The domain's managed certificate (`CertificateId::managed_for`): already issued -> its
//!    material is loaded from the vault (a restart, or another terminator issued it).
//!    Not requested yet -> the core's `run_current_step` moves the domain to `issuing` with a
//!    pending certificate, exactly as the API's nudge would (and checks DNS points here).
//!    Failed and backing off -> refused until its next attempt.
//! 3. `Issuance::issue`, at most `max_concurrent_issuances` at once. The issuer's lease makes
//!    one ACME order per name across every terminator and worker; a flight that finds the lease
//!    held waits for the other owner's result in the store.
//!
//! Handshakes wait for the flight up to `on_demand_wait`; past it they fail, and the flight
//! goes on so that the next handshake finds the certificate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use edgecert_core::model::{Certificate, CertificateStatus, Domain, ProvisioningStep};
use edgecert_core::ports::{Issuance, IssueOutcome};
use edgecert_core::usecases::domains::run_current_step;
use edgecert_core::{CertificateId, Error, Hostname};
use time::OffsetDateTime;
use tokio::sync::{Semaphore, watch};

use crate::cache::normalize_name;
use crate::limits::LookupLimiter;
use crate::metrics::ON_DEMAND;
use crate::shared::{Loaded, Servable, Shared, servable};

/// Longest a flight waits for another process's issuance of the same name.
const FOREIGN_ISSUANCE_WAIT: Duration = Duration::from_secs(300);
/// Pause between two reads of a certificate another process is issuing.
const FOREIGN_ISSUANCE_POLL: Duration = Duration::from_millis(500);
/// Refusal time after the store could not be read: short, but it keeps a failing store from
/// being asked again by every handshake.
const STORE_FAILURE_TTL: Duration = Duration::from_secs(5);
/// Longest refusal of a name whose issuance failed, whatever its backoff says: a nudge
/// through the API resets the certificate, and the edge should notice soon.
const MAX_FAILURE_TTL: Duration = Duration::from_secs(300);
/// Read-modify-write attempts when another writer changed the domain first.
const STEP_ATTEMPTS: usize = 3;

/// Why a server name gets no certificate now.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// No SNI, an IP literal or a name the hostname rules reject.
    NotAName,
    /// Refused a moment ago; not asked again yet.
    Remembered,
    /// The client is over its lookup rate.
    RateLimited,
    /// No domain has this hostname.
    NotWhitelisted,
    /// The domain cannot get a certificate yet (ownership, DNS, a failed issuance backing off),
    /// and why; with when it may be tried again, when known.
    NotReady(String, Option<OffsetDateTime>),
    /// The store, vault or CA failed.
    Unavailable(String),
    /// The flight did not finish within the handshake's bound.
    TimedOut,
}

impl Refusal {
    /// Label for logs and metrics.
    pub(crate) fn as_str(&self) -> &'static str {
        match self {
            Refusal::NotAName => "not_a_name",
            Refusal::Remembered => "negative_cached",
            Refusal::RateLimited => "rate_limited",
            Refusal::NotWhitelisted => "not_whitelisted",
            Refusal::NotReady(..) => "not_ready",
            Refusal::Unavailable(_) => "unavailable",
            Refusal::TimedOut => "timed_out",
        }
    }
}

type FlightResult = Option<Result<(), Refusal>>;

/// Unknown server names: lookups, flights, issuance slots.
pub(crate) struct OnDemand {
    shared: Arc<Shared>,
    issuance: Arc<dyn Issuance>,
    limiter: LookupLimiter,
    flights: Mutex<HashMap<String, watch::Receiver<FlightResult>>>,
    issuance_slots: Arc<Semaphore>,
}

impl OnDemand {
    pub(crate) fn new(shared: Arc<Shared>, issuance: Arc<dyn Issuance>) -> OnDemand {
        let limiter =
            LookupLimiter::new(shared.config.lookups_per_second, shared.config.lookup_burst);
        let issuance_slots = Arc::new(Semaphore::new(
            shared.config.max_concurrent_issuances.max(1),
        ));
        OnDemand {
            shared,
            issuance,
            limiter,
            flights: Mutex::new(HashMap::new()),
            issuance_slots,
        }
    }

    /// Makes sure the cache holds a certificate for `server_name` (normalised), waiting at most
    /// `on_demand_wait`.
    pub(crate) async fn obtain(
        self: &Arc<Self>,
        server_name: &str,
        client: IpAddr,
    ) -> Result<(), Refusal> {
        if self.shared.cache.certificate_for(server_name).is_some() {
            return Ok(());
        }
        let hostname = Hostname::parse_domain(server_name).map_err(|_| Refusal::NotAName)?;
        let name = normalize_name(hostname.as_str());
        if self.shared.negative.contains(&name) {
            return Err(Refusal::Remembered);
        }
        let mut flight = self.join_or_start(&name, hostname, client)?;
        let wait = self.shared.config.on_demand_wait;
        match tokio::time::timeout(wait, flight.wait_for(Option::is_some)).await {
            Ok(Ok(result)) => result.clone().unwrap_or(Err(Refusal::TimedOut)),
            // The flight task ended without a result: it panicked.
            Ok(Err(_)) => Err(Refusal::Unavailable("the issuance task stopped".to_owned())),
            Err(_) => Err(Refusal::TimedOut),
        }
    }

    /// The running flight for `name`, or a new one if the client may start it.
    fn join_or_start(
        self: &Arc<Self>,
        name: &str,
        hostname: Hostname,
        client: IpAddr,
    ) -> Result<watch::Receiver<FlightResult>, Refusal> {
        let mut flights = self.flights.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(running) = flights.get(name) {
            return Ok(running.clone());
        }
        // Joining a flight costs nothing; starting one needs a token, and one that ends with
        // no certificate costs it.
        if !self.limiter.may_look_up(client) {
            return Err(Refusal::RateLimited);
        }
        let (sender, receiver) = watch::channel(None);
        flights.insert(name.to_owned(), receiver.clone());
        let this = Arc::clone(self);
        let name = name.to_owned();
        tokio::spawn(async move {
            let mut as_of = None;
            let result = this.fly(&hostname, &mut as_of).await;
            this.remember(&name, &result, as_of);
            if result.is_err() {
                this.limiter.charge(client);
            }
            this.shared
                .metrics
                .count(ON_DEMAND, "outcome", outcome_label(&result));
            match &result {
                Ok(()) => tracing::info!(sni = %name, "certificate ready on demand"),
                Err(refusal) => tracing::info!(
                    sni = %name,
                    failure = refusal.as_str(),
                    detail = detail(refusal),
                    "no certificate on demand"
                ),
            }
            // Remove before publishing, so a handshake that sees the result and retries
            // starts afresh instead of joining a finished flight.
            this.flights
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
                .remove(&name);
            let _ = sender.send(Some(result));
        });
        Ok(receiver)
    }

    /// Negative-caches a refusal for as long as it holds, or until the domain changes past
    /// version `as_of` (the version the refusal was decided on).
    fn remember(&self, name: &str, result: &Result<(), Refusal>, as_of: Option<u64>) {
        let ttl = match result {
            Ok(()) => return,
            Err(Refusal::NotWhitelisted) => self.shared.config.negative_cache_ttl,
            Err(Refusal::Unavailable(_)) => STORE_FAILURE_TTL,
            Err(Refusal::NotReady(_, retry_at)) => {
                let floor = self.shared.config.negative_cache_ttl;
                let until_retry = retry_at
                    .map(|at| at - self.shared.services.clock.now())
                    .and_then(|left| Duration::try_from(left).ok())
                    .unwrap_or(floor);
                until_retry.clamp(floor, MAX_FAILURE_TTL.max(floor))
            }
            Err(_) => return,
        };
        self.shared.negative.insert(name, ttl, as_of);
    }

    /// One flight: from the hostname to a certificate in the cache. `as_of` ends up holding
    /// the version of the domain the outcome was decided on.
    async fn fly(&self, hostname: &Hostname, as_of: &mut Option<u64>) -> Result<(), Refusal> {
        let store = &self.shared.services.store;
        let mut domain = store
            .domain_by_hostname(hostname)
            .await
            .map_err(unavailable)?
            .ok_or(Refusal::NotWhitelisted)?;
        // The route of the record found (a re-claimed name replaces the previous owner's).
        self.shared.cache.insert_route(&domain);
        *as_of = Some(domain.version);
        let id = CertificateId::managed_for(&domain.id);
        for _ in 0..STEP_ATTEMPTS {
            let certificate = store
                .get_certificate(&domain.account_id, &id)
                .await
                .map_err(unavailable)?;
            match self.next_move(certificate, &domain, as_of).await? {
                Move::Done => return Ok(()),
                Move::Issue => return self.issue(&domain, &id).await,
                Move::ReadDomainAgain => {
                    domain = store
                        .domain_by_hostname(hostname)
                        .await
                        .map_err(unavailable)?
                        .ok_or(Refusal::NotWhitelisted)?;
                    self.shared.cache.insert_route(&domain);
                    *as_of = Some(domain.version);
                }
                Move::ReadCertificateAgain => {}
            }
        }
        Err(Refusal::Unavailable(
            "the domain kept changing while its certificate was requested".to_owned(),
        ))
    }

    async fn next_move(
        &self,
        certificate: Option<Certificate>,
        domain: &Domain,
        as_of: &mut Option<u64>,
    ) -> Result<Move, Refusal> {
        let now = self.shared.services.clock.now();
        let Some(certificate) = certificate else {
            return self.request_certificate(domain, as_of).await;
        };
        if let Servable::Serve(_) = servable(&certificate, now) {
            return match self.shared.load_certificate(&certificate).await {
                Ok(Loaded::Served) => Ok(Move::Done),
                Ok(Loaded::NotServed) => Err(not_ready("nothing to serve")),
                Err(reason) => Err(Refusal::Unavailable(reason)),
            };
        }
        match certificate.status {
            CertificateStatus::Pending | CertificateStatus::Validating => Ok(Move::Issue),
            CertificateStatus::Failed => match certificate.next_attempt_at {
                Some(at) if at > now => Err(Refusal::NotReady(
                    format!("the last issuance failed; next attempt at {at}"),
                    Some(at),
                )),
                _ => Ok(Move::Issue),
            },
            // Issued without material, expired or revoked: the domain's step decides.
            _ if domain.provisioning_step != ProvisioningStep::Active => {
                self.request_certificate(domain, as_of).await
            }
            status => Err(not_ready(&format!(
                "the certificate is {}",
                status.as_str()
            ))),
        }
    }

    /// Moves the domain along its steps with the core's use case, which requests its managed
    /// certificate once the DNS step passes.
    async fn request_certificate(
        &self,
        domain: &Domain,
        as_of: &mut Option<u64>,
    ) -> Result<Move, Refusal> {
        if domain.provisioning_step == ProvisioningStep::WaitingOwnership {
            return Err(not_ready("the domain's ownership is not verified yet"));
        }
        let stepped = run_current_step(&self.shared.services, domain.clone()).await;
        if let Ok(updated) = &stepped {
            *as_of = Some(updated.version);
        }
        match stepped {
            Ok(updated) if updated.provisioning_step == ProvisioningStep::Issuing => {
                Ok(Move::ReadCertificateAgain)
            }
            Ok(updated) => Err(Refusal::NotReady(
                updated.last_error.clone().unwrap_or_else(|| {
                    format!("the domain is {}", updated.provisioning_step.as_str())
                }),
                updated.next_attempt_at,
            )),
            Err(Error::VersionConflict(_)) => Ok(Move::ReadDomainAgain),
            Err(error) => Err(unavailable(error)),
        }
    }

    /// Runs the issue use case in an issuance slot and loads what it issued.
    async fn issue(&self, domain: &Domain, id: &CertificateId) -> Result<(), Refusal> {
        let slot = Arc::clone(&self.issuance_slots)
            .acquire_owned()
            .await
            .map_err(|_| Refusal::Unavailable("issuance is shutting down".to_owned()))?;
        tracing::info!(sni = %domain.hostname, certificate = %id, "issuing a certificate on demand");
        let outcome = self.issuance.issue(&domain.account_id, id).await;
        drop(slot);
        match outcome {
            Ok(IssueOutcome::Issued(certificate)) => self.serve(&certificate).await,
            Ok(IssueOutcome::Failed(certificate)) => Err(failed(certificate)),
            Ok(IssueOutcome::InProgress) => self.wait_for_other_owner(domain, id).await,
            // Nothing was due: someone else may just have issued it, or it is not to be issued.
            Ok(IssueOutcome::Skipped) => {
                let certificate = self
                    .shared
                    .services
                    .store
                    .get_certificate(&domain.account_id, id)
                    .await
                    .map_err(unavailable)?
                    .ok_or_else(|| not_ready("the certificate was deleted"))?;
                self.serve(&certificate).await
            }
            Err(error) => Err(unavailable(error)),
        }
    }

    async fn serve(&self, certificate: &Certificate) -> Result<(), Refusal> {
        match self.shared.load_certificate(certificate).await {
            Ok(Loaded::Served) => Ok(()),
            Ok(Loaded::NotServed) => Err(not_ready("nothing to serve")),
            Err(reason) => Err(Refusal::Unavailable(reason)),
        }
    }

    /// Another process holds the lease (or just finished): watch the store until the
    /// certificate is issued or has failed.
    async fn wait_for_other_owner(
        &self,
        domain: &Domain,
        id: &CertificateId,
    ) -> Result<(), Refusal> {
        let deadline = tokio::time::Instant::now() + FOREIGN_ISSUANCE_WAIT;
        loop {
            let certificate = self
                .shared
                .services
                .store
                .get_certificate(&domain.account_id, id)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| not_ready("the certificate was deleted"))?;
            let now: OffsetDateTime = self.shared.services.clock.now();
            match (servable(&certificate, now), certificate.status) {
                (Servable::Serve(_), _) => return self.serve(&certificate).await,
                (_, CertificateStatus::Failed) => return Err(failed(certificate)),
                _ => {}
            }
            if tokio::time::Instant::now() >= deadline {
                return Err(Refusal::TimedOut);
            }
            tokio::time::sleep(FOREIGN_ISSUANCE_POLL).await;
        }
    }
}

/// What a flight does next.
enum Move {
    /// The certificate is served.
    Done,
    /// Run the issue use case.
    Issue,
    /// Another writer changed the domain: read it again.
    ReadDomainAgain,
    /// The certificate was just requested: read it again.
    ReadCertificateAgain,
}

fn not_ready(reason: &str) -> Refusal {
    Refusal::NotReady(reason.to_owned(), None)
}

/// A failed issuance, refused until the certificate's next attempt.
fn failed(certificate: Certificate) -> Refusal {
    Refusal::NotReady(
        certificate
            .last_error
            .unwrap_or_else(|| "the issuance failed".to_owned()),
        certificate.next_attempt_at,
    )
}

fn unavailable(error: Error) -> Refusal {
    Refusal::Unavailable(error.to_string())
}

fn outcome_label(result: &Result<(), Refusal>) -> &'static str {
    match result {
        Ok(()) => "served",
        Err(refusal) => refusal.as_str(),
    }
}

fn detail(refusal: &Refusal) -> &str {
    match refusal {
        Refusal::NotReady(reason, _) | Refusal::Unavailable(reason) => reason,
        _ => "",
    }
}

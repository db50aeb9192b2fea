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
//! 2. The core's one use case for managed certificates,
//!    [`ensure_managed_certificate`] with [`Trigger::Traffic`], at most
//!    `max_concurrent_issuances` at once: a served certificate the cache missed (a restart, or
//!    another terminator issued it) is loaded from the vault; a domain that waits for its DNS
//!    is checked now (traffic here says it points here, and a stale domain comes back); a
//!    certificate that failed and backs off is refused until its next attempt; otherwise it is
//!    issued now. The issuer's lease makes one ACME order per name across every terminator
//!    and worker; a flight that finds the lease held waits for the other owner's result in the
//!    store.
//!
//! Handshakes wait for the flight up to `on_demand_wait`; past it they fail, and the flight
//! goes on so that the next handshake finds the certificate.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use edgecert_core::model::{Certificate, CertificateStatus, Servable};
use edgecert_core::ports::Issuance;
use edgecert_core::usecases::managed::{Ensured, Issue, Trigger, ensure_managed_certificate};
use edgecert_core::{AccountId, CertificateId, Error, Hostname};
use time::OffsetDateTime;
use tokio::sync::{Semaphore, watch};

use crate::cache::normalize_name;
use crate::limits::LookupLimiter;
use crate::metrics::ON_DEMAND;
use crate::shared::{Loaded, Shared};

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
    /// The order budget at the CA is spent: why, and when a token is next expected (counted
    /// apart in `/metrics`, for the operator).
    BudgetSpent(String, Option<OffsetDateTime>),
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
            Refusal::BudgetSpent(..) => "order_budget_spent",
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
    /// The issue use case this edge orders through.
    pub(crate) fn issuance(&self) -> Arc<dyn Issuance> {
        Arc::clone(&self.issuance)
    }

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
            Err(Refusal::NotReady(_, retry_at) | Refusal::BudgetSpent(_, retry_at)) => {
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

    /// One flight: from the hostname to a certificate in the cache, through the core's one
    /// use case. `as_of` ends up holding the version of the domain the outcome was decided on.
    async fn fly(&self, hostname: &Hostname, as_of: &mut Option<u64>) -> Result<(), Refusal> {
        let services = &self.shared.services;
        let domain = services
            .store
            .domain_by_hostname(hostname)
            .await
            .map_err(unavailable)?
            .ok_or(Refusal::NotWhitelisted)?;
        // The route of the record found (a re-claimed name replaces the previous owner's).
        self.shared.cache.insert_route(&domain);
        *as_of = Some(domain.version);
        let (account, id) = (
            domain.account_id.clone(),
            CertificateId::managed_for(&domain.id),
        );
        let slot = Arc::clone(&self.issuance_slots)
            .acquire_owned()
            .await
            .map_err(|_| Refusal::Unavailable("issuance is shutting down".to_owned()))?;
        let issue = Issue::Now {
            issuance: self.issuance.as_ref(),
            gate: None,
        };
        let ensured = ensure_managed_certificate(services, domain, None, Trigger::Traffic, issue)
            .await
            .map_err(unavailable)?;
        drop(slot);
        match ensured {
            Ensured::Served(certificate) => self.serve(&certificate).await,
            Ensured::InProgress => self.wait_for_other_owner(&account, &id).await,
            Ensured::NotReady {
                domain,
                reason,
                retry_at,
            } => {
                *as_of = Some(domain.version);
                Err(Refusal::NotReady(reason, retry_at))
            }
            Ensured::Deferred { reason, retry_at } => Err(Refusal::BudgetSpent(reason, retry_at)),
            Ensured::NotWhitelisted => Err(Refusal::NotWhitelisted),
            Ensured::Requested(_) | Ensured::Held(_) => {
                Err(not_ready("the certificate is queued for issuance"))
            }
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
    /// certificate is served or has failed.
    async fn wait_for_other_owner(
        &self,
        account: &AccountId,
        id: &CertificateId,
    ) -> Result<(), Refusal> {
        let deadline = tokio::time::Instant::now() + FOREIGN_ISSUANCE_WAIT;
        loop {
            let certificate = self
                .shared
                .services
                .store
                .get_certificate(account, id)
                .await
                .map_err(unavailable)?
                .ok_or_else(|| not_ready("the certificate was deleted"))?;
            let now: OffsetDateTime = self.shared.services.clock.now();
            match (certificate.servable(now), certificate.status) {
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
        Refusal::NotReady(reason, _)
        | Refusal::BudgetSpent(reason, _)
        | Refusal::Unavailable(reason) => reason,
        _ => "",
    }
}

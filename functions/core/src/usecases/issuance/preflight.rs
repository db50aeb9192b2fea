//! Pre-flight checks: everything that can refuse an issuance without asking the CA.
//!
//! Hostname rules and the plan first (cheap, and what the customer can fix in the API), then
//! ownership: for a managed certificate its domain must point at the edge (HTTP-01 lands
//! there); for a downloadable one the zone must exist, belong to the account, be verified,
//! still be claimed by the account, be reachable by its provider for this account, and hold
//! every name (DNS-01 writes there), and no name may be whitelisted by another account since
//! (the request checked that too, but a domain may be whitelisted later). CAA last, as it costs
//! a few DNS queries per name.

use std::sync::Arc;

use crate::caa;
use crate::error::Error;
use crate::hostname::{Hostname, HostnameRules};
use crate::model::{Account, Certificate, CertificateKind, Domain, IssueFailure as Failure, Zone};
use crate::ports::{ChallengeKind, DnsProvider};
use crate::usecases::domains::points_at_edge;
use crate::usecases::{Services, certificates, zones};

/// What pre-flight cleared a run with: how the names will be validated, and the account (and
/// for a managed certificate, the domain) it read on the way.
pub(crate) struct Cleared {
    /// How the names will be validated.
    pub(crate) validation: Validation,
    /// The certificate's account.
    pub(crate) account: Account,
    /// A managed certificate's domain.
    pub(crate) domain: Option<Domain>,
}

/// How the names will be validated, with what that needs.
pub(crate) enum Validation {
    /// HTTP-01 through the store, answered by every terminator.
    Http01,
    /// DNS-01 TXT records through the zone's provider.
    Dns01 {
        /// The zone holding every name.
        zone: Zone,
        /// Its provider.
        provider: Arc<dyn DnsProvider>,
    },
}

/// Why pre-flight did not clear the run.
pub(crate) enum Refusal {
    /// Nothing to do, and nothing to record (the item is gone, or auto-renew lapsed with the
    /// plan).
    Skip(&'static str),
    /// Record this failure.
    Fail(Failure),
}

impl Validation {
    /// The challenge this validation answers.
    pub(crate) fn kind(&self) -> ChallengeKind {
        match self {
            Validation::Http01 => ChallengeKind::Http01,
            Validation::Dns01 { .. } => ChallengeKind::Dns01,
        }
    }
}

impl From<Failure> for Refusal {
    fn from(failure: Failure) -> Refusal {
        Refusal::Fail(failure)
    }
}

const STEP: &str = "preflight";

/// A refusal the customer can act on, in its own words; an outage while checking, as one.
fn refusal(doing: &str, error: &Error) -> Failure {
    if error.is_retryable() || error.status() >= 500 {
        Failure::from_core(STEP, doing, error)
    } else {
        Failure::new(STEP, error.public_message())
    }
}

/// Runs every check for `certificate`.
pub(crate) async fn check(
    services: &Services,
    caa_identities: &[String],
    certificate: &Certificate,
) -> Result<Cleared, Refusal> {
    let account = services
        .store
        .get_account(&certificate.account_id)
        .await
        .map_err(|error| Failure::from_core(STEP, "Reading the account", &error))?
        .ok_or(Refusal::Skip("account deleted"))?;
    let plan = services.plans.get(account.plan);
    let rules = match certificate.kind {
        CertificateKind::Managed { .. } => HostnameRules::DOMAIN,
        CertificateKind::Downloadable { .. } => HostnameRules::CERTIFICATE,
    };
    for name in certificate.names() {
        // Names were checked when stored, but the rules (public suffixes) move on.
        if let Err(error) = rules.parse(name.as_str()) {
            return Err(Failure::new(STEP, format!("{name}: {}", error.public_message())).into());
        }
    }
    let mut domain = None;
    let validation = match &certificate.kind {
        CertificateKind::Managed { domain_id } => {
            // A managed certificate whose domain is gone is about to be deleted with it.
            domain = Some(
                services
                    .store
                    .get_domain(&certificate.account_id, domain_id)
                    .await
                    .map_err(|error| Failure::from_core(STEP, "Reading the domain", &error))?
                    .ok_or(Refusal::Skip("domain deleted"))?,
            );
            for name in certificate.names() {
                match points_at_edge(services.resolver.as_ref(), &services.edge, name).await {
                    Ok(Ok(())) => {}
                    Ok(Err(reason)) => return Err(Failure::new(STEP, reason).into()),
                    Err(error) => {
                        let doing = format!("Checking that {name} points at the edge");
                        return Err(Failure::from_core(STEP, &doing, &error).into());
                    }
                }
            }
            Validation::Http01
        }
        CertificateKind::Downloadable { zone_id } => {
            if certificate.is_renewal() && certificate.auto_renew && !plan.auto_renew_enabled {
                return Err(Refusal::Skip("plan no longer includes auto-renewal"));
            }
            plan.check_certificates_allowed()
                .map_err(|error| Failure::new(STEP, error.public_message()))?;
            if certificate.names().any(|name| name.is_wildcard()) {
                plan.check_wildcard_allowed()
                    .map_err(|error| Failure::new(STEP, error.public_message()))?;
            }
            let zone = services
                .store
                .get_zone(&certificate.account_id, zone_id)
                .await
                .map_err(|error| Failure::from_core(STEP, "Reading the zone", &error))?
                .ok_or_else(|| Failure::new(STEP, "Zone not found or no permission"))?;
            if !zone.verified {
                return Err(Failure::new(
                    STEP,
                    format!(
                        "Zone {} is not verified yet; verify it before issuing",
                        zone.name
                    ),
                )
                .into());
            }
            zones::check_claimed(services, &zone)
                .await
                .map_err(|error| refusal("Checking the zone's claim", &error))?;
            if let Some(outside) = certificate.names().find(|name| !name.is_under(&zone.name)) {
                return Err(Failure::new(
                    STEP,
                    format!(
                        "Domain not under zone: {outside} is not under {}",
                        zone.name
                    ),
                )
                .into());
            }
            let names: Vec<&Hostname> = certificate.names().collect();
            certificates::check_names_unclaimed(services, &certificate.account_id, &names)
                .await
                .map_err(|error| refusal("Checking who whitelisted the names", &error))?;
            let provider = services
                .dns_providers
                .for_zone(&zone)
                .map_err(|error| Failure::new(STEP, error.public_message()))?;
            provider
                .check_access(&zone)
                .await
                .map_err(|error| refusal("Checking access to the zone", &error))?;
            Validation::Dns01 { zone, provider }
        }
    };
    for name in certificate.names() {
        match caa::check(services.resolver.as_ref(), name, caa_identities).await {
            Ok(Ok(())) => {}
            Ok(Err(reason)) => return Err(Failure::new(STEP, reason).into()),
            Err(error) => {
                let doing = format!("Reading the CAA records of {name}");
                return Err(Failure::from_core(STEP, &doing, &error).into());
            }
        }
    }
    Ok(Cleared {
        validation,
        account,
        domain,
    })
}

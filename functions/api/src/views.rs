//! The JSON shapes the API returns. Model types are not serialised directly: these views decide
//! what a client sees (no versions, no internal counters, no secrets).

use edgecert_core::model::{Account, Certificate, Domain};
use edgecert_core::usecases::EdgeSettings;
use edgecert_core::usecases::accounts::Limits;
use edgecert_core::usecases::domains::{self, DnsInstructions, DnsRecord};
use serde::Serialize;
use time::OffsetDateTime;

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// An account.
#[derive(Debug, Serialize)]
pub struct AccountView {
    /// `acct_…`
    pub id: String,
    /// Display name.
    pub name: String,
    /// Plan name.
    pub plan: &'static str,
    /// Whether domains need a TXT ownership record.
    pub require_ownership_verification: bool,
    /// Creation time.
    pub created_at: String,
}

impl From<&Account> for AccountView {
    fn from(account: &Account) -> Self {
        AccountView {
            id: account.id.to_string(),
            name: account.name.clone(),
            plan: account.plan.as_str(),
            require_ownership_verification: account.require_ownership_verification,
            created_at: rfc3339(account.created_at),
        }
    }
}

/// `GET /v1/limits`.
#[derive(Debug, Serialize)]
pub struct LimitsView {
    /// Plan name.
    pub plan: &'static str,
    /// Downloadable certificates allowed.
    pub max_certificates: u32,
    /// Downloadable certificates held.
    pub current_count: u32,
    /// Domains allowed.
    pub max_domains: u32,
    /// Domains held.
    pub domain_count: u32,
    /// Wildcards allowed.
    pub wildcard_enabled: bool,
    /// Auto-renewal allowed.
    pub auto_renew_enabled: bool,
}

impl From<&Limits> for LimitsView {
    fn from(limits: &Limits) -> Self {
        LimitsView {
            plan: limits.plan.name.as_str(),
            max_certificates: limits.plan.max_certificates,
            current_count: limits.usage.certificates,
            max_domains: limits.plan.max_domains,
            domain_count: limits.usage.domains,
            wildcard_enabled: limits.plan.wildcard_enabled,
            auto_renew_enabled: limits.plan.auto_renew_enabled,
        }
    }
}

/// A whitelisted domain with what the customer must do next.
#[derive(Debug, Serialize)]
pub struct DomainView {
    /// `dom_…`
    pub id: String,
    /// ASCII hostname.
    pub hostname: String,
    /// Where the edge proxies to.
    pub origin_url: String,
    /// Provisioning step.
    pub provisioning_step: &'static str,
    /// Whether ownership is proven (or was not required).
    pub ownership_verified: bool,
    /// Why the current step has not passed yet.
    pub error: Option<String>,
    /// When the current step runs again on its own.
    pub next_attempt_at: Option<String>,
    /// The managed certificate, once requested.
    pub certificate_id: Option<String>,
    /// Records pointing the domain at the edge.
    pub dns_instructions: DnsInstructions,
    /// The TXT record to create, while ownership is not proven.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ownership_verification: Option<DnsRecord>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl DomainView {
    /// The view of `domain` with instructions for `edge`.
    pub fn new(domain: &Domain, edge: &EdgeSettings) -> Self {
        DomainView {
            id: domain.id.to_string(),
            hostname: domain.hostname.to_string(),
            origin_url: domain.origin_url.clone(),
            provisioning_step: domain.provisioning_step.as_str(),
            ownership_verified: domain.ownership_verified,
            error: domain.last_error.clone(),
            next_attempt_at: domain.next_attempt_at.map(rfc3339),
            certificate_id: domain.certificate_id.as_ref().map(ToString::to_string),
            dns_instructions: domains::dns_instructions(edge, &domain.hostname),
            ownership_verification: (!domain.ownership_verified)
                .then(|| domains::ownership_record(domain)),
            created_at: rfc3339(domain.created_at),
            updated_at: rfc3339(domain.updated_at),
        }
    }
}

/// A certificate as shown in `/ssl`.
#[derive(Debug, Serialize)]
pub struct CertificateSummary {
    /// `cert_…`
    pub id: String,
    /// Lifecycle state.
    pub status: &'static str,
    /// Issue time of the served certificate.
    pub issued_at: Option<String>,
    /// Expiry of the served certificate.
    pub expires_at: Option<String>,
    /// When renewal is due.
    pub next_renewal_at: Option<String>,
    /// Why the last attempt failed.
    pub error: Option<String>,
}

impl From<&Certificate> for CertificateSummary {
    fn from(certificate: &Certificate) -> Self {
        CertificateSummary {
            id: certificate.id.to_string(),
            status: certificate.status.as_str(),
            issued_at: certificate.issued_at.map(rfc3339),
            expires_at: certificate.expires_at.map(rfc3339),
            next_renewal_at: certificate.next_renewal_at.map(rfc3339),
            error: certificate.last_error.clone(),
        }
    }
}

/// `GET /v1/domains/{id}/ssl`.
#[derive(Debug, Serialize)]
pub struct SslView {
    /// Provisioning step.
    pub provisioning_step: &'static str,
    /// Why the current step has not passed yet (or the certificate's last failure).
    pub error: Option<String>,
    /// When the current step runs again on its own.
    pub next_attempt_at: Option<String>,
    /// Records pointing the domain at the edge.
    pub dns_instructions: DnsInstructions,
    /// The managed certificate, once requested.
    pub certificate: Option<CertificateSummary>,
}

//! The JSON shapes the API returns. Model types are not serialised directly: these views decide
//! what a client sees (no versions, no internal counters, no secrets).

use edgecert_core::model::{Account, Certificate, CertificateEvent, CertificateKind, Domain, Zone};
use edgecert_core::usecases::EdgeSettings;
use edgecert_core::usecases::accounts::Limits;
use edgecert_core::usecases::certificates::{CertificateList, Download};
use edgecert_core::usecases::domains::{self, DnsInstructions, DnsRecord};
use serde::Serialize;
use time::OffsetDateTime;

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_default()
}

/// The served material's lifetime in whole seconds.
fn lifetime_seconds(certificate: &Certificate) -> Option<i64> {
    certificate
        .lifetime()
        .map(|lifetime| lifetime.whole_seconds())
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
    /// The ACME profile its certificates are ordered with (`null`: the CA's default).
    pub acme_profile: Option<String>,
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
            acme_profile: account.acme_profile.clone(),
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
    /// The ACME profile its certificate is ordered with (`null`: the account's).
    pub acme_profile: Option<String>,
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
            acme_profile: domain.acme_profile.clone(),
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
    /// The ACME profile the served certificate was issued under (`null`: the CA's default).
    pub issued_profile: Option<String>,
    /// The served certificate's lifetime in seconds, from notBefore to notAfter.
    pub lifetime_seconds: Option<i64>,
    /// The last `certificate.expiring` notice while its renewal keeps failing: 14, 7 or 1
    /// (days before expiry); `null` when none was due, and again once renewed.
    pub expiring_notice_days: Option<u32>,
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
            issued_profile: certificate.issued_profile.clone(),
            lifetime_seconds: lifetime_seconds(certificate),
            expiring_notice_days: certificate.expiring_notice_days,
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

/// A DNS zone.
#[derive(Debug, Serialize)]
pub struct ZoneView {
    /// `zone_…`
    pub id: String,
    /// The zone apex.
    pub name: String,
    /// DNS provider name.
    pub provider: String,
    /// The provider's id for the zone.
    pub provider_zone_id: String,
    /// The role the provider assumes in the account's own provider account, if any.
    pub role_arn: Option<String>,
    /// Whether a TXT record written through the provider was read back from DNS.
    pub verified: bool,
    /// Creation time.
    pub created_at: String,
}

impl From<&Zone> for ZoneView {
    fn from(zone: &Zone) -> Self {
        ZoneView {
            id: zone.id.to_string(),
            name: zone.name.to_string(),
            provider: zone.provider.clone(),
            provider_zone_id: zone.provider_zone_id.clone(),
            role_arn: zone.role_arn.clone(),
            verified: zone.verified,
            created_at: rfc3339(zone.created_at),
        }
    }
}

/// A downloadable certificate: the reference's object, plus its key type, zone, and where its
/// issuance stands (`error`, `next_attempt_at`).
#[derive(Debug, Serialize)]
pub struct CertificateView {
    /// `cert_…`
    pub id: String,
    /// Primary name (`*.example.com` for a wildcard).
    pub domain: String,
    /// Additional names.
    pub sans: Vec<String>,
    /// Whether the primary name is a wildcard.
    pub is_wildcard: bool,
    /// Renews automatically.
    pub auto_renew: bool,
    /// `pending`, `validating`, `issued`, `failed`, `expired` or `revoked`.
    pub status: &'static str,
    /// Issue time of the served certificate.
    pub issued_at: Option<String>,
    /// Expiry of the served certificate.
    pub expires_at: Option<String>,
    /// When renewal is due.
    pub next_renewal_at: Option<String>,
    /// `ecdsa-p256` or `rsa-2048`.
    pub key_type: edgecert_core::model::KeyType,
    /// The zone its names are under.
    pub zone_id: Option<String>,
    /// The ACME profile asked for on this certificate (`null`: the domain's or the account's).
    pub acme_profile: Option<String>,
    /// The ACME profile the served certificate was issued under (`null`: the CA's default).
    pub issued_profile: Option<String>,
    /// The served certificate's lifetime in seconds, from notBefore to notAfter.
    pub lifetime_seconds: Option<i64>,
    /// The last `certificate.expiring` notice while its renewal keeps failing: 14, 7 or 1
    /// (days before expiry); `null` when none was due, and again once renewed.
    pub expiring_notice_days: Option<u32>,
    /// Why the last attempt failed.
    pub error: Option<String>,
    /// When a queued, failed or interrupted issuance runs next.
    pub next_attempt_at: Option<String>,
    /// Creation time.
    pub created_at: String,
    /// Last change.
    pub updated_at: String,
}

impl From<&Certificate> for CertificateView {
    fn from(certificate: &Certificate) -> Self {
        CertificateView {
            id: certificate.id.to_string(),
            domain: certificate.domain.to_string(),
            sans: certificate.sans.iter().map(ToString::to_string).collect(),
            is_wildcard: certificate.is_wildcard,
            auto_renew: certificate.auto_renew,
            status: certificate.status.as_str(),
            issued_at: certificate.issued_at.map(rfc3339),
            expires_at: certificate.expires_at.map(rfc3339),
            next_renewal_at: certificate.next_renewal_at.map(rfc3339),
            key_type: certificate.key_type,
            zone_id: match &certificate.kind {
                CertificateKind::Downloadable { zone_id } => Some(zone_id.to_string()),
                CertificateKind::Managed { .. } => None,
            },
            acme_profile: certificate.acme_profile.clone(),
            issued_profile: certificate.issued_profile.clone(),
            lifetime_seconds: lifetime_seconds(certificate),
            expiring_notice_days: certificate.expiring_notice_days,
            error: certificate.last_error.clone(),
            next_attempt_at: certificate.next_attempt_at.map(rfc3339),
            created_at: rfc3339(certificate.created_at),
            updated_at: rfc3339(certificate.updated_at),
        }
    }
}

/// The limits card of the certificate list, as in the reference.
#[derive(Debug, Serialize)]
pub struct CertificateLimitsView {
    /// Downloadable certificates allowed.
    pub max_certificates: u32,
    /// Downloadable certificates held.
    pub current_count: u32,
    /// Wildcards allowed.
    pub wildcard_enabled: bool,
    /// Auto-renewal allowed.
    pub auto_renew_enabled: bool,
}

/// `GET /v1/certificates`.
#[derive(Debug, Serialize)]
pub struct CertificateListView {
    /// The account's downloadable certificates, oldest first.
    pub certificates: Vec<CertificateView>,
    /// The plan's certificate limits and usage.
    pub limits: CertificateLimitsView,
    /// Cursor of the next page, `null` on the last one.
    pub next_cursor: Option<String>,
}

impl From<&CertificateList> for CertificateListView {
    fn from(list: &CertificateList) -> Self {
        CertificateListView {
            certificates: list
                .certificates
                .iter()
                .map(CertificateView::from)
                .collect(),
            limits: CertificateLimitsView {
                max_certificates: list.limits.plan.max_certificates,
                current_count: list.limits.usage.certificates,
                wildcard_enabled: list.limits.plan.wildcard_enabled,
                auto_renew_enabled: list.limits.plan.auto_renew_enabled,
            },
            next_cursor: list.next_cursor.clone(),
        }
    }
}

/// `GET /v1/certificates/{id}/download`. Holds the private key: no `Debug`.
#[derive(Serialize)]
pub struct DownloadView<'a> {
    /// The leaf certificate, PEM.
    pub certificate_pem: &'a str,
    /// The intermediates, PEM.
    pub chain_pem: &'a str,
    /// The private key, PEM (PKCS#8).
    pub private_key_pem: &'a str,
}

impl<'a> From<&'a Download> for DownloadView<'a> {
    fn from(download: &'a Download) -> Self {
        DownloadView {
            certificate_pem: &download.certificate_pem,
            chain_pem: &download.chain_pem,
            private_key_pem: download.private_key_pem.expose(),
        }
    }
}

/// One certificate event.
#[derive(Debug, Serialize)]
pub struct EventView {
    /// When it happened.
    pub at: String,
    /// Which step.
    pub step: String,
    /// `info`, `warning` or `error`.
    pub level: edgecert_core::model::EventLevel,
    /// Human sentence.
    pub message: String,
    /// The CA's problem type, when it gave one.
    pub acme_problem: Option<String>,
}

impl From<&CertificateEvent> for EventView {
    fn from(event: &CertificateEvent) -> Self {
        EventView {
            at: rfc3339(event.at),
            step: event.step.clone(),
            level: event.level,
            message: event.message.clone(),
            acme_problem: event.acme_problem.clone(),
        }
    }
}

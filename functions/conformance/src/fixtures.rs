//! Builders of valid model items for the cases.

use edgecert_core::ids::{AccountId, DomainId, ZoneId};
use edgecert_core::model::{Account, Certificate, CertificateStatus, Domain, Zone};
use edgecert_core::{Hostname, PlanName};
use time::OffsetDateTime;
use time::macros::datetime;

/// A fixed "now" so due-time assertions are exact.
pub const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

pub fn account(plan: PlanName) -> Account {
    Account::new("Acme Status Pages".to_owned(), plan, false, NOW)
}

/// A hostname unique to this run, so suites sharing a backend (one moto) never collide.
pub fn unique_hostname(label: &str) -> Hostname {
    let unique = DomainId::generate();
    let suffix = &unique.as_str()[4..14];
    Hostname::parse_domain(&format!("{label}.c{suffix}.example.com")).unwrap()
}

pub fn domain(account: &AccountId, hostname: &Hostname) -> Domain {
    Domain::whitelisted(
        account.clone(),
        hostname.clone(),
        "https://origin.example.net".to_owned(),
        false,
        NOW,
    )
}

pub fn zone(account: &AccountId, name: &Hostname) -> Zone {
    Zone {
        id: ZoneId::generate(),
        account_id: account.clone(),
        name: name.clone(),
        provider: "challtestsrv".to_owned(),
        provider_zone_id: "Z123".to_owned(),
        role_arn: None,
        verified: false,
        created_at: NOW,
        version: 1,
    }
}

pub fn downloadable(account: &AccountId, name: &Hostname) -> Certificate {
    pending(Certificate::downloadable(
        account.clone(),
        ZoneId::generate(),
        name.clone(),
        vec![],
        NOW,
    ))
}

pub fn managed(account: &AccountId, name: &Hostname) -> Certificate {
    let domain = Domain::whitelisted(
        account.clone(),
        name.clone(),
        "https://origin.example.net".to_owned(),
        false,
        NOW,
    );
    pending(Certificate::managed(&domain, NOW))
}

/// A requested certificate as the cases expect it: auto-renewing, with no retry time (so it
/// stays out of the due index until issued).
fn pending(certificate: Certificate) -> Certificate {
    let mut certificate = certificate.with_auto_renew(true);
    certificate.next_attempt_at = None;
    certificate
}

/// An issued certificate renewing at `renew_at`.
pub fn issued(mut certificate: Certificate, renew_at: OffsetDateTime) -> Certificate {
    certificate.status = CertificateStatus::Issued;
    certificate.issued_at = Some(renew_at - time::Duration::days(60));
    certificate.not_before = certificate.issued_at;
    certificate.expires_at = Some(renew_at + time::Duration::days(30));
    certificate.next_renewal_at = Some(renew_at);
    certificate
}

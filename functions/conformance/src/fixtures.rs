//! Builders of valid model items for the cases.

use edgecert_core::ids::{AccountId, CertificateId, DomainId, ZoneId};
use edgecert_core::model::{
    Account, Certificate, CertificateKind, CertificateStatus, Domain, KeyType, ProvisioningStep,
    Zone, ZoneToken,
};
use edgecert_core::{Hostname, PlanName};
use time::OffsetDateTime;
use time::macros::datetime;

/// A fixed "now" so due-time assertions are exact.
pub const NOW: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

pub fn account(plan: PlanName) -> Account {
    Account {
        id: AccountId::generate(),
        name: "Acme Status Pages".to_owned(),
        plan,
        require_ownership_verification: false,
        zone_token: Some(ZoneToken::generate()),
        created_at: NOW,
        version: 1,
    }
}

/// A hostname unique to this run, so suites sharing a backend (one moto) never collide.
pub fn unique_hostname(label: &str) -> Hostname {
    let unique = DomainId::generate();
    let suffix = &unique.as_str()[4..14];
    Hostname::parse_domain(&format!("{label}.c{suffix}.example.com")).unwrap()
}

pub fn domain(account: &AccountId, hostname: &Hostname) -> Domain {
    Domain {
        id: DomainId::generate(),
        account_id: account.clone(),
        hostname: hostname.clone(),
        origin_url: "https://origin.example.net".to_owned(),
        ownership_token: "edgecert-verify-0123456789".to_owned(),
        ownership_verified: true,
        provisioning_step: ProvisioningStep::WaitingDns,
        last_error: None,
        next_attempt_at: None,
        consecutive_failures: 0,
        certificate_id: None,
        created_at: NOW,
        updated_at: NOW,
        version: 1,
    }
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
    certificate(
        account,
        name,
        CertificateKind::Downloadable {
            zone_id: ZoneId::generate(),
        },
    )
}

pub fn managed(account: &AccountId, name: &Hostname) -> Certificate {
    certificate(
        account,
        name,
        CertificateKind::Managed {
            domain_id: DomainId::generate(),
        },
    )
}

fn certificate(account: &AccountId, name: &Hostname, kind: CertificateKind) -> Certificate {
    Certificate {
        id: CertificateId::generate(),
        account_id: account.clone(),
        kind,
        domain: name.clone(),
        sans: vec![],
        is_wildcard: false,
        key_type: KeyType::EcdsaP256,
        auto_renew: true,
        status: CertificateStatus::Pending,
        issued_at: None,
        not_before: None,
        expires_at: None,
        next_renewal_at: None,
        next_attempt_at: None,
        consecutive_failures: 0,
        last_error: None,
        order_url: None,
        material_version: None,
        pending_material_version: None,
        created_at: NOW,
        updated_at: NOW,
        version: 1,
    }
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

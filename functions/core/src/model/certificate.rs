//! Certificates: managed ones (serving a whitelisted domain at the edge) and downloadable ones
//! (DNS-01 on an account's zone).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::hostname::Hostname;
use crate::ids::{AccountId, CertificateId, DomainId, ZoneId};
use crate::model::Domain;

/// Lifecycle state, as in the reference.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CertificateStatus {
    /// Requested; issuance not started.
    Pending,
    /// ACME challenge in progress.
    Validating,
    /// Obtained; material in the vault.
    Issued,
    /// Issuance or renewal failed; see `last_error`.
    Failed,
    /// Past `expires_at`.
    Expired,
    /// Revoked at the CA.
    Revoked,
}

impl CertificateStatus {
    /// The state as used in the API and the store.
    pub fn as_str(self) -> &'static str {
        match self {
            CertificateStatus::Pending => "pending",
            CertificateStatus::Validating => "validating",
            CertificateStatus::Issued => "issued",
            CertificateStatus::Failed => "failed",
            CertificateStatus::Expired => "expired",
            CertificateStatus::Revoked => "revoked",
        }
    }

    /// Whether a certificate in this state asks to be issued: new (`pending`) or renewed by
    /// hand (`validating`). The issuer works on exactly these, however it finds them (the
    /// table's stream, the due index).
    pub fn asks_for_issuance(self) -> bool {
        matches!(
            self,
            CertificateStatus::Pending | CertificateStatus::Validating
        )
    }
}

/// Private key algorithm.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
pub enum KeyType {
    /// ECDSA on P-256 (default: small, fast handshakes).
    #[default]
    #[serde(rename = "ecdsa-p256")]
    EcdsaP256,
    /// RSA 2048 (for old clients, and the reference's only type).
    #[serde(rename = "rsa-2048")]
    Rsa2048,
}

impl KeyType {
    /// The algorithm as people say it, for events: `ECDSA P-256`, `RSA 2048`.
    pub fn describe(self) -> &'static str {
        match self {
            KeyType::EcdsaP256 => "ECDSA P-256",
            KeyType::Rsa2048 => "RSA 2048",
        }
    }
}

/// What a certificate is for; decides limits, validation method and renewal.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum CertificateKind {
    /// Serves a whitelisted domain at the edge (HTTP-01); renewed while the domain exists.
    Managed {
        /// The domain it serves.
        domain_id: DomainId,
    },
    /// Requested through the certificates API (DNS-01 on a zone); counts against the plan.
    Downloadable {
        /// The zone its names are under.
        zone_id: ZoneId,
    },
}

/// A certificate and where its issuance stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Certificate {
    /// `cert_…`
    pub id: CertificateId,
    /// Owner.
    pub account_id: AccountId,
    /// Managed or downloadable.
    #[serde(flatten)]
    pub kind: CertificateKind,
    /// Primary name (`*.example.com` for a wildcard).
    pub domain: Hostname,
    /// Additional names.
    pub sans: Vec<Hostname>,
    /// Whether the primary name is a wildcard.
    pub is_wildcard: bool,
    /// Key algorithm.
    pub key_type: KeyType,
    /// Renew automatically (always true for managed certificates).
    pub auto_renew: bool,
    /// Lifecycle state.
    pub status: CertificateStatus,
    /// When the current material was issued.
    #[serde(with = "time::serde::rfc3339::option")]
    pub issued_at: Option<OffsetDateTime>,
    /// Start of validity of the current material.
    #[serde(with = "time::serde::rfc3339::option")]
    pub not_before: Option<OffsetDateTime>,
    /// End of validity of the current material.
    #[serde(with = "time::serde::rfc3339::option")]
    pub expires_at: Option<OffsetDateTime>,
    /// When renewal is due.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_renewal_at: Option<OffsetDateTime>,
    /// When a failed or interrupted issuance runs again.
    #[serde(with = "time::serde::rfc3339::option")]
    pub next_attempt_at: Option<OffsetDateTime>,
    /// Failures in a row (drives the backoff).
    pub consecutive_failures: u32,
    /// Why the last attempt failed, for humans.
    pub last_error: Option<String>,
    /// ACME order in progress, kept so a crashed issuance resumes it instead of ordering again.
    pub order_url: Option<String>,
    /// Vault version holding the served chain and key.
    pub material_version: Option<String>,
    /// Vault version holding the key generated for the order in progress.
    pub pending_material_version: Option<String>,
    /// Until when the order budget holds this certificate back (its last run was refused for
    /// the budget): a nudge or a renewal asked for before then is answered 429.
    #[serde(
        default,
        with = "time::serde::rfc3339::option",
        skip_serializing_if = "Option::is_none"
    )]
    pub order_budget_until: Option<OffsetDateTime>,
    /// The ACME directory URL of the CA that issued the served material: a certificate from a
    /// CA other than the configured one is due now.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_directory_url: Option<String>,
    /// The served material's ARI identifier (RFC 9773: `AKI.serial`, base64url), sent as
    /// `replaces` when it is renewed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ari_id: Option<String>,
    /// The ACME profile asked for this certificate, overriding its domain's and account's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme_profile: Option<String>,
    /// The ACME profile the served material was ordered with (`None`: the CA's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub issued_profile: Option<String>,
    /// The `certificate.expiring` notices recorded for the served material, as the number of
    /// days before expiry of the latest (14, 7 or 1); `None` before the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub expiring_notice_days: Option<u32>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Last change.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
    /// Optimistic-concurrency version, maintained by the store.
    pub version: u64,
}

impl Certificate {
    /// The managed certificate of `domain`, requested at `now`: `pending` and due at once, for
    /// the domain's hostname alone, ECDSA P-256, renewed for as long as the domain exists. Its
    /// id derives from the domain's ([`CertificateId::managed_for`]), so one domain never has
    /// two.
    pub fn managed(domain: &Domain, now: OffsetDateTime) -> Certificate {
        Certificate::requested(
            CertificateId::managed_for(&domain.id),
            domain.account_id.clone(),
            CertificateKind::Managed {
                domain_id: domain.id.clone(),
            },
            domain.hostname.clone(),
            now,
        )
        .with_auto_renew(true)
    }

    /// A downloadable certificate for `domain` (and `sans`) in the zone `zone_id`, requested at
    /// `now`: `pending` and due at once, ECDSA P-256 and without auto-renewal until said
    /// otherwise ([`Certificate::with_key_type`], [`Certificate::with_auto_renew`]).
    pub fn downloadable(
        account_id: AccountId,
        zone_id: ZoneId,
        domain: Hostname,
        sans: Vec<Hostname>,
        now: OffsetDateTime,
    ) -> Certificate {
        let mut certificate = Certificate::requested(
            CertificateId::generate(),
            account_id,
            CertificateKind::Downloadable { zone_id },
            domain,
            now,
        );
        certificate.sans = sans;
        certificate
    }

    /// The one place a certificate is put together: a new request, nothing issued yet.
    fn requested(
        id: CertificateId,
        account_id: AccountId,
        kind: CertificateKind,
        domain: Hostname,
        now: OffsetDateTime,
    ) -> Certificate {
        Certificate {
            id,
            account_id,
            kind,
            is_wildcard: domain.is_wildcard(),
            domain,
            sans: vec![],
            key_type: KeyType::default(),
            auto_renew: false,
            status: CertificateStatus::Pending,
            issued_at: None,
            not_before: None,
            expires_at: None,
            next_renewal_at: None,
            next_attempt_at: Some(now),
            consecutive_failures: 0,
            last_error: None,
            order_url: None,
            material_version: None,
            pending_material_version: None,
            order_budget_until: None,
            ca_directory_url: None,
            ari_id: None,
            acme_profile: None,
            issued_profile: None,
            expiring_notice_days: None,
            created_at: now,
            updated_at: now,
            version: 1,
        }
    }

    /// The same request with another key algorithm.
    pub fn with_key_type(mut self, key_type: KeyType) -> Certificate {
        self.key_type = key_type;
        self
    }

    /// The same request with an ACME profile of its own (`None`: its domain's or account's).
    pub fn with_acme_profile(mut self, profile: Option<String>) -> Certificate {
        self.acme_profile = profile;
        self
    }

    /// The same request with auto-renewal on or off.
    pub fn with_auto_renew(mut self, auto_renew: bool) -> Certificate {
        self.auto_renew = auto_renew;
        self
    }

    /// Every name on the certificate, primary first.
    pub fn names(&self) -> impl Iterator<Item = &Hostname> {
        std::iter::once(&self.domain).chain(self.sans.iter())
    }

    /// The lease whose holder alone may write this certificate's material: one per name set
    /// (sorted, so the same names always share it), taken by every issuance and by the key
    /// storage sweep, across every process.
    pub fn issuance_lease_name(&self) -> String {
        let names: std::collections::BTreeSet<&str> =
            self.names().map(|name| name.as_str()).collect();
        format!("issue:{}", names.into_iter().collect::<Vec<_>>().join(","))
    }

    /// The vault versions this certificate refers to: the one served and the pending key.
    pub fn material_versions(&self) -> impl Iterator<Item = &String> {
        self.material_version
            .iter()
            .chain(self.pending_material_version.iter())
    }

    /// Whether the renewer keeps this certificate alive on its own: managed certificates always,
    /// downloadable ones when auto-renew is on (the plan is checked again at renewal time).
    pub fn renews_automatically(&self) -> bool {
        matches!(self.kind, CertificateKind::Managed { .. }) || self.auto_renew
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn issued(kind: CertificateKind, auto_renew: bool) -> Certificate {
        let now = datetime!(2026-01-15 10:30 UTC);
        let mut certificate = Certificate::requested(
            CertificateId::generate(),
            AccountId::generate(),
            kind,
            Hostname::parse_domain("app.example.com").unwrap(),
            now,
        )
        .with_auto_renew(auto_renew);
        certificate.status = CertificateStatus::Issued;
        certificate.issued_at = Some(now);
        certificate.not_before = Some(now);
        certificate.expires_at = Some(datetime!(2026-04-15 10:30 UTC));
        certificate.next_renewal_at = Some(datetime!(2026-03-16 10:30 UTC));
        certificate.next_attempt_at = None;
        certificate
    }

    #[test]
    fn due_time_follows_what_the_certificate_needs() {
        let zone = CertificateKind::Downloadable {
            zone_id: ZoneId::generate(),
        };
        let managed = CertificateKind::Managed {
            domain_id: DomainId::generate(),
        };
        assert_eq!(
            issued(managed, false).due_at(),
            Some(datetime!(2026-03-16 10:30 UTC))
        );
        assert_eq!(
            issued(zone.clone(), true).due_at(),
            Some(datetime!(2026-03-16 10:30 UTC))
        );
        // Without auto-renew, the scheduler only comes back to mark it expired.
        assert_eq!(
            issued(zone.clone(), false).due_at(),
            Some(datetime!(2026-04-15 10:30 UTC))
        );
        let mut retrying = issued(zone.clone(), true);
        retrying.next_attempt_at = Some(datetime!(2026-03-16 10:31 UTC));
        assert_eq!(retrying.due_at(), Some(datetime!(2026-03-16 10:31 UTC)));
        let mut revoked = issued(zone, true);
        revoked.status = CertificateStatus::Revoked;
        assert_eq!(revoked.due_at(), None);
    }

    #[test]
    fn constructors_build_requests_due_at_once() {
        let now = datetime!(2026-01-15 10:30 UTC);
        let domain = Domain::whitelisted(
            AccountId::generate(),
            Hostname::parse_domain("shop.example.com").unwrap(),
            "https://origin.example.net".to_owned(),
            false,
            now,
        );
        let managed = Certificate::managed(&domain, now);
        assert_eq!(managed.id, CertificateId::managed_for(&domain.id));
        assert_eq!(managed.domain, domain.hostname);
        assert!(managed.auto_renew && managed.renews_automatically());
        assert_eq!(managed.status, CertificateStatus::Pending);
        assert_eq!(managed.due_at(), Some(now));
        let wildcard = Certificate::downloadable(
            AccountId::generate(),
            ZoneId::generate(),
            Hostname::parse_certificate_name("*.example.com").unwrap(),
            vec![Hostname::parse_certificate_name("example.com").unwrap()],
            now,
        )
        .with_key_type(KeyType::Rsa2048);
        assert!(wildcard.is_wildcard);
        assert!(!wildcard.auto_renew);
        assert_eq!(wildcard.key_type, KeyType::Rsa2048);
        assert_eq!(wildcard.names().count(), 2);
        assert_eq!(wildcard.version, 1);
    }

    #[test]
    fn key_types_serialise_as_in_the_api() {
        assert_eq!(
            serde_json::to_string(&KeyType::Rsa2048).unwrap(),
            "\"rsa-2048\""
        );
        assert_eq!(
            serde_json::from_str::<KeyType>("\"ecdsa-p256\"").unwrap(),
            KeyType::EcdsaP256
        );
    }
}

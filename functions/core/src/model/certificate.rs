//! Certificates: managed ones (serving a whitelisted domain at the edge) and downloadable ones
//! (DNS-01 on an account's zone).

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::hostname::Hostname;
use crate::ids::{AccountId, CertificateId, DomainId, ZoneId};

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

    /// When the scheduler must next look at this certificate, or `None` when never.
    ///
    /// This is what the store's due index holds, so the renewer reads only due items:
    /// a retry time after a failure or an interrupted issuance, the renewal time of an issued
    /// certificate that renews itself, or the expiry of one that does not (to mark it expired).
    pub fn due_at(&self) -> Option<OffsetDateTime> {
        match self.status {
            CertificateStatus::Expired | CertificateStatus::Revoked => None,
            CertificateStatus::Pending
            | CertificateStatus::Validating
            | CertificateStatus::Failed => self.next_attempt_at,
            CertificateStatus::Issued if self.renews_automatically() => {
                match (self.next_attempt_at, self.next_renewal_at) {
                    (Some(retry), _) => Some(retry),
                    (None, renewal) => renewal,
                }
            }
            CertificateStatus::Issued => self.expires_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    fn issued(kind: CertificateKind, auto_renew: bool) -> Certificate {
        let now = datetime!(2026-01-15 10:30 UTC);
        Certificate {
            id: CertificateId::generate(),
            account_id: AccountId::generate(),
            kind,
            domain: Hostname::parse_domain("app.example.com").unwrap(),
            sans: vec![],
            is_wildcard: false,
            key_type: KeyType::default(),
            auto_renew,
            status: CertificateStatus::Issued,
            issued_at: Some(now),
            not_before: Some(now),
            expires_at: Some(datetime!(2026-04-15 10:30 UTC)),
            next_renewal_at: Some(datetime!(2026-03-16 10:30 UTC)),
            next_attempt_at: None,
            consecutive_failures: 0,
            last_error: None,
            order_url: None,
            material_version: None,
            pending_material_version: None,
            created_at: now,
            updated_at: now,
            version: 1,
        }
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

//! Store contents as EdgeCert's own flows leave them, for tests and benchmarks that need served
//! certificates without running ACME.

use std::sync::atomic::{AtomicUsize, Ordering};

use edgecert_core::model::{Certificate, CertificateStatus, Domain, KeyType, ProvisioningStep};
use edgecert_core::ports::{CertificateMaterial, Issuance, IssueOutcome, Store, Vault};
use edgecert_core::{AccountId, CertificateId};
use time::OffsetDateTime;

/// Writes what a finished issuance leaves for a whitelisted `domain` at `now`: `material` in the
/// vault, its managed certificate `issued` (valid 90 days, renewal due after 60) and the domain
/// `active` with that certificate. Returns both as stored.
pub async fn install_issued_certificate(
    store: &dyn Store,
    vault: &dyn Vault,
    mut domain: Domain,
    material: &CertificateMaterial,
    key_type: KeyType,
    now: OffsetDateTime,
) -> edgecert_core::Result<(Domain, Certificate)> {
    let id = CertificateId::managed_for(&domain.id);
    let version = vault.put_material(&id, material).await?;
    let mut certificate = Certificate::managed(&domain, now).with_key_type(key_type);
    certificate.status = CertificateStatus::Issued;
    certificate.issued_at = Some(now);
    certificate.not_before = Some(now);
    certificate.expires_at = Some(now + time::Duration::days(90));
    certificate.next_renewal_at = Some(now + time::Duration::days(60));
    certificate.next_attempt_at = None;
    certificate.material_version = Some(version.0);
    let certificate = match store.create_certificate(&certificate, 0).await {
        Ok(()) => certificate,
        // The domain's first DNS check already created its (waiting) managed certificate.
        Err(edgecert_core::Error::CertificateExists) => {
            let existing = store
                .get_certificate(&certificate.account_id, &certificate.id)
                .await?
                .ok_or(edgecert_core::Error::CertificateExists)?;
            certificate.version = existing.version;
            store.update_certificate(&certificate).await?
        }
        Err(error) => return Err(error),
    };
    domain.provisioning_step = ProvisioningStep::Active;
    domain.certificate_id = Some(id);
    domain.updated_at = now;
    let domain = store.update_domain(&domain).await?;
    Ok((domain, certificate))
}

/// An issuance port for servers that must not issue: every call is counted and skipped.
#[derive(Debug, Default)]
pub struct NoIssuance {
    calls: AtomicUsize,
}

impl NoIssuance {
    /// How many times `issue` was called.
    pub fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait::async_trait]
impl Issuance for NoIssuance {
    async fn issue(&self, _: &AccountId, _: &CertificateId) -> edgecert_core::Result<IssueOutcome> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        Ok(IssueOutcome::Skipped)
    }

    async fn revoke(&self, _: &Certificate) -> edgecert_core::Result<()> {
        Ok(())
    }
}

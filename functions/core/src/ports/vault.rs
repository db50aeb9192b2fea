//! The vault port: certificate chains, private keys and ACME account credentials.
//!
//! Every write of a certificate's material creates a new version and returns its id; older
//! versions stay readable. The certificate item in the store says which version is served, so a
//! new chain is switched to only after it is stored whole, and a failed write leaves the
//! previous version in place.
//!
//! A vault may keep material in more than one place: on AWS, Secrets Manager or sealed in the
//! table, under one data key or another (key storage). It then names where new material goes
//! ([`Vault::storage_generation`]), reads every version wherever it sits, and the key storage
//! sweep ([`crate::usecases::key_storage`]) moves what is elsewhere, a bounded number of
//! certificates per renewer run, remembering its progress through [`Vault::load_sweep`] and
//! [`Vault::save_sweep`]. A vault with one place (SQLite) keeps the defaults: nothing to move.

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::Result;
use crate::ids::CertificateId;
use crate::model::SecretString;

/// Largest material (chain plus key, serialised) any vault accepts; Secrets Manager's limit.
pub const MAX_MATERIAL_BYTES: usize = 65_536;

/// A certificate's private key and, once issued, its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CertificateMaterial {
    /// PEM leaf certificate followed by intermediates; `None` while the order is in progress.
    pub chain_pem: Option<String>,
    /// PEM PKCS#8 private key.
    pub private_key_pem: SecretString,
}

/// Id of one stored version of a certificate's material.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct MaterialVersion(pub String);

/// Where the key storage sweep stands: which storage generation it moves material to, and how
/// far through the certificates (in change-feed order) it got.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MaterialSweep {
    /// The [`Vault::storage_generation`] this sweep moves material to.
    pub generation: String,
    /// When the sweep began.
    pub started_at: OffsetDateTime,
    /// The change time to read on from; `None` once every certificate was looked at.
    pub resume_from: Option<OffsetDateTime>,
    /// Certificates whose material this sweep moved so far.
    pub moved: u64,
}

impl MaterialSweep {
    /// A sweep to `generation`, from the first certificate on.
    pub fn start(generation: String, now: OffsetDateTime) -> MaterialSweep {
        MaterialSweep {
            generation,
            started_at: now,
            resume_from: Some(OffsetDateTime::UNIX_EPOCH),
            moved: 0,
        }
    }

    /// Whether every certificate was looked at.
    pub fn is_finished(&self) -> bool {
        self.resume_from.is_none()
    }
}

/// Secret storage.
#[async_trait]
pub trait Vault: Send + Sync {
    /// Stores a new version of a certificate's material; earlier versions stay readable.
    async fn put_material(
        &self,
        certificate: &CertificateId,
        material: &CertificateMaterial,
    ) -> Result<MaterialVersion>;
    /// Reads one version; [`NotFound`](crate::Error::NotFound) when absent.
    async fn get_material(
        &self,
        certificate: &CertificateId,
        version: &MaterialVersion,
    ) -> Result<CertificateMaterial>;
    /// Deletes every version of a certificate's material (no error when absent).
    async fn delete_material(&self, certificate: &CertificateId) -> Result<()>;
    /// Stores the ACME account credentials (JSON) for a directory URL, replacing earlier ones.
    async fn put_acme_account(&self, directory_url: &str, credentials: &SecretString)
    -> Result<()>;
    /// The ACME account credentials for a directory URL.
    async fn get_acme_account(&self, directory_url: &str) -> Result<Option<SecretString>>;

    /// Deletes the stored versions of a certificate's material that are not in `keep`, once
    /// the certificate no longer refers to them. `superseded` names the versions the caller
    /// just stopped referring to: a vault that cannot list what it holds without a paid call
    /// (one Secrets Manager secret per certificate) deletes only by those. The caller holds
    /// the certificate's issuance lease, so no version is being written meanwhile.
    async fn prune_material(
        &self,
        certificate: &CertificateId,
        keep: &[MaterialVersion],
        superseded: &[MaterialVersion],
    ) -> Result<()> {
        let _ = (certificate, keep, superseded);
        Ok(())
    }

    /// Where new material goes now (for example `sealed/<data key>`), for a vault that keeps
    /// material in more than one place; `None` (the default) for a vault with one place.
    async fn storage_generation(&self) -> Result<Option<String>> {
        Ok(None)
    }

    /// Whether `version` sits where `generation` (a [`Vault::storage_generation`]) puts new
    /// material: when not, the key storage sweep moves it.
    fn is_in_generation(&self, version: &MaterialVersion, generation: &str) -> bool {
        let _ = (version, generation);
        true
    }

    /// Makes a new data key the one new material is sealed under; the sweep then re-seals
    /// what older keys sealed. `Ok(false)` for a vault without data keys (the default).
    async fn rotate_data_key(&self) -> Result<bool> {
        Ok(false)
    }

    /// The key storage sweep's saved progress, if any.
    async fn load_sweep(&self) -> Result<Option<MaterialSweep>> {
        Ok(None)
    }

    /// Saves the key storage sweep's progress.
    async fn save_sweep(&self, sweep: &MaterialSweep) -> Result<()> {
        let _ = sweep;
        Ok(())
    }
}

//! The vault port: certificate chains, private keys and ACME account credentials.
//!
//! Every write of a certificate's material creates a new version and returns its id; older
//! versions stay readable. The certificate item in the store says which version is served, so a
//! new chain is switched to only after it is stored whole, and a failed write leaves the
//! previous version in place.

use async_trait::async_trait;

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
}

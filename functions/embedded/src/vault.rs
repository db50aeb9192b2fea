//! [`SqliteVault`]: certificate material and ACME account credentials in the same file as the
//! store, which is why that file is created owner-only.

use async_trait::async_trait;
use edgecert_core::model::SecretString;
use edgecert_core::ports::{CertificateMaterial, MAX_MATERIAL_BYTES, MaterialVersion, Vault};
use edgecert_core::{CertificateId, ItemKind};
use rand::RngCore;
use rusqlite::{Connection, OptionalExtension, params};

use crate::database::SharedConnection;
use crate::error::{EmbeddedError, Result};

/// The vault over one [`Database`](crate::Database); cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteVault {
    connection: SharedConnection,
}

impl SqliteVault {
    pub(crate) fn new(connection: SharedConnection) -> Self {
        SqliteVault { connection }
    }

    async fn run<T, F>(&self, work: F) -> edgecert_core::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.connection
            .run(move |connection| work(connection))
            .await
            .map_err(EmbeddedError::into_vault_error)
    }
}

/// A random version id, like Secrets Manager's: it names one write and nothing else, so it
/// cannot be confused with another certificate's version or reused after a delete.
fn new_version_id() -> String {
    let mut bytes = [0u8; 16];
    rand::thread_rng().fill_bytes(&mut bytes);
    bytes.iter().map(|byte| format!("{byte:02x}")).collect()
}

/// What the material weighs against [`MAX_MATERIAL_BYTES`]: the PEM text of chain and key.
fn material_size(material: &CertificateMaterial) -> usize {
    material.chain_pem.as_ref().map_or(0, String::len) + material.private_key_pem.expose().len()
}

#[async_trait]
impl Vault for SqliteVault {
    async fn put_material(
        &self,
        certificate: &CertificateId,
        material: &CertificateMaterial,
    ) -> edgecert_core::Result<MaterialVersion> {
        let size = material_size(material);
        if size > MAX_MATERIAL_BYTES {
            return Err(edgecert_core::Error::MaterialTooLarge {
                size,
                limit: MAX_MATERIAL_BYTES,
            });
        }
        let certificate = certificate.clone();
        let material = material.clone();
        let version = new_version_id();
        self.run(move |connection| {
            connection.execute(
                "INSERT INTO certificate_material
                     (certificate_id, version_id, chain_pem, private_key_pem)
                 VALUES (?1, ?2, ?3, ?4)",
                params![
                    certificate.as_str(),
                    version,
                    material.chain_pem,
                    material.private_key_pem.expose()
                ],
            )?;
            Ok(MaterialVersion(version))
        })
        .await
    }

    async fn get_material(
        &self,
        certificate: &CertificateId,
        version: &MaterialVersion,
    ) -> edgecert_core::Result<CertificateMaterial> {
        let certificate = certificate.clone();
        let version = version.clone();
        self.run(move |connection| {
            let material = connection
                .query_row(
                    "SELECT chain_pem, private_key_pem FROM certificate_material
                     WHERE certificate_id = ?1 AND version_id = ?2",
                    params![certificate.as_str(), version.0],
                    |row| {
                        Ok(CertificateMaterial {
                            chain_pem: row.get(0)?,
                            private_key_pem: SecretString::new(row.get::<_, String>(1)?),
                        })
                    },
                )
                .optional()?;
            material.ok_or(edgecert_core::Error::NotFound(ItemKind::CertificateMaterial).into())
        })
        .await
    }

    async fn delete_material(&self, certificate: &CertificateId) -> edgecert_core::Result<()> {
        let certificate = certificate.clone();
        self.run(move |connection| {
            connection.execute(
                "DELETE FROM certificate_material WHERE certificate_id = ?1",
                params![certificate.as_str()],
            )?;
            Ok(())
        })
        .await
    }

    async fn prune_material(
        &self,
        certificate: &CertificateId,
        keep: &[MaterialVersion],
        _superseded: &[MaterialVersion],
    ) -> edgecert_core::Result<()> {
        let certificate = certificate.clone();
        let keep: Vec<String> = keep.iter().map(|version| version.0.clone()).collect();
        self.run(move |connection| {
            let mut versions = connection.prepare(
                "SELECT version_id FROM certificate_material WHERE certificate_id = ?1",
            )?;
            let stored = versions
                .query_map(params![certificate.as_str()], |row| row.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<String>>>()?;
            for version in stored.iter().filter(|version| !keep.contains(version)) {
                connection.execute(
                    "DELETE FROM certificate_material WHERE certificate_id = ?1 AND version_id = ?2",
                    params![certificate.as_str(), version],
                )?;
            }
            Ok(())
        })
        .await
    }

    async fn put_acme_account(
        &self,
        directory_url: &str,
        credentials: &SecretString,
    ) -> edgecert_core::Result<()> {
        let directory_url = directory_url.to_owned();
        let credentials = credentials.clone();
        self.run(move |connection| {
            connection.execute(
                "INSERT INTO acme_accounts (directory_url, credentials) VALUES (?1, ?2)
                 ON CONFLICT (directory_url) DO UPDATE SET credentials = excluded.credentials",
                params![directory_url, credentials.expose()],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_acme_account(
        &self,
        directory_url: &str,
    ) -> edgecert_core::Result<Option<SecretString>> {
        let directory_url = directory_url.to_owned();
        self.run(move |connection| {
            let credentials: Option<String> = connection
                .query_row(
                    "SELECT credentials FROM acme_accounts WHERE directory_url = ?1",
                    params![directory_url],
                    |row| row.get(0),
                )
                .optional()?;
            Ok(credentials.map(SecretString::new))
        })
        .await
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::Database;

    #[tokio::test]
    async fn refused_material_is_not_quoted_in_the_error() {
        let directory = tempfile::tempdir().unwrap();
        let vault = Database::open(directory.path().join("edgecert.db"))
            .unwrap()
            .vault();
        let key = format!(
            "-----BEGIN PRIVATE KEY-----{}",
            "k".repeat(MAX_MATERIAL_BYTES)
        );
        let material = CertificateMaterial {
            chain_pem: None,
            private_key_pem: SecretString::new(key),
        };

        let error = vault
            .put_material(&CertificateId::generate(), &material)
            .await
            .unwrap_err();

        assert!(matches!(
            error,
            edgecert_core::Error::MaterialTooLarge { .. }
        ));
        assert!(!format!("{error} {error:?}").contains("PRIVATE"));
    }
}

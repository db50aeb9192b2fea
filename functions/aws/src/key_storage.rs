//! Key storage on AWS: where certificate private keys live, chosen by the stack's `KeyStorage`
//! parameter ([`KeyStorage`]), and the vault that writes there while reading every place
//! ([`KeyStorageVault`]).
//!
//! - `secrets-manager`: one Secrets Manager secret per certificate ([`SecretsManagerVault`]).
//! - `sealed`: the private key sealed with AES-256-GCM beside the certificate in the table,
//!   under a data key the stack's KMS key protects ([`crate::sealed`]).
//!
//! Whatever the mode, versions are read where they sit (a sealed version id says so), so a
//! live deployment moves between modes with no outage: new material goes to the new place at
//! once, and the key storage sweep (`edgecert_core::usecases::key_storage`, run by the
//! renewer) moves the rest. ACME account credentials stay in Secrets Manager in both modes
//! (one secret per CA account).

use std::str::FromStr;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::AttributeValue;
use time::OffsetDateTime;

use edgecert_core::model::SecretString;
use edgecert_core::ports::{CertificateMaterial, MaterialSweep, MaterialVersion, Vault};
use edgecert_core::{CertificateId, Error, Result};

use crate::config::AwsClients;
use crate::dynamo::schema::{ENTITY, PK, SK};
use crate::error::AwsError;
use crate::sealed::{self, SealedMaterial, attr, number_attr, string_attr};
use crate::secrets::{SecretsManagerVault, check_material_size};

/// Where new certificate keys are stored.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum KeyStorage {
    /// One Secrets Manager secret per certificate.
    SecretsManager,
    /// Sealed in the table under a KMS-protected data key (the stack's default).
    #[default]
    Sealed,
}

impl KeyStorage {
    /// The mode's name, as the `KeyStorage` parameter and `EDGECERT_KEY_STORAGE` spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            KeyStorage::SecretsManager => "secrets-manager",
            KeyStorage::Sealed => "sealed",
        }
    }
}

impl std::fmt::Display for KeyStorage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for KeyStorage {
    type Err = String;

    fn from_str(text: &str) -> std::result::Result<Self, Self::Err> {
        match text {
            "secrets-manager" => Ok(KeyStorage::SecretsManager),
            "sealed" => Ok(KeyStorage::Sealed),
            other => Err(format!("'{other}' is not sealed or secrets-manager")),
        }
    }
}

/// The storage generation of Secrets Manager mode.
const SECRETS_MANAGER_GENERATION: &str = "secrets-manager";
/// The storage generation of sealed mode is this prefix and the current data key's id.
const SEALED_GENERATION_PREFIX: &str = "sealed/";

/// Partition and sort key of the key storage sweep's progress.
const SWEEP_PK: &str = "SEALED#sweep";
const SWEEP_SK: &str = "SWEEP";
/// Attributes of the sweep item (times in unix milliseconds).
mod sweep {
    pub(super) const ENTITY: &str = "material_sweep";
    pub(super) const GENERATION: &str = "generation";
    pub(super) const STARTED_AT: &str = "started_at_ms";
    pub(super) const RESUME_FROM: &str = "resume_from_ms";
    pub(super) const MOVED: &str = "moved";
}

/// The vault of a deployment on AWS: new material goes where [`KeyStorage`] says, every
/// version is read where it sits.
#[derive(Debug, Clone)]
pub struct KeyStorageVault {
    storage: KeyStorage,
    secrets: SecretsManagerVault,
    /// Sealed material; `None` when no KMS key is configured (Secrets Manager mode only).
    sealed: Option<SealedMaterial>,
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
}

impl KeyStorageVault {
    /// The vault storing new material as `storage` says, with secrets named `{secret_prefix}…`
    /// and sealed material in `table` under data keys that `kms_key_id` (a key id, ARN or
    /// alias) wraps. Sealed mode needs the KMS key; Secrets Manager mode reads sealed versions
    /// only when given one (a deployment moving back from sealed mode).
    pub fn new(
        clients: &AwsClients,
        storage: KeyStorage,
        table: impl Into<String>,
        secret_prefix: impl Into<String>,
        kms_key_id: Option<String>,
    ) -> std::result::Result<KeyStorageVault, String> {
        let table = table.into();
        if storage == KeyStorage::Sealed && kms_key_id.is_none() {
            return Err("sealed key storage needs the KMS key that protects its data keys".into());
        }
        Ok(KeyStorageVault {
            storage,
            secrets: SecretsManagerVault::new(clients.secrets_manager.clone(), secret_prefix),
            sealed: kms_key_id.map(|kms_key_id| {
                SealedMaterial::new(
                    clients.dynamodb.clone(),
                    clients.kms.clone(),
                    table.clone(),
                    kms_key_id,
                )
            }),
            dynamodb: clients.dynamodb.clone(),
            table,
        })
    }

    /// Where new material goes.
    pub fn storage(&self) -> KeyStorage {
        self.storage
    }

    /// The Secrets Manager part (ACME accounts, and certificates in that mode).
    pub fn secrets_manager(&self) -> &SecretsManagerVault {
        &self.secrets
    }

    fn sealed(&self) -> Result<&SealedMaterial> {
        self.sealed.as_ref().ok_or_else(|| {
            Error::vault(AwsError::Sealing(
                "this material is sealed, and no KMS key is configured to unseal it".to_owned(),
            ))
        })
    }
}

#[async_trait]
impl Vault for KeyStorageVault {
    async fn put_material(
        &self,
        certificate: &CertificateId,
        material: &CertificateMaterial,
    ) -> Result<MaterialVersion> {
        match self.storage {
            KeyStorage::SecretsManager => self.secrets.put_material(certificate, material).await,
            KeyStorage::Sealed => {
                // The same limit in both modes, so material always moves between them.
                check_material_size(material)?;
                self.sealed()?.put(certificate, material).await
            }
        }
    }

    async fn get_material(
        &self,
        certificate: &CertificateId,
        version: &MaterialVersion,
    ) -> Result<CertificateMaterial> {
        if sealed::is_sealed_version(version) {
            self.sealed()?.get(certificate, version).await
        } else {
            self.secrets.get_material(certificate, version).await
        }
    }

    async fn delete_material(&self, certificate: &CertificateId) -> Result<()> {
        // A certificate may have material in both places while a deployment moves.
        self.secrets.delete_material(certificate).await?;
        if let Some(sealed) = &self.sealed {
            sealed.delete_except(certificate, &[]).await?;
        }
        Ok(())
    }

    async fn put_acme_account(
        &self,
        directory_url: &str,
        credentials: &SecretString,
    ) -> Result<()> {
        self.secrets
            .put_acme_account(directory_url, credentials)
            .await
    }

    async fn get_acme_account(&self, directory_url: &str) -> Result<Option<SecretString>> {
        self.secrets.get_acme_account(directory_url).await
    }

    async fn prune_material(
        &self,
        certificate: &CertificateId,
        keep: &[MaterialVersion],
        superseded: &[MaterialVersion],
    ) -> Result<()> {
        let sealed_involved = keep.iter().chain(superseded).any(sealed::is_sealed_version);
        if let Some(sealed) = &self.sealed {
            if sealed_involved || self.storage == KeyStorage::Sealed {
                sealed.delete_except(certificate, keep).await?;
            }
        }
        // One secret holds every Secrets Manager version of a certificate: it goes once the
        // certificate refers to none of them.
        let secret_superseded = superseded.iter().any(|v| !sealed::is_sealed_version(v));
        let secret_kept = keep.iter().any(|v| !sealed::is_sealed_version(v));
        if secret_superseded && !secret_kept {
            self.secrets.delete_material(certificate).await?;
        }
        Ok(())
    }

    async fn storage_generation(&self) -> Result<Option<String>> {
        Ok(Some(match self.storage {
            KeyStorage::SecretsManager => SECRETS_MANAGER_GENERATION.to_owned(),
            KeyStorage::Sealed => format!(
                "{SEALED_GENERATION_PREFIX}{}",
                self.sealed()?.keyring().current_id().await?
            ),
        }))
    }

    fn is_in_generation(&self, version: &MaterialVersion, generation: &str) -> bool {
        match generation.strip_prefix(SEALED_GENERATION_PREFIX) {
            Some(data_key) => sealed::data_key_of(version) == Some(data_key),
            None => !sealed::is_sealed_version(version),
        }
    }

    async fn rotate_data_key(&self) -> Result<bool> {
        match &self.sealed {
            Some(sealed) => {
                sealed.keyring().rotate().await?;
                Ok(true)
            }
            None => Ok(false),
        }
    }

    async fn load_sweep(&self) -> Result<Option<MaterialSweep>> {
        let output = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key(PK, attr(SWEEP_PK))
            .key(SK, attr(SWEEP_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| AwsError::dynamodb("GetItem", error))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let millis = |name| -> Option<OffsetDateTime> {
            let value: i128 = item.get(name)?.as_n().ok()?.parse().ok()?;
            OffsetDateTime::from_unix_timestamp_nanos(value * 1_000_000).ok()
        };
        let corrupt = || Error::Corrupt("the key storage sweep item is unreadable".to_owned());
        Ok(Some(MaterialSweep {
            generation: string_attr(&item, sweep::GENERATION).ok_or_else(corrupt)?,
            started_at: millis(sweep::STARTED_AT).ok_or_else(corrupt)?,
            resume_from: millis(sweep::RESUME_FROM),
            moved: item
                .get(sweep::MOVED)
                .and_then(|value| value.as_n().ok())
                .and_then(|text| text.parse().ok())
                .unwrap_or(0),
        }))
    }

    async fn save_sweep(&self, progress: &MaterialSweep) -> Result<()> {
        let millis = |at: OffsetDateTime| number_attr(at.unix_timestamp_nanos() / 1_000_000);
        let mut request = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .item(PK, attr(SWEEP_PK))
            .item(SK, attr(SWEEP_SK))
            .item(ENTITY, attr(sweep::ENTITY))
            .item(sweep::GENERATION, attr(&progress.generation))
            .item(sweep::STARTED_AT, millis(progress.started_at))
            .item(sweep::MOVED, AttributeValue::N(progress.moved.to_string()));
        if let Some(at) = progress.resume_from {
            request = request.item(sweep::RESUME_FROM, millis(at));
        }
        request
            .send()
            .await
            .map_err(|error| AwsError::dynamodb("PutItem", error))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn modes_read_back_from_their_names() {
        for mode in [KeyStorage::SecretsManager, KeyStorage::Sealed] {
            assert_eq!(mode.as_str().parse::<KeyStorage>(), Ok(mode));
        }
        assert_eq!(KeyStorage::default(), KeyStorage::Sealed);
        let error = "kms".parse::<KeyStorage>().unwrap_err();
        assert!(error.contains("'kms'"), "{error}");
    }
}

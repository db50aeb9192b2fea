//! The Secrets Manager vault: one secret per certificate, one per ACME account.
//!
//! - `{prefix}cert/{certificate id}` holds `{"chain_pem": …, "private_key_pem": …}`. Every put
//!   is a new secret version (the first creates the secret); the `VersionId` is the
//!   [`MaterialVersion`] the certificate item points at, so a chain is served only after it was
//!   stored whole, and the version being served stays readable while a successor is written
//!   (Secrets Manager keeps unlabelled versions for at least a day, and up to 100).
//! - `{prefix}acme-account/{sha256 hex of the directory URL}` holds the ACME account
//!   credentials JSON as is.
//!
//! Secret values never appear in errors or logs: errors name the secret and the operation only.

use async_trait::async_trait;
use aws_sdk_secretsmanager::Client;
use aws_sdk_secretsmanager::operation::create_secret::CreateSecretError;
use aws_sdk_secretsmanager::operation::delete_secret::DeleteSecretError;
use aws_sdk_secretsmanager::operation::get_secret_value::{
    GetSecretValueError, GetSecretValueOutput,
};
use aws_sdk_secretsmanager::operation::put_secret_value::PutSecretValueError;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use edgecert_core::model::SecretString;
use edgecert_core::ports::{CertificateMaterial, MAX_MATERIAL_BYTES, MaterialVersion, Vault};
use edgecert_core::{CertificateId, Error, ItemKind, Result};

use crate::error::AwsError;

/// Secrets Manager version ids are 32 to 64 characters; anything else cannot exist.
const VERSION_ID_LENGTHS: std::ops::RangeInclusive<usize> = 32..=64;

/// What a certificate secret holds, as written.
#[derive(Serialize)]
struct MaterialOut<'a> {
    chain_pem: Option<&'a str>,
    private_key_pem: &'a str,
}

/// What a certificate secret holds, as read. No `Debug`: it holds the private key.
#[derive(Deserialize)]
struct MaterialIn {
    chain_pem: Option<String>,
    private_key_pem: String,
}

/// The vault on AWS Secrets Manager. Cheap to clone (the SDK client is shared).
#[derive(Debug, Clone)]
pub struct SecretsManagerVault {
    client: Client,
    prefix: String,
}

impl SecretsManagerVault {
    /// A vault naming its secrets `{prefix}cert/…` and `{prefix}acme-account/…`. The prefix
    /// (e.g. `edgecert/prod/`) separates deployments sharing an account and scopes the IAM
    /// policy; it may use letters, digits and `/_+=.@-`.
    pub fn new(client: Client, prefix: impl Into<String>) -> Self {
        SecretsManagerVault {
            client,
            prefix: prefix.into(),
        }
    }

    /// The name of a certificate's secret.
    pub fn certificate_secret_name(&self, certificate: &CertificateId) -> String {
        format!("{}cert/{certificate}", self.prefix)
    }

    /// The name of the secret holding the ACME account of a directory.
    pub fn acme_account_secret_name(&self, directory_url: &str) -> String {
        format!(
            "{}acme-account/{}",
            self.prefix,
            hex::encode(Sha256::digest(directory_url.as_bytes()))
        )
    }

    /// Stores `value` as the new current version of secret `name`, creating the secret on
    /// first use; returns the new version id.
    async fn put_value(&self, name: &str, value: &str, description: &str) -> Result<String> {
        // A put to an existing secret is the common case (every renewal writes twice).
        match self.put_existing(name, value).await? {
            Some(version) => return Ok(version),
            None => tracing::debug!(secret = name, "secret absent, creating it"),
        }
        let result = self
            .client
            .create_secret()
            .name(name)
            .description(description)
            .secret_string(value)
            .send()
            .await;
        match result {
            Ok(output) => version_id("CreateSecret", output.version_id()),
            Err(error) => match error.as_service_error() {
                // Created concurrently since our first attempt: add our version to it.
                Some(CreateSecretError::ResourceExistsException(_)) => {
                    match self.put_existing(name, value).await? {
                        Some(version) => Ok(version),
                        None => Err(AwsError::secrets_manager("CreateSecret", error).into()),
                    }
                }
                _ => Err(AwsError::secrets_manager("CreateSecret", error).into()),
            },
        }
    }

    /// `PutSecretValue`; `None` when the secret does not exist.
    async fn put_existing(&self, name: &str, value: &str) -> Result<Option<String>> {
        let result = self
            .client
            .put_secret_value()
            .secret_id(name)
            .secret_string(value)
            .send()
            .await;
        match result {
            Ok(output) => version_id("PutSecretValue", output.version_id()).map(Some),
            Err(error) => match error.as_service_error() {
                Some(PutSecretValueError::ResourceNotFoundException(_)) => Ok(None),
                _ => Err(AwsError::secrets_manager("PutSecretValue", error).into()),
            },
        }
    }

    /// `GetSecretValue` of one version (the current one when `None`); `None` when the secret
    /// or the version does not exist or the secret is being deleted.
    async fn get_value(
        &self,
        name: &str,
        version: Option<&str>,
    ) -> Result<Option<GetSecretValueOutput>> {
        let result = self
            .client
            .get_secret_value()
            .secret_id(name)
            .set_version_id(version.map(str::to_owned))
            .send()
            .await;
        match result {
            Ok(output) => Ok(Some(output)),
            Err(error) => match error.as_service_error() {
                Some(
                    GetSecretValueError::ResourceNotFoundException(_)
                    | GetSecretValueError::InvalidRequestException(_),
                ) => Ok(None),
                _ => Err(AwsError::secrets_manager("GetSecretValue", error).into()),
            },
        }
    }
}

/// The material as the secret holds it, refused when over [`MAX_MATERIAL_BYTES`]. Sealed
/// storage applies the same check, so material always fits either mode.
pub(crate) fn check_material_size(material: &CertificateMaterial) -> Result<SecretString> {
    let json = serde_json::to_string(&MaterialOut {
        chain_pem: material.chain_pem.as_deref(),
        private_key_pem: material.private_key_pem.expose(),
    })
    .map_err(|_| Error::Corrupt("certificate material could not be serialised".to_owned()))?;
    let value = SecretString::new(json);
    let size = value.expose().len();
    if size > MAX_MATERIAL_BYTES {
        return Err(Error::MaterialTooLarge {
            size,
            limit: MAX_MATERIAL_BYTES,
        });
    }
    Ok(value)
}

fn version_id(operation: &'static str, version: Option<&str>) -> Result<String> {
    version.map(str::to_owned).ok_or_else(|| {
        AwsError::MissingField {
            operation,
            field: "VersionId",
        }
        .into()
    })
}

fn secret_string<'a>(operation: &'static str, output: &'a GetSecretValueOutput) -> Result<&'a str> {
    output.secret_string().ok_or_else(|| {
        AwsError::MissingField {
            operation,
            field: "SecretString",
        }
        .into()
    })
}

#[async_trait]
impl Vault for SecretsManagerVault {
    async fn put_material(
        &self,
        certificate: &CertificateId,
        material: &CertificateMaterial,
    ) -> Result<MaterialVersion> {
        let value = check_material_size(material)?;
        let name = self.certificate_secret_name(certificate);
        let description = format!("EdgeCert certificate {certificate}: chain and private key");
        let version = self.put_value(&name, value.expose(), &description).await?;
        Ok(MaterialVersion(version))
    }

    async fn get_material(
        &self,
        certificate: &CertificateId,
        version: &MaterialVersion,
    ) -> Result<CertificateMaterial> {
        if !VERSION_ID_LENGTHS.contains(&version.0.len()) {
            return Err(Error::NotFound(ItemKind::CertificateMaterial));
        }
        let name = self.certificate_secret_name(certificate);
        let output = self
            .get_value(&name, Some(&version.0))
            .await?
            .ok_or(Error::NotFound(ItemKind::CertificateMaterial))?;
        let stored: MaterialIn = serde_json::from_str(secret_string("GetSecretValue", &output)?)
            .map_err(|error| {
                // The serde message could quote the secret: report the position only.
                Error::Corrupt(format!(
                    "secret {name} version {} is not certificate material (line {}, column {})",
                    version.0,
                    error.line(),
                    error.column()
                ))
            })?;
        Ok(CertificateMaterial {
            chain_pem: stored.chain_pem,
            private_key_pem: SecretString::new(stored.private_key_pem),
        })
    }

    async fn delete_material(&self, certificate: &CertificateId) -> Result<()> {
        let name = self.certificate_secret_name(certificate);
        let result = self
            .client
            .delete_secret()
            .secret_id(&name)
            .force_delete_without_recovery(true)
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match error.as_service_error() {
                Some(DeleteSecretError::ResourceNotFoundException(_)) => Ok(()),
                _ => Err(AwsError::secrets_manager("DeleteSecret", error).into()),
            },
        }
    }

    async fn put_acme_account(
        &self,
        directory_url: &str,
        credentials: &SecretString,
    ) -> Result<()> {
        let name = self.acme_account_secret_name(directory_url);
        let description = format!("EdgeCert ACME account credentials for {directory_url}");
        self.put_value(&name, credentials.expose(), &description)
            .await?;
        Ok(())
    }

    async fn get_acme_account(&self, directory_url: &str) -> Result<Option<SecretString>> {
        let name = self.acme_account_secret_name(directory_url);
        match self.get_value(&name, None).await? {
            Some(output) => Ok(Some(SecretString::new(secret_string(
                "GetSecretValue",
                &output,
            )?))),
            None => Ok(None),
        }
    }
}

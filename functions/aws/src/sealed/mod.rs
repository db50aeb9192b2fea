//! Sealed key storage: certificate material in the DynamoDB table, the private key sealed with
//! AES-256-GCM under a data key that the stack's KMS key wraps (envelope encryption).
//!
//! One item per material version, in a partition of its own per certificate (never in the
//! account's partition, whose item collection the account's domains fill):
//!
//! | entity | PK | SK | other attributes |
//! |---|---|---|---|
//! | `sealed_material` | `SEALED#{certificate}` | `MAT#{version}` | `data_key` (its id), `algorithm` (`AES-256-GCM`), `nonce` (B), `sealed_key` (B: the PEM private key, sealed), `chain_pem` (S, absent while the order is in progress) |
//! | `sealing_keyring` | `SEALED#keyring` | `KEYRING` | see [`keyring`] |
//! | `material_sweep` | `SEALED#sweep` | `SWEEP` | the key storage sweep's progress (see [`crate::KeyStorageVault`]) |
//!
//! A version id is `sealed.{data key id}.{32 random hex digits}`: the data key it was sealed
//! under is read from the id alone, so whether a certificate's material needs re-sealing after
//! a rotation is known without reading it. The associated data of the seal is the certificate
//! id, the version id and the SHA-256 of the chain: a sealed key moved to another item, or
//! served with another chain, does not open.
//!
//! The chain is public (it is in Certificate Transparency logs) and stays readable in the
//! item. An item holds at most [`MAX_MATERIAL_BYTES`] of material, far below DynamoDB's
//! 400 KB item limit. A new version is written whole in one `PutItem` before the certificate
//! item names it, so a chain is switched to only once it is stored whole; reads of a version
//! are strongly consistent (a reader that saw the certificate name it finds it).

mod envelope;
pub(crate) mod keyring;

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use rand::RngCore as _;
use sha2::{Digest as _, Sha256};

use edgecert_core::model::SecretString;
use edgecert_core::ports::{CertificateMaterial, MaterialVersion};
use edgecert_core::{CertificateId, Error, ItemKind, Result};

use crate::dynamo::schema::{ENTITY, PK, SK};
use crate::error::AwsError;
use envelope::Sealed;
pub(crate) use keyring::Keyring;

/// Prefix of every sealed version id.
const VERSION_PREFIX: &str = "sealed.";
/// `entity` of a sealed material item.
const MATERIAL_ENTITY: &str = "sealed_material";
/// The seal's algorithm, recorded on every item.
const ALGORITHM: &str = "AES-256-GCM";
/// Label of the associated data (changes if the layout of the seal ever does).
const AAD_LABEL: &str = "edgecert/sealed-material/v1";

/// Attributes of a sealed material item.
mod material {
    pub(super) const DATA_KEY: &str = "data_key";
    pub(super) const ALGORITHM: &str = "algorithm";
    pub(super) const NONCE: &str = "nonce";
    pub(super) const SEALED_KEY: &str = "sealed_key";
    pub(super) const CHAIN_PEM: &str = "chain_pem";
}

/// Certificate material sealed in one table.
#[derive(Debug, Clone)]
pub(crate) struct SealedMaterial {
    dynamodb: aws_sdk_dynamodb::Client,
    table: String,
    keyring: Arc<Keyring>,
}

/// Whether `version` is a sealed version id.
pub(crate) fn is_sealed_version(version: &MaterialVersion) -> bool {
    version.0.starts_with(VERSION_PREFIX)
}

/// The data key a sealed version was sealed under.
pub(crate) fn data_key_of(version: &MaterialVersion) -> Option<&str> {
    let rest = version.0.strip_prefix(VERSION_PREFIX)?;
    let (key, random) = rest.split_once('.')?;
    (!key.is_empty() && !random.is_empty()).then_some(key)
}

impl SealedMaterial {
    pub(crate) fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        kms: aws_sdk_kms::Client,
        table: String,
        kms_key_id: String,
    ) -> SealedMaterial {
        let keyring = Keyring::new(dynamodb.clone(), kms, table.clone(), kms_key_id);
        SealedMaterial {
            dynamodb,
            table,
            keyring: Arc::new(keyring),
        }
    }

    /// The data key ring.
    pub(crate) fn keyring(&self) -> &Keyring {
        &self.keyring
    }

    /// Seals the private key under the current data key and stores chain and sealed key as a
    /// new version.
    pub(crate) async fn put(
        &self,
        certificate: &CertificateId,
        material: &CertificateMaterial,
    ) -> Result<MaterialVersion> {
        let key = self.keyring.current().await?;
        let version = MaterialVersion(format!(
            "{VERSION_PREFIX}{}.{}",
            key.id(),
            random_hex::<16>()
        ));
        let aad = associated_data(certificate, &version, material.chain_pem.as_deref());
        let sealed = key.seal(&aad, material.private_key_pem.expose().as_bytes())?;
        let mut request = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .item(PK, attr(partition(certificate)))
            .item(SK, attr(sort_key(&version)))
            .item(ENTITY, attr(MATERIAL_ENTITY))
            .item(material::DATA_KEY, attr(key.id()))
            .item(material::ALGORITHM, attr(ALGORITHM))
            .item(material::NONCE, blob_attr(&sealed.nonce))
            .item(material::SEALED_KEY, blob_attr(&sealed.ciphertext))
            // Version ids are random: an existing item means a broken random source.
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK);
        if let Some(chain) = &material.chain_pem {
            request = request.item(material::CHAIN_PEM, attr(chain));
        }
        request
            .send()
            .await
            .map_err(|error| AwsError::dynamodb("PutItem", error))?;
        Ok(version)
    }

    /// Reads and unseals one version.
    pub(crate) async fn get(
        &self,
        certificate: &CertificateId,
        version: &MaterialVersion,
    ) -> Result<CertificateMaterial> {
        let output = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key(PK, attr(partition(certificate)))
            .key(SK, attr(sort_key(version)))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| AwsError::dynamodb("GetItem", error))?;
        let item = output
            .item
            .ok_or(Error::NotFound(ItemKind::CertificateMaterial))?;
        let corrupt = |what: &str| {
            Error::Corrupt(format!(
                "sealed material {version} of {certificate}: {what}",
                version = version.0
            ))
        };
        let data_key =
            string_attr(&item, material::DATA_KEY).ok_or_else(|| corrupt("no data key id"))?;
        let sealed = Sealed {
            nonce: blob(&item, material::NONCE).ok_or_else(|| corrupt("no nonce"))?,
            ciphertext: blob(&item, material::SEALED_KEY)
                .ok_or_else(|| corrupt("no sealed key"))?,
        };
        let chain_pem = string_attr(&item, material::CHAIN_PEM);
        let key = self.keyring.key(&data_key).await?;
        let aad = associated_data(certificate, version, chain_pem.as_deref());
        let plaintext = key.open(&aad, &sealed).ok_or_else(|| {
            corrupt("the sealed key does not open (changed, or moved from another item)")
        })?;
        let private_key_pem =
            String::from_utf8(plaintext).map_err(|_| corrupt("the unsealed key is not text"))?;
        Ok(CertificateMaterial {
            chain_pem,
            private_key_pem: SecretString::new(private_key_pem),
        })
    }

    /// Deletes every stored version but `keep` (all of them when `keep` is empty).
    pub(crate) async fn delete_except(
        &self,
        certificate: &CertificateId,
        keep: &[MaterialVersion],
    ) -> Result<()> {
        let keep: Vec<String> = keep.iter().map(sort_key).collect();
        let mut start = None;
        loop {
            let output = self
                .dynamodb
                .query()
                .table_name(&self.table)
                .key_condition_expression("#pk = :pk")
                .expression_attribute_names("#pk", PK)
                .expression_attribute_names("#sk", SK)
                .expression_attribute_values(":pk", attr(partition(certificate)))
                .projection_expression("#pk, #sk")
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|error| AwsError::dynamodb("Query", error))?;
            for item in output.items() {
                let Some(sort_key) = string_attr(item, SK) else {
                    continue;
                };
                if keep.contains(&sort_key) {
                    continue;
                }
                self.dynamodb
                    .delete_item()
                    .table_name(&self.table)
                    .key(PK, attr(partition(certificate)))
                    .key(SK, attr(sort_key))
                    .send()
                    .await
                    .map_err(|error| AwsError::dynamodb("DeleteItem", error))?;
            }
            match output.last_evaluated_key {
                Some(key) => start = Some(key),
                None => return Ok(()),
            }
        }
    }
}

fn partition(certificate: &CertificateId) -> String {
    format!("SEALED#{certificate}")
}

fn sort_key(version: &MaterialVersion) -> String {
    format!("MAT#{}", version.0)
}

/// What a seal is bound to: the item (certificate and version) and the chain served with it.
fn associated_data(
    certificate: &CertificateId,
    version: &MaterialVersion,
    chain_pem: Option<&str>,
) -> Vec<u8> {
    let chain = chain_pem.map_or_else(
        || "-".to_owned(),
        |chain| hex::encode(Sha256::digest(chain)),
    );
    format!("{AAD_LABEL}\n{certificate}\n{}\n{chain}", version.0).into_bytes()
}

/// `N` random bytes as hex.
pub(crate) fn random_hex<const N: usize>() -> String {
    let mut bytes = [0u8; N];
    rand::thread_rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

pub(crate) fn attr(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

pub(crate) fn number_attr(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

pub(crate) fn blob_attr(bytes: &[u8]) -> AttributeValue {
    AttributeValue::B(Blob::new(bytes.to_vec()))
}

pub(crate) fn string_attr(item: &HashMap<String, AttributeValue>, name: &str) -> Option<String> {
    item.get(name).and_then(|value| value.as_s().ok()).cloned()
}

fn blob(item: &HashMap<String, AttributeValue>, name: &str) -> Option<Vec<u8>> {
    item.get(name)
        .and_then(|value| value.as_b().ok())
        .map(|blob| blob.as_ref().to_vec())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn version_ids_name_their_data_key() {
        let version = MaterialVersion("sealed.dk_0123456789abcdef.00ff".to_owned());
        assert!(is_sealed_version(&version));
        assert_eq!(data_key_of(&version), Some("dk_0123456789abcdef"));
        // A Secrets Manager version id is not sealed.
        let uuid = MaterialVersion("e0a7c4d2-9b1f-4a55-8c3e-2f6d1b0a9e77".to_owned());
        assert!(!is_sealed_version(&uuid));
        assert_eq!(data_key_of(&uuid), None);
        assert_eq!(
            data_key_of(&MaterialVersion("sealed.dk_1".to_owned())),
            None
        );
    }

    #[test]
    fn the_seal_is_bound_to_item_and_chain() {
        let certificate = CertificateId::generate();
        let version = MaterialVersion("sealed.dk_1.aa".to_owned());
        let with_chain = associated_data(&certificate, &version, Some("chain"));
        assert_ne!(with_chain, associated_data(&certificate, &version, None));
        assert_ne!(
            with_chain,
            associated_data(&certificate, &version, Some("other chain"))
        );
        assert_ne!(
            with_chain,
            associated_data(&CertificateId::generate(), &version, Some("chain"))
        );
    }
}

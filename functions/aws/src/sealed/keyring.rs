//! The data keys of sealed key storage: one item in the table (the key ring) holding every data
//! key wrapped by the stack's KMS key, and which one seals new material.
//!
//! - The first process that seals creates the ring: `GenerateDataKey` under the KMS key, then
//!   a put that succeeds only if no ring exists (a concurrent creator's ring wins, and its key
//!   is used).
//! - Every process unwraps a data key once (`Decrypt`, with the encryption context naming the
//!   table and the key id, which KMS checks and CloudTrail records) and keeps it in memory for
//!   its lifetime; it re-reads the ring every [`RING_REFRESH`] to follow rotations, and at once
//!   when it meets a key id it does not know.
//! - Rotation adds a new data key and makes it current (version-checked); older keys stay in
//!   the ring, so whatever they sealed stays readable while the key storage sweep re-seals it.
//!
//! Plaintext data keys never leave this module but as aws-lc keys.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use aws_sdk_kms::primitives::Blob;
use aws_sdk_kms::types::DataKeySpec;
use rand::RngCore as _;
use tokio::sync::Mutex;

use super::envelope::DataKey;
use super::{attr, blob_attr, number_attr, string_attr};
use crate::dynamo::schema::{ENTITY, PK, SK};
use crate::error::AwsError;

/// Partition and sort key of the key ring item.
pub(crate) const RING_PK: &str = "SEALED#keyring";
const RING_SK: &str = "KEYRING";
/// `entity` of the key ring item.
const RING_ENTITY: &str = "sealing_keyring";

/// How long a process trusts its copy of the ring before reading it again (rotations reach
/// every process within this).
pub(crate) const RING_REFRESH: Duration = Duration::from_secs(300);

/// Attributes of the ring item.
mod ring {
    pub(super) const CURRENT: &str = "current_key";
    pub(super) const CURRENT_SINCE: &str = "current_since";
    pub(super) const VERSION: &str = "version";
    pub(super) const KEYS: &str = "data_keys";
    /// Within one entry of `data_keys`.
    pub(super) const WRAPPED: &str = "wrapped";
    pub(super) const KMS_KEY: &str = "kms_key";
    pub(super) const CREATED_AT: &str = "created_at";
}

/// One data key as the ring holds it.
#[derive(Debug, Clone)]
struct WrappedKey {
    /// The KMS ciphertext of the data key.
    wrapped: Vec<u8>,
    /// The KMS key that wrapped it (its ARN, as KMS answered).
    kms_key: String,
}

/// The ring as last read.
#[derive(Debug, Clone)]
struct Ring {
    current: String,
    keys: HashMap<String, WrappedKey>,
    version: u64,
    read_at: Instant,
}

/// The key ring of one table.
pub(crate) struct Keyring {
    dynamodb: aws_sdk_dynamodb::Client,
    kms: aws_sdk_kms::Client,
    table: String,
    /// The KMS key new data keys are generated under (key id, ARN or alias).
    kms_key_id: String,
    ring: Mutex<Option<Ring>>,
    /// Unwrapped data keys by id; held while a key is being unwrapped, so concurrent readers
    /// of a fresh process ask KMS once.
    unwrapped: Mutex<HashMap<String, Arc<DataKey>>>,
}

impl std::fmt::Debug for Keyring {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Keyring")
            .field("table", &self.table)
            .field("kms_key_id", &self.kms_key_id)
            .finish_non_exhaustive()
    }
}

impl Keyring {
    pub(crate) fn new(
        dynamodb: aws_sdk_dynamodb::Client,
        kms: aws_sdk_kms::Client,
        table: String,
        kms_key_id: String,
    ) -> Keyring {
        Keyring {
            dynamodb,
            kms,
            table,
            kms_key_id,
            ring: Mutex::new(None),
            unwrapped: Mutex::new(HashMap::new()),
        }
    }

    /// The id of the data key new material is sealed under, creating the ring on first use.
    pub(crate) async fn current_id(&self) -> Result<String, AwsError> {
        Ok(self.fresh_ring().await?.current)
    }

    /// The data key new material is sealed under, creating the ring on first use.
    pub(crate) async fn current(&self) -> Result<Arc<DataKey>, AwsError> {
        let id = self.current_id().await?;
        self.key(&id).await
    }

    /// The data key `id`, unwrapped once per process.
    pub(crate) async fn key(&self, id: &str) -> Result<Arc<DataKey>, AwsError> {
        let mut unwrapped = self.unwrapped.lock().await;
        if let Some(key) = unwrapped.get(id) {
            return Ok(Arc::clone(key));
        }
        let wrapped = match self.known(id).await {
            Some(wrapped) => wrapped,
            // A key newer than our copy of the ring (rotated since): read it again.
            None => {
                let ring = self.read_ring().await?;
                ring.and_then(|ring| ring.keys.get(id).cloned())
                    .ok_or_else(|| {
                        AwsError::Sealing(format!("data key {id} is not in the key ring"))
                    })?
            }
        };
        let key = Arc::new(self.unwrap_key(id, &wrapped).await?);
        unwrapped.insert(id.to_owned(), Arc::clone(&key));
        Ok(key)
    }

    /// Makes a new data key current; returns its id.
    pub(crate) async fn rotate(&self) -> Result<String, AwsError> {
        for _ in 0..5 {
            let Some(ring) = self.read_ring().await? else {
                // No ring yet: its first key is as fresh as a rotated one.
                return self.current_id().await;
            };
            let (id, key, wrapped) = self.generate().await?;
            let updated = self
                .dynamodb
                .update_item()
                .table_name(&self.table)
                .key(PK, attr(RING_PK))
                .key(SK, attr(RING_SK))
                .update_expression(
                    "SET #keys.#id = :entry, #current = :id, #since = :since, #version = :next",
                )
                .condition_expression("#version = :expected")
                .expression_attribute_names("#keys", ring::KEYS)
                .expression_attribute_names("#id", &id)
                .expression_attribute_names("#current", ring::CURRENT)
                .expression_attribute_names("#since", ring::CURRENT_SINCE)
                .expression_attribute_names("#version", ring::VERSION)
                .expression_attribute_values(":entry", entry_attribute(&wrapped))
                .expression_attribute_values(":id", attr(&id))
                .expression_attribute_values(":since", number_attr(unix_now()))
                .expression_attribute_values(":next", number_attr(ring.version + 1))
                .expression_attribute_values(":expected", number_attr(ring.version))
                .send()
                .await;
            match updated {
                Ok(_) => {
                    self.unwrapped
                        .lock()
                        .await
                        .insert(id.clone(), Arc::new(key));
                    self.read_ring().await?;
                    tracing::info!(data_key = %id, "data key rotated");
                    return Ok(id);
                }
                Err(error)
                    if matches!(
                        error.as_service_error(),
                        Some(UpdateItemError::ConditionalCheckFailedException(_))
                    ) =>
                {
                    continue;
                }
                Err(error) => return Err(AwsError::dynamodb("UpdateItem", error)),
            }
        }
        Err(AwsError::Sealing(
            "the key ring kept changing during a rotation".to_owned(),
        ))
    }

    /// The wrapped key `id` in our copy of the ring, if there.
    async fn known(&self, id: &str) -> Option<WrappedKey> {
        self.ring
            .lock()
            .await
            .as_ref()
            .and_then(|ring| ring.keys.get(id).cloned())
    }

    /// Our copy of the ring if younger than [`RING_REFRESH`], else read again; a table without
    /// a ring gets one.
    async fn fresh_ring(&self) -> Result<Ring, AwsError> {
        {
            let cached = self.ring.lock().await;
            if let Some(ring) = cached.as_ref() {
                if ring.read_at.elapsed() < RING_REFRESH {
                    return Ok(ring.clone());
                }
            }
        }
        if let Some(ring) = self.read_ring().await? {
            return Ok(ring);
        }
        self.create_ring().await
    }

    /// Reads the ring (strongly consistent) into our copy.
    async fn read_ring(&self) -> Result<Option<Ring>, AwsError> {
        let output = self
            .dynamodb
            .get_item()
            .table_name(&self.table)
            .key(PK, attr(RING_PK))
            .key(SK, attr(RING_SK))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| AwsError::dynamodb("GetItem", error))?;
        let Some(item) = output.item else {
            return Ok(None);
        };
        let ring = parse_ring(&item)?;
        *self.ring.lock().await = Some(ring.clone());
        Ok(Some(ring))
    }

    /// Creates the ring with a first data key, unless another process just did.
    async fn create_ring(&self) -> Result<Ring, AwsError> {
        let (id, key, wrapped) = self.generate().await?;
        let created = self
            .dynamodb
            .put_item()
            .table_name(&self.table)
            .item(PK, attr(RING_PK))
            .item(SK, attr(RING_SK))
            .item(ENTITY, attr(RING_ENTITY))
            .item(ring::CURRENT, attr(&id))
            .item(ring::CURRENT_SINCE, number_attr(unix_now()))
            .item(ring::VERSION, number_attr(1))
            .item(
                ring::KEYS,
                AttributeValue::M(HashMap::from([(id.clone(), entry_attribute(&wrapped))])),
            )
            .condition_expression("attribute_not_exists(#pk)")
            .expression_attribute_names("#pk", PK)
            .send()
            .await;
        match created {
            Ok(_) => {
                self.unwrapped
                    .lock()
                    .await
                    .insert(id.clone(), Arc::new(key));
                tracing::info!(data_key = %id, "key ring created");
            }
            Err(error)
                if matches!(
                    error.as_service_error(),
                    Some(PutItemError::ConditionalCheckFailedException(_))
                ) => {}
            Err(error) => return Err(AwsError::dynamodb("PutItem", error)),
        }
        self.read_ring().await?.ok_or_else(|| {
            AwsError::Sealing("the key ring is missing right after its creation".to_owned())
        })
    }

    /// A new data key under the KMS key: its id, the key, and what the ring keeps of it.
    async fn generate(&self) -> Result<(String, DataKey, WrappedKey), AwsError> {
        let id = new_key_id();
        let output = self
            .kms
            .generate_data_key()
            .key_id(&self.kms_key_id)
            .key_spec(DataKeySpec::Aes256)
            .set_encryption_context(Some(self.context(&id)))
            .send()
            .await
            .map_err(|error| AwsError::kms("GenerateDataKey", error))?;
        let missing =
            |field| AwsError::Sealing(format!("KMS GenerateDataKey answered without {field}"));
        let plaintext = output.plaintext().ok_or_else(|| missing("Plaintext"))?;
        let key = DataKey::new(&id, plaintext.as_ref())?;
        let wrapped = WrappedKey {
            wrapped: output
                .ciphertext_blob()
                .ok_or_else(|| missing("CiphertextBlob"))?
                .as_ref()
                .to_vec(),
            kms_key: output
                .key_id()
                .map_or_else(|| self.kms_key_id.clone(), str::to_owned),
        };
        Ok((id, key, wrapped))
    }

    /// Unwraps one data key with KMS.
    async fn unwrap_key(&self, id: &str, wrapped: &WrappedKey) -> Result<DataKey, AwsError> {
        let output = self
            .kms
            .decrypt()
            .key_id(&wrapped.kms_key)
            .ciphertext_blob(Blob::new(wrapped.wrapped.clone()))
            .set_encryption_context(Some(self.context(id)))
            .send()
            .await
            .map_err(|error| AwsError::kms("Decrypt", error))?;
        let plaintext = output.plaintext().ok_or_else(|| {
            AwsError::Sealing("KMS Decrypt answered without Plaintext".to_owned())
        })?;
        tracing::debug!(data_key = %id, "data key unwrapped");
        DataKey::new(id, plaintext.as_ref())
    }

    /// The encryption context of data key `id`: which table and which key it is.
    fn context(&self, id: &str) -> HashMap<String, String> {
        HashMap::from([
            ("edgecert:table".to_owned(), self.table.clone()),
            ("edgecert:data-key".to_owned(), id.to_owned()),
        ])
    }
}

fn entry_attribute(wrapped: &WrappedKey) -> AttributeValue {
    AttributeValue::M(HashMap::from([
        (ring::WRAPPED.to_owned(), blob_attr(&wrapped.wrapped)),
        (ring::KMS_KEY.to_owned(), attr(&wrapped.kms_key)),
        (ring::CREATED_AT.to_owned(), number_attr(unix_now())),
    ]))
}

fn parse_ring(item: &HashMap<String, AttributeValue>) -> Result<Ring, AwsError> {
    let corrupt = |what: &str| AwsError::Sealing(format!("the key ring item has no valid {what}"));
    let current = string_attr(item, ring::CURRENT).ok_or_else(|| corrupt(ring::CURRENT))?;
    let version = item
        .get(ring::VERSION)
        .and_then(|value| value.as_n().ok())
        .and_then(|text| text.parse().ok())
        .ok_or_else(|| corrupt(ring::VERSION))?;
    let entries = item
        .get(ring::KEYS)
        .and_then(|value| value.as_m().ok())
        .ok_or_else(|| corrupt(ring::KEYS))?;
    let mut keys = HashMap::new();
    for (id, entry) in entries {
        let entry = entry.as_m().map_err(|_| corrupt(ring::KEYS))?;
        let wrapped = entry
            .get(ring::WRAPPED)
            .and_then(|value| value.as_b().ok())
            .ok_or_else(|| corrupt(ring::WRAPPED))?;
        let kms_key = string_attr(entry, ring::KMS_KEY).ok_or_else(|| corrupt(ring::KMS_KEY))?;
        keys.insert(
            id.clone(),
            WrappedKey {
                wrapped: wrapped.as_ref().to_vec(),
                kms_key,
            },
        );
    }
    if !keys.contains_key(&current) {
        return Err(corrupt("current key"));
    }
    Ok(Ring {
        current,
        keys,
        version,
        read_at: Instant::now(),
    })
}

/// A new data key id: `dk_` and 16 random hex digits (no `.`, which separates the parts of a
/// sealed version id).
fn new_key_id() -> String {
    let mut bytes = [0u8; 8];
    rand::thread_rng().fill_bytes(&mut bytes);
    format!("dk_{}", hex::encode(bytes))
}

fn unix_now() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

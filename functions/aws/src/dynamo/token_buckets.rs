//! Token buckets: one item per bucket, drawn from with an optimistic read-modify-write.
//!
//! DynamoDB update expressions cannot compute a refill (no multiplication, no clock), so the
//! adapter reads the item (strongly consistent), applies
//! [`TokenBucket::take`](edgecert_core::model::TokenBucket::take) and writes the result back
//! only if the item still has the version it read (`attribute_not_exists` for a bucket's first
//! use). A concurrent taker makes the write fail; the adapter then reads again, so no token is
//! ever granted twice.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use edgecert_core::model::{BucketLimits, TokenBucket};
use edgecert_core::ports::TokenBucketStore;
use edgecert_core::{Error, Result};
use time::OffsetDateTime;

use super::items::{self, n, s};
use super::keys::{TOKEN_BUCKET_SK, token_bucket_pk};
use super::schema::{ENTITY, PK, SK, VERSION, entity};
use super::{DynamoStore, backoff};
use crate::error::AwsError;

/// Thousandths of a token available.
const LEVEL_MILLI: &str = "level_milli";
/// When the level was computed, unix nanoseconds.
const UPDATED_AT: &str = "updated_at";
/// The bucket name in clear (the key holds a hash of long names).
const NAME: &str = "name";
/// Attempts before giving up when other takers keep winning the race.
const ATTEMPTS: u32 = 20;

/// A stored bucket and the version it was read at.
struct Stored {
    bucket: TokenBucket,
    version: u64,
}

impl DynamoStore {
    async fn read_bucket(&self, name: &str) -> Result<Option<Stored>> {
        let Some(item) = self
            .get_item(items::key(token_bucket_pk(name), TOKEN_BUCKET_SK))
            .await?
        else {
            return Ok(None);
        };
        let nanos: i128 = items::number(&item, UPDATED_AT)?;
        let updated_at = OffsetDateTime::from_unix_timestamp_nanos(nanos).map_err(|_| {
            Error::Corrupt(format!(
                "item {}: {UPDATED_AT} out of range",
                items::describe(&item)
            ))
        })?;
        Ok(Some(Stored {
            bucket: TokenBucket {
                level_milli: items::number(&item, LEVEL_MILLI)?,
                updated_at,
            },
            version: items::number(&item, VERSION)?,
        }))
    }

    /// Writes `bucket` if the stored item is still at `expected` (`None`: absent); `false` when
    /// another writer got there first.
    async fn write_bucket(
        &self,
        name: &str,
        bucket: &TokenBucket,
        expected: Option<u64>,
    ) -> Result<bool> {
        let item = HashMap::from([
            (PK.to_owned(), s(token_bucket_pk(name))),
            (SK.to_owned(), s(TOKEN_BUCKET_SK)),
            (ENTITY.to_owned(), s(entity::TOKEN_BUCKET)),
            (NAME.to_owned(), s(name)),
            (LEVEL_MILLI.to_owned(), n(bucket.level_milli)),
            (
                UPDATED_AT.to_owned(),
                n(bucket.updated_at.unix_timestamp_nanos()),
            ),
            (
                VERSION.to_owned(),
                n(expected.map_or(1, |version| version + 1)),
            ),
        ]);
        let request = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item));
        let request = match expected {
            None => request.condition_expression("attribute_not_exists(PK)"),
            Some(version) => request
                .condition_expression("#version = :expected")
                .expression_attribute_names("#version", VERSION)
                .expression_attribute_values(":expected", n(version)),
        };
        let _turn = self.write_turn().await;
        match request.send().await {
            Ok(_) => Ok(true),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(AwsError::dynamodb("PutItem", error).into()),
            },
        }
    }
}

#[async_trait]
impl TokenBucketStore for DynamoStore {
    async fn take_tokens(
        &self,
        name: &str,
        wanted: u32,
        limits: &BucketLimits,
        now: OffsetDateTime,
    ) -> Result<u32> {
        for attempt in 0..ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let stored = self.read_bucket(name).await?;
            let (bucket, expected) = match stored {
                Some(stored) => (stored.bucket, Some(stored.version)),
                None => (TokenBucket::full(limits, now), None),
            };
            let taken = bucket.take(wanted, limits, now);
            if self.write_bucket(name, &taken.bucket, expected).await? {
                return Ok(taken.granted);
            }
            tracing::debug!(
                bucket = name,
                attempt,
                "token bucket changed meanwhile, retrying"
            );
        }
        Err(AwsError::TransactionConflict {
            operation: "take_tokens",
            attempts: ATTEMPTS,
        }
        .into())
    }

    async fn read_token_bucket(&self, name: &str) -> Result<Option<TokenBucket>> {
        Ok(self.read_bucket(name).await?.map(|stored| stored.bucket))
    }
}

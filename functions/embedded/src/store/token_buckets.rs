//! Token buckets: one row per bucket, refilled and drawn from inside one `BEGIN IMMEDIATE`
//! transaction, so concurrent takers (in this process or another on the same file) never share
//! a token.

use async_trait::async_trait;
use edgecert_core::model::{BucketLimits, TokenBucket};
use edgecert_core::ports::TokenBucketStore;
use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;

use super::{SqliteStore, instant_key};
use crate::error::{EmbeddedError, Result};

/// The instant of a stored `updated_at` (Unix nanoseconds).
fn instant(nanos: i64) -> Result<OffsetDateTime> {
    OffsetDateTime::from_unix_timestamp_nanos(i128::from(nanos))
        .map_err(|_| EmbeddedError::OutOfRange("token bucket time"))
}

/// Bucket `name` as stored, if it was ever used.
fn stored_bucket(connection: &Connection, name: &str) -> Result<Option<TokenBucket>> {
    let stored: Option<(i64, i64)> = connection
        .query_row(
            "SELECT level_milli, updated_at FROM token_buckets WHERE name = ?1",
            params![name],
            |row| Ok((row.get(0)?, row.get(1)?)),
        )
        .optional()?;
    stored
        .map(|(level_milli, updated_at)| {
            Ok(TokenBucket {
                level_milli: u64::try_from(level_milli).unwrap_or(0),
                updated_at: instant(updated_at)?,
            })
        })
        .transpose()
}

#[async_trait]
impl TokenBucketStore for SqliteStore {
    async fn take_tokens(
        &self,
        name: &str,
        wanted: u32,
        limits: &BucketLimits,
        now: OffsetDateTime,
    ) -> edgecert_core::Result<u32> {
        let (name, limits) = (name.to_owned(), *limits);
        self.write(move |transaction| {
            let bucket = stored_bucket(transaction, &name)?
                .unwrap_or_else(|| TokenBucket::full(&limits, now));
            let taken = bucket.take(wanted, &limits, now);
            transaction.execute(
                "INSERT INTO token_buckets (name, level_milli, updated_at) VALUES (?1, ?2, ?3)
                 ON CONFLICT (name) DO UPDATE SET level_milli = excluded.level_milli,
                     updated_at = excluded.updated_at",
                params![
                    name,
                    i64::try_from(taken.bucket.level_milli)
                        .map_err(|_| EmbeddedError::OutOfRange("token bucket level"))?,
                    instant_key(taken.bucket.updated_at)
                ],
            )?;
            Ok(taken.granted)
        })
        .await
    }

    async fn read_token_bucket(&self, name: &str) -> edgecert_core::Result<Option<TokenBucket>> {
        let name = name.to_owned();
        self.read(move |connection| stored_bucket(connection, &name))
            .await
    }
}

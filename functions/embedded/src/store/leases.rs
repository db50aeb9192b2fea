//! Leases: one holder per name, judged by the caller's clock.

use async_trait::async_trait;
use edgecert_core::model::Lease;
use edgecert_core::ports::LeaseStore;
use rusqlite::{OptionalExtension, Transaction, params};
use time::{Duration, OffsetDateTime};

use super::{SqliteStore, encode, instant_key, next_version, version_column};
use crate::error::{EmbeddedError, Result};

const TABLE: &str = "leases";

/// The stored holder of a lease.
struct Holder {
    owner: String,
    expires_at: i64,
    version: i64,
}

fn holder(transaction: &Transaction<'_>, name: &str) -> Result<Option<Holder>> {
    Ok(transaction
        .query_row(
            "SELECT owner, expires_at, version FROM leases WHERE name = ?1",
            params![name],
            |row| {
                Ok(Holder {
                    owner: row.get(0)?,
                    expires_at: row.get(1)?,
                    version: row.get(2)?,
                })
            },
        )
        .optional()?)
}

fn held(name: &str) -> EmbeddedError {
    edgecert_core::Error::LeaseHeld {
        name: name.to_owned(),
    }
    .into()
}

fn write_lease(transaction: &Transaction<'_>, lease: &Lease) -> Result<()> {
    transaction.execute(
        "INSERT INTO leases (name, owner, expires_at, version, data) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (name) DO UPDATE SET owner = excluded.owner,
             expires_at = excluded.expires_at, version = excluded.version, data = excluded.data",
        params![
            lease.name,
            lease.owner,
            instant_key(lease.expires_at),
            version_column(lease.version)?,
            encode(TABLE, lease)?
        ],
    )?;
    Ok(())
}

fn stored_version(version: i64) -> Result<u64> {
    u64::try_from(version).map_err(|_| EmbeddedError::OutOfRange("lease version"))
}

#[async_trait]
impl LeaseStore for SqliteStore {
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> edgecert_core::Result<Lease> {
        let (name, owner) = (name.to_owned(), owner.to_owned());
        self.write(move |transaction| {
            // Even the current owner is refused while its lease runs: extending is `renew`'s
            // job, and it checks the version.
            let version = match holder(transaction, &name)? {
                Some(holder) if holder.expires_at > instant_key(now) => return Err(held(&name)),
                Some(holder) => next_version(stored_version(holder.version)?)?,
                None => 1,
            };
            let lease = Lease {
                name,
                owner,
                expires_at: now + ttl,
                version,
            };
            write_lease(transaction, &lease)?;
            Ok(lease)
        })
        .await
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> edgecert_core::Result<Lease> {
        let lease = lease.clone();
        self.write(move |transaction| {
            let still_ours = holder(transaction, &lease.name)?.is_some_and(|holder| {
                holder.owner == lease.owner
                    && version_column(lease.version).is_ok_and(|version| version == holder.version)
            });
            if !still_ours {
                return Err(held(&lease.name));
            }
            let renewed = Lease {
                expires_at: now + ttl,
                version: next_version(lease.version)?,
                ..lease
            };
            write_lease(transaction, &renewed)?;
            Ok(renewed)
        })
        .await
    }

    async fn release_lease(&self, lease: &Lease) -> edgecert_core::Result<()> {
        let lease = lease.clone();
        self.write(move |transaction| {
            transaction.execute(
                "DELETE FROM leases WHERE name = ?1 AND owner = ?2",
                params![lease.name, lease.owner],
            )?;
            Ok(())
        })
        .await
    }
}

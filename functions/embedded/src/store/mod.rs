//! [`SqliteStore`]: every store port over the shared SQLite connection.
//!
//! Each item is a row of indexed columns (what queries and constraints need) plus a `data`
//! column holding the model as JSON. Rules that span rows (unique names, plan limits, versions,
//! leases) run inside `BEGIN IMMEDIATE` transactions, which take SQLite's write lock before the
//! first read, so a check and the write that depends on it cannot interleave with another
//! writer in this process or any other.

mod accounts;
mod certificates;
mod challenges;
mod domains;
mod events;
mod leases;
mod token_buckets;
mod zones;

use edgecert_core::ItemKind;
use edgecert_core::ports::{Page, PageRequest};
use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use serde::Serialize;
use serde::de::DeserializeOwned;
use time::OffsetDateTime;

use crate::database::SharedConnection;
use crate::error::{EmbeddedError, Result};

/// Largest page any list returns, whatever the caller asks: bounds the memory of one answer.
const MAX_PAGE_ITEMS: u32 = 1000;

/// The store over one [`Database`](crate::Database); cheap to clone.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    connection: SharedConnection,
}

impl SqliteStore {
    pub(crate) fn new(connection: SharedConnection) -> Self {
        SqliteStore { connection }
    }

    /// Runs `work` in a `BEGIN IMMEDIATE` transaction that commits when it returns `Ok`, and
    /// answers in the store's error type.
    async fn write<T, F>(&self, work: F) -> edgecert_core::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Transaction<'_>) -> Result<T> + Send + 'static,
    {
        self.connection
            .run(move |connection| {
                let transaction =
                    connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
                let answer = work(&transaction)?;
                transaction.commit()?;
                Ok(answer)
            })
            .await
            .map_err(EmbeddedError::into_store_error)
    }

    /// Runs a read (one statement, so it sees one snapshot without a transaction).
    async fn read<T, F>(&self, work: F) -> edgecert_core::Result<T>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T> + Send + 'static,
    {
        self.connection
            .run(move |connection| work(connection))
            .await
            .map_err(EmbeddedError::into_store_error)
    }
}

/// Encodes a model for the `data` column.
fn encode<T: Serialize>(table: &'static str, item: &T) -> Result<String> {
    serde_json::to_string(item).map_err(|source| EmbeddedError::Encode { table, source })
}

/// Decodes a `data` column.
fn decode<T: DeserializeOwned>(table: &'static str, data: &str) -> Result<T> {
    serde_json::from_str(data).map_err(|source| EmbeddedError::Corrupt { table, source })
}

/// A sortable integer for an instant: Unix nanoseconds, so that comparisons in SQL agree
/// exactly with comparisons of the model's times. Instants outside 1677..2262 saturate, which
/// keeps them in order relative to every realistic time.
fn instant_key(instant: OffsetDateTime) -> i64 {
    let nanos = instant.unix_timestamp_nanos();
    i64::try_from(nanos).unwrap_or(if nanos < 0 { i64::MIN } else { i64::MAX })
}

fn version_column(version: u64) -> Result<i64> {
    i64::try_from(version).map_err(|_| EmbeddedError::OutOfRange("version"))
}

/// A version one past `version`, as the store writes it on update.
fn next_version(version: u64) -> Result<u64> {
    version
        .checked_add(1)
        .filter(|next| i64::try_from(*next).is_ok())
        .ok_or(EmbeddedError::OutOfRange("version"))
}

/// Checks the optimistic version of row `id` of `table`, scoped to `account` when given:
/// a missing row (or another account's) is `NotFound`, another version is `VersionConflict`.
fn expect_version(
    transaction: &Transaction<'_>,
    table: &'static str,
    kind: ItemKind,
    id: &str,
    account: Option<&str>,
    expected: u64,
) -> Result<()> {
    let stored: Option<i64> = match account {
        Some(account) => transaction
            .query_row(
                &format!("SELECT version FROM {table} WHERE id = ?1 AND account_id = ?2"),
                params![id, account],
                |row| row.get(0),
            )
            .optional()?,
        None => transaction
            .query_row(
                &format!("SELECT version FROM {table} WHERE id = ?1"),
                params![id],
                |row| row.get(0),
            )
            .optional()?,
    };
    match stored {
        None => Err(edgecert_core::Error::NotFound(kind).into()),
        Some(stored) if stored != version_column(expected)? => {
            Err(edgecert_core::Error::VersionConflict(kind).into())
        }
        Some(_) => Ok(()),
    }
}

/// Which limit counter of `account_usage` to read or move.
#[derive(Debug, Clone, Copy)]
enum Counter {
    Domains,
    Certificates,
}

impl Counter {
    fn column(self) -> &'static str {
        match self {
            Counter::Domains => "domains",
            Counter::Certificates => "certificates",
        }
    }
}

fn usage_count(transaction: &Transaction<'_>, account: &str, counter: Counter) -> Result<i64> {
    let count = transaction
        .query_row(
            &format!(
                "SELECT {} FROM account_usage WHERE account_id = ?1",
                counter.column()
            ),
            params![account],
            |row| row.get(0),
        )
        .optional()?;
    Ok(count.unwrap_or(0))
}

/// Moves a counter by `delta`; it never goes below zero, so a counter that drifted cannot make
/// the account's limit larger than its plan.
fn adjust_usage(
    transaction: &Transaction<'_>,
    account: &str,
    counter: Counter,
    delta: i64,
) -> Result<()> {
    let column = counter.column();
    transaction.execute(
        "INSERT INTO account_usage (account_id) VALUES (?1) ON CONFLICT (account_id) DO NOTHING",
        params![account],
    )?;
    transaction.execute(
        &format!("UPDATE account_usage SET {column} = MAX({column} + ?2, 0) WHERE account_id = ?1"),
        params![account, delta],
    )?;
    Ok(())
}

/// Whether a failed statement broke a UNIQUE or PRIMARY KEY constraint.
fn is_unique_violation(error: &rusqlite::Error) -> bool {
    error.sqlite_error().is_some_and(|failure| {
        failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_UNIQUE
            || failure.extended_code == rusqlite::ffi::SQLITE_CONSTRAINT_PRIMARYKEY
    })
}

/// Rows to read for a page, or `None` when the caller asked for nothing.
fn page_limit(page: &PageRequest) -> Option<i64> {
    (page.limit > 0).then(|| i64::from(page.limit.min(MAX_PAGE_ITEMS)))
}

fn invalid_cursor() -> EmbeddedError {
    edgecert_core::Error::BadRequest {
        code: "invalid_cursor",
        message: "The pagination cursor is not valid".to_owned(),
    }
    .into()
}

/// Position in a list ordered by `(created_at, seq)`; `seq` keeps insertion order among items
/// created in the same instant.
struct ListCursor {
    created_at: i64,
    seq: i64,
}

impl ListCursor {
    const START: ListCursor = ListCursor {
        created_at: i64::MIN,
        seq: i64::MIN,
    };

    fn parse(cursor: Option<&str>) -> Result<ListCursor> {
        let Some(cursor) = cursor else {
            return Ok(ListCursor::START);
        };
        let (created_at, seq) = cursor
            .strip_prefix("l.")
            .and_then(|rest| rest.split_once('.'))
            .ok_or_else(invalid_cursor)?;
        Ok(ListCursor {
            created_at: created_at.parse().map_err(|_| invalid_cursor())?,
            seq: seq.parse().map_err(|_| invalid_cursor())?,
        })
    }

    fn encode(&self) -> String {
        format!("l.{}.{}", self.created_at, self.seq)
    }
}

/// One page of an account's items from `table`, oldest first.
fn list_page<T: DeserializeOwned>(
    connection: &Connection,
    table: &'static str,
    account: &str,
    page: &PageRequest,
) -> Result<Page<T>> {
    let after = ListCursor::parse(page.cursor.as_deref())?;
    let Some(limit) = page_limit(page) else {
        return Ok(empty_page());
    };
    let mut statement = connection.prepare_cached(&format!(
        "SELECT created_at, seq, data FROM {table}
         WHERE account_id = ?1 AND (created_at, seq) > (?2, ?3)
         ORDER BY created_at, seq LIMIT ?4"
    ))?;
    let mut rows = statement.query(params![account, after.created_at, after.seq, limit])?;
    let mut items = Vec::new();
    let mut last = None;
    while let Some(row) = rows.next()? {
        last = Some(ListCursor {
            created_at: row.get(0)?,
            seq: row.get(1)?,
        });
        let data: String = row.get(2)?;
        items.push(decode(table, &data)?);
    }
    Ok(finish_page(
        items,
        limit,
        last.map(|cursor| cursor.encode()),
    ))
}

/// Position in a change feed ordered by `(updated_at, id)`.
struct ChangeCursor {
    updated_at: i64,
    id: String,
}

impl ChangeCursor {
    /// Where a feed starts for `since`, or where a client's cursor says it stopped. Ids are
    /// never empty, so `(since, "")` sorts before every row changed at `since`.
    fn parse(since: OffsetDateTime, cursor: Option<&str>) -> Result<ChangeCursor> {
        let Some(cursor) = cursor else {
            return Ok(ChangeCursor {
                updated_at: instant_key(since),
                id: String::new(),
            });
        };
        let (updated_at, id) = cursor
            .strip_prefix("c.")
            .and_then(|rest| rest.split_once('.'))
            .ok_or_else(invalid_cursor)?;
        Ok(ChangeCursor {
            updated_at: updated_at.parse().map_err(|_| invalid_cursor())?,
            id: id.to_owned(),
        })
    }

    fn encode(&self) -> String {
        format!("c.{}.{}", self.updated_at, self.id)
    }
}

/// One page of `table`'s change feed (every account), oldest change first, read from its
/// `(updated_at, id)` index.
fn changes_page<T: DeserializeOwned>(
    connection: &Connection,
    table: &'static str,
    since: OffsetDateTime,
    page: &PageRequest,
) -> Result<Page<T>> {
    let after = ChangeCursor::parse(since, page.cursor.as_deref())?;
    let Some(limit) = page_limit(page) else {
        return Ok(empty_page());
    };
    let mut statement = connection.prepare_cached(&format!(
        "SELECT updated_at, id, data FROM {table}
         WHERE (updated_at, id) > (?1, ?2)
         ORDER BY updated_at, id LIMIT ?3"
    ))?;
    let mut rows = statement.query(params![after.updated_at, after.id, limit])?;
    let mut items = Vec::new();
    let mut last = None;
    while let Some(row) = rows.next()? {
        last = Some(ChangeCursor {
            updated_at: row.get(0)?,
            id: row.get(1)?,
        });
        let data: String = row.get(2)?;
        items.push(decode(table, &data)?);
    }
    Ok(finish_page(
        items,
        limit,
        last.map(|cursor| cursor.encode()),
    ))
}

/// A page of what was read; a full page carries a cursor (the next may be empty, as with
/// DynamoDB's `LastEvaluatedKey`), so no row beyond the limit is ever read.
fn finish_page<T>(items: Vec<T>, limit: i64, last: Option<String>) -> Page<T> {
    let read = items.len() as u64;
    let full = i64::try_from(items.len()).is_ok_and(|count| count >= limit);
    Page {
        items,
        next_cursor: if full { last } else { None },
        items_read: read,
    }
}

fn empty_page<T>() -> Page<T> {
    Page {
        items: Vec::new(),
        next_cursor: None,
        items_read: 0,
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use edgecert_core::model::{CertificateEvent, EventLevel, Zone};
    use edgecert_core::ports::{EventLog, ZoneStore};
    use edgecert_core::{AccountId, CertificateId, Hostname, ZoneId};
    use time::Duration;
    use time::macros::datetime;

    use super::*;
    use crate::Database;

    fn open() -> (tempfile::TempDir, SqliteStore) {
        let directory = tempfile::tempdir().unwrap();
        let store = Database::open(directory.path().join("edgecert.db"))
            .unwrap()
            .store();
        (directory, store)
    }

    fn zone(account: &AccountId) -> Zone {
        Zone {
            id: ZoneId::generate(),
            account_id: account.clone(),
            name: Hostname::parse_domain("example.com").unwrap(),
            provider: "challtestsrv".to_owned(),
            provider_zone_id: "Z1".to_owned(),
            role_arn: None,
            verified: true,
            created_at: datetime!(2026-06-01 12:00 UTC),
            version: 1,
        }
    }

    fn event(certificate: &CertificateId, at: OffsetDateTime) -> CertificateEvent {
        CertificateEvent {
            certificate_id: certificate.clone(),
            at,
            step: "order".to_owned(),
            level: EventLevel::Info,
            message: "Order created".to_owned(),
            acme_problem: None,
        }
    }

    #[tokio::test]
    async fn an_undecodable_row_is_reported_as_corrupt() {
        // GIVEN a zone whose stored JSON was damaged by hand
        let (_directory, store) = open();
        let zone = zone(&AccountId::generate());
        store.create_zone(&zone).await.unwrap();
        let id = zone.id.clone();
        store
            .connection
            .run(move |connection| {
                connection.execute(
                    "UPDATE zones SET data = '{\"id\": 7}' WHERE id = ?1",
                    params![id.as_str()],
                )?;
                Ok(())
            })
            .await
            .unwrap();

        // WHEN it is read
        let error = store
            .get_zone(&zone.account_id, &zone.id)
            .await
            .unwrap_err();

        // THEN the caller learns the item is corrupt, not that the store is down
        assert!(
            matches!(error, edgecert_core::Error::Corrupt(_)),
            "{error:?}"
        );
    }

    #[tokio::test]
    async fn a_forged_cursor_is_a_client_error() {
        let (_directory, store) = open();
        let page = PageRequest {
            cursor: Some("not-a-cursor".to_owned()),
            limit: 10,
        };

        let error = store
            .list_zones(&AccountId::generate(), page)
            .await
            .unwrap_err();

        assert_eq!(error.status(), 400, "{error:?}");
    }

    #[tokio::test]
    async fn events_past_retention_are_pruned_per_certificate() {
        // GIVEN an old event on two certificates
        let (_directory, store) = open();
        let (pruned, untouched) = (CertificateId::generate(), CertificateId::generate());
        let start = datetime!(2026-01-01 00:00 UTC);
        store.append_event(&event(&pruned, start)).await.unwrap();
        store.append_event(&event(&untouched, start)).await.unwrap();

        // WHEN one of them gets an event more than the retention later
        let later = start + CertificateEvent::RETENTION + Duration::seconds(1);
        store.append_event(&event(&pruned, later)).await.unwrap();

        // THEN only that certificate's old event is gone
        let events = store.list_events(&pruned, 10).await.unwrap();
        assert_eq!(events, vec![event(&pruned, later)]);
        assert_eq!(store.list_events(&untouched, 10).await.unwrap().len(), 1);
    }
}

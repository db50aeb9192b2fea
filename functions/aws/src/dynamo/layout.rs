//! Tables written before the shards: knowing whether one may still hold such items, and
//! moving them ([`DynamoStore::migrate_layout`]).
//!
//! The `layout` item ([`schema::LAYOUT_PK`]) says when every item has its sharded keys. Until
//! a store has seen it, it also reads where the earlier layout kept items (see
//! [`schema`](super::schema), "Tables written before the shards"), and looks at the `layout`
//! item again at most every [`RECHECK`]; once seen, never again (a table does not go back).
//!
//! The migration scans the table for items of the earlier layout and moves each in one
//! transaction: delete the old item if its version is still the one read, put it at its
//! sharded key with sharded index keys (`attribute_not_exists`). A writer that changed the item
//! meanwhile makes the transaction fail; the item is read again and moved with the change. A
//! tombstone only changes its index key, under a condition on the old one. A pass that finds
//! nothing to move writes the `layout` item. Every step is idempotent: a migration stopped
//! anywhere is finished by running it again.
//!
//! What readers see meanwhile: gets by id, lists and lookups by hostname are strongly
//! consistent and find an item exactly once, before or after its move. The change feeds and
//! the due query (global indexes, eventually consistent) keep the item's sort key, so a moved
//! item keeps its place; an index read racing the move may see it twice (merged into one) or,
//! for the index's propagation delay, not at all. A moved certificate reaches the stream as a
//! removal and an insertion: one waiting for issuance is handed to the issuer again, which is
//! safe (the issuer works under a lease and re-reads the certificate).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::AttributeValue;
use edgecert_core::{AccountId, CertificateId, DomainId, Error, Result};
use serde::Deserialize;
use time::OffsetDateTime;
use tokio::task::JoinSet;

use super::items::{self, Item, n, s};
use super::keys;
use super::schema::{
    CHANGED_CERTIFICATES, CHANGED_DOMAINS, DUE_PREFIX, ENTITY, GSI2PK, GSI3PK, LAYOUT_PK,
    LAYOUT_SK, LAYOUT_VERSION, PK, SHARDED_LAYOUT, SK, VERSION, entity,
};
use super::{DynamoStore, Transaction, writes};
use crate::error::AwsError;

/// How long a store that found the table not migrated trusts that answer.
const RECHECK: Duration = Duration::from_secs(60);
/// The `layout` item's attribute: when it was written (unix seconds).
const MIGRATED_AT: &str = "migrated_at";
/// Tries of one move that fails with a store error (throttling, most likely).
const MOVE_TRIES: u32 = 6;
/// The pause before the next try, times the tries so far.
const MOVE_PAUSE: Duration = Duration::from_millis(500);
/// Attempts to move one item that writers keep changing.
const MOVE_ATTEMPTS: u32 = 10;

/// What a store knows about its table's layout.
#[derive(Debug, Default)]
pub(crate) struct LayoutState {
    /// The `layout` item was seen: nothing of the earlier layout is left.
    migrated: AtomicBool,
    /// When the `layout` item was last found missing.
    checked_at: Mutex<Option<Instant>>,
}

/// How [`DynamoStore::migrate_layout`] works.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MigrationOptions {
    /// Parallel scan segments (DynamoDB's `TotalSegments`).
    pub segments: u32,
    /// Items moved at once per segment.
    pub concurrency: usize,
    /// Full scans before giving up on finding a pass with nothing left to move (writers of
    /// an earlier build still running keep adding items).
    pub max_passes: u32,
}

impl Default for MigrationOptions {
    fn default() -> Self {
        MigrationOptions {
            segments: 4,
            concurrency: 16,
            max_passes: 3,
        }
    }
}

/// What [`DynamoStore::migrate_layout`] did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LayoutMigration {
    /// The `layout` item was already there: nothing was read or written.
    pub already_migrated: bool,
    /// Full scans of the table.
    pub passes: u32,
    /// Items the scans read.
    pub items_scanned: u64,
    /// Domains moved to their shard.
    pub domains_moved: u64,
    /// Zones moved to their shard.
    pub zones_moved: u64,
    /// Certificates moved to their shard.
    pub certificates_moved: u64,
    /// Tombstones given their sharded change-feed key.
    pub tombstones_rekeyed: u64,
    /// The last pass found nothing to move and the `layout` item is written: the store reads
    /// only sharded keys from now on.
    pub complete: bool,
}

impl LayoutMigration {
    fn moved(&self) -> u64 {
        self.domains_moved + self.zones_moved + self.certificates_moved + self.tombstones_rekeyed
    }
}

/// What one item of the earlier layout needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Legacy {
    /// A domain, zone or certificate in its account's partition.
    Owned(&'static str),
    /// A tombstone with the single change-feed key.
    Tombstone,
}

/// The ids every owned model item carries in `data`.
#[derive(Deserialize)]
struct Owner {
    id: String,
    account_id: String,
}

impl DynamoStore {
    /// Whether the table may still hold items of the layout before the shards. A failed read
    /// of the `layout` item answers yes (reading both places is always correct).
    pub(crate) async fn legacy_possible(&self) -> bool {
        let state = &self.layout;
        if state.migrated.load(Ordering::Acquire) {
            return false;
        }
        let recent = state
            .checked_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some_and(|at| at.elapsed() < RECHECK);
        if recent {
            return true;
        }
        match self
            .get_item(items::key(LAYOUT_PK.to_owned(), LAYOUT_SK))
            .await
        {
            Ok(Some(item)) if is_sharded(&item) => {
                state.migrated.store(true, Ordering::Release);
                return false;
            }
            Ok(_) => {}
            Err(error) => tracing::warn!(
                table = %self.table,
                %error,
                "could not read the table's layout item; reading the earlier layout's keys too"
            ),
        }
        *state
            .checked_at
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(Instant::now());
        true
    }

    /// Moves every item of the layout before the shards to its sharded keys, then records that
    /// the table has only sharded keys (see the module documentation). Safe to run while the
    /// API, workers and terminators of this build run; run it once every process runs a build
    /// that reads the sharded layout (an earlier build would not find moved items).
    pub async fn migrate_layout(&self, options: &MigrationOptions) -> Result<LayoutMigration> {
        let mut report = LayoutMigration::default();
        if self.marker_written().await? {
            self.layout.migrated.store(true, Ordering::Release);
            report.already_migrated = true;
            report.complete = true;
            return Ok(report);
        }
        while report.passes < options.max_passes.max(1) {
            let before = report.moved();
            report.passes += 1;
            self.migration_pass(options, &mut report).await?;
            tracing::info!(
                table = %self.table,
                pass = report.passes,
                items_scanned = report.items_scanned,
                moved = report.moved() - before,
                "layout migration pass finished"
            );
            if report.moved() == before {
                write_marker(&self.client, &self.table).await?;
                self.layout.migrated.store(true, Ordering::Release);
                report.complete = true;
                break;
            }
        }
        Ok(report)
    }

    async fn marker_written(&self) -> Result<bool> {
        Ok(self
            .get_item(items::key(LAYOUT_PK.to_owned(), LAYOUT_SK))
            .await?
            .is_some_and(|item| is_sharded(&item)))
    }

    /// One scan of the whole table, its segments in parallel, moving what it finds.
    async fn migration_pass(
        &self,
        options: &MigrationOptions,
        report: &mut LayoutMigration,
    ) -> Result<()> {
        let segments = options.segments.max(1);
        let mut scans = JoinSet::new();
        for segment in 0..segments {
            let store = self.clone();
            let concurrency = options.concurrency.max(1);
            scans.spawn(async move { store.migrate_segment(segment, segments, concurrency).await });
        }
        let mut failure = None;
        while let Some(joined) = scans.join_next().await {
            match joined {
                Ok(Ok(segment)) => {
                    report.items_scanned += segment.items_scanned;
                    report.domains_moved += segment.domains_moved;
                    report.zones_moved += segment.zones_moved;
                    report.certificates_moved += segment.certificates_moved;
                    report.tombstones_rekeyed += segment.tombstones_rekeyed;
                }
                Ok(Err(error)) => failure = failure.or(Some(error)),
                Err(error) => {
                    failure = failure.or(Some(Error::Corrupt(format!(
                        "a migration scan stopped unexpectedly: {error}"
                    ))));
                }
            }
        }
        failure.map_or(Ok(()), Err)
    }

    /// Scans one segment page by page, moving each page's items `concurrency` at a time.
    async fn migrate_segment(
        &self,
        segment: u32,
        segments: u32,
        concurrency: usize,
    ) -> Result<LayoutMigration> {
        let mut report = LayoutMigration::default();
        let mut start = None;
        loop {
            let output = self
                .client
                .scan()
                .table_name(&self.table)
                .segment(i32::try_from(segment).unwrap_or(0))
                .total_segments(i32::try_from(segments).unwrap_or(1))
                .filter_expression("#entity IN (:domain, :zone, :certificate, :tombstone)")
                .expression_attribute_names("#entity", ENTITY)
                .expression_attribute_values(":domain", s(entity::DOMAIN))
                .expression_attribute_values(":zone", s(entity::ZONE))
                .expression_attribute_values(":certificate", s(entity::CERTIFICATE))
                .expression_attribute_values(":tombstone", s(entity::DOMAIN_TOMBSTONE))
                .consistent_read(true)
                .set_exclusive_start_key(start.take())
                .send()
                .await
                .map_err(|error| AwsError::dynamodb("Scan", error))?;
            report.items_scanned += u64::try_from(output.scanned_count).unwrap_or(0);
            let found: Vec<(Legacy, Item)> = output
                .items
                .unwrap_or_default()
                .into_iter()
                .filter_map(|item| legacy_kind(&item).map(|kind| (kind, item)))
                .collect();
            for chunk in found.chunks(concurrency) {
                let mut moves = JoinSet::new();
                for (kind, item) in chunk.iter().cloned() {
                    let store = self.clone();
                    moves.spawn(async move { (kind, store.move_item(kind, item).await) });
                }
                while let Some(joined) = moves.join_next().await {
                    let (kind, moved) = joined.map_err(|error| {
                        Error::Corrupt(format!("an item move stopped unexpectedly: {error}"))
                    })?;
                    if moved? {
                        *match kind {
                            Legacy::Owned(entity::DOMAIN) => &mut report.domains_moved,
                            Legacy::Owned(entity::ZONE) => &mut report.zones_moved,
                            Legacy::Owned(_) => &mut report.certificates_moved,
                            Legacy::Tombstone => &mut report.tombstones_rekeyed,
                        } += 1;
                    }
                }
            }
            match output.last_evaluated_key {
                Some(key) if !key.is_empty() => start = Some(key),
                _ => return Ok(report),
            }
        }
    }

    /// Moves one item; `false` when someone else did (or it was deleted) first.
    ///
    /// The moves of a big account all leave one partition, whose write rate DynamoDB caps, so a
    /// move that fails (throttled beyond the SDK's own retries) is tried again with a growing
    /// pause, [`MOVE_TRIES`] times, before the migration stops (a later run resumes it).
    async fn move_item(&self, kind: Legacy, item: Item) -> Result<bool> {
        let mut tries = 0;
        loop {
            let moved = match kind {
                Legacy::Tombstone => self.rekey_tombstone(&item).await,
                Legacy::Owned(_) => self.move_owned(item.clone()).await,
            };
            tries += 1;
            match moved {
                Err(error @ Error::Store(_)) if tries < MOVE_TRIES => {
                    tracing::debug!(%error, tries, "moving an item failed; trying again");
                    tokio::time::sleep(MOVE_PAUSE * tries).await;
                }
                outcome => return outcome,
            }
        }
    }

    async fn move_owned(&self, mut item: Item) -> Result<bool> {
        let old_key = items::key(
            items::string(&item, PK)?.to_owned(),
            items::string(&item, SK)?,
        );
        for _ in 0..MOVE_ATTEMPTS {
            let version: u64 = items::number(&item, VERSION)?;
            let writes = vec![
                writes::delete(
                    &self.table,
                    old_key.clone(),
                    Some("#version = :version"),
                    HashMap::from([("#version".to_owned(), VERSION.to_owned())]),
                    HashMap::from([(":version".to_owned(), n(version))]),
                )?,
                writes::put_new(&self.table, sharded(&item)?)?,
            ];
            let outcome = self.transact("migrate_layout", writes).await?;
            if let Transaction::Committed = outcome {
                return Ok(true);
            }
            if outcome.failed(1) {
                return Err(Error::Corrupt(format!(
                    "item {} exists at its old and its sharded key",
                    items::describe(&item)
                )));
            }
            // Changed (or deleted) since it was read: move what is there now.
            match self.get_item(old_key.clone()).await? {
                Some(current) => item = current,
                None => return Ok(false),
            }
        }
        Err(AwsError::TransactionConflict {
            operation: "migrate_layout",
            attempts: MOVE_ATTEMPTS,
        }
        .into())
    }

    async fn rekey_tombstone(&self, item: &Item) -> Result<bool> {
        let key = items::key(
            items::string(item, PK)?.to_owned(),
            items::string(item, SK)?,
        );
        let owner: Owner = items::from_data(item)?;
        let id = DomainId::parse(&owner.id)
            .map_err(|_| Error::Corrupt(format!("item {}: bad id", items::describe(item))))?;
        let _turn = self.write_turn().await;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .update_expression("SET #changed = :sharded")
            .condition_expression("#changed = :legacy")
            .expression_attribute_names("#changed", GSI3PK)
            .expression_attribute_values(":sharded", s(keys::changed_domain_pk(&id)))
            .expression_attribute_values(":legacy", s(CHANGED_DOMAINS))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => match error.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(AwsError::dynamodb("UpdateItem", error).into()),
            },
        }
    }
}

/// Whether `item` (a domain, zone, certificate or tombstone) has keys of the earlier layout.
fn legacy_kind(item: &Item) -> Option<Legacy> {
    let kind = items::string(item, ENTITY).ok()?;
    match kind {
        entity::DOMAIN_TOMBSTONE => {
            (string(item, GSI3PK) == Some(CHANGED_DOMAINS)).then_some(Legacy::Tombstone)
        }
        entity::DOMAIN | entity::ZONE | entity::CERTIFICATE => {
            // `ACCT#{account}` (one `#`) rather than `ACCT#{account}#{s}`.
            let pk = string(item, PK)?;
            (pk.matches('#').count() == 1).then_some(Legacy::Owned(match kind {
                entity::DOMAIN => entity::DOMAIN,
                entity::ZONE => entity::ZONE,
                _ => entity::CERTIFICATE,
            }))
        }
        _ => None,
    }
}

fn string<'a>(item: &'a Item, name: &str) -> Option<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Some(value),
        _ => None,
    }
}

/// `item` with its sharded keys: its account shard, and the shards of the index keys it has.
fn sharded(item: &Item) -> Result<Item> {
    let owner: Owner = items::from_data(item)?;
    let corrupt = || Error::Corrupt(format!("item {}: bad id", items::describe(item)));
    let account = AccountId::parse(&owner.account_id).map_err(|_| corrupt())?;
    let mut moved = item.clone();
    moved.insert(PK.to_owned(), s(keys::owned_pk(&account, &owner.id)));
    if string(item, GSI2PK) == Some(DUE_PREFIX) {
        let id = CertificateId::parse(&owner.id).map_err(|_| corrupt())?;
        moved.insert(GSI2PK.to_owned(), s(keys::due_pk(&id)));
    }
    match string(item, GSI3PK) {
        Some(CHANGED_DOMAINS) => {
            let id = DomainId::parse(&owner.id).map_err(|_| corrupt())?;
            moved.insert(GSI3PK.to_owned(), s(keys::changed_domain_pk(&id)));
        }
        Some(CHANGED_CERTIFICATES) => {
            let id = CertificateId::parse(&owner.id).map_err(|_| corrupt())?;
            moved.insert(GSI3PK.to_owned(), s(keys::changed_certificate_pk(&id)));
        }
        _ => {}
    }
    Ok(moved)
}

fn is_sharded(item: &Item) -> bool {
    items::number::<u32>(item, LAYOUT_VERSION).is_ok_and(|version| version >= SHARDED_LAYOUT)
}

/// Records that every item of table `table` has the sharded layout.
pub(crate) async fn write_marker(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> std::result::Result<(), AwsError> {
    let mut item = items::keyed(LAYOUT_PK.to_owned(), LAYOUT_SK, entity::LAYOUT);
    item.insert(LAYOUT_VERSION.to_owned(), n(SHARDED_LAYOUT));
    item.insert(
        MIGRATED_AT.to_owned(),
        n(OffsetDateTime::now_utc().unix_timestamp()),
    );
    client
        .put_item()
        .table_name(table)
        .set_item(Some(item))
        .send()
        .await
        .map_err(|error| AwsError::dynamodb("PutItem", error))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn item(pairs: &[(&str, &str)]) -> Item {
        pairs
            .iter()
            .map(|(name, value)| ((*name).to_owned(), s(*value)))
            .collect()
    }

    #[test]
    fn only_items_of_the_earlier_layout_are_moved() {
        let legacy_domain = item(&[(ENTITY, "domain"), (PK, "ACCT#acct_a"), (SK, "DOM#dom_1")]);
        assert_eq!(
            legacy_kind(&legacy_domain),
            Some(Legacy::Owned(entity::DOMAIN))
        );
        let sharded_domain = item(&[(ENTITY, "domain"), (PK, "ACCT#acct_a#07"), (SK, "DOM#x")]);
        assert_eq!(legacy_kind(&sharded_domain), None);
        let old_tombstone = item(&[(ENTITY, "domain_tombstone"), (GSI3PK, "CHANGED#DOM")]);
        assert_eq!(legacy_kind(&old_tombstone), Some(Legacy::Tombstone));
        let new_tombstone = item(&[(ENTITY, "domain_tombstone"), (GSI3PK, "CHANGED#DOM#03")]);
        assert_eq!(legacy_kind(&new_tombstone), None);
        assert_eq!(
            legacy_kind(&item(&[(ENTITY, "account"), (PK, "ACCT#acct_a")])),
            None
        );
    }
}

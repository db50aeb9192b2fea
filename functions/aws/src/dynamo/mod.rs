//! The DynamoDB store: every store port over one table (single-table design, see [`schema`]).
//!
//! Invariants are conditional writes, never read-then-write: uniqueness claims are separate
//! items put with `attribute_not_exists(PK)`, limits are counters on the account item updated
//! in the same `TransactWriteItems` with a `ConditionExpression`, and updates are guarded by
//! `version`. Reads of one item are strongly consistent `GetItem`s; lists are `Query`s on the
//! local index [`schema::BY_CREATED`] of every account shard, merged ([`merged`]; strongly
//! consistent, oldest first); the due query and the change feeds merge the shards of their
//! global indexes, which are eventually consistent by nature. Tables written before the shards
//! are read too until they are migrated ([`layout`]).

mod accounts;
mod certificates;
mod challenges;
mod cursor;
mod domains;
mod events;
mod items;
mod keys;
mod layout;
mod leases;
mod merged;
pub mod schema;
pub mod stream;
mod table;
mod token_buckets;
mod writes;
mod zones;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::put_item::PutItemError;
use aws_sdk_dynamodb::operation::transact_write_items::TransactWriteItemsError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::{
    AttributeValue, ReturnValuesOnConditionCheckFailure, TransactWriteItem,
};
use edgecert_core::ports::Page;
use edgecert_core::{AccountId, Error, ItemKind, Result};
use rand::Rng;
use tokio::sync::{Mutex, MutexGuard};

use crate::error::AwsError;
use cursor::CursorScope;
use items::{Item, n, s};
use layout::LayoutState;
use merged::MergedQuery;
use schema::{DATA, VERSION};

pub use layout::{LayoutMigration, MigrationOptions};
pub use table::create_table;

/// Largest page a list returns, whatever the caller asks.
const MAX_PAGE: u32 = 1000;
/// Attempts of a transaction cancelled only by concurrent transactions.
const TRANSACTION_ATTEMPTS: u32 = 10;

/// The store on one DynamoDB table. Cheap to clone (the SDK client is shared).
#[derive(Debug, Clone)]
pub struct DynamoStore {
    client: Client,
    table: String,
    /// Set by [`DynamoStore::with_serialized_writes`]: writes wait for it.
    write_lock: Option<Arc<Mutex<()>>>,
    /// Whether the table may still hold items of the layout before the shards.
    layout: Arc<LayoutState>,
}

impl DynamoStore {
    /// A store on `table_name`, which must exist with the layout of [`create_table`].
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table_name.into(),
            write_lock: None,
            layout: Arc::new(LayoutState::default()),
        }
    }

    /// Makes this store (and its clones) send its writes one at a time. Only for emulators:
    /// moto_server applies a `TransactWriteItems` or a conditional write without isolation
    /// from concurrent requests (it checks, writes, and on failure restores a snapshot of the
    /// whole table), so parallel writers could break the invariants DynamoDB itself
    /// guarantees. Never needed, nor wanted, against DynamoDB.
    pub fn with_serialized_writes(mut self) -> Self {
        self.write_lock = Some(Arc::new(Mutex::new(())));
        self
    }

    /// Waits for this store's turn to write when writes are serialized.
    async fn write_turn(&self) -> Option<MutexGuard<'_, ()>> {
        match &self.write_lock {
            Some(lock) => Some(lock.lock().await),
            None => None,
        }
    }

    /// The table this store reads and writes.
    pub fn table_name(&self) -> &str {
        &self.table
    }

    /// Strongly consistent read of one item.
    async fn get_item(&self, key: Item) -> Result<Option<Item>> {
        let output = self
            .client
            .get_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .consistent_read(true)
            .send()
            .await
            .map_err(|error| AwsError::dynamodb("GetItem", error))?;
        Ok(output.item)
    }

    /// The account's domain, zone or certificate `id` (sort key `sk`) and the key it was found
    /// at: its shard of the account, or the account's partition in a table not migrated yet.
    async fn owned_item(
        &self,
        account: &AccountId,
        id: &str,
        sk: String,
    ) -> Result<Option<(Item, Item)>> {
        let key = items::key(keys::owned_pk(account, id), sk.clone());
        if let Some(item) = self.get_item(key.clone()).await? {
            return Ok(Some((item, key)));
        }
        if !self.legacy_possible().await {
            return Ok(None);
        }
        let legacy = items::key(keys::account_pk(account), sk);
        if let Some(item) = self.get_item(legacy.clone()).await? {
            return Ok(Some((item, legacy)));
        }
        // Moved by a migration between the two reads (moves only go that way).
        Ok(self.get_item(key.clone()).await?.map(|item| (item, key)))
    }

    /// `partitions`, and `legacy` (the partition an earlier layout used) while the table may
    /// still hold items there.
    async fn with_legacy(&self, mut partitions: Vec<String>, legacy: String) -> Vec<String> {
        if self.legacy_possible().await {
            partitions.push(legacy);
        }
        partitions
    }

    /// The list of an account's items of one kind (sort-key prefix `prefix`, e.g. `DOM#`),
    /// oldest first: every account shard and the account's own partition, on the local index
    /// (strongly consistent). `list` names the list in its cursors, `id_prefix` is the kind's
    /// id prefix.
    ///
    /// The account's partition is read whatever the `layout` item says: the list functions
    /// may query the index and nothing else (their IAM grant), and once a table is migrated
    /// that partition holds only the account item, which is not in the index, so the query
    /// reads nothing (one read unit).
    fn owned_list(
        account: &AccountId,
        prefix: &'static str,
        list: &str,
        id_prefix: &'static str,
    ) -> MergedQuery {
        let mut partitions = keys::account_shard_pks(account);
        partitions.push(keys::account_pk(account));
        MergedQuery {
            index: Some(schema::BY_CREATED),
            partition_key: schema::PK,
            sort_key: schema::LSI1SK,
            partitions,
            lower: Some(prefix.to_owned()),
            // `~` sorts after every character of a padded time and an id.
            upper: Some(format!("{prefix}~")),
            consistent: true,
            scope: CursorScope {
                list: format!("{list}/{account}"),
                sort_prefix: prefix,
                id_prefix,
            },
        }
    }

    /// A change feed from `since`'s millisecond on, oldest change first: every shard of the
    /// [`schema::BY_UPDATED`] key `prefix` (and the single key `prefix` while the table may
    /// hold items of the earlier layout).
    async fn changes_query(
        &self,
        prefix: &'static str,
        list: &'static str,
        id_prefix: &'static str,
        since: time::OffsetDateTime,
    ) -> MergedQuery {
        MergedQuery {
            index: Some(schema::BY_UPDATED),
            partition_key: schema::GSI3PK,
            sort_key: schema::GSI3SK,
            partitions: self
                .with_legacy(keys::index_pks(prefix), prefix.to_owned())
                .await,
            lower: Some(keys::updated_bound(since)),
            upper: None,
            // Global indexes are eventually consistent only.
            consistent: false,
            scope: CursorScope {
                list: list.to_owned(),
                sort_prefix: "",
                id_prefix,
            },
        }
    }

    /// Puts an item that must not exist yet; `false` when it does.
    async fn put_new(&self, item: Item) -> Result<bool> {
        let _turn = self.write_turn().await;
        let result = self
            .client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .condition_expression("attribute_not_exists(PK)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => match error.as_service_error() {
                Some(PutItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(AwsError::dynamodb("PutItem", error).into()),
            },
        }
    }

    /// Runs a transaction, retrying while it is cancelled only by concurrent transactions on
    /// the same items. A cancellation by a failed condition is an answer, not an error.
    async fn transact(
        &self,
        operation: &'static str,
        items: Vec<TransactWriteItem>,
    ) -> Result<Transaction> {
        for attempt in 0..TRANSACTION_ATTEMPTS {
            if attempt > 0 {
                tokio::time::sleep(backoff(attempt)).await;
            }
            let _turn = self.write_turn().await;
            let result = self
                .client
                .transact_write_items()
                .set_transact_items(Some(items.clone()))
                .send()
                .await;
            let error = match result {
                Ok(_) => return Ok(Transaction::Committed),
                Err(error) => error,
            };
            match error.as_service_error() {
                Some(TransactWriteItemsError::TransactionCanceledException(cancelled)) => {
                    let codes: Vec<&str> = cancelled
                        .cancellation_reasons()
                        .iter()
                        .map(|reason| reason.code().unwrap_or("None"))
                        .collect();
                    if codes.contains(&"ConditionalCheckFailed") {
                        return Ok(Transaction::Cancelled(
                            codes
                                .iter()
                                .map(|code| *code == "ConditionalCheckFailed")
                                .collect(),
                        ));
                    }
                    if !codes.contains(&"TransactionConflict") {
                        return Err(AwsError::dynamodb("TransactWriteItems", error).into());
                    }
                    tracing::debug!(operation, attempt, "transaction conflict, retrying");
                }
                Some(TransactWriteItemsError::TransactionInProgressException(_)) => {
                    tracing::debug!(operation, attempt, "transaction in progress, retrying");
                }
                _ => return Err(AwsError::dynamodb("TransactWriteItems", error).into()),
            }
        }
        Err(AwsError::TransactionConflict {
            operation,
            attempts: TRANSACTION_ATTEMPTS,
        }
        .into())
    }

    /// Writes a new version of a model item if its stored version is the expected one; in a
    /// table not migrated yet, where the item is (its sharded key, else its legacy key).
    async fn update_versioned(&self, update: VersionedUpdate) -> Result<()> {
        let outcome = self.update_versioned_at(&update, update.key.clone()).await;
        let Err(Error::NotFound(_)) = outcome else {
            return outcome;
        };
        let Some(legacy) = &update.legacy_key else {
            return outcome;
        };
        if !self.legacy_possible().await {
            return outcome;
        }
        match self.update_versioned_at(&update, legacy.clone()).await {
            // Moved by a migration between the two attempts (moves only go that way).
            Err(Error::NotFound(_)) => self.update_versioned_at(&update, update.key.clone()).await,
            outcome => outcome,
        }
    }

    /// [`DynamoStore::update_versioned`] of the item at `key`.
    async fn update_versioned_at(&self, update: &VersionedUpdate, key: Item) -> Result<()> {
        let VersionedUpdate {
            kind,
            expected_version,
            data,
            set,
            remove,
            unchanged,
            ..
        } = update;
        let (kind, expected_version) = (*kind, *expected_version);
        let mut names = HashMap::from([
            ("#data".to_owned(), DATA.to_owned()),
            ("#version".to_owned(), VERSION.to_owned()),
        ]);
        let mut values = HashMap::from([
            (":data".to_owned(), s(data.as_str())),
            (":next".to_owned(), n(expected_version + 1)),
            (":expected".to_owned(), n(expected_version)),
        ]);
        let mut expression = "SET #data = :data, #version = :next".to_owned();
        for (index, (name, value)) in set.iter().enumerate() {
            expression.push_str(&format!(", #s{index} = :s{index}"));
            names.insert(format!("#s{index}"), (*name).to_owned());
            values.insert(format!(":s{index}"), value.clone());
        }
        for (index, name) in remove.iter().enumerate() {
            expression.push_str(if index == 0 { " REMOVE " } else { ", " });
            expression.push_str(&format!("#r{index}"));
            names.insert(format!("#r{index}"), (*name).to_owned());
        }
        let mut condition = "#version = :expected".to_owned();
        if let Some((name, value)) = unchanged {
            condition.push_str(" AND #unchanged = :unchanged");
            names.insert("#unchanged".to_owned(), (*name).to_owned());
            values.insert(":unchanged".to_owned(), value.clone());
        }
        let _turn = self.write_turn().await;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(key.clone()))
            .update_expression(expression)
            .condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .return_values_on_condition_check_failure(ReturnValuesOnConditionCheckFailure::AllOld)
            .send()
            .await;
        let error = match result {
            Ok(_) => return Ok(()),
            Err(error) => error,
        };
        let returned = match error.as_service_error() {
            Some(UpdateItemError::ConditionalCheckFailedException(failed)) => failed.item.clone(),
            _ => return Err(AwsError::dynamodb("UpdateItem", error).into()),
        };
        // Older emulators do not return the item on a failed condition: read it instead. Either
        // way the answer describes the item as it was at some point after our attempt.
        let current = match returned {
            Some(item) => Some(item),
            None => self.get_item(key).await?,
        };
        let Some(current) = current else {
            return Err(Error::NotFound(kind));
        };
        if items::number::<u64>(&current, VERSION)? != expected_version {
            return Err(Error::VersionConflict(kind));
        }
        let field = unchanged.as_ref().map_or("?", |(name, _)| *name);
        Err(Error::BadRequest {
            code: "immutable_field",
            message: format!("The {kind}'s {field} cannot be changed"),
        })
    }
}

/// How a transaction ended when it did not fail outright.
#[derive(Debug)]
enum Transaction {
    /// Every write was applied.
    Committed,
    /// Nothing was applied; for each write, whether its condition failed.
    Cancelled(Vec<bool>),
}

impl Transaction {
    /// Whether write `index` failed its condition.
    fn failed(&self, index: usize) -> bool {
        match self {
            Transaction::Committed => false,
            Transaction::Cancelled(failed) => failed.get(index).copied().unwrap_or(false),
        }
    }
}

/// A version-checked rewrite of a model item.
struct VersionedUpdate {
    /// What the item is, for `NotFound` and `VersionConflict`.
    kind: ItemKind,
    /// The item's key.
    key: Item,
    /// Where an earlier layout kept the item (tried when `key` holds nothing and the table
    /// is not migrated yet).
    legacy_key: Option<Item>,
    /// The version the caller read.
    expected_version: u64,
    /// The model at `expected_version + 1`, as JSON.
    data: String,
    /// Further attributes to set (index keys, copies of model fields).
    set: Vec<(&'static str, AttributeValue)>,
    /// Attributes to remove (index keys leaving a sparse index).
    remove: Vec<&'static str>,
    /// An attribute that must keep its value (the key of a uniqueness claim).
    unchanged: Option<(&'static str, AttributeValue)>,
}

/// Exponential backoff with jitter: 12-25 ms, 25-50 ms, 50-100 ms...
fn backoff(attempt: u32) -> Duration {
    let ceiling = 25u64 << attempt.min(6);
    Duration::from_millis(rand::thread_rng().gen_range(ceiling / 2..=ceiling))
}

/// Decodes every item of a page into its model.
fn decode_page<T: serde::de::DeserializeOwned>(page: Page<Item>) -> Result<Page<T>> {
    Ok(Page {
        items: page
            .items
            .iter()
            .map(items::from_data)
            .collect::<Result<_>>()?,
        next_cursor: page.next_cursor,
        items_read: page.items_read,
    })
}

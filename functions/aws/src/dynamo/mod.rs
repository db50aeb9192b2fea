//! The DynamoDB store: every store port over one table (single-table design, see [`schema`]).
//!
//! Invariants are conditional writes, never read-then-write: uniqueness claims are separate
//! items put with `attribute_not_exists(PK)`, limits are counters on the account item updated
//! in the same `TransactWriteItems` with a `ConditionExpression`, and updates are guarded by
//! `version`. Reads of one item are strongly consistent `GetItem`s; lists are `Query`s on the
//! local index [`schema::BY_CREATED`] (strongly consistent, oldest first); the hostname and due
//! lookups use the global indexes, which are eventually consistent by nature.

mod accounts;
mod certificates;
mod challenges;
mod cursor;
mod domains;
mod events;
mod items;
mod keys;
mod leases;
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
use edgecert_core::ports::{Page, PageRequest};
use edgecert_core::{Error, ItemKind, Result};
use rand::Rng;
use tokio::sync::{Mutex, MutexGuard};

use crate::error::AwsError;
use cursor::CursorScope;
use items::{Item, n, s};
use schema::{DATA, VERSION};

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
}

impl DynamoStore {
    /// A store on `table_name`, which must exist with the layout of [`create_table`].
    pub fn new(client: Client, table_name: impl Into<String>) -> Self {
        DynamoStore {
            client,
            table: table_name.into(),
            write_lock: None,
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

    /// Writes a new version of a model item if its stored version is the expected one.
    async fn update_versioned(&self, update: VersionedUpdate) -> Result<()> {
        let VersionedUpdate {
            kind,
            key,
            expected_version,
            data,
            set,
            remove,
            unchanged,
        } = update;
        let mut names = HashMap::from([
            ("#data".to_owned(), DATA.to_owned()),
            ("#version".to_owned(), VERSION.to_owned()),
        ]);
        let mut values = HashMap::from([
            (":data".to_owned(), s(data)),
            (":next".to_owned(), n(expected_version + 1)),
            (":expected".to_owned(), n(expected_version)),
        ]);
        let mut expression = "SET #data = :data, #version = :next".to_owned();
        for (index, (name, value)) in set.into_iter().enumerate() {
            expression.push_str(&format!(", #s{index} = :s{index}"));
            names.insert(format!("#s{index}"), name.to_owned());
            values.insert(format!(":s{index}"), value);
        }
        for (index, name) in remove.iter().enumerate() {
            expression.push_str(if index == 0 { " REMOVE " } else { ", " });
            expression.push_str(&format!("#r{index}"));
            names.insert(format!("#r{index}"), (*name).to_owned());
        }
        let mut condition = "#version = :expected".to_owned();
        if let Some((name, value)) = &unchanged {
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
        let field = unchanged.map_or("?", |(name, _)| name);
        Err(Error::BadRequest {
            code: "immutable_field",
            message: format!("The {kind}'s {field} cannot be changed"),
        })
    }

    /// Reads one page of a query, asking for one item more than the page to know whether
    /// another page follows.
    async fn query_page(&self, query: PageQuery, page: PageRequest) -> Result<Page<Item>> {
        let limit = page.limit.clamp(1, MAX_PAGE) as usize;
        let start = match &page.cursor {
            Some(cursor) => Some(query.scope.decode(cursor)?),
            None => None,
        };
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(query.index.map(str::to_owned))
            .key_condition_expression(query.key_condition)
            .set_expression_attribute_names(Some(query.names))
            .set_expression_attribute_values(Some(query.values))
            .consistent_read(query.consistent)
            .scan_index_forward(true)
            .limit(i32::try_from(limit + 1).unwrap_or(i32::MAX))
            .set_exclusive_start_key(start)
            .send()
            .await
            .map_err(|error| AwsError::dynamodb("Query", error))?;
        let items_read = u64::try_from(output.scanned_count).unwrap_or(0);
        let last_evaluated = output.last_evaluated_key;
        let mut items = output.items.unwrap_or_default();
        let next_cursor = if items.len() > limit {
            items.truncate(limit);
            match items.last() {
                Some(last) => Some(query.scope.encode(last)?),
                None => None,
            }
        } else {
            // Fewer than asked: either the end, or DynamoDB stopped at its 1 MB page size.
            match &last_evaluated {
                Some(key) => Some(query.scope.encode(key)?),
                None => None,
            }
        };
        Ok(Page {
            items,
            next_cursor,
            items_read,
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

/// One page of a `Query`.
struct PageQuery {
    /// The index queried, `None` for the table.
    index: Option<&'static str>,
    /// The key condition.
    key_condition: &'static str,
    /// Expression attribute names.
    names: HashMap<String, String>,
    /// Expression attribute values.
    values: HashMap<String, AttributeValue>,
    /// Strongly consistent read (table and local indexes only).
    consistent: bool,
    /// What a cursor of this list holds.
    scope: CursorScope,
}

/// One page of a change feed: the `partition` of [`schema::BY_UPDATED`] from `since`'s
/// millisecond on, oldest change first. `prefix` is the `SK` prefix of the listed kind, which
/// a cursor must keep.
fn changes_query(
    partition: &'static str,
    prefix: &'static str,
    since: time::OffsetDateTime,
) -> PageQuery {
    PageQuery {
        index: Some(schema::BY_UPDATED),
        key_condition: "#changed = :changed AND #at >= :from",
        names: HashMap::from([
            ("#changed".to_owned(), schema::GSI3PK.to_owned()),
            ("#at".to_owned(), schema::GSI3SK.to_owned()),
        ]),
        values: HashMap::from([
            (":changed".to_owned(), s(partition)),
            (":from".to_owned(), s(keys::updated_bound(since))),
        ]),
        // Global indexes are eventually consistent only.
        consistent: false,
        scope: CursorScope {
            key_attributes: &[schema::PK, schema::SK, schema::GSI3PK, schema::GSI3SK],
            fixed: vec![(schema::GSI3PK, partition.to_owned())],
            prefixed: vec![(schema::SK, prefix)],
        },
    }
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

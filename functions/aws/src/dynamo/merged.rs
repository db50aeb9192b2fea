//! Ordered reads over sharded partitions: one `Query` per shard, all in parallel, merged by
//! the sort key into one page.
//!
//! Each shard is asked for about its share of the page first (`limit / shards + 1` items);
//! a shard that runs out before the page is full while it still has items is asked again, for
//! what the page still lacks, so a page is full unless the list ends, and a page reads little
//! more than it returns however the items fall into the shards. An item is emitted only when
//! every shard that may still hold a smaller one has been read that far, so the merged order
//! is exact. Sort keys are unique across shards (they end with the item's id): the cursor is
//! the last emitted value, and every shard resumes at it (inclusively, dropping that one
//! item), so a cursor means the same whichever shards are read. An item met twice in one page
//! (moved between an old and a new partition while the page was read) is emitted once.

use std::collections::{HashMap, VecDeque};

use aws_sdk_dynamodb::Client;
use edgecert_core::ports::{Page, PageRequest};
use edgecert_core::{Error, Result};
use tokio::task::JoinSet;

use super::cursor::CursorScope;
use super::items::{self, Item, s};
use super::{DynamoStore, MAX_PAGE};
use crate::error::AwsError;

/// One ordered list read from several partitions.
#[derive(Debug, Clone)]
pub(crate) struct MergedQuery {
    /// The index queried, `None` for the table.
    pub(crate) index: Option<&'static str>,
    /// The partition-key attribute of the table or index.
    pub(crate) partition_key: &'static str,
    /// The sort-key attribute the list is ordered by.
    pub(crate) sort_key: &'static str,
    /// The partition values to read (every shard, and an earlier layout's partition while it
    /// may hold items).
    pub(crate) partitions: Vec<String>,
    /// Least sort-key value listed (inclusive).
    pub(crate) lower: Option<String>,
    /// Greatest sort-key value listed (inclusive).
    pub(crate) upper: Option<String>,
    /// Strongly consistent reads (the table and local indexes only).
    pub(crate) consistent: bool,
    /// What a cursor of this list holds.
    pub(crate) scope: CursorScope,
}

/// What one query of one shard returned.
struct Fetched {
    /// The items, in sort order, each with its sort-key value.
    items: Vec<(String, Item)>,
    /// Whether the shard may hold more items after the last one.
    more: bool,
    /// The sort-key value of the last item read (`after` itself included).
    last: Option<String>,
    /// Items DynamoDB read to answer.
    read: u64,
}

/// The merge's view of one shard.
struct Shard {
    /// The partition value.
    partition: String,
    /// Items read and not emitted yet.
    buffer: VecDeque<(String, Item)>,
    /// The sort-key value to resume reading at (exclusive): the last one read.
    after: Option<String>,
    /// Whether the shard may hold more items than were read.
    more: bool,
}

impl DynamoStore {
    /// Reads one page of `query`: up to `page.limit` items in sort-key order across every
    /// partition, and the cursor of the next page.
    pub(crate) async fn merged_page(
        &self,
        query: MergedQuery,
        page: PageRequest,
    ) -> Result<Page<Item>> {
        let limit = page.limit.clamp(1, MAX_PAGE) as usize;
        let resume = match &page.cursor {
            Some(cursor) => Some(query.scope.decode(cursor)?),
            None => None,
        };
        let mut shards: Vec<Shard> = query
            .partitions
            .iter()
            .map(|partition| Shard {
                partition: partition.clone(),
                buffer: VecDeque::new(),
                after: resume.clone(),
                more: true,
            })
            .collect();
        let reader = ShardReader {
            client: self.client.clone(),
            table: self.table.clone(),
            query: query.clone(),
        };
        let mut items = Vec::with_capacity(limit);
        let mut last = resume;
        let mut items_read = 0;
        let mut ask = limit.div_ceil(shards.len().max(1)) + 1;
        'page: loop {
            items_read += reader.refill(&mut shards, ask).await?;
            // Shards drained later are asked for what the page still lacks.
            ask = limit - items.len() + 1;
            loop {
                if items.len() == limit {
                    break 'page;
                }
                if shards
                    .iter()
                    .any(|shard| shard.buffer.is_empty() && shard.more)
                {
                    continue 'page;
                }
                let next = shards
                    .iter_mut()
                    .filter(|shard| !shard.buffer.is_empty())
                    .min_by(|a, b| a.buffer[0].0.cmp(&b.buffer[0].0));
                let Some((sort, item)) = next.and_then(|shard| shard.buffer.pop_front()) else {
                    break 'page;
                };
                if last.as_deref() == Some(sort.as_str()) {
                    continue;
                }
                items.push(item);
                last = Some(sort);
            }
        }
        let finished = shards
            .iter()
            .all(|shard| shard.buffer.is_empty() && !shard.more);
        let next_cursor = match (&last, finished) {
            (Some(last), false) => Some(query.scope.encode(last)?),
            _ => None,
        };
        Ok(Page {
            items,
            next_cursor,
            items_read,
        })
    }
}

/// Reads shards of one [`MergedQuery`], owned so that each read can run as its own task.
#[derive(Clone)]
struct ShardReader {
    client: Client,
    table: String,
    query: MergedQuery,
}

impl ShardReader {
    /// Reads up to `ask` more items, in parallel, of every shard that has nothing buffered but
    /// may hold more; returns the items DynamoDB read.
    async fn refill(&self, shards: &mut [Shard], ask: usize) -> Result<u64> {
        let mut reads = JoinSet::new();
        for (index, shard) in shards.iter().enumerate() {
            if shard.buffer.is_empty() && shard.more {
                let reader = self.clone();
                let partition = shard.partition.clone();
                let after = shard.after.clone();
                reads.spawn(async move { (index, reader.fetch(partition, after, ask).await) });
            }
        }
        let mut read = 0;
        while let Some(joined) = reads.join_next().await {
            let (index, fetched) = joined.map_err(|error| {
                Error::Corrupt(format!("a shard read stopped unexpectedly: {error}"))
            })?;
            let fetched = fetched?;
            read += fetched.read;
            let shard = &mut shards[index];
            // Nothing new ends the shard even if DynamoDB saw more (it cannot: a resumed read
            // asks for at least two items), so that the merge always ends.
            shard.more = fetched.more && !fetched.items.is_empty();
            if fetched.last.is_some() {
                shard.after = fetched.last;
            }
            shard.buffer.extend(fetched.items);
        }
        Ok(read)
    }

    /// One `Query` of `partition`: up to `limit` items whose sort key is after `after` (and
    /// within the list's bounds), in order.
    async fn fetch(
        &self,
        partition: String,
        after: Option<String>,
        limit: usize,
    ) -> Result<Fetched> {
        let query = &self.query;
        // Resume at `after` inclusively (a key condition has one bound per side) and drop it.
        let lower = match (&query.lower, &after) {
            (Some(lower), Some(after)) => Some(lower.max(after).clone()),
            (lower, after) => lower.clone().or_else(|| after.clone()),
        };
        if let (Some(lower), Some(upper)) = (&lower, &query.upper)
            && lower > upper
        {
            return Ok(Fetched {
                items: Vec::new(),
                more: false,
                last: None,
                read: 0,
            });
        }
        let mut names = HashMap::from([
            ("#p".to_owned(), query.partition_key.to_owned()),
            ("#s".to_owned(), query.sort_key.to_owned()),
        ]);
        let mut values = HashMap::from([(":p".to_owned(), s(partition))]);
        let condition = match (lower, &query.upper) {
            (Some(lower), Some(upper)) => {
                values.insert(":lower".to_owned(), s(lower));
                values.insert(":upper".to_owned(), s(upper.clone()));
                "#p = :p AND #s BETWEEN :lower AND :upper"
            }
            (Some(lower), None) => {
                values.insert(":lower".to_owned(), s(lower));
                "#p = :p AND #s >= :lower"
            }
            (None, Some(upper)) => {
                values.insert(":upper".to_owned(), s(upper.clone()));
                "#p = :p AND #s <= :upper"
            }
            (None, None) => {
                names.remove("#s");
                "#p = :p"
            }
        };
        // One more than asked when resuming: the first may be `after` itself.
        let asked = limit + usize::from(after.is_some());
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .set_index_name(query.index.map(str::to_owned))
            .key_condition_expression(condition)
            .set_expression_attribute_names(Some(names))
            .set_expression_attribute_values(Some(values))
            .consistent_read(query.consistent)
            .scan_index_forward(true)
            .limit(i32::try_from(asked).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|error| AwsError::dynamodb("Query", error))?;
        let read = u64::try_from(output.scanned_count).unwrap_or(0);
        let found = output.items.unwrap_or_default();
        // A shard that answers nothing is done, whatever DynamoDB says about more.
        let more = output.last_evaluated_key.is_some() && !found.is_empty();
        let mut items = Vec::with_capacity(found.len());
        let mut last = None;
        for item in found {
            let sort = items::string(&item, query.sort_key)?.to_owned();
            last = Some(sort.clone());
            if after.as_ref() != Some(&sort) {
                items.push((sort, item));
            }
        }
        Ok(Fetched {
            items,
            more,
            last,
            read,
        })
    }
}

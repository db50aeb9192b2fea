//! The single table's layout: attribute and index names, what each item kind looks like, and
//! how the busy keys are sharded.
//!
//! `template.yaml` declares the same table; stream consumers read the same attributes. Every
//! item has the string keys `PK` and `SK`, an `entity` attribute naming its kind, and (for
//! model items) the model serialised as JSON in `data` plus its optimistic-concurrency
//! `version` (a number, always equal to `data.version`).
//!
//! `{s}` below is a two-digit shard number (`00`, `01`, ...): [`shard_of`] the item's own id
//! (the domain's, zone's or certificate's), over [`ACCOUNT_SHARDS`] in account partitions and
//! over [`INDEX_SHARDS`] in the sharded global-index keys.
//!
//! | entity | PK | SK | other attributes |
//! |---|---|---|---|
//! | `account` | `ACCT#{account}` | `ACCOUNT` | `domain_count`, `certificate_count` (limit counters) |
//! | `account_entry` | `ACCOUNTS` | `ACCT#{created}#{account}` | `account_id` (the account directory: the operator's list, one partition written once per account) |
//! | `api_key` | `APIKEY#{sha256 hex}` | `APIKEY` | `account_id` |
//! | `domain` | `ACCT#{account}#{s}` | `DOM#{id}` | `LSI1SK` = `DOM#{created}#{id}`, `GSI1PK` = hostname, `GSI3PK` = `CHANGED#DOM#{s}` and `GSI3SK` = `{updated}#{id}` |
//! | `hostname` | `HOST#{hostname}` | `HOST` | `account_id`, `domain_id` (global uniqueness) |
//! | `domain_tombstone` | `TOMB#{domain}` | `DOM#{domain}` | `GSI3PK` = `CHANGED#DOM#{s}` and `GSI3SK` = `{deleted}#{id}`, `ttl` (deleted + 1 day + 1 hour); `data` is the [`DeletedDomain`](edgecert_core::model::DeletedDomain) |
//! | `zone` | `ACCT#{account}#{s}` | `ZONE#{id}` | `LSI1SK` = `ZONE#{created}#{id}` |
//! | `zone_name` | `ZONENAME#{zone name}` | `ZONENAME` | `account_id`, `zone_id` (global uniqueness of zone names; zones stored before it existed have none) |
//! | `certificate` | `ACCT#{account}#{s}` | `CERT#{id}` | `LSI1SK` = `CERT#{created}#{id}`, `primary_name`, `status`, `GSI2PK` = `DUE#{s}` and `GSI2SK` = `{due}#{id}` while [`due_at`](edgecert_core::model::Certificate::due_at) is set, `GSI3PK` = `CHANGED#CERT#{s}` and `GSI3SK` = `{updated}#{id}` |
//! | `certificate_name` | `CERTNAME#{account}#{primary name}` | `CERTNAME` | `certificate_id` (per-account uniqueness of downloadable certificates) |
//! | `event` | `EVENTS#{certificate}` | `EVT#{at}#{sequence}#{random}` | `ttl` (at + 30 days) |
//! | `http01` | `CHAL#{token}` | `CHAL` | `ttl` (expiry) |
//! | `lease` | `LEASE#{name}` | `LEASE` | `owner`, `expires_at` (unix ns), `version`, `ttl`; no `data` |
//! | `token_bucket` | `BUCKET#{name}` | `BUCKET` | `name`, `level_milli` (thousandths of a token), `updated_at` (unix ns), `version`; no `data` |
//! | `layout` | `ACCT#layout` | `LAYOUT` | `layout_version` (2: every item has the sharded keys above), `migrated_at` (unix seconds) |
//!
//! Times inside keys are unix milliseconds zero-padded to 15 digits (`{created}`, `{due}`,
//! `{updated}`) or
//! unix nanoseconds padded to 20 (`{at}`), so string order is time order.
//!
//! Indexes (all projecting every attribute):
//! - [`BY_CREATED`] (local): `PK` + `LSI1SK`; lists an account's domains, zones and
//!   certificates oldest first with strongly consistent reads (one query per account shard,
//!   merged), while a get by id stays a single `GetItem` on `PK` + `SK`.
//! - [`BY_HOSTNAME`] (global, sparse): `GSI1PK`, a domain's hostname (one value per domain,
//!   so never hot). Lookups by hostname read the `hostname` claim item and then the domain
//!   instead: two strongly consistent `GetItem`s, O(1) whatever the table holds.
//! - [`BY_DUE`] (global, sparse): `GSI2PK` + `GSI2SK`; the renewer's query for due
//!   certificates, one query per `DUE#{s}` shard, merged.
//! - [`BY_UPDATED`] (global, sparse: domains, tombstones and certificates): `GSI3PK` +
//!   `GSI3SK`; the edge's change feeds, one query per `CHANGED#DOM#{s}` or `CHANGED#CERT#{s}`
//!   shard, merged, so a terminator reads only what changed since its last look.
//!
//! ## Why the shards
//!
//! A table with a local index caps every item collection (the items of one `PK`, with their
//! index entries) at 10 GB, and a partition serves at most 3,000 read and 1,000 write units a
//! second. One `ACCT#{account}` partition per account put an account's domains and
//! certificates under that cap, and one `DUE` or `CHANGED#*` value put every change of the
//! deployment through one index partition. Spreading each over shards chosen by the item's id
//! (a stable hash, [`shard_of`]) multiplies both limits by the shard count; a read that needs
//! order (a list, a feed, the due query) queries every shard in parallel and merges the
//! answers by their sort key, which is unique (it ends with the item's id), so a cursor is one
//! sort-key value and means the same in every shard. The sizing is in BENCHMARKS.md
//! ("DynamoDB capacity at 1M domains").
//!
//! ## Tables written before the shards
//!
//! Earlier builds kept domains, zones and certificates at `ACCT#{account}` and used the
//! single index keys `DUE`, `CHANGED#DOM` and `CHANGED#CERT`. Until the `layout` item says
//! `layout_version` 2, the store also reads those places (a get by id that misses its
//! sharded key tries the old one; the feeds and the due query merge the old key in as one more
//! shard) and updates an item where it is. Account lists always merge `ACCT#{account}` in
//! (see `DynamoStore::owned_list`). `DynamoStore::migrate_layout` (the
//! `edgecert-migrate-table` command) moves every such item, then writes the `layout` item;
//! [`create_table`](super::create_table) writes it on a new table. The `layout` item sits
//! under `ACCT#` so that every function whose IAM grant is scoped to account keys may read it.
//!
//! The table streams `NEW_AND_OLD_IMAGES` (the issuer reads certificate items: filter on
//! `entity` = `certificate` and `status`) and expires `event`, `http01` and `lease` items
//! and `domain_tombstone` items through TTL on `ttl`.

/// Partition key of every item.
pub const PK: &str = "PK";
/// Sort key of every item.
pub const SK: &str = "SK";
/// Sort key of the [`BY_CREATED`] local index.
pub const LSI1SK: &str = "LSI1SK";
/// Partition key of the [`BY_HOSTNAME`] global index: a domain's hostname.
pub const GSI1PK: &str = "GSI1PK";
/// Partition key of the [`BY_DUE`] global index: `DUE#{s}` ([`DUE_PREFIX`]).
pub const GSI2PK: &str = "GSI2PK";
/// Sort key of the [`BY_DUE`] global index: padded due time, `#`, certificate id.
pub const GSI2SK: &str = "GSI2SK";
/// Partition key of the [`BY_UPDATED`] global index: `CHANGED#DOM#{s}` or `CHANGED#CERT#{s}`
/// ([`CHANGED_DOMAINS`], [`CHANGED_CERTIFICATES`] and the shard).
pub const GSI3PK: &str = "GSI3PK";
/// Sort key of the [`BY_UPDATED`] global index: padded `updated_at`, `#`, item id.
pub const GSI3SK: &str = "GSI3SK";
/// The model as JSON.
pub const DATA: &str = "data";
/// Optimistic-concurrency version (number).
pub const VERSION: &str = "version";
/// Item kind.
pub const ENTITY: &str = "entity";
/// DynamoDB TTL attribute (unix seconds).
pub const TTL: &str = "ttl";
/// A certificate's lifecycle state, copied out of `data` for stream filters.
pub const STATUS: &str = "status";

/// Local index ordering an account's items by creation time.
pub const BY_CREATED: &str = "by_created";
/// Global index from hostname to domain.
pub const BY_HOSTNAME: &str = "by_hostname";
/// Global index of certificates by due time.
pub const BY_DUE: &str = "by_due";
/// The [`BY_DUE`] partitions: `DUE#{s}`. Earlier builds used `DUE` alone.
pub const DUE_PREFIX: &str = "DUE";
/// Global index of domains and certificates by change time (the edge's change feeds).
pub const BY_UPDATED: &str = "by_updated";
/// The [`BY_UPDATED`] partitions of domains and their tombstones: `CHANGED#DOM#{s}`. Earlier
/// builds used `CHANGED#DOM` alone.
pub const CHANGED_DOMAINS: &str = "CHANGED#DOM";
/// The [`BY_UPDATED`] partitions of certificates: `CHANGED#CERT#{s}`. Earlier builds used
/// `CHANGED#CERT` alone.
pub const CHANGED_CERTIFICATES: &str = "CHANGED#CERT";

/// Shards of each account's domains, zones and certificates (`ACCT#{account}#{s}`). With a
/// local index every partition is capped at 10 GB, so an account holds up to 160 GB of them.
pub const ACCOUNT_SHARDS: u32 = 16;
/// Shards of each sharded global-index key (`DUE#{s}`, `CHANGED#DOM#{s}`, `CHANGED#CERT#{s}`).
pub const INDEX_SHARDS: u32 = 8;

/// The shard (`0..shards`) of the item with id `id`: FNV-1a (32 bits) of the id's bytes,
/// modulo `shards`. Part of the stored layout: changing it would strand every item.
pub fn shard_of(id: &str, shards: u32) -> u32 {
    const OFFSET: u32 = 0x811c_9dc5;
    const PRIME: u32 = 0x0100_0193;
    let hash = id.bytes().fold(OFFSET, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(PRIME)
    });
    hash % shards.max(1)
}

/// `PK` of the item recording the table's layout.
pub const LAYOUT_PK: &str = "ACCT#layout";
/// `SK` of the item recording the table's layout.
pub const LAYOUT_SK: &str = "LAYOUT";
/// The layout item's attribute: the layout every item of the table has.
pub const LAYOUT_VERSION: &str = "layout_version";
/// The layout of this build: sharded account partitions and index keys.
pub const SHARDED_LAYOUT: u32 = 2;

/// `entity` values.
pub mod entity {
    /// An account.
    pub const ACCOUNT: &str = "account";
    /// An account's entry in the account directory.
    pub const ACCOUNT_ENTRY: &str = "account_entry";
    /// An API key hash pointing at its account.
    pub const API_KEY: &str = "api_key";
    /// A whitelisted domain.
    pub const DOMAIN: &str = "domain";
    /// The global uniqueness claim on a hostname.
    pub const HOSTNAME: &str = "hostname";
    /// A deleted domain in the domain change feed.
    pub const DOMAIN_TOMBSTONE: &str = "domain_tombstone";
    /// A DNS zone.
    pub const ZONE: &str = "zone";
    /// The global uniqueness claim on a zone name.
    pub const ZONE_NAME: &str = "zone_name";
    /// A certificate.
    pub const CERTIFICATE: &str = "certificate";
    /// The per-account uniqueness claim on a downloadable certificate's primary name.
    pub const CERTIFICATE_NAME: &str = "certificate_name";
    /// A certificate event.
    pub const EVENT: &str = "event";
    /// An HTTP-01 answer.
    pub const HTTP01: &str = "http01";
    /// A lease.
    pub const LEASE: &str = "lease";
    /// A token bucket (the CA-wide order budget).
    pub const TOKEN_BUCKET: &str = "token_bucket";
    /// The record of the table's layout.
    pub const LAYOUT: &str = "layout";
}

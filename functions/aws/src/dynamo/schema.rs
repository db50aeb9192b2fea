//! The single table's layout: attribute and index names, and what each item kind looks like.
//!
//! `template.yaml` declares the same table; stream consumers read the same attributes. Every
//! item has the string keys `PK` and `SK`, an `entity` attribute naming its kind, and (for
//! model items) the model serialised as JSON in `data` plus its optimistic-concurrency
//! `version` (a number, always equal to `data.version`).
//!
//! | entity | PK | SK | other attributes |
//! |---|---|---|---|
//! | `account` | `ACCT#{account}` | `ACCOUNT` | `domain_count`, `certificate_count` (limit counters) |
//! | `account_entry` | `ACCOUNTS` | `ACCT#{created}#{account}` | `account_id` (the account directory: the operator's list, one partition written once per account) |
//! | `api_key` | `APIKEY#{sha256 hex}` | `APIKEY` | `account_id` |
//! | `domain` | `ACCT#{account}` | `DOM#{id}` | `LSI1SK` = `DOM#{created}#{id}`, `GSI1PK` = hostname, `GSI3PK` = `CHANGED#DOM` and `GSI3SK` = `{updated}#{id}` |
//! | `hostname` | `HOST#{hostname}` | `HOST` | `account_id`, `domain_id` (global uniqueness) |
//! | `domain_tombstone` | `TOMB#{domain}` | `DOM#{domain}` | `GSI3PK` = `CHANGED#DOM` and `GSI3SK` = `{deleted}#{id}`, `ttl` (deleted + 1 day + 1 hour); `data` is the [`DeletedDomain`](edgecert_core::model::DeletedDomain) |
//! | `zone` | `ACCT#{account}` | `ZONE#{id}` | `LSI1SK` = `ZONE#{created}#{id}` |
//! | `zone_name` | `ZONENAME#{zone name}` | `ZONENAME` | `account_id`, `zone_id` (global uniqueness of zone names; zones stored before it existed have none) |
//! | `certificate` | `ACCT#{account}` | `CERT#{id}` | `LSI1SK` = `CERT#{created}#{id}`, `primary_name`, `status`, `GSI2PK` = `DUE` and `GSI2SK` = `{due}#{id}` while [`due_at`](edgecert_core::model::Certificate::due_at) is set, `GSI3PK` = `CHANGED#CERT` and `GSI3SK` = `{updated}#{id}` |
//! | `certificate_name` | `CERTNAME#{account}#{primary name}` | `CERTNAME` | `certificate_id` (per-account uniqueness of downloadable certificates) |
//! | `event` | `EVENTS#{certificate}` | `EVT#{at}#{sequence}#{random}` | `ttl` (at + 30 days) |
//! | `http01` | `CHAL#{token}` | `CHAL` | `ttl` (expiry) |
//! | `lease` | `LEASE#{name}` | `LEASE` | `owner`, `expires_at` (unix ns), `version`, `ttl`; no `data` |
//! | `token_bucket` | `BUCKET#{name}` | `BUCKET` | `name`, `level_milli` (thousandths of a token), `updated_at` (unix ns), `version`; no `data` |
//!
//! Times inside keys are unix milliseconds zero-padded to 15 digits (`{created}`, `{due}`,
//! `{updated}`) or
//! unix nanoseconds padded to 20 (`{at}`), so string order is time order.
//!
//! Indexes (all projecting every attribute):
//! - [`BY_CREATED`] (local): `PK` + `LSI1SK`; lists an account's domains, zones and
//!   certificates oldest first with strongly consistent reads, while a get by id stays a single
//!   `GetItem` on `PK` + `SK`.
//! - [`BY_HOSTNAME`] (global, sparse): `GSI1PK`; the edge's lookup of a domain by hostname.
//! - [`BY_DUE`] (global, sparse): `GSI2PK` + `GSI2SK`; the renewer's query for due certificates.
//! - [`BY_UPDATED`] (global, sparse: domains and certificates only): `GSI3PK` + `GSI3SK`; the
//!   edge's change feeds, one partition per kind, so a terminator reads only what changed
//!   since its last look.
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
/// Partition key of the [`BY_DUE`] global index: always [`DUE_PARTITION`].
pub const GSI2PK: &str = "GSI2PK";
/// Sort key of the [`BY_DUE`] global index: padded due time, `#`, certificate id.
pub const GSI2SK: &str = "GSI2SK";
/// Partition key of the [`BY_UPDATED`] global index: [`CHANGED_DOMAINS`] or
/// [`CHANGED_CERTIFICATES`].
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
/// The one partition of [`BY_DUE`].
pub const DUE_PARTITION: &str = "DUE";
/// Global index of domains and certificates by change time (the edge's change feeds).
pub const BY_UPDATED: &str = "by_updated";
/// The [`BY_UPDATED`] partition of domains.
pub const CHANGED_DOMAINS: &str = "CHANGED#DOM";
/// The [`BY_UPDATED`] partition of certificates.
pub const CHANGED_CERTIFICATES: &str = "CHANGED#CERT";

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
}

//! Key values of every item kind (see [`schema`](super::schema) for the layout).

use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use edgecert_core::model::ApiKeyHash;
use edgecert_core::{AccountId, CertificateId, DomainId, ZoneId};

use super::schema::{
    ACCOUNT_SHARDS, CHANGED_CERTIFICATES, CHANGED_DOMAINS, DUE_PREFIX, INDEX_SHARDS, shard_of,
};

/// Sort key of an account item.
pub(crate) const ACCOUNT_SK: &str = "ACCOUNT";
/// Sort key of an API key item.
pub(crate) const API_KEY_SK: &str = "APIKEY";
/// Sort key of a hostname uniqueness item.
pub(crate) const HOST_SK: &str = "HOST";
/// Sort key of a zone-name uniqueness item.
pub(crate) const ZONE_NAME_SK: &str = "ZONENAME";
/// Sort key of a certificate-name uniqueness item.
pub(crate) const CERT_NAME_SK: &str = "CERTNAME";
/// Sort key of an HTTP-01 item.
pub(crate) const CHALLENGE_SK: &str = "CHAL";
/// Sort key of a lease item.
pub(crate) const LEASE_SK: &str = "LEASE";

/// The one partition of the account directory (the operator's list of accounts).
pub(crate) const ACCOUNT_DIRECTORY_PK: &str = "ACCOUNTS";
/// Sort key prefix of account directory entries.
pub(crate) const ACCOUNT_ENTRY_PREFIX: &str = "ACCT#";

/// Sort key (and `LSI1SK`) prefix of domains.
pub(crate) const DOMAIN_PREFIX: &str = "DOM#";
/// Sort key (and `LSI1SK`) prefix of zones.
pub(crate) const ZONE_PREFIX: &str = "ZONE#";
/// Sort key (and `LSI1SK`) prefix of certificates.
pub(crate) const CERTIFICATE_PREFIX: &str = "CERT#";
/// Sort key prefix of events.
pub(crate) const EVENT_PREFIX: &str = "EVT#";

/// Free-form key parts (lease names, challenge tokens) longer than this are hashed: DynamoDB
/// caps a partition key at 2048 bytes.
const MAX_RAW_KEY_PART: usize = 1024;

/// `ACCT#{id}`: the partition of the account item (and, in tables written before the shards,
/// of everything the account owns).
pub(crate) fn account_pk(id: &AccountId) -> String {
    format!("ACCT#{id}")
}

/// `ACCT#{account}#{s}`: the account shard holding the domain, zone or certificate `id`.
pub(crate) fn owned_pk(account: &AccountId, id: &str) -> String {
    account_shard_pk(account, shard_of(id, ACCOUNT_SHARDS))
}

/// `ACCT#{account}#{shard}`.
fn account_shard_pk(account: &AccountId, shard: u32) -> String {
    format!("ACCT#{account}#{shard:02}")
}

/// Every shard partition of the account's domains, zones and certificates.
pub(crate) fn account_shard_pks(account: &AccountId) -> Vec<String> {
    (0..ACCOUNT_SHARDS)
        .map(|shard| account_shard_pk(account, shard))
        .collect()
}

/// `{prefix}#{s}`: the shard of a sharded global-index key holding item `id`.
pub(crate) fn index_pk(prefix: &str, id: &str) -> String {
    index_shard_pk(prefix, shard_of(id, INDEX_SHARDS))
}

fn index_shard_pk(prefix: &str, shard: u32) -> String {
    format!("{prefix}#{shard:02}")
}

/// Every shard of the sharded global-index key `prefix`.
pub(crate) fn index_pks(prefix: &str) -> Vec<String> {
    (0..INDEX_SHARDS)
        .map(|shard| index_shard_pk(prefix, shard))
        .collect()
}

/// `DUE#{s}`: the due-index partition of certificate `id`.
pub(crate) fn due_pk(id: &CertificateId) -> String {
    index_pk(DUE_PREFIX, id.as_str())
}

/// `CHANGED#DOM#{s}`: the change-feed partition of domain `id` (and of its tombstone).
pub(crate) fn changed_domain_pk(id: &DomainId) -> String {
    index_pk(CHANGED_DOMAINS, id.as_str())
}

/// `CHANGED#CERT#{s}`: the change-feed partition of certificate `id`.
pub(crate) fn changed_certificate_pk(id: &CertificateId) -> String {
    index_pk(CHANGED_CERTIFICATES, id.as_str())
}

/// `APIKEY#{hash}`.
pub(crate) fn api_key_pk(hash: &ApiKeyHash) -> String {
    format!("APIKEY#{}", hash.as_str())
}

/// `DOM#{id}`.
pub(crate) fn domain_sk(id: &DomainId) -> String {
    format!("{DOMAIN_PREFIX}{id}")
}

/// `HOST#{hostname}`.
pub(crate) fn host_pk(hostname: &str) -> String {
    format!("HOST#{hostname}")
}

/// `TOMB#{domain}`: the partition of a deleted domain's tombstone.
pub(crate) fn tombstone_pk(id: &DomainId) -> String {
    format!("TOMB#{id}")
}

/// `ZONE#{id}`.
pub(crate) fn zone_sk(id: &ZoneId) -> String {
    format!("{ZONE_PREFIX}{id}")
}

/// `ZONENAME#{zone name}`.
pub(crate) fn zone_name_pk(name: &str) -> String {
    format!("ZONENAME#{name}")
}

/// `CERT#{id}`.
pub(crate) fn certificate_sk(id: &CertificateId) -> String {
    format!("{CERTIFICATE_PREFIX}{id}")
}

/// `CERTNAME#{account}#{primary name}`.
pub(crate) fn certificate_name_pk(account: &AccountId, primary_name: &str) -> String {
    format!("CERTNAME#{account}#{primary_name}")
}

/// `EVENTS#{certificate}`.
pub(crate) fn events_pk(certificate: &CertificateId) -> String {
    format!("EVENTS#{certificate}")
}

/// `EVT#{at ns}#{sequence}#{random}`: newest-first order is reverse key order. Events of one
/// instant keep their append order within a process (the sequence); the random part keeps
/// appends from different processes at the same instant apart.
pub(crate) fn event_sk(at: OffsetDateTime, sequence: u64, random: u32) -> String {
    let nanos = at.unix_timestamp_nanos().max(0);
    format!("{EVENT_PREFIX}{nanos:020}#{sequence:016}#{random:08x}")
}

/// `CHAL#{token}`.
pub(crate) fn challenge_pk(token: &str) -> String {
    format!("CHAL#{}", bounded_key_part(token))
}

/// `LEASE#{name}`.
pub(crate) fn lease_pk(name: &str) -> String {
    format!("LEASE#{}", bounded_key_part(name))
}

/// Sort key of a token bucket item.
pub(crate) const TOKEN_BUCKET_SK: &str = "BUCKET";

/// `BUCKET#{name}`.
pub(crate) fn token_bucket_pk(name: &str) -> String {
    format!("BUCKET#{}", bounded_key_part(name))
}

/// `{created ms}#{id}` under a kind prefix: the `LSI1SK` of listable items.
pub(crate) fn created_key(prefix: &str, created_at: OffsetDateTime, id: &str) -> String {
    format!("{prefix}{}#{id}", padded_millis(created_at))
}

/// `{due ms}#{certificate}`: the `GSI2SK` of a due certificate.
pub(crate) fn due_key(due_at: OffsetDateTime, id: &CertificateId) -> String {
    format!("{}#{id}", padded_millis(due_at))
}

/// `{updated ms}#{id}`: the `GSI3SK` of a domain or certificate in the change feed.
pub(crate) fn updated_key(updated_at: OffsetDateTime, id: &str) -> String {
    format!("{}#{id}", padded_millis(updated_at))
}

/// The least `GSI3SK` of an item changed in the millisecond of `since` or later: `#` sorts
/// before every character of an id.
pub(crate) fn updated_bound(since: OffsetDateTime) -> String {
    format!("{}#", padded_millis(since))
}

/// The greatest `GSI2SK` of a certificate due in the millisecond of `now`: `~` sorts after
/// every character of an id.
pub(crate) fn due_bound(now: OffsetDateTime) -> String {
    format!("{}#~", padded_millis(now))
}

/// Unix milliseconds, floored, zero-padded to 15 digits (enough until the year 33658); times
/// before 1970 sort as 1970.
pub(crate) fn padded_millis(at: OffsetDateTime) -> String {
    let millis = at.unix_timestamp_nanos().div_euclid(1_000_000).max(0);
    format!("{millis:015}")
}

/// Unix seconds of `at`, for the TTL attribute.
pub(crate) fn ttl_seconds(at: OffsetDateTime) -> i64 {
    at.unix_timestamp().max(0)
}

fn bounded_key_part(part: &str) -> String {
    if part.len() <= MAX_RAW_KEY_PART {
        part.to_owned()
    } else {
        format!("sha256:{}", hex::encode(Sha256::digest(part.as_bytes())))
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn padded_times_sort_as_times() {
        let early = padded_millis(datetime!(2026-01-01 0:00 UTC));
        let late = padded_millis(datetime!(2126-01-01 0:00 UTC));
        assert_eq!(early.len(), 15);
        assert_eq!(late.len(), 15);
        assert!(early < late);
        assert_eq!(
            padded_millis(datetime!(1960-01-01 0:00 UTC)),
            "0".repeat(15)
        );
    }

    #[test]
    fn due_bound_covers_every_certificate_of_that_millisecond() {
        let now = datetime!(2026-03-16 10:30:00.123 UTC);
        let id = CertificateId::generate();
        assert!(due_key(now, &id) <= due_bound(now));
        assert!(due_key(now + time::Duration::milliseconds(1), &id) > due_bound(now));
    }

    #[test]
    fn shards_are_stable_and_spread() {
        // The hash is part of the stored layout: these values must never change.
        assert_eq!(shard_of("", 16), 0x811c_9dc5 % 16);
        assert_eq!(shard_of("dom_a", 1), 0);
        let account = AccountId::generate();
        let id = DomainId::generate();
        assert_eq!(
            owned_pk(&account, id.as_str()),
            owned_pk(&account, id.as_str())
        );
        assert!(account_shard_pks(&account).contains(&owned_pk(&account, id.as_str())));
        assert_eq!(account_shard_pks(&account).len(), ACCOUNT_SHARDS as usize);
        assert!(index_pks(CHANGED_DOMAINS).contains(&changed_domain_pk(&id)));
        assert!(changed_domain_pk(&id).starts_with("CHANGED#DOM#"));
        let mut used = std::collections::HashSet::new();
        for _ in 0..400 {
            used.insert(shard_of(DomainId::generate().as_str(), ACCOUNT_SHARDS));
        }
        assert_eq!(
            used.len(),
            ACCOUNT_SHARDS as usize,
            "random ids use every shard"
        );
    }

    #[test]
    fn long_key_parts_are_hashed() {
        let long = "a".repeat(5000);
        assert!(lease_pk(&long).len() < 100);
        assert_eq!(lease_pk("issue:a.example.com"), "LEASE#issue:a.example.com");
    }

    #[test]
    fn events_of_one_instant_keep_their_order() {
        let at = datetime!(2026-03-16 10:30 UTC);
        assert!(event_sk(at, 1, u32::MAX) < event_sk(at, 2, 0));
        assert!(event_sk(at, 9, 0) < event_sk(at + time::Duration::nanoseconds(1), 0, 0));
    }
}

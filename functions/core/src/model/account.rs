//! Accounts and their API keys.

use rand::RngCore;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use time::OffsetDateTime;

use super::SecretString;
use crate::ids::AccountId;
use crate::plan::PlanName;

/// A customer of EdgeCert (a SaaS platform); owns every other item.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Account {
    /// `acct_…`
    pub id: AccountId,
    /// Display name.
    pub name: String,
    /// The plan in force.
    pub plan: PlanName,
    /// Whether new domains must prove ownership with a TXT record before provisioning.
    pub require_ownership_verification: bool,
    /// The value the account publishes as TXT at `_edgecert-zone.<zone>` to prove that the
    /// zone's owner lets it use the zone ([`ZoneToken`]). `None` only for accounts created
    /// before zone tokens existed; the first use gives them one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone_token: Option<String>,
    /// The ACME profile its certificates are ordered with, unless a domain or certificate says
    /// otherwise (`None`: the CA's default).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub acme_profile: Option<String>,
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Optimistic-concurrency version, maintained by the store.
    pub version: u64,
}

impl Account {
    /// A new account `name` on `plan`, created at `now`, with a new zone token.
    pub fn new(
        name: String,
        plan: PlanName,
        require_ownership_verification: bool,
        now: OffsetDateTime,
    ) -> Account {
        Account {
            id: AccountId::generate(),
            name,
            plan,
            require_ownership_verification,
            zone_token: Some(ZoneToken::generate()),
            acme_profile: None,
            created_at: now,
            version: 1,
        }
    }
}

/// An account's zone token: 128 random bits, stable for the account, stored with it.
///
/// Random and stored rather than derived from a server secret by HMAC: there is no secret to
/// provision to every function and rotate, and a token (which is public once in DNS) says
/// nothing about the account id or any other account's token. It is not a credential: it
/// only binds a zone owner's TXT record to one account.
pub struct ZoneToken;

impl ZoneToken {
    /// Prefix of every zone token, so a TXT value says what it is for.
    pub const PREFIX: &'static str = "edgecert-zone-";

    /// A new random token, e.g. `edgecert-zone-3f2a…` (32 hex digits).
    pub fn generate() -> String {
        let mut bytes = [0u8; 16];
        rand::thread_rng().fill_bytes(&mut bytes);
        format!("{}{}", Self::PREFIX, hex::encode(bytes))
    }
}

/// What an account currently holds, as counted by the store's limit counters.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct AccountUsage {
    /// Whitelisted domains.
    pub domains: u32,
    /// Downloadable certificates (managed certificates of domains count as domains).
    pub certificates: u32,
}

/// A freshly generated API key; the plain text is shown once and only its hash is stored.
#[derive(Debug)]
pub struct ApiKey {
    /// The key to give to the client, e.g. `eck_2Zk…`.
    pub plaintext: SecretString,
    /// What the store keeps.
    pub hash: ApiKeyHash,
}

impl ApiKey {
    /// A new random key (256 bits).
    pub fn generate() -> ApiKey {
        let mut bytes = [0u8; 32];
        rand::thread_rng().fill_bytes(&mut bytes);
        let plaintext = format!("eck_{}", hex::encode(bytes));
        let hash = ApiKeyHash::of(&plaintext);
        ApiKey {
            plaintext: SecretString::new(plaintext),
            hash,
        }
    }
}

/// SHA-256 of an API key, hex-encoded. Keys are 256 random bits, so a fast hash is enough:
/// there is nothing to brute-force, and lookup by hash stays a single indexed read.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct ApiKeyHash(String);

impl ApiKeyHash {
    /// Hashes a presented key.
    pub fn of(presented_key: &str) -> ApiKeyHash {
        ApiKeyHash(hex::encode(Sha256::digest(presented_key.as_bytes())))
    }

    /// Rebuilds a hash read from the store.
    pub fn from_stored(hex: String) -> ApiKeyHash {
        ApiKeyHash(hex)
    }

    /// The hex digest.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_unique_and_hash_to_what_is_stored() {
        let first = ApiKey::generate();
        let second = ApiKey::generate();
        assert_ne!(first.plaintext, second.plaintext);
        assert_eq!(ApiKeyHash::of(first.plaintext.expose()), first.hash);
        assert_ne!(first.hash.as_str(), first.plaintext.expose());
        assert!(!format!("{first:?}").contains(first.plaintext.expose()));
    }

    #[test]
    fn zone_tokens_are_random_and_say_what_they_are() {
        let (first, second) = (ZoneToken::generate(), ZoneToken::generate());
        assert_ne!(first, second);
        assert!(
            first.starts_with(ZoneToken::PREFIX) && first.len() == 46,
            "{first}"
        );
    }

    #[test]
    fn accounts_stored_before_zone_tokens_read_back_without_one() {
        let stored = r#"{"id":"acct_0123456789abcdefghijklmnop","name":"Old","plan":"pro",
            "require_ownership_verification":false,"created_at":"2026-01-01T00:00:00Z","version":3}"#;
        let account: Account = serde_json::from_str(stored).unwrap();
        assert_eq!(account.zone_token, None);
    }
}

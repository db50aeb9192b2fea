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
    /// Creation time.
    #[serde(with = "time::serde::rfc3339")]
    pub created_at: OffsetDateTime,
    /// Optimistic-concurrency version, maintained by the store.
    pub version: u64,
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
}

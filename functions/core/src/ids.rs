//! Prefixed, random identifiers (`acct_…`, `dom_…`, `zone_…`, `cert_…`).
//!
//! The prefix tells a reader of a log line or an API response what an id names; the random
//! part (20 characters of lower-case base36, ~103 bits) makes ids unguessable across accounts.

use std::fmt;

use rand::Rng;
use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

const RANDOM_LEN: usize = 20;
const ALPHABET: &[u8] = b"0123456789abcdefghijklmnopqrstuvwxyz";

fn random_suffix() -> String {
    let mut rng = rand::thread_rng();
    (0..RANDOM_LEN)
        .map(|_| ALPHABET[rng.gen_range(0..ALPHABET.len())] as char)
        .collect()
}

macro_rules! prefixed_id {
    ($(#[$doc:meta])* $name:ident, $prefix:literal) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The prefix every id of this kind starts with.
            pub const PREFIX: &'static str = $prefix;

            /// A new random id.
            pub fn generate() -> Self {
                Self(format!("{}{}", $prefix, random_suffix()))
            }

            /// Parses an id received from a client or the store, checking its prefix and form.
            pub fn parse(text: &str) -> Result<Self> {
                let suffix = text.strip_prefix($prefix);
                let well_formed = suffix.is_some_and(|rest| {
                    !rest.is_empty()
                        && rest.len() <= 64
                        && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
                });
                if well_formed {
                    Ok(Self(text.to_owned()))
                } else {
                    Err(Error::BadRequest {
                        code: "invalid_id",
                        message: format!("'{}' is not a valid {} id", truncate(text), $prefix.trim_end_matches('_')),
                    })
                }
            }

            /// The id as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl TryFrom<String> for $name {
            type Error = Error;
            fn try_from(text: String) -> Result<Self> {
                Self::parse(&text)
            }
        }

        impl From<$name> for String {
            fn from(id: $name) -> String {
                id.0
            }
        }
    };
}

fn truncate(text: &str) -> String {
    text.chars().take(40).collect()
}

prefixed_id!(
    /// Identifies an [`Account`](crate::model::Account).
    AccountId, "acct_"
);
prefixed_id!(
    /// Identifies a whitelisted [`Domain`](crate::model::Domain).
    DomainId, "dom_"
);
prefixed_id!(
    /// Identifies a DNS [`Zone`](crate::model::Zone).
    ZoneId, "zone_"
);
prefixed_id!(
    /// Identifies a [`Certificate`](crate::model::Certificate).
    CertificateId, "cert_"
);

impl CertificateId {
    /// The id of a domain's managed certificate. Deriving it from the domain id makes creating
    /// it idempotent: a retry after a crash finds the same certificate instead of a second one.
    pub fn managed_for(domain: &DomainId) -> CertificateId {
        let suffix = domain
            .as_str()
            .strip_prefix(DomainId::PREFIX)
            .unwrap_or(domain.as_str());
        CertificateId(format!("{}{suffix}", CertificateId::PREFIX))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_ids_carry_their_prefix_and_parse_back() {
        let id = DomainId::generate();
        assert!(id.as_str().starts_with("dom_"));
        assert_eq!(DomainId::parse(id.as_str()).unwrap(), id);
        assert_ne!(DomainId::generate(), id);
    }

    #[test]
    fn ids_of_another_kind_or_malformed_are_refused() {
        assert!(DomainId::parse("cert_abc").is_err());
        assert!(DomainId::parse("dom_").is_err());
        assert!(DomainId::parse("dom_a/b").is_err());
        let error = ZoneId::parse("nope").unwrap_err();
        assert_eq!(error.status(), 400);
        assert_eq!(error.code(), "invalid_id");
    }
}

//! List cursors: the sort-key value of the last item of a page, with the list it belongs to,
//! as unpadded base64url JSON, checked on the way back in so a client can only continue the
//! list it was given (another account's cursor or a tampered one is a 400, never a read
//! elsewhere).
//!
//! Every listed order is a sort key that ends with the item's id, so it is unique across the
//! shards a list is merged from: "after this value" means the same in each of them, and the
//! cursor stays one short value however many shards there are. It never holds a partition
//! key: the partitions read come from the request (the caller's account, the feed), not from
//! the client.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use edgecert_core::{Error, Result};

/// Longest cursor accepted; real ones are about 150 characters.
const MAX_CURSOR_LEN: usize = 1024;
/// Digits of the padded time in every listed sort key.
const TIME_DIGITS: usize = 15;

/// Which list a cursor may continue, and what its sort keys look like.
#[derive(Debug, Clone)]
pub(crate) struct CursorScope {
    /// The list, e.g. `domains/acct_…` or `changes/domains`.
    pub(crate) list: String,
    /// What every sort key of the list starts with (`DOM#`), before the padded time.
    pub(crate) sort_prefix: &'static str,
    /// What the id at the end of every sort key starts with (`dom_`).
    pub(crate) id_prefix: &'static str,
}

/// A cursor's content.
#[derive(Debug, Serialize, Deserialize)]
struct Position {
    /// The list.
    #[serde(rename = "l")]
    list: String,
    /// The sort-key value of the last item returned.
    #[serde(rename = "a")]
    after: String,
}

impl CursorScope {
    /// The cursor continuing after the item whose sort key is `after`.
    pub(crate) fn encode(&self, after: &str) -> Result<String> {
        let json = serde_json::to_vec(&Position {
            list: self.list.clone(),
            after: after.to_owned(),
        })
        .map_err(|error| Error::Corrupt(format!("cannot encode a cursor: {error}")))?;
        Ok(URL_SAFE_NO_PAD.encode(json))
    }

    /// The sort-key value a client's cursor continues after, if it belongs to this list.
    pub(crate) fn decode(&self, cursor: &str) -> Result<String> {
        let position: Position = (cursor.len() <= MAX_CURSOR_LEN)
            .then(|| URL_SAFE_NO_PAD.decode(cursor).ok())
            .flatten()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or_else(invalid_cursor)?;
        if position.list != self.list || !self.is_sort_key(&position.after) {
            return Err(invalid_cursor());
        }
        Ok(position.after)
    }

    /// Whether `value` has the shape of this list's sort keys: prefix, padded time, `#`, id.
    fn is_sort_key(&self, value: &str) -> bool {
        let Some(rest) = value.strip_prefix(self.sort_prefix) else {
            return false;
        };
        let Some((time, id)) = rest.split_once('#') else {
            return false;
        };
        time.len() == TIME_DIGITS
            && time.bytes().all(|byte| byte.is_ascii_digit())
            && id.strip_prefix(self.id_prefix).is_some_and(|random| {
                // The id rule of `edgecert_core::ids`.
                (1..=64).contains(&random.len())
                    && random
                        .bytes()
                        .all(|byte| byte.is_ascii_alphanumeric() || byte == b'_' || byte == b'-')
            })
    }
}

fn invalid_cursor() -> Error {
    Error::BadRequest {
        code: "invalid_cursor",
        message: "The cursor is not valid for this list".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scope(list: &str) -> CursorScope {
        CursorScope {
            list: list.to_owned(),
            sort_prefix: "DOM#",
            id_prefix: "dom_",
        }
    }

    const AFTER: &str = "DOM#001767225600000#dom_0123456789abcdefghij";

    #[test]
    fn a_cursor_continues_only_its_own_list() {
        let cursor = scope("domains/acct_a").encode(AFTER).unwrap();
        assert_eq!(scope("domains/acct_a").decode(&cursor).unwrap(), AFTER);
        assert!(cursor.len() < 200, "{cursor}");
        assert!(scope("domains/acct_b").decode(&cursor).is_err());
        assert_eq!(
            scope("domains/acct_a")
                .decode("not base64!")
                .unwrap_err()
                .code(),
            "invalid_cursor"
        );
        let forged = |after: &str| {
            URL_SAFE_NO_PAD.encode(format!(r#"{{"l":"domains/acct_a","a":"{after}"}}"#))
        };
        assert!(scope("domains/acct_a").decode(&forged(AFTER)).is_ok());
        for bad in [
            "ZONE#001767225600000#zone_x",
            "DOM#1767225600000#dom_x",
            "DOM#001767225600000#cert_x",
            "DOM#001767225600000#dom_",
            "DOM#001767225600000#dom_x\\u0000",
            "DOM#001767225600000#dom_x#y",
            "DOM#",
        ] {
            assert!(
                scope("domains/acct_a").decode(&forged(bad)).is_err(),
                "{bad}"
            );
        }
        assert!(
            scope("domains/acct_a")
                .decode(&"A".repeat(MAX_CURSOR_LEN + 1))
                .is_err()
        );
    }
}

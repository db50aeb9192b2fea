//! List cursors: the key of the last item of a page, as unpadded base64url JSON, checked on the
//! way back in so a client can only continue the list it was given (another account's cursor
//! or a tampered one is a 400, never a read elsewhere).

use std::collections::{BTreeMap, HashMap};

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use edgecert_core::{Error, Result};

use super::items::{Item, s};

/// Longest cursor accepted; real ones are a few hundred characters.
const MAX_CURSOR_LEN: usize = 4096;

/// Which list a cursor may continue.
#[derive(Debug, Clone)]
pub(crate) struct CursorScope {
    /// The key attributes of the queried index, all strings (table keys included).
    pub(crate) key_attributes: &'static [&'static str],
    /// Attributes whose value must equal the queried one (the partition).
    pub(crate) fixed: Vec<(&'static str, String)>,
    /// Attributes whose value must start with a prefix (the listed kind).
    pub(crate) prefixed: Vec<(&'static str, &'static str)>,
}

impl CursorScope {
    /// The cursor continuing after `item`, which must hold every key attribute.
    pub(crate) fn encode(&self, item: &Item) -> Result<String> {
        let mut key = BTreeMap::new();
        for name in self.key_attributes {
            match item.get(*name) {
                Some(AttributeValue::S(value)) => {
                    key.insert(*name, value.as_str());
                }
                _ => {
                    return Err(Error::Corrupt(format!(
                        "listed item lacks key attribute {name}"
                    )));
                }
            }
        }
        let json = serde_json::to_vec(&key)
            .map_err(|error| Error::Corrupt(format!("cannot encode a cursor: {error}")))?;
        Ok(URL_SAFE_NO_PAD.encode(json))
    }

    /// The `ExclusiveStartKey` a client's cursor stands for, if it belongs to this list.
    pub(crate) fn decode(&self, cursor: &str) -> Result<Item> {
        let key: HashMap<String, String> = (cursor.len() <= MAX_CURSOR_LEN)
            .then(|| URL_SAFE_NO_PAD.decode(cursor).ok())
            .flatten()
            .and_then(|json| serde_json::from_slice(&json).ok())
            .ok_or_else(invalid_cursor)?;
        let complete = key.len() == self.key_attributes.len()
            && self
                .key_attributes
                .iter()
                .all(|name| key.contains_key(*name));
        let in_scope = self
            .fixed
            .iter()
            .all(|(name, value)| key.get(*name) == Some(value))
            && self
                .prefixed
                .iter()
                .all(|(name, prefix)| key.get(*name).is_some_and(|v| v.starts_with(prefix)));
        if !(complete && in_scope) {
            return Err(invalid_cursor());
        }
        Ok(key
            .into_iter()
            .map(|(name, value)| (name, s(value)))
            .collect())
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
    use super::super::schema::{LSI1SK, PK, SK};
    use super::*;

    fn scope(partition: &str) -> CursorScope {
        CursorScope {
            key_attributes: &[PK, SK, LSI1SK],
            fixed: vec![(PK, partition.to_owned())],
            prefixed: vec![(SK, "DOM#"), (LSI1SK, "DOM#")],
        }
    }

    fn item() -> Item {
        HashMap::from([
            (PK.to_owned(), s("ACCT#acct_a")),
            (SK.to_owned(), s("DOM#dom_1")),
            (LSI1SK.to_owned(), s("DOM#000001767225600000#dom_1")),
            ("data".to_owned(), s("{}")),
        ])
    }

    #[test]
    fn a_cursor_continues_only_its_own_list() {
        let cursor = scope("ACCT#acct_a").encode(&item()).unwrap();
        let key = scope("ACCT#acct_a").decode(&cursor).unwrap();
        assert_eq!(key.len(), 3);
        assert!(!key.contains_key("data"));
        assert!(scope("ACCT#acct_b").decode(&cursor).is_err());
        assert_eq!(
            scope("ACCT#acct_a")
                .decode("not base64!")
                .unwrap_err()
                .code(),
            "invalid_cursor"
        );
        let forged =
            URL_SAFE_NO_PAD.encode(br#"{"PK":"ACCT#acct_a","SK":"ZONE#z","LSI1SK":"DOM#x"}"#);
        assert!(scope("ACCT#acct_a").decode(&forged).is_err());
    }
}

//! Item <-> model conversion: the only place that knows how a model value sits in an item.

use std::collections::HashMap;
use std::str::FromStr;

use aws_sdk_dynamodb::types::AttributeValue;
use serde::Serialize;
use serde::de::DeserializeOwned;

use edgecert_core::{Error, Result};

use super::schema::{DATA, ENTITY, PK, SK, VERSION};

/// A DynamoDB item.
pub(crate) type Item = HashMap<String, AttributeValue>;

/// A string attribute value.
pub(crate) fn s(value: impl Into<String>) -> AttributeValue {
    AttributeValue::S(value.into())
}

/// A number attribute value.
pub(crate) fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// A new item with its keys and kind.
pub(crate) fn keyed(pk: String, sk: impl Into<String>, entity: &str) -> Item {
    HashMap::from([
        (PK.to_owned(), s(pk)),
        (SK.to_owned(), s(sk)),
        (ENTITY.to_owned(), s(entity)),
    ])
}

/// Just the primary key, for `GetItem`, `DeleteItem` and `UpdateItem`.
pub(crate) fn key(pk: String, sk: impl Into<String>) -> Item {
    HashMap::from([(PK.to_owned(), s(pk)), (SK.to_owned(), s(sk))])
}

/// A model item: keys, kind, the model as JSON and its version.
pub(crate) fn model_item<T: Serialize>(
    pk: String,
    sk: impl Into<String>,
    entity: &str,
    model: &T,
    version: u64,
) -> Result<Item> {
    let mut item = keyed(pk, sk, entity);
    item.insert(DATA.to_owned(), s(to_json(model)?));
    item.insert(VERSION.to_owned(), n(version));
    Ok(item)
}

/// Serialises a model for the `data` attribute.
pub(crate) fn to_json<T: Serialize>(model: &T) -> Result<String> {
    serde_json::to_string(model)
        .map_err(|error| Error::Corrupt(format!("cannot serialise a model value: {error}")))
}

/// Decodes the model in an item's `data` attribute.
pub(crate) fn from_data<T: DeserializeOwned>(item: &Item) -> Result<T> {
    let json = string(item, DATA)?;
    serde_json::from_str(json).map_err(|error| {
        Error::Corrupt(format!(
            "item {}: undecodable {DATA}: {error}",
            describe(item)
        ))
    })
}

/// A required string attribute.
pub(crate) fn string<'a>(item: &'a Item, name: &str) -> Result<&'a str> {
    match item.get(name) {
        Some(AttributeValue::S(value)) => Ok(value),
        _ => Err(Error::Corrupt(format!(
            "item {}: missing string attribute {name}",
            describe(item)
        ))),
    }
}

/// A required number attribute.
pub(crate) fn number<T: FromStr>(item: &Item, name: &str) -> Result<T> {
    match item.get(name) {
        Some(AttributeValue::N(value)) => value.parse().map_err(|_| {
            Error::Corrupt(format!(
                "item {}: number attribute {name} out of range",
                describe(item)
            ))
        }),
        _ => Err(Error::Corrupt(format!(
            "item {}: missing number attribute {name}",
            describe(item)
        ))),
    }
}

/// An item's keys, for error messages (never its data).
pub(crate) fn describe(item: &Item) -> String {
    let part = |name| match item.get(name) {
        Some(AttributeValue::S(value)) => value.as_str(),
        _ => "?",
    };
    format!("{}/{}", part(PK), part(SK))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn corrupt_items_are_reported_by_key_only() {
        let mut item = keyed("ACCT#acct_x".to_owned(), "ACCOUNT", "account");
        item.insert(DATA.to_owned(), s("{\"secret\": 1"));
        let error = from_data::<serde_json::Value>(&item).unwrap_err();
        assert!(matches!(error, Error::Corrupt(_)));
        assert!(error.to_string().contains("ACCT#acct_x/ACCOUNT"));
        assert!(number::<u64>(&item, VERSION).is_err());
    }
}

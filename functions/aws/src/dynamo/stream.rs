//! The table's stream, read into the model: a record's image, in DynamoDB's JSON attribute form
//! (`{"status": {"S": "pending"}, "version": {"N": "3"}, ...}`, as Lambda delivers stream
//! records), decoded with the store's own item conversion.

use std::collections::HashMap;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use edgecert_core::model::Certificate;
use edgecert_core::{Error, Result};
use serde_json::Value;

use super::items::{self, Item};
use super::schema::{ENTITY, entity};

/// The certificate a stream image holds; `None` for items of other kinds. An image of a
/// certificate that cannot be decoded is [`Error::Corrupt`] (a bug or a manual edit).
pub fn certificate_in_image(image: &Value) -> Result<Option<Certificate>> {
    let item = item_from_image(image)?;
    match item.get(ENTITY) {
        Some(AttributeValue::S(kind)) if kind == entity::CERTIFICATE => {
            items::from_data(&item).map(Some)
        }
        _ => Ok(None),
    }
}

/// An item from its image.
fn item_from_image(image: &Value) -> Result<Item> {
    let attributes = image
        .as_object()
        .ok_or_else(|| Error::Corrupt("a stream image is not an object".to_owned()))?;
    attributes
        .iter()
        .map(|(name, value)| {
            attribute(value)
                .map(|value| (name.clone(), value))
                .ok_or_else(|| {
                    Error::Corrupt(format!("stream image attribute {name} is not readable"))
                })
        })
        .collect::<Result<HashMap<_, _>>>()
}

/// One attribute value from its JSON form (`{"S": ...}`, `{"M": {...}}`, ...).
fn attribute(value: &Value) -> Option<AttributeValue> {
    let (kind, inner) = value.as_object()?.iter().next()?;
    let strings = |inner: &Value| -> Option<Vec<String>> {
        inner
            .as_array()?
            .iter()
            .map(|item| item.as_str().map(str::to_owned))
            .collect()
    };
    Some(match kind.as_str() {
        "S" => AttributeValue::S(inner.as_str()?.to_owned()),
        "N" => AttributeValue::N(number_text(inner)?),
        "BOOL" => AttributeValue::Bool(inner.as_bool()?),
        "NULL" => AttributeValue::Null(true),
        "B" => AttributeValue::B(blob(inner)?),
        "SS" => AttributeValue::Ss(strings(inner)?),
        "NS" => AttributeValue::Ns(
            inner
                .as_array()?
                .iter()
                .map(number_text)
                .collect::<Option<_>>()?,
        ),
        "BS" => AttributeValue::Bs(inner.as_array()?.iter().map(blob).collect::<Option<_>>()?),
        "L" => AttributeValue::L(
            inner
                .as_array()?
                .iter()
                .map(attribute)
                .collect::<Option<_>>()?,
        ),
        "M" => AttributeValue::M(
            inner
                .as_object()?
                .iter()
                .map(|(name, value)| Some((name.clone(), attribute(value)?)))
                .collect::<Option<_>>()?,
        ),
        _ => return None,
    })
}

/// A number as DynamoDB writes it: text (numbers written as JSON numbers are accepted too).
fn number_text(value: &Value) -> Option<String> {
    match value {
        Value::String(text) => Some(text.clone()),
        Value::Number(number) => Some(number.to_string()),
        _ => None,
    }
}

/// Bytes as base64 text, or as a list of byte values.
fn blob(value: &Value) -> Option<Blob> {
    match value {
        Value::String(text) => STANDARD.decode(text).ok().map(Blob::new),
        Value::Array(bytes) => bytes
            .iter()
            .map(|byte| byte.as_u64().and_then(|byte| u8::try_from(byte).ok()))
            .collect::<Option<Vec<u8>>>()
            .map(Blob::new),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    /// The stream batch Lambda delivers to the issuer (events/README.md).
    const STREAM: &str = include_str!("../../../../events/issuer-stream.json");

    #[test]
    fn a_certificate_image_decodes_into_the_model() {
        let event: Value = serde_json::from_str(STREAM).unwrap();
        let images: Vec<&Value> = event["Records"]
            .as_array()
            .unwrap()
            .iter()
            .map(|record| &record["dynamodb"]["NewImage"])
            .collect();
        let inserted = certificate_in_image(images[0]).unwrap().unwrap();
        assert_eq!(inserted.id.as_str(), "cert_placeholder000000000");
        assert_eq!(inserted.account_id.as_str(), "acct_placeholder000000000");
        assert_eq!(
            inserted.status,
            edgecert_core::model::CertificateStatus::Pending
        );
        // The account's record holds no certificate; the REMOVE record has no new image.
        assert_eq!(certificate_in_image(images[1]).unwrap(), None);
        let renewed = certificate_in_image(images[2]).unwrap().unwrap();
        assert_eq!(
            renewed.status,
            edgecert_core::model::CertificateStatus::Validating
        );
    }

    #[test]
    fn images_of_other_items_hold_no_certificate() {
        let domain = json!({
            "PK": {"S": "ACCT#acct_1"}, "SK": {"S": "DOM#dom_1"}, "entity": {"S": "domain"},
            "data": {"S": "{}"}, "version": {"N": "1"}, "flags": {"SS": ["a"]},
            "nested": {"M": {"list": {"L": [{"BOOL": true}, {"NULL": true}, {"B": "AAE="}]}}}
        });
        assert_eq!(certificate_in_image(&domain).unwrap(), None);
    }

    #[test]
    fn an_undecodable_certificate_is_corrupt_and_names_its_key_only() {
        let broken = json!({
            "PK": {"S": "ACCT#acct_1"}, "SK": {"S": "CERT#cert_1"},
            "entity": {"S": "certificate"}, "data": {"S": "{\"private\": 1"}
        });
        let error = certificate_in_image(&broken).unwrap_err();
        assert!(matches!(error, Error::Corrupt(_)), "{error}");
        assert!(
            error.to_string().contains("ACCT#acct_1/CERT#cert_1"),
            "{error}"
        );
        assert!(!error.to_string().contains("private"), "{error}");
        let unreadable = json!({"entity": {"X": 1}});
        assert!(matches!(
            certificate_in_image(&unreadable),
            Err(Error::Corrupt(_))
        ));
    }
}

//! Building the writes of a `TransactWriteItems`.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::{AttributeValue, Delete, Put, TransactWriteItem, Update};
use edgecert_core::Result;

use super::items::Item;
use crate::error::AwsError;

/// Expression attribute names of one write.
pub(crate) type Names = HashMap<String, String>;
/// Expression attribute values of one write.
pub(crate) type Values = HashMap<String, AttributeValue>;

/// Puts an item that must not exist yet.
pub(crate) fn put_new(table: &str, item: Item) -> Result<TransactWriteItem> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .condition_expression("attribute_not_exists(PK)")
        .build()
        .map_err(AwsError::build("a transactional put"))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// Puts an item, replacing any item with the same key.
pub(crate) fn put(table: &str, item: Item) -> Result<TransactWriteItem> {
    let put = Put::builder()
        .table_name(table)
        .set_item(Some(item))
        .build()
        .map_err(AwsError::build("a transactional put"))?;
    Ok(TransactWriteItem::builder().put(put).build())
}

/// Updates an item under a condition.
pub(crate) fn update(
    table: &str,
    key: Item,
    expression: &str,
    condition: Option<&str>,
    names: Names,
    values: Values,
) -> Result<TransactWriteItem> {
    let update = Update::builder()
        .table_name(table)
        .set_key(Some(key))
        .update_expression(expression)
        .set_condition_expression(condition.map(str::to_owned))
        .set_expression_attribute_names(Some(names))
        .set_expression_attribute_values((!values.is_empty()).then_some(values))
        .build()
        .map_err(AwsError::build("a transactional update"))?;
    Ok(TransactWriteItem::builder().update(update).build())
}

/// Deletes an item, under a condition when one is given.
pub(crate) fn delete(
    table: &str,
    key: Item,
    condition: Option<&str>,
    names: Names,
    values: Values,
) -> Result<TransactWriteItem> {
    let delete = Delete::builder()
        .table_name(table)
        .set_key(Some(key))
        .set_condition_expression(condition.map(str::to_owned))
        .set_expression_attribute_names((!names.is_empty()).then_some(names))
        .set_expression_attribute_values((!values.is_empty()).then_some(values))
        .build()
        .map_err(AwsError::build("a transactional delete"))?;
    Ok(TransactWriteItem::builder().delete(delete).build())
}

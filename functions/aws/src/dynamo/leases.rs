//! Leases: one item per name, taken and renewed with conditional updates judged by the
//! caller's clock (`expires_at` is stored in unix nanoseconds so the comparison is exact).

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use aws_sdk_dynamodb::operation::update_item::UpdateItemError;
use aws_sdk_dynamodb::types::ReturnValue;
use edgecert_core::model::Lease;
use edgecert_core::ports::LeaseStore;
use edgecert_core::{Error, Result};
use time::{Duration, OffsetDateTime};

use super::DynamoStore;
use super::items::{self, n, s};
use super::keys::{LEASE_SK, lease_pk, ttl_seconds};
use super::schema::{ENTITY, TTL, VERSION, entity};
use crate::error::AwsError;

/// The holder's token.
const OWNER: &str = "owner";
/// Expiry, unix nanoseconds.
const EXPIRES_AT: &str = "expires_at";
/// The lease name in clear (the key holds a hash of long names).
const NAME: &str = "name";
/// How long after its expiry DynamoDB may delete a lease item.
const TTL_GRACE: Duration = Duration::days(1);

fn nanos(at: OffsetDateTime) -> i128 {
    at.unix_timestamp_nanos()
}

fn held(name: &str) -> Error {
    Error::LeaseHeld {
        name: name.to_owned(),
    }
}

#[async_trait]
impl LeaseStore for DynamoStore {
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Lease> {
        let expires_at = now + ttl;
        let _turn = self.write_turn().await;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key(lease_pk(name), LEASE_SK)))
            .update_expression(
                "SET #owner = :owner, #expires = :expires, #ttl = :ttl, #name = :name, \
                 #entity = :entity ADD #version :one",
            )
            .condition_expression("attribute_not_exists(PK) OR #expires <= :now")
            .set_expression_attribute_names(Some(HashMap::from([
                ("#owner".to_owned(), OWNER.to_owned()),
                ("#expires".to_owned(), EXPIRES_AT.to_owned()),
                ("#ttl".to_owned(), TTL.to_owned()),
                ("#name".to_owned(), NAME.to_owned()),
                ("#entity".to_owned(), ENTITY.to_owned()),
                ("#version".to_owned(), VERSION.to_owned()),
            ])))
            .set_expression_attribute_values(Some(HashMap::from([
                (":owner".to_owned(), s(owner)),
                (":expires".to_owned(), n(nanos(expires_at))),
                (":ttl".to_owned(), n(ttl_seconds(expires_at + TTL_GRACE))),
                (":name".to_owned(), s(name)),
                (":entity".to_owned(), s(entity::LEASE)),
                (":one".to_owned(), n(1)),
                (":now".to_owned(), n(nanos(now))),
            ])))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Lease {
                name: name.to_owned(),
                owner: owner.to_owned(),
                expires_at,
                version: stored_version(output.attributes)?,
            }),
            Err(error) => match error.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Err(held(name)),
                _ => Err(AwsError::dynamodb("UpdateItem", error).into()),
            },
        }
    }

    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> Result<Lease> {
        let expires_at = now + ttl;
        let _turn = self.write_turn().await;
        let result = self
            .client
            .update_item()
            .table_name(&self.table)
            .set_key(Some(items::key(lease_pk(&lease.name), LEASE_SK)))
            .update_expression("SET #expires = :expires, #ttl = :ttl ADD #version :one")
            .condition_expression("#owner = :owner AND #version = :version")
            .set_expression_attribute_names(Some(HashMap::from([
                ("#owner".to_owned(), OWNER.to_owned()),
                ("#expires".to_owned(), EXPIRES_AT.to_owned()),
                ("#ttl".to_owned(), TTL.to_owned()),
                ("#version".to_owned(), VERSION.to_owned()),
            ])))
            .set_expression_attribute_values(Some(HashMap::from([
                (":owner".to_owned(), s(lease.owner.as_str())),
                (":version".to_owned(), n(lease.version)),
                (":expires".to_owned(), n(nanos(expires_at))),
                (":ttl".to_owned(), n(ttl_seconds(expires_at + TTL_GRACE))),
                (":one".to_owned(), n(1)),
            ])))
            .return_values(ReturnValue::AllNew)
            .send()
            .await;
        match result {
            Ok(output) => Ok(Lease {
                expires_at,
                version: stored_version(output.attributes)?,
                ..lease.clone()
            }),
            Err(error) => match error.as_service_error() {
                Some(UpdateItemError::ConditionalCheckFailedException(_)) => Err(held(&lease.name)),
                _ => Err(AwsError::dynamodb("UpdateItem", error).into()),
            },
        }
    }

    async fn release_lease(&self, lease: &Lease) -> Result<()> {
        let _turn = self.write_turn().await;
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(items::key(lease_pk(&lease.name), LEASE_SK)))
            .condition_expression("#owner = :owner")
            .expression_attribute_names("#owner", OWNER)
            .expression_attribute_values(":owner", s(lease.owner.as_str()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match error.as_service_error() {
                // Taken over or gone: nothing of ours to release.
                Some(DeleteItemError::ConditionalCheckFailedException(_)) => Ok(()),
                _ => Err(AwsError::dynamodb("DeleteItem", error).into()),
            },
        }
    }
}

fn stored_version(attributes: Option<items::Item>) -> Result<u64> {
    let attributes = attributes
        .ok_or_else(|| Error::Corrupt("lease update returned no attributes".to_owned()))?;
    items::number(&attributes, VERSION)
}

//! Creating the table, for tests and the local stack (on AWS, `template.yaml` declares the same
//! table).

use std::time::Duration;

use aws_sdk_dynamodb::Client;
use aws_sdk_dynamodb::operation::create_table::CreateTableError;
use aws_sdk_dynamodb::types::{
    AttributeDefinition, BillingMode, GlobalSecondaryIndex, IndexStatus, KeySchemaElement, KeyType,
    LocalSecondaryIndex, Projection, ProjectionType, ScalarAttributeType, StreamSpecification,
    StreamViewType, TableStatus, TimeToLiveSpecification, TimeToLiveStatus,
};

use super::layout::write_marker;
use super::schema::{
    BY_CREATED, BY_DUE, BY_HOSTNAME, BY_UPDATED, GSI1PK, GSI2PK, GSI2SK, GSI3PK, GSI3SK, LSI1SK,
    PK, SK, TTL,
};
use crate::error::{AwsError, Result};

/// How long to wait for a new table to become `ACTIVE`.
const ACTIVE_TIMEOUT: Duration = Duration::from_secs(120);
/// Pause between two `DescribeTable` calls while waiting.
const POLL_INTERVAL: Duration = Duration::from_millis(250);

/// Creates the EdgeCert table `name` with the layout of [`schema`](super::schema) — on-demand
/// billing, the local index `by_created`, the global indexes `by_hostname`, `by_due` and
/// `by_updated` (all projecting every attribute), a `NEW_AND_OLD_IMAGES` stream and TTL on
/// `ttl` — waits until it is `ACTIVE`, and records in its `layout` item that it holds only the
/// sharded layout. Calling it again on an existing table only waits (idempotent); an existing
/// table of an earlier build is migrated by
/// [`DynamoStore::migrate_layout`](super::DynamoStore::migrate_layout), not here.
pub async fn create_table(client: &Client, name: &str) -> Result<()> {
    let result = client
        .create_table()
        .table_name(name)
        .billing_mode(BillingMode::PayPerRequest)
        .set_attribute_definitions(Some(
            [PK, SK, LSI1SK, GSI1PK, GSI2PK, GSI2SK, GSI3PK, GSI3SK]
                .into_iter()
                .map(string_attribute)
                .collect::<Result<_>>()?,
        ))
        .set_key_schema(Some(key_schema(PK, Some(SK))?))
        .local_secondary_indexes(
            LocalSecondaryIndex::builder()
                .index_name(BY_CREATED)
                .set_key_schema(Some(key_schema(PK, Some(LSI1SK))?))
                .projection(project_all())
                .build()
                .map_err(AwsError::build("the by_created index"))?,
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(BY_HOSTNAME)
                .set_key_schema(Some(key_schema(GSI1PK, None)?))
                .projection(project_all())
                .build()
                .map_err(AwsError::build("the by_hostname index"))?,
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(BY_DUE)
                .set_key_schema(Some(key_schema(GSI2PK, Some(GSI2SK))?))
                .projection(project_all())
                .build()
                .map_err(AwsError::build("the by_due index"))?,
        )
        .global_secondary_indexes(
            GlobalSecondaryIndex::builder()
                .index_name(BY_UPDATED)
                .set_key_schema(Some(key_schema(GSI3PK, Some(GSI3SK))?))
                .projection(project_all())
                .build()
                .map_err(AwsError::build("the by_updated index"))?,
        )
        .stream_specification(
            StreamSpecification::builder()
                .stream_enabled(true)
                .stream_view_type(StreamViewType::NewAndOldImages)
                .build()
                .map_err(AwsError::build("the stream specification"))?,
        )
        .send()
        .await;
    let created = match result {
        Ok(_) => {
            tracing::info!(table = name, "table created");
            true
        }
        Err(error) => match error.as_service_error() {
            Some(CreateTableError::ResourceInUseException(_)) => {
                tracing::debug!(table = name, "table exists");
                false
            }
            _ => return Err(AwsError::dynamodb("CreateTable", error)),
        },
    };
    wait_until_active(client, name).await?;
    enable_ttl(client, name).await?;
    if created {
        // Nothing in a new table has the earlier layout.
        write_marker(client, name).await?;
    }
    Ok(())
}

async fn wait_until_active(client: &Client, name: &str) -> Result<()> {
    let deadline = tokio::time::Instant::now() + ACTIVE_TIMEOUT;
    loop {
        let output = client
            .describe_table()
            .table_name(name)
            .send()
            .await
            .map_err(|error| AwsError::dynamodb("DescribeTable", error))?;
        let active = output.table().is_some_and(|table| {
            table.table_status() == Some(&TableStatus::Active)
                && table
                    .global_secondary_indexes()
                    .iter()
                    .all(|index| index.index_status() == Some(&IndexStatus::Active))
        });
        if active {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(AwsError::TableNotActive {
                table: name.to_owned(),
                waited_secs: ACTIVE_TIMEOUT.as_secs(),
            });
        }
        tokio::time::sleep(POLL_INTERVAL).await;
    }
}

async fn enable_ttl(client: &Client, name: &str) -> Result<()> {
    let current = client
        .describe_time_to_live()
        .table_name(name)
        .send()
        .await
        .map_err(|error| AwsError::dynamodb("DescribeTimeToLive", error))?;
    let status = current
        .time_to_live_description()
        .and_then(|description| description.time_to_live_status());
    if matches!(
        status,
        Some(TimeToLiveStatus::Enabled | TimeToLiveStatus::Enabling)
    ) {
        return Ok(());
    }
    client
        .update_time_to_live()
        .table_name(name)
        .time_to_live_specification(
            TimeToLiveSpecification::builder()
                .enabled(true)
                .attribute_name(TTL)
                .build()
                .map_err(AwsError::build("the TTL specification"))?,
        )
        .send()
        .await
        .map_err(|error| AwsError::dynamodb("UpdateTimeToLive", error))?;
    Ok(())
}

fn string_attribute(name: &str) -> Result<AttributeDefinition> {
    AttributeDefinition::builder()
        .attribute_name(name)
        .attribute_type(ScalarAttributeType::S)
        .build()
        .map_err(AwsError::build("an attribute definition"))
}

fn key_schema(partition: &str, sort: Option<&str>) -> Result<Vec<KeySchemaElement>> {
    let element = |name: &str, key_type| {
        KeySchemaElement::builder()
            .attribute_name(name)
            .key_type(key_type)
            .build()
            .map_err(AwsError::build("a key schema"))
    };
    let mut schema = vec![element(partition, KeyType::Hash)?];
    if let Some(sort) = sort {
        schema.push(element(sort, KeyType::Range)?);
    }
    Ok(schema)
}

fn project_all() -> Projection {
    Projection::builder()
        .projection_type(ProjectionType::All)
        .build()
}

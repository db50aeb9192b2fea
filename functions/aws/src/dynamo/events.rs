//! Certificate events: one partition per certificate, sorted by time, expired by TTL.

use std::sync::atomic::{AtomicU64, Ordering};

use async_trait::async_trait;
use edgecert_core::model::CertificateEvent;
use edgecert_core::ports::EventLog;
use edgecert_core::{CertificateId, Result};
use rand::Rng;

use super::DynamoStore;
use super::items::{self, model_item, n, s};
use super::keys::{EVENT_PREFIX, event_sk, events_pk, ttl_seconds};
use super::schema::{PK, SK, TTL, entity};
use crate::error::AwsError;

/// Orders events appended by this process at the same instant.
static SEQUENCE: AtomicU64 = AtomicU64::new(0);

/// Most events one `list_events` returns.
const MAX_EVENTS: u32 = 1000;

#[async_trait]
impl EventLog for DynamoStore {
    async fn append_event(&self, event: &CertificateEvent) -> Result<()> {
        let sequence = SEQUENCE.fetch_add(1, Ordering::Relaxed);
        let sort_key = event_sk(event.at, sequence, rand::thread_rng().r#gen());
        let mut item = model_item(
            events_pk(&event.certificate_id),
            sort_key,
            entity::EVENT,
            event,
            0,
        )?;
        item.insert(
            TTL.to_owned(),
            n(ttl_seconds(event.at + CertificateEvent::RETENTION)),
        );
        let _turn = self.write_turn().await;
        self.client
            .put_item()
            .table_name(&self.table)
            .set_item(Some(item))
            .send()
            .await
            .map_err(|error| AwsError::dynamodb("PutItem", error))?;
        Ok(())
    }

    async fn list_events(
        &self,
        certificate: &CertificateId,
        limit: u32,
    ) -> Result<Vec<CertificateEvent>> {
        if limit == 0 {
            return Ok(Vec::new());
        }
        let output = self
            .client
            .query()
            .table_name(&self.table)
            .key_condition_expression("#pk = :pk AND begins_with(#sk, :prefix)")
            .expression_attribute_names("#pk", PK)
            .expression_attribute_names("#sk", SK)
            .expression_attribute_values(":pk", s(events_pk(certificate)))
            .expression_attribute_values(":prefix", s(EVENT_PREFIX))
            .scan_index_forward(false)
            .consistent_read(true)
            .limit(i32::try_from(limit.min(MAX_EVENTS)).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|error| AwsError::dynamodb("Query", error))?;
        output.items().iter().map(items::from_data).collect()
    }
}

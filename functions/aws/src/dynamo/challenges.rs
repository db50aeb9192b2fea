//! HTTP-01 answers: one item per token, expired by TTL and, because TTL deletion lags (and
//! emulators have none), checked against the caller's clock on every read.

use async_trait::async_trait;
use edgecert_core::model::Http01Challenge;
use edgecert_core::ports::ChallengeStore;
use edgecert_core::{Error, Result};
use time::OffsetDateTime;

use super::DynamoStore;
use super::items::{self, model_item, n};
use super::keys::{CHALLENGE_SK, challenge_pk, ttl_seconds};
use super::schema::{TTL, entity};
use crate::error::AwsError;

/// Longest token looked up. ACME tokens are 43 characters; anything much longer reaching the
/// edge's port 80 is noise and is answered without a read.
const MAX_TOKEN_LEN: usize = 256;

fn plausible(token: &str) -> bool {
    !token.is_empty() && token.len() <= MAX_TOKEN_LEN
}

#[async_trait]
impl ChallengeStore for DynamoStore {
    async fn put_http01(&self, challenge: &Http01Challenge) -> Result<()> {
        if !plausible(&challenge.token) {
            return Err(Error::BadRequest {
                code: "invalid_token",
                message: "The HTTP-01 token is empty or too long".to_owned(),
            });
        }
        let mut item = model_item(
            challenge_pk(&challenge.token),
            CHALLENGE_SK,
            entity::HTTP01,
            challenge,
            0,
        )?;
        item.insert(TTL.to_owned(), n(ttl_seconds(challenge.expires_at)));
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

    async fn get_http01(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> Result<Option<Http01Challenge>> {
        if !plausible(token) {
            return Ok(None);
        }
        let Some(item) = self
            .get_item(items::key(challenge_pk(token), CHALLENGE_SK))
            .await?
        else {
            return Ok(None);
        };
        let challenge: Http01Challenge = items::from_data(&item)?;
        // Stale from its expiry instant on, like a lease.
        Ok((challenge.expires_at > now).then_some(challenge))
    }

    async fn delete_http01(&self, token: &str) -> Result<()> {
        if !plausible(token) {
            return Ok(());
        }
        let _turn = self.write_turn().await;
        self.client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(items::key(challenge_pk(token), CHALLENGE_SK)))
            .send()
            .await
            .map_err(|error| AwsError::dynamodb("DeleteItem", error))?;
        Ok(())
    }
}

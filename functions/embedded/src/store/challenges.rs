//! HTTP-01 answers, read by every terminator.

use async_trait::async_trait;
use edgecert_core::model::Http01Challenge;
use edgecert_core::ports::ChallengeStore;
use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use super::{SqliteStore, decode, encode, instant_key};

const TABLE: &str = "http01_challenges";

#[async_trait]
impl ChallengeStore for SqliteStore {
    async fn put_http01(&self, challenge: &Http01Challenge) -> edgecert_core::Result<()> {
        let challenge = challenge.clone();
        self.write(move |transaction| {
            transaction.execute(
                "INSERT INTO http01_challenges (token, expires_at, data) VALUES (?1, ?2, ?3)
                 ON CONFLICT (token) DO UPDATE
                 SET expires_at = excluded.expires_at, data = excluded.data",
                params![
                    challenge.token,
                    instant_key(challenge.expires_at),
                    encode(TABLE, &challenge)?
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_http01(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> edgecert_core::Result<Option<Http01Challenge>> {
        let token = token.to_owned();
        self.read(move |connection| {
            // The answer is stale only *after* `expires_at` (see `Http01Challenge`).
            let data: Option<String> = connection
                .query_row(
                    "SELECT data FROM http01_challenges WHERE token = ?1 AND expires_at >= ?2",
                    params![token, instant_key(now)],
                    |row| row.get(0),
                )
                .optional()?;
            data.map(|data| decode(TABLE, &data)).transpose()
        })
        .await
    }

    async fn delete_http01(&self, token: &str) -> edgecert_core::Result<()> {
        let token = token.to_owned();
        self.write(move |transaction| {
            transaction.execute(
                "DELETE FROM http01_challenges WHERE token = ?1",
                params![token],
            )?;
            Ok(())
        })
        .await
    }
}

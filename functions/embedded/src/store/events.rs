//! Certificate events (the logs), pruned as they are appended.

use async_trait::async_trait;
use edgecert_core::CertificateId;
use edgecert_core::model::CertificateEvent;
use edgecert_core::ports::EventLog;
use rusqlite::params;

use super::{SqliteStore, decode, encode, instant_key};

const TABLE: &str = "certificate_events";

#[async_trait]
impl EventLog for SqliteStore {
    async fn append_event(&self, event: &CertificateEvent) -> edgecert_core::Result<()> {
        let event = event.clone();
        self.write(move |transaction| {
            let certificate = event.certificate_id.as_str();
            transaction.execute(
                "INSERT INTO certificate_events (certificate_id, at, data) VALUES (?1, ?2, ?3)",
                params![certificate, instant_key(event.at), encode(TABLE, &event)?],
            )?;
            // Pruning per certificate, relative to the new event's own time, is one index range
            // and never drops another certificate's events because of a clock it does not share.
            transaction.execute(
                "DELETE FROM certificate_events WHERE certificate_id = ?1 AND at < ?2",
                params![
                    certificate,
                    instant_key(event.at - CertificateEvent::RETENTION)
                ],
            )?;
            Ok(())
        })
        .await
    }

    async fn list_events(
        &self,
        certificate: &CertificateId,
        limit: u32,
    ) -> edgecert_core::Result<Vec<CertificateEvent>> {
        let certificate = certificate.clone();
        self.read(move |connection| {
            let mut statement = connection.prepare_cached(
                "SELECT data FROM certificate_events WHERE certificate_id = ?1
                 ORDER BY at DESC, seq DESC LIMIT ?2",
            )?;
            let mut rows = statement.query(params![certificate.as_str(), i64::from(limit)])?;
            let mut events = Vec::new();
            while let Some(row) = rows.next()? {
                let data: String = row.get(0)?;
                events.push(decode(TABLE, &data)?);
            }
            Ok(events)
        })
        .await
    }
}

//! Certificates: per-account unique names and the plan limit for downloadable ones, the
//! due index the renewer reads, and the change feed the edge reads.

use async_trait::async_trait;
use edgecert_core::model::{Certificate, CertificateKind};
use edgecert_core::ports::{CertificateStore, Page, PageRequest};
use edgecert_core::{AccountId, CertificateId, ItemKind};
use rusqlite::{Connection, OptionalExtension, params};
use time::OffsetDateTime;

use super::{
    Counter, SqliteStore, adjust_usage, changes_page, decode, empty_page, encode, expect_version,
    finish_page, instant_key, invalid_cursor, is_unique_violation, list_page, next_version,
    page_limit, usage_count, version_column,
};
use crate::error::{EmbeddedError, Result};

const TABLE: &str = "certificates";

/// The name the per-account uniqueness and the plan limit apply to: only downloadable
/// certificates have one.
fn downloadable_name(certificate: &Certificate) -> Option<&str> {
    match certificate.kind {
        CertificateKind::Downloadable { .. } => Some(certificate.domain.as_str()),
        CertificateKind::Managed { .. } => None,
    }
}

fn due_key(certificate: &Certificate) -> Option<i64> {
    certificate.due_at().map(instant_key)
}

/// Position in the due index, ordered by `(due_at, id)`.
struct DueCursor {
    due_at: i64,
    id: String,
}

impl DueCursor {
    fn parse(cursor: Option<&str>) -> Result<DueCursor> {
        let Some(cursor) = cursor else {
            return Ok(DueCursor {
                due_at: i64::MIN,
                id: String::new(),
            });
        };
        let (due_at, id) = cursor
            .strip_prefix("d.")
            .and_then(|rest| rest.split_once('.'))
            .ok_or_else(invalid_cursor)?;
        Ok(DueCursor {
            due_at: due_at.parse().map_err(|_| invalid_cursor())?,
            id: id.to_owned(),
        })
    }

    fn encode(&self) -> String {
        format!("d.{}.{}", self.due_at, self.id)
    }
}

fn due_page(
    connection: &Connection,
    now: OffsetDateTime,
    page: &PageRequest,
) -> Result<Page<Certificate>> {
    let after = DueCursor::parse(page.cursor.as_deref())?;
    let Some(limit) = page_limit(page) else {
        return Ok(empty_page());
    };
    let mut statement = connection.prepare_cached(
        "SELECT due_at, id, data FROM certificates
         WHERE due_at IS NOT NULL AND due_at <= ?1 AND (due_at, id) > (?2, ?3)
         ORDER BY due_at, id LIMIT ?4",
    )?;
    let mut rows = statement.query(params![instant_key(now), after.due_at, after.id, limit])?;
    let mut items = Vec::new();
    let mut last = None;
    while let Some(row) = rows.next()? {
        last = Some(DueCursor {
            due_at: row.get(0)?,
            id: row.get(1)?,
        });
        let data: String = row.get(2)?;
        items.push(decode(TABLE, &data)?);
    }
    Ok(finish_page(
        items,
        limit,
        last.map(|cursor| cursor.encode()),
    ))
}

#[async_trait]
impl CertificateStore for SqliteStore {
    async fn create_certificate(
        &self,
        certificate: &Certificate,
        max_certificates: u32,
    ) -> edgecert_core::Result<()> {
        let certificate = certificate.clone();
        self.write(move |transaction| {
            let account = certificate.account_id.as_str();
            let name = downloadable_name(&certificate);
            if let Some(name) = name {
                let exists = transaction
                    .query_row(
                        "SELECT 1 FROM certificates WHERE account_id = ?1 AND downloadable_name = ?2",
                        params![account, name],
                        |_| Ok(()),
                    )
                    .optional()?
                    .is_some();
                if exists {
                    return Err(edgecert_core::Error::CertificateExists.into());
                }
                let held = usage_count(transaction, account, Counter::Certificates)?;
                if held >= i64::from(max_certificates) {
                    return Err(edgecert_core::Error::CertificateLimitReached.into());
                }
            }
            transaction.execute(
                "INSERT INTO certificates
                     (id, account_id, downloadable_name, created_at, updated_at, due_at,
                      version, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
                params![
                    certificate.id.as_str(),
                    account,
                    name,
                    instant_key(certificate.created_at),
                    instant_key(certificate.updated_at),
                    due_key(&certificate),
                    version_column(certificate.version)?,
                    encode(TABLE, &certificate)?
                ],
            )
            .map_err(|error| {
                // The name was checked above: only the id can collide (a managed certificate
                // created twice for its domain).
                if is_unique_violation(&error) {
                    EmbeddedError::Refused(edgecert_core::Error::CertificateExists)
                } else {
                    error.into()
                }
            })?;
            if name.is_some() {
                adjust_usage(transaction, account, Counter::Certificates, 1)?;
            }
            Ok(())
        })
        .await
    }

    async fn get_certificate(
        &self,
        account: &AccountId,
        id: &CertificateId,
    ) -> edgecert_core::Result<Option<Certificate>> {
        let (account, id) = (account.clone(), id.clone());
        self.read(move |connection| {
            let data: Option<String> = connection
                .query_row(
                    "SELECT data FROM certificates WHERE id = ?1 AND account_id = ?2",
                    params![id.as_str(), account.as_str()],
                    |row| row.get(0),
                )
                .optional()?;
            data.map(|data| decode(TABLE, &data)).transpose()
        })
        .await
    }

    async fn list_certificates(
        &self,
        account: &AccountId,
        page: PageRequest,
    ) -> edgecert_core::Result<Page<Certificate>> {
        let account = account.clone();
        self.read(move |connection| list_page(connection, TABLE, account.as_str(), &page))
            .await
    }

    async fn update_certificate(
        &self,
        certificate: &Certificate,
    ) -> edgecert_core::Result<Certificate> {
        let mut certificate = certificate.clone();
        self.write(move |transaction| {
            let account = certificate.account_id.as_str();
            expect_version(
                transaction,
                TABLE,
                ItemKind::Certificate,
                certificate.id.as_str(),
                Some(account),
                certificate.version,
            )?;
            let counted_before: bool = transaction.query_row(
                "SELECT downloadable_name IS NOT NULL FROM certificates WHERE id = ?1",
                params![certificate.id.as_str()],
                |row| row.get(0),
            )?;
            certificate.version = next_version(certificate.version)?;
            let name = downloadable_name(&certificate);
            transaction
                .execute(
                    "UPDATE certificates
                     SET downloadable_name = ?2, due_at = ?3, version = ?4, data = ?5,
                         updated_at = ?6
                     WHERE id = ?1",
                    params![
                        certificate.id.as_str(),
                        name,
                        due_key(&certificate),
                        version_column(certificate.version)?,
                        encode(TABLE, &certificate)?,
                        instant_key(certificate.updated_at)
                    ],
                )
                .map_err(|error| {
                    // Only a changed primary name can collide; another certificate holds it.
                    if is_unique_violation(&error) {
                        EmbeddedError::Refused(edgecert_core::Error::CertificateExists)
                    } else {
                        error.into()
                    }
                })?;
            // Callers do not change a certificate's kind, but if one does the counter follows,
            // so deleting it later cannot free a place it never took.
            match (counted_before, name.is_some()) {
                (false, true) => adjust_usage(transaction, account, Counter::Certificates, 1)?,
                (true, false) => adjust_usage(transaction, account, Counter::Certificates, -1)?,
                _ => {}
            }
            Ok(certificate)
        })
        .await
    }

    async fn delete_certificate(
        &self,
        account: &AccountId,
        id: &CertificateId,
    ) -> edgecert_core::Result<()> {
        let (account, id) = (account.clone(), id.clone());
        self.write(move |transaction| {
            let counted: Option<bool> = transaction
                .query_row(
                    "SELECT downloadable_name IS NOT NULL FROM certificates
                     WHERE id = ?1 AND account_id = ?2",
                    params![id.as_str(), account.as_str()],
                    |row| row.get(0),
                )
                .optional()?;
            let Some(counted) = counted else {
                return Err(edgecert_core::Error::NotFound(ItemKind::Certificate).into());
            };
            transaction.execute(
                "DELETE FROM certificates WHERE id = ?1",
                params![id.as_str()],
            )?;
            // The logs of a deleted certificate can no longer be read (the API answers 404),
            // and pruning only runs when the certificate gets a new event, which it never will.
            transaction.execute(
                "DELETE FROM certificate_events WHERE certificate_id = ?1",
                params![id.as_str()],
            )?;
            if counted {
                adjust_usage(transaction, account.as_str(), Counter::Certificates, -1)?;
            }
            Ok(())
        })
        .await
    }

    async fn due_certificates(
        &self,
        now: OffsetDateTime,
        page: PageRequest,
    ) -> edgecert_core::Result<Page<Certificate>> {
        self.read(move |connection| due_page(connection, now, &page))
            .await
    }

    async fn certificates_changed_since(
        &self,
        since: OffsetDateTime,
        page: PageRequest,
    ) -> edgecert_core::Result<Page<Certificate>> {
        self.read(move |connection| changes_page(connection, TABLE, since, &page))
            .await
    }
}

//! Whitelisted domains: a hostname belongs to one domain in the whole store.

use async_trait::async_trait;
use edgecert_core::model::{DeletedDomain, Domain, DomainChange};
use edgecert_core::ports::{DomainStore, Page, PageRequest};
use edgecert_core::{AccountId, DomainId, Hostname, ItemKind};
use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use super::{
    ChangeCursor, Counter, SqliteStore, adjust_usage, decode, empty_page, encode, expect_version,
    finish_page, instant_key, is_unique_violation, list_page, next_version, page_limit,
    usage_count, version_column,
};
use crate::error::EmbeddedError;

const TABLE: &str = "domains";
const TOMBSTONES: &str = "domain_tombstones";

#[async_trait]
impl DomainStore for SqliteStore {
    async fn create_domain(&self, domain: &Domain, max_domains: u32) -> edgecert_core::Result<()> {
        let domain = domain.clone();
        self.write(move |transaction| {
            let account = domain.account_id.as_str();
            let taken = transaction
                .query_row(
                    "SELECT 1 FROM domains WHERE hostname = ?1",
                    params![domain.hostname.as_str()],
                    |_| Ok(()),
                )
                .optional()?
                .is_some();
            if taken {
                return Err(edgecert_core::Error::DomainExists.into());
            }
            if usage_count(transaction, account, Counter::Domains)? >= i64::from(max_domains) {
                return Err(edgecert_core::Error::DomainLimitReached.into());
            }
            transaction.execute(
                "INSERT INTO domains
                     (id, account_id, hostname, created_at, updated_at, version, data)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7)",
                params![
                    domain.id.as_str(),
                    account,
                    domain.hostname.as_str(),
                    instant_key(domain.created_at),
                    instant_key(domain.updated_at),
                    version_column(domain.version)?,
                    encode(TABLE, &domain)?
                ],
            )?;
            adjust_usage(transaction, account, Counter::Domains, 1)
        })
        .await
    }

    async fn get_domain(
        &self,
        account: &AccountId,
        id: &DomainId,
    ) -> edgecert_core::Result<Option<Domain>> {
        let (account, id) = (account.clone(), id.clone());
        self.read(move |connection| {
            let data: Option<String> = connection
                .query_row(
                    "SELECT data FROM domains WHERE id = ?1 AND account_id = ?2",
                    params![id.as_str(), account.as_str()],
                    |row| row.get(0),
                )
                .optional()?;
            data.map(|data| decode(TABLE, &data)).transpose()
        })
        .await
    }

    async fn domain_by_hostname(
        &self,
        hostname: &Hostname,
    ) -> edgecert_core::Result<Option<Domain>> {
        let hostname = hostname.clone();
        self.read(move |connection| {
            let data: Option<String> = connection
                .query_row(
                    "SELECT data FROM domains WHERE hostname = ?1",
                    params![hostname.as_str()],
                    |row| row.get(0),
                )
                .optional()?;
            data.map(|data| decode(TABLE, &data)).transpose()
        })
        .await
    }

    async fn list_domains(
        &self,
        account: &AccountId,
        page: PageRequest,
    ) -> edgecert_core::Result<Page<Domain>> {
        let account = account.clone();
        self.read(move |connection| list_page(connection, TABLE, account.as_str(), &page))
            .await
    }

    async fn update_domain(&self, domain: &Domain) -> edgecert_core::Result<Domain> {
        let mut domain = domain.clone();
        self.write(move |transaction| {
            expect_version(
                transaction,
                TABLE,
                ItemKind::Domain,
                domain.id.as_str(),
                Some(domain.account_id.as_str()),
                domain.version,
            )?;
            domain.version = next_version(domain.version)?;
            transaction
                .execute(
                    "UPDATE domains SET hostname = ?2, updated_at = ?3, version = ?4, data = ?5
                     WHERE id = ?1",
                    params![
                        domain.id.as_str(),
                        domain.hostname.as_str(),
                        instant_key(domain.updated_at),
                        version_column(domain.version)?,
                        encode(TABLE, &domain)?
                    ],
                )
                .map_err(|error| {
                    // Only a changed hostname can collide; it is then another domain's.
                    if is_unique_violation(&error) {
                        EmbeddedError::Refused(edgecert_core::Error::DomainExists)
                    } else {
                        error.into()
                    }
                })?;
            Ok(domain)
        })
        .await
    }

    async fn delete_domain(
        &self,
        account: &AccountId,
        id: &DomainId,
        at: OffsetDateTime,
    ) -> edgecert_core::Result<()> {
        let (account, id) = (account.clone(), id.clone());
        self.write(move |transaction| {
            let data: Option<String> = transaction
                .query_row(
                    "DELETE FROM domains WHERE id = ?1 AND account_id = ?2 RETURNING data",
                    params![id.as_str(), account.as_str()],
                    |row| row.get(0),
                )
                .optional()?;
            let Some(data) = data else {
                return Err(edgecert_core::Error::NotFound(ItemKind::Domain).into());
            };
            let domain: Domain = decode(TABLE, &data)?;
            let tombstone = DeletedDomain::of(&domain, at);
            transaction.execute(
                "INSERT OR REPLACE INTO domain_tombstones (id, deleted_at, data)
                 VALUES (?1, ?2, ?3)",
                params![
                    id.as_str(),
                    instant_key(at),
                    encode(TOMBSTONES, &tombstone)?
                ],
            )?;
            // Tombstones past their retention go with the next delete: no timer needed.
            transaction.execute(
                "DELETE FROM domain_tombstones WHERE deleted_at < ?1",
                params![instant_key(at - DeletedDomain::RETENTION)],
            )?;
            adjust_usage(transaction, account.as_str(), Counter::Domains, -1)
        })
        .await
    }

    async fn domains_changed_since(
        &self,
        since: OffsetDateTime,
        page: PageRequest,
    ) -> edgecert_core::Result<Page<DomainChange>> {
        self.read(move |connection| {
            let after = ChangeCursor::parse(since, page.cursor.as_deref())?;
            let Some(limit) = page_limit(&page) else {
                return Ok(empty_page());
            };
            // Both indexes are read in `(time, id)` order and merged; ids never repeat across
            // them (a deleted domain's id is never reused).
            let mut statement = connection.prepare_cached(
                "SELECT updated_at, id, data, 0 FROM domains
                     WHERE (updated_at, id) > (?1, ?2)
                 UNION ALL
                 SELECT deleted_at, id, data, 1 FROM domain_tombstones
                     WHERE (deleted_at, id) > (?1, ?2)
                 ORDER BY 1, 2 LIMIT ?3",
            )?;
            let mut rows = statement.query(params![after.updated_at, after.id, limit])?;
            let mut items = Vec::new();
            let mut last = None;
            while let Some(row) = rows.next()? {
                last = Some(ChangeCursor {
                    updated_at: row.get(0)?,
                    id: row.get(1)?,
                });
                let data: String = row.get(2)?;
                let deleted: i64 = row.get(3)?;
                items.push(if deleted == 0 {
                    DomainChange::Changed(decode(TABLE, &data)?)
                } else {
                    DomainChange::Deleted(decode(TOMBSTONES, &data)?)
                });
            }
            Ok(finish_page(
                items,
                limit,
                last.map(|cursor| cursor.encode()),
            ))
        })
        .await
    }
}

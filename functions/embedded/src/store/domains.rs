//! Whitelisted domains: a hostname belongs to one domain in the whole store.

use async_trait::async_trait;
use edgecert_core::model::Domain;
use edgecert_core::ports::{DomainStore, Page, PageRequest};
use edgecert_core::{AccountId, DomainId, Hostname, ItemKind};
use rusqlite::{OptionalExtension, params};
use time::OffsetDateTime;

use super::{
    Counter, SqliteStore, adjust_usage, changes_page, decode, encode, expect_version, instant_key,
    is_unique_violation, list_page, next_version, usage_count, version_column,
};
use crate::error::EmbeddedError;

const TABLE: &str = "domains";

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

    async fn delete_domain(&self, account: &AccountId, id: &DomainId) -> edgecert_core::Result<()> {
        let (account, id) = (account.clone(), id.clone());
        self.write(move |transaction| {
            let deleted = transaction.execute(
                "DELETE FROM domains WHERE id = ?1 AND account_id = ?2",
                params![id.as_str(), account.as_str()],
            )?;
            if deleted == 0 {
                return Err(edgecert_core::Error::NotFound(ItemKind::Domain).into());
            }
            adjust_usage(transaction, account.as_str(), Counter::Domains, -1)
        })
        .await
    }

    async fn domains_changed_since(
        &self,
        since: OffsetDateTime,
        page: PageRequest,
    ) -> edgecert_core::Result<Page<Domain>> {
        self.read(move |connection| changes_page(connection, TABLE, since, &page))
            .await
    }
}

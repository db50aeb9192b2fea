//! Accounts, their API keys and their limit counters.

use async_trait::async_trait;
use edgecert_core::model::{Account, AccountUsage, ApiKeyHash};
use edgecert_core::ports::{AccountStore, Page, PageRequest};
use edgecert_core::{AccountId, ItemKind};
use rusqlite::{OptionalExtension, params};

use super::{
    SqliteStore, decode, empty_page, encode, expect_version, finish_page, invalid_cursor,
    next_version, page_limit, version_column,
};
use crate::error::EmbeddedError;

const TABLE: &str = "accounts";

#[async_trait]
impl AccountStore for SqliteStore {
    async fn create_account(
        &self,
        account: &Account,
        api_key: &ApiKeyHash,
    ) -> edgecert_core::Result<()> {
        let account = account.clone();
        let api_key = api_key.clone();
        self.write(move |transaction| {
            transaction.execute(
                "INSERT INTO accounts (id, version, data) VALUES (?1, ?2, ?3)",
                params![
                    account.id.as_str(),
                    version_column(account.version)?,
                    encode(TABLE, &account)?
                ],
            )?;
            transaction.execute(
                "INSERT INTO api_keys (hash, account_id) VALUES (?1, ?2)",
                params![api_key.as_str(), account.id.as_str()],
            )?;
            transaction.execute(
                "INSERT INTO account_usage (account_id) VALUES (?1)
                 ON CONFLICT (account_id) DO NOTHING",
                params![account.id.as_str()],
            )?;
            Ok(())
        })
        .await
    }

    async fn get_account(&self, id: &AccountId) -> edgecert_core::Result<Option<Account>> {
        let id = id.clone();
        self.read(move |connection| {
            let data: Option<String> = connection
                .query_row(
                    "SELECT data FROM accounts WHERE id = ?1",
                    params![id.as_str()],
                    |row| row.get(0),
                )
                .optional()?;
            data.map(|data| decode(TABLE, &data)).transpose()
        })
        .await
    }

    async fn update_account(&self, account: &Account) -> edgecert_core::Result<Account> {
        let mut account = account.clone();
        self.write(move |transaction| {
            expect_version(
                transaction,
                TABLE,
                ItemKind::Account,
                account.id.as_str(),
                None,
                account.version,
            )?;
            account.version = next_version(account.version)?;
            transaction.execute(
                "UPDATE accounts SET version = ?2, data = ?3 WHERE id = ?1",
                params![
                    account.id.as_str(),
                    version_column(account.version)?,
                    encode(TABLE, &account)?
                ],
            )?;
            Ok(account)
        })
        .await
    }

    async fn account_for_api_key(
        &self,
        api_key: &ApiKeyHash,
    ) -> edgecert_core::Result<Option<AccountId>> {
        let api_key = api_key.clone();
        self.read(move |connection| {
            let id: Option<String> = connection
                .query_row(
                    "SELECT account_id FROM api_keys WHERE hash = ?1",
                    params![api_key.as_str()],
                    |row| row.get(0),
                )
                .optional()?;
            id.map(|id| {
                AccountId::parse(&id).map_err(|_| {
                    EmbeddedError::Refused(edgecert_core::Error::Corrupt(
                        "api_keys row names a malformed account id".to_owned(),
                    ))
                })
            })
            .transpose()
        })
        .await
    }

    async fn account_usage(&self, id: &AccountId) -> edgecert_core::Result<AccountUsage> {
        let id = id.clone();
        self.read(move |connection| {
            let counts: Option<(i64, i64)> = connection
                .query_row(
                    "SELECT domains, certificates FROM account_usage WHERE account_id = ?1",
                    params![id.as_str()],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            // An account that never held anything has no counter row yet.
            let (domains, certificates) = counts.unwrap_or((0, 0));
            let count = |value: i64| {
                u32::try_from(value).map_err(|_| EmbeddedError::OutOfRange("usage counter"))
            };
            Ok(AccountUsage {
                domains: count(domains)?,
                certificates: count(certificates)?,
            })
        })
        .await
    }

    async fn list_accounts(&self, page: PageRequest) -> edgecert_core::Result<Page<Account>> {
        self.read(move |connection| {
            // Accounts are only ever inserted, never moved: rowid order is creation order, and
            // a cursor (`a.<rowid>`) survives updates of the rows around it.
            let after = match page.cursor.as_deref() {
                None => 0,
                Some(cursor) => cursor
                    .strip_prefix("a.")
                    .and_then(|rowid| rowid.parse::<i64>().ok())
                    .ok_or_else(invalid_cursor)?,
            };
            let Some(limit) = page_limit(&page) else {
                return Ok(empty_page());
            };
            let mut statement = connection.prepare_cached(
                "SELECT rowid, data FROM accounts WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
            )?;
            let mut rows = statement.query(params![after, limit])?;
            let mut items = Vec::new();
            let mut last = None;
            while let Some(row) = rows.next()? {
                last = Some(row.get::<_, i64>(0)?);
                let data: String = row.get(1)?;
                items.push(decode(TABLE, &data)?);
            }
            Ok(finish_page(
                items,
                limit,
                last.map(|rowid| format!("a.{rowid}")),
            ))
        })
        .await
    }
}

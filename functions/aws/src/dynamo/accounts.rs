//! Accounts, their API keys and their limit counters.

use async_trait::async_trait;
use edgecert_core::model::{Account, AccountUsage, ApiKeyHash};
use edgecert_core::ports::AccountStore;
use edgecert_core::{AccountId, Error, ItemKind, Result};

use super::items::{self, keyed, model_item, n, s};
use super::keys::{ACCOUNT_SK, API_KEY_SK, account_pk, api_key_pk};
use super::schema::entity;
use super::{DynamoStore, Transaction, VersionedUpdate, writes};
use crate::error::AwsError;

/// Counter of the account's domains, on the account item.
pub(crate) const DOMAIN_COUNT: &str = "domain_count";
/// Counter of the account's downloadable certificates, on the account item.
pub(crate) const CERTIFICATE_COUNT: &str = "certificate_count";
/// The account an API key item points at.
const ACCOUNT_ID: &str = "account_id";

impl DynamoStore {
    /// Whether the account item exists (used to explain a failed counter condition).
    pub(crate) async fn account_exists(&self, id: &AccountId) -> Result<bool> {
        Ok(self
            .get_item(items::key(account_pk(id), ACCOUNT_SK))
            .await?
            .is_some())
    }
}

#[async_trait]
impl AccountStore for DynamoStore {
    async fn create_account(&self, account: &Account, api_key: &ApiKeyHash) -> Result<()> {
        let mut account_item = model_item(
            account_pk(&account.id),
            ACCOUNT_SK,
            entity::ACCOUNT,
            account,
            account.version,
        )?;
        account_item.insert(DOMAIN_COUNT.to_owned(), n(0));
        account_item.insert(CERTIFICATE_COUNT.to_owned(), n(0));
        let mut key_item = keyed(api_key_pk(api_key), API_KEY_SK, entity::API_KEY);
        key_item.insert(ACCOUNT_ID.to_owned(), s(account.id.as_str()));
        let writes = vec![
            writes::put_new(&self.table, account_item)?,
            writes::put_new(&self.table, key_item)?,
        ];
        match self.transact("create_account", writes).await? {
            Transaction::Committed => Ok(()),
            Transaction::Cancelled(_) => Err(AwsError::Duplicate {
                what: "account id or API key",
            }
            .into()),
        }
    }

    async fn get_account(&self, id: &AccountId) -> Result<Option<Account>> {
        self.get_item(items::key(account_pk(id), ACCOUNT_SK))
            .await?
            .map(|item| items::from_data(&item))
            .transpose()
    }

    async fn update_account(&self, account: &Account) -> Result<Account> {
        let next = Account {
            version: account.version + 1,
            ..account.clone()
        };
        self.update_versioned(VersionedUpdate {
            kind: ItemKind::Account,
            key: items::key(account_pk(&account.id), ACCOUNT_SK),
            expected_version: account.version,
            data: items::to_json(&next)?,
            set: vec![],
            remove: vec![],
            unchanged: None,
        })
        .await?;
        Ok(next)
    }

    async fn account_for_api_key(&self, api_key: &ApiKeyHash) -> Result<Option<AccountId>> {
        let Some(item) = self
            .get_item(items::key(api_key_pk(api_key), API_KEY_SK))
            .await?
        else {
            return Ok(None);
        };
        let id = items::string(&item, ACCOUNT_ID)?;
        AccountId::parse(id)
            .map(Some)
            .map_err(|_| Error::Corrupt(format!("API key item names an invalid account id {id}")))
    }

    async fn account_usage(&self, id: &AccountId) -> Result<AccountUsage> {
        let item = self
            .get_item(items::key(account_pk(id), ACCOUNT_SK))
            .await?
            .ok_or(Error::NotFound(ItemKind::Account))?;
        Ok(AccountUsage {
            domains: items::number(&item, DOMAIN_COUNT)?,
            certificates: items::number(&item, CERTIFICATE_COUNT)?,
        })
    }
}

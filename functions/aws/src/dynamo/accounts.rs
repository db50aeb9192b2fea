//! Accounts, their API keys and their limit counters.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::types::KeysAndAttributes;
use edgecert_core::model::{Account, AccountUsage, ApiKeyHash};
use edgecert_core::ports::{AccountStore, Page, PageRequest};
use edgecert_core::{AccountId, Error, ItemKind, Result};

use super::cursor::CursorScope;
use super::items::{self, Item, keyed, model_item, n, s};
use super::keys::{
    ACCOUNT_DIRECTORY_PK, ACCOUNT_ENTRY_PREFIX, ACCOUNT_SK, API_KEY_SK, account_pk, api_key_pk,
    created_key,
};
use super::merged::MergedQuery;
use super::schema::{PK, SK, entity};
use super::{DynamoStore, Transaction, VersionedUpdate, backoff, writes};
use crate::error::AwsError;

/// Keys one BatchGetItem may ask for.
const BATCH_GET_MAX: usize = 100;
/// BatchGetItem calls made for one page before its unprocessed keys count as a failure.
const BATCH_GET_ATTEMPTS: u32 = 8;

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

impl DynamoStore {
    /// The account items of `ids` (BatchGetItem, strongly consistent), by id; keys DynamoDB
    /// leaves unprocessed are asked again with backoff, a bounded number of times.
    async fn accounts_by_id(&self, ids: &[AccountId]) -> Result<HashMap<String, Item>> {
        let mut found = HashMap::with_capacity(ids.len());
        for chunk in ids.chunks(BATCH_GET_MAX) {
            let keys: Vec<Item> = chunk
                .iter()
                .map(|id| items::key(account_pk(id), ACCOUNT_SK))
                .collect();
            let mut request = Some(
                KeysAndAttributes::builder()
                    .set_keys(Some(keys))
                    .consistent_read(true)
                    .build()
                    .map_err(AwsError::build("the account keys"))?,
            );
            let mut attempt = 0;
            while let Some(wanted) = request.take() {
                if attempt == BATCH_GET_ATTEMPTS {
                    return Err(AwsError::Unprocessed {
                        operation: "BatchGetItem",
                        attempts: attempt,
                    }
                    .into());
                }
                if attempt > 0 {
                    tokio::time::sleep(backoff(attempt)).await;
                }
                attempt += 1;
                let output = self
                    .client
                    .batch_get_item()
                    .request_items(&self.table, wanted)
                    .send()
                    .await
                    .map_err(|error| AwsError::dynamodb("BatchGetItem", error))?;
                for item in output
                    .responses
                    .and_then(|mut tables| tables.remove(&self.table))
                    .unwrap_or_default()
                {
                    let account = items::from_data::<Account>(&item)?;
                    found.insert(account.id.as_str().to_owned(), item);
                }
                request = output
                    .unprocessed_keys
                    .and_then(|mut tables| tables.remove(&self.table))
                    .filter(|left| !left.keys().is_empty());
            }
        }
        Ok(found)
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
        // The directory entry: the operator lists accounts with one Query of its partition.
        let mut entry = keyed(
            ACCOUNT_DIRECTORY_PK.to_owned(),
            created_key(
                ACCOUNT_ENTRY_PREFIX,
                account.created_at,
                account.id.as_str(),
            ),
            entity::ACCOUNT_ENTRY,
        );
        entry.insert(ACCOUNT_ID.to_owned(), s(account.id.as_str()));
        let writes = vec![
            writes::put_new(&self.table, account_item)?,
            writes::put_new(&self.table, key_item)?,
            writes::put_new(&self.table, entry)?,
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
            legacy_key: None,
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
    async fn list_accounts(&self, page: PageRequest) -> Result<Page<Account>> {
        // One partition, written once per account: never hot, so not sharded.
        let query = MergedQuery {
            index: None,
            partition_key: PK,
            sort_key: SK,
            partitions: vec![ACCOUNT_DIRECTORY_PK.to_owned()],
            lower: Some(ACCOUNT_ENTRY_PREFIX.to_owned()),
            upper: Some(format!("{ACCOUNT_ENTRY_PREFIX}~")),
            consistent: true,
            scope: CursorScope {
                list: "accounts".to_owned(),
                sort_prefix: ACCOUNT_ENTRY_PREFIX,
                id_prefix: AccountId::PREFIX,
            },
        };
        let entries = self.merged_page(query, page).await?;
        let ids = entries
            .items
            .iter()
            .map(|entry| {
                let id = items::string(entry, ACCOUNT_ID)?;
                AccountId::parse(id).map_err(|_| {
                    Error::Corrupt(format!("account directory entry names an invalid id {id}"))
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut found = self.accounts_by_id(&ids).await?;
        let items = ids
            .iter()
            .filter_map(|id| found.remove(id.as_str()))
            .map(|item| items::from_data(&item))
            .collect::<Result<Vec<Account>>>()?;
        Ok(Page {
            items_read: entries.items_read + items.len() as u64,
            items,
            next_cursor: entries.next_cursor,
        })
    }
}

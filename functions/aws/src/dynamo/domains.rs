//! Whitelisted domains: a domain item in its account's shard (also in its change-feed shard at
//! its `updated_at`), a global claim on its hostname, and the account's domain counter, always
//! written together.

use std::collections::HashMap;

use async_trait::async_trait;
use edgecert_core::model::{DeletedDomain, Domain, DomainChange};
use edgecert_core::ports::{DomainStore, Page, PageRequest};
use edgecert_core::{AccountId, DomainId, Error, Hostname, ItemKind, Result};
use time::OffsetDateTime;

use super::accounts::DOMAIN_COUNT;
use super::items::{self, Item, keyed, model_item, n, s};
use super::keys::{
    ACCOUNT_SK, DOMAIN_PREFIX, HOST_SK, account_pk, changed_domain_pk, created_key, domain_sk,
    host_pk, owned_pk, tombstone_pk, ttl_seconds, updated_key,
};
use super::schema::{
    CHANGED_DOMAINS, ENTITY, GSI1PK, GSI3PK, GSI3SK, LSI1SK, TTL, VERSION, entity,
};
use super::{DynamoStore, TRANSACTION_ATTEMPTS, Transaction, VersionedUpdate, decode_page, writes};

/// How long a tombstone item outlives its retention before TTL may remove it: readers are
/// promised [`DeletedDomain::RETENTION`], and DynamoDB's TTL never deletes early.
const TOMBSTONE_TTL_MARGIN: time::Duration = time::Duration::hours(1);

impl DynamoStore {
    /// The domain item and the key it was found at, if it exists.
    async fn domain_item(
        &self,
        account: &AccountId,
        id: &DomainId,
    ) -> Result<Option<(Item, Item)>> {
        self.owned_item(account, id.as_str(), domain_sk(id)).await
    }
}

#[async_trait]
impl DomainStore for DynamoStore {
    async fn create_domain(&self, domain: &Domain, max_domains: u32) -> Result<()> {
        let mut domain_item = model_item(
            owned_pk(&domain.account_id, domain.id.as_str()),
            domain_sk(&domain.id),
            entity::DOMAIN,
            domain,
            domain.version,
        )?;
        domain_item.insert(
            LSI1SK.to_owned(),
            s(created_key(
                DOMAIN_PREFIX,
                domain.created_at,
                domain.id.as_str(),
            )),
        );
        domain_item.insert(GSI1PK.to_owned(), s(domain.hostname.as_str()));
        domain_item.insert(GSI3PK.to_owned(), s(changed_domain_pk(&domain.id)));
        domain_item.insert(
            GSI3SK.to_owned(),
            s(updated_key(domain.updated_at, domain.id.as_str())),
        );
        let mut host_item = keyed(host_pk(domain.hostname.as_str()), HOST_SK, entity::HOSTNAME);
        host_item.insert("account_id".to_owned(), s(domain.account_id.as_str()));
        host_item.insert("domain_id".to_owned(), s(domain.id.as_str()));
        let writes = vec![
            writes::put_new(&self.table, domain_item)?,
            writes::put_new(&self.table, host_item)?,
            // A missing account has no counter, so the condition fails for it too.
            writes::update(
                &self.table,
                items::key(account_pk(&domain.account_id), ACCOUNT_SK),
                "SET #count = #count + :one",
                Some("#count < :max"),
                HashMap::from([("#count".to_owned(), DOMAIN_COUNT.to_owned())]),
                HashMap::from([
                    (":one".to_owned(), n(1)),
                    (":max".to_owned(), n(max_domains)),
                ]),
            )?,
        ];
        let outcome = self.transact("create_domain", writes).await?;
        if outcome.failed(0) || outcome.failed(1) {
            Err(Error::DomainExists)
        } else if outcome.failed(2) {
            if self.account_exists(&domain.account_id).await? {
                Err(Error::DomainLimitReached)
            } else {
                Err(Error::NotFound(ItemKind::Account))
            }
        } else {
            Ok(())
        }
    }

    async fn get_domain(&self, account: &AccountId, id: &DomainId) -> Result<Option<Domain>> {
        self.domain_item(account, id)
            .await?
            .map(|(item, _)| items::from_data(&item))
            .transpose()
    }

    async fn domain_by_hostname(&self, hostname: &Hostname) -> Result<Option<Domain>> {
        // The hostname's claim item names the domain that holds it, and both are read with
        // strongly consistent `GetItem`s: a global index could still return a deleted domain,
        // or the previous claim of a re-claimed hostname.
        let Some(claim) = self
            .get_item(items::key(host_pk(hostname.as_str()), HOST_SK))
            .await?
        else {
            return Ok(None);
        };
        let corrupt = |_| Error::Corrupt(format!("item {}: bad id", items::describe(&claim)));
        let account = AccountId::parse(items::string(&claim, "account_id")?).map_err(corrupt)?;
        let id = DomainId::parse(items::string(&claim, "domain_id")?).map_err(corrupt)?;
        self.get_domain(&account, &id).await
    }

    async fn list_domains(&self, account: &AccountId, page: PageRequest) -> Result<Page<Domain>> {
        let query = Self::owned_list(account, DOMAIN_PREFIX, "domains", DomainId::PREFIX);
        decode_page(self.merged_page(query, page).await?)
    }

    async fn update_domain(&self, domain: &Domain) -> Result<Domain> {
        let mut next = domain.clone();
        next.version += 1;
        self.update_versioned(VersionedUpdate {
            kind: ItemKind::Domain,
            key: items::key(
                owned_pk(&domain.account_id, domain.id.as_str()),
                domain_sk(&domain.id),
            ),
            legacy_key: Some(items::key(
                account_pk(&domain.account_id),
                domain_sk(&domain.id),
            )),
            expected_version: domain.version,
            data: items::to_json(&next)?,
            set: vec![
                (GSI3PK, s(changed_domain_pk(&next.id))),
                (GSI3SK, s(updated_key(next.updated_at, next.id.as_str()))),
            ],
            remove: vec![],
            // The hostname is claimed by a separate item: changing it would orphan the claim.
            unchanged: Some((GSI1PK, s(domain.hostname.as_str()))),
        })
        .await?;
        Ok(next)
    }

    async fn delete_domain(
        &self,
        account: &AccountId,
        id: &DomainId,
        at: OffsetDateTime,
    ) -> Result<()> {
        // Read the hostname to free its claim, then delete only if nobody changed the domain
        // meanwhile; a concurrent update makes us read again.
        for _ in 0..TRANSACTION_ATTEMPTS {
            let Some((item, key)) = self.domain_item(account, id).await? else {
                return Err(Error::NotFound(ItemKind::Domain));
            };
            let domain: Domain = items::from_data(&item)?;
            let version: u64 = items::number(&item, VERSION)?;
            let tombstone = DeletedDomain::of(&domain, at);
            let mut tombstone_item = model_item(
                tombstone_pk(id),
                domain_sk(id),
                entity::DOMAIN_TOMBSTONE,
                &tombstone,
                1,
            )?;
            tombstone_item.insert(GSI3PK.to_owned(), s(changed_domain_pk(id)));
            tombstone_item.insert(GSI3SK.to_owned(), s(updated_key(at, id.as_str())));
            tombstone_item.insert(
                TTL.to_owned(),
                n(ttl_seconds(
                    at + DeletedDomain::RETENTION + TOMBSTONE_TTL_MARGIN,
                )),
            );
            let writes = vec![
                writes::delete(
                    &self.table,
                    key,
                    Some("#version = :version"),
                    HashMap::from([("#version".to_owned(), VERSION.to_owned())]),
                    HashMap::from([(":version".to_owned(), n(version))]),
                )?,
                writes::delete(
                    &self.table,
                    items::key(host_pk(domain.hostname.as_str()), HOST_SK),
                    None,
                    HashMap::new(),
                    HashMap::new(),
                )?,
                writes::update(
                    &self.table,
                    items::key(account_pk(account), ACCOUNT_SK),
                    "SET #count = #count - :one",
                    Some("attribute_exists(#count)"),
                    HashMap::from([("#count".to_owned(), DOMAIN_COUNT.to_owned())]),
                    HashMap::from([(":one".to_owned(), n(1))]),
                )?,
                writes::put(&self.table, tombstone_item)?,
            ];
            let outcome = self.transact("delete_domain", writes).await?;
            if outcome.failed(2) {
                return Err(Error::Corrupt(format!(
                    "account {account} has no domain counter"
                )));
            }
            if let Transaction::Committed = outcome {
                return Ok(());
            }
        }
        Err(Error::VersionConflict(ItemKind::Domain))
    }

    async fn domains_changed_since(
        &self,
        since: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<DomainChange>> {
        let query = self
            .changes_query(CHANGED_DOMAINS, "changes/domains", DomainId::PREFIX, since)
            .await;
        let page = self.merged_page(query, page).await?;
        Ok(Page {
            items: page
                .items
                .iter()
                .map(|item| match items::string(item, ENTITY)? {
                    entity::DOMAIN_TOMBSTONE => items::from_data(item).map(DomainChange::Deleted),
                    _ => items::from_data(item).map(DomainChange::Changed),
                })
                .collect::<Result<_>>()?,
            next_cursor: page.next_cursor,
            items_read: page.items_read,
        })
    }
}

//! DNS zones: a zone item in its account's shard and a global claim on its name, written
//! together. Zones stored before claims existed have none: deleting them frees nothing.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use edgecert_core::model::Zone;
use edgecert_core::ports::{Page, PageRequest, ZoneStore};
use edgecert_core::{AccountId, Error, Hostname, ItemKind, Result, ZoneId};

use super::items::{self, Item, keyed, model_item, s};
use super::keys::{
    ZONE_NAME_SK, ZONE_PREFIX, account_pk, created_key, owned_pk, zone_name_pk, zone_sk,
};
use super::schema::{LSI1SK, entity};
use super::{DynamoStore, Transaction, VersionedUpdate, decode_page, writes};
use crate::error::AwsError;

/// The account holding a zone-name claim.
const ACCOUNT_ID: &str = "account_id";
/// The zone holding a zone-name claim.
const ZONE_ID: &str = "zone_id";

impl DynamoStore {
    /// The zone item and the key it was found at, if it exists.
    async fn zone_item(&self, account: &AccountId, id: &ZoneId) -> Result<Option<(Item, Item)>> {
        self.owned_item(account, id.as_str(), zone_sk(id)).await
    }

    /// Deletes the zone item at `key` alone (a zone without the claim on its name).
    async fn delete_zone_item(&self, key: Item) -> Result<()> {
        let _turn = self.write_turn().await;
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression("attribute_exists(PK)")
            .send()
            .await;
        match result {
            Ok(_) => Ok(()),
            Err(error) => match error.as_service_error() {
                Some(DeleteItemError::ConditionalCheckFailedException(_)) => {
                    Err(Error::NotFound(ItemKind::Zone))
                }
                _ => Err(AwsError::dynamodb("DeleteItem", error).into()),
            },
        }
    }
}

#[async_trait]
impl ZoneStore for DynamoStore {
    async fn create_zone(&self, zone: &Zone) -> Result<()> {
        let mut item = model_item(
            owned_pk(&zone.account_id, zone.id.as_str()),
            zone_sk(&zone.id),
            entity::ZONE,
            zone,
            zone.version,
        )?;
        item.insert(
            LSI1SK.to_owned(),
            s(created_key(ZONE_PREFIX, zone.created_at, zone.id.as_str())),
        );
        let mut claim = keyed(
            zone_name_pk(zone.name.as_str()),
            ZONE_NAME_SK,
            entity::ZONE_NAME,
        );
        claim.insert(ACCOUNT_ID.to_owned(), s(zone.account_id.as_str()));
        claim.insert(ZONE_ID.to_owned(), s(zone.id.as_str()));
        let writes = vec![
            writes::put_new(&self.table, item)?,
            writes::put_new(&self.table, claim)?,
        ];
        let outcome = self.transact("create_zone", writes).await?;
        if outcome.failed(1) {
            Err(Error::ZoneExists)
        } else if outcome.failed(0) {
            Err(AwsError::Duplicate { what: "zone id" }.into())
        } else {
            Ok(())
        }
    }

    async fn get_zone(&self, account: &AccountId, id: &ZoneId) -> Result<Option<Zone>> {
        self.zone_item(account, id)
            .await?
            .map(|(item, _)| items::from_data(&item))
            .transpose()
    }

    async fn zone_by_name(&self, name: &Hostname) -> Result<Option<Zone>> {
        let Some(claim) = self
            .get_item(items::key(zone_name_pk(name.as_str()), ZONE_NAME_SK))
            .await?
        else {
            return Ok(None);
        };
        let account = AccountId::parse(items::string(&claim, ACCOUNT_ID)?)
            .map_err(|_| Error::Corrupt(format!("zone name claim {name} names no account")))?;
        let id = ZoneId::parse(items::string(&claim, ZONE_ID)?)
            .map_err(|_| Error::Corrupt(format!("zone name claim {name} names no zone")))?;
        self.get_zone(&account, &id).await
    }

    async fn list_zones(&self, account: &AccountId, page: PageRequest) -> Result<Page<Zone>> {
        let query = Self::owned_list(account, ZONE_PREFIX, "zones", ZoneId::PREFIX);
        decode_page(self.merged_page(query, page).await?)
    }

    async fn update_zone(&self, zone: &Zone) -> Result<Zone> {
        let next = Zone {
            version: zone.version + 1,
            ..zone.clone()
        };
        self.update_versioned(VersionedUpdate {
            kind: ItemKind::Zone,
            key: items::key(
                owned_pk(&zone.account_id, zone.id.as_str()),
                zone_sk(&zone.id),
            ),
            legacy_key: Some(items::key(account_pk(&zone.account_id), zone_sk(&zone.id))),
            expected_version: zone.version,
            data: items::to_json(&next)?,
            set: vec![],
            remove: vec![],
            unchanged: None,
        })
        .await?;
        Ok(next)
    }

    async fn delete_zone(&self, account: &AccountId, id: &ZoneId) -> Result<()> {
        let Some((item, key)) = self.zone_item(account, id).await? else {
            return Err(Error::NotFound(ItemKind::Zone));
        };
        let zone: Zone = items::from_data(&item)?;
        // The claim goes with the zone only when it is this zone's: a zone stored before
        // claims existed may share its name with the zone that holds it.
        let writes = vec![
            writes::delete(
                &self.table,
                key.clone(),
                Some("attribute_exists(PK)"),
                HashMap::new(),
                HashMap::new(),
            )?,
            writes::delete(
                &self.table,
                items::key(zone_name_pk(zone.name.as_str()), ZONE_NAME_SK),
                Some("attribute_not_exists(PK) OR #zone = :zone"),
                HashMap::from([("#zone".to_owned(), ZONE_ID.to_owned())]),
                HashMap::from([(":zone".to_owned(), s(id.as_str()))]),
            )?,
        ];
        match self.transact("delete_zone", writes).await? {
            Transaction::Committed => Ok(()),
            outcome if outcome.failed(0) => Err(Error::NotFound(ItemKind::Zone)),
            _ => self.delete_zone_item(key).await,
        }
    }
}

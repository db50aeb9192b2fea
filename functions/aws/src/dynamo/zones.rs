//! DNS zones: plain items in their account's partition.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use edgecert_core::model::Zone;
use edgecert_core::ports::{Page, PageRequest, ZoneStore};
use edgecert_core::{AccountId, Error, ItemKind, Result, ZoneId};

use super::cursor::CursorScope;
use super::items::{self, model_item, s};
use super::keys::{ZONE_PREFIX, account_pk, created_key, zone_sk};
use super::schema::{BY_CREATED, LSI1SK, PK, SK, entity};
use super::{DynamoStore, PageQuery, VersionedUpdate, decode_page};
use crate::error::AwsError;

#[async_trait]
impl ZoneStore for DynamoStore {
    async fn create_zone(&self, zone: &Zone) -> Result<()> {
        let mut item = model_item(
            account_pk(&zone.account_id),
            zone_sk(&zone.id),
            entity::ZONE,
            zone,
            zone.version,
        )?;
        item.insert(
            LSI1SK.to_owned(),
            s(created_key(ZONE_PREFIX, zone.created_at, zone.id.as_str())),
        );
        if self.put_new(item).await? {
            Ok(())
        } else {
            Err(AwsError::Duplicate { what: "zone id" }.into())
        }
    }

    async fn get_zone(&self, account: &AccountId, id: &ZoneId) -> Result<Option<Zone>> {
        self.get_item(items::key(account_pk(account), zone_sk(id)))
            .await?
            .map(|item| items::from_data(&item))
            .transpose()
    }

    async fn list_zones(&self, account: &AccountId, page: PageRequest) -> Result<Page<Zone>> {
        let partition = account_pk(account);
        let query = PageQuery {
            index: Some(BY_CREATED),
            key_condition: "#pk = :pk AND begins_with(#created, :prefix)",
            names: HashMap::from([
                ("#pk".to_owned(), PK.to_owned()),
                ("#created".to_owned(), LSI1SK.to_owned()),
            ]),
            values: HashMap::from([
                (":pk".to_owned(), s(partition.as_str())),
                (":prefix".to_owned(), s(ZONE_PREFIX)),
            ]),
            consistent: true,
            scope: CursorScope {
                key_attributes: &[PK, SK, LSI1SK],
                fixed: vec![(PK, partition)],
                prefixed: vec![(SK, ZONE_PREFIX), (LSI1SK, ZONE_PREFIX)],
            },
        };
        decode_page(self.query_page(query, page).await?)
    }

    async fn update_zone(&self, zone: &Zone) -> Result<Zone> {
        let next = Zone {
            version: zone.version + 1,
            ..zone.clone()
        };
        self.update_versioned(VersionedUpdate {
            kind: ItemKind::Zone,
            key: items::key(account_pk(&zone.account_id), zone_sk(&zone.id)),
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
        let _turn = self.write_turn().await;
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(items::key(account_pk(account), zone_sk(id))))
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

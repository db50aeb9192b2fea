//! DNS zones imported by accounts: a zone's `name` column is its claim on the name, unique
//! among the zones that have one (zones stored before claims existed have none).

use async_trait::async_trait;
use edgecert_core::model::Zone;
use edgecert_core::ports::{Page, PageRequest, ZoneStore};
use edgecert_core::{AccountId, Hostname, ItemKind, ZoneId};
use rusqlite::{OptionalExtension, params};

use super::{
    SqliteStore, decode, encode, expect_version, instant_key, is_unique_violation, list_page,
    next_version, version_column,
};
use crate::error::EmbeddedError;

const TABLE: &str = "zones";

#[async_trait]
impl ZoneStore for SqliteStore {
    async fn create_zone(&self, zone: &Zone) -> edgecert_core::Result<()> {
        let zone = zone.clone();
        self.write(move |transaction| {
            transaction
                .execute(
                    "INSERT INTO zones (id, account_id, name, created_at, version, data)
                     VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                    params![
                        zone.id.as_str(),
                        zone.account_id.as_str(),
                        zone.name.as_str(),
                        instant_key(zone.created_at),
                        version_column(zone.version)?,
                        encode(TABLE, &zone)?
                    ],
                )
                .map_err(|error| {
                    // Zone ids are random: a collision is on the name.
                    if is_unique_violation(&error) {
                        EmbeddedError::Refused(edgecert_core::Error::ZoneExists)
                    } else {
                        error.into()
                    }
                })?;
            Ok(())
        })
        .await
    }

    async fn get_zone(
        &self,
        account: &AccountId,
        id: &ZoneId,
    ) -> edgecert_core::Result<Option<Zone>> {
        let (account, id) = (account.clone(), id.clone());
        self.read(move |connection| {
            let data: Option<String> = connection
                .query_row(
                    "SELECT data FROM zones WHERE id = ?1 AND account_id = ?2",
                    params![id.as_str(), account.as_str()],
                    |row| row.get(0),
                )
                .optional()?;
            data.map(|data| decode(TABLE, &data)).transpose()
        })
        .await
    }

    async fn zone_by_name(&self, name: &Hostname) -> edgecert_core::Result<Option<Zone>> {
        let name = name.clone();
        self.read(move |connection| {
            let data: Option<String> = connection
                .query_row(
                    "SELECT data FROM zones WHERE name = ?1",
                    params![name.as_str()],
                    |row| row.get(0),
                )
                .optional()?;
            data.map(|data| decode(TABLE, &data)).transpose()
        })
        .await
    }

    async fn list_zones(
        &self,
        account: &AccountId,
        page: PageRequest,
    ) -> edgecert_core::Result<Page<Zone>> {
        let account = account.clone();
        self.read(move |connection| list_page(connection, TABLE, account.as_str(), &page))
            .await
    }

    async fn update_zone(&self, zone: &Zone) -> edgecert_core::Result<Zone> {
        let mut zone = zone.clone();
        self.write(move |transaction| {
            expect_version(
                transaction,
                TABLE,
                ItemKind::Zone,
                zone.id.as_str(),
                Some(zone.account_id.as_str()),
                zone.version,
            )?;
            zone.version = next_version(zone.version)?;
            transaction.execute(
                "UPDATE zones SET version = ?2, data = ?3 WHERE id = ?1",
                params![
                    zone.id.as_str(),
                    version_column(zone.version)?,
                    encode(TABLE, &zone)?
                ],
            )?;
            Ok(zone)
        })
        .await
    }

    async fn delete_zone(&self, account: &AccountId, id: &ZoneId) -> edgecert_core::Result<()> {
        let (account, id) = (account.clone(), id.clone());
        self.write(move |transaction| {
            let deleted = transaction.execute(
                "DELETE FROM zones WHERE id = ?1 AND account_id = ?2",
                params![id.as_str(), account.as_str()],
            )?;
            if deleted == 0 {
                return Err(edgecert_core::Error::NotFound(ItemKind::Zone).into());
            }
            Ok(())
        })
        .await
    }
}

//! Certificates: an item in the account's shard, sparse in the due index while the scheduler
//! has something to do with it, and in the change feed at its `updated_at` (each in the
//! index shard of its id);
//! downloadable ones also claim their primary name and a place in the account's certificate
//! counter.

use std::collections::HashMap;

use async_trait::async_trait;
use aws_sdk_dynamodb::operation::delete_item::DeleteItemError;
use edgecert_core::model::{Certificate, CertificateKind};
use edgecert_core::ports::{CertificateStore, Page, PageRequest};
use edgecert_core::{AccountId, CertificateId, Error, ItemKind, Result};
use time::OffsetDateTime;

use super::accounts::CERTIFICATE_COUNT;
use super::cursor::CursorScope;
use super::items::{self, Item, keyed, model_item, n, s};
use super::keys::{
    ACCOUNT_SK, CERT_NAME_SK, CERTIFICATE_PREFIX, account_pk, certificate_name_pk, certificate_sk,
    changed_certificate_pk, created_key, due_bound, due_key, due_pk, index_pks, owned_pk,
    updated_key,
};
use super::merged::MergedQuery;
use super::schema::{
    BY_DUE, CHANGED_CERTIFICATES, DUE_PREFIX, GSI2PK, GSI2SK, GSI3PK, GSI3SK, LSI1SK, STATUS,
    VERSION, entity,
};
use super::{DynamoStore, TRANSACTION_ATTEMPTS, Transaction, VersionedUpdate, decode_page, writes};
use crate::error::AwsError;

/// The primary name, copied out of `data`: the key of the name claim, so it must not change.
const PRIMARY_NAME: &str = "primary_name";

fn is_downloadable(certificate: &Certificate) -> bool {
    matches!(certificate.kind, CertificateKind::Downloadable { .. })
}

/// The certificate's item: model, creation order, status copy and due-index keys.
fn certificate_item(certificate: &Certificate) -> Result<Item> {
    let mut item = model_item(
        owned_pk(&certificate.account_id, certificate.id.as_str()),
        certificate_sk(&certificate.id),
        entity::CERTIFICATE,
        certificate,
        certificate.version,
    )?;
    item.insert(
        LSI1SK.to_owned(),
        s(created_key(
            CERTIFICATE_PREFIX,
            certificate.created_at,
            certificate.id.as_str(),
        )),
    );
    item.insert(PRIMARY_NAME.to_owned(), s(certificate.domain.as_str()));
    item.insert(STATUS.to_owned(), s(certificate.status.as_str()));
    if let Some(due_at) = certificate.due_at() {
        item.insert(GSI2PK.to_owned(), s(due_pk(&certificate.id)));
        item.insert(GSI2SK.to_owned(), s(due_key(due_at, &certificate.id)));
    }
    item.insert(
        GSI3PK.to_owned(),
        s(changed_certificate_pk(&certificate.id)),
    );
    item.insert(
        GSI3SK.to_owned(),
        s(updated_key(certificate.updated_at, certificate.id.as_str())),
    );
    Ok(item)
}

impl DynamoStore {
    /// The certificate item and the key it was found at, if it exists.
    async fn certificate_item(
        &self,
        account: &AccountId,
        id: &CertificateId,
    ) -> Result<Option<(Item, Item)>> {
        self.owned_item(account, id.as_str(), certificate_sk(id))
            .await
    }

    /// Deletes the managed certificate at `key` if it still has `version`; `false` when it
    /// changed.
    async fn delete_managed(&self, key: Item, version: u64) -> Result<bool> {
        let _turn = self.write_turn().await;
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(key))
            .condition_expression("#version = :version")
            .expression_attribute_names("#version", VERSION)
            .expression_attribute_values(":version", n(version))
            .send()
            .await;
        match result {
            Ok(_) => Ok(true),
            Err(error) => match error.as_service_error() {
                Some(DeleteItemError::ConditionalCheckFailedException(_)) => Ok(false),
                _ => Err(AwsError::dynamodb("DeleteItem", error).into()),
            },
        }
    }

    /// Deletes a downloadable certificate (at `key`), its name claim and its place in the
    /// counter, if it still has `version`; `false` when it changed.
    async fn delete_downloadable(
        &self,
        certificate: &Certificate,
        key: Item,
        version: u64,
    ) -> Result<bool> {
        let account = &certificate.account_id;
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
                items::key(
                    certificate_name_pk(account, certificate.domain.as_str()),
                    CERT_NAME_SK,
                ),
                None,
                HashMap::new(),
                HashMap::new(),
            )?,
            writes::update(
                &self.table,
                items::key(account_pk(account), ACCOUNT_SK),
                "SET #count = #count - :one",
                Some("attribute_exists(#count)"),
                HashMap::from([("#count".to_owned(), CERTIFICATE_COUNT.to_owned())]),
                HashMap::from([(":one".to_owned(), n(1))]),
            )?,
        ];
        let outcome = self.transact("delete_certificate", writes).await?;
        if outcome.failed(2) {
            return Err(Error::Corrupt(format!(
                "account {account} has no certificate counter"
            )));
        }
        Ok(matches!(outcome, Transaction::Committed))
    }
}

#[async_trait]
impl CertificateStore for DynamoStore {
    async fn create_certificate(
        &self,
        certificate: &Certificate,
        max_certificates: u32,
    ) -> Result<()> {
        let item = certificate_item(certificate)?;
        if !is_downloadable(certificate) {
            return if self.put_new(item).await? {
                Ok(())
            } else {
                Err(Error::CertificateExists)
            };
        }
        let account = &certificate.account_id;
        let mut name_item = keyed(
            certificate_name_pk(account, certificate.domain.as_str()),
            CERT_NAME_SK,
            entity::CERTIFICATE_NAME,
        );
        name_item.insert("certificate_id".to_owned(), s(certificate.id.as_str()));
        let writes = vec![
            writes::put_new(&self.table, item)?,
            writes::put_new(&self.table, name_item)?,
            // A missing account has no counter, so the condition fails for it too.
            writes::update(
                &self.table,
                items::key(account_pk(account), ACCOUNT_SK),
                "SET #count = #count + :one",
                Some("#count < :max"),
                HashMap::from([("#count".to_owned(), CERTIFICATE_COUNT.to_owned())]),
                HashMap::from([
                    (":one".to_owned(), n(1)),
                    (":max".to_owned(), n(max_certificates)),
                ]),
            )?,
        ];
        let outcome = self.transact("create_certificate", writes).await?;
        if outcome.failed(0) || outcome.failed(1) {
            Err(Error::CertificateExists)
        } else if outcome.failed(2) {
            if self.account_exists(account).await? {
                Err(Error::CertificateLimitReached)
            } else {
                Err(Error::NotFound(ItemKind::Account))
            }
        } else {
            Ok(())
        }
    }

    async fn get_certificate(
        &self,
        account: &AccountId,
        id: &CertificateId,
    ) -> Result<Option<Certificate>> {
        self.certificate_item(account, id)
            .await?
            .map(|(item, _)| items::from_data(&item))
            .transpose()
    }

    async fn list_certificates(
        &self,
        account: &AccountId,
        page: PageRequest,
    ) -> Result<Page<Certificate>> {
        let query = Self::owned_list(
            account,
            CERTIFICATE_PREFIX,
            "certificates",
            CertificateId::PREFIX,
        );
        decode_page(self.merged_page(query, page).await?)
    }

    async fn update_certificate(&self, certificate: &Certificate) -> Result<Certificate> {
        let mut next = certificate.clone();
        next.version += 1;
        let mut set = vec![
            (STATUS, s(next.status.as_str())),
            (GSI3PK, s(changed_certificate_pk(&next.id))),
            (GSI3SK, s(updated_key(next.updated_at, next.id.as_str()))),
        ];
        let mut remove = vec![];
        match next.due_at() {
            Some(due_at) => {
                set.push((GSI2PK, s(due_pk(&next.id))));
                set.push((GSI2SK, s(due_key(due_at, &next.id))));
            }
            None => remove.extend([GSI2PK, GSI2SK]),
        }
        self.update_versioned(VersionedUpdate {
            kind: ItemKind::Certificate,
            key: items::key(
                owned_pk(&certificate.account_id, certificate.id.as_str()),
                certificate_sk(&certificate.id),
            ),
            legacy_key: Some(items::key(
                account_pk(&certificate.account_id),
                certificate_sk(&certificate.id),
            )),
            expected_version: certificate.version,
            data: items::to_json(&next)?,
            set,
            remove,
            unchanged: Some((PRIMARY_NAME, s(certificate.domain.as_str()))),
        })
        .await?;
        Ok(next)
    }

    async fn delete_certificate(&self, account: &AccountId, id: &CertificateId) -> Result<()> {
        // Read what the deletion must free, then delete only if nobody changed the certificate
        // meanwhile; a concurrent update makes us read again.
        for _ in 0..TRANSACTION_ATTEMPTS {
            let Some((item, key)) = self.certificate_item(account, id).await? else {
                return Err(Error::NotFound(ItemKind::Certificate));
            };
            let certificate: Certificate = items::from_data(&item)?;
            let version: u64 = items::number(&item, VERSION)?;
            let deleted = if is_downloadable(&certificate) {
                self.delete_downloadable(&certificate, key, version).await?
            } else {
                self.delete_managed(key, version).await?
            };
            if deleted {
                return Ok(());
            }
        }
        Err(Error::VersionConflict(ItemKind::Certificate))
    }

    async fn due_certificates(
        &self,
        now: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<Certificate>> {
        let query = MergedQuery {
            index: Some(BY_DUE),
            partition_key: GSI2PK,
            sort_key: GSI2SK,
            partitions: self
                .with_legacy(index_pks(DUE_PREFIX), DUE_PREFIX.to_owned())
                .await,
            lower: None,
            upper: Some(due_bound(now)),
            // Global indexes are eventually consistent only.
            consistent: false,
            scope: CursorScope {
                list: "due".to_owned(),
                sort_prefix: "",
                id_prefix: CertificateId::PREFIX,
            },
        };
        let mut page: Page<Certificate> = decode_page(self.merged_page(query, page).await?)?;
        // The index key has millisecond precision; drop what is due later within `now`'s
        // millisecond.
        page.items
            .retain(|certificate| certificate.due_at().is_some_and(|due_at| due_at <= now));
        Ok(page)
    }

    async fn certificates_changed_since(
        &self,
        since: OffsetDateTime,
        page: PageRequest,
    ) -> Result<Page<Certificate>> {
        let query = self
            .changes_query(
                CHANGED_CERTIFICATES,
                "changes/certificates",
                CertificateId::PREFIX,
                since,
            )
            .await;
        decode_page(self.merged_page(query, page).await?)
    }
}

//! Certificates: an item in the account's partition, sparse in the due index while the
//! scheduler has something to do with it, and in the change feed at its `updated_at`;
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
    created_key, due_bound, due_key, updated_key,
};
use super::schema::{
    BY_CREATED, BY_DUE, CHANGED_CERTIFICATES, DUE_PARTITION, GSI2PK, GSI2SK, GSI3PK, GSI3SK,
    LSI1SK, PK, SK, STATUS, VERSION, entity,
};
use super::{
    DynamoStore, PageQuery, TRANSACTION_ATTEMPTS, Transaction, VersionedUpdate, changes_query,
    decode_page, writes,
};
use crate::error::AwsError;

/// The primary name, copied out of `data`: the key of the name claim, so it must not change.
const PRIMARY_NAME: &str = "primary_name";

fn is_downloadable(certificate: &Certificate) -> bool {
    matches!(certificate.kind, CertificateKind::Downloadable { .. })
}

/// The certificate's item: model, creation order, status copy and due-index keys.
fn certificate_item(certificate: &Certificate) -> Result<Item> {
    let mut item = model_item(
        account_pk(&certificate.account_id),
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
        item.insert(GSI2PK.to_owned(), s(DUE_PARTITION));
        item.insert(GSI2SK.to_owned(), s(due_key(due_at, &certificate.id)));
    }
    item.insert(GSI3PK.to_owned(), s(CHANGED_CERTIFICATES));
    item.insert(
        GSI3SK.to_owned(),
        s(updated_key(certificate.updated_at, certificate.id.as_str())),
    );
    Ok(item)
}

impl DynamoStore {
    async fn certificate_item(
        &self,
        account: &AccountId,
        id: &CertificateId,
    ) -> Result<Option<Item>> {
        self.get_item(items::key(account_pk(account), certificate_sk(id)))
            .await
    }

    /// Deletes a managed certificate if it still has `version`; `false` when it changed.
    async fn delete_managed(
        &self,
        account: &AccountId,
        id: &CertificateId,
        version: u64,
    ) -> Result<bool> {
        let _turn = self.write_turn().await;
        let result = self
            .client
            .delete_item()
            .table_name(&self.table)
            .set_key(Some(items::key(account_pk(account), certificate_sk(id))))
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

    /// Deletes a downloadable certificate, its name claim and its place in the counter, if it
    /// still has `version`; `false` when it changed.
    async fn delete_downloadable(&self, certificate: &Certificate, version: u64) -> Result<bool> {
        let account = &certificate.account_id;
        let writes = vec![
            writes::delete(
                &self.table,
                items::key(account_pk(account), certificate_sk(&certificate.id)),
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
            .map(|item| items::from_data(&item))
            .transpose()
    }

    async fn list_certificates(
        &self,
        account: &AccountId,
        page: PageRequest,
    ) -> Result<Page<Certificate>> {
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
                (":prefix".to_owned(), s(CERTIFICATE_PREFIX)),
            ]),
            consistent: true,
            scope: CursorScope {
                key_attributes: &[PK, SK, LSI1SK],
                fixed: vec![(PK, partition)],
                prefixed: vec![(SK, CERTIFICATE_PREFIX), (LSI1SK, CERTIFICATE_PREFIX)],
            },
        };
        decode_page(self.query_page(query, page).await?)
    }

    async fn update_certificate(&self, certificate: &Certificate) -> Result<Certificate> {
        let mut next = certificate.clone();
        next.version += 1;
        let mut set = vec![
            (STATUS, s(next.status.as_str())),
            (GSI3PK, s(CHANGED_CERTIFICATES)),
            (GSI3SK, s(updated_key(next.updated_at, next.id.as_str()))),
        ];
        let mut remove = vec![];
        match next.due_at() {
            Some(due_at) => {
                set.push((GSI2PK, s(DUE_PARTITION)));
                set.push((GSI2SK, s(due_key(due_at, &next.id))));
            }
            None => remove.extend([GSI2PK, GSI2SK]),
        }
        self.update_versioned(VersionedUpdate {
            kind: ItemKind::Certificate,
            key: items::key(
                account_pk(&certificate.account_id),
                certificate_sk(&certificate.id),
            ),
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
            let Some(item) = self.certificate_item(account, id).await? else {
                return Err(Error::NotFound(ItemKind::Certificate));
            };
            let certificate: Certificate = items::from_data(&item)?;
            let version: u64 = items::number(&item, VERSION)?;
            let deleted = if is_downloadable(&certificate) {
                self.delete_downloadable(&certificate, version).await?
            } else {
                self.delete_managed(account, id, version).await?
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
        let query = PageQuery {
            index: Some(BY_DUE),
            key_condition: "#due = :due AND #at <= :bound",
            names: HashMap::from([
                ("#due".to_owned(), GSI2PK.to_owned()),
                ("#at".to_owned(), GSI2SK.to_owned()),
            ]),
            values: HashMap::from([
                (":due".to_owned(), s(DUE_PARTITION)),
                (":bound".to_owned(), s(due_bound(now))),
            ]),
            // Global indexes are eventually consistent only.
            consistent: false,
            scope: CursorScope {
                key_attributes: &[PK, SK, GSI2PK, GSI2SK],
                fixed: vec![(GSI2PK, DUE_PARTITION.to_owned())],
                prefixed: vec![(SK, CERTIFICATE_PREFIX)],
            },
        };
        let mut page: Page<Certificate> = decode_page(self.query_page(query, page).await?)?;
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
        let query = changes_query(CHANGED_CERTIFICATES, CERTIFICATE_PREFIX, since);
        decode_page(self.query_page(query, page).await?)
    }
}

//! The shared store and vault conformance suite, run against DynamoDB, Secrets Manager and KMS
//! as served by moto_server (see `support` for how the endpoint is found): the whole suite with
//! certificate keys in Secrets Manager, and the vault's cases again with keys sealed in the
//! table.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use edgecert_aws::KeyStorage;
use edgecert_conformance::Adapters;

/// Fresh adapters for one case: a new table and a new secret prefix on the shared moto, keys
/// in Secrets Manager.
async fn make_adapters() -> Adapters {
    adapters(KeyStorage::SecretsManager).await
}

/// The same with keys sealed in the table.
async fn make_sealed_adapters() -> Adapters {
    adapters(KeyStorage::Sealed).await
}

async fn adapters(storage: KeyStorage) -> Adapters {
    let clients = support::clients().await;
    let store = support::fresh_store(&clients).await;
    let vault = support::fresh_key_storage_vault(&clients, store.table_name(), storage).await;
    Adapters {
        store: Arc::new(store),
        vault: Arc::new(vault),
        // moto keeps everything in memory and stops with the test binary: nothing to drop.
        guard: Box::new(()),
    }
}

edgecert_conformance::conformance_suite!(dynamodb, make_adapters);
edgecert_conformance::conformance_suite!(@vault dynamodb_sealed, make_sealed_adapters);

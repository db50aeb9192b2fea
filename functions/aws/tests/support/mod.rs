//! What the AWS adapter tests share: a moto_server endpoint on loopback and fresh, uniquely
//! named tables and secret prefixes on it.

#![allow(dead_code)] // each test binary uses a different part

use edgecert_aws::{
    AwsClients, DynamoStore, KeyStorage, KeyStorageVault, SecretsManagerVault, create_table,
    ensure_kms_key,
};
use edgecert_integration::Moto;
use rand::Rng;

/// Points the tests at an already running moto_server instead of starting one.
const ENDPOINT_VAR: &str = "EDGECERT_TEST_AWS_ENDPOINT";

/// The moto endpoint: `$EDGECERT_TEST_AWS_ENDPOINT` when set, else the moto_server shared by
/// this test binary (started on first use, stopped when the binary exits). Refuses anything
/// but loopback: these tests never talk to real AWS.
pub async fn endpoint() -> String {
    let url = match std::env::var(ENDPOINT_VAR) {
        Ok(url) if !url.trim().is_empty() => url.trim().to_owned(),
        _ => Moto::shared()
            .await
            .expect("starting moto_server")
            .endpoint_url(),
    };
    let host = url
        .strip_prefix("http://")
        .and_then(|rest| rest.split([':', '/']).next())
        .unwrap_or_default();
    assert!(
        matches!(host, "127.0.0.1" | "localhost" | "[::1]"),
        "{ENDPOINT_VAR} must be a loopback http:// URL, got {url}"
    );
    url
}

/// A name no other test of any run uses: moto's state is shared by every test.
pub fn unique_name(kind: &str) -> String {
    let random: u64 = rand::thread_rng().r#gen();
    format!("edgecert-{kind}-{}-{random:016x}", std::process::id())
}

/// Clients on the moto endpoint.
pub async fn clients() -> AwsClients {
    AwsClients::for_local_endpoint(&endpoint().await).await
}

/// A store on a new, empty table.
///
/// Its writes are serialized: moto applies transactions and conditional writes without
/// isolation from concurrent requests, so the parallel-writer cases would otherwise test moto's
/// races rather than this adapter (on DynamoDB the service provides the isolation). The cases
/// still check every condition and the error each failed one maps to.
pub async fn fresh_store(clients: &AwsClients) -> DynamoStore {
    let table = unique_name("table");
    create_table(&clients.dynamodb, &table)
        .await
        .expect("creating the table");
    DynamoStore::new(clients.dynamodb.clone(), table).with_serialized_writes()
}

/// A vault under a new secret prefix.
pub fn fresh_vault(clients: &AwsClients) -> SecretsManagerVault {
    SecretsManagerVault::new(
        clients.secrets_manager.clone(),
        format!("{}/", unique_name("secrets")),
    )
}

/// The KMS key every test of this binary seals under (one per moto: data keys are per table).
pub async fn kms_key(clients: &AwsClients) -> String {
    ensure_kms_key(&clients.kms, "alias/edgecert-tests")
        .await
        .expect("a KMS key in moto")
}

/// The deployment's vault in `storage` mode on `table` (which must exist), under a new secret
/// prefix and the tests' KMS key.
pub async fn fresh_key_storage_vault(
    clients: &AwsClients,
    table: &str,
    storage: KeyStorage,
) -> KeyStorageVault {
    KeyStorageVault::new(
        clients,
        storage,
        table,
        format!("{}/", unique_name("secrets")),
        Some(kms_key(clients).await),
    )
    .expect("a key storage vault")
}

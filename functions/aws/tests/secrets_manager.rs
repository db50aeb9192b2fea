//! Secrets Manager-specific behaviour: secret names and value shapes other tools rely on, and
//! errors that never carry secret values. Runs against moto_server (see `support`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use edgecert_aws::{AwsClients, SecretsManagerVault};
use edgecert_core::model::SecretString;
use edgecert_core::ports::{CertificateMaterial, Vault};
use edgecert_core::{CertificateId, Error};
use sha2::{Digest, Sha256};

fn material() -> CertificateMaterial {
    CertificateMaterial {
        chain_pem: Some(
            "-----BEGIN CERTIFICATE-----\nleaf\n-----END CERTIFICATE-----\n".to_owned(),
        ),
        private_key_pem: SecretString::new(
            "-----BEGIN PRIVATE KEY-----\nsecret-key-bytes\n-----END PRIVATE KEY-----\n",
        ),
    }
}

#[tokio::test]
async fn secrets_are_named_per_certificate_and_hold_chain_and_key_as_json() {
    let clients = support::clients().await;
    let prefix = format!("{}/", support::unique_name("secrets"));
    let vault = SecretsManagerVault::new(clients.secrets_manager.clone(), prefix.clone());
    let certificate = CertificateId::generate();

    let version = vault.put_material(&certificate, &material()).await.unwrap();

    let name = format!("{prefix}cert/{certificate}");
    assert_eq!(vault.certificate_secret_name(&certificate), name);
    let stored = clients
        .secrets_manager
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(stored.version_id(), Some(version.0.as_str()));
    let json: serde_json::Value = serde_json::from_str(stored.secret_string().unwrap()).unwrap();
    assert_eq!(json["chain_pem"], material().chain_pem.unwrap().as_str());
    assert_eq!(json["private_key_pem"], material().private_key_pem.expose());
}

#[tokio::test]
async fn acme_accounts_are_named_by_the_hash_of_their_directory() {
    let clients = support::clients().await;
    let prefix = format!("{}/", support::unique_name("secrets"));
    let vault = SecretsManagerVault::new(clients.secrets_manager.clone(), prefix.clone());
    let directory = "https://127.0.0.1:14000/dir";
    vault
        .put_acme_account(directory, &SecretString::new(r#"{"id":"x"}"#))
        .await
        .unwrap();

    let name = format!(
        "{prefix}acme-account/{}",
        hex::encode(Sha256::digest(directory.as_bytes()))
    );
    assert_eq!(vault.acme_account_secret_name(directory), name);
    let stored = clients
        .secrets_manager
        .get_secret_value()
        .secret_id(&name)
        .send()
        .await
        .unwrap();
    assert_eq!(stored.secret_string(), Some(r#"{"id":"x"}"#));
}

#[tokio::test]
async fn an_unreachable_service_is_a_vault_error_without_the_key() {
    // Port 9 (discard) on loopback: nothing listens, so the connection is refused at once.
    let clients = AwsClients::for_local_endpoint("http://127.0.0.1:9").await;
    let vault = SecretsManagerVault::new(clients.secrets_manager, "unreachable/");

    let error = vault
        .put_material(&CertificateId::generate(), &material())
        .await
        .unwrap_err();

    assert!(matches!(error, Error::Vault(_)), "{error:?}");
    assert_eq!(error.status(), 503);
    let everything = format!("{error} {error:?}");
    assert!(
        everything.contains("Secrets Manager PutSecretValue failed"),
        "{everything}"
    );
    assert!(!everything.contains("secret-key-bytes"), "{everything}");
}

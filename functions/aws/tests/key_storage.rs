//! Key storage on moto (DynamoDB, Secrets Manager, KMS): what sealed items hold, that another
//! process unseals them through KMS, that a changed or moved seal does not open, data key
//! rotation without re-issuance, and a live deployment moved between modes and back with every
//! certificate readable by old and new processes at every step.

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use aws_sdk_dynamodb::primitives::Blob;
use aws_sdk_dynamodb::types::AttributeValue;
use edgecert_aws::{AwsClients, DynamoStore, KeyStorage, KeyStorageVault};
use edgecert_core::model::{Account, Certificate, CertificateStatus, Domain, SecretString};
use edgecert_core::ports::{
    AccountStore as _, CertificateMaterial, CertificateStore as _, ManualClock, MaterialVersion,
    Vault,
};
use edgecert_core::usecases::key_storage::{KeySweepSettings, SETTLE, sweep_key_storage};
use edgecert_core::{AccountId, CertificateId, Error, Hostname, PlanName};
use time::OffsetDateTime;

const KEY_TEXT: &str = "MIGHAgEAMBMGByqGSM49AgEGCCqGSM49AwEHBG0wawIBAQQg-this-is-the-secret";

fn material(label: &str) -> CertificateMaterial {
    CertificateMaterial {
        chain_pem: Some(format!(
            "-----BEGIN CERTIFICATE-----\n{label}\n-----END CERTIFICATE-----\n"
        )),
        private_key_pem: SecretString::new(format!(
            "-----BEGIN PRIVATE KEY-----\n{KEY_TEXT}-{label}\n-----END PRIVATE KEY-----\n"
        )),
    }
}

/// One deployment's storage: a table, a secret prefix and the tests' KMS key.
struct Deployment {
    clients: AwsClients,
    store: Arc<DynamoStore>,
    prefix: String,
    kms_key: String,
}

impl Deployment {
    async fn new() -> Deployment {
        let clients = support::clients().await;
        let store = Arc::new(support::fresh_store(&clients).await);
        let kms_key = support::kms_key(&clients).await;
        Deployment {
            prefix: format!("{}/", support::unique_name("secrets")),
            clients,
            store,
            kms_key,
        }
    }

    /// A process of this deployment configured for `storage` (a fresh one: nothing cached).
    fn vault(&self, storage: KeyStorage) -> Arc<KeyStorageVault> {
        Arc::new(
            KeyStorageVault::new(
                &self.clients,
                storage,
                self.store.table_name(),
                self.prefix.clone(),
                Some(self.kms_key.clone()),
            )
            .unwrap(),
        )
    }

    fn table(&self) -> &str {
        self.store.table_name()
    }

    /// The raw item of a sealed version.
    async fn sealed_item(
        &self,
        certificate: &CertificateId,
        version: &MaterialVersion,
    ) -> Option<std::collections::HashMap<String, AttributeValue>> {
        self.clients
            .dynamodb
            .get_item()
            .table_name(self.table())
            .key("PK", AttributeValue::S(format!("SEALED#{certificate}")))
            .key("SK", AttributeValue::S(format!("MAT#{}", version.0)))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .item
    }

    /// How many sealed items the certificate has.
    async fn sealed_count(&self, certificate: &CertificateId) -> i32 {
        self.clients
            .dynamodb
            .query()
            .table_name(self.table())
            .key_condition_expression("PK = :pk")
            .expression_attribute_values(":pk", AttributeValue::S(format!("SEALED#{certificate}")))
            .consistent_read(true)
            .send()
            .await
            .unwrap()
            .count
    }

    /// Whether the certificate's secret exists.
    async fn has_secret(&self, certificate: &CertificateId) -> bool {
        self.clients
            .secrets_manager
            .describe_secret()
            .secret_id(format!("{}cert/{certificate}", self.prefix))
            .send()
            .await
            .is_ok()
    }

    /// Issued certificates with material stored by `vault`, one per label.
    async fn issued_certificates(
        &self,
        vault: &dyn Vault,
        labels: &[&str],
    ) -> (AccountId, Vec<Certificate>) {
        let now = OffsetDateTime::now_utc();
        let mut account = Account::new("Key storage".to_owned(), PlanName::Elite, false, now);
        account.zone_token = None;
        self.store
            .create_account(&account, &edgecert_core::model::ApiKey::generate().hash)
            .await
            .unwrap();
        let mut certificates = Vec::new();
        for (n, label) in labels.iter().enumerate() {
            let id = CertificateId::generate();
            let version = vault.put_material(&id, &material(label)).await.unwrap();
            let owner = Domain::whitelisted(
                account.id.clone(),
                Hostname::parse_domain(&format!(
                    "{label}.{}.example.com",
                    support::unique_name("ks")
                ))
                .unwrap(),
                "https://origin.example.net".to_owned(),
                false,
                now,
            );
            let mut certificate = Certificate::managed(&owner, now);
            certificate.id = id;
            certificate.status = CertificateStatus::Issued;
            certificate.issued_at = Some(now);
            certificate.not_before = Some(now);
            certificate.expires_at = Some(now + time::Duration::days(90));
            certificate.next_renewal_at = Some(now + time::Duration::days(60));
            certificate.next_attempt_at = None;
            certificate.material_version = Some(version.0);
            certificate.updated_at = now - time::Duration::seconds(60 - n as i64);
            self.store
                .create_certificate(&certificate, 1000)
                .await
                .unwrap();
            certificates.push(certificate);
        }
        (account.id, certificates)
    }

    /// Every certificate's served material, as `vault` reads it now.
    async fn served(
        &self,
        vault: &dyn Vault,
        account: &AccountId,
        certificates: &[Certificate],
    ) -> Vec<(MaterialVersion, CertificateMaterial)> {
        let mut served = Vec::new();
        for certificate in certificates {
            let current = self
                .store
                .get_certificate(account, &certificate.id)
                .await
                .unwrap()
                .unwrap();
            let version = MaterialVersion(current.material_version.unwrap());
            let material = vault
                .get_material(&certificate.id, &version)
                .await
                .unwrap_or_else(|error| panic!("{} unreadable: {error}", certificate.id));
            served.push((version, material));
        }
        served
    }
}

/// Runs the sweep of `vault` until it finishes, checking after every run that both processes
/// read every certificate's served material, unchanged. Returns how many runs it took.
async fn sweep_until_finished(
    deployment: &Deployment,
    vault: &dyn Vault,
    other: &dyn Vault,
    account: &AccountId,
    certificates: &[Certificate],
    labels: &[&str],
) -> usize {
    let clock = ManualClock::new(OffsetDateTime::now_utc());
    let settings = KeySweepSettings {
        per_run: 2,
        concurrency: 2,
        page_size: 2,
        ..KeySweepSettings::default()
    };
    for run in 1..=20 {
        let report = sweep_key_storage(deployment.store.as_ref(), vault, &clock, &settings)
            .await
            .unwrap();
        assert_eq!(report.error_count, 0, "{report:?}");
        for reader in [vault, other] {
            let served = deployment.served(reader, account, certificates).await;
            for ((_, material), label) in served.iter().zip(labels) {
                assert_eq!(
                    material,
                    &self::material(label),
                    "material changed in a move"
                );
            }
        }
        if report.finished {
            return run;
        }
        clock.advance(SETTLE / 2);
    }
    panic!("the sweep did not finish in 20 runs");
}

#[tokio::test]
async fn sealed_items_hold_no_plaintext_key_and_another_process_unseals_them_through_kms() {
    let deployment = Deployment::new().await;
    let writer = deployment.vault(KeyStorage::Sealed);
    let certificate = CertificateId::generate();
    let version = writer
        .put_material(&certificate, &material("a"))
        .await
        .unwrap();
    assert!(version.0.starts_with("sealed.dk_"), "{}", version.0);

    let item = deployment
        .sealed_item(&certificate, &version)
        .await
        .expect("the sealed item");
    let everything = format!("{item:?}");
    assert!(
        !everything.contains(KEY_TEXT),
        "the private key is stored in the clear"
    );
    assert!(!everything.contains("PRIVATE KEY"));
    assert_eq!(
        item["chain_pem"].as_s().unwrap(),
        material("a").chain_pem.as_deref().unwrap()
    );
    assert_eq!(item["algorithm"].as_s().unwrap(), "AES-256-GCM");

    // A fresh process knows no data key: it unwraps the ring's with KMS.
    let reader = deployment.vault(KeyStorage::Sealed);
    assert_eq!(
        reader.get_material(&certificate, &version).await.unwrap(),
        material("a")
    );
    // And a process still in Secrets Manager mode reads it too (a deployment moving back).
    let old_mode = deployment.vault(KeyStorage::SecretsManager);
    assert_eq!(
        old_mode.get_material(&certificate, &version).await.unwrap(),
        material("a")
    );
    // The key ring holds the data key wrapped only.
    let ring = deployment
        .clients
        .dynamodb
        .get_item()
        .table_name(deployment.table())
        .key("PK", AttributeValue::S("SEALED#keyring".to_owned()))
        .key("SK", AttributeValue::S("KEYRING".to_owned()))
        .send()
        .await
        .unwrap()
        .item
        .unwrap();
    let current = ring["current_key"].as_s().unwrap();
    assert!(version.0.contains(current.as_str()));
    let entry = ring["data_keys"].as_m().unwrap()[current].as_m().unwrap();
    assert!(entry["wrapped"].as_b().unwrap().as_ref().len() > 32);
    assert_eq!(entry["kms_key"].as_s().unwrap(), &deployment.kms_key);
}

#[tokio::test]
async fn a_changed_or_moved_seal_does_not_open_and_the_error_shows_no_key() {
    let deployment = Deployment::new().await;
    let vault = deployment.vault(KeyStorage::Sealed);
    let (first, second) = (CertificateId::generate(), CertificateId::generate());
    let version = vault.put_material(&first, &material("a")).await.unwrap();
    let mut item = deployment.sealed_item(&first, &version).await.unwrap();

    // The same sealed bytes under another certificate's partition.
    item.insert(
        "PK".to_owned(),
        AttributeValue::S(format!("SEALED#{second}")),
    );
    deployment
        .clients
        .dynamodb
        .put_item()
        .table_name(deployment.table())
        .set_item(Some(item.clone()))
        .send()
        .await
        .unwrap();
    let moved = vault.get_material(&second, &version).await.unwrap_err();
    assert!(matches!(moved, Error::Corrupt(_)), "{moved:?}");
    assert!(!format!("{moved} {moved:?}").contains(KEY_TEXT));

    // Another chain served with the key.
    let mut other_chain = deployment.sealed_item(&first, &version).await.unwrap();
    other_chain.insert(
        "chain_pem".to_owned(),
        AttributeValue::S("-----BEGIN CERTIFICATE-----\nnot it\n".to_owned()),
    );
    // A flipped bit in the sealed key.
    let mut flipped = deployment.sealed_item(&first, &version).await.unwrap();
    let mut bytes = flipped["sealed_key"].as_b().unwrap().as_ref().to_vec();
    bytes[3] ^= 0x40;
    flipped.insert("sealed_key".to_owned(), AttributeValue::B(Blob::new(bytes)));
    for changed in [other_chain, flipped] {
        deployment
            .clients
            .dynamodb
            .put_item()
            .table_name(deployment.table())
            .set_item(Some(changed))
            .send()
            .await
            .unwrap();
        let error = vault.get_material(&first, &version).await.unwrap_err();
        assert!(matches!(error, Error::Corrupt(_)), "{error:?}");
        assert!(!format!("{error} {error:?}").contains(KEY_TEXT));
    }
}

#[tokio::test]
async fn rotating_the_data_key_reseals_everything_without_reissuing() {
    let deployment = Deployment::new().await;
    let vault = deployment.vault(KeyStorage::Sealed);
    let labels = ["r1", "r2", "r3", "r4", "r5"];
    let (account, certificates) = deployment
        .issued_certificates(vault.as_ref(), &labels)
        .await;
    let before = deployment
        .served(vault.as_ref(), &account, &certificates)
        .await;
    let old_generation = vault.storage_generation().await.unwrap().unwrap();

    assert!(vault.rotate_data_key().await.unwrap());
    let new_generation = vault.storage_generation().await.unwrap().unwrap();
    assert_ne!(old_generation, new_generation);
    // A process that had not seen the rotation still reads everything.
    let other = deployment.vault(KeyStorage::Sealed);
    let runs = sweep_until_finished(
        &deployment,
        vault.as_ref(),
        other.as_ref(),
        &account,
        &certificates,
        &labels,
    )
    .await;
    assert!(runs >= 3, "5 certificates at 2 a run took {runs} runs");

    let after = deployment
        .served(vault.as_ref(), &account, &certificates)
        .await;
    for ((old, old_material), (new, new_material)) in before.iter().zip(&after) {
        assert_ne!(old, new, "not re-sealed");
        assert!(vault.is_in_generation(new, &new_generation));
        // The same chain and key: nothing was issued again.
        assert_eq!(old_material, new_material);
    }
    for certificate in &certificates {
        assert_eq!(
            deployment.sealed_count(&certificate.id).await,
            1,
            "the version sealed under the old key is still stored"
        );
    }
}

#[tokio::test]
async fn a_live_deployment_moves_to_sealed_storage_and_back_with_every_certificate_served() {
    let deployment = Deployment::new().await;
    let labels = ["m1", "m2", "m3", "m4", "m5"];
    let secrets_manager = deployment.vault(KeyStorage::SecretsManager);
    let (account, certificates) = deployment
        .issued_certificates(secrets_manager.as_ref(), &labels)
        .await;
    for certificate in &certificates {
        assert!(deployment.has_secret(&certificate.id).await);
    }

    // The stack is updated to KeyStorage=sealed: processes of both configurations run side
    // by side while the renewer's sweep moves the material, a bounded number per run.
    let sealed = deployment.vault(KeyStorage::Sealed);
    sweep_until_finished(
        &deployment,
        sealed.as_ref(),
        secrets_manager.as_ref(),
        &account,
        &certificates,
        &labels,
    )
    .await;
    for certificate in &certificates {
        assert!(
            !deployment.has_secret(&certificate.id).await,
            "the secret of a moved certificate is still paid for"
        );
        assert_eq!(deployment.sealed_count(&certificate.id).await, 1);
    }
    for (version, _) in deployment
        .served(sealed.as_ref(), &account, &certificates)
        .await
    {
        assert!(version.0.starts_with("sealed."));
    }

    // And back to Secrets Manager.
    let back = deployment.vault(KeyStorage::SecretsManager);
    sweep_until_finished(
        &deployment,
        back.as_ref(),
        sealed.as_ref(),
        &account,
        &certificates,
        &labels,
    )
    .await;
    for certificate in &certificates {
        assert!(deployment.has_secret(&certificate.id).await);
        assert_eq!(
            deployment.sealed_count(&certificate.id).await,
            0,
            "sealed material left behind"
        );
    }
}

#[tokio::test]
async fn sealed_mode_without_a_kms_key_is_refused() {
    let clients = support::clients().await;
    let error = KeyStorageVault::new(&clients, KeyStorage::Sealed, "t", "p/", None).unwrap_err();
    assert!(error.contains("KMS key"), "{error}");
}

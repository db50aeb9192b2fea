//! The vault: material versions, ACME account credentials, pruning, rotation, key storage sweep.

use edgecert_core::Error;
use edgecert_core::ItemKind;
use edgecert_core::PlanName;
use edgecert_core::ids::{CertificateId, DomainId};
use edgecert_core::model::SecretString;
use edgecert_core::ports::{CertificateMaterial, MAX_MATERIAL_BYTES, MaterialVersion};
use time::Duration;

use super::new_account;
use crate::Adapters;
use crate::fixtures::{self, NOW};

fn material(label: &str) -> CertificateMaterial {
    CertificateMaterial {
        chain_pem: Some(format!(
            "-----BEGIN CERTIFICATE-----\n{label}\n-----END CERTIFICATE-----\n"
        )),
        private_key_pem: SecretString::new(format!(
            "-----BEGIN PRIVATE KEY-----\n{label}\n-----END PRIVATE KEY-----\n"
        )),
    }
}

/// Every write is a new version; every version stays readable until the material is deleted.
pub async fn vault_round_trip_keeps_every_version(adapters: &Adapters) {
    let certificate = CertificateId::generate();
    let key_only = CertificateMaterial {
        chain_pem: None,
        private_key_pem: SecretString::new(
            "-----BEGIN PRIVATE KEY-----\nk\n-----END PRIVATE KEY-----\n",
        ),
    };
    let v0 = adapters
        .vault
        .put_material(&certificate, &key_only)
        .await
        .unwrap();
    let v1 = adapters
        .vault
        .put_material(&certificate, &material("first"))
        .await
        .unwrap();
    let v2 = adapters
        .vault
        .put_material(&certificate, &material("second"))
        .await
        .unwrap();
    assert_ne!(v1, v2);
    assert_ne!(v0, v1);

    assert_eq!(
        adapters
            .vault
            .get_material(&certificate, &v1)
            .await
            .unwrap(),
        material("first")
    );
    assert_eq!(
        adapters
            .vault
            .get_material(&certificate, &v2)
            .await
            .unwrap(),
        material("second")
    );
    assert_eq!(
        adapters
            .vault
            .get_material(&certificate, &v0)
            .await
            .unwrap(),
        key_only
    );

    let unknown = adapters
        .vault
        .get_material(&CertificateId::generate(), &v1)
        .await
        .unwrap_err();
    assert!(
        matches!(unknown, Error::NotFound(ItemKind::CertificateMaterial)),
        "{unknown:?}"
    );

    adapters.vault.delete_material(&certificate).await.unwrap();
    let gone = adapters
        .vault
        .get_material(&certificate, &v2)
        .await
        .unwrap_err();
    assert!(
        matches!(gone, Error::NotFound(ItemKind::CertificateMaterial)),
        "{gone:?}"
    );
    adapters.vault.delete_material(&certificate).await.unwrap();
}

/// A write that fails (material over the vault's size limit) leaves the previous version
/// readable and adds nothing.
pub async fn vault_keeps_previous_version_when_a_write_fails(adapters: &Adapters) {
    let certificate = CertificateId::generate();
    let current = adapters
        .vault
        .put_material(&certificate, &material("served"))
        .await
        .unwrap();
    let oversized = CertificateMaterial {
        chain_pem: Some("A".repeat(MAX_MATERIAL_BYTES)),
        private_key_pem: SecretString::new(
            "-----BEGIN PRIVATE KEY-----\nnew\n-----END PRIVATE KEY-----\n",
        ),
    };
    let error = adapters
        .vault
        .put_material(&certificate, &oversized)
        .await
        .unwrap_err();
    assert!(matches!(error, Error::MaterialTooLarge { .. }), "{error:?}");
    assert!(
        !format!("{error:?} {error}").contains("PRIVATE KEY"),
        "key material leaked into an error"
    );
    assert_eq!(
        adapters
            .vault
            .get_material(&certificate, &current)
            .await
            .unwrap(),
        material("served")
    );
    let bogus = MaterialVersion("no-such-version".to_owned());
    assert!(
        adapters
            .vault
            .get_material(&certificate, &bogus)
            .await
            .is_err()
    );
}

/// ACME account credentials are kept per directory URL and replaced on write.
pub async fn vault_keeps_acme_account_credentials(adapters: &Adapters) {
    let directory = format!("https://127.0.0.1:14000/dir?{}", DomainId::generate());
    assert_eq!(
        adapters.vault.get_acme_account(&directory).await.unwrap(),
        None
    );
    adapters
        .vault
        .put_acme_account(&directory, &SecretString::new(r#"{"id":"1"}"#))
        .await
        .unwrap();
    adapters
        .vault
        .put_acme_account(&directory, &SecretString::new(r#"{"id":"2"}"#))
        .await
        .unwrap();
    let stored = adapters
        .vault
        .get_acme_account(&directory)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(stored.expose(), r#"{"id":"2"}"#);
    assert_eq!(
        adapters
            .vault
            .get_acme_account("https://other.example/dir")
            .await
            .unwrap(),
        None
    );
}

/// Pruning deletes only what the certificate no longer refers to: the version it keeps, and
/// every other certificate's material, stay readable.
pub async fn vault_prune_keeps_what_the_certificate_refers_to(adapters: &Adapters) {
    let vault = &adapters.vault;
    let (certificate, other) = (CertificateId::generate(), CertificateId::generate());
    let old = vault
        .put_material(&certificate, &material("old"))
        .await
        .unwrap();
    let new = vault
        .put_material(&certificate, &material("new"))
        .await
        .unwrap();
    let others = vault
        .put_material(&other, &material("other"))
        .await
        .unwrap();

    vault
        .prune_material(&certificate, std::slice::from_ref(&new), &[old])
        .await
        .unwrap();
    assert_eq!(
        vault.get_material(&certificate, &new).await.unwrap(),
        material("new")
    );
    assert_eq!(
        vault.get_material(&other, &others).await.unwrap(),
        material("other")
    );
    // Nothing superseded, everything kept: nothing changes.
    vault
        .prune_material(&certificate, std::slice::from_ref(&new), &[])
        .await
        .unwrap();
    assert_eq!(
        vault.get_material(&certificate, &new).await.unwrap(),
        material("new")
    );
}

/// A rotated data key seals what is stored next; what the older key sealed stays readable
/// (until the key storage sweep moves it) and is known to be outside the new generation.
pub async fn vault_rotation_keeps_material_readable(adapters: &Adapters) {
    let vault = &adapters.vault;
    let certificate = CertificateId::generate();
    let before = vault
        .put_material(&certificate, &material("before"))
        .await
        .unwrap();
    let first = vault.storage_generation().await.unwrap();
    let rotated = vault.rotate_data_key().await.unwrap();
    let second = vault.storage_generation().await.unwrap();
    let after = vault
        .put_material(&certificate, &material("after"))
        .await
        .unwrap();
    assert_eq!(
        vault.get_material(&certificate, &before).await.unwrap(),
        material("before")
    );
    assert_eq!(
        vault.get_material(&certificate, &after).await.unwrap(),
        material("after")
    );
    if let Some(second) = &second {
        assert!(vault.is_in_generation(&after, second));
        if rotated && first.as_ref() != Some(second) {
            assert!(
                !vault.is_in_generation(&before, second),
                "material sealed before the rotation counts as re-sealed"
            );
        }
    }
    if !rotated {
        assert_eq!(first, second, "the generation changed without a rotation");
    }
}

/// The key storage sweep moves every certificate's served and pending material to the vault's
/// current generation a bounded number per run, switches each certificate only to stored
/// material (every certificate's material stays readable between runs), and then finishes.
pub async fn key_storage_sweep_moves_material_to_the_current_generation(adapters: &Adapters) {
    use edgecert_core::ports::ManualClock;
    use edgecert_core::usecases::key_storage::{KeySweepSettings, SETTLE, sweep_key_storage};

    let (store, vault) = (&adapters.store, &adapters.vault);
    let clock = ManualClock::new(NOW);
    let account = new_account(adapters, PlanName::Elite).await;
    let mut stored = Vec::new();
    for n in 0..5 {
        let hostname = fixtures::unique_hostname(&format!("sweep{n}"));
        let mut certificate = fixtures::managed(&account, &hostname);
        certificate.updated_at = NOW - Duration::minutes(10 - n);
        let mut expected = Vec::new();
        if n < 3 {
            certificate = fixtures::issued(certificate, NOW + Duration::days(30));
            let served = material(&format!("served{n}"));
            let version = vault.put_material(&certificate.id, &served).await.unwrap();
            certificate.material_version = Some(version.0);
            expected.push(served);
        }
        if n == 0 || n == 3 {
            let pending = CertificateMaterial {
                chain_pem: None,
                ..material(&format!("pending{n}"))
            };
            let version = vault.put_material(&certificate.id, &pending).await.unwrap();
            certificate.pending_material_version = Some(version.0);
            expected.push(pending);
        }
        store.create_certificate(&certificate, 100).await.unwrap();
        stored.push((certificate, expected));
    }
    let with_material = stored
        .iter()
        .filter(|(_, expected)| !expected.is_empty())
        .count();
    let readable = || async {
        for (certificate, expected) in &stored {
            let current = store
                .get_certificate(&account, &certificate.id)
                .await
                .unwrap()
                .unwrap();
            let versions: Vec<_> = current.material_versions().cloned().collect();
            assert_eq!(versions.len(), expected.len(), "{current:?}");
            for (version, material) in versions.into_iter().zip(expected) {
                assert_eq!(
                    &vault
                        .get_material(&certificate.id, &MaterialVersion(version))
                        .await
                        .unwrap(),
                    material,
                    "a certificate names material that is not stored"
                );
            }
        }
    };

    let before = vault.storage_generation().await.unwrap();
    let rotated = vault.rotate_data_key().await.unwrap();
    let settings = KeySweepSettings {
        per_run: 2,
        concurrency: 2,
        page_size: 2,
        ..KeySweepSettings::default()
    };
    let mut moved = 0;
    let mut runs = 0;
    let generation = loop {
        let report = sweep_key_storage(store.as_ref(), vault.as_ref(), &clock, &settings)
            .await
            .unwrap();
        assert_eq!(report.error_count, 0, "{report:?}");
        assert!(
            report.moved <= 3,
            "a run moved more than a page past its budget"
        );
        moved += report.moved;
        readable().await;
        runs += 1;
        if report.finished {
            break report.generation;
        }
        assert!(runs < 20, "the sweep does not finish: {report:?}");
        clock.advance(SETTLE / 4);
    };
    let Some(generation) = generation else {
        assert_eq!(moved, 0, "a vault with one place moved material");
        return;
    };
    for (certificate, _) in &stored {
        let current = store
            .get_certificate(&account, &certificate.id)
            .await
            .unwrap()
            .unwrap();
        for version in current.material_versions() {
            assert!(
                vault.is_in_generation(&MaterialVersion(version.clone()), &generation),
                "{version} was left outside {generation}"
            );
        }
    }
    let changed = rotated && before.as_ref() != Some(&generation);
    assert_eq!(moved, if changed { with_material as u64 } else { 0 });
    // Finished: a run reads the saved progress and nothing else.
    let again = sweep_key_storage(store.as_ref(), vault.as_ref(), &clock, &settings)
        .await
        .unwrap();
    assert!(again.finished && again.examined == 0, "{again:?}");
}

//! Services on a backend: what the tests of the issuance engine, the workers, the API and the
//! edge build on, written once.
//!
//! [`ServicesOnBackend::start`] makes a fresh store and vault on either [`Backend`] (a SQLite
//! file, or a DynamoDB table with Secrets Manager or KMS-sealed keys in moto), EdgeCert's
//! [`Services`] over them (a manual clock, challtestsrv as resolver and DNS provider), and an
//! Elite account; [`issuer_over`] builds an issuer on a Pebble whose CA traffic goes through
//! the fault layer; [`on_both_backends!`] runs a scenario on both backends, time-bounded.

#![allow(clippy::unwrap_used, clippy::expect_used)] // test support: a failed setup fails the test

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration;

use edgecert_acme::testing::CaFaults;
use edgecert_acme::{Issuer, IssuerConfig, ca_http_client};
use edgecert_aws::{
    AwsClients, DynamoStore, KeyStorage, KeyStorageVault, SecretsManagerVault, create_table,
    ensure_kms_key,
};
use edgecert_core::ids::{CertificateId, DomainId, ZoneId};
use edgecert_core::model::{Account, ApiKey, Certificate, CertificateEvent, Domain, Zone};
use edgecert_core::origin::OriginPolicy;
use edgecert_core::ports::{Clock, DnsProviders, DnsResolver, ManualClock, Store, Vault};
use edgecert_core::usecases::{EdgeSettings, Services};
use edgecert_core::{Hostname, PlanCatalog, PlanName};
use edgecert_dns::{ChalltestsrvDnsProvider, HickoryResolver};
use edgecert_embedded::Database;
pub use edgecert_integration::bounded;
use edgecert_integration::{Challtestsrv, Moto, Pebble};
use rand::Rng as _;
use time::OffsetDateTime;

/// The CA identity Pebble stands for in CAA records.
pub const PEBBLE_CAA_IDENTITY: &str = "pebble.letsencrypt.org";
/// The edge the services tell customers to point at.
pub const EDGE_HOSTNAME: &str = "edge.edgecert.test";

/// Which adapters a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file (store and vault), the local default.
    Sqlite,
    /// DynamoDB with Secrets Manager or KMS, on moto.
    Dynamo,
}

/// Where certificate keys go on the [`Backend::Dynamo`] backend (SQLite keeps them in its file).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MotoKeys {
    /// A secret per certificate in Secrets Manager.
    SecretsManager,
    /// Sealed with a KMS data key in the table (the stack's default).
    Sealed,
}

/// Runs scenarios on both backends: `on_both_backends!(a, b)` makes `sqlite::a`,
/// `dynamodb::a`... calling `a(Backend)`, each bounded to four minutes.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    $crate::bounded(
                        std::time::Duration::from_secs(240),
                        concat!(stringify!($scenario), " on sqlite"),
                        super::$scenario($crate::Backend::Sqlite),
                    )
                    .await
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    $crate::bounded(
                        std::time::Duration::from_secs(240),
                        concat!(stringify!($scenario), " on dynamo"),
                        super::$scenario($crate::Backend::Dynamo),
                    )
                    .await
                }
            )*
        }
    };
}

/// A random DNS label, so tests sharing Pebble, challtestsrv and moto never meet.
pub fn unique_label(prefix: &str) -> String {
    let random: u64 = rand::thread_rng().r#gen();
    format!("{prefix}{random:012x}")
}

/// A fresh store and vault on one backend, whatever keeps them alive, and the moto clients
/// and table on the DynamoDB backend.
pub struct Adapters {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The vault.
    pub vault: Arc<dyn Vault>,
    /// The moto clients and table, on [`Backend::Dynamo`].
    pub dynamo: Option<(AwsClients, String)>,
    /// The SQLite file's directory, on [`Backend::Sqlite`].
    pub files: Option<tempfile::TempDir>,
}

impl Adapters {
    /// Fresh adapters on `backend`, keys where `keys` says on moto.
    pub async fn start(backend: Backend, keys: MotoKeys) -> Adapters {
        match backend {
            Backend::Sqlite => Adapters::sqlite_in(tempfile::tempdir().unwrap()),
            Backend::Dynamo => {
                let moto = Moto::shared().await.expect("starting moto_server");
                let clients = AwsClients::for_local_endpoint(&moto.endpoint_url()).await;
                let table = unique_label("edgecert-tests-");
                create_table(&clients.dynamodb, &table).await.unwrap();
                let vault: Arc<dyn Vault> = match keys {
                    MotoKeys::SecretsManager => Arc::new(SecretsManagerVault::new(
                        clients.secrets_manager.clone(),
                        format!("{table}/"),
                    )),
                    MotoKeys::Sealed => Arc::new(
                        KeyStorageVault::new(
                            &clients,
                            KeyStorage::Sealed,
                            table.clone(),
                            format!("{table}/"),
                            Some(
                                ensure_kms_key(&clients.kms, "alias/edgecert-tests")
                                    .await
                                    .unwrap(),
                            ),
                        )
                        .unwrap(),
                    ),
                };
                Adapters {
                    // moto applies concurrent conditional writes without isolation, so two
                    // callers could both take a lease there; DynamoDB itself does not.
                    store: Arc::new(
                        DynamoStore::new(clients.dynamodb.clone(), table.clone())
                            .with_serialized_writes(),
                    ),
                    vault,
                    dynamo: Some((clients, table)),
                    files: None,
                }
            }
        }
    }
}

impl Adapters {
    /// A fresh SQLite file in `dir` (kept as long as the adapters).
    pub fn sqlite_in(dir: tempfile::TempDir) -> Adapters {
        let database = Database::open(dir.path().join("edgecert.db")).unwrap();
        Adapters {
            store: Arc::new(database.store()),
            vault: Arc::new(database.vault()),
            dynamo: None,
            files: Some(dir),
        }
    }
}

/// Services over `store` and `vault` with the tests' edge ([`EDGE_HOSTNAME`] at 127.0.0.1),
/// the default plans, no DNS provider and no issuance.
pub fn services_over(
    store: Arc<dyn Store>,
    vault: Arc<dyn Vault>,
    resolver: Arc<dyn DnsResolver>,
    clock: Arc<dyn Clock>,
    origin_policy: OriginPolicy,
) -> Services {
    Services {
        store,
        vault,
        resolver,
        clock,
        plans: PlanCatalog::default(),
        edge: EdgeSettings {
            hostname: EDGE_HOSTNAME.to_owned(),
            addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        },
        origin_policy,
        dns_providers: DnsProviders::default(),
        issuance: None,
    }
}

/// A new Elite account named `name`, stored.
pub async fn elite_account(store: &dyn Store, name: &str, now: OffsetDateTime) -> Account {
    let account = Account::new(name.to_owned(), PlanName::Elite, false, now);
    store
        .create_account(&account, &ApiKey::generate().hash)
        .await
        .unwrap();
    account
}

/// EdgeCert's services on fresh adapters, with an Elite account of their own.
pub struct ServicesOnBackend {
    /// The backend.
    pub backend: Backend,
    /// The store.
    pub store: Arc<dyn Store>,
    /// The vault.
    pub vault: Arc<dyn Vault>,
    /// The services' clock, standing at the real time when started.
    pub clock: Arc<ManualClock>,
    /// The services: no issuance yet (an issuer is built over them, see [`issuer_over`]).
    pub services: Services,
    /// The DNS server and the `challtestsrv` DNS provider of the services.
    pub challtestsrv: Challtestsrv,
    /// An Elite account, stored.
    pub account: Account,
    /// The adapters' moto clients and table, or SQLite file.
    pub adapters: Adapters,
}

impl ServicesOnBackend {
    /// Services on fresh adapters of `backend`, resolving through `challtestsrv`, which is
    /// also their `challtestsrv` DNS provider.
    pub async fn start(
        backend: Backend,
        keys: MotoKeys,
        challtestsrv: &Challtestsrv,
    ) -> ServicesOnBackend {
        let adapters = Adapters::start(backend, keys).await;
        let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
        let mut services = services_over(
            adapters.store.clone(),
            adapters.vault.clone(),
            Arc::new(HickoryResolver::with_name_server(
                challtestsrv.dns_server_addr(),
            )),
            clock.clone(),
            OriginPolicy::default(),
        );
        services.dns_providers = DnsProviders::default().with(
            "challtestsrv",
            Arc::new(ChalltestsrvDnsProvider::new(challtestsrv.management_url()).unwrap()),
        );
        let account = elite_account(adapters.store.as_ref(), "Tests", clock.now()).await;
        ServicesOnBackend {
            backend,
            store: adapters.store.clone(),
            vault: adapters.vault.clone(),
            clock,
            services,
            challtestsrv: challtestsrv.clone(),
            account,
            adapters,
        }
    }

    /// A new zone `z<random>.example.com` of the account, served by `provider`.
    pub async fn zone(&self, provider: &str, verified: bool) -> Zone {
        let name = Hostname::parse_domain(&format!("{}.example.com", unique_label("z"))).unwrap();
        let zone = Zone {
            id: ZoneId::generate(),
            account_id: self.account.id.clone(),
            name,
            provider: provider.to_owned(),
            provider_zone_id: "local".to_owned(),
            role_arn: None,
            verified,
            created_at: self.clock.now(),
            version: 1,
        };
        self.store.create_zone(&zone).await.unwrap();
        zone
    }

    /// The stored certificate.
    pub async fn certificate(&self, id: &CertificateId) -> Certificate {
        self.store
            .get_certificate(&self.account.id, id)
            .await
            .unwrap()
            .expect("certificate exists")
    }

    /// The stored domain.
    pub async fn domain(&self, id: &DomainId) -> Domain {
        self.store
            .get_domain(&self.account.id, id)
            .await
            .unwrap()
            .expect("domain exists")
    }

    /// The certificate's events, newest first.
    pub async fn events(&self, id: &CertificateId) -> Vec<CertificateEvent> {
        self.store.list_events(id, 100).await.unwrap()
    }
}

/// The issuer configuration for `pebble`: its listener's CA, its CAA identity, and polling
/// fast enough for tests.
pub fn pebble_config(pebble: &Pebble) -> IssuerConfig {
    let mut config = IssuerConfig::new(pebble.directory_url())
        .with_ca_root_pem(pebble.listener_ca_pem_path().to_path_buf())
        .with_caa_identities([PEBBLE_CAA_IDENTITY])
        .with_poll_initial_delay(Duration::from_millis(25));
    config.attempt_pause = Duration::from_millis(50);
    config.poll_timeout = Duration::from_secs(30);
    config
}

/// An issuer over `services` with `config`, its CA traffic through `faults`.
pub fn issuer_over(services: &Services, config: IssuerConfig, faults: &CaFaults) -> Issuer {
    let http = ca_http_client(config.ca_root_pem.as_deref(), config.request_timeout).unwrap();
    Issuer::with_http_client(services.clone(), config, faults.client(http))
}

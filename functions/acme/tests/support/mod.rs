//! What the issuance tests share: a Pebble per test binary (plus private ones where a test
//! needs Pebble's HTTP-01 port to itself), and a [`Harness`] holding a fresh store and vault on
//! either backend — a SQLite file, or DynamoDB + Secrets Manager on moto — with an EdgeCert
//! account, a manual clock and an issuer whose CA client goes through a fault layer.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use edgecert_acme::testing::{CaFaults, FailingVault, SkippingDnsProvider};
use edgecert_acme::{Issuer, IssuerConfig, ca_http_client};
use edgecert_aws::{AwsClients, DynamoStore, SecretsManagerVault, create_table};
use edgecert_core::ids::{AccountId, CertificateId, DomainId, ZoneId};
use edgecert_core::model::{
    Account, ApiKey, Certificate, CertificateEvent, Domain, KeyType, ProvisioningStep, Zone,
};
use edgecert_core::origin::OriginPolicy;
use edgecert_core::ports::{
    Clock, DnsProviders, DnsResolver, ManualClock, MaterialVersion, Store, Vault,
};
use edgecert_core::usecases::issuance::StepHook;
use edgecert_core::usecases::{EdgeSettings, Services};
use edgecert_core::{Hostname, PlanCatalog, PlanName};
use edgecert_dns::{ChalltestsrvDnsProvider, HickoryResolver};
use edgecert_embedded::Database;
use edgecert_integration::{Challtestsrv, Moto, Pebble, PebbleOptions};
use rand::Rng as _;
use rcgen::{KeyPair, PublicKeyData as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use time::OffsetDateTime;
use tokio::sync::OnceCell;

/// The CA identity Pebble stands for in CAA records of these tests.
pub const PEBBLE_CAA_IDENTITY: &str = "pebble.letsencrypt.org";

/// The Pebble shared by the tests of this binary that do not need its HTTP-01 port.
static SHARED_PEBBLE: OnceCell<Pebble> = OnceCell::const_new();

/// Starts the shared Pebble on first use, with the launcher's defaults: no validation sleep,
/// and Pebble's own 5% nonce rejection and 50% authorization reuse.
pub async fn shared_pebble() -> &'static Pebble {
    SHARED_PEBBLE
        .get_or_init(|| async {
            Pebble::start(PebbleOptions::default())
                .await
                .expect("starting Pebble")
        })
        .await
}

/// Which adapters a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file (store and vault), the local default.
    Sqlite,
    /// DynamoDB and Secrets Manager, on moto.
    Dynamo,
}

/// A fresh store and vault, an Elite account, and everything an issuer needs.
pub struct Harness {
    pub store: Arc<dyn Store>,
    /// The vault as the issuer sees it; fails writes on demand.
    pub vault: Arc<FailingVault>,
    pub clock: Arc<ManualClock>,
    pub resolver: Arc<HickoryResolver>,
    pub services: Services,
    pub faults: CaFaults,
    pub account: Account,
    pub skipping_dns: Arc<SkippingDnsProvider>,
    pub challtestsrv: Challtestsrv,
    directory_url: String,
    ca_root: PathBuf,
    _files: Option<tempfile::TempDir>,
}

/// Runs a scenario on both backends: `on_both_backends!(scenario_a, scenario_b)` makes
/// `sqlite::scenario_a`, `dynamodb::scenario_a`... calling `scenario_a(Backend)`.
#[macro_export]
macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    edgecert_integration::bounded(
                        std::time::Duration::from_secs(240),
                        concat!(stringify!($scenario), " on sqlite"),
                        super::$scenario(super::support::Backend::Sqlite),
                    )
                    .await
                }
            )*
        }
        mod dynamodb {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    edgecert_integration::bounded(
                        std::time::Duration::from_secs(240),
                        concat!(stringify!($scenario), " on dynamo"),
                        super::$scenario(super::support::Backend::Dynamo),
                    )
                    .await
                }
            )*
        }
    };
}

/// A random DNS label, so tests sharing Pebble and moto never touch each other's names.
pub fn unique_label(prefix: &str) -> String {
    let random: u64 = rand::thread_rng().r#gen();
    format!("{prefix}{random:012x}")
}

impl Harness {
    /// A harness on `backend` issuing from `pebble`.
    pub async fn new(backend: Backend, pebble: &Pebble) -> Harness {
        let (store, vault, files): (Arc<dyn Store>, Arc<dyn Vault>, _) = match backend {
            Backend::Sqlite => {
                let files = tempfile::tempdir().unwrap();
                let database = Database::open(files.path().join("edgecert.db")).unwrap();
                (
                    Arc::new(database.store()),
                    Arc::new(database.vault()),
                    Some(files),
                )
            }
            Backend::Dynamo => {
                let moto = Moto::shared().await.expect("starting moto_server");
                let clients = AwsClients::for_local_endpoint(&moto.endpoint_url()).await;
                let table = unique_label("edgecert-acme-");
                create_table(&clients.dynamodb, &table).await.unwrap();
                (
                    // moto applies concurrent conditional writes without isolation, so two
                    // callers could both take a lease there; DynamoDB itself does not.
                    Arc::new(
                        DynamoStore::new(clients.dynamodb.clone(), table.clone())
                            .with_serialized_writes(),
                    ),
                    Arc::new(SecretsManagerVault::new(
                        clients.secrets_manager.clone(),
                        format!("{table}/"),
                    )),
                    None,
                )
            }
        };
        let vault = Arc::new(FailingVault::new(vault));
        let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
        let challtestsrv = pebble.challtestsrv().clone();
        let resolver = Arc::new(HickoryResolver::with_name_server(
            challtestsrv.dns_server_addr(),
        ));
        let skipping_dns = Arc::new(SkippingDnsProvider::new());
        let dns_providers = DnsProviders::default()
            .with(
                "challtestsrv",
                Arc::new(ChalltestsrvDnsProvider::new(challtestsrv.management_url()).unwrap()),
            )
            .with("skipping", skipping_dns.clone());
        let services = Services {
            store: store.clone(),
            vault: vault.clone(),
            resolver: resolver.clone(),
            clock: clock.clone(),
            plans: PlanCatalog::default(),
            edge: EdgeSettings {
                hostname: "edge.edgecert.test".to_owned(),
                addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
            },
            origin_policy: OriginPolicy::default(),
            dns_providers,
            issuance: None,
        };
        let account = Account::new(
            "Issuance tests".to_owned(),
            PlanName::Elite,
            false,
            clock.now(),
        );
        store
            .create_account(&account, &ApiKey::generate().hash)
            .await
            .unwrap();
        Harness {
            store,
            vault,
            clock,
            resolver,
            services,
            faults: CaFaults::new(),
            account,
            skipping_dns,
            challtestsrv,
            directory_url: pebble.directory_url(),
            ca_root: pebble.listener_ca_pem_path().to_path_buf(),
            _files: files,
        }
    }

    /// The issuer configuration for Pebble: its listener CA, its CAA identity, fast polling.
    pub fn config(&self) -> IssuerConfig {
        let mut config = IssuerConfig::new(self.directory_url.clone())
            .with_ca_root_pem(self.ca_root.clone())
            .with_caa_identities([PEBBLE_CAA_IDENTITY])
            .with_poll_initial_delay(Duration::from_millis(25));
        config.attempt_pause = Duration::from_millis(50);
        config.poll_timeout = Duration::from_secs(30);
        config
    }

    /// An issuer whose CA traffic goes through [`Harness::faults`].
    pub fn issuer(&self) -> Arc<Issuer> {
        Arc::new(self.build_issuer(None))
    }

    /// Like [`Harness::issuer`], with a step hook.
    pub fn issuer_with_hook(&self, hook: Arc<dyn StepHook>) -> Arc<Issuer> {
        Arc::new(self.build_issuer(Some(hook)))
    }

    /// An issuer with `config` (from [`Harness::config`], changed) and an optional hook.
    pub fn issuer_with_config(
        &self,
        config: IssuerConfig,
        hook: Option<Arc<dyn StepHook>>,
    ) -> Arc<Issuer> {
        Arc::new(self.build_issuer_with(config, hook))
    }

    fn build_issuer(&self, hook: Option<Arc<dyn StepHook>>) -> Issuer {
        self.build_issuer_with(self.config(), hook)
    }

    fn build_issuer_with(&self, config: IssuerConfig, hook: Option<Arc<dyn StepHook>>) -> Issuer {
        let http = ca_http_client(config.ca_root_pem.as_deref(), config.request_timeout).unwrap();
        let issuer =
            Issuer::with_http_client(self.services.clone(), config, self.faults.client(http));
        match hook {
            Some(hook) => issuer.with_step_hook(hook),
            None => issuer,
        }
    }

    /// A new verified zone `z<random>.example.com` served by `provider`.
    pub async fn zone(&self, provider: &str) -> Zone {
        self.zone_with(provider, true).await
    }

    /// A new zone, verified or not.
    pub async fn zone_with(&self, provider: &str, verified: bool) -> Zone {
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

    /// A pending downloadable certificate for `domain` and `sans` in `zone`.
    pub async fn downloadable(
        &self,
        zone: &Zone,
        domain: &str,
        sans: &[String],
        key_type: KeyType,
    ) -> Certificate {
        let now = self.clock.now();
        let sans = sans
            .iter()
            .map(|name| Hostname::parse_certificate_name(name).unwrap())
            .collect();
        let certificate = Certificate::downloadable(
            self.account.id.clone(),
            zone.id.clone(),
            Hostname::parse_certificate_name(domain).unwrap(),
            sans,
            now,
        )
        .with_key_type(key_type)
        .with_auto_renew(true);
        self.store
            .create_certificate(&certificate, 100)
            .await
            .unwrap();
        certificate
    }

    /// A whitelisted domain `hostname` in step `issuing` with its pending managed certificate.
    pub async fn managed(&self, hostname: &str) -> (Domain, Certificate) {
        let now = self.clock.now();
        let mut domain = Domain::whitelisted(
            self.account.id.clone(),
            Hostname::parse_domain(hostname).unwrap(),
            "http://127.0.0.1:9".to_owned(),
            false,
            now,
        );
        domain.provisioning_step = ProvisioningStep::Issuing;
        self.store.create_domain(&domain, 100).await.unwrap();
        let certificate = Certificate::managed(&domain, now);
        self.store
            .create_certificate(&certificate, 0)
            .await
            .unwrap();
        domain.certificate_id = Some(certificate.id.clone());
        let domain = self.store.update_domain(&domain).await.unwrap();
        (domain, certificate)
    }

    /// `hostname` whitelisted by a new account other than the harness's.
    pub async fn whitelisted_by_another_account(&self, hostname: &str) -> Domain {
        let now = self.clock.now();
        let other = Account {
            id: AccountId::generate(),
            name: "Another tenant".to_owned(),
            ..self.account.clone()
        };
        self.store
            .create_account(&other, &ApiKey::generate().hash)
            .await
            .unwrap();
        let domain = Domain::whitelisted(
            other.id,
            Hostname::parse_domain(hostname).unwrap(),
            "http://127.0.0.1:9".to_owned(),
            false,
            now,
        );
        self.store.create_domain(&domain, 100).await.unwrap();
        domain
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

    /// The TXT values challtestsrv serves at `name` now.
    pub async fn txt(&self, name: &str) -> Vec<String> {
        self.resolver.txt(name).await.unwrap()
    }

    /// Chain and key of a stored material version.
    pub async fn material(&self, id: &CertificateId, version: &str) -> (String, String) {
        let material = self
            .vault
            .get_material(id, &MaterialVersion(version.to_owned()))
            .await
            .unwrap();
        (
            material.chain_pem.unwrap_or_default(),
            material.private_key_pem.expose().to_owned(),
        )
    }
}

/// Checks that `chain_pem` verifies against `issuing_root_pem` for each of `names`, as a TLS
/// client would (rustls' WebPKI verifier on aws-lc-rs).
pub fn assert_chain_verifies(chain_pem: &str, issuing_root_pem: &str, names: &[String]) {
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(!chain.is_empty(), "empty chain");
    let mut roots = rustls::RootCertStore::empty();
    for root in CertificateDer::pem_slice_iter(issuing_root_pem.as_bytes()) {
        roots.add(root.unwrap()).unwrap();
    }
    let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
        Arc::new(roots),
        Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
    )
    .build()
    .unwrap();
    for name in names {
        let server_name = ServerName::try_from(name.clone()).unwrap();
        rustls::client::danger::ServerCertVerifier::verify_server_cert(
            verifier.as_ref(),
            &chain[0],
            &chain[1..],
            &server_name,
            &[],
            UnixTime::now(),
        )
        .unwrap_or_else(|error| panic!("chain does not verify for {name}: {error}"));
    }
}

/// Whether the chain's leaf certifies the PEM private key.
pub fn leaf_matches_key(chain_pem: &str, key_pem: &str) -> bool {
    let leaf = CertificateDer::pem_slice_iter(chain_pem.as_bytes())
        .next()
        .unwrap()
        .unwrap();
    let (_, certificate) = x509_parser::parse_x509_certificate(leaf.as_ref()).unwrap();
    let key = KeyPair::from_pem(key_pem).unwrap();
    certificate.public_key().raw == key.subject_public_key_info().as_slice()
}

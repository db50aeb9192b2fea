//! What the worker tests share: one Pebble per test binary (six-hour certificates, so that a
//! manual clock moved by hours can cross an expiry while fresh renewals stay far from due),
//! and a [`Harness`] with a fresh store and vault on either backend — a SQLite file, or
//! DynamoDB + Secrets Manager on moto — an Elite account, a manual clock, and an issuer whose
//! CA traffic goes through the fault layer (which counts orders).

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::net::{IpAddr, Ipv4Addr};
use std::sync::Arc;
use std::time::Duration as StdDuration;

use edgecert_acme::testing::CaFaults;
use edgecert_acme::{Issuer, IssuerConfig, ca_http_client};
use edgecert_aws::{
    AwsClients, DynamoStore, KeyStorage, KeyStorageVault, create_table, ensure_kms_key,
};
use edgecert_core::ids::{AccountId, CertificateId, DomainId, ZoneId};
use edgecert_core::model::{
    Account, ApiKey, Certificate, CertificateEvent, CertificateKind, CertificateStatus, Domain,
    ProvisioningStep, Zone,
};
use edgecert_core::origin::OriginPolicy;
use edgecert_core::ports::{Clock, DnsProviders, Issuance, ManualClock, Store, Vault};
use edgecert_core::usecases::issuance::OrderBudget;
use edgecert_core::usecases::renewals::{RenewalReport, RenewalSettings, run_renewals};
use edgecert_core::usecases::{EdgeSettings, Services};
use edgecert_core::{Hostname, PlanCatalog, PlanName};
use edgecert_dns::{ChalltestsrvDnsProvider, HickoryResolver};
use edgecert_embedded::Database;
use edgecert_integration::{
    Challtestsrv, CountingStore, Http01Responder, Moto, Pebble, PebbleOptions,
};
use rand::Rng as _;
use time::{Duration, OffsetDateTime};
use tokio::sync::OnceCell;

/// The CA identity Pebble stands for in CAA records.
pub const PEBBLE_CAA_IDENTITY: &str = "pebble.letsencrypt.org";
/// Lifetime of the certificates this binary's Pebble issues.
pub const CERTIFICATE_LIFETIME: StdDuration = StdDuration::from_secs(6 * 3600);

static PEBBLE: OnceCell<Pebble> = OnceCell::const_new();

/// The Pebble of this test binary: default nonce rejection and authorization reuse, no
/// validation sleep, six-hour certificates.
pub async fn pebble() -> &'static Pebble {
    PEBBLE
        .get_or_init(|| async {
            Pebble::start(PebbleOptions {
                certificate_validity: Some(CERTIFICATE_LIFETIME),
                ..PebbleOptions::default()
            })
            .await
            .expect("starting Pebble")
        })
        .await
}

/// Which adapters a scenario runs on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Backend {
    /// One SQLite file.
    Sqlite,
    /// DynamoDB and Secrets Manager on moto.
    Dynamo,
}

/// Runs scenarios on both backends: `on_both_backends!(a, b)` makes `sqlite::a`,
/// `dynamodb::a`... calling `a(Backend)`.
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

/// A random DNS label, so tests sharing Pebble, challtestsrv and moto never meet.
pub fn unique_label(prefix: &str) -> String {
    let random: u64 = rand::thread_rng().r#gen();
    format!("{prefix}{random:012x}")
}

/// A fresh store and vault, an Elite account, and an issuer on Pebble.
pub struct Harness {
    pub backend: Backend,
    pub store: Arc<dyn Store>,
    pub vault: Arc<dyn Vault>,
    pub clock: Arc<ManualClock>,
    pub services: Services,
    pub faults: CaFaults,
    pub issuer: Arc<Issuer>,
    pub account: Account,
    pub challtestsrv: Challtestsrv,
    pub directory_url: String,
    /// The moto clients and table, on the DynamoDB backend.
    pub dynamo: Option<(AwsClients, String)>,
    /// The issuer's order budget.
    pub budget: OrderBudget,
    _files: Option<tempfile::TempDir>,
}

impl Harness {
    /// A harness on `backend` issuing from this binary's Pebble.
    pub async fn new(backend: Backend) -> Harness {
        let pebble = pebble().await;
        let mut dynamo = None;
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
                let table = unique_label("edgecert-workers-");
                create_table(&clients.dynamodb, &table).await.unwrap();
                dynamo = Some((clients.clone(), table.clone()));
                // moto applies conditional writes without isolation from concurrent requests;
                // the renewer and the issuer write concurrently, so serialise (DynamoDB itself
                // needs nothing of the kind).
                (
                    Arc::new(
                        DynamoStore::new(clients.dynamodb.clone(), table.clone())
                            .with_serialized_writes(),
                    ),
                    // The stack's default key storage: keys sealed in the table.
                    Arc::new(
                        KeyStorageVault::new(
                            &clients,
                            KeyStorage::Sealed,
                            table.clone(),
                            format!("{table}/"),
                            Some(
                                ensure_kms_key(&clients.kms, "alias/edgecert-workers-tests")
                                    .await
                                    .unwrap(),
                            ),
                        )
                        .unwrap(),
                    ),
                    None,
                )
            }
        };
        let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
        let challtestsrv = pebble.challtestsrv().clone();
        let dns_providers = DnsProviders::default().with(
            "challtestsrv",
            Arc::new(ChalltestsrvDnsProvider::new(challtestsrv.management_url()).unwrap()),
        );
        let services = Services {
            store: store.clone(),
            vault: vault.clone(),
            resolver: Arc::new(HickoryResolver::with_name_server(
                challtestsrv.dns_server_addr(),
            )),
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
            "Worker tests".to_owned(),
            PlanName::Elite,
            false,
            clock.now(),
        );
        store
            .create_account(&account, &ApiKey::generate().hash)
            .await
            .unwrap();
        let directory_url = pebble.directory_url();
        let faults = CaFaults::new();
        let issuer = issuer_over(&services, pebble, &faults, roomy_budget());
        Harness {
            backend,
            store,
            vault,
            clock,
            services,
            faults,
            issuer,
            account,
            challtestsrv,
            directory_url,
            dynamo,
            budget: roomy_budget(),
            _files: files,
        }
    }

    /// Services and an issuer like the harness's, over a store that counts every call, issuing
    /// from `pebble`.
    pub fn counted(&self, pebble: &Pebble) -> (Arc<CountingStore>, Services, Arc<Issuer>) {
        let counted = Arc::new(CountingStore::new(self.store.clone()));
        let mut services = self.services.clone();
        services.store = counted.clone();
        let issuer = issuer_over(&services, pebble, &self.faults, self.budget.clone());
        (counted, services, issuer)
    }

    /// A Pebble of the test's own (`options`, with certificates of [`CERTIFICATE_LIFETIME`]
    /// unless they name another lifetime),
    /// validating HTTP-01 on a responder that answers from this harness's store. Keep both for
    /// as long as the test orders.
    pub async fn own_pebble(&self, options: PebbleOptions) -> (Pebble, Http01Responder) {
        let pebble = Pebble::start(PebbleOptions {
            certificate_validity: options.certificate_validity.or(Some(CERTIFICATE_LIFETIME)),
            ..options
        })
        .await
        .unwrap();
        let responder = Http01Responder::start(self.store.clone(), pebble.http_port())
            .await
            .unwrap();
        (pebble, responder)
    }

    /// The issuer as the port the workers take.
    pub fn issuance(&self) -> Arc<dyn Issuance> {
        self.issuer.clone()
    }

    /// The harness with an issuer drawing from a budget of `orders` new orders per `period`
    /// (in a bucket of its own), each registered domain unlimited.
    pub async fn with_order_budget(mut self, orders: u32, period: Duration) -> Harness {
        self.budget = OrderBudget::new(&unique_label("orders-"), orders, period)
            .with_per_registered_domain(u32::MAX, Duration::weeks(1));
        self.issuer = issuer_over(
            &self.services,
            pebble().await,
            &self.faults,
            self.budget.clone(),
        );
        self
    }

    /// One renewer run.
    pub async fn renew(&self, settings: &RenewalSettings) -> RenewalReport {
        run_renewals(&self.services, self.issuer.as_ref(), settings)
            .await
            .unwrap()
    }

    /// A new verified zone `z<random>.example.com` on challtestsrv.
    pub async fn zone(&self) -> Zone {
        let zone = Zone {
            id: ZoneId::generate(),
            account_id: self.account.id.clone(),
            name: Hostname::parse_domain(&format!("{}.example.com", unique_label("z"))).unwrap(),
            provider: "challtestsrv".to_owned(),
            provider_zone_id: "local".to_owned(),
            role_arn: None,
            verified: true,
            created_at: self.clock.now(),
            version: 1,
        };
        self.store.create_zone(&zone).await.unwrap();
        zone
    }

    /// A downloadable certificate for `name`, as [`certificate`] builds it, stored.
    pub async fn downloadable(
        &self,
        zone: &Zone,
        name: &str,
        change: impl FnOnce(&mut Certificate),
    ) -> Certificate {
        let mut certificate = certificate(
            &self.account.id,
            CertificateKind::Downloadable {
                zone_id: zone.id.clone(),
            },
            name,
            self.clock.now(),
        );
        change(&mut certificate);
        self.store
            .create_certificate(&certificate, 10_000)
            .await
            .unwrap();
        certificate
    }

    /// A downloadable certificate that looks issued long ago and is due for renewal now (no
    /// material: the renewal does not need the old one).
    pub async fn due_renewal(&self, zone: &Zone, name: &str) -> Certificate {
        let now = self.clock.now();
        self.downloadable(zone, name, |certificate| issued_and_due(certificate, now))
            .await
    }

    /// An active whitelisted domain `hostname` whose managed certificate is issued and due.
    pub async fn active_domain_due(&self, hostname: &str) -> (Domain, Certificate) {
        let now = self.clock.now();
        let mut domain = Domain::whitelisted(
            self.account.id.clone(),
            Hostname::parse_domain(hostname).unwrap(),
            "http://127.0.0.1:9".to_owned(),
            false,
            now,
        );
        let mut certificate = Certificate::managed(&domain, now);
        issued_and_due(&mut certificate, now);
        domain.provisioning_step = ProvisioningStep::Active;
        domain.certificate_id = Some(certificate.id.clone());
        self.store.create_domain(&domain, 100).await.unwrap();
        self.store
            .create_certificate(&certificate, 0)
            .await
            .unwrap();
        (domain, certificate)
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

    /// How many times the certificate was issued (its `issued` events).
    pub async fn issued_events(&self, id: &CertificateId) -> usize {
        self.events(id)
            .await
            .iter()
            .filter(|event| event.step == "issued")
            .count()
    }
}

/// A budget of this harness's own that no test here spends: every zone of these tests is
/// under `example.com`.
fn roomy_budget() -> OrderBudget {
    OrderBudget::new(&unique_label("orders-"), 100_000, Duration::hours(1))
        .with_per_registered_domain(100_000, Duration::weeks(1))
}

/// An issuer over `services` for `pebble`, its CA traffic through `faults`, drawing from
/// `budget`.
fn issuer_over(
    services: &Services,
    pebble: &Pebble,
    faults: &CaFaults,
    budget: OrderBudget,
) -> Arc<Issuer> {
    let mut config = IssuerConfig::new(pebble.directory_url())
        .with_order_budget(budget)
        .with_ca_root_pem(pebble.listener_ca_pem_path().to_path_buf())
        .with_caa_identities([PEBBLE_CAA_IDENTITY])
        .with_poll_initial_delay(StdDuration::from_millis(25));
    config.attempt_pause = StdDuration::from_millis(50);
    config.poll_timeout = StdDuration::from_secs(30);
    let http = ca_http_client(config.ca_root_pem.as_deref(), config.request_timeout).unwrap();
    Arc::new(Issuer::with_http_client(
        services.clone(),
        config,
        faults.client(http),
    ))
}

/// A pending certificate for `name` requested at `now` (ECDSA, auto-renew on).
pub fn certificate(
    account: &AccountId,
    kind: CertificateKind,
    name: &str,
    now: OffsetDateTime,
) -> Certificate {
    let domain = Hostname::parse_certificate_name(name).unwrap();
    let certificate = match kind {
        CertificateKind::Managed { domain_id } => {
            let mut domain = Domain::whitelisted(
                account.clone(),
                domain,
                "http://127.0.0.1:9".to_owned(),
                false,
                now,
            );
            domain.id = domain_id;
            Certificate::managed(&domain, now)
        }
        CertificateKind::Downloadable { zone_id } => {
            Certificate::downloadable(account.clone(), zone_id, domain, vec![], now)
        }
    };
    certificate.with_auto_renew(true)
}

/// Makes `certificate` look issued 60 days before `now` for 90 days, due for renewal a minute
/// ago.
pub fn issued_and_due(certificate: &mut Certificate, now: OffsetDateTime) {
    certificate.status = CertificateStatus::Issued;
    certificate.issued_at = Some(now - Duration::days(60));
    certificate.not_before = Some(now - Duration::days(60));
    certificate.expires_at = Some(now + Duration::days(30));
    certificate.next_renewal_at = Some(now - Duration::minutes(1));
    certificate.next_attempt_at = None;
    // Served material (never read: renewal orders a new key).
    certificate.material_version = Some("seeded".to_owned());
}

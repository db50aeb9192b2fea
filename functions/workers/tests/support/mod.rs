//! What the worker tests share: one Pebble per test binary (six-hour certificates, so that a
//! manual clock moved by hours can cross an expiry while fresh renewals stay far from due),
//! and a [`Harness`] over the shared services on a backend (`edgecert_testkit`, keys sealed on
//! moto as the stack's default) with an issuer whose CA traffic goes through the fault layer
//! (which counts orders) and draws from an order budget.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;
use std::time::Duration as StdDuration;

use edgecert_acme::Issuer;
use edgecert_acme::testing::CaFaults;
use edgecert_aws::AwsClients;
use edgecert_core::Hostname;
use edgecert_core::ids::{AccountId, CertificateId, DomainId};
use edgecert_core::model::{
    Account, Certificate, CertificateEvent, CertificateKind, CertificateStatus, Domain,
    ProvisioningStep, Zone,
};
use edgecert_core::ports::{Clock, Issuance, ManualClock, Store, Vault};
use edgecert_core::usecases::Services;
use edgecert_core::usecases::issuance::OrderBudget;
use edgecert_core::usecases::renewals::{RenewalReport, RenewalSettings, run_renewals};
use edgecert_integration::{Challtestsrv, CountingStore, Http01Responder, Pebble, PebbleOptions};
use edgecert_testkit::{MotoKeys, ServicesOnBackend, issuer_over, pebble_config};
use time::{Duration, OffsetDateTime};
use tokio::sync::OnceCell;

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

pub use edgecert_testkit::{Backend, unique_label};

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
    base: ServicesOnBackend,
}

impl Harness {
    /// A harness on `backend` issuing from this binary's Pebble.
    pub async fn new(backend: Backend) -> Harness {
        let pebble = pebble().await;
        // The stack's default key storage on moto: keys sealed in the table.
        let base = ServicesOnBackend::start(backend, MotoKeys::Sealed, pebble.challtestsrv()).await;
        let faults = CaFaults::new();
        let issuer = issuer_with_budget(&base.services, pebble, &faults, roomy_budget());
        Harness {
            backend,
            store: base.store.clone(),
            vault: base.vault.clone(),
            clock: base.clock.clone(),
            services: base.services.clone(),
            faults,
            issuer,
            account: base.account.clone(),
            challtestsrv: base.challtestsrv.clone(),
            directory_url: pebble.directory_url(),
            dynamo: base.adapters.dynamo.clone(),
            budget: roomy_budget(),
            base,
        }
    }

    /// Services and an issuer like the harness's, over a store that counts every call, issuing
    /// from `pebble`.
    pub fn counted(&self, pebble: &Pebble) -> (Arc<CountingStore>, Services, Arc<Issuer>) {
        let counted = Arc::new(CountingStore::new(self.store.clone()));
        let mut services = self.services.clone();
        services.store = counted.clone();
        let issuer = issuer_with_budget(&services, pebble, &self.faults, self.budget.clone());
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
        self.issuer = issuer_with_budget(
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
        self.base.zone("challtestsrv", true).await
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
        self.base.certificate(id).await
    }

    /// The stored domain.
    pub async fn domain(&self, id: &DomainId) -> Domain {
        self.base.domain(id).await
    }

    /// The certificate's events, newest first.
    pub async fn events(&self, id: &CertificateId) -> Vec<CertificateEvent> {
        self.base.events(id).await
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
fn issuer_with_budget(
    services: &Services,
    pebble: &Pebble,
    faults: &CaFaults,
    budget: OrderBudget,
) -> Arc<Issuer> {
    let config = pebble_config(pebble).with_order_budget(budget);
    Arc::new(issuer_over(services, config, faults))
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

//! What the issuance tests share: a Pebble per test binary (plus private ones where a test
//! needs Pebble's HTTP-01 port to itself), and a [`Harness`] over the shared services on a
//! backend (`edgecert_testkit`) with what only these tests need: a vault that fails on demand,
//! a DNS provider that writes nothing, and issuers with step hooks.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::sync::Arc;

use edgecert_acme::testing::{CaFaults, FailingVault, SkippingDnsProvider};
use edgecert_acme::{Issuer, IssuerConfig};
use edgecert_core::Hostname;
use edgecert_core::ids::{AccountId, CertificateId, DomainId};
use edgecert_core::model::{
    Account, ApiKey, Certificate, CertificateEvent, Domain, KeyType, ProvisioningStep, Zone,
};
use edgecert_core::ports::{Clock, DnsResolver, ManualClock, MaterialVersion, Store, Vault};
use edgecert_core::usecases::Services;
use edgecert_core::usecases::issuance::StepHook;
use edgecert_dns::HickoryResolver;
use edgecert_integration::{Challtestsrv, Pebble, PebbleOptions};
use edgecert_testkit::{MotoKeys, ServicesOnBackend, issuer_over, pebble_config};
use rcgen::{KeyPair, PublicKeyData as _};
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use tokio::sync::OnceCell;

pub use edgecert_testkit::{Backend, PEBBLE_CAA_IDENTITY, unique_label};

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

/// The shared services on a backend ([`ServicesOnBackend`], keys in Secrets Manager on moto),
/// with a vault that fails writes on demand, a DNS provider that writes nothing, and issuers
/// on one Pebble whose CA traffic goes through [`Harness::faults`].
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
    base: ServicesOnBackend,
    config: IssuerConfig,
}

impl Harness {
    /// A harness on `backend` issuing from `pebble`.
    pub async fn new(backend: Backend, pebble: &Pebble) -> Harness {
        let challtestsrv = pebble.challtestsrv().clone();
        let base = ServicesOnBackend::start(backend, MotoKeys::SecretsManager, &challtestsrv).await;
        let vault = Arc::new(FailingVault::new(base.vault.clone()));
        let resolver = Arc::new(HickoryResolver::with_name_server(
            challtestsrv.dns_server_addr(),
        ));
        let skipping_dns = Arc::new(SkippingDnsProvider::new());
        let mut services = base.services.clone();
        services.vault = vault.clone();
        services.dns_providers = services
            .dns_providers
            .with("skipping", skipping_dns.clone());
        Harness {
            store: base.store.clone(),
            vault,
            clock: base.clock.clone(),
            resolver,
            services,
            faults: CaFaults::new(),
            account: base.account.clone(),
            skipping_dns,
            challtestsrv,
            config: pebble_config(pebble),
            base,
        }
    }

    /// The issuer configuration for Pebble: its listener CA, its CAA identity, fast polling.
    pub fn config(&self) -> IssuerConfig {
        self.config.clone()
    }

    /// An issuer whose CA traffic goes through [`Harness::faults`].
    pub fn issuer(&self) -> Arc<Issuer> {
        self.issuer_with_config(self.config(), None)
    }

    /// Like [`Harness::issuer`], with a step hook.
    pub fn issuer_with_hook(&self, hook: Arc<dyn StepHook>) -> Arc<Issuer> {
        self.issuer_with_config(self.config(), Some(hook))
    }

    /// An issuer with `config` (from [`Harness::config`], changed) and an optional hook.
    pub fn issuer_with_config(
        &self,
        config: IssuerConfig,
        hook: Option<Arc<dyn StepHook>>,
    ) -> Arc<Issuer> {
        let issuer = issuer_over(&self.services, config, &self.faults);
        Arc::new(match hook {
            Some(hook) => issuer.with_step_hook(hook),
            None => issuer,
        })
    }

    /// A new verified zone `z<random>.example.com` served by `provider`.
    pub async fn zone(&self, provider: &str) -> Zone {
        self.base.zone(provider, true).await
    }

    /// A new zone, verified or not.
    pub async fn zone_with(&self, provider: &str, verified: bool) -> Zone {
        self.base.zone(provider, verified).await
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

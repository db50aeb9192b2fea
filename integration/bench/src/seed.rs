//! A SQLite store and vault holding whitelisted, active domains with issued managed
//! certificates, written through the same ports the API and the issuer use, so the terminator
//! loads them exactly as it loads real ones; and a domain's managed certificate requested as
//! the API requests it ([`request_managed_certificate`]).

use std::path::Path;
use std::sync::Arc;

use anyhow::Context as _;
use edgecert_core::model::{Account, ApiKey, Domain, KeyType, SecretString};
use edgecert_core::ports::{CertificateMaterial, Store, Vault};
use edgecert_core::{AccountId, Hostname, PlanName};
use edgecert_embedded::Database;
use futures::StreamExt as _;
use time::OffsetDateTime;

use edgecert_integration::fixtures::install_issued_certificate;

use crate::pki::{BenchCa, KeyKind, Leaf};

/// `count` distinct hostnames, `<prefix>-000001.bench.example.com` and on.
pub fn hostnames(prefix: &str, count: usize) -> Vec<String> {
    (1..=count)
        .map(|index| format!("{prefix}-{index:06}.bench.example.com"))
        .collect()
}

/// The SQLite file `bench-edge` serves from, inside a data directory.
pub fn database_path(data_dir: &Path) -> std::path::PathBuf {
    data_dir.join("edgecert.db")
}

/// A store being filled: one account (Elite plan) owning every domain.
pub struct Seeder {
    store: Arc<dyn Store>,
    vault: Arc<dyn Vault>,
    account: AccountId,
}

impl std::fmt::Debug for Seeder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Seeder")
            .field("account", &self.account)
            .finish_non_exhaustive()
    }
}

impl Seeder {
    /// Opens (creating) the SQLite store in `data_dir` and adds the account.
    pub async fn open(data_dir: &Path) -> anyhow::Result<Seeder> {
        std::fs::create_dir_all(data_dir)
            .with_context(|| format!("creating {}", data_dir.display()))?;
        let database = Database::open(database_path(data_dir))?;
        let store: Arc<dyn Store> = Arc::new(database.store());
        let vault: Arc<dyn Vault> = Arc::new(database.vault());
        let account = Account::new(
            "Benchmarks".to_owned(),
            PlanName::Elite,
            false,
            OffsetDateTime::now_utc(),
        );
        store
            .create_account(&account, &ApiKey::generate().hash)
            .await?;
        Ok(Seeder {
            store,
            vault,
            account: account.id,
        })
    }

    /// Whitelists `hostname` with `origin_url` and gives it `leaf` as its issued managed
    /// certificate; the domain ends `active`.
    pub async fn add(
        &self,
        hostname: &str,
        origin_url: &str,
        leaf: &Leaf,
        kind: KeyKind,
    ) -> anyhow::Result<()> {
        self.add_at(hostname, origin_url, leaf, kind, OffsetDateTime::now_utc())
            .await
    }

    /// Like [`Seeder::add`], as if the domain had been added and its certificate issued at
    /// `now`: every timestamp of both items (and so their place in the change feeds) is `now`,
    /// and the certificate expires 90 days after it.
    pub async fn add_at(
        &self,
        hostname: &str,
        origin_url: &str,
        leaf: &Leaf,
        kind: KeyKind,
        now: OffsetDateTime,
    ) -> anyhow::Result<()> {
        let domain = Domain::whitelisted(
            self.account.clone(),
            Hostname::parse_domain(hostname)
                .with_context(|| format!("{hostname} is not a valid hostname"))?,
            origin_url.to_owned(),
            false,
            now,
        );
        self.store.create_domain(&domain, u32::MAX).await?;
        let material = CertificateMaterial {
            chain_pem: Some(leaf.chain_pem.clone()),
            private_key_pem: SecretString::new(leaf.key_pem.clone()),
        };
        let key_type = match kind {
            KeyKind::EcdsaP256 => KeyType::EcdsaP256,
            KeyKind::Rsa2048 => KeyType::Rsa2048,
        };
        install_issued_certificate(
            self.store.as_ref(),
            self.vault.as_ref(),
            domain,
            &material,
            key_type,
            now,
        )
        .await?;
        Ok(())
    }

    /// Adds every name in `hostnames`, each with its own key and certificate from `ca`.
    pub async fn add_each(
        &self,
        hostnames: &[String],
        origin_url: &str,
        ca: &BenchCa,
        kind: KeyKind,
    ) -> anyhow::Result<()> {
        for hostname in hostnames {
            let leaf = ca.leaf(std::slice::from_ref(hostname), kind)?;
            self.add(hostname, origin_url, &leaf, kind).await?;
        }
        Ok(())
    }

    /// Adds every name in `hostnames` like [`Seeder::add_each`], for tens of thousands of
    /// names: keys and certificates are made on Tokio's blocking pool, up to `parallel` ahead,
    /// while the store writes of those already made go on (the store takes one writer at a
    /// time, so only generation runs in parallel).
    pub async fn add_each_pipelined(
        &self,
        hostnames: &[String],
        origin_url: &str,
        ca: &Arc<BenchCa>,
        kind: KeyKind,
        parallel: usize,
    ) -> anyhow::Result<()> {
        self.add_each_issued_over(
            hostnames,
            origin_url,
            ca,
            kind,
            parallel,
            time::Duration::ZERO,
        )
        .await
    }

    /// Like [`Seeder::add_each_pipelined`], but as if the names had been added one after the
    /// other, evenly over the `span` before now, the first the oldest: a store that grew over
    /// time rather than in one bulk import. The terminator's incremental refresh re-reads what
    /// changed within `change_overlap` of the newest change, so a bulk import keeps every
    /// certificate in that window.
    pub async fn add_each_issued_over(
        &self,
        hostnames: &[String],
        origin_url: &str,
        ca: &Arc<BenchCa>,
        kind: KeyKind,
        parallel: usize,
        span: time::Duration,
    ) -> anyhow::Result<()> {
        let start = OffsetDateTime::now_utc() - span;
        let count = hostnames.len().max(1) as f64;
        let mut leaves = futures::stream::iter(hostnames.iter().cloned())
            .map(|hostname| {
                let ca = Arc::clone(ca);
                tokio::task::spawn_blocking(move || {
                    let leaf = ca.leaf(std::slice::from_ref(&hostname), kind);
                    (hostname, leaf)
                })
            })
            .buffered(parallel.max(1));
        let mut index = 0.0;
        while let Some(made) = leaves.next().await {
            let (hostname, leaf) = made.context("a certificate generator panicked")?;
            let leaf = leaf.with_context(|| format!("making the certificate of {hostname}"))?;
            index += 1.0;
            let at = if span.is_zero() {
                OffsetDateTime::now_utc()
            } else {
                start + span * (index / count)
            };
            self.add_at(&hostname, origin_url, &leaf, kind, at).await?;
        }
        Ok(())
    }
}

/// The domain's step run as a nudge does, with the issuance queued (not run): the domain as
/// stored once its managed certificate is requested, as the API leaves it for the issuer.
pub async fn request_managed_certificate(
    services: &edgecert_core::usecases::Services,
    domain: &Domain,
) -> anyhow::Result<Domain> {
    use edgecert_core::usecases::managed::{Ensured, Issue, Trigger, ensure_for_domain};
    match ensure_for_domain(
        services,
        &domain.account_id,
        &domain.id,
        Trigger::Nudge,
        Issue::Queue,
    )
    .await?
    {
        Ensured::Requested(domain) => Ok(domain),
        other => anyhow::bail!("{} was not requested: {other:?}", domain.hostname),
    }
}

/// An order budget no benchmark spends (its names share `example.com`, and it measures
/// issuance, not the budget): a million orders an hour, for the account and each registered
/// domain.
pub fn roomy_budget(directory_url: &str) -> edgecert_core::usecases::issuance::OrderBudget {
    edgecert_core::usecases::issuance::OrderBudget::new(
        directory_url,
        1_000_000,
        time::Duration::hours(1),
    )
    .with_per_registered_domain(1_000_000, time::Duration::hours(1))
}

//! Starting the local stack: storage, Pebble + challtestsrv, the API, the issuer, the renewer
//! and the edge terminator; and writing down where everything is (`<data dir>/stack.json`) for
//! people and tests.
//!
//! The issuer and the renewer run in this process, on the same use cases as the Lambda
//! functions: an [`IssuerLoop`] issues every requested certificate within a second (the stream
//! trigger's stand-in), a [`RenewerTimer`] renews what is due. The edge [`Terminator`] is the
//! same library the Fargate container runs: HTTPS by SNI with on-demand issuance, and its HTTP
//! listener on Pebble's HTTP-01 port answers validations from the store.
//!
//! The configuration every deployed process shares is the local stack's too: its options and
//! the Pebble it started become the same variables template.yaml gives a deployment
//! ([`LocalOptions::deployment_variables`]), read by the same parser
//! ([`edgecert_deployment::DeploymentConfig`]).

use std::net::{Ipv4Addr, SocketAddr};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use edgecert_acme::testing::CaFaults;
use edgecert_acme::{Issuer, IssuerConfig, ca_http_client};
use edgecert_api::ApiState;
use edgecert_core::PlanCatalog;
use edgecert_core::model::{ApiKey, ApiKeyHash};
use edgecert_core::ports::{DnsProviders, Issuance, Store, SystemClock, Vault};
use edgecert_core::usecases::Services;
use edgecert_core::usecases::issuance::OrderBudget;
use edgecert_deployment::{AcmeSettings, DeploymentConfig, vars};
use edgecert_dns::{ChalltestsrvDnsProvider, HickoryResolver};
use edgecert_integration::services::{Pebble, PebbleOptions};
use edgecert_terminator::{Listeners, Terminator, TerminatorConfig};
use edgecert_workers::WorkerConfig;
use edgecert_workers::issuer::IssuerLoop;
use edgecert_workers::renewer::RenewerTimer;
use serde::Serialize;
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// How to run the local stack.
#[derive(Debug, Clone)]
pub struct LocalOptions {
    /// Where the SQLite file, the admin key and `stack.json` live.
    pub data_dir: PathBuf,
    /// API listen address.
    pub api_addr: SocketAddr,
    /// DynamoDB + Secrets Manager endpoint (e.g. moto); `None` for the embedded SQLite store.
    pub aws_endpoint: Option<String>,
    /// DynamoDB table name (created if missing) when on AWS adapters
    /// (`EDGECERT_TABLE_NAME`).
    pub table_name: String,
    /// Secret name prefix when on AWS adapters (`EDGECERT_SECRET_PREFIX`).
    pub secret_prefix: String,
    /// Where certificate keys go when on AWS adapters (`EDGECERT_KEY_STORAGE`; default
    /// `sealed`, as the stack's `KeyStorage` parameter).
    pub key_storage: edgecert_aws::KeyStorage,
    /// CNAME target shown in DNS instructions (`EDGECERT_EDGE_HOSTNAME`).
    pub edge_hostname: String,
    /// Comma-separated edge addresses shown for apex names, and what "points at the edge"
    /// means (`EDGECERT_EDGE_IPS`).
    pub edge_ips: String,
    /// Port Pebble validates HTTP-01 on: the edge's HTTP listener (`None`: a free port).
    pub http01_port: Option<u16>,
    /// The edge's HTTPS listener.
    pub edge_https_addr: SocketAddr,
    /// The edge's admin listener (`/healthz`, `/metrics`); port 0 picks a free one.
    pub edge_admin_addr: SocketAddr,
    /// The edge's tunables (the terminator container's `EDGECERT_TERMINATOR_*`); the local
    /// stack sets its redirect port and a short shutdown grace itself.
    pub edge: TerminatorConfig,
    /// Lifetime of the certificates Pebble issues (`None`: Pebble's default, about five
    /// years); short ones show renewals happening.
    pub certificate_validity: Option<Duration>,
    /// How often the renewer runs.
    pub renewal_interval: Duration,
    /// How often the issuer looks for requested certificates.
    pub issuer_interval: Duration,
    /// New ACME orders per `order_budget_period`, for every path together
    /// (`EDGECERT_ORDER_BUDGET`).
    pub order_budget: u32,
    /// The order budget's period (`EDGECERT_ORDER_BUDGET_PERIOD_SECONDS`).
    pub order_budget_period: time::Duration,
    /// Concurrency and key sweep of the workers.
    pub workers: WorkerConfig,
    /// Tests only: the issuer reaches Pebble through this fault layer
    /// ([`edgecert_acme::testing`]), to play CA answers Pebble never gives (5xx, 429).
    pub ca_faults: Option<CaFaults>,
}

impl LocalOptions {
    /// Defaults: `.edgecert/`, API on 127.0.0.1:8080, SQLite, edge HTTPS on 127.0.0.1:8443.
    pub fn new(data_dir: PathBuf) -> Self {
        LocalOptions {
            data_dir,
            api_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 8080)),
            aws_endpoint: None,
            table_name: "edgecert".to_owned(),
            secret_prefix: "edgecert/".to_owned(),
            key_storage: edgecert_aws::KeyStorage::default(),
            edge_hostname: "edge.edgecert.localhost".to_owned(),
            edge_ips: Ipv4Addr::LOCALHOST.to_string(),
            http01_port: None,
            edge_https_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 8443)),
            edge_admin_addr: SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
            edge: TerminatorConfig::default(),
            certificate_validity: None,
            renewal_interval: Duration::from_secs(60),
            issuer_interval: Duration::from_secs(1),
            order_budget: OrderBudget::DEFAULT_ORDERS,
            order_budget_period: OrderBudget::DEFAULT_PERIOD,
            workers: WorkerConfig::default(),
            ca_faults: None,
        }
    }
}

/// The KMS key of sealed key storage when on AWS adapters: an alias the stack creates in the
/// emulator on first start, so restarts unseal what earlier runs sealed.
pub const LOCAL_KMS_KEY_ALIAS: &str = "alias/edgecert-local";

/// The CA identity Pebble stands for in CAA records.
const PEBBLE_CAA_IDENTITY: &str = "pebble.letsencrypt.org";

/// Where the local stack's CA and DNS are: the Pebble and challtestsrv it started.
#[derive(Debug, Clone)]
pub struct LocalCa {
    /// Pebble's ACME directory.
    pub directory_url: String,
    /// The root of Pebble's HTTPS listener (PEM file).
    pub listener_root: PathBuf,
    /// challtestsrv's DNS server, the only one EdgeCert asks.
    pub dns_server: SocketAddr,
}

impl LocalCa {
    /// The CA and DNS of `pebble`.
    pub fn of(pebble: &Pebble) -> LocalCa {
        LocalCa {
            directory_url: pebble.directory_url(),
            listener_root: pebble.listener_ca_pem_path().to_path_buf(),
            dns_server: pebble.challtestsrv().dns_server_addr(),
        }
    }
}

/// The shared deployment variables the local stack does not set, and why: what a deployment
/// sets them for does not exist here.
pub const NOT_SET_LOCALLY: &[(&str, &str)] = &[
    (
        vars::ACME_CONTACT,
        "Pebble sends no expiry notices: the local ACME account needs no contact",
    ),
    (
        vars::ALLOW_PRIVATE_ORIGINS,
        "origins are on this machine (loopback), never on a private network",
    ),
    (
        vars::ROUTE53_ZONE_GRANTS,
        "zones are in challtestsrv locally, never in an operator's Route 53",
    ),
];

impl LocalOptions {
    /// The deployment variables this stack stands for: what template.yaml gives a deployed
    /// process, with the local values (these options, Pebble as the CA, challtestsrv as the
    /// only DNS server, loopback origins allowed). [`NOT_SET_LOCALLY`] says what is left out.
    pub fn deployment_variables(&self, ca: &LocalCa) -> Vec<(&'static str, String)> {
        vec![
            (vars::TABLE_NAME, self.table_name.clone()),
            (vars::SECRET_PREFIX, self.secret_prefix.clone()),
            (vars::KEY_STORAGE, self.key_storage.to_string()),
            // Created in the emulator when missing (`open_storage`).
            (vars::KMS_KEY_ID, LOCAL_KMS_KEY_ALIAS.to_owned()),
            (vars::EDGE_HOSTNAME, self.edge_hostname.clone()),
            (vars::EDGE_IPS, self.edge_ips.clone()),
            // The local stack proxies to origins on this machine.
            (vars::ALLOW_LOOPBACK_ORIGINS, "true".to_owned()),
            (vars::DNS_SERVER, ca.dns_server.to_string()),
            (vars::ACME_DIRECTORY, ca.directory_url.clone()),
            (vars::ACME_CA_ROOT, ca.listener_root.display().to_string()),
            (vars::CAA_IDENTITIES, PEBBLE_CAA_IDENTITY.to_owned()),
            (vars::ORDER_BUDGET, self.order_budget.to_string()),
            (
                vars::ORDER_BUDGET_PERIOD_SECONDS,
                self.order_budget_period.whole_seconds().to_string(),
            ),
        ]
    }

    /// The deployment configuration of this stack, read from [`Self::deployment_variables`]
    /// by the parser every deployed process uses.
    pub fn deployment_config(&self, ca: &LocalCa) -> anyhow::Result<DeploymentConfig> {
        let variables = self.deployment_variables(ca);
        DeploymentConfig::from_lookup(|name| {
            variables
                .iter()
                .find(|(variable, _)| *variable == name)
                .map(|(_, value)| value.clone())
        })
        .context("the local stack's deployment configuration")
    }
}

/// Where everything is; written to `<data dir>/stack.json`.
#[derive(Debug, Clone, Serialize)]
pub struct StackInfo {
    /// Base URL of the API.
    pub api_url: String,
    /// The web dashboard (on the API's origin).
    pub dashboard_url: String,
    /// File holding the operator's admin key (0600).
    pub admin_key_file: PathBuf,
    /// `sqlite:<path>` or `aws:<endpoint>`.
    pub storage: String,
    /// Pebble's ACME directory.
    pub acme_directory: String,
    /// Pebble's issuing root (PEM) — trust it to verify certificates from this stack.
    pub pebble_root_file: PathBuf,
    /// challtestsrv's management API (set TXT/A records here to play the customer's DNS).
    pub challtestsrv_management_url: String,
    /// challtestsrv's DNS server, which EdgeCert resolves through.
    pub dns_server: SocketAddr,
    /// Port Pebble validates HTTP-01 on: the edge's HTTP listener (ACME answers, redirects).
    pub http01_port: u16,
    /// The edge's HTTPS listener (TLS by SNI, proxy to each domain's origin).
    pub edge_https_addr: SocketAddr,
    /// The edge's HTTP listener (same port as `http01_port`).
    pub edge_http_addr: SocketAddr,
    /// The edge's `/healthz` and `/metrics`.
    pub edge_admin_url: String,
    /// Seconds between two renewer runs.
    pub renewal_interval_seconds: u64,
    /// Lifetime of Pebble's certificates in seconds, when not Pebble's default.
    pub certificate_validity_seconds: Option<u64>,
    /// Pebble's process id (tests stop and resume it to play a CA outage).
    pub pebble_pid: u32,
    /// pebble-challtestsrv's process id.
    pub challtestsrv_pid: u32,
}

/// The running stack; dropping it stops every child process.
pub struct LocalStack {
    /// Where everything is.
    pub info: StackInfo,
    /// The admin key (shown to the operator).
    pub admin_key: String,
    services: Services,
    shutdown: watch::Sender<bool>,
    tasks: Vec<JoinHandle<()>>,
    terminator: Terminator,
    pebble: Pebble,
}

/// The local stack's issuer settings, for Pebble at `directory_url` whose HTTPS listener is
/// signed by the PEM at `ca_root`.
pub fn issuer_config(directory_url: String, ca_root: PathBuf) -> IssuerConfig {
    let acme = AcmeSettings {
        order_budget: OrderBudget::default_for(&directory_url),
        directory_url,
        ca_root_pem: Some(ca_root),
        contact_email: None,
        caa_identities: vec![PEBBLE_CAA_IDENTITY.to_owned()],
    };
    with_local_pacing(acme.issuer_config())
}

/// `config` paced for Pebble on loopback.
fn with_local_pacing(mut config: IssuerConfig) -> IssuerConfig {
    // A running issuance renews its lease, so the lease's length only bounds how long the
    // names of a run cut short (a killed runner) stay locked: half a minute here instead of
    // five, so a restart picks them up again soon.
    config.lease_ttl = time::Duration::seconds(30);
    config.poll_timeout = Duration::from_secs(20);
    // Pebble answers on loopback in milliseconds: one stopped or killed is known as such
    // (and shown on the domain) within this, not within a production CA's allowance.
    config.request_timeout = Duration::from_secs(10);
    // A Pebble stopped and resumed (or restarted) locally is back at once: asked again
    // within 20 s of its return, however long it was away.
    config.ca_cool_down = time::Duration::seconds(5);
    config.ca_cool_down_max = time::Duration::seconds(20);
    config
}

impl LocalStack {
    /// Starts Pebble + challtestsrv, opens the store, and runs the API, the issuer, the
    /// renewer and the edge terminator.
    pub async fn start(options: LocalOptions) -> anyhow::Result<LocalStack> {
        create_private_dir(&options.data_dir)?;
        // The edge's sockets are bound before Pebble starts, so the HTTP-01 port Pebble is
        // told about is already ours (no window where another process takes a free port).
        let edge_http_addr =
            SocketAddr::from((Ipv4Addr::LOCALHOST, options.http01_port.unwrap_or(0)));
        let listeners = Listeners::bind(
            options.edge_https_addr,
            edge_http_addr,
            Some(options.edge_admin_addr),
        )
        .await
        .with_context(|| {
            format!(
                "binding the edge to {} (HTTPS), {edge_http_addr} (HTTP) and {} (admin)",
                options.edge_https_addr, options.edge_admin_addr
            )
        })?;
        let edge_http_addr = listeners.http.local_addr()?;
        let pebble = start_new_ca(&options.data_dir, || {
            Pebble::start(PebbleOptions {
                http_port: Some(edge_http_addr.port()),
                certificate_validity: options.certificate_validity,
                ..PebbleOptions::default()
            })
        })
        .await?;
        let pebble_root_file = options.data_dir.join("pebble-root.pem");
        std::fs::write(&pebble_root_file, pebble.issuing_root_pem().await?)
            .context("writing Pebble's root")?;

        let ca = LocalCa::of(&pebble);
        let deployment = options.deployment_config(&ca)?;
        let acme = deployment
            .required_acme("the local stack")
            .context("the local stack's CA")?;
        let (store, vault, storage) = open_storage(&options, &deployment).await?;
        let dns_server = ca.dns_server;
        let (admin_key, admin_hash) = admin_key(&options.data_dir)?;
        let challtestsrv = ChalltestsrvDnsProvider::new(pebble.challtestsrv().management_url())
            .context("the challtestsrv DNS provider")?;
        let mut services = Services {
            store,
            vault,
            resolver: Arc::new(HickoryResolver::with_name_server(
                deployment.dns_server.unwrap_or(dns_server),
            )),
            clock: Arc::new(SystemClock),
            plans: PlanCatalog::default(),
            edge: deployment.edge.clone(),
            origin_policy: deployment.origin_policy,
            dns_providers: DnsProviders::default().with("challtestsrv", Arc::new(challtestsrv)),
            issuance: None,
        };
        // The issuer works on the services without an issuer; the API's services get it.
        let issuer_config = with_local_pacing(acme.issuer_config());
        let issuer: Arc<dyn Issuance> = Arc::new(match &options.ca_faults {
            None => {
                Issuer::new(services.clone(), issuer_config).context("building the ACME issuer")?
            }
            Some(faults) => {
                let http = ca_http_client(
                    issuer_config.ca_root_pem.as_deref(),
                    issuer_config.request_timeout,
                )
                .context("building the CA client")?;
                Issuer::with_http_client(services.clone(), issuer_config, faults.client(http))
            }
        });
        services.issuance = Some(Arc::clone(&issuer));
        let mut edge_config = options.edge.clone();
        edge_config.redirect_https_port = listeners.https.local_addr()?.port();
        // Ctrl-C should not keep a developer waiting for idle keep-alive connections.
        edge_config.shutdown_grace = Duration::from_secs(3);
        let terminator = Terminator::start(
            services.clone(),
            Arc::clone(&issuer),
            edge_config,
            listeners,
        )
        .await
        .context("starting the edge terminator")?;
        let state = Arc::new(ApiState {
            services: services.clone(),
            admin_key: Some(admin_hash),
        });

        let listener = TcpListener::bind(options.api_addr)
            .await
            .with_context(|| format!("binding the API to {}", options.api_addr))?;
        let api_addr = listener.local_addr()?;
        let (shutdown, shutdown_rx) = watch::channel(false);
        let api = tokio::spawn(crate::api_server::serve(
            listener,
            state,
            shutdown_rx.clone(),
        ));
        let issuer_loop = IssuerLoop::new(services.clone(), Arc::clone(&issuer))
            .with_interval(options.issuer_interval)
            .with_concurrency(options.workers.concurrency);
        let issuer_task = tokio::spawn(issuer_loop.run(shutdown_rx.clone()));
        let renewer = RenewerTimer::new(
            services.clone(),
            Arc::clone(&issuer),
            options.workers.renewal_settings(),
            options.renewal_interval,
        )
        .with_key_sweep(options.workers.key_sweep_settings());
        let renewer_task = tokio::spawn(renewer.run(shutdown_rx));

        let info = StackInfo {
            api_url: format!("http://{api_addr}"),
            dashboard_url: format!("http://{api_addr}/"),
            admin_key_file: options.data_dir.join("admin-key"),
            storage,
            acme_directory: pebble.directory_url(),
            pebble_root_file,
            challtestsrv_management_url: pebble.challtestsrv().management_url().to_owned(),
            dns_server,
            http01_port: pebble.http_port(),
            edge_https_addr: terminator.https_addr(),
            edge_http_addr: terminator.http_addr(),
            edge_admin_url: terminator
                .admin_addr()
                .map(|address| format!("http://{address}"))
                .unwrap_or_default(),
            renewal_interval_seconds: options.renewal_interval.as_secs(),
            certificate_validity_seconds: options.certificate_validity.map(|d| d.as_secs()),
            pebble_pid: pebble.pebble_pid(),
            challtestsrv_pid: pebble.challtestsrv_pid(),
        };
        std::fs::write(
            options.data_dir.join("stack.json"),
            serde_json::to_vec_pretty(&info)?,
        )?;
        Ok(LocalStack {
            info,
            admin_key,
            services,
            shutdown,
            tasks: vec![api, issuer_task, renewer_task],
            terminator,
            pebble,
        })
    }

    /// The services the API and the workers run on (store, vault, issuer...), for tests.
    pub fn services(&self) -> &Services {
        &self.services
    }

    /// The stack's Pebble (its management API tells tests what the CA did, e.g. revocations).
    pub fn pebble(&self) -> &Pebble {
        &self.pebble
    }

    /// Stops the edge (gracefully), then the API, the issuer and the renewer; Pebble and
    /// challtestsrv stop when the rest of the stack is dropped at the end.
    pub async fn stop(self) {
        self.terminator.shutdown().await;
        let _ = self.shutdown.send(true);
        for task in self.tasks {
            let _ = task.await;
        }
    }
}

async fn open_storage(
    options: &LocalOptions,
    deployment: &DeploymentConfig,
) -> anyhow::Result<(Arc<dyn Store>, Arc<dyn Vault>, String)> {
    match &options.aws_endpoint {
        None => {
            let path = options.data_dir.join("edgecert.db");
            let database = edgecert_embedded::Database::open(&path)
                .with_context(|| format!("opening {}", path.display()))?;
            Ok((
                Arc::new(database.store()),
                Arc::new(database.vault()),
                format!("sqlite:{}", path.display()),
            ))
        }
        Some(endpoint) => {
            // The endpoint is an emulator on this machine: dummy credentials and region, never
            // the developer's AWS profile.
            let clients = edgecert_aws::AwsClients::for_local_endpoint(endpoint).await;
            let table = &deployment.table_name;
            edgecert_aws::create_table(&clients.dynamodb, table)
                .await
                .with_context(|| format!("creating table {table} at {endpoint}"))?;
            if let Some(alias) = deployment
                .kms_key_id
                .as_deref()
                .filter(|key| key.starts_with("alias/"))
            {
                edgecert_aws::ensure_kms_key(&clients.kms, alias)
                    .await
                    .with_context(|| format!("creating the KMS key {alias} at {endpoint}"))?;
            }
            let vault = edgecert_deployment::key_storage_vault(&clients, deployment)?;
            // The API, the issuer and the renewer write concurrently, and moto applies
            // conditional writes without isolation: serialise them (see the method).
            let store = edgecert_aws::DynamoStore::new(clients.dynamodb, table.clone())
                .with_serialized_writes();
            // As the SQLite store migrates on open: a table an earlier build left in this
            // emulator gets the sharded layout (a new one only has its layout item read).
            let migration = store
                .migrate_layout(&edgecert_aws::MigrationOptions::default())
                .await
                .with_context(|| format!("migrating table {table} at {endpoint}"))?;
            if !migration.already_migrated {
                tracing::info!(?migration, table = %table, "table moved to the sharded layout");
            }
            Ok((
                Arc::new(store),
                Arc::new(vault),
                format!(
                    "aws:{endpoint} (table {table}, keys {})",
                    deployment.key_storage
                ),
            ))
        }
    }
}

/// The data directory's list of the CA directory URLs its Pebbles have had, one per line.
const CA_DIRECTORIES_FILE: &str = "ca-directories";
/// Pebbles started before one lands on a directory URL the data directory has not seen.
const CA_START_ATTEMPTS: usize = 5;

/// Starts a Pebble (`start`) whose directory URL no earlier Pebble of `data_dir` had, and
/// records it. Every Pebble has a new root and forgets every account: a certificate is known
/// to come from another CA, and so replaced, by its recorded directory URL, and ACME account
/// credentials are kept by that URL. A free port that happens to be the one of an earlier run
/// would make both look like the same CA: such a Pebble is stopped and another started.
async fn start_new_ca<F, Fut>(data_dir: &Path, start: F) -> anyhow::Result<Pebble>
where
    F: Fn() -> Fut,
    Fut: Future<Output = anyhow::Result<Pebble>>,
{
    let history = data_dir.join(CA_DIRECTORIES_FILE);
    let used = std::fs::read_to_string(&history).unwrap_or_default();
    for _ in 0..CA_START_ATTEMPTS {
        let pebble = start()
            .await
            .context("starting Pebble and pebble-challtestsrv")?;
        let url = pebble.directory_url();
        if used.lines().any(|line| line == url) {
            tracing::info!(%url, "this Pebble has an earlier CA's directory URL; starting another");
            continue;
        }
        let mut file = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&history)
            .with_context(|| format!("opening {}", history.display()))?;
        std::io::Write::write_all(&mut file, format!("{url}\n").as_bytes())
            .with_context(|| format!("recording the CA in {}", history.display()))?;
        return Ok(pebble);
    }
    anyhow::bail!(
        "{CA_START_ATTEMPTS} Pebbles in a row had directory URLs that {} lists as earlier CAs",
        history.display()
    )
}

fn create_private_dir(path: &Path) -> anyhow::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path).with_context(|| format!("creating {}", path.display()))?;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o700))?;
    Ok(())
}

/// The operator's admin key: generated on first start and kept in `<data dir>/admin-key` (0600)
/// so restarts keep it.
fn admin_key(data_dir: &Path) -> anyhow::Result<(String, ApiKeyHash)> {
    let path = data_dir.join("admin-key");
    if let Ok(existing) = std::fs::read_to_string(&path) {
        let key = existing.trim().to_owned();
        if !key.is_empty() {
            let hash = ApiKeyHash::of(&key);
            return Ok((key, hash));
        }
    }
    let key = ApiKey::generate();
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(&path)?;
    std::io::Write::write_all(&mut file, key.plaintext.expose().as_bytes())?;
    Ok((key.plaintext.expose().to_owned(), key.hash))
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::sync::Mutex;

    use super::*;

    /// A Pebble that lands on the directory URL of an earlier run of the same data directory
    /// (here handed in on purpose: by chance, a free port can be the earlier one) is not used:
    /// its certificates would pass for the new CA's. Another is started and recorded.
    #[tokio::test]
    async fn a_pebble_on_an_earlier_ca_s_directory_url_is_replaced_by_another() {
        let data_dir = tempfile::tempdir().unwrap();
        let earlier = Pebble::start(PebbleOptions::default()).await.unwrap();
        let earlier_url = earlier.directory_url();
        std::fs::write(
            data_dir.path().join(CA_DIRECTORIES_FILE),
            format!("{earlier_url}\n"),
        )
        .unwrap();
        let first = Mutex::new(Some(earlier));
        let started = Mutex::new(0);

        let pebble = start_new_ca(data_dir.path(), || {
            *started.lock().unwrap() += 1;
            let reused = first.lock().unwrap().take();
            async move {
                match reused {
                    Some(pebble) => Ok(pebble),
                    None => Pebble::start(PebbleOptions::default()).await,
                }
            }
        })
        .await
        .unwrap();

        assert_ne!(pebble.directory_url(), earlier_url);
        assert_eq!(*started.lock().unwrap(), 2, "one more Pebble was started");
        let recorded = std::fs::read_to_string(data_dir.path().join(CA_DIRECTORIES_FILE)).unwrap();
        assert_eq!(
            recorded,
            format!("{earlier_url}\n{}\n", pebble.directory_url())
        );
    }
}

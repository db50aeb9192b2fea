//! Scenario 4, on-demand issuance: the time from the first ClientHello for a new, whitelisted
//! name to the origin's response, EdgeCert's terminator against Caddy's `on_demand_tls`, both
//! on the same Pebble (`PEBBLE_VA_NOSLEEP=1`) and pebble-challtestsrv.
//!
//! EdgeCert runs as the local stack does (`edgecert_local::stack`): the API, the issuer loop
//! (the stream trigger's stand-in) and the edge terminator on SQLite, in a process of its own
//! pinned to the server core. It is this binary started again as `bench-on-demand serve-edge
//! <dir>`, because `edgecert-local` always starts a Pebble of its own and both servers must
//! share one. Names are whitelisted through the API (an account per phase), as a customer
//! would. Caddy gets a Caddyfile with `on_demand_tls { ask ... }`, answered here: 200 for the
//! benchmark's names, 404 for any other. Both take turns on Pebble's HTTP-01 port.
//!
//! Per server: one warm-up name (it registers the ACME account; not counted), then N names one
//! after another, then N other names all at once. Each request is a new TCP connection, a TLS
//! 1.3 handshake with SNI set to the name (no certificate verification), and `GET /` over it,
//! timed until the origin's whole body is in. Each request comes from its own loopback address
//! (127.1.x.y), as first visits of different names come from different visitors: the
//! terminator limits unknown-name lookups per client address (5/s, burst 20).
//!
//! Orders per name come from Pebble's log (`Added order` lines, and validation tasks per name)
//! between the phases' marks. Where EdgeCert's time goes comes from the events its issuer
//! stores with each certificate, lined up with each request's start.
//! `EDGECERT_BENCH_KEEP_DIR=1` keeps the run's directory (every server's log, Pebble's log,
//! EdgeCert's SQLite files).

use std::collections::{HashMap, HashSet};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use edgecert_acme::Issuer;
use edgecert_api::ApiState;
use edgecert_bench::process::{LOAD_CORE, SERVER_CORE, Server, pin_self, require, tail};
use edgecert_bench::report::{Options, Section, Table, millis, quantile, ratio};
use edgecert_bench::tls_load::{TlsVersion, load_client};
use edgecert_core::model::{ApiKey, CertificateEvent};
use edgecert_core::origin::OriginPolicy;
use edgecert_core::ports::{DnsProviders, Issuance, Store, SystemClock};
use edgecert_core::usecases::{EdgeSettings, Services};
use edgecert_core::{CertificateId, Hostname, PlanCatalog};
use edgecert_dns::HickoryResolver;
use edgecert_embedded::Database;
use edgecert_integration::services::{Pebble, PebbleOptions, free_port, http_client};
use edgecert_terminator::{Listeners, Terminator, TerminatorConfig};
use edgecert_workers::WorkerConfig;
use edgecert_workers::issuer::IssuerLoop;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::ServerName;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use time::OffsetDateTime;
use tokio::net::{TcpListener, TcpSocket};
use tokio_rustls::TlsConnector;

/// First argument that makes this binary the EdgeCert server under test.
const SERVE_EDGE: &str = "serve-edge";
/// The EdgeCert server's configuration, written by the driver into its data directory.
const EDGE_CONFIG_FILE: &str = "edge-config.json";
/// Written by the EdgeCert server once it serves.
const EDGE_READY_FILE: &str = "ready.json";
/// The operator's admin key (0600), written by the EdgeCert server.
const ADMIN_KEY_FILE: &str = "admin-key";
/// What the origin answers; a request counts as served only with this body.
const ORIGIN_BODY: &str = "origin ok\n";
/// Longest wait for one first request. Generous: the point is whether it is served at all, and
/// how long it takes. (The terminator's own bound on a held handshake is 20 s.)
const REQUEST_DEADLINE: Duration = Duration::from_secs(60);
/// Longest wait for a server to start.
const START_DEADLINE: Duration = Duration::from_secs(60);
/// Pause before the concurrent burst in full mode: longer than Caddy's internal issuance
/// rate-limit window (10 orders per 10 s), so that the burst meets a rested server, not one
/// still throttled by the sequential phase. Applied to every server alike.
const REST_BEFORE_BURST: Duration = Duration::from_secs(11);
/// Wait after the burst before reading Pebble's log, so that late duplicate orders show.
const SETTLE_AFTER_BURST: Duration = Duration::from_secs(2);

fn main() -> anyhow::Result<()> {
    // The driver is the load generator (load core); started again as `serve-edge` it is the
    // server under test and stays on the server core.
    let serving_edge = std::env::args().nth(1).is_some_and(|arg| arg == SERVE_EDGE);
    pin_self(if serving_edge { SERVER_CORE } else { LOAD_CORE })?;
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    if serving_edge {
        let data_dir = std::env::args()
            .nth(2)
            .map(PathBuf::from)
            .context("usage: bench-on-demand serve-edge <data dir>")?;
        runtime.block_on(serve_edge(&data_dir))
    } else {
        runtime.block_on(run(Options::from_args()))
    }
}

// ---------------------------------------------------------------------------------------------
// The EdgeCert server under test (its own process)

/// What the driver tells the EdgeCert server.
#[derive(Debug, Serialize, Deserialize)]
struct EdgeConfig {
    acme_directory: String,
    /// PEM of the CA that signed Pebble's HTTPS listener.
    acme_ca_root: PathBuf,
    /// challtestsrv's DNS server, which every name resolves through.
    dns_server: SocketAddr,
    /// Pebble's HTTP-01 port: the edge's HTTP listener.
    http01_port: u16,
}

/// Where the EdgeCert server listens, once it serves.
#[derive(Debug, Serialize, Deserialize)]
struct EdgeReady {
    api: SocketAddr,
    https: SocketAddr,
}

/// The local stack's composition (`edgecert_local::stack`) pointed at the driver's Pebble:
/// SQLite store and vault, the ACME issuer, the edge terminator (on-demand issuance), the API
/// and the issuer loop. The renewer is left out: nothing is due during a run.
async fn serve_edge(data_dir: &Path) -> anyhow::Result<()> {
    let config: EdgeConfig = serde_json::from_slice(
        &std::fs::read(data_dir.join(EDGE_CONFIG_FILE)).context("reading the edge config")?,
    )
    .context("parsing the edge config")?;
    let listeners = Listeners::bind(loopback(0), loopback(config.http01_port), Some(loopback(0)))
        .await
        .with_context(|| format!("binding the edge (HTTP on {})", config.http01_port))?;
    let https_addr = listeners.https.local_addr()?;
    let database = Database::open(data_dir.join("edgecert.db")).context("opening SQLite")?;
    let mut services = Services {
        store: Arc::new(database.store()),
        vault: Arc::new(database.vault()),
        resolver: Arc::new(HickoryResolver::with_name_server(config.dns_server)),
        clock: Arc::new(SystemClock),
        plans: PlanCatalog::default(),
        edge: EdgeSettings {
            hostname: "edge.edgecert.localhost".to_owned(),
            addresses: vec![Ipv4Addr::LOCALHOST.into()],
        },
        // The origin is on this machine, as in the local stack.
        origin_policy: OriginPolicy {
            allow_loopback: true,
            allow_private: false,
        },
        dns_providers: DnsProviders::default(),
        issuance: None,
    };
    // The benchmark measures issuance, not the order budget (its names share a registered
    // domain).
    let issuer_config = edgecert_local::stack::issuer_config(
        config.acme_directory.clone(),
        config.acme_ca_root.clone(),
    )
    .with_order_budget(edgecert_bench::seed::roomy_budget(&config.acme_directory));
    let issuer: Arc<dyn Issuance> =
        Arc::new(Issuer::new(services.clone(), issuer_config).context("building the ACME issuer")?);
    services.issuance = Some(Arc::clone(&issuer));
    let mut edge_config = TerminatorConfig::default();
    edge_config.redirect_https_port = https_addr.port();
    edge_config.shutdown_grace = Duration::from_secs(1);
    let _terminator = Terminator::start(
        services.clone(),
        Arc::clone(&issuer),
        edge_config,
        listeners,
    )
    .await
    .context("starting the edge terminator")?;

    let admin_key = ApiKey::generate();
    write_private(
        &data_dir.join(ADMIN_KEY_FILE),
        admin_key.plaintext.expose().as_bytes(),
    )?;
    let state = Arc::new(ApiState {
        services: services.clone(),
        admin_key: Some(admin_key.hash),
    });
    let api_listener = TcpListener::bind(loopback(0))
        .await
        .context("binding the API")?;
    let api_addr = api_listener.local_addr()?;
    let (_shutdown, shutdown_rx) = tokio::sync::watch::channel(false);
    tokio::spawn(edgecert_local::api_server::serve(
        api_listener,
        state,
        shutdown_rx.clone(),
    ));
    let issuer_loop = IssuerLoop::new(services.clone(), Arc::clone(&issuer))
        .with_interval(Duration::from_secs(1))
        .with_concurrency(WorkerConfig::default().concurrency);
    tokio::spawn(issuer_loop.run(shutdown_rx));

    // Written whole, then renamed: the driver never reads half a file.
    let ready = serde_json::to_vec(&EdgeReady {
        api: api_addr,
        https: https_addr,
    })?;
    let partial = data_dir.join(format!("{EDGE_READY_FILE}.partial"));
    std::fs::write(&partial, ready)?;
    std::fs::rename(&partial, data_dir.join(EDGE_READY_FILE))?;
    // The driver kills this process when it is done with it.
    std::future::pending::<()>().await;
    Ok(())
}

fn write_private(path: &Path, contents: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(true)
        .write(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(contents)?;
    Ok(())
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

// ---------------------------------------------------------------------------------------------
// The driver

/// The names one server gets: a warm-up name, then one set per phase.
#[derive(Debug, Clone)]
struct SideNames {
    warm_up: String,
    sequential: Vec<String>,
    concurrent: Vec<String>,
}

impl SideNames {
    fn new(side: &str, count: usize) -> SideNames {
        let name = |phase: &str, index: usize| {
            format!("{side}-{phase}-{index:03}.ondemand.bench-example.com")
        };
        SideNames {
            warm_up: name("warm", 0),
            sequential: (1..=count).map(|index| name("seq", index)).collect(),
            concurrent: (1..=count).map(|index| name("burst", index)).collect(),
        }
    }

    fn all(&self) -> impl Iterator<Item = &String> {
        std::iter::once(&self.warm_up)
            .chain(&self.sequential)
            .chain(&self.concurrent)
    }
}

/// Phases, each with its own block of client addresses.
#[derive(Debug, Clone, Copy)]
enum Phase {
    WarmUp = 1,
    Sequential = 2,
    Concurrent = 3,
}

/// The loopback address request `index` of `phase` comes from (127.1.<phase>.<index + 1>).
fn client_address(phase: Phase, index: usize) -> anyhow::Result<Ipv4Addr> {
    let host = u8::try_from(index + 1)
        .ok()
        .filter(|host| *host < 255)
        .context("at most 254 names per phase")?;
    Ok(Ipv4Addr::new(127, 1, phase as u8, host))
}

/// Orders Pebble took during a phase.
#[derive(Debug, Clone, Default)]
struct Orders {
    /// `Added order` lines.
    orders: usize,
    /// `Issued certificate` lines.
    issued: usize,
    /// Names of the phase with at least one validation task: the names ordered (every name
    /// is new, so its first order has a fresh authorization to validate).
    names_ordered: usize,
    /// Names of the phase with more than one validation task (a second order, or a second
    /// challenge on the same order).
    validated_twice: usize,
}

/// One phase's outcome.
#[derive(Debug, Clone, Default)]
struct PhaseResult {
    requested: usize,
    /// Times of the served requests.
    served: Vec<Duration>,
    /// Why the others failed, with how many failed that way.
    failures: HashMap<String, usize>,
    /// The names whose first request failed.
    failed_names: Vec<String>,
    /// When each served name's request started (wall clock, to line up with the issuer's
    /// events) and how long it took.
    timings: Vec<(String, OffsetDateTime, Duration)>,
    orders: Orders,
}

impl PhaseResult {
    fn p(&self, q: f64) -> Duration {
        quantile(&mut self.served.clone(), q)
    }

    fn served_cell(&self) -> String {
        format!("{}/{}", self.served.len(), self.requested)
    }

    fn served_fraction(&self) -> f64 {
        self.served.len() as f64 / self.requested.max(1) as f64
    }

    /// Orders per name ordered (a name refused before any order has none to count).
    fn orders_per_name(&self) -> f64 {
        self.orders.orders as f64 / self.orders.names_ordered.max(1) as f64
    }

    fn orders_cell(&self) -> String {
        format!(
            "{:.2} ({} orders for {} names, {} issued)",
            self.orders_per_name(),
            self.orders.orders,
            self.orders.names_ordered,
            self.orders.issued
        )
    }

    /// Exactly one order for every requested name, none validated twice.
    fn one_order_per_name(&self) -> bool {
        self.orders.orders == self.requested
            && self.orders.names_ordered == self.requested
            && self.orders.validated_twice == 0
    }

    fn record(&mut self, name: &str, outcome: anyhow::Result<(OffsetDateTime, Duration)>) {
        match outcome {
            Ok((started_at, elapsed)) => {
                self.served.push(elapsed);
                self.timings.push((name.to_owned(), started_at, elapsed));
            }
            Err(error) => {
                // The innermost cause names the kind of failure (alert, reset, timeout).
                let reason = error.root_cause().to_string();
                *self.failures.entry(reason).or_default() += 1;
                self.failed_names.push(name.to_owned());
            }
        }
    }

    /// The slowest served name, its start and its time.
    fn slowest(&self) -> Option<&(String, OffsetDateTime, Duration)> {
        self.timings.iter().max_by_key(|(_, _, elapsed)| *elapsed)
    }

    fn failure_summary(&self) -> String {
        let mut failures: Vec<String> = self
            .failures
            .iter()
            .map(|(reason, count)| format!("{count} x {reason}"))
            .collect();
        failures.sort();
        failures.join("; ")
    }
}

/// One server's results.
#[derive(Debug, Clone)]
struct SideResult {
    label: String,
    warm_up: Duration,
    sequential: PhaseResult,
    concurrent: PhaseResult,
    /// Where EdgeCert's time went, from its issuer's events (none for Caddy).
    breakdown: Option<Breakdowns>,
    /// What EdgeCert's store and log say about failed and slowest names.
    diagnoses: Vec<String>,
}

/// Set to keep the run's directory (configurations, every server's log, Pebble's log).
const KEEP_VARIABLE: &str = "EDGECERT_BENCH_KEEP_DIR";

/// What every server's run shares.
struct Bench {
    options: Options,
    /// The run's directory: removed at the end unless [`KEEP_VARIABLE`] is set.
    root: PathBuf,
    root_guard: Option<tempfile::TempDir>,
    pebble: Pebble,
    origin: SocketAddr,
    ask: SocketAddr,
    /// Names the ask endpoint approves.
    allowed: Arc<Mutex<HashSet<String>>>,
    connector: TlsConnector,
    names_per_phase: usize,
}

async fn run(options: Options) -> anyhow::Result<()> {
    let names_per_phase = options.pick(50, 3);
    let http01_port = free_port()?;
    let pebble_options = PebbleOptions {
        http_port: Some(http01_port),
        ..PebbleOptions::default()
    };
    // The issue asks for PEBBLE_VA_NOSLEEP=1: the launcher sets it when `va_no_sleep` holds.
    if !pebble_options.va_no_sleep {
        bail!("Pebble must run with PEBBLE_VA_NOSLEEP=1");
    }
    let pebble = Pebble::start(pebble_options)
        .await
        .context("starting Pebble and pebble-challtestsrv")?;
    let allowed = Arc::new(Mutex::new(HashSet::new()));
    let root = tempfile::Builder::new()
        .prefix("edgecert-bench-on-demand-")
        .tempdir()?;
    let mut bench = Bench {
        options,
        root: root.path().to_path_buf(),
        root_guard: Some(root),
        pebble,
        origin: start_origin().await?,
        ask: start_ask(Arc::clone(&allowed)).await?,
        allowed,
        connector: TlsConnector::from(load_client(TlsVersion::Tls13, &[b"http/1.1"])?),
        names_per_phase,
    };

    let ours = edgecert_side(&bench).await.context("EdgeCert's run")?;
    let caddy = caddy_side(&bench).await.context("Caddy's run")?;
    if std::env::var_os(KEEP_VARIABLE).is_some() {
        let pebble_log = bench.pebble.work_dir().join("pebble.log");
        std::fs::copy(&pebble_log, bench.root.join("pebble.log"))?;
        if let Some(guard) = bench.root_guard.take() {
            eprintln!("kept {}", guard.keep().display());
        }
    }

    if bench.options.quick {
        let ours_failed = ours.sequential.served.len() < ours.sequential.requested
            || ours.concurrent.served.len() < ours.concurrent.requested;
        if ours_failed {
            bail!(
                "EdgeCert did not serve every first request: {} / {}",
                ours.sequential.failure_summary(),
                ours.concurrent.failure_summary()
            );
        }
        if caddy.sequential.served.is_empty() {
            bail!(
                "Caddy served no first request: {}",
                caddy.sequential.failure_summary()
            );
        }
    }
    report(&bench, &ours, &caddy)
}

/// EdgeCert with the product's defaults: started, names whitelisted, measured, and its store
/// read for where the time went.
async fn edgecert_side(bench: &Bench) -> anyhow::Result<SideResult> {
    let tag = "ours";
    let data_dir = bench.root.join(tag);
    std::fs::create_dir_all(&data_dir)?;
    let config = EdgeConfig {
        acme_directory: bench.pebble.directory_url(),
        acme_ca_root: bench.pebble.listener_ca_pem_path().to_path_buf(),
        dns_server: bench.pebble.challtestsrv().dns_server_addr(),
        http01_port: bench.pebble.http_port(),
    };
    std::fs::write(
        data_dir.join(EDGE_CONFIG_FILE),
        serde_json::to_vec_pretty(&config)?,
    )?;
    let log = data_dir.join("edgecert.log");
    let mut server = Server::spawn(
        "EdgeCert (API + issuer + terminator)",
        Some(SERVER_CORE),
        Command::new(std::env::current_exe().context("locating this binary")?)
            .arg(SERVE_EDGE)
            .arg(&data_dir)
            .env("RUST_LOG", "info"),
        &log,
    )?;
    let ready = wait_for_ready(&mut server, &data_dir.join(EDGE_READY_FILE)).await?;
    let admin_key =
        std::fs::read_to_string(data_dir.join(ADMIN_KEY_FILE)).context("reading the admin key")?;
    let api = Api {
        client: http_client(&[])?,
        url: format!("http://{}", ready.api),
        admin_key: admin_key.trim().to_owned(),
    };
    let names = SideNames::new(tag, bench.names_per_phase);
    let origin_url = format!("http://{}", bench.origin);
    // One account per phase: the Elite plan holds 100 domains.
    let sequential_key = api.account("on-demand sequential").await?;
    for name in std::iter::once(&names.warm_up).chain(&names.sequential) {
        api.whitelist(&sequential_key, name, &origin_url).await?;
    }
    let concurrent_key = api.account("on-demand burst").await?;
    for name in &names.concurrent {
        api.whitelist(&concurrent_key, name, &origin_url).await?;
    }
    let label = "EdgeCert (defaults)".to_owned();
    let mut result = measure(bench, &mut server, ready.https, &names, label)
        .await
        .with_context(|| format!("end of {}:\n{}", log.display(), tail(&log)))?;
    drop(server);
    // The issuer's events say where the time went, and what went wrong where it did.
    let database = Database::open(data_dir.join("edgecert.db")).context("reopening SQLite")?;
    let store = database.store();
    result.breakdown = Some(Breakdowns {
        sequential: breakdown(&store, &result.sequential).await?,
        concurrent: breakdown(&store, &result.concurrent).await?,
    });
    let log_text = std::fs::read_to_string(&log).unwrap_or_default();
    for (phase_name, phase) in [
        ("sequential", &result.sequential),
        ("concurrent", &result.concurrent),
    ] {
        for name in &phase.failed_names {
            let events = events_of(&store, name, None).await?;
            result.diagnoses.push(format!(
                "{phase_name} `{name}` failed; its certificate's events: {events}; the edge's \
                 log: {}",
                log_lines_about(&log_text, name)
            ));
        }
        // The slowest name only when it stands out: an outlier has a story in the events.
        let outlier = phase
            .slowest()
            .filter(|(_, _, elapsed)| *elapsed > phase.p(0.5) * 2);
        if let Some((name, started_at, elapsed)) = outlier {
            let events = events_of(&store, name, Some(*started_at)).await?;
            result.diagnoses.push(format!(
                "slowest {phase_name} name `{name}` ({}), events from its request's start: \
                 {events}",
                millis(*elapsed)
            ));
        }
    }
    Ok(result)
}

/// The issuer's events, in the order of a clean issuance.
const ISSUANCE_STEPS: [&str; 8] = [
    "preflight",
    "order",
    "challenge",
    "challenge",
    "key",
    "finalize",
    "stored",
    "issued",
];

/// The intervals between the request's start, the [`ISSUANCE_STEPS`] events and the
/// response.
const INTERVALS: [&str; 9] = [
    "request start -> pre-flight checks passed (ClientHello, whitelist lookup, DNS check, \
     certificate requested, issuance slot, lease, CAA)",
    "-> ACME order placed",
    "-> HTTP-01 answer published, challenge triggered",
    "-> authorization valid and order ready",
    "-> key generated and stored",
    "-> CSR sent (finalize)",
    "-> certificate downloaded and stored",
    "-> certificate marked issued",
    "-> origin's response (certificate loaded, handshake finished, request proxied)",
];

/// Interval times of one phase's clean issuances.
#[derive(Debug, Clone, Default)]
struct Breakdown {
    /// Per interval of [`INTERVALS`], one time per issuance.
    intervals: Vec<Vec<Duration>>,
    /// Served names whose events were not a clean issuance (a retry, say).
    skipped: usize,
}

impl Breakdown {
    fn median(&self, interval: usize) -> String {
        match self.intervals.get(interval) {
            Some(times) if !times.is_empty() => millis(quantile(&mut times.clone(), 0.5)),
            _ => "-".to_owned(),
        }
    }
}

/// The breakdowns of both phases.
#[derive(Debug, Clone, Default)]
struct Breakdowns {
    sequential: Breakdown,
    concurrent: Breakdown,
}

/// The served names' request start, issuer events and response, interval by interval.
async fn breakdown(store: &dyn Store, phase: &PhaseResult) -> anyhow::Result<Breakdown> {
    let mut result = Breakdown {
        intervals: vec![Vec::new(); INTERVALS.len()],
        skipped: 0,
    };
    for (name, started_at, elapsed) in &phase.timings {
        let events = certificate_events(store, name).await?;
        let steps: Vec<&str> = events.iter().map(|event| event.step.as_str()).collect();
        if steps != ISSUANCE_STEPS {
            result.skipped += 1;
            continue;
        }
        let mut marks = vec![*started_at];
        marks.extend(events.iter().map(|event| event.at));
        marks.push(*started_at + *elapsed);
        for (interval, pair) in marks.windows(2).enumerate() {
            let length = Duration::try_from(pair[1] - pair[0]).unwrap_or(Duration::ZERO);
            result.intervals[interval].push(length);
        }
    }
    Ok(result)
}

/// The events of `name`'s managed certificate, oldest first.
async fn certificate_events(
    store: &dyn Store,
    name: &str,
) -> anyhow::Result<Vec<CertificateEvent>> {
    let hostname = Hostname::parse_domain(name)?;
    let Some(domain) = store.domain_by_hostname(&hostname).await? else {
        bail!("{name} is not in the store");
    };
    let mut events = store
        .list_events(&CertificateId::managed_for(&domain.id), 100)
        .await?;
    events.reverse();
    Ok(events)
}

/// `name`'s certificate events as `+ms step: message`, from `since` (or its first event).
async fn events_of(
    store: &dyn Store,
    name: &str,
    since: Option<OffsetDateTime>,
) -> anyhow::Result<String> {
    let events = certificate_events(store, name).await?;
    let Some(origin) = since.or_else(|| events.first().map(|event| event.at)) else {
        return Ok("none".to_owned());
    };
    Ok(events
        .iter()
        .map(|event| {
            let offset = (event.at - origin).whole_milliseconds();
            format!("+{offset} ms {}: {}", event.step, event.message)
        })
        .collect::<Vec<_>>()
        .join(" / "))
}

/// The edge's warnings, errors and on-demand refusals that name `name`.
fn log_lines_about(log: &str, name: &str) -> String {
    let lines: Vec<&str> = log
        .lines()
        .filter(|line| line.contains(name))
        .filter(|line| {
            line.contains(" WARN ")
                || line.contains(" ERROR ")
                || line.contains("no certificate on demand")
        })
        .take(5)
        .collect();
    if lines.is_empty() {
        "nothing at info level or above".to_owned()
    } else {
        lines.join(" / ")
    }
}

async fn wait_for_ready(server: &mut Server, path: &Path) -> anyhow::Result<EdgeReady> {
    let deadline = Instant::now() + START_DEADLINE;
    loop {
        server.check_running()?;
        if let Ok(text) = std::fs::read(path) {
            return serde_json::from_slice(&text).context("parsing the ready file");
        }
        if Instant::now() > deadline {
            bail!("{} did not start within {START_DEADLINE:?}", server.name());
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The EdgeCert API, as a customer and the operator call it.
struct Api {
    client: reqwest::Client,
    url: String,
    admin_key: String,
}

impl Api {
    async fn call(&self, path: &str, key: &str, body: Value) -> anyhow::Result<Value> {
        let response = self
            .client
            .post(format!("{}{path}", self.url))
            .bearer_auth(key)
            .json(&body)
            .send()
            .await
            .with_context(|| format!("POST {path}"))?;
        let status = response.status();
        let text = response.text().await?;
        if status.as_u16() != 201 {
            bail!("POST {path} answered {status}: {text}");
        }
        serde_json::from_str(&text).with_context(|| format!("POST {path} answered {text}"))
    }

    /// A new account on the Elite plan; returns its API key.
    async fn account(&self, name: &str) -> anyhow::Result<String> {
        let account = self
            .call(
                "/v1/accounts",
                &self.admin_key,
                json!({ "name": name, "plan": "elite" }),
            )
            .await?;
        account["api_key"]
            .as_str()
            .map(str::to_owned)
            .context("no api_key in the new account")
    }

    async fn whitelist(&self, key: &str, hostname: &str, origin_url: &str) -> anyhow::Result<()> {
        self.call(
            "/v1/domains",
            key,
            json!({ "hostname": hostname, "origin_url": origin_url }),
        )
        .await?;
        Ok(())
    }
}

/// Caddy with `on_demand_tls`, asking this process which names it may certify.
async fn caddy_side(bench: &Bench) -> anyhow::Result<SideResult> {
    let binary = require("caddy", "caddy")?;
    let version = Command::new(&binary)
        .arg("version")
        .output()
        .context("caddy version")?;
    let version = String::from_utf8_lossy(&version.stdout)
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned();
    let dir = bench.root.join("caddy");
    for sub in ["storage", "xdg-data", "xdg-config"] {
        std::fs::create_dir_all(dir.join(sub))?;
    }
    let https = loopback(free_port()?);
    let directory = bench.pebble.directory_url();
    let ca_root = bench.pebble.listener_ca_pem_path().display().to_string();
    // Every address is loopback, the only issuer is Pebble (no ZeroSSL fallback), no OCSP.
    // TLS-ALPN-01 is off so that both servers validate over HTTP-01.
    let caddyfile = format!(
        r#"{{
	admin off
	default_bind 127.0.0.1
	http_port {http_port}
	https_port {https_port}
	storage file_system {{
		root {storage}
	}}
	acme_ca {directory}
	acme_ca_root {ca_root}
	cert_issuer acme {{
		dir {directory}
		trusted_roots {ca_root}
		disable_tlsalpn_challenge
	}}
	ocsp_stapling off
	on_demand_tls {{
		ask http://{ask}/ask
	}}
}}

https:// {{
	tls {{
		on_demand
	}}
	reverse_proxy {origin}
}}
"#,
        http_port = bench.pebble.http_port(),
        https_port = https.port(),
        storage = dir.join("storage").display(),
        ask = bench.ask,
        origin = bench.origin,
    );
    let caddyfile_path = dir.join("Caddyfile");
    std::fs::write(&caddyfile_path, caddyfile)?;
    let names = SideNames::new("caddy", bench.names_per_phase);
    bench
        .allowed
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .extend(names.all().cloned());
    let log = dir.join("caddy.log");
    let mut server = Server::spawn(
        "caddy",
        Some(SERVER_CORE),
        Command::new(&binary)
            .arg("run")
            .arg("--config")
            .arg(&caddyfile_path)
            .arg("--adapter")
            .arg("caddyfile")
            .env("HOME", &dir)
            .env("XDG_DATA_HOME", dir.join("xdg-data"))
            .env("XDG_CONFIG_HOME", dir.join("xdg-config")),
        &log,
    )?;
    server.wait_for_port(https, START_DEADLINE).await?;
    server
        .wait_for_port(loopback(bench.pebble.http_port()), START_DEADLINE)
        .await?;
    let result = measure(
        bench,
        &mut server,
        https,
        &names,
        format!("Caddy {version} (`on_demand_tls` + `ask`)"),
    )
    .await
    .with_context(|| format!("end of {}:\n{}", log.display(), tail(&log)))?;
    drop(server);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let remote = non_loopback_urls(&text);
    if !remote.is_empty() {
        bail!("Caddy's log names non-loopback URLs: {remote:?}");
    }
    Ok(result)
}

/// Hosts of `http(s)://` URLs in `text` that are not 127.0.0.1.
fn non_loopback_urls(text: &str) -> Vec<String> {
    let mut found = Vec::new();
    for scheme in ["http://", "https://"] {
        for (start, _) in text.match_indices(scheme) {
            let rest = &text[start + scheme.len()..];
            let end = rest
                .find(|c: char| c == '/' || c == '"' || c == '\\' || c.is_whitespace())
                .unwrap_or(rest.len());
            let host = rest[..end]
                .rsplit_once(':')
                .map_or(&rest[..end], |(host, _)| host);
            if host != "127.0.0.1" && !found.iter().any(|seen| seen == host) {
                found.push(host.to_owned());
            }
        }
    }
    found
}

/// The warm-up, then the sequential and the concurrent phase against `server` at `https`.
async fn measure(
    bench: &Bench,
    server: &mut Server,
    https: SocketAddr,
    names: &SideNames,
    label: String,
) -> anyhow::Result<SideResult> {
    let pebble_log = bench.pebble.work_dir().join("pebble.log");
    let (_, warm_up) = timed_first_request(
        &bench.connector,
        https,
        client_address(Phase::WarmUp, 0)?,
        &names.warm_up,
    )
    .await
    .with_context(|| format!("{label}: the warm-up request for {}", names.warm_up))?;
    server.check_running()?;

    let sequential_mark = log_length(&pebble_log)?;
    let mut sequential = PhaseResult {
        requested: names.sequential.len(),
        ..PhaseResult::default()
    };
    for (index, name) in names.sequential.iter().enumerate() {
        let source = client_address(Phase::Sequential, index)?;
        let outcome = timed_first_request(&bench.connector, https, source, name).await;
        sequential.record(name, outcome);
    }
    server.check_running()?;
    if !bench.options.quick {
        tokio::time::sleep(REST_BEFORE_BURST).await;
    }

    let concurrent_mark = log_length(&pebble_log)?;
    let mut concurrent = PhaseResult {
        requested: names.concurrent.len(),
        ..PhaseResult::default()
    };
    let mut burst = Vec::with_capacity(names.concurrent.len());
    for (index, name) in names.concurrent.iter().enumerate() {
        let source = client_address(Phase::Concurrent, index)?;
        burst.push(timed_first_request(&bench.connector, https, source, name));
    }
    let outcomes = futures::future::join_all(burst).await;
    for (name, outcome) in names.concurrent.iter().zip(outcomes) {
        concurrent.record(name, outcome);
    }
    tokio::time::sleep(SETTLE_AFTER_BURST).await;
    server.check_running()?;
    let end_mark = log_length(&pebble_log)?;

    let log = std::fs::read(&pebble_log).context("reading Pebble's log")?;
    sequential.orders = count_orders(&log[sequential_mark..concurrent_mark], &names.sequential);
    concurrent.orders = count_orders(&log[concurrent_mark..end_mark], &names.concurrent);
    Ok(SideResult {
        label,
        warm_up,
        sequential,
        concurrent,
        breakdown: None,
        diagnoses: Vec::new(),
    })
}

fn log_length(path: &Path) -> anyhow::Result<usize> {
    let length = std::fs::metadata(path)
        .with_context(|| format!("reading {}", path.display()))?
        .len();
    Ok(usize::try_from(length)?)
}

/// Counts orders, issued certificates and names validated more than once in a slice of
/// Pebble's log.
fn count_orders(log: &[u8], names: &[String]) -> Orders {
    let text = String::from_utf8_lossy(log);
    let mut validations: HashMap<&str, usize> = HashMap::new();
    let mut orders = Orders::default();
    for line in text.lines() {
        if line.contains("Added order") {
            orders.orders += 1;
        } else if line.contains("Issued certificate serial") {
            orders.issued += 1;
        } else if line.contains("Pulled a task") {
            let validated = names
                .iter()
                .find(|name| line.contains(&format!("Value:\"{name}\"")));
            if let Some(name) = validated {
                *validations.entry(name.as_str()).or_default() += 1;
            }
        }
    }
    orders.names_ordered = validations.len();
    orders.validated_twice = validations.values().filter(|count| **count > 1).count();
    orders
}

/// [`first_request`] within [`REQUEST_DEADLINE`].
async fn timed_first_request(
    connector: &TlsConnector,
    server: SocketAddr,
    source: Ipv4Addr,
    name: &str,
) -> anyhow::Result<(OffsetDateTime, Duration)> {
    match tokio::time::timeout(
        REQUEST_DEADLINE,
        first_request(connector, server, source, name),
    )
    .await
    {
        Ok(outcome) => outcome,
        Err(_) => bail!("no response within {REQUEST_DEADLINE:?}"),
    }
}

/// A new connection from `source`, a TLS handshake with SNI `name`, and `GET /` with Host
/// `name`: when it started, and the time from the connect to the origin's whole body.
async fn first_request(
    connector: &TlsConnector,
    server: SocketAddr,
    source: Ipv4Addr,
    name: &str,
) -> anyhow::Result<(OffsetDateTime, Duration)> {
    let started_at = OffsetDateTime::now_utc();
    let started = Instant::now();
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((source, 0)))?;
    let tcp = socket.connect(server).await.context("connecting")?;
    tcp.set_nodelay(true)?;
    let tls = connector
        .connect(ServerName::try_from(name.to_owned())?, tcp)
        .await
        .context("TLS handshake")?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tls))
        .await
        .context("HTTP handshake")?;
    let driver = tokio::spawn(connection);
    let request = http::Request::get("/")
        .header(http::header::HOST, name)
        .body(Empty::<Bytes>::new())?;
    let response = sender
        .send_request(request)
        .await
        .context("sending the request")?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .context("reading the response")?
        .to_bytes();
    let elapsed = started.elapsed();
    driver.abort();
    if status != http::StatusCode::OK || body != ORIGIN_BODY.as_bytes() {
        bail!("answered {status} with a body not from the origin");
    }
    Ok((started_at, elapsed))
}

/// The origin: `200 origin ok` for every request.
async fn start_origin() -> anyhow::Result<SocketAddr> {
    serve_http(|_| http::StatusCode::OK, ORIGIN_BODY).await
}

/// Caddy's `ask` endpoint: 200 for `?domain=<a benchmark name>`, 404 otherwise.
async fn start_ask(allowed: Arc<Mutex<HashSet<String>>>) -> anyhow::Result<SocketAddr> {
    serve_http(
        move |request| {
            let domain = request.uri().query().and_then(|query| {
                query
                    .split('&')
                    .find_map(|pair| pair.strip_prefix("domain="))
            });
            let known = domain.is_some_and(|domain| {
                allowed
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner)
                    .contains(domain)
            });
            if known {
                http::StatusCode::OK
            } else {
                http::StatusCode::NOT_FOUND
            }
        },
        "",
    )
    .await
}

/// A tiny HTTP/1.1 server on loopback answering `decide(request)` with `body`.
async fn serve_http<F>(decide: F, body: &'static str) -> anyhow::Result<SocketAddr>
where
    F: Fn(&http::Request<hyper::body::Incoming>) -> http::StatusCode + Send + Sync + 'static,
{
    let listener = TcpListener::bind(loopback(0)).await?;
    let address = listener.local_addr()?;
    let decide = Arc::new(decide);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            let decide = Arc::clone(&decide);
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request| {
                    let status = decide(&request);
                    async move {
                        let mut response = http::Response::new(Full::new(Bytes::from(body)));
                        *response.status_mut() = status;
                        Ok::<_, Infallible>(response)
                    }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(address)
}

// ---------------------------------------------------------------------------------------------
// The report

fn report(bench: &Bench, ours: &SideResult, caddy: &SideResult) -> anyhow::Result<()> {
    let count = bench.names_per_phase;
    let mut section = Section::new(
        "On-demand issuance: first request for a new name",
        "on-demand",
        bench.options,
    );
    section.table(results_table(count, ours, caddy));
    section.table(versus_table(ours, caddy));
    if let Some(table) = breakdown_table(ours) {
        section.table(table);
    }

    section.note(format!(
        "Method: one Pebble (`PEBBLE_VA_NOSLEEP=1`, otherwise its defaults: 5% of nonces \
         rejected; authorization reuse does not apply, every name is new) and \
         pebble-challtestsrv (every name resolves to 127.0.0.1) serve both servers, which take \
         turns on Pebble's HTTP-01 port, each pinned to core {SERVER_CORE} (the client, the \
         origin and Caddy's `ask` endpoint run on core {LOAD_CORE}; Pebble is not pinned). \
         EdgeCert is the local stack's composition (API, issuer loop, edge terminator with its \
         defaults, SQLite) in a process of its own, pointed at this Pebble; names are \
         whitelisted through its API beforehand (Elite accounts). Caddy runs `on_demand_tls` \
         with an `ask` endpoint approving exactly the benchmark's names, HTTP-01 only, `admin \
         off`, OCSP stapling off, Pebble as its only issuer; its log names no address other \
         than 127.0.0.1. Per server: one warm-up name (it registers the ACME account: {} for \
         EdgeCert, {} for Caddy; not counted), {count} names one after another, {}then {count} \
         other names at once. A request is a new TCP connection from its own loopback address \
         (127.1.x.y, as first visits of different names come from different visitors; \
         EdgeCert limits lookups of unknown names to 5/s, burst 20, per client address), a TLS \
         1.3 handshake with SNI = the name (no certificate verification) and `GET /`; it is \
         served when the origin's body arrives within {} s. Percentiles are over served \
         requests only. Orders are Pebble's `Added order` log lines during the phase; a name \
         counts as ordered when Pebble validated it.",
        millis(ours.warm_up),
        millis(caddy.warm_up),
        if bench.options.quick {
            String::new()
        } else {
            format!(
                "a {} s rest (longer than Caddy's 10-orders-per-10-s window), ",
                REST_BEFORE_BURST.as_secs()
            )
        },
        REQUEST_DEADLINE.as_secs(),
    ));

    let p50_sequential = seconds(ours.sequential.p(0.5)) / seconds(caddy.sequential.p(0.5));
    let p50_concurrent = seconds(ours.concurrent.p(0.5)) / seconds(caddy.concurrent.p(0.5));
    let p50_met = p50_sequential <= 0.6 && p50_concurrent <= 0.6;
    let served_met = ours.concurrent.served.len() == ours.concurrent.requested;
    let orders_met = ours.sequential.one_order_per_name() && ours.concurrent.one_order_per_name();
    section.note(format!(
        "Targets (issue #8): p50 <= 0.6x Caddy: **{}** ({p50_sequential:.2}x sequential, \
         {p50_concurrent:.2}x concurrent{}). 100% of concurrent first requests served: **{}** \
         (EdgeCert {}, Caddy {}). Exactly one order per name: **{}** (EdgeCert: {} + {} orders \
         for {} + {} names, {} + {} names validated twice).",
        verdict(p50_met),
        if caddy.concurrent.served.len() < caddy.concurrent.requested {
            format!(
                "; Caddy's concurrent p50 is over the {} requests it served",
                caddy.concurrent.served.len()
            )
        } else {
            String::new()
        },
        verdict(served_met),
        ours.concurrent.served_cell(),
        caddy.concurrent.served_cell(),
        verdict(orders_met),
        ours.sequential.orders.orders,
        ours.concurrent.orders.orders,
        ours.sequential.requested,
        ours.concurrent.requested,
        ours.sequential.orders.validated_twice,
        ours.concurrent.orders.validated_twice,
    ));
    for side in [ours, caddy] {
        for (phase, result) in [
            ("sequential", &side.sequential),
            ("concurrent", &side.concurrent),
        ] {
            if !result.failures.is_empty() {
                section.note(format!(
                    "{} failed {} of {} {phase} first requests: {}.",
                    side.label,
                    result.requested - result.served.len(),
                    result.requested,
                    result.failure_summary()
                ));
            }
        }
    }
    if !ours.diagnoses.is_empty() {
        section.note(format!(
            "{}, from its store and log:\n\n{}",
            ours.label,
            ours.diagnoses
                .iter()
                .map(|diagnosis| format!("- {diagnosis}"))
                .collect::<Vec<_>>()
                .join("\n")
        ));
    }
    section.publish()
}

fn seconds(duration: Duration) -> f64 {
    duration.as_secs_f64()
}

/// Every server's figures.
fn results_table(count: usize, ours: &SideResult, caddy: &SideResult) -> Table {
    let mut table = Table::new(
        &format!(
            "From the connect of the first request for a new whitelisted name to the origin's \
             response ({count} names one after another, then {count} other names at once)"
        ),
        &[
            "Server",
            "Sequential p50",
            "Sequential p99",
            "Sequential served",
            "Concurrent p50",
            "Concurrent p99",
            "Concurrent served",
            "Orders per name (sequential)",
            "Orders per name (concurrent)",
        ],
    );
    for side in [ours, caddy] {
        table.row(vec![
            side.label.clone(),
            millis(side.sequential.p(0.5)),
            millis(side.sequential.p(0.99)),
            side.sequential.served_cell(),
            millis(side.concurrent.p(0.5)),
            millis(side.concurrent.p(0.99)),
            side.concurrent.served_cell(),
            side.sequential.orders_cell(),
            side.concurrent.orders_cell(),
        ]);
    }
    table
}

/// EdgeCert's defaults against Caddy, with the issue's targets.
fn versus_table(ours: &SideResult, caddy: &SideResult) -> Table {
    let mut table = Table::new(
        "EdgeCert (defaults) vs Caddy",
        &[
            "Figure",
            "EdgeCert",
            "Caddy",
            "Ratio (EdgeCert / Caddy)",
            "Target",
        ],
    );
    for (figure, ours_phase, caddy_phase, q, target) in [
        (
            "p50, sequential",
            &ours.sequential,
            &caddy.sequential,
            0.5,
            "<= 0.60x",
        ),
        (
            "p50, concurrent",
            &ours.concurrent,
            &caddy.concurrent,
            0.5,
            "<= 0.60x",
        ),
        (
            "p99, sequential",
            &ours.sequential,
            &caddy.sequential,
            0.99,
            "-",
        ),
        (
            "p99, concurrent",
            &ours.concurrent,
            &caddy.concurrent,
            0.99,
            "-",
        ),
    ] {
        table.row(vec![
            figure.to_owned(),
            millis(ours_phase.p(q)),
            millis(caddy_phase.p(q)),
            ratio(seconds(ours_phase.p(q)), seconds(caddy_phase.p(q))),
            target.to_owned(),
        ]);
    }
    table.row(vec![
        "Concurrent first requests served".to_owned(),
        format!("{:.0}%", ours.concurrent.served_fraction() * 100.0),
        format!("{:.0}%", caddy.concurrent.served_fraction() * 100.0),
        ratio(
            ours.concurrent.served_fraction(),
            caddy.concurrent.served_fraction(),
        ),
        "100%".to_owned(),
    ]);
    table.row(vec![
        "Orders per name (sequential / concurrent)".to_owned(),
        format!(
            "{:.2} / {:.2}",
            ours.sequential.orders_per_name(),
            ours.concurrent.orders_per_name()
        ),
        format!(
            "{:.2} / {:.2}",
            caddy.sequential.orders_per_name(),
            caddy.concurrent.orders_per_name()
        ),
        "-".to_owned(),
        "exactly 1".to_owned(),
    ]);
    table
}

/// Median time of each issuance interval, from the issuer's events, in both phases.
fn breakdown_table(ours: &SideResult) -> Option<Table> {
    let breakdowns = ours.breakdown.as_ref()?;
    let columns = [&breakdowns.sequential, &breakdowns.concurrent];
    let mut table = Table::new(
        "Where EdgeCert's first request spends its time (the events its issuer stores with each \
         certificate)",
        &["Interval (median)", "Sequential", "Concurrent"],
    );
    for (index, interval) in INTERVALS.iter().enumerate() {
        let mut row = vec![(*interval).to_owned()];
        row.extend(columns.iter().map(|breakdown| breakdown.median(index)));
        table.row(row);
    }
    let mut row = vec!["Issuances broken down (not clean: left out)".to_owned()];
    row.extend(columns.iter().map(|breakdown| {
        let clean = breakdown.intervals.first().map_or(0, Vec::len);
        format!("{clean} ({})", breakdown.skipped)
    }));
    table.row(row);
    Some(table)
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

//! Scenario 7, the fault soak: 500 new names whose first HTTPS requests arrive at once while
//! the CA and the store fail under them; the invariants of the fault matrix
//! (`integration/local/tests/fault_matrix.rs`, a few names per fault) checked at this scale,
//! with the faults overlapping the burst.
//!
//! The whole local stack runs in this process ([`LocalStack::start`]: the API, the issuer loop,
//! the renewer and the edge terminator on SQLite, Pebble and challtestsrv beside it), with the
//! test fault layer [`CaFaults`] between the issuer and Pebble. The load generator, the origin
//! and the checks run in this process too, so nothing is pinned to a core.
//!
//! The run, in order:
//! 1. 500 names (`--quick`: 16) whitelisted through the API, 100 per Elite account (the plan's
//!    domain limit), with one origin on loopback.
//! 2. The fault layer armed: the first newOrder requests are answered 429 with `Retry-After`,
//!    the first finalize and challenge requests 503 (Pebble gives neither).
//! 3. Every name's first requests at once: three per name, each a new connection from the
//!    name's own loopback address (127.3.x.y; first visits of different names come from
//!    different visitors, and the edge limits unknown-name lookups per client address), a TLS
//!    handshake verified against Pebble's root, and `GET /`. A visitor whose requests all
//!    failed tries again every two seconds until the faults end.
//! 4. Once a fifth of the names have orders, Pebble is stopped (SIGSTOP of its pid) for 20 s
//!    and resumed; a second later the store is unavailable for 15 s (another SQLite connection
//!    holds `BEGIN EXCLUSIVE` on `<data dir>/edgecert.db`).
//! 5. After the faults, within a bound, every domain must be `active` or show an error with a
//!    `next_attempt_at` in the future; then every domain not active is nudged through the API,
//!    and every name must be served (verified handshake, the origin's body) with its domain
//!    `active`, within a bound.
//!
//! Invariants asserted (the run fails after printing its report when one does not hold):
//! - no certificate without its key: no handshake, in any attempt, presents a certificate that
//!   fails verification against Pebble's root (rustls checks that the key signs the
//!   handshake), and every name ends served that way;
//! - one order per name at a time: [`CaFaults::overlapping_orders`] stays empty;
//! - every domain ends `active` or explained (an error and a future `next_attempt_at`);
//! - nothing is stuck: after the faults and a nudge, every name is served within the bound.
//!
//! Measured: the time until every name is active, handshake refusals and their latency while
//! each fault lasts, orders per name, and peak RSS (this process, which holds the stack, and
//! Pebble). `RUST_LOG` sets the log filter (default `error`: the faults make the stack warn by
//! design); `EDGECERT_BENCH_KEEP_DIR=1` keeps the data directory (SQLite file, stack.json).

use std::collections::{BTreeMap, HashSet};
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use edgecert_acme::testing::{CaFaults, Endpoint, Fault};
use edgecert_bench::report::{Options, Section, Table, millis, quantile, whole};
use edgecert_local::{LocalOptions, LocalStack};
use futures::StreamExt as _;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use tokio::net::{TcpListener, TcpSocket};
use tokio::sync::watch;
use tokio_rustls::TlsConnector;

/// What the origin answers; a request counts as served only with this body.
const ORIGIN_BODY: &str = "soak origin ok\n";
/// Whitelisted domains per account: the Elite plan's limit.
const NAMES_PER_ACCOUNT: usize = 100;
/// First requests per name, all at once.
const FIRST_REQUESTS_PER_NAME: usize = 3;
/// A visitor refused during the faults tries again after this pause.
const VISITOR_PAUSE: Duration = Duration::from_secs(2);
/// Longest wait for one attempt (connect, handshake, response). The terminator holds a
/// handshake for at most 20 s (`on_demand_wait`) while it issues.
const ATTEMPT_BOUND: Duration = Duration::from_secs(30);
/// Pause between the CA's resumption and the store's outage.
const STORE_GAP: Duration = Duration::from_secs(1);
/// Longest wait for the orders that must be placed before the CA is stopped.
const ORDERS_WAIT: Duration = Duration::from_secs(60);
/// Longest wait for another connection to take SQLite's write lock.
const LOCK_WAIT: Duration = Duration::from_secs(30);
/// API calls in flight at once (whitelisting, `/ssl` sweeps, nudges).
const API_CONCURRENCY: usize = 16;
/// Names checked at once after the nudge.
const RECOVERY_CONCURRENCY: usize = 64;
/// Pause between two checks of a name not served yet after the nudge (under the edge's 5
/// lookups per second per client address).
const RECOVERY_POLL: Duration = Duration::from_millis(250);
/// Pause between two `/ssl` sweeps while waiting for every domain to be explained.
const SWEEP_PAUSE: Duration = Duration::from_millis(500);
/// Examples of a violated invariant shown in the report.
const EXAMPLES: usize = 5;

fn main() -> anyhow::Result<()> {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("error")),
        )
        .with_writer(std::io::stderr)
        .with_ansi(false)
        .try_init();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(run(Options::from_args()))
}

/// How big and how long a run is.
#[derive(Debug, Clone, Copy)]
struct Sizes {
    /// New names, whitelisted then requested at once.
    names: usize,
    /// newOrder requests answered 429.
    rate_limited: usize,
    /// `Retry-After` of those 429 answers.
    retry_after: Duration,
    /// Finalize requests answered 503, and challenge requests answered 503 (each).
    unavailable: usize,
    /// Orders the CA must have created when it is stopped.
    orders_before_stop: usize,
    /// How long the CA stays stopped.
    ca_stop: Duration,
    /// How long the store stays unavailable.
    store_outage: Duration,
    /// Longest wait, after the faults, for every domain to be active or explained.
    settle_bound: Duration,
    /// Longest wait, after the nudge, for every name to be served and active.
    recovery_bound: Duration,
}

impl Sizes {
    fn of(options: Options) -> Sizes {
        let names = options.pick(500, 16);
        Sizes {
            names,
            rate_limited: options.pick(25, 2),
            retry_after: Duration::from_secs(3),
            unavailable: options.pick(25, 2),
            orders_before_stop: (names / 5).max(1),
            ca_stop: options.pick(Duration::from_secs(20), Duration::from_secs(3)),
            store_outage: options.pick(Duration::from_secs(15), Duration::from_secs(3)),
            settle_bound: options.pick(Duration::from_secs(120), Duration::from_secs(30)),
            recovery_bound: options.pick(Duration::from_secs(180), Duration::from_secs(30)),
        }
    }
}

/// One whitelisted name.
#[derive(Debug, Clone)]
struct Name {
    hostname: String,
    domain_id: String,
    /// The API key of the account holding it.
    api_key: Arc<str>,
    /// The loopback address its visitors connect from.
    source: Ipv4Addr,
}

/// What one HTTPS request through the edge came to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
enum Outcome {
    /// The origin's body, over a handshake verified against Pebble's root.
    Served,
    /// The handshake failed without a certificate: the edge refused the name for now.
    Refused,
    /// The edge presented a certificate that failed verification (wrong key, wrong chain,
    /// wrong name): never allowed.
    BadCertificate,
    /// Nothing within [`ATTEMPT_BOUND`].
    TimedOut,
    /// The handshake passed but the answer was not the origin's.
    NotProxied,
    /// The TCP connection failed.
    ConnectFailed,
}

/// One HTTPS request through the edge.
#[derive(Debug, Clone, Copy)]
struct Attempt {
    started: Instant,
    latency: Duration,
    outcome: Outcome,
    /// One of the first requests of its name.
    first: bool,
}

/// Every attempt of the run, from every task.
#[derive(Debug, Clone, Default)]
struct AttemptLog(Arc<Mutex<Vec<Attempt>>>);

impl AttemptLog {
    fn push(&self, attempt: Attempt) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(attempt);
    }

    fn all(&self) -> Vec<Attempt> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// HTTPS requests through the edge, verified against Pebble's root.
#[derive(Clone)]
struct Visitor {
    connector: TlsConnector,
    edge: SocketAddr,
    log: AttemptLog,
}

impl Visitor {
    fn new(roots: &[CertificateDer<'static>], edge: SocketAddr) -> anyhow::Result<Visitor> {
        let mut store = rustls::RootCertStore::empty();
        for root in roots {
            store.add(root.clone()).context("Pebble's root")?;
        }
        let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()
        .context("TLS versions")?
        .with_root_certificates(store)
        .with_no_client_auth();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        // Every attempt is a full handshake: the edge shows its certificate each time.
        config.resumption = rustls::client::Resumption::disabled();
        Ok(Visitor {
            connector: TlsConnector::from(Arc::new(config)),
            edge,
            log: AttemptLog::default(),
        })
    }

    /// One request for `name`, logged.
    async fn attempt(&self, name: &Name, first: bool) -> Outcome {
        let started = Instant::now();
        let outcome = tokio::time::timeout(ATTEMPT_BOUND, self.request(name))
            .await
            .unwrap_or(Outcome::TimedOut);
        self.log.push(Attempt {
            started,
            latency: started.elapsed(),
            outcome,
            first,
        });
        outcome
    }

    /// A new connection from the name's address, a verified handshake, `GET /`.
    async fn request(&self, name: &Name) -> Outcome {
        let connected = async {
            let socket = TcpSocket::new_v4()?;
            socket.bind(SocketAddr::from((name.source, 0)))?;
            socket.connect(self.edge).await
        };
        let Ok(tcp) = connected.await else {
            return Outcome::ConnectFailed;
        };
        let _ = tcp.set_nodelay(true);
        let Ok(server_name) = ServerName::try_from(name.hostname.clone()) else {
            return Outcome::ConnectFailed;
        };
        let tls = match self.connector.connect(server_name, tcp).await {
            Ok(tls) => tls,
            Err(error) => return handshake_failure(&error),
        };
        let Ok((mut sender, connection)) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await
        else {
            return Outcome::NotProxied;
        };
        let driver = tokio::spawn(connection);
        let outcome = async {
            let request = http::Request::get("/")
                .header(http::header::HOST, &name.hostname)
                .body(Empty::<Bytes>::new())
                .ok()?;
            let response = sender.send_request(request).await.ok()?;
            let status = response.status();
            let body = response.into_body().collect().await.ok()?.to_bytes();
            Some(status == http::StatusCode::OK && body == ORIGIN_BODY.as_bytes())
        }
        .await;
        driver.abort();
        if outcome == Some(true) {
            Outcome::Served
        } else {
            Outcome::NotProxied
        }
    }
}

/// A failed handshake: a certificate that did not verify, or a refusal (an alert, or the
/// connection closed before any certificate).
fn handshake_failure(error: &std::io::Error) -> Outcome {
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    match rustls_error {
        Some(rustls::Error::InvalidCertificate(_)) => Outcome::BadCertificate,
        _ => Outcome::Refused,
    }
}

/// A name's visitor: the first requests at once, then one more every [`VISITOR_PAUSE`] until
/// one is served or `stop` turns true. Whether one was served.
async fn visit(visitor: Visitor, name: Name, mut stop: watch::Receiver<bool>) -> bool {
    let first = futures::future::join_all(
        (0..FIRST_REQUESTS_PER_NAME).map(|_| visitor.attempt(&name, true)),
    )
    .await;
    if first.contains(&Outcome::Served) {
        return true;
    }
    loop {
        tokio::select! {
            _ = tokio::time::sleep(VISITOR_PAUSE) => {}
            _ = stop.wait_for(|stopped| *stopped) => return false,
        }
        if *stop.borrow() {
            return false;
        }
        if visitor.attempt(&name, false).await == Outcome::Served {
            return true;
        }
    }
}

/// The API over HTTP.
struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        key: &str,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<(u16, Value)> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}{path}", self.base))
            .bearer_auth(key)
            .timeout(Duration::from_secs(60));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status().as_u16();
        let text = response.text().await.context("reading the API's answer")?;
        Ok((status, serde_json::from_str(&text).unwrap_or(Value::Null)))
    }

    async fn ssl(&self, name: &Name) -> anyhow::Result<Value> {
        let path = format!("/v1/domains/{}/ssl", name.domain_id);
        let (status, ssl) = self
            .call(&name.api_key, reqwest::Method::GET, &path, None)
            .await?;
        if status != 200 {
            bail!("GET {path} answered {status}: {ssl}");
        }
        Ok(ssl)
    }
}

/// Where a domain stands, from its `/ssl` view.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    Active,
    /// An error, and a next attempt after the moment the view was asked for.
    Explained,
    /// An error, but no next attempt or one already past.
    Overdue,
    /// No error and not active: being worked on.
    Working,
}

fn standing(ssl: &Value, asked_at: OffsetDateTime) -> Standing {
    if ssl["provisioning_step"] == "active" {
        return Standing::Active;
    }
    if ssl["error"].as_str().is_none_or(str::is_empty) {
        return Standing::Working;
    }
    let next = ssl["next_attempt_at"]
        .as_str()
        .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok());
    match next {
        Some(next) if next > asked_at => Standing::Explained,
        _ => Standing::Overdue,
    }
}

/// When things happened, from the first requests.
#[derive(Debug, Clone, Copy)]
struct Timeline {
    start: Instant,
    ca_stopped: Instant,
    ca_resumed: Instant,
    store_locked: Instant,
    store_released: Instant,
    settled: Instant,
    nudged: Instant,
    all_served: Option<Instant>,
}

impl Timeline {
    fn at(&self, instant: Instant) -> String {
        format!("{:.1} s", instant.duration_since(self.start).as_secs_f64())
    }

    /// What was going on when an attempt started.
    fn period(&self, started: Instant) -> Period {
        if started < self.ca_stopped {
            Period::Burst
        } else if started < self.ca_resumed {
            Period::CaStopped
        } else if started < self.store_locked {
            Period::CaResumed
        } else if started < self.store_released {
            Period::StoreUnavailable
        } else if started < self.nudged {
            Period::AfterFaults
        } else {
            Period::AfterNudge
        }
    }
}

/// Parts of the run, for the attempt table.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Period {
    Burst,
    CaStopped,
    CaResumed,
    StoreUnavailable,
    AfterFaults,
    AfterNudge,
}

impl Period {
    const ALL: [Period; 6] = [
        Period::Burst,
        Period::CaStopped,
        Period::CaResumed,
        Period::StoreUnavailable,
        Period::AfterFaults,
        Period::AfterNudge,
    ];

    fn label(self) -> &'static str {
        match self {
            Period::Burst => "first requests, CA answering 429/503 (before the stop)",
            Period::CaStopped => "CA stopped (SIGSTOP)",
            Period::CaResumed => "CA resumed, store not yet locked",
            Period::StoreUnavailable => "store unavailable (BEGIN EXCLUSIVE held)",
            Period::AfterFaults => "after the faults, before the nudge",
            Period::AfterNudge => "after the nudge (recovery checks)",
        }
    }
}

/// A broken invariant, and examples.
#[derive(Debug, Clone, Default)]
struct Violations(BTreeMap<&'static str, Vec<String>>);

impl Violations {
    fn add(&mut self, invariant: &'static str, example: String) {
        self.0.entry(invariant).or_default().push(example);
    }

    fn of(&self, invariant: &str) -> &[String] {
        self.0.get(invariant).map_or(&[], Vec::as_slice)
    }
}

const NO_UNKEYED_CERTIFICATE: &str = "no certificate without its key";
const ONE_ORDER_AT_A_TIME: &str = "one order per name at a time";
const ACTIVE_OR_EXPLAINED: &str = "every domain active or explained";
const NOTHING_STUCK: &str = "nothing stuck";

/// What the settle phase saw.
#[derive(Debug, Clone, Default)]
struct Settled {
    sweeps: usize,
    active: usize,
    explained: usize,
    /// Names seen at least once with an error and a past (or no) next attempt.
    overdue_seen: HashSet<String>,
}

async fn run(options: Options) -> anyhow::Result<()> {
    let sizes = Sizes::of(options);
    let data_dir = tempfile::Builder::new()
        .prefix("edgecert-soak-")
        .tempdir()
        .context("creating the data directory")?;
    let faults = CaFaults::new();
    let mut local = LocalOptions::new(data_dir.path().to_path_buf());
    local.api_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    local.edge_https_addr = SocketAddr::from((Ipv4Addr::LOCALHOST, 0));
    local.ca_faults = Some(faults.clone());
    // Nor the account's order budget: every name is ordered within the run.
    local.order_budget = 1_000_000;
    let stack = LocalStack::start(local)
        .await
        .context("starting the local stack")?;
    let rss_after_start = status_kib("self", "VmRSS").unwrap_or_default();
    let outcome = soak(&stack, &faults, data_dir.path(), sizes, options).await;
    stack.stop().await;
    if std::env::var("EDGECERT_BENCH_KEEP_DIR").is_ok_and(|value| value == "1") {
        let kept = data_dir.keep();
        eprintln!("soak: data directory kept in {}", kept.display());
    }
    let report = outcome?;
    report.publish(rss_after_start)
}

/// Everything the report shows.
struct Report {
    sizes: Sizes,
    options: Options,
    accounts: usize,
    whitelisting: Duration,
    timeline: Timeline,
    orders_at_stop: usize,
    attempts: Vec<Attempt>,
    settled: Settled,
    nudged: usize,
    violations: Violations,
    served_names: usize,
    orders_per_name: Vec<usize>,
    order_requests: usize,
    orders_created: usize,
    overlapping: usize,
    counters: BTreeMap<String, u64>,
    peak_rss_kib: u64,
    pebble_peak_rss_kib: u64,
}

async fn soak(
    stack: &LocalStack,
    faults: &CaFaults,
    data_dir: &Path,
    sizes: Sizes,
    options: Options,
) -> anyhow::Result<Report> {
    let api = Api {
        http: edgecert_integration::services::http_client(&[])?,
        base: stack.info.api_url.clone(),
    };
    let root =
        std::fs::read_to_string(&stack.info.pebble_root_file).context("reading Pebble's root")?;
    let visitor = Visitor::new(
        &edgecert_terminator::roots_from_pem(&root),
        stack.info.edge_https_addr,
    )?;
    let origin = start_origin().await?;

    // 1. The names, through the API.
    let whitelisting_started = Instant::now();
    let accounts = sizes.names.div_ceil(NAMES_PER_ACCOUNT);
    let mut keys = Vec::new();
    for account in 0..accounts {
        let (status, created) = api
            .call(
                &stack.admin_key,
                reqwest::Method::POST,
                "/v1/accounts",
                Some(json!({"name": format!("Soak customer {account}"), "plan": "elite"})),
            )
            .await?;
        if status != 201 {
            bail!("creating an account answered {status}: {created}");
        }
        let key = created["api_key"]
            .as_str()
            .context("the new account's API key")?;
        keys.push(Arc::<str>::from(key));
    }
    let names: Vec<Name> = futures::stream::iter(0..sizes.names)
        .map(|index| {
            let (api, key, origin) = (&api, Arc::clone(&keys[index / NAMES_PER_ACCOUNT]), &origin);
            async move { whitelist(api, key, origin, index).await }
        })
        .buffered(API_CONCURRENCY)
        .collect::<Vec<_>>()
        .await
        .into_iter()
        .collect::<anyhow::Result<_>>()?;
    let whitelisting = whitelisting_started.elapsed();

    // 2. The CA's answers Pebble never gives, for the first requests that meet them.
    faults.inject(
        Endpoint::NewOrder,
        Fault::RateLimited {
            retry_after: sizes.retry_after,
        },
        sizes.rate_limited,
    );
    faults.inject(
        Endpoint::Finalize,
        Fault::ServiceUnavailable,
        sizes.unavailable,
    );
    faults.inject(
        Endpoint::Challenge,
        Fault::ServiceUnavailable,
        sizes.unavailable,
    );

    // 3. Every name's first requests at once, and visitors retrying until the faults end.
    let (stop_visitors, visitors_stop) = watch::channel(false);
    let start = Instant::now();
    let visits: Vec<_> = names
        .iter()
        .map(|name| tokio::spawn(visit(visitor.clone(), name.clone(), visitors_stop.clone())))
        .collect();

    // 4. The CA stopped in the middle of the orders, then the store.
    let orders_deadline = Instant::now() + ORDERS_WAIT;
    while faults.new_orders() < sizes.orders_before_stop {
        if Instant::now() > orders_deadline {
            bail!(
                "only {} orders within {ORDERS_WAIT:?} of the first requests ({} expected \
                 before stopping the CA)",
                faults.new_orders(),
                sizes.orders_before_stop
            );
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let orders_at_stop = faults.new_orders();
    let pebble = Stopped::stop(stack.pebble().pebble_pid())?;
    let ca_stopped = Instant::now();
    tokio::time::sleep(sizes.ca_stop).await;
    pebble.resume()?;
    let ca_resumed = Instant::now();
    tokio::time::sleep(STORE_GAP).await;
    let lock = StoreLock::take(
        &data_dir.join("edgecert.db"),
        sizes.store_outage + LOCK_WAIT,
    )
    .await?;
    let store_locked = Instant::now();
    tokio::time::sleep(sizes.store_outage).await;
    lock.release().await?;
    let store_released = Instant::now();
    let _ = stop_visitors.send(true);
    let mut served_by_visitors = 0;
    for visit in visits {
        // Each visitor ends within one attempt's bound of the stop.
        if visit.await.unwrap_or(false) {
            served_by_visitors += 1;
        }
    }
    eprintln!(
        "soak: faults over {:.1} s after the first requests; {served_by_visitors} of {} names \
         served meanwhile",
        store_released.duration_since(start).as_secs_f64(),
        names.len()
    );

    // 5. Active or explained, then the nudge, then every name served.
    let mut violations = Violations::default();
    let (settled, views) = settle(&api, &names, sizes.settle_bound, &mut violations).await?;
    let settled_at = Instant::now();
    let mut nudged = 0;
    let to_nudge: Vec<&Name> = names
        .iter()
        .zip(&views)
        .filter(|(_, ssl)| ssl["provisioning_step"] != "active")
        .map(|(name, _)| name)
        .collect();
    let nudges = futures::stream::iter(to_nudge)
        .map(|name| {
            let api = &api;
            async move {
                let path = format!("/v1/domains/{}/ssl/nudge", name.domain_id);
                let answer = api
                    .call(&name.api_key, reqwest::Method::POST, &path, None)
                    .await;
                (name, answer)
            }
        })
        .buffer_unordered(API_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    for (name, answer) in nudges {
        match answer? {
            (200, _) => nudged += 1,
            (status, body) => violations.add(
                NOTHING_STUCK,
                format!("{}: the nudge answered {status}: {body}", name.hostname),
            ),
        }
    }
    let nudged_at = Instant::now();
    let recovery_deadline = nudged_at + sizes.recovery_bound;
    let recoveries = futures::stream::iter(&names)
        .map(|name| recover(&api, &visitor, name, recovery_deadline))
        .buffer_unordered(RECOVERY_CONCURRENCY)
        .collect::<Vec<_>>()
        .await;
    let mut all_served = Some(nudged_at);
    let mut served_names = 0;
    for recovery in recoveries {
        match recovery {
            Ok(served_at) => {
                served_names += 1;
                all_served = all_served.map(|latest| latest.max(served_at));
            }
            Err(stuck) => {
                all_served = None;
                violations.add(NOTHING_STUCK, stuck);
            }
        }
    }

    let attempts = visitor.log.all();
    let bad = attempts
        .iter()
        .filter(|attempt| attempt.outcome == Outcome::BadCertificate)
        .count();
    if bad > 0 {
        violations.add(
            NO_UNKEYED_CERTIFICATE,
            format!("{bad} handshakes presented a certificate that failed verification"),
        );
    }
    for overlap in faults.overlapping_orders() {
        violations.add(ONE_ORDER_AT_A_TIME, overlap);
    }
    let timeline = Timeline {
        start,
        ca_stopped,
        ca_resumed,
        store_locked,
        store_released,
        settled: settled_at,
        nudged: nudged_at,
        all_served,
    };
    Ok(Report {
        sizes,
        options,
        accounts,
        whitelisting,
        timeline,
        orders_at_stop,
        attempts,
        settled,
        nudged,
        served_names,
        orders_per_name: names
            .iter()
            .map(|name| faults.orders_for(&name.hostname))
            .collect(),
        order_requests: faults.new_order_requests(),
        orders_created: faults.new_orders(),
        overlapping: faults.overlapping_orders().len(),
        counters: edge_counters(&api.http, &stack.info.edge_admin_url).await,
        peak_rss_kib: status_kib("self", "VmHWM").unwrap_or_default(),
        pebble_peak_rss_kib: status_kib(&stack.pebble().pebble_pid().to_string(), "VmHWM")
            .unwrap_or_default(),
        violations,
    })
}

/// Whitelists name `index` for the account of `key`.
async fn whitelist(api: &Api, key: Arc<str>, origin: &str, index: usize) -> anyhow::Result<Name> {
    // Each name under a registered domain of its own, as customers' are: the soak measures
    // faults, not the order budget per registered domain.
    let hostname = format!("n{index:04}.soak-bench-{index:04}.com");
    let (status, domain) = api
        .call(
            &key,
            reqwest::Method::POST,
            "/v1/domains",
            Some(json!({"hostname": hostname, "origin_url": origin})),
        )
        .await?;
    if status != 201 {
        bail!("whitelisting {hostname} answered {status}: {domain}");
    }
    let host = u8::try_from(index % 250 + 1)?;
    let block = u8::try_from(index / 250).context("at most 64,000 names")?;
    Ok(Name {
        hostname,
        domain_id: domain["id"]
            .as_str()
            .context("the new domain's id")?
            .to_owned(),
        api_key: key,
        source: Ipv4Addr::new(127, 3, block, host),
    })
}

/// Sweeps every domain's `/ssl` until each is active or explained in one sweep, or `bound`
/// passes (the others are violations). The last sweep's views, in `names`' order.
async fn settle(
    api: &Api,
    names: &[Name],
    bound: Duration,
    violations: &mut Violations,
) -> anyhow::Result<(Settled, Vec<Value>)> {
    let deadline = Instant::now() + bound;
    let mut settled = Settled::default();
    loop {
        settled.sweeps += 1;
        let views = futures::stream::iter(names)
            .map(|name| async move {
                let asked_at = OffsetDateTime::now_utc();
                let ssl = api.ssl(name).await?;
                anyhow::Ok((standing(&ssl, asked_at), ssl))
            })
            .buffered(API_CONCURRENCY)
            .collect::<Vec<_>>()
            .await
            .into_iter()
            .collect::<anyhow::Result<Vec<_>>>()?;
        let mut pending = Vec::new();
        for (name, (standing, ssl)) in names.iter().zip(&views) {
            match standing {
                Standing::Active | Standing::Explained => {}
                Standing::Overdue => {
                    settled.overdue_seen.insert(name.hostname.clone());
                    pending.push(format!("{} ({standing:?}): {ssl}", name.hostname));
                }
                Standing::Working => {
                    pending.push(format!("{} ({standing:?}): {ssl}", name.hostname));
                }
            }
        }
        let count = |wanted: Standing| {
            views
                .iter()
                .filter(|(standing, _)| *standing == wanted)
                .count()
        };
        settled.active = count(Standing::Active);
        settled.explained = count(Standing::Explained);
        let views: Vec<Value> = views.into_iter().map(|(_, ssl)| ssl).collect();
        if pending.is_empty() {
            return Ok((settled, views));
        }
        if Instant::now() > deadline {
            for example in pending {
                violations.add(ACTIVE_OR_EXPLAINED, example);
            }
            return Ok((settled, views));
        }
        tokio::time::sleep(SWEEP_PAUSE).await;
    }
}

/// Checks `name` until it is served and its domain active: when it was, or why it is stuck at
/// `deadline`.
async fn recover(
    api: &Api,
    visitor: &Visitor,
    name: &Name,
    deadline: Instant,
) -> Result<Instant, String> {
    loop {
        let outcome = visitor.attempt(name, false).await;
        let served_at = Instant::now();
        if outcome == Outcome::Served {
            match api.ssl(name).await {
                Ok(ssl) if ssl["provisioning_step"] == "active" => return Ok(served_at),
                _ => {}
            }
        }
        if Instant::now() > deadline {
            let ssl = api
                .ssl(name)
                .await
                .map_or_else(|error| error.to_string(), |ssl| ssl.to_string());
            return Err(format!("{} ({outcome:?}): {ssl}", name.hostname));
        }
        tokio::time::sleep(RECOVERY_POLL).await;
    }
}

/// A stopped process, resumed by [`Stopped::resume`] or, whatever happens, when dropped.
struct Stopped {
    pid: u32,
    resumed: bool,
}

impl Stopped {
    fn stop(pid: u32) -> anyhow::Result<Stopped> {
        signal(pid, "STOP")?;
        Ok(Stopped {
            pid,
            resumed: false,
        })
    }

    fn resume(mut self) -> anyhow::Result<()> {
        self.resumed = true;
        signal(self.pid, "CONT")
    }
}

impl Drop for Stopped {
    fn drop(&mut self) {
        if !self.resumed {
            let _ = signal(self.pid, "CONT");
        }
    }
}

fn signal(pid: u32, name: &str) -> anyhow::Result<()> {
    let status = std::process::Command::new("kill")
        .args([format!("-{name}"), pid.to_string()])
        .status()
        .with_context(|| format!("running kill -{name} {pid}"))?;
    if !status.success() {
        bail!("kill -{name} {pid} failed");
    }
    Ok(())
}

/// SQLite's write lock on the store's file, held by another connection (on a thread of its
/// own) until released, or until its bound passes so that a failed run never keeps it.
struct StoreLock {
    release: std::sync::mpsc::Sender<()>,
    holder: std::thread::JoinHandle<anyhow::Result<()>>,
}

impl StoreLock {
    async fn take(path: &Path, hold_at_most: Duration) -> anyhow::Result<StoreLock> {
        let (release, released) = std::sync::mpsc::channel::<()>();
        let (locked, is_locked) = tokio::sync::oneshot::channel::<anyhow::Result<()>>();
        let file: PathBuf = path.to_path_buf();
        let holder = std::thread::spawn(move || -> anyhow::Result<()> {
            let taken = (|| {
                let connection = rusqlite::Connection::open(&file)?;
                connection.busy_timeout(LOCK_WAIT)?;
                connection.execute_batch("BEGIN EXCLUSIVE")?;
                anyhow::Ok(connection)
            })();
            let connection = match taken {
                Ok(connection) => {
                    let _ = locked.send(Ok(()));
                    connection
                }
                Err(error) => {
                    let _ = locked.send(Err(error));
                    return Ok(());
                }
            };
            let _ = released.recv_timeout(hold_at_most);
            connection
                .execute_batch("ROLLBACK")
                .context("releasing the write lock")
        });
        match tokio::time::timeout(LOCK_WAIT + Duration::from_secs(5), is_locked).await {
            Ok(Ok(Ok(()))) => Ok(StoreLock { release, holder }),
            Ok(Ok(Err(error))) => Err(error.context(format!("locking {}", path.display()))),
            Ok(Err(_)) => bail!("the lock holder of {} stopped", path.display()),
            Err(_) => bail!("no write lock on {} within {LOCK_WAIT:?}", path.display()),
        }
    }

    async fn release(self) -> anyhow::Result<()> {
        let _ = self.release.send(());
        tokio::task::spawn_blocking(move || self.holder.join())
            .await
            .context("waiting for the lock holder")?
            .map_err(|_| anyhow::anyhow!("the lock holder panicked"))?
    }
}

/// The origin: `200 soak origin ok` for every request.
async fn start_origin() -> anyhow::Result<String> {
    let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
    let address = listener.local_addr()?;
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(|_request| async {
                    Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(ORIGIN_BODY))))
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    Ok(format!("http://{address}"))
}

/// The edge's handshake and on-demand counters from its `/metrics`, by series.
async fn edge_counters(http: &reqwest::Client, admin_url: &str) -> BTreeMap<String, u64> {
    let Ok(response) = http.get(format!("{admin_url}/metrics")).send().await else {
        return BTreeMap::new();
    };
    let text = response.text().await.unwrap_or_default();
    text.lines()
        .filter(|line| {
            line.starts_with("edgecert_terminator_tls_handshakes_total{")
                || line.starts_with("edgecert_terminator_on_demand_total{")
        })
        .filter_map(|line| {
            let (series, value) = line.rsplit_once(' ')?;
            Some((series.to_owned(), value.parse::<f64>().ok()? as u64))
        })
        .collect()
}

/// A `kB` field (`VmRSS`, `VmHWM`) of `/proc/<pid>/status`.
fn status_kib(pid: &str, field: &str) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .with_context(|| format!("no {field} in /proc/{pid}/status"))
}

fn mib(kib: u64) -> String {
    format!("{:.1} MiB", kib as f64 / 1024.0)
}

// ---------------------------------------------------------------------------------------------
// The report

impl Report {
    fn publish(&self, rss_after_start_kib: u64) -> anyhow::Result<()> {
        let sizes = &self.sizes;
        let mut section = Section::new(
            &format!(
                "Fault soak: {} new names, first requests during CA and store faults",
                sizes.names
            ),
            "soak",
            self.options,
        );
        section.table(self.invariants_table());
        section.table(self.measures_table(rss_after_start_kib));
        section.table(self.attempts_table());
        section.table(self.timeline_table());
        if !self.counters.is_empty() {
            let mut counters = Table::new(
                "The edge's counters at the end (`/metrics` on its admin port)",
                &["Series", "Count"],
            );
            for (series, count) in &self.counters {
                counters.row(vec![format!("`{series}`"), whole(*count as f64)]);
            }
            section.table(counters);
        }
        section.note(format!(
            "Method: the whole local stack in one process (`LocalStack::start`: API, issuer \
             loop, renewer, edge terminator with its defaults, SQLite), Pebble \
             (`PEBBLE_VA_NOSLEEP=1`) and challtestsrv beside it; the load generator, the origin \
             and the checks share the process and its cores, and nothing is pinned. {} names \
             are whitelisted through the API ({} Elite accounts, {} names each at most), all \
             with one origin on loopback. Before the first requests the test fault layer \
             (`CaFaults`, between the issuer and Pebble) is armed to answer the first {} \
             newOrder requests 429 with `Retry-After: {} s`, and the first {} finalize and {} \
             challenge requests 503. Then every name gets {FIRST_REQUESTS_PER_NAME} requests \
             at once, each a new TCP connection from the name's own loopback address \
             (127.3.x.y), a TLS handshake verified against Pebble's root (rustls checks the \
             chain, the name and that the certificate's key signs the handshake; no \
             resumption) and `GET /`; an attempt gets {} s. A name whose requests all failed \
             is tried again every {} s until the faults end. Once {} orders exist, Pebble gets \
             SIGSTOP for {} s, then SIGCONT; {} s later another SQLite connection holds \
             `BEGIN EXCLUSIVE` on the store's file for {} s. After the faults, every domain's \
             `/ssl` is read until, in one sweep, each is `active` or shows an error with a \
             `next_attempt_at` later than the moment it was asked for (bound {} s); every \
             domain not active is then nudged, and each name is requested every {} ms until \
             it is served and its domain `active` (bound {} s). Peak RSS is `VmHWM`.",
            sizes.names,
            self.accounts,
            NAMES_PER_ACCOUNT,
            sizes.rate_limited,
            sizes.retry_after.as_secs(),
            sizes.unavailable,
            sizes.unavailable,
            ATTEMPT_BOUND.as_secs(),
            VISITOR_PAUSE.as_secs(),
            sizes.orders_before_stop,
            sizes.ca_stop.as_secs(),
            STORE_GAP.as_secs(),
            sizes.store_outage.as_secs(),
            sizes.settle_bound.as_secs(),
            RECOVERY_POLL.as_millis(),
            sizes.recovery_bound.as_secs(),
        ));
        for (invariant, examples) in &self.violations.0 {
            let shown: Vec<String> = examples
                .iter()
                .take(EXAMPLES)
                .map(|example| format!("- {example}"))
                .collect();
            section.note(format!(
                "**{invariant}** broken {} times; first {}:\n\n{}",
                examples.len(),
                shown.len(),
                shown.join("\n")
            ));
        }
        section.publish()?;
        if !self.violations.0.is_empty() {
            bail!(
                "soak: invariants broken: {}",
                self.violations
                    .0
                    .keys()
                    .copied()
                    .collect::<Vec<_>>()
                    .join(", ")
            );
        }
        Ok(())
    }

    fn invariants_table(&self) -> Table {
        let mut table = Table::new("Invariants", &["Invariant", "Held", "What was seen"]);
        let held = |invariant: &str| {
            if self.violations.of(invariant).is_empty() {
                "yes".to_owned()
            } else {
                format!("**no** ({})", self.violations.of(invariant).len())
            }
        };
        let bad = self.count(|attempt| attempt.outcome == Outcome::BadCertificate);
        table.row(vec![
            "No certificate without its key".to_owned(),
            held(NO_UNKEYED_CERTIFICATE),
            format!(
                "{} of {} names end served over a verified handshake; {bad} of {} handshakes \
                 presented a certificate that failed verification",
                self.served_names,
                self.sizes.names,
                whole(self.attempts.len() as f64)
            ),
        ]);
        table.row(vec![
            "One order per name at a time".to_owned(),
            held(ONE_ORDER_AT_A_TIME),
            format!(
                "{} orders created while another for the same name was open",
                self.overlapping
            ),
        ]);
        table.row(vec![
            "Every domain active, or an error and a future `next_attempt_at`".to_owned(),
            held(ACTIVE_OR_EXPLAINED),
            format!(
                "after {} sweep(s) ending {} after the faults: {} active, {} explained; {} \
                 name(s) seen meanwhile with an error and a past next attempt",
                self.settled.sweeps,
                seconds(
                    self.timeline
                        .settled
                        .duration_since(self.timeline.store_released)
                ),
                self.settled.active,
                self.settled.explained,
                self.settled.overdue_seen.len()
            ),
        ]);
        table.row(vec![
            "Nothing stuck".to_owned(),
            held(NOTHING_STUCK),
            match self.timeline.all_served {
                Some(at) => format!(
                    "{} nudged; every name served and active {} after the nudge (bound {} s)",
                    self.nudged,
                    seconds(at.duration_since(self.timeline.nudged)),
                    self.sizes.recovery_bound.as_secs()
                ),
                None => format!(
                    "{} nudged; {} of {} names served and active within {} s of the nudge",
                    self.nudged,
                    self.served_names,
                    self.sizes.names,
                    self.sizes.recovery_bound.as_secs()
                ),
            },
        ]);
        table
    }

    fn measures_table(&self, rss_after_start_kib: u64) -> Table {
        let mut table = Table::new("Measures", &["Figure", "Value"]);
        let timeline = &self.timeline;
        table.row(vec![
            "Time until every name is active (from the first requests)".to_owned(),
            timeline.all_served.map_or_else(
                || "never, within the bounds".to_owned(),
                |at| seconds(at.duration_since(timeline.start)),
            ),
        ]);
        table.row(vec![
            "... of which after the faults ended".to_owned(),
            timeline.all_served.map_or_else(
                || "-".to_owned(),
                |at| seconds(at.duration_since(timeline.store_released)),
            ),
        ]);
        let mut first: Vec<Duration> = self
            .attempts
            .iter()
            .filter(|attempt| attempt.first && attempt.outcome == Outcome::Served)
            .map(|attempt| attempt.latency)
            .collect();
        let first_total = self.count(|attempt| attempt.first);
        table.row(vec![
            "First requests served (p50 / p99 of those served)".to_owned(),
            format!(
                "{} of {} ({} / {})",
                first.len(),
                first_total,
                millis(quantile(&mut first, 0.5)),
                millis(quantile(&mut first, 0.99))
            ),
        ]);
        let mut refusals: Vec<Duration> = self
            .attempts
            .iter()
            .filter(|attempt| {
                attempt.outcome == Outcome::Refused && attempt.started < timeline.store_released
            })
            .map(|attempt| attempt.latency)
            .collect();
        table.row(vec![
            "Handshake refusals during the faults (p50 / p99 / max latency)".to_owned(),
            format!(
                "{} ({} / {} / {})",
                whole(refusals.len() as f64),
                millis(quantile(&mut refusals, 0.5)),
                millis(quantile(&mut refusals, 0.99)),
                millis(quantile(&mut refusals, 1.0))
            ),
        ]);
        let orders: usize = self.orders_per_name.iter().sum();
        let most = self
            .orders_per_name
            .iter()
            .copied()
            .max()
            .unwrap_or_default();
        let several = self
            .orders_per_name
            .iter()
            .filter(|count| **count > 1)
            .count();
        let none = self
            .orders_per_name
            .iter()
            .filter(|count| **count == 0)
            .count();
        table.row(vec![
            "Orders per name (mean / max; names with more than one; with none)".to_owned(),
            format!(
                "{:.2} / {most}; {several}; {none}",
                orders as f64 / self.orders_per_name.len().max(1) as f64
            ),
        ]);
        table.row(vec![
            "newOrder requests / orders created by the CA".to_owned(),
            format!("{} / {}", self.order_requests, self.orders_created),
        ]);
        table.row(vec![
            "Peak RSS of this process: stack and load generator (after start)".to_owned(),
            format!("{} ({})", mib(self.peak_rss_kib), mib(rss_after_start_kib)),
        ]);
        table.row(vec![
            "Peak RSS of Pebble".to_owned(),
            mib(self.pebble_peak_rss_kib),
        ]);
        table.row(vec![
            "Whitelisting through the API (names, accounts)".to_owned(),
            format!(
                "{} ({} names, {} accounts)",
                seconds(self.whitelisting),
                self.sizes.names,
                self.accounts
            ),
        ]);
        table
    }

    fn attempts_table(&self) -> Table {
        let mut table = Table::new(
            "HTTPS requests through the edge, by what was going on when each started",
            &[
                "While",
                "Attempts",
                "Served",
                "Refused",
                "Refusal p50",
                "Refusal p99",
                "Refusal max",
                "Timed out",
                "Not proxied",
                "Bad certificate",
            ],
        );
        for period in Period::ALL {
            let attempts: Vec<&Attempt> = self
                .attempts
                .iter()
                .filter(|attempt| self.timeline.period(attempt.started) == period)
                .collect();
            if attempts.is_empty() {
                continue;
            }
            let of = |outcome: Outcome| {
                attempts
                    .iter()
                    .filter(|attempt| attempt.outcome == outcome)
                    .count()
            };
            let mut refusals: Vec<Duration> = attempts
                .iter()
                .filter(|attempt| attempt.outcome == Outcome::Refused)
                .map(|attempt| attempt.latency)
                .collect();
            table.row(vec![
                period.label().to_owned(),
                whole(attempts.len() as f64),
                whole(of(Outcome::Served) as f64),
                whole(of(Outcome::Refused) as f64),
                millis(quantile(&mut refusals, 0.5)),
                millis(quantile(&mut refusals, 0.99)),
                millis(quantile(&mut refusals, 1.0)),
                whole(of(Outcome::TimedOut) as f64),
                whole((of(Outcome::NotProxied) + of(Outcome::ConnectFailed)) as f64),
                whole(of(Outcome::BadCertificate) as f64),
            ]);
        }
        table
    }

    fn timeline_table(&self) -> Table {
        let timeline = &self.timeline;
        let mut table = Table::new("Timeline (from the first requests)", &["Event", "At"]);
        let rows = [
            (
                "first requests, 429/503 armed".to_owned(),
                Some(timeline.start),
            ),
            (
                format!("CA stopped ({} orders created)", self.orders_at_stop),
                Some(timeline.ca_stopped),
            ),
            ("CA resumed".to_owned(), Some(timeline.ca_resumed)),
            ("store locked".to_owned(), Some(timeline.store_locked)),
            (
                "store released; visitors stop".to_owned(),
                Some(timeline.store_released),
            ),
            (
                match self.violations.of(ACTIVE_OR_EXPLAINED).len() {
                    0 => "every domain active or explained".to_owned(),
                    pending => format!(
                        "settle bound reached, {pending} domain(s) neither active nor explained"
                    ),
                },
                Some(timeline.settled),
            ),
            (
                format!("{} domains nudged", self.nudged),
                Some(timeline.nudged),
            ),
            (
                "every name served and active".to_owned(),
                timeline.all_served,
            ),
        ];
        for (event, at) in rows {
            table.row(vec![
                event,
                at.map_or_else(|| "never".to_owned(), |at| timeline.at(at)),
            ]);
        }
        table
    }

    fn count(&self, wanted: impl Fn(&Attempt) -> bool) -> usize {
        self.attempts
            .iter()
            .filter(|attempt| wanted(attempt))
            .count()
    }
}

fn seconds(duration: Duration) -> String {
    format!("{:.1} s", duration.as_secs_f64())
}

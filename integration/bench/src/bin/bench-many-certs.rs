//! Scenario 3: many certificates. Up to 1M ECDSA P-256 certificates, each with its own name
//! and key, in a SQLite store and vault seeded through the ports, served by a terminator that
//! holds only recently used names in memory, within its budget.
//!
//! For each size, a fresh `bench-edge` (the production default budget; a tiny one in quick
//! mode, so that eviction runs there too):
//! 1. serve-ready: from process start to its ready line (the first read of the change feeds);
//! 2. a sample of names served a leaf naming them (each is a first handshake);
//! 3. first handshakes for names not in memory, one at a time, with the cache empty;
//! 4. handshakes per server CPU-second over a working set of names already in memory against
//!    the same server asked for one name only (what scenario 3 measured before, when every
//!    certificate was in memory): the cached-name rate;
//! 5. random names over every certificate for a while: mostly first handshakes, which fill
//!    the cache up to its budget and make it evict;
//! 6. first handshakes again with the cache full (evicting as it loads), and a sample of
//!    names served again;
//! 7. resident memory after all of it, and the cache's own estimate of what it holds.
//!
//! One data directory grows from one size to the next (only what is new is seeded).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use edgecert_bench::edge::{Edge, EdgeOptions};
use edgecert_bench::pki::{BenchCa, KeyKind, Leaf};
use edgecert_bench::process::{LOAD_CORE, SERVER_CORE, Server, pin_self, tail};
use edgecert_bench::report::{Options, Section, Table, millis, quantile, ratio, whole};
use edgecert_bench::seed::{Seeder, hostnames};
use edgecert_bench::tls_load::{
    HandshakeTotals, TlsVersion, handshake_once, handshakes, load_client,
};
use rand::seq::SliceRandom as _;
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;

/// Origins are never contacted: handshakes only.
const ORIGIN: &str = "http://127.0.0.1:9";
const KIND: KeyKind = KeyKind::EcdsaP256;
/// The issue's targets.
const TARGET_READY: Duration = Duration::from_secs(2);
const TARGET_RSS: u64 = 512 * 1024 * 1024;
const TARGET_FIRST_P99: Duration = Duration::from_millis(50);
const TARGET_CACHED_OVER_SINGLE: f64 = 0.95;
/// Overrides the sizes run (`10000,100000`), for a machine or a time budget that cannot
/// seed a million certificates.
const SIZES_VAR: &str = "EDGECERT_BENCH_MANY_CERTS_SIZES";
/// A data directory to seed once and keep between runs (to measure the same store again
/// without seeding it again); unset, a temporary one is used and removed.
const DATA_DIR_VAR: &str = "EDGECERT_BENCH_MANY_CERTS_DIR";
/// In a kept data directory: how many of [`hostnames`] are seeded.
const SEEDED_FILE: &str = "seeded-count";
/// Leaves made ahead of the store writes while seeding.
const SEED_PIPELINE: usize = 16;
/// The seeded certificates look issued evenly over this span before the run, as in a store
/// that grew over time.
const ISSUED_OVER_DAYS: i64 = 30;

/// How the runs are sized.
#[derive(Debug, Clone)]
struct Plan {
    client: Arc<ClientConfig>,
    connections: usize,
    /// One timed handshake run.
    duration: Duration,
    rounds: usize,
    /// Names checked to be served their own leaf, before and after the fill.
    served_sample: usize,
    /// First handshakes timed, with the cache empty and again full.
    first_samples: usize,
    /// Names in memory for the cached-name rate.
    working_set: usize,
    /// Longest fill with random names over every certificate.
    fill_for: Duration,
    /// The terminator's cache budget (`None`: the production default).
    cache_mib: Option<u64>,
    /// Fail on more than 1% failed handshakes (the smoke run).
    strict: bool,
}

impl Plan {
    /// One timed run of random names out of `names`, its server CPU added to `totals`.
    async fn run(
        &self,
        edge: &mut Edge,
        names: &Arc<Vec<String>>,
        totals: &mut HandshakeTotals,
        log: &Path,
    ) -> anyhow::Result<()> {
        let server = &mut edge.server;
        server.check_running()?;
        let before = server.cpu_seconds()?;
        let run = handshakes(
            edge.https,
            Arc::clone(names),
            Arc::clone(&self.client),
            self.connections,
            self.duration,
        )
        .await;
        let cpu = server.cpu_seconds()? - before;
        let message = format!(
            "{}: {} handshakes completed, {} failed in {:?} over {} names (first error: {}); end of {}:\n{}",
            server.name(),
            run.completed,
            run.failed,
            self.duration,
            names.len(),
            run.first_error.as_deref().unwrap_or("none"),
            log.display(),
            tail(log)
        );
        if run.completed == 0 || (self.strict && run.failed * 100 > run.completed) {
            bail!(message);
        }
        if run.failed > 0 {
            eprintln!("{message}");
        }
        totals.add(&run, cpu);
        Ok(())
    }
}

/// What the cache says about itself on `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
struct CacheFigures {
    certificates: f64,
    bytes: f64,
    budget: f64,
    evictions: f64,
    loaded_on_demand: f64,
}

/// One size's figures.
#[derive(Debug, Clone)]
struct Served {
    certificates: usize,
    /// Seeding up to this size (not a figure: the store's and the generator's cost).
    seeding: Duration,
    ready_after: Duration,
    rss_ready: u64,
    rss_end: u64,
    first_cold: Vec<Duration>,
    first_full: Vec<Duration>,
    single: HandshakeTotals,
    cached: HandshakeTotals,
    round_ratios: Vec<f64>,
    /// Random names over every certificate (mostly first handshakes).
    fill: HandshakeTotals,
    after_fill: CacheFigures,
    before_fill: CacheFigures,
    end: CacheFigures,
}

fn main() -> anyhow::Result<()> {
    pin_self(LOAD_CORE)?;
    let options = Options::from_args();
    // reqwest (the `/metrics` reads) asks for the process's default provider.
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(options))
}

/// Temporary space for the data directory: tmpfs when there is one, so that seeding a million
/// certificates (four committed SQLite transactions each) is not bound by fsync. The
/// terminator reads the same file either way, and tmpfs pages are not part of its RSS.
fn scratch_dir() -> anyhow::Result<tempfile::TempDir> {
    let shm = Path::new("/dev/shm");
    if shm.is_dir()
        && let Ok(dir) = tempfile::Builder::new()
            .prefix("edgecert-many-certs-")
            .tempdir_in(shm)
    {
        return Ok(dir);
    }
    tempfile::Builder::new()
        .prefix("edgecert-many-certs-")
        .tempdir()
        .context("creating a temporary directory")
}

async fn run(options: Options) -> anyhow::Result<()> {
    let sizes = match std::env::var(SIZES_VAR) {
        Ok(list) => list
            .split(',')
            .map(|size| size.trim().parse::<usize>())
            .collect::<Result<Vec<_>, _>>()
            .with_context(|| format!("{SIZES_VAR}={list}: a comma-separated list of counts"))?,
        Err(_) => options.pick(vec![10_000, 100_000, 1_000_000], vec![100, 1_000]),
    };
    let plan = Plan {
        client: load_client(TlsVersion::Tls13, &[])?,
        connections: options.pick(32, 4),
        // Short rounds, many of them: the other engineers' builds shift the machine's speed
        // within seconds, and alternating often spreads that over both modes.
        duration: Duration::from_secs(options.pick(3, 1)),
        rounds: options.pick(8, 1),
        served_sample: options.pick(20, 5),
        first_samples: options.pick(1_000, 20),
        working_set: options.pick(20_000, 20),
        fill_for: Duration::from_secs(options.pick(150, 2)),
        // About 400 sites: the 1,000-name run evicts.
        cache_mib: options.pick(None, Some(1)),
        strict: options.quick,
    };
    let (_scratch, dir) = match std::env::var_os(DATA_DIR_VAR) {
        Some(kept) => (None, PathBuf::from(kept)),
        None => {
            let scratch = scratch_dir()?;
            let dir = scratch.path().join("many");
            (Some(scratch), dir)
        }
    };
    let ca = Arc::new(BenchCa::new()?);
    let largest = sizes.iter().copied().max().unwrap_or(0);
    let names = hostnames("many", largest);
    let seeder = Seeder::open(&dir).await?;
    let mut seeded: usize = std::fs::read_to_string(dir.join(SEEDED_FILE))
        .ok()
        .and_then(|count| count.trim().parse().ok())
        .unwrap_or(0);
    let mut seeding = Duration::ZERO;
    let mut results = Vec::new();
    for &size in &sizes {
        let started = Instant::now();
        if size > seeded {
            seeder
                .add_each_issued_over(
                    &names[seeded..size],
                    ORIGIN,
                    &ca,
                    KIND,
                    SEED_PIPELINE,
                    time::Duration::days(ISSUED_OVER_DAYS),
                )
                .await?;
            seeded = size;
            std::fs::write(dir.join(SEEDED_FILE), seeded.to_string())
                .context("recording the seeded count")?;
        }
        seeding += started.elapsed();
        eprintln!("many-certs: {size} certificates seeded in {seeding:?}");
        results.push(serve(&dir, &names[..size], seeding, &plan).await?);
    }
    drop(seeder);
    let sample = ca.leaf(&names[..1], KIND)?;
    report(options, &plan, &results, &sample)?.publish()
}

/// Splits `names` (shuffled) into the groups each step uses, so that a "first handshake" is
/// one for a name nothing touched before.
struct Groups {
    served: Vec<String>,
    first_cold: Vec<String>,
    working_set: Vec<String>,
    first_full: Vec<String>,
    /// Everything else: the fill's names.
    rest: Vec<String>,
}

impl Groups {
    fn of(names: &[String], plan: &Plan) -> Groups {
        let mut shuffled = names.to_vec();
        shuffled.shuffle(&mut rand::thread_rng());
        // Never more than a fifth of the names per group, so the fill keeps some.
        let cap = (names.len() / 5).max(1);
        let mut take = |count: usize| -> Vec<String> {
            let count = count.min(cap).min(shuffled.len());
            shuffled.split_off(shuffled.len() - count)
        };
        let served = take(plan.served_sample);
        let first_cold = take(plan.first_samples);
        let working_set = take(plan.working_set);
        let first_full = take(plan.first_samples);
        Groups {
            served,
            first_cold,
            working_set,
            first_full,
            rest: shuffled,
        }
    }
}

async fn serve(
    dir: &Path,
    names: &[String],
    seeding: Duration,
    plan: &Plan,
) -> anyhow::Result<Served> {
    let groups = Groups::of(names, plan);
    let mut edge = Edge::start(
        dir,
        &EdgeOptions {
            no_resumption: true,
            cache_mib: plan.cache_mib,
            ..EdgeOptions::default()
        },
    )?;
    let log = dir.join("bench-edge.log");
    let rss_ready = settled_rss(&edge.server).await?;
    if edge.certificates != 0 {
        bail!(
            "the terminator held {} certificates at ready: it loaded up front",
            edge.certificates
        );
    }
    check_served_names(edge.https, &groups.served, &plan.client).await?;
    let first_cold = first_handshakes(edge.https, &groups.first_cold, &plan.client).await?;

    // Cached names: the working set loaded once, then random names out of it against one
    // name, alternating which goes first.
    warm(edge.https, &groups.working_set, &plan.client).await?;
    let working_set = Arc::new(groups.working_set.clone());
    let one = Arc::new(vec![groups.working_set[0].clone()]);
    let mut single = HandshakeTotals::default();
    let mut cached = HandshakeTotals::default();
    let mut round_ratios = Vec::with_capacity(plan.rounds);
    for round in 0..plan.rounds {
        let (mut single_round, mut cached_round) =
            (HandshakeTotals::default(), HandshakeTotals::default());
        if round % 2 == 0 {
            plan.run(&mut edge, &one, &mut single_round, &log).await?;
            plan.run(&mut edge, &working_set, &mut cached_round, &log)
                .await?;
        } else {
            plan.run(&mut edge, &working_set, &mut cached_round, &log)
                .await?;
            plan.run(&mut edge, &one, &mut single_round, &log).await?;
        }
        round_ratios.push(
            cached_round.per_server_cpu_second()
                / single_round.per_server_cpu_second().max(f64::EPSILON),
        );
        single.merge(&single_round);
        cached.merge(&cached_round);
    }

    // Random names over every certificate until the cache is nearly full or time is up.
    let before_fill = cache_figures(&edge).await?;
    let rest = Arc::new(groups.rest.clone());
    let mut fill = HandshakeTotals::default();
    let fill_started = Instant::now();
    let mut loaded = before_fill.loaded_on_demand;
    loop {
        plan.run(&mut edge, &rest, &mut fill, &log).await?;
        let figures = cache_figures(&edge).await?;
        // Full (evicting), or every name of the fill in memory, or out of time.
        let nothing_new = figures.loaded_on_demand == loaded;
        loaded = figures.loaded_on_demand;
        if figures.evictions > 0.0 || nothing_new || fill_started.elapsed() >= plan.fill_for {
            break;
        }
    }
    let after_fill = cache_figures(&edge).await?;
    let first_full = first_handshakes(edge.https, &groups.first_full, &plan.client).await?;
    check_served_names(edge.https, &groups.served, &plan.client).await?;
    let end = cache_figures(&edge).await?;
    let rss_end = settled_rss(&edge.server).await?;
    if let Ok(rollup) = std::fs::read_to_string(format!("/proc/{}/smaps_rollup", edge.server.pid()))
    {
        eprintln!("many-certs: terminator memory at the end (smaps_rollup):\n{rollup}");
    }
    Ok(Served {
        certificates: names.len(),
        seeding,
        ready_after: edge.ready_after,
        rss_ready,
        rss_end,
        first_cold,
        first_full,
        single,
        cached,
        round_ratios,
        fill,
        before_fill,
        after_fill,
        end,
    })
}

/// RSS once the last run's leftovers are freed.
async fn settled_rss(server: &Server) -> anyhow::Result<u64> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.rss_bytes()
}

/// One full handshake per name, one at a time, each timed from connect to handshake done.
async fn first_handshakes(
    address: SocketAddr,
    names: &[String],
    client: &Arc<ClientConfig>,
) -> anyhow::Result<Vec<Duration>> {
    let connector = TlsConnector::from(Arc::clone(client));
    let mut timings = Vec::with_capacity(names.len());
    for name in names {
        let started = Instant::now();
        tokio::time::timeout(
            Duration::from_secs(10),
            handshake_once(&connector, address, name),
        )
        .await
        .with_context(|| format!("no handshake for {name} within 10 s"))?
        .with_context(|| format!("first handshake for {name}"))?;
        timings.push(started.elapsed());
    }
    Ok(timings)
}

/// One handshake per name, a few at a time: the names are in memory afterwards.
async fn warm(
    address: SocketAddr,
    names: &[String],
    client: &Arc<ClientConfig>,
) -> anyhow::Result<()> {
    use futures::StreamExt as _;
    let connector = TlsConnector::from(Arc::clone(client));
    let failures: Vec<anyhow::Error> = futures::stream::iter(names)
        .map(|name| {
            let connector = connector.clone();
            async move { handshake_once(&connector, address, name).await.err() }
        })
        .buffer_unordered(8)
        .filter_map(|failed| async move { failed })
        .collect()
        .await;
    if let Some(first) = failures.first() {
        bail!(
            "{} of {} names failed to load: {first:#}",
            failures.len(),
            names.len()
        );
    }
    Ok(())
}

/// The cache's gauges and counters from the terminator's `/metrics`.
async fn cache_figures(edge: &Edge) -> anyhow::Result<CacheFigures> {
    let admin = edge.admin.context("bench-edge has no admin listener")?;
    let text = reqwest::Client::builder()
        .timeout(Duration::from_secs(5))
        .build()?
        .get(format!("http://{admin}/metrics"))
        .send()
        .await?
        .text()
        .await?;
    let sample = |name: &str| {
        text.lines()
            .find_map(|line| {
                let (key, value) = line.rsplit_once(' ')?;
                (key == name).then(|| value.parse::<f64>().ok()).flatten()
            })
            .unwrap_or(0.0)
    };
    Ok(CacheFigures {
        certificates: sample("edgecert_terminator_certificates_cached"),
        bytes: sample("edgecert_terminator_cache_bytes"),
        budget: sample("edgecert_terminator_cache_budget_bytes"),
        evictions: sample("edgecert_terminator_cache_evictions_total"),
        loaded_on_demand: sample("edgecert_terminator_on_demand_total{outcome=\"served\"}"),
    })
}

/// Each name in `names` gets a leaf naming it.
async fn check_served_names(
    address: SocketAddr,
    names: &[String],
    client: &Arc<ClientConfig>,
) -> anyhow::Result<()> {
    let connector = TlsConnector::from(Arc::clone(client));
    for name in names {
        let tcp = tokio::net::TcpStream::connect(address).await?;
        let tls = tokio::time::timeout(
            Duration::from_secs(10),
            connector.connect(ServerName::try_from(name.clone())?, tcp),
        )
        .await
        .with_context(|| format!("no handshake for {name} within 10 s"))?
        .with_context(|| format!("handshake for {name}"))?;
        let leaf = tls
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|chain| chain.first())
            .with_context(|| format!("no certificate served for {name}"))?;
        // The name is in the leaf's SAN (and CN) as plain ASCII.
        let named = leaf
            .as_ref()
            .windows(name.len())
            .any(|window| window == name.as_bytes());
        if !named {
            bail!("the certificate served for {name} does not name it");
        }
    }
    Ok(())
}

/// Bytes of the DER chain (leaf + CA) and of the PKCS#8 key of one certificate.
fn material_sizes(leaf: &Leaf) -> anyhow::Result<(usize, usize)> {
    let chain = CertificateDer::pem_slice_iter(leaf.chain_pem.as_bytes())
        .map(|der| der.map(|der| der.len()))
        .sum::<Result<usize, _>>()
        .context("parsing the sample chain")?;
    let key =
        PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).context("parsing the sample key")?;
    Ok((chain, key.secret_der().len()))
}

fn mib(bytes: f64) -> String {
    format!("{:.1} MiB", bytes / (1024.0 * 1024.0))
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

fn met(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

/// p50, p99 and max of `samples`.
fn spread(samples: &[Duration]) -> (Duration, Duration, Duration) {
    let mut sorted = samples.to_vec();
    let p50 = quantile(&mut sorted, 0.5);
    let p99 = quantile(&mut sorted, 0.99);
    (p50, p99, sorted.last().copied().unwrap_or_default())
}

fn report(
    options: Options,
    plan: &Plan,
    results: &[Served],
    sample_leaf: &Leaf,
) -> anyhow::Result<Section> {
    let mut section = Section::new("3. Many certificates", "many-certs", options);
    let mut all_met = true;

    let mut memory = Table::new(
        "Serve-ready and memory (ECDSA P-256, one key and name per certificate)",
        &[
            "certificates in the store",
            "serve-ready",
            "target <= 2 s",
            "RSS at ready",
            "RSS at the end",
            "target <= 512 MiB",
            "certificates in memory at the end",
            "cache estimate / budget",
            "RSS growth / cache estimate",
            "evictions",
            "seeding (not a figure)",
        ],
    );
    for served in results {
        let ready_ok = served.ready_after <= TARGET_READY;
        let rss_ok = served.rss_end <= TARGET_RSS;
        all_met &= ready_ok && rss_ok;
        memory.row(vec![
            whole(served.certificates as f64),
            seconds(served.ready_after),
            met(ready_ok).to_owned(),
            mib(served.rss_ready as f64),
            mib(served.rss_end as f64),
            met(rss_ok).to_owned(),
            whole(served.end.certificates),
            format!("{} / {}", mib(served.end.bytes), mib(served.end.budget)),
            ratio(
                served.rss_end as f64 - served.rss_ready as f64,
                served.end.bytes,
            ),
            whole(served.end.evictions),
            seconds(served.seeding),
        ]);
    }
    section.table(memory);

    let mut first = Table::new(
        "First handshake for a name not in memory (store + vault read, key parsed, one at a time)",
        &[
            "certificates in the store",
            "cache",
            "handshakes",
            "p50",
            "p99",
            "max",
            "target p99 <= 50 ms",
        ],
    );
    for served in results {
        for (state, samples) in [
            ("empty (just started)", &served.first_cold),
            ("full (evicting as it loads)", &served.first_full),
        ] {
            let (p50, p99, max) = spread(samples);
            let ok = p99 <= TARGET_FIRST_P99;
            all_met &= ok;
            first.row(vec![
                whole(served.certificates as f64),
                state.to_owned(),
                samples.len().to_string(),
                millis(p50),
                millis(p99),
                millis(max),
                met(ok).to_owned(),
            ]);
        }
    }
    section.table(first);

    let mut rates = Table::new(
        "TLS 1.3 full handshakes per server CPU-second: random names of a working set in memory vs one name, same server",
        &[
            "certificates in the store",
            "names in the working set",
            "one name",
            "random cached names",
            "cached / one name",
            "per-round range",
            "target >= 0.95x",
            "handshakes/s (one / cached)",
            "server core (one / cached)",
            "failed",
        ],
    );
    for served in results {
        let value = served.cached.per_server_cpu_second()
            / served.single.per_server_cpu_second().max(f64::EPSILON);
        all_met &= value >= TARGET_CACHED_OVER_SINGLE;
        let low = served
            .round_ratios
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let high = served.round_ratios.iter().copied().fold(0.0, f64::max);
        rates.row(vec![
            whole(served.certificates as f64),
            whole(plan.working_set.min(served.certificates / 5).max(1) as f64),
            whole(served.single.per_server_cpu_second()),
            whole(served.cached.per_server_cpu_second()),
            ratio(
                served.cached.per_server_cpu_second(),
                served.single.per_server_cpu_second(),
            ),
            format!("{low:.2}x - {high:.2}x"),
            met(value >= TARGET_CACHED_OVER_SINGLE).to_owned(),
            format!(
                "{} / {}",
                whole(served.single.per_second()),
                whole(served.cached.per_second())
            ),
            format!(
                "{} / {}",
                served.single.server_core(),
                served.cached.server_core()
            ),
            (served.single.failed + served.cached.failed).to_string(),
        ]);
    }
    section.table(rates);

    let mut fill = Table::new(
        "Random names over every certificate (mostly not in memory): the cache fills to its budget",
        &[
            "certificates in the store",
            "run",
            "handshakes/s",
            "per server CPU-second",
            "loaded on demand",
            "certificates in memory after",
            "cache estimate after",
            "failed",
        ],
    );
    for served in results {
        fill.row(vec![
            whole(served.certificates as f64),
            seconds(Duration::from_secs_f64(served.fill.seconds)),
            whole(served.fill.per_second()),
            whole(served.fill.per_server_cpu_second()),
            whole(served.after_fill.loaded_on_demand - served.before_fill.loaded_on_demand),
            whole(served.after_fill.certificates),
            mib(served.after_fill.bytes),
            served.fill.failed.to_string(),
        ]);
    }
    section.table(fill);

    section.note(format!(
        "Method: one data directory (SQLite store and vault on tmpfs) grows from one size to the \
         next; every name is a whitelisted, active domain with its own issued certificate (own \
         P-256 key, leaf signed by one benchmark CA), seeded through the store and vault ports, \
         their timestamps spread evenly over the past {ISSUED_OVER_DAYS} days. For each size a \
         fresh `bench-edge` (the terminator library, pinned to core {SERVER_CORE}, resumption \
         off, cache budget {budget}) starts; serve-ready is from process start to its ready \
         line (the first read of the change feeds: nothing is loaded up front, and it must hold \
         no certificate then). The names are shuffled into groups so that each first handshake \
         is for a name nothing touched before: {served} names checked to be served a leaf naming \
         them (at the start and again at the end); {first} first handshakes one at a time right \
         after the start (cache empty) and again after the fill (cache full, evicting); a \
         working set loaded once, then {rounds} rounds of {secs} s alternating random names of \
         it with one name of it ({connections} connections of full TLS 1.3 handshakes, X25519, \
         then a reset, from core {LOAD_CORE}; server CPU from /proc over the same window); then \
         random names over all the others for up to {fill} s or until the cache evicts. RSS \
         (VmRSS) is read 0.5 s after ready and at the end; the cache's estimate is its own gauge \
         (`edgecert_terminator_cache_bytes`), and \"RSS growth / cache estimate\" shows how close \
         the estimate is to what the process really grew by. Seeding time is reported apart: it \
         is the store's and the generator's cost, not the terminator's.",
        budget = plan
            .cache_mib
            .map_or("the default, 256 MiB".to_owned(), |mib| format!(
                "{mib} MiB"
            )),
        served = plan.served_sample,
        first = plan.first_samples,
        rounds = plan.rounds,
        secs = plan.duration.as_secs(),
        connections = plan.connections,
        fill = plan.fill_for.as_secs(),
    ));
    section.note(format!(
        "Targets (issue 16): serve-ready <= 2 s, RSS <= 512 MiB with every certificate servable, \
         first handshake p99 <= 50 ms, cached names >= 0.95x: {}.",
        if all_met {
            "all met"
        } else {
            "**not all met**"
        }
    ));
    let (chain_der, key_der) = material_sizes(sample_leaf)?;
    section.note(format!(
        "Material per certificate in this run: the chain as DER is {chain_der} bytes (the leaf \
         and its own copy of the benchmark CA's certificate), the PKCS#8 key {key_der} bytes."
    ));
    Ok(section)
}

//! Scenario 3: many certificates. 1k, 10k and 100k ECDSA P-256 certificates, each with its own
//! name and key, loaded by the terminator from the store and the vault: resident memory per
//! certificate, time to serve-ready, and full handshakes with a random server name over all of
//! them against the same server asked for one name only.
//!
//! Memory per certificate is the difference to a terminator serving one certificate, measured
//! the same way (after its load, and again after the same handshake load), over N - 1. One
//! data directory grows from one size to the next (only what is new is seeded); each size is
//! served by a fresh `bench-edge` process, so every figure is a first full load.

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use edgecert_bench::edge::{Edge, EdgeOptions};
use edgecert_bench::peers::{self, TlsSite};
use edgecert_bench::pki::{BenchCa, KeyKind, Leaf};
use edgecert_bench::process::{LOAD_CORE, SERVER_CORE, Server, free_port, pin_self, tail};
use edgecert_bench::report::{Options, Section, Table, ratio, whole};
use edgecert_bench::seed::{Seeder, hostnames};
use edgecert_bench::tls_load::{HandshakeTotals, TlsVersion, handshakes, load_client};
use rand::seq::SliceRandom as _;
use rustls::ClientConfig;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use tokio_rustls::TlsConnector;

/// Origins are never contacted: handshakes only.
const ORIGIN: &str = "http://127.0.0.1:9";
const KIND: KeyKind = KeyKind::EcdsaP256;
/// The issue's targets.
const TARGET_BYTES_PER_CERTIFICATE: f64 = 6.0 * 1024.0;
const TARGET_RANDOM_OVER_SINGLE: f64 = 0.95;
/// Leaves made ahead of the store writes while seeding.
const SEED_PIPELINE: usize = 16;
/// The seeded certificates look issued evenly over this span before the run, as in a store
/// that grew over time.
const ISSUED_OVER_DAYS: i64 = 30;
/// Names checked to be served their own certificate, per size.
const SERVED_NAME_SAMPLE: usize = 20;

/// How the handshake load is run.
#[derive(Debug, Clone)]
struct Load {
    client: Arc<ClientConfig>,
    connections: usize,
    duration: Duration,
    rounds: usize,
    /// Fail on more than 1% failed handshakes in a round (the smoke run); otherwise they are
    /// counted in the report and the server's log is shown on stderr.
    strict: bool,
}

impl Load {
    /// One timed run against `server` (whose log is `log`), failing when it completed nothing.
    async fn run(
        &self,
        server: &mut Server,
        address: SocketAddr,
        names: &Arc<Vec<String>>,
        totals: &mut HandshakeTotals,
        log: &Path,
    ) -> anyhow::Result<()> {
        server.check_running()?;
        let before = server.cpu_seconds()?;
        let run = handshakes(
            address,
            Arc::clone(names),
            Arc::clone(&self.client),
            self.connections,
            self.duration,
        )
        .await;
        let cpu = server.cpu_seconds()? - before;
        // A rare failed handshake under load is noise; more than 1% in a smoke run, or none
        // completed at all, means something is broken.
        let message = format!(
            "{}: {} handshakes completed, {} failed in {:?} over {} names; end of {}:\n{}",
            server.name(),
            run.completed,
            run.failed,
            self.duration,
            names.len(),
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

    /// Handshakes to settle lazily built state and page faults before measuring.
    async fn warm_up(&self, address: SocketAddr, names: &Arc<Vec<String>>) {
        let _ = handshakes(
            address,
            Arc::clone(names),
            Arc::clone(&self.client),
            self.connections,
            Duration::from_millis(300),
        )
        .await;
    }
}

/// One terminator's figures.
#[derive(Debug, Clone)]
struct Served {
    certificates: usize,
    /// Seeding up to this size (not a figure: the store's and the generator's cost).
    seeding: Duration,
    ready_after: Duration,
    rss_loaded: u64,
    rss_after_handshakes: u64,
    single: HandshakeTotals,
    random: HandshakeTotals,
    /// Random over one name, per server CPU-second, round by round (the spread of the figure).
    round_ratios: Vec<f64>,
}

fn main() -> anyhow::Result<()> {
    pin_self(LOAD_CORE)?;
    let options = Options::from_args();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(options))
}

/// Temporary space for the data directories: tmpfs when there is one, so that seeding 100k
/// certificates (four committed SQLite transactions each) is not bound by fsync. The terminator
/// reads the same file either way once it is in the page cache, and tmpfs pages are not part
/// of its RSS.
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
    let sizes: Vec<usize> = options.pick(vec![1_000, 10_000, 100_000], vec![10, 100]);
    let load = Load {
        client: load_client(TlsVersion::Tls13, &[])?,
        connections: options.pick(32, 4),
        // Short rounds, many of them: the other engineers' builds shift the machine's speed
        // within seconds, and alternating often spreads that over both modes.
        duration: Duration::from_secs(options.pick(3, 1)),
        rounds: options.pick(8, 1),
        strict: options.quick,
    };
    let scratch = scratch_dir()?;
    let ca = Arc::new(BenchCa::new()?);

    // The baseline: the same terminator serving one certificate, and nginx serving the same
    // certificate for reference.
    let baseline_names = hostnames("baseline", 1);
    let baseline_leaf = ca.leaf(&baseline_names, KIND)?;
    let baseline_dir = scratch.path().join("baseline");
    let seeder = Seeder::open(&baseline_dir).await?;
    seeder
        .add(&baseline_names[0], ORIGIN, &baseline_leaf, KIND)
        .await?;
    drop(seeder);
    let (baseline, nginx) =
        baseline_and_nginx(&baseline_dir, &baseline_names, &baseline_leaf, &load).await?;

    let largest = sizes.iter().copied().max().unwrap_or(0);
    let names = hostnames("many", largest);
    let many_dir = scratch.path().join("many");
    let seeder = Seeder::open(&many_dir).await?;
    let mut seeded = 0;
    let mut seeding = Duration::ZERO;
    let mut results = Vec::new();
    for &size in &sizes {
        let started = Instant::now();
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
        seeding += started.elapsed();
        seeded = size;
        results.push(serve_many(&many_dir, &names[..size], seeding, &load).await?);
    }
    drop(seeder);

    report(
        options,
        &load,
        &baseline,
        nginx.as_ref(),
        &results,
        &baseline_leaf,
    )?
    .publish()
}

/// The one-certificate terminator, and nginx on the same certificate, measured in turns.
async fn baseline_and_nginx(
    dir: &Path,
    names: &[String],
    leaf: &Leaf,
    load: &Load,
) -> anyhow::Result<(Served, Option<HandshakeTotals>)> {
    let names = Arc::new(names.to_vec());
    let mut edge = start_edge(dir, names.len())?;
    let edge_log = dir.join("bench-edge.log");
    let rss_loaded = settled_rss(&edge.server).await?;
    check_served_names(edge.https, &names, &load.client).await?;

    let files = dir.join("nginx");
    std::fs::create_dir_all(&files)?;
    let (chain, key, combined) = leaf.write(&files, "site")?;
    let site = TlsSite {
        https_port: free_port()?,
        chain,
        key,
        combined,
        upstream: None,
        resumption: false,
    };
    let mut nginx = match peers::nginx(&files, &site, Some(SERVER_CORE)) {
        Ok(server) => Some(server),
        // A reference line only: the scenario stands without it.
        Err(error) => {
            eprintln!("nginx reference skipped: {error:#}");
            None
        }
    };
    let nginx_address = SocketAddr::from(([127, 0, 0, 1], site.https_port));
    let nginx_log = files.join("nginx-error.log");
    if let Some(server) = nginx.as_mut() {
        server
            .wait_for_port(nginx_address, Duration::from_secs(10))
            .await?;
        load.warm_up(nginx_address, &names).await;
    }
    load.warm_up(edge.https, &names).await;

    let mut ours = HandshakeTotals::default();
    let mut theirs = HandshakeTotals::default();
    for _ in 0..load.rounds {
        load.run(&mut edge.server, edge.https, &names, &mut ours, &edge_log)
            .await?;
        if let Some(server) = nginx.as_mut() {
            load.run(server, nginx_address, &names, &mut theirs, &nginx_log)
                .await?;
        }
    }
    let rss_after_handshakes = edge.server.rss_bytes()?;
    Ok((
        Served {
            certificates: edge.certificates,
            seeding: Duration::ZERO,
            ready_after: edge.ready_after,
            rss_loaded,
            rss_after_handshakes,
            single: ours,
            random: ours,
            round_ratios: Vec::new(),
        },
        nginx.map(|_| theirs),
    ))
}

/// A fresh terminator over `dir` serving `names`: its load, its memory, and handshakes with
/// one name vs a random one of all, in alternating order per round so drift hits both alike.
async fn serve_many(
    dir: &Path,
    names: &[String],
    seeding: Duration,
    load: &Load,
) -> anyhow::Result<Served> {
    let mut edge = start_edge(dir, names.len())?;
    let log = dir.join("bench-edge.log");
    let rss_loaded = settled_rss(&edge.server).await?;
    let mut random = rand::thread_rng();
    let sample: Vec<String> = names
        .choose_multiple(&mut random, SERVED_NAME_SAMPLE)
        .cloned()
        .collect();
    check_served_names(edge.https, &sample, &load.client).await?;

    let all = Arc::new(names.to_vec());
    let one = Arc::new(vec![names[0].clone()]);
    load.warm_up(edge.https, &all).await;
    let mut single = HandshakeTotals::default();
    let mut spread = HandshakeTotals::default();
    let mut round_ratios = Vec::with_capacity(load.rounds);
    for round in 0..load.rounds {
        let (mut single_round, mut spread_round) =
            (HandshakeTotals::default(), HandshakeTotals::default());
        // A B B A ...: neither mode always runs first, after the other.
        if round % 2 == 0 {
            load.run(&mut edge.server, edge.https, &one, &mut single_round, &log)
                .await?;
            load.run(&mut edge.server, edge.https, &all, &mut spread_round, &log)
                .await?;
        } else {
            load.run(&mut edge.server, edge.https, &all, &mut spread_round, &log)
                .await?;
            load.run(&mut edge.server, edge.https, &one, &mut single_round, &log)
                .await?;
        }
        round_ratios.push(
            spread_round.per_server_cpu_second()
                / single_round.per_server_cpu_second().max(f64::EPSILON),
        );
        single.merge(&single_round);
        spread.merge(&spread_round);
    }
    let rss_after_handshakes = edge.server.rss_bytes()?;
    Ok(Served {
        certificates: edge.certificates,
        seeding,
        ready_after: edge.ready_after,
        rss_loaded,
        rss_after_handshakes,
        single,
        random: spread,
        round_ratios,
    })
}

/// Starts `bench-edge` (resumption off, pinned to the server core) and checks that it holds
/// every seeded certificate.
fn start_edge(dir: &Path, expected: usize) -> anyhow::Result<Edge> {
    let edge = Edge::start(
        dir,
        &EdgeOptions {
            no_resumption: true,
            ..EdgeOptions::default()
        },
    )?;
    if edge.certificates != expected {
        bail!(
            "the terminator became ready holding {} certificates, not the {expected} seeded",
            edge.certificates
        );
    }
    Ok(edge)
}

/// RSS once the load's leftovers (the last page's buffers, the read sets) are freed.
async fn settled_rss(server: &Server) -> anyhow::Result<u64> {
    tokio::time::sleep(Duration::from_millis(500)).await;
    server.rss_bytes()
}

/// Each name in `names` gets a leaf naming it: random SNI really picks a certificate apiece.
async fn check_served_names(
    address: SocketAddr,
    names: &[String],
    client: &Arc<ClientConfig>,
) -> anyhow::Result<()> {
    let connector = TlsConnector::from(Arc::clone(client));
    for name in names {
        let tcp = tokio::net::TcpStream::connect(address).await?;
        let tls = connector
            .connect(ServerName::try_from(name.clone())?, tcp)
            .await
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

/// Bytes of the DER the cache holds per certificate (leaf + CA) and of the PKCS#8 key.
fn material_sizes(leaf: &Leaf) -> anyhow::Result<(usize, usize)> {
    let chain = CertificateDer::pem_slice_iter(leaf.chain_pem.as_bytes())
        .map(|der| der.map(|der| der.len()))
        .sum::<Result<usize, _>>()
        .context("parsing the sample chain")?;
    let key =
        PrivateKeyDer::from_pem_slice(leaf.key_pem.as_bytes()).context("parsing the sample key")?;
    Ok((chain, key.secret_der().len()))
}

fn kib(bytes: f64) -> String {
    format!("{:.2} KiB", bytes / 1024.0)
}

fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn seconds(duration: Duration) -> String {
    format!("{:.2} s", duration.as_secs_f64())
}

fn met(ok: bool) -> &'static str {
    if ok { "yes" } else { "**no**" }
}

/// (RSS - baseline RSS) / (N - 1), after load and after handshakes.
fn per_certificate(served: &Served, baseline: &Served) -> (f64, f64) {
    let extra = served
        .certificates
        .saturating_sub(baseline.certificates)
        .max(1) as f64;
    (
        (served.rss_loaded as f64 - baseline.rss_loaded as f64) / extra,
        (served.rss_after_handshakes as f64 - baseline.rss_after_handshakes as f64) / extra,
    )
}

/// (RSS - RSS at the previous size) / (certificates added): what one more certificate costs,
/// without the costs that do not grow with the count.
fn marginal(served: &Served, previous: &Served) -> f64 {
    let added = served
        .certificates
        .saturating_sub(previous.certificates)
        .max(1) as f64;
    (served.rss_loaded as f64 - previous.rss_loaded as f64) / added
}

fn report(
    options: Options,
    load: &Load,
    baseline: &Served,
    nginx: Option<&HandshakeTotals>,
    results: &[Served],
    sample_leaf: &Leaf,
) -> anyhow::Result<Section> {
    let mut section = Section::new("3. Many certificates", "many-certs", options);

    let mut memory = Table::new(
        "Memory and time to serve-ready (ECDSA P-256, one key and name per certificate)",
        &[
            "certificates",
            "serve-ready",
            "loaded per second",
            "RSS after load",
            "RSS after handshakes",
            "RSS per certificate vs 1 certificate (after load)",
            "(after handshakes)",
            "marginal vs previous size",
            "target <= 6 KiB",
            "seeding (not a figure)",
        ],
    );
    memory.row(vec![
        format!("{} (baseline)", baseline.certificates),
        seconds(baseline.ready_after),
        "-".to_owned(),
        mib(baseline.rss_loaded),
        mib(baseline.rss_after_handshakes),
        "-".to_owned(),
        "-".to_owned(),
        "-".to_owned(),
        "-".to_owned(),
        "-".to_owned(),
    ]);
    let mut worst_bytes: f64 = 0.0;
    let mut previous = baseline;
    for served in results {
        let (loaded, after) = per_certificate(served, baseline);
        worst_bytes = worst_bytes.max(loaded);
        memory.row(vec![
            whole(served.certificates as f64),
            seconds(served.ready_after),
            whole(served.certificates as f64 / served.ready_after.as_secs_f64().max(1e-9)),
            mib(served.rss_loaded),
            mib(served.rss_after_handshakes),
            kib(loaded),
            kib(after),
            kib(marginal(served, previous)),
            met(loaded <= TARGET_BYTES_PER_CERTIFICATE).to_owned(),
            seconds(served.seeding),
        ]);
        previous = served;
    }
    section.table(memory);

    let mut rates = Table::new(
        "TLS 1.3 full handshakes per server CPU-second: random SNI over all certificates vs one name, same server",
        &[
            "certificates",
            "one name",
            "random SNI over all",
            "random / one name",
            "per-round range",
            "target >= 0.95x",
            "handshakes/s (one / random)",
            "server core (one / random)",
            "generator core (one / random)",
            "failed",
        ],
    );
    let mut worst_ratio = f64::INFINITY;
    for served in results {
        let value = served.random.per_server_cpu_second()
            / served.single.per_server_cpu_second().max(f64::EPSILON);
        worst_ratio = worst_ratio.min(value);
        let low = served
            .round_ratios
            .iter()
            .copied()
            .fold(f64::INFINITY, f64::min);
        let high = served.round_ratios.iter().copied().fold(0.0, f64::max);
        rates.row(vec![
            whole(served.certificates as f64),
            whole(served.single.per_server_cpu_second()),
            whole(served.random.per_server_cpu_second()),
            ratio(
                served.random.per_server_cpu_second(),
                served.single.per_server_cpu_second(),
            ),
            format!("{low:.2}x - {high:.2}x"),
            met(value >= TARGET_RANDOM_OVER_SINGLE).to_owned(),
            format!(
                "{} / {}",
                whole(served.single.per_second()),
                whole(served.random.per_second())
            ),
            format!(
                "{} / {}",
                served.single.server_core(),
                served.random.server_core()
            ),
            format!(
                "{} / {}",
                served.single.load_core(),
                served.random.load_core()
            ),
            (served.single.failed + served.random.failed).to_string(),
        ]);
    }
    section.table(rates);

    let mut reference = Table::new(
        "Reference: one certificate, TLS 1.3 full handshakes per server CPU-second",
        &["edgecert terminator", "nginx 1.22", "terminator / nginx"],
    );
    match nginx {
        Some(nginx) => reference.row(vec![
            whole(baseline.single.per_server_cpu_second()),
            whole(nginx.per_server_cpu_second()),
            ratio(
                baseline.single.per_server_cpu_second(),
                nginx.per_server_cpu_second(),
            ),
        ]),
        None => reference.row(vec![
            whole(baseline.single.per_server_cpu_second()),
            "not run".to_owned(),
            "-".to_owned(),
        ]),
    }
    section.table(reference);

    section.note(format!(
        "Method: one data directory (SQLite store and vault on tmpfs) grows from one size to the \
         next; every name is a whitelisted, active domain with its own issued certificate (own \
         P-256 key, leaf signed by one benchmark CA), their timestamps spread evenly over the \
         past {ISSUED_OVER_DAYS} days as in a store that grew over time. For each size a fresh `bench-edge` (the \
         terminator library, pinned to core {SERVER_CORE}, resumption off) does its first full \
         load from the store and the vault; serve-ready is from process start to its line \
         saying every certificate is loaded, and the held count must equal the seeded one. RSS \
         (VmRSS) is read 0.5 s after ready and again after the handshake runs; per certificate \
         is (RSS - RSS of the same terminator serving one certificate, read the same way) / \
         (N - 1); marginal is the RSS added per certificate since the previous size. Before \
         the runs, {SERVED_NAME_SAMPLE} random names are checked to be served a leaf naming \
         them. Handshakes: {connections} connections in parallel, full TLS 1.3 handshakes \
         (X25519, no resumption) then a reset, from core {LOAD_CORE}; {rounds} rounds of {secs} \
         s per mode, one name and random names alternating which goes first, server CPU from \
         /proc over the same window (the per-round range shows the noise). The reference line \
         runs the one-certificate terminator and nginx in turns the same way. Seeding time is \
         reported apart: it is the store's and the generator's cost, not the terminator's.",
        connections = load.connections,
        rounds = load.rounds,
        secs = load.duration.as_secs(),
    ));
    section.note(format!(
        "Targets: RSS per certificate <= 6 KiB: {}; random SNI >= 0.95x one name: {} (worst \
         {:.2}x).",
        met(worst_bytes <= TARGET_BYTES_PER_CERTIFICATE),
        met(worst_ratio >= TARGET_RANDOM_OVER_SINGLE),
        if worst_ratio.is_finite() {
            worst_ratio
        } else {
            0.0
        },
    ));

    let (chain_der, key_der) = material_sizes(sample_leaf)?;
    section.note(format!(
        "Material per certificate in this run: the chain as DER is {chain_der} bytes (the leaf \
         and its own copy of the benchmark CA's certificate), the PKCS#8 key {key_der} bytes."
    ));
    Ok(section)
}

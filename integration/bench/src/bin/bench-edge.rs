//! The edge terminator under benchmark: the `edgecert-terminator` library over a SQLite store
//! and vault (filled by the scenario, see `edgecert_bench::seed`), as a process of its own so
//! its CPU time and memory can be read apart from the load generator's.
//!
//! Prints one JSON line on stdout once it is ready (the first read of the change feeds done;
//! names load on their first handshake):
//! `{"https":"127.0.0.1:P","http":"127.0.0.1:P","admin":"127.0.0.1:P","loaded_ms":N,"certificates":N}`.
//! Unknown names are refused (no issuer); origins may be on loopback.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context as _;
use clap::Parser;
use edgecert_core::PlanCatalog;
use edgecert_core::origin::OriginPolicy;
use edgecert_core::ports::{DnsProviders, SystemClock};
use edgecert_core::usecases::{EdgeSettings, Services};
use edgecert_dns::HickoryResolver;
use edgecert_embedded::Database;
use edgecert_integration::fixtures::NoIssuance;
use edgecert_terminator::{EdgeAllocator, Listeners, Terminator, TerminatorConfig};

/// The production terminator's allocator, so that its memory is what is measured.
#[global_allocator]
static ALLOCATOR: EdgeAllocator = EdgeAllocator;

/// Serves a seeded SQLite data directory.
#[derive(Debug, Parser)]
struct Args {
    /// Directory holding `edgecert.db`.
    #[arg(long)]
    data_dir: PathBuf,
    /// HTTPS listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    https: SocketAddr,
    /// HTTP listen address.
    #[arg(long, default_value = "127.0.0.1:0")]
    http: SocketAddr,
    /// Admin listen address (`/metrics`).
    #[arg(long, default_value = "127.0.0.1:0")]
    admin: SocketAddr,
    /// Turn TLS session resumption off (tickets and session ids), for full-handshake runs.
    #[arg(long)]
    no_resumption: bool,
    /// Longest wait for the first read of the change feeds, in seconds.
    #[arg(long, default_value_t = 600)]
    load_timeout_secs: u64,
    /// The cache's memory budget in MiB (default: the terminator's).
    #[arg(long)]
    cache_mib: Option<usize>,
}

fn main() -> anyhow::Result<()> {
    let started = Instant::now();
    let args = Args::parse();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "warn".into()),
        )
        .with_writer(std::io::stderr)
        .try_init();
    // One worker per core this process may use (taskset pins it to one).
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(serve(args, started))
}

async fn serve(args: Args, started: Instant) -> anyhow::Result<()> {
    let database = Database::open(edgecert_bench::seed::database_path(&args.data_dir))?;
    let services = Services {
        store: Arc::new(database.store()),
        vault: Arc::new(database.vault()),
        // Origins are IP literals; nothing is resolved. A closed loopback port, never the
        // system's resolvers.
        resolver: Arc::new(HickoryResolver::with_name_server(SocketAddr::from((
            [127, 0, 0, 1],
            9,
        )))),
        clock: Arc::new(SystemClock),
        plans: PlanCatalog::default(),
        edge: EdgeSettings {
            hostname: "edge.bench.example".to_owned(),
            addresses: vec![std::net::IpAddr::from([127, 0, 0, 1])],
        },
        origin_policy: OriginPolicy {
            allow_loopback: true,
            allow_private: false,
        },
        dns_providers: DnsProviders::default(),
        issuance: None,
    };
    let mut config = TerminatorConfig::default();
    config.tls_resumption = !args.no_resumption;
    if let Some(mib) = args.cache_mib {
        config.cache_memory_budget = mib * 1024 * 1024;
    }
    // Keep-alive runs hold many requests per connection; never cut one for idleness.
    config.idle_timeout = Duration::from_secs(300);
    let listeners = Listeners::bind(args.https, args.http, Some(args.admin)).await?;
    // No issuance: every benchmark name is seeded issued; unknown names are refused before
    // issuance would be asked.
    let issuance = Arc::new(NoIssuance::default());
    let terminator = Terminator::start(services, issuance, config, listeners).await?;
    if !terminator
        .wait_loaded(Duration::from_secs(args.load_timeout_secs))
        .await
    {
        anyhow::bail!(
            "the change feeds were not read within {}s",
            args.load_timeout_secs
        );
    }
    let ready = serde_json::json!({
        "https": terminator.https_addr().to_string(),
        "http": terminator.http_addr().to_string(),
        "admin": terminator.admin_addr().map(|address| address.to_string()),
        "loaded_ms": started.elapsed().as_millis() as u64,
        "certificates": terminator.certificates_cached(),
    });
    println!("{ready}");
    tokio::signal::ctrl_c().await?;
    terminator.shutdown().await;
    Ok(())
}

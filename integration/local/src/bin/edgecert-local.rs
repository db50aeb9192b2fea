//! `edgecert-local`: runs EdgeCert on this machine until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use edgecert_deployment::vars as shared;
use edgecert_local::{LocalOptions, LocalStack, vars};
use edgecert_terminator::{EdgeAllocator, TerminatorConfig};
use edgecert_workers::WorkerConfig;

/// The edge runs in this process: the terminator's allocator.
#[global_allocator]
static ALLOCATOR: EdgeAllocator = EdgeAllocator;

/// EdgeCert on one machine: API, issuer, renewer and edge terminator, Pebble and challtestsrv,
/// SQLite (or AWS adapters). The table, secret prefix and edge settings below are the
/// variables every deployed process shares (read by the same parser); the workers' concurrency
/// (EDGECERT_ISSUE_CONCURRENCY) and the edge's tunables (EDGECERT_TERMINATOR_*, e.g.
/// EDGECERT_TERMINATOR_REFRESH_SECS) come from the same variables as in AWS.
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Directory for the SQLite file, the admin key and stack.json.
    #[arg(long, env = vars::DATA_DIR, default_value = ".edgecert")]
    data_dir: PathBuf,
    /// API listen address.
    #[arg(long, env = vars::API_ADDR, default_value = "127.0.0.1:8080")]
    api_addr: SocketAddr,
    /// Use DynamoDB + Secrets Manager at this endpoint (e.g. moto) instead of SQLite.
    #[arg(long, env = vars::AWS_ENDPOINT)]
    aws_endpoint: Option<String>,
    /// DynamoDB table (created if missing) with --aws-endpoint [default: edgecert].
    #[arg(long, env = shared::TABLE_NAME)]
    table_name: Option<String>,
    /// Secrets Manager name prefix with --aws-endpoint [default: edgecert/].
    #[arg(long, env = shared::SECRET_PREFIX)]
    secret_prefix: Option<String>,
    /// Where certificate keys go with --aws-endpoint: sealed (in the table, under a data key
    /// a KMS key of the emulator wraps) or secrets-manager [default: sealed].
    #[arg(long, env = shared::KEY_STORAGE)]
    key_storage: Option<edgecert_aws::KeyStorage>,
    /// CNAME target in DNS instructions [default: edge.edgecert.localhost].
    #[arg(long, env = shared::EDGE_HOSTNAME)]
    edge_hostname: Option<String>,
    /// New ACME orders per --order-budget-period-seconds, first requests, issuer and renewer
    /// together [default: 300].
    #[arg(long, env = shared::ORDER_BUDGET)]
    order_budget: Option<u32>,
    /// The order budget's period in seconds [default: 10800].
    #[arg(long, env = shared::ORDER_BUDGET_PERIOD_SECONDS)]
    order_budget_period_seconds: Option<u32>,
    /// Edge addresses (comma-separated) for apex names [default: 127.0.0.1].
    #[arg(long, env = shared::EDGE_IPS)]
    edge_ips: Option<String>,
    /// Port Pebble validates HTTP-01 on, where the edge's HTTP listener runs; free port by
    /// default.
    #[arg(long, env = vars::HTTP01_PORT)]
    http01_port: Option<u16>,
    /// The edge's HTTPS listener (TLS by SNI, proxy to origins).
    #[arg(
        long,
        env = vars::EDGE_HTTPS_ADDR,
        default_value = "127.0.0.1:8443"
    )]
    edge_https_addr: SocketAddr,
    /// The edge's admin listener (/healthz, /metrics); free port by default.
    #[arg(long, env = vars::EDGE_ADMIN_ADDR, default_value = "127.0.0.1:0")]
    edge_admin_addr: SocketAddr,
    /// Seconds between two renewer runs.
    #[arg(long, env = vars::RENEWAL_INTERVAL_SECONDS, default_value_t = 60)]
    renewal_interval_seconds: u64,
    /// Lifetime of Pebble's certificates in seconds (short ones show renewals happening);
    /// Pebble's default (about five years) when unset.
    #[arg(long, env = vars::CERTIFICATE_VALIDITY_SECONDS)]
    certificate_validity_seconds: Option<u64>,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()),
        )
        .init();
    let args = Args::parse();
    let mut options = LocalOptions::new(args.data_dir);
    options.api_addr = args.api_addr;
    options.aws_endpoint = args.aws_endpoint;
    // Kept as text: the deployment configuration's parser reads them when the stack starts.
    if let Some(table_name) = args.table_name {
        options.table_name = table_name;
    }
    if let Some(secret_prefix) = args.secret_prefix {
        options.secret_prefix = secret_prefix;
    }
    if let Some(key_storage) = args.key_storage {
        options.key_storage = key_storage;
    }
    if let Some(edge_hostname) = args.edge_hostname {
        options.edge_hostname = edge_hostname;
    }
    if let Some(edge_ips) = args.edge_ips {
        options.edge_ips = edge_ips;
    }
    options.http01_port = args.http01_port;
    options.edge_https_addr = args.edge_https_addr;
    options.edge_admin_addr = args.edge_admin_addr;
    options.edge = TerminatorConfig::from_env()?;
    options.renewal_interval = Duration::from_secs(args.renewal_interval_seconds.max(1));
    options.certificate_validity = args.certificate_validity_seconds.map(Duration::from_secs);
    options.workers = WorkerConfig::from_env()?;
    if let Some(orders) = args.order_budget {
        options.order_budget = orders;
    }
    if let Some(seconds) = args.order_budget_period_seconds {
        options.order_budget_period = time::Duration::seconds(i64::from(seconds.max(1)));
    }

    let options_budget = (
        options.order_budget,
        options.order_budget_period.whole_seconds(),
    );
    let stack = LocalStack::start(options).await?;
    let info = &stack.info;
    println!("EdgeCert is running (Ctrl-C stops everything)");
    println!(
        "  dashboard      {}  (sign in with an account's API key, or the admin key)",
        info.dashboard_url
    );
    println!("  API            {}", info.api_url);
    println!(
        "  admin key      {}  (also in {})",
        stack.admin_key,
        info.admin_key_file.display()
    );
    println!("  storage        {}", info.storage);
    println!("  ACME (Pebble)  {}", info.acme_directory);
    println!("  Pebble root    {}", info.pebble_root_file.display());
    println!(
        "  DNS (challtestsrv) {}  management {}",
        info.dns_server, info.challtestsrv_management_url
    );
    println!(
        "  edge HTTPS     https://{}  (certificates issued on the first request for a whitelisted name)",
        info.edge_https_addr
    );
    println!(
        "  edge HTTP      port {}  (ACME HTTP-01 answers for Pebble, redirects to HTTPS)",
        info.http01_port
    );
    println!(
        "  edge admin     {0}/healthz  {0}/metrics",
        info.edge_admin_url
    );
    println!("  issuer         running: issues requested certificates within a second");
    println!(
        "  renewer        running: every {} s; at most {} new ACME orders per {} s in all",
        info.renewal_interval_seconds, options_budget.0, options_budget.1
    );
    if let Some(validity) = info.certificate_validity_seconds {
        println!("  certificates   Pebble issues them for {validity} s");
    }

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    println!("stopping");
    stack.stop().await;
    Ok(())
}

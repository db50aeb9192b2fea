//! `edgecert-local`: runs EdgeCert on this machine until Ctrl-C.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;

use clap::Parser;
use edgecert_local::{LocalOptions, LocalStack};

/// EdgeCert on one machine: API, Pebble and challtestsrv, SQLite (or AWS adapters).
#[derive(Debug, Parser)]
#[command(version)]
struct Args {
    /// Directory for the SQLite file, the admin key and stack.json.
    #[arg(long, env = "EDGECERT_DATA_DIR", default_value = ".edgecert")]
    data_dir: PathBuf,
    /// API listen address.
    #[arg(long, env = "EDGECERT_API_ADDR", default_value = "127.0.0.1:8080")]
    api_addr: SocketAddr,
    /// Use DynamoDB + Secrets Manager at this endpoint (e.g. moto) instead of SQLite.
    #[arg(long, env = "EDGECERT_AWS_ENDPOINT")]
    aws_endpoint: Option<String>,
    /// DynamoDB table (created if missing) with --aws-endpoint.
    #[arg(long, env = "EDGECERT_TABLE_NAME", default_value = "edgecert")]
    table_name: String,
    /// Secrets Manager name prefix with --aws-endpoint.
    #[arg(long, env = "EDGECERT_SECRET_PREFIX", default_value = "edgecert/")]
    secret_prefix: String,
    /// CNAME target in DNS instructions.
    #[arg(
        long,
        env = "EDGECERT_EDGE_HOSTNAME",
        default_value = "edge.edgecert.localhost"
    )]
    edge_hostname: String,
    /// Edge addresses (comma-separated) for apex names.
    #[arg(
        long,
        env = "EDGECERT_EDGE_IPS",
        default_value = "127.0.0.1",
        value_delimiter = ','
    )]
    edge_ips: Vec<IpAddr>,
    /// Port Pebble validates HTTP-01 on (the edge's HTTP port); free port by default.
    #[arg(long, env = "EDGECERT_HTTP01_PORT")]
    http01_port: Option<u16>,
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
    options.table_name = args.table_name;
    options.secret_prefix = args.secret_prefix;
    options.edge_hostname = args.edge_hostname;
    options.edge_addresses = args.edge_ips;
    options.http01_port = args.http01_port;

    let stack = LocalStack::start(options).await?;
    let info = &stack.info;
    println!("EdgeCert is running (Ctrl-C stops everything)");
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

    let mut terminate = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())?;
    tokio::select! {
        _ = tokio::signal::ctrl_c() => {}
        _ = terminate.recv() => {}
    }
    println!("stopping");
    stack.stop().await;
    Ok(())
}

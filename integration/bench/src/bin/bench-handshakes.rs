//! Scenario 1: full TLS handshakes per server CPU-second, the terminator vs nginx vs haproxy.
//!
//! Same certificate on every server (ECDSA P-256; RSA-2048 for reference), TLS 1.3 and 1.2,
//! resumption off on every side, X25519. Servers run one worker pinned to the server core; the
//! generator (this process) runs on the other core and reports its own core use, so a reader
//! sees whether the server or the generator was the limit. Servers are measured in turns,
//! several rounds, so drift on a shared machine hits all of them alike.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context as _;
use edgecert_bench::edge::{Edge, EdgeOptions};
use edgecert_bench::peers::{self, TlsSite};
use edgecert_bench::pki::{BenchCa, KeyKind};
use edgecert_bench::process::{LOAD_CORE, SERVER_CORE, Server, free_port, pin_self};
use edgecert_bench::report::{Options, Section, Table, ratio, whole};
use edgecert_bench::seed::Seeder;
use edgecert_bench::tls_load::{HandshakeTotals, TlsVersion, handshakes, load_client};

const NAME: &str = "handshake.bench.example.com";
const SERVERS: [&str; 3] = ["edgecert terminator", "nginx", "haproxy"];

/// The three servers for one key type.
struct Lineup {
    servers: Vec<(Server, std::net::SocketAddr)>,
    _edge_dir: tempfile::TempDir,
}

async fn lineup(ca: &BenchCa, kind: KeyKind, dir: &std::path::Path) -> anyhow::Result<Lineup> {
    let leaf = ca.leaf(&[NAME.to_owned()], kind)?;
    let files = dir.join(format!("{kind:?}"));
    std::fs::create_dir_all(&files)?;
    let (chain, key, combined) = leaf.write(&files, "site")?;

    let edge_dir = tempfile::tempdir()?;
    Seeder::open(edge_dir.path())
        .await?
        .add(NAME, "http://127.0.0.1:9", &leaf, kind)
        .await?;
    let edge = Edge::start(
        edge_dir.path(),
        &EdgeOptions {
            no_resumption: true,
            ..EdgeOptions::default()
        },
    )?;
    let mut servers = vec![(edge.server, edge.https)];
    for peer in ["nginx", "haproxy"] {
        let site = TlsSite {
            https_port: free_port()?,
            chain: chain.clone(),
            key: key.clone(),
            combined: combined.clone(),
            upstream: None,
            resumption: false,
        };
        let peer_dir = files.join(peer);
        std::fs::create_dir_all(&peer_dir)?;
        let mut server = match peer {
            "nginx" => peers::nginx(&peer_dir, &site, Some(SERVER_CORE))?,
            _ => peers::haproxy(&peer_dir, &site, Some(SERVER_CORE))?,
        };
        let address = std::net::SocketAddr::from(([127, 0, 0, 1], site.https_port));
        server
            .wait_for_port(address, Duration::from_secs(10))
            .await?;
        servers.push((server, address));
    }
    Ok(Lineup {
        servers,
        _edge_dir: edge_dir,
    })
}

fn main() -> anyhow::Result<()> {
    pin_self(LOAD_CORE)?;
    let options = Options::from_args();
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?
        .block_on(run(options))
}

async fn run(options: Options) -> anyhow::Result<()> {
    let duration = Duration::from_secs(options.pick(8, 1));
    let rounds = options.pick(3, 1);
    let connections = options.pick(32, 4);
    let dir = tempfile::tempdir()?;
    let ca = BenchCa::new()?;
    let names = Arc::new(vec![NAME.to_owned()]);
    let mut totals: HashMap<(KeyKind, TlsVersion, &str), HandshakeTotals> = HashMap::new();

    for kind in [KeyKind::EcdsaP256, KeyKind::Rsa2048] {
        let mut lineup = lineup(&ca, kind, dir.path()).await?;
        for version in [TlsVersion::Tls13, TlsVersion::Tls12] {
            let client = load_client(version, &[])?;
            // Warm-up: the first handshakes pay for lazily built tables and page faults.
            for (_, address) in &lineup.servers {
                let _ = handshakes(
                    *address,
                    Arc::clone(&names),
                    Arc::clone(&client),
                    connections,
                    Duration::from_millis(300),
                )
                .await;
            }
            for _ in 0..rounds {
                for (index, (server, address)) in lineup.servers.iter_mut().enumerate() {
                    server.check_running()?;
                    let before = server.cpu_seconds()?;
                    let run = handshakes(
                        *address,
                        Arc::clone(&names),
                        Arc::clone(&client),
                        connections,
                        duration,
                    )
                    .await;
                    let cpu = server.cpu_seconds()? - before;
                    if run.completed == 0 {
                        anyhow::bail!(
                            "{} completed no {} handshake with {}: {}",
                            SERVERS[index],
                            version.label(),
                            kind.label(),
                            run.first_error.as_deref().unwrap_or("no error either")
                        );
                    }
                    totals
                        .entry((kind, version, SERVERS[index]))
                        .or_default()
                        .add(&run, cpu);
                }
            }
        }
        drop(lineup);
    }

    let mut section = Section::new(
        "1. Full TLS handshakes per server CPU-second",
        "handshakes",
        options,
    );
    let mut table = Table::new(
        "Handshakes per server CPU-second (higher is better)",
        &[
            "key",
            "TLS",
            "edgecert terminator",
            "nginx 1.22",
            "haproxy 2.6",
            "terminator / nginx",
            "terminator / haproxy",
        ],
    );
    let mut load = Table::new(
        "Who was the limit: handshakes per second, server core and generator core in use",
        &[
            "key",
            "TLS",
            "server",
            "handshakes/s",
            "server core",
            "generator core",
            "failed",
        ],
    );
    for kind in [KeyKind::EcdsaP256, KeyKind::Rsa2048] {
        for version in [TlsVersion::Tls13, TlsVersion::Tls12] {
            let get = |server: &str| {
                totals
                    .get(&(kind, version, server))
                    .copied()
                    .context("a cell was not measured")
            };
            let (ours, nginx, haproxy) = (get(SERVERS[0])?, get(SERVERS[1])?, get(SERVERS[2])?);
            table.row(vec![
                kind.label().to_owned(),
                version.label().to_owned(),
                whole(ours.per_server_cpu_second()),
                whole(nginx.per_server_cpu_second()),
                whole(haproxy.per_server_cpu_second()),
                ratio(ours.per_server_cpu_second(), nginx.per_server_cpu_second()),
                ratio(
                    ours.per_server_cpu_second(),
                    haproxy.per_server_cpu_second(),
                ),
            ]);
            for (server, cell) in SERVERS.iter().zip([ours, nginx, haproxy]) {
                load.row(vec![
                    kind.label().to_owned(),
                    version.label().to_owned(),
                    (*server).to_owned(),
                    whole(cell.per_second()),
                    cell.server_core(),
                    cell.load_core(),
                    cell.failed.to_string(),
                ]);
            }
        }
    }
    section.table(table);
    section.table(load);
    section.note(format!(
        "Method: {connections} connections in parallel, each doing full handshakes (X25519, \
         resumption off on both sides, no HTTP request) then a reset; {rounds} rounds of {}s \
         per server in turns, summed. Server CPU time from /proc (user + system) over the same \
         window. Servers pinned to core {SERVER_CORE}, one worker each (nginx `master_process \
         off`, haproxy `nbthread 1`, the terminator's Tokio runtime sized to its one core); the \
         generator (rustls, no certificate verification so that it stays cheaper than the \
         server's side) on core {LOAD_CORE}.",
        duration.as_secs()
    ));
    section.publish()
}

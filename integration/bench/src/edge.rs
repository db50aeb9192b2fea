//! The terminator under test as its own process: `bench-edge` over a seeded data directory,
//! pinned to the server core.

use std::io::BufRead as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde::Deserialize;

use crate::process::{Server, sibling_binary, tail};

/// A running `bench-edge`.
#[derive(Debug)]
pub struct Edge {
    /// The process (CPU time, RSS).
    pub server: Server,
    /// HTTPS listener.
    pub https: SocketAddr,
    /// HTTP listener.
    pub http: SocketAddr,
    /// Admin listener (`/metrics`).
    pub admin: Option<SocketAddr>,
    /// From spawning the process to its ready line: the first read of the change feeds done
    /// and the listeners serving.
    pub ready_after: Duration,
    /// Certificates held in memory when it became ready (none: names load on first use).
    pub certificates: usize,
}

#[derive(Debug, Deserialize)]
struct Ready {
    https: SocketAddr,
    http: SocketAddr,
    admin: Option<SocketAddr>,
    certificates: usize,
}

/// How to start `bench-edge`.
#[derive(Debug, Clone)]
pub struct EdgeOptions {
    /// Core to pin it to (`None`: not pinned).
    pub core: Option<usize>,
    /// Turn TLS resumption off.
    pub no_resumption: bool,
    /// HTTPS listen address (port 0: any).
    pub https: SocketAddr,
    /// Longest wait for it to become ready.
    pub timeout: Duration,
    /// The cache's memory budget in MiB (`None`: the terminator's default).
    pub cache_mib: Option<u64>,
}

impl Default for EdgeOptions {
    fn default() -> Self {
        EdgeOptions {
            core: Some(crate::process::SERVER_CORE),
            no_resumption: false,
            https: SocketAddr::from(([127, 0, 0, 1], 0)),
            timeout: Duration::from_secs(600),
            cache_mib: None,
        }
    }
}

impl Edge {
    /// Starts `bench-edge` on `data_dir` (seeded with [`crate::seed::Seeder`]); its log goes to
    /// `<data_dir>/bench-edge.log`. Returns once it is ready (serving; names load on their
    /// first handshake).
    pub fn start(data_dir: &Path, options: &EdgeOptions) -> anyhow::Result<Edge> {
        let binary = sibling_binary("bench-edge")?;
        let log = data_dir.join("bench-edge.log");
        let stderr =
            std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
        let mut command = match options.core {
            Some(core) => {
                let mut taskset = Command::new("taskset");
                taskset.arg("-c").arg(core.to_string()).arg(&binary);
                taskset
            }
            None => Command::new(&binary),
        };
        command
            .arg("--data-dir")
            .arg(data_dir)
            .arg("--https")
            .arg(options.https.to_string())
            .arg("--load-timeout-secs")
            .arg(options.timeout.as_secs().to_string());
        if options.no_resumption {
            command.arg("--no-resumption");
        }
        if let Some(mib) = options.cache_mib {
            command.arg("--cache-mib").arg(mib.to_string());
        }
        let started = Instant::now();
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .context("starting bench-edge")?;
        let stdout = child.stdout.take().context("bench-edge has no stdout")?;
        let mut server = Server::adopt("edgecert terminator", child, &log);
        // The ready line, read on a thread so a silent process cannot hang the run.
        let (sender, receiver) = std::sync::mpsc::channel();
        std::thread::spawn(move || {
            let mut line = String::new();
            let result = std::io::BufReader::new(stdout).read_line(&mut line);
            let _ = sender.send(result.map(|_| line));
        });
        let line = match receiver.recv_timeout(options.timeout) {
            Ok(Ok(line)) if !line.trim().is_empty() => line,
            _ => {
                server.check_running()?;
                bail!(
                    "bench-edge did not become ready within {:?}; end of {}:\n{}",
                    options.timeout,
                    log.display(),
                    tail(&log)
                );
            }
        };
        let ready_after = started.elapsed();
        let ready: Ready = serde_json::from_str(line.trim())
            .with_context(|| format!("bench-edge's ready line: {line}"))?;
        Ok(Edge {
            server,
            https: ready.https,
            http: ready.http,
            admin: ready.admin,
            ready_after,
            certificates: ready.certificates,
        })
    }
}

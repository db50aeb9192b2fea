//! Processes under measurement: started pinned to a core, their CPU time and memory read from
//! `/proc`, killed when dropped.
//!
//! The machine has two cores: servers get [`SERVER_CORE`], the load generator (the scenario
//! binary itself, see [`pin_self`]) [`LOAD_CORE`]. Throughput is reported per server
//! CPU-second, which holds whether or not the server's core is saturated.

use std::fs::File;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The core servers under test run on.
pub const SERVER_CORE: usize = 0;
/// The core the load generator (and origins) run on.
pub const LOAD_CORE: usize = 1;

/// Pins this process (every thread started afterwards) to `core`. Call first in `main`,
/// before any runtime starts threads.
pub fn pin_self(core: usize) -> anyhow::Result<()> {
    let status = Command::new("taskset")
        .args([
            "-a",
            "-p",
            "-c",
            &core.to_string(),
            &std::process::id().to_string(),
        ])
        .stdout(Stdio::null())
        .status()
        .context("running taskset (util-linux)")?;
    if !status.success() {
        bail!("taskset could not pin this process to core {core}");
    }
    Ok(())
}

/// Finds `binary` on `PATH` or in `/usr/sbin`, or says how to install it.
pub fn require(binary: &str, apt_package: &str) -> anyhow::Result<PathBuf> {
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/sbin"), PathBuf::from("/sbin")])
        .map(|dir| dir.join(binary))
        .find(|candidate| candidate.is_file())
        .with_context(|| {
            format!("`{binary}` is not installed: sudo apt-get install -y {apt_package}")
        })
}

/// A sibling binary of the running one (the scenario binaries are built together, so
/// `bench-edge` sits next to `bench-handshakes`).
pub fn sibling_binary(name: &str) -> anyhow::Result<PathBuf> {
    let own = std::env::current_exe().context("locating this binary")?;
    let path = own
        .parent()
        .context("this binary has no directory")?
        .join(name);
    if !path.is_file() {
        bail!(
            "{} is missing: cargo build --release -p edgecert-bench --bins",
            path.display()
        );
    }
    Ok(path)
}

/// A free loopback TCP port (bound, then released: free when the caller binds it, barring races
/// with other programs).
pub fn free_port() -> anyhow::Result<u16> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// Clock ticks per second of `/proc` CPU times.
fn clock_ticks() -> f64 {
    static TICKS: OnceLock<f64> = OnceLock::new();
    *TICKS.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|output| String::from_utf8(output.stdout).ok())
            .and_then(|text| text.trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// User + system CPU seconds of process `pid` (all its threads), and of its children that it
/// waited for.
pub fn cpu_seconds_of(pid: u32) -> anyhow::Result<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .with_context(|| format!("reading /proc/{pid}/stat"))?;
    // Fields after the command name, which is in parentheses and may hold spaces.
    let rest = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest)
        .context("malformed /proc/<pid>/stat")?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // rest[0] is field 3 (state): utime = field 14, stime 15, cutime 16, cstime 17.
    let ticks: f64 = [11, 12, 13, 14]
        .iter()
        .map(|index| {
            fields
                .get(*index)
                .and_then(|field| field.parse::<f64>().ok())
        })
        .sum::<Option<f64>>()
        .context("malformed /proc/<pid>/stat times")?;
    Ok(ticks / clock_ticks())
}

/// CPU seconds of process `pid` and every live descendant (nginx or Caddy workers, say).
pub fn tree_cpu_seconds(pid: u32) -> anyhow::Result<f64> {
    let mut total = cpu_seconds_of(pid)?;
    for child in descendants(pid) {
        // A child may exit between listing and reading.
        total += cpu_seconds_of(child).unwrap_or(0.0);
    }
    Ok(total)
}

/// Resident memory of process `pid`, in bytes (`VmRSS`).
pub fn rss_bytes_of(pid: u32) -> anyhow::Result<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .with_context(|| format!("reading /proc/{pid}/status"))?;
    let kib: u64 = status
        .lines()
        .find_map(|line| line.strip_prefix("VmRSS:"))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .context("no VmRSS in /proc/<pid>/status")?;
    Ok(kib * 1024)
}

/// CPU seconds this process has used so far (the load generator's cost).
pub fn own_cpu_seconds() -> f64 {
    cpu_seconds_of(std::process::id()).unwrap_or(0.0)
}

fn descendants(root: u32) -> Vec<u32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let parents: Vec<(u32, u32)> = entries
        .filter_map(|entry| entry.ok()?.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(|pid| {
            let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
            let (_, rest) = stat.rsplit_once(')')?;
            let ppid = rest.split_whitespace().nth(1)?.parse().ok()?;
            Some((pid, ppid))
        })
        .collect();
    let mut found = vec![root];
    let mut index = 0;
    while index < found.len() {
        let parent = found[index];
        found.extend(
            parents
                .iter()
                .filter(|(_, ppid)| *ppid == parent)
                .map(|(pid, _)| *pid),
        );
        index += 1;
    }
    found.remove(0);
    found
}

/// A process under test, killed (with its descendants) when dropped. Its output goes to a log
/// file, named in errors.
#[derive(Debug)]
pub struct Server {
    name: String,
    child: Child,
    log: PathBuf,
}

impl Server {
    /// Starts `command`, pinned to `core` when given, output to `log`.
    pub fn spawn(
        name: &str,
        core: Option<usize>,
        command: &mut Command,
        log: &Path,
    ) -> anyhow::Result<Server> {
        let output = File::create(log).with_context(|| format!("creating {}", log.display()))?;
        let mut wrapped = match core {
            Some(core) => {
                let mut taskset = Command::new("taskset");
                taskset
                    .arg("-c")
                    .arg(core.to_string())
                    .arg(command.get_program())
                    .args(command.get_args());
                for (key, value) in command.get_envs() {
                    match value {
                        Some(value) => taskset.env(key, value),
                        None => taskset.env_remove(key),
                    };
                }
                if let Some(dir) = command.get_current_dir() {
                    taskset.current_dir(dir);
                }
                taskset
            }
            None => std::mem::replace(command, Command::new("true")),
        };
        let child = wrapped
            .stdin(Stdio::null())
            .stdout(output.try_clone()?)
            .stderr(output)
            .spawn()
            .with_context(|| format!("starting {name}"))?;
        Ok(Server {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        })
    }

    /// Wraps a child the caller started itself (with piped output, say).
    pub fn adopt(name: &str, child: Child, log: &Path) -> Server {
        Server {
            name: name.to_owned(),
            child,
            log: log.to_owned(),
        }
    }

    /// The process id (taskset execs the program, so it is the server's own).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What the server is called in reports.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// CPU seconds used so far by the server and its workers.
    pub fn cpu_seconds(&self) -> anyhow::Result<f64> {
        tree_cpu_seconds(self.pid())
    }

    /// Resident memory of the server and its workers, in bytes.
    pub fn rss_bytes(&self) -> anyhow::Result<u64> {
        let mut total = rss_bytes_of(self.pid())?;
        for child in descendants(self.pid()) {
            total += rss_bytes_of(child).unwrap_or(0);
        }
        Ok(total)
    }

    /// Fails with the end of the log if the process has exited.
    pub fn check_running(&mut self) -> anyhow::Result<()> {
        if let Some(status) = self.child.try_wait()? {
            bail!(
                "{} exited ({status}); end of {}:\n{}",
                self.name,
                self.log.display(),
                tail(&self.log)
            );
        }
        Ok(())
    }

    /// Waits until `address` accepts TCP connections, failing early if the server exits.
    pub async fn wait_for_port(
        &mut self,
        address: SocketAddr,
        timeout: Duration,
    ) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            self.check_running()?;
            if tokio::net::TcpStream::connect(address).await.is_ok() {
                return Ok(());
            }
            if Instant::now() > deadline {
                bail!(
                    "{} did not listen on {address} within {timeout:?}; end of {}:\n{}",
                    self.name,
                    self.log.display(),
                    tail(&self.log)
                );
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        for pid in descendants(self.pid()) {
            let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The last lines of a log file, for error messages.
pub fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// Server CPU seconds spent while `work` ran.
pub async fn cpu_during<T>(
    server: &Server,
    work: impl std::future::Future<Output = anyhow::Result<T>>,
) -> anyhow::Result<(T, f64)> {
    let before = server.cpu_seconds()?;
    let result = work.await?;
    let after = server.cpu_seconds()?;
    Ok((result, after - before))
}

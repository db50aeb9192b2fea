//! Child processes that cannot outlive the process that started them.
//!
//! Every service runs under a small `sh` wrapper whose stdin is a pipe from us. When that pipe
//! closes — because [`ServiceProcess`] is dropped, or because our process exited in any way,
//! including `SIGKILL` or a static that is never dropped — the wrapper sends `SIGTERM` to the
//! service. This needs no `unsafe` code (no `prctl`, no signal handlers) and also works for the
//! services shared by a whole test binary through statics.

use std::ffi::OsStr;
use std::fmt;
use std::fs::{self, File};
use std::io::{Read as _, Seek as _, SeekFrom};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};

/// The wrapper run as `sh -c WRAPPER <pid file> <program> <args...>`.
///
/// It starts the service with stdin from /dev/null, writes the service's pid to the pid file
/// (`$0`), and starts a watcher that reads our pipe (kept on fd 3, because background jobs get
/// /dev/null as stdin) until end-of-file and then terminates the service. The wrapper itself
/// exits with the service's status as soon as the service exits, so an early crash is visible
/// to [`ServiceProcess::ensure_running`].
const WRAPPER: &str = r#"exec 3<&0
"$@" </dev/null 3<&- &
service=$!
echo "$service" >"$0"
( cat <&3 >/dev/null; kill "$service" 2>/dev/null ) &
watcher=$!
exec 3<&-
wait "$service"
status=$?
kill "$watcher" 2>/dev/null
exit "$status"
"#;

/// How long [`ServiceProcess::spawn`] waits for the wrapper to report the service's pid.
const PID_DEADLINE: Duration = Duration::from_secs(10);

/// How long a service gets to exit after `SIGTERM` before it is killed with `SIGKILL`.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// How many log lines [`ServiceProcess::log_tail`] returns.
const LOG_TAIL_LINES: usize = 40;

/// At most this many bytes are read from the end of a log for [`ServiceProcess::log_tail`].
const LOG_TAIL_BYTES: u64 = 16 * 1024;

/// A running service process, stopped (and reaped) when dropped.
///
/// Its stdout and stderr go to `<work dir>/<name>.log`.
pub struct ServiceProcess {
    name: String,
    pid: u32,
    log_path: PathBuf,
    wrapper: Child,
    /// Our end of the wrapper's stdin pipe: closing it stops the service.
    stdin: Option<ChildStdin>,
}

impl fmt::Debug for ServiceProcess {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ServiceProcess")
            .field("name", &self.name)
            .field("pid", &self.pid)
            .field("log_path", &self.log_path)
            .finish_non_exhaustive()
    }
}

impl ServiceProcess {
    /// Starts `program` with `args` and the extra environment `env`, in `work_dir`, which also
    /// receives `<name>.log` (stdout and stderr) and `<name>.pid`.
    ///
    /// Returns once the service process exists; waiting until it serves requests is up to the
    /// caller (see [`ServiceProcess::ensure_running`] to notice early exits meanwhile).
    pub fn spawn<I, S>(
        name: &str,
        program: &Path,
        args: I,
        env: &[(String, String)],
        work_dir: &Path,
    ) -> anyhow::Result<Self>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        let log_path = work_dir.join(format!("{name}.log"));
        let pid_path = work_dir.join(format!("{name}.pid"));
        let log = File::create(&log_path)
            .with_context(|| format!("creating the {name} log {}", log_path.display()))?;
        let log_for_stderr = log
            .try_clone()
            .with_context(|| format!("duplicating the {name} log handle"))?;

        let mut command = Command::new("sh");
        command
            .arg("-c")
            .arg(WRAPPER)
            .arg(&pid_path)
            .arg(program)
            .args(args)
            .current_dir(work_dir)
            .stdin(Stdio::piped())
            .stdout(log)
            .stderr(log_for_stderr);
        // Services only ever talk to 127.0.0.1: make sure no proxy from our environment
        // reroutes their outbound requests (Pebble's HTTP-01 validation, for one).
        for proxy in [
            "HTTP_PROXY",
            "HTTPS_PROXY",
            "ALL_PROXY",
            "http_proxy",
            "https_proxy",
            "all_proxy",
        ] {
            command.env_remove(proxy);
        }
        command.envs(env.iter().map(|(key, value)| (key, value)));

        let mut wrapper = command
            .spawn()
            .with_context(|| format!("starting {name} ({}) through sh", program.display()))?;
        let stdin = wrapper.stdin.take();
        let mut process = ServiceProcess {
            name: name.to_owned(),
            pid: 0,
            log_path,
            wrapper,
            stdin,
        };
        process.pid = process.wait_for_pid(&pid_path)?;
        tracing::debug!(
            service = %process.name,
            pid = process.pid,
            program = %program.display(),
            log = %process.log_path.display(),
            "service process started"
        );
        Ok(process)
    }

    /// Reads the service pid the wrapper writes right after starting it.
    fn wait_for_pid(&mut self, pid_path: &Path) -> anyhow::Result<u32> {
        let deadline = Instant::now() + PID_DEADLINE;
        loop {
            // `echo` writes the pid and its newline at once; a missing newline means the
            // file was read mid-write.
            let text = fs::read_to_string(pid_path).unwrap_or_default();
            if let Some(line) = text.strip_suffix('\n') {
                return line.trim().parse().with_context(|| {
                    format!("{} wrapper wrote an invalid pid {line:?}", self.name)
                });
            }
            self.ensure_running()?;
            if Instant::now() >= deadline {
                bail!(
                    "{} did not start within {}s{}",
                    self.name,
                    PID_DEADLINE.as_secs(),
                    self.log_section()
                );
            }
            thread::sleep(Duration::from_millis(10));
        }
    }

    /// The service's name, as given to [`ServiceProcess::spawn`].
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The pid of the service itself (not of its `sh` wrapper).
    pub fn pid(&self) -> u32 {
        self.pid
    }

    /// The file receiving the service's stdout and stderr.
    pub fn log_path(&self) -> &Path {
        &self.log_path
    }

    /// The last lines of the service's log, for error messages.
    pub fn log_tail(&self) -> String {
        match read_tail(&self.log_path) {
            Ok(tail) => tail,
            Err(error) => format!("(could not read {}: {error:#})", self.log_path.display()),
        }
    }

    /// Fails, with the exit status and the log tail, if the service has exited.
    pub fn ensure_running(&mut self) -> anyhow::Result<()> {
        match self.wrapper.try_wait() {
            Ok(None) => Ok(()),
            Ok(Some(status)) => bail!(
                "{} exited unexpectedly ({}){}",
                self.name,
                describe_exit(status),
                self.log_section()
            ),
            Err(error) => Err(error)
                .with_context(|| format!("checking whether {} is still running", self.name)),
        }
    }

    /// The log tail formatted to be appended to an error message.
    pub(crate) fn log_section(&self) -> String {
        format!(
            "\n--- last lines of {} ---\n{}",
            self.log_path.display(),
            self.log_tail()
        )
    }

    /// Stops the service: `SIGTERM` through the wrapper, then `SIGKILL` after a grace period.
    /// Returns once the service and its wrapper are gone (reaped). Safe to call twice.
    fn stop(&mut self) {
        // Closing the pipe makes the wrapper's watcher send SIGTERM to the service.
        drop(self.stdin.take());
        if wait_with_deadline(&mut self.wrapper, STOP_GRACE).is_some() {
            tracing::debug!(service = %self.name, pid = self.pid, "service process stopped");
            return;
        }
        tracing::warn!(
            service = %self.name,
            pid = self.pid,
            grace_secs = STOP_GRACE.as_secs(),
            "service ignored SIGTERM; sending SIGKILL"
        );
        // The wrapper is still waiting for the service, so the pid cannot have been reused.
        let _ = Command::new("sh")
            .args(["-c", r#"kill -KILL "$0" 2>/dev/null"#])
            .arg(self.pid.to_string())
            .status();
        if wait_with_deadline(&mut self.wrapper, STOP_GRACE).is_none() {
            let _ = self.wrapper.kill();
            let _ = self.wrapper.wait();
        }
    }
}

impl Drop for ServiceProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Polls `child` until it exits or `grace` elapses.
fn wait_with_deadline(child: &mut Child, grace: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + grace;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => thread::sleep(Duration::from_millis(10)),
            Ok(None) | Err(_) => return None,
        }
    }
}

/// "exit status 1", or "killed by signal 9".
fn describe_exit(status: ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (status.code(), status.signal()) {
        (Some(code), _) => format!("exit status {code}"),
        (None, Some(signal)) => format!("killed by signal {signal}"),
        (None, None) => status.to_string(),
    }
}

/// The last [`LOG_TAIL_LINES`] lines of the file at `path`.
fn read_tail(path: &Path) -> anyhow::Result<String> {
    let mut file = File::open(path)?;
    let len = file.metadata()?.len();
    let start = len.saturating_sub(LOG_TAIL_BYTES);
    file.seek(SeekFrom::Start(start))?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().collect();
    let tail = lines[lines.len().saturating_sub(LOG_TAIL_LINES)..].join("\n");
    if tail.trim().is_empty() {
        Ok("(empty)".to_owned())
    } else {
        Ok(tail)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn alive(pid: u32) -> bool {
        Path::new(&format!("/proc/{pid}")).exists()
    }

    #[test]
    fn drop_stops_the_service_and_reaps_it() {
        let dir = tempfile::tempdir().unwrap();
        let process =
            ServiceProcess::spawn("sleeper", Path::new("sleep"), ["300"], &[], dir.path()).unwrap();
        let pid = process.pid();
        assert!(alive(pid));
        drop(process);
        assert!(!alive(pid), "service pid {pid} still exists after drop");
    }

    #[test]
    fn early_exit_is_reported_with_the_log_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut process = ServiceProcess::spawn(
            "failing",
            Path::new("sh"),
            ["-c", "echo 'listen: address already in use' >&2; exit 3"],
            &[],
            dir.path(),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        let error = loop {
            if let Err(error) = process.ensure_running() {
                break error;
            }
            assert!(
                Instant::now() < deadline,
                "the failing service never exited"
            );
            thread::sleep(Duration::from_millis(10));
        };
        let message = format!("{error:#}");
        assert!(message.contains("exit status 3"), "{message}");
        assert!(message.contains("address already in use"), "{message}");
    }

    #[test]
    fn extra_environment_reaches_the_service() {
        let dir = tempfile::tempdir().unwrap();
        let env = [("EDGECERT_TEST_VALUE".to_owned(), "forty-two".to_owned())];
        let mut process = ServiceProcess::spawn(
            "printer",
            Path::new("sh"),
            ["-c", r#"echo "value=$EDGECERT_TEST_VALUE"; exec sleep 300"#],
            &env,
            dir.path(),
        )
        .unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while !process.log_tail().contains("value=forty-two") {
            process.ensure_running().unwrap();
            assert!(Instant::now() < deadline, "log: {}", process.log_tail());
            thread::sleep(Duration::from_millis(10));
        }
    }
}

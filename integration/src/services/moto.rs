//! moto_server: local DynamoDB, Secrets Manager and Route 53 APIs on 127.0.0.1.
//!
//! moto keeps one global state per server, so tests sharing [`Moto::shared`] use unique table
//! and secret names (or [`Moto::reset`] on a private [`Moto::start`]).

use std::path::PathBuf;

use anyhow::{Context as _, bail};
use tokio::sync::OnceCell;

use super::{
    ServiceProcess, find_in_path, free_port, http_client, is_executable, probe_http,
    wait_until_ready, workspace_root,
};

/// How to install moto_server, quoted in errors when it cannot be found.
const INSTALL_HINT: &str =
    "python3 -m venv .venv-tools && .venv-tools/bin/pip install 'moto[server]'";

/// Environment variable naming the Python venv that holds moto_server.
const TOOLS_VENV_VAR: &str = "EDGECERT_TOOLS_VENV";

/// The moto_server shared by every test of a test binary, see [`Moto::shared`].
static SHARED: OnceCell<Moto> = OnceCell::const_new();

/// A running moto_server on 127.0.0.1, stopped when dropped.
#[derive(Debug)]
pub struct Moto {
    process: ServiceProcess,
    port: u16,
    /// Holds the log; declared after `process` so the process stops before it is removed.
    _work_dir: tempfile::TempDir,
}

impl Moto {
    /// Starts a private moto_server on a free port and waits until it answers HTTP.
    ///
    /// The binary is `$EDGECERT_TOOLS_VENV/bin/moto_server`, else
    /// `<workspace>/.venv-tools/bin/moto_server`, else `moto_server` from `$PATH`.
    pub async fn start() -> anyhow::Result<Moto> {
        let binary = moto_binary()?;
        let work_dir = tempfile::Builder::new()
            .prefix("edgecert-moto-")
            .tempdir()
            .context("creating the moto work directory")?;
        let port = free_port()?;
        let mut process = ServiceProcess::spawn(
            "moto_server",
            &binary,
            ["-H", "127.0.0.1", "-p", &port.to_string()],
            &[],
            work_dir.path(),
        )?;
        let endpoint = endpoint_url(port);
        let client = http_client(&[])?;
        let (client, url) = (&client, endpoint.as_str());
        wait_until_ready(
            &format!("moto_server at {endpoint}"),
            &mut [&mut process],
            move || probe_http(client, url, false),
        )
        .await?;
        tracing::info!(
            service = "moto_server",
            pid = process.pid(),
            endpoint_url = %endpoint,
            "moto_server started"
        );
        Ok(Moto {
            process,
            port,
            _work_dir: work_dir,
        })
    }

    /// The moto_server shared by the whole test process, started on first use.
    ///
    /// It is never dropped (it lives in a static); it stops when the test process exits, however
    /// that happens, because its wrapper watches a pipe from this process (see
    /// [`ServiceProcess`]). If starting fails, the next call tries again.
    pub async fn shared() -> anyhow::Result<&'static Moto> {
        SHARED.get_or_try_init(Moto::start).await
    }

    /// The endpoint for AWS SDK clients, e.g. `http://127.0.0.1:41234`.
    pub fn endpoint_url(&self) -> String {
        endpoint_url(self.port)
    }

    /// The TCP port moto listens on.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The pid of the moto_server process.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Environment for child processes (the local runner, Lambda binaries) using this moto:
    /// endpoint, region `us-east-1`, dummy credentials, and no instance-metadata lookups.
    pub fn aws_env(&self) -> Vec<(String, String)> {
        [
            ("AWS_ENDPOINT_URL", self.endpoint_url()),
            ("AWS_REGION", "us-east-1".to_owned()),
            ("AWS_ACCESS_KEY_ID", "test".to_owned()),
            ("AWS_SECRET_ACCESS_KEY", "test".to_owned()),
            ("AWS_EC2_METADATA_DISABLED", "true".to_owned()),
        ]
        .into_iter()
        .map(|(key, value)| (key.to_owned(), value))
        .collect()
    }

    /// Deletes all of moto's state (`POST /moto-api/reset`). Do not use on [`Moto::shared`]:
    /// other tests are using it concurrently.
    pub async fn reset(&self) -> anyhow::Result<()> {
        let url = format!("{}/moto-api/reset", self.endpoint_url());
        let response = http_client(&[])?
            .post(&url)
            .send()
            .await
            .with_context(|| format!("POST {url}"))?;
        if !response.status().is_success() {
            bail!("POST {url} answered {}", response.status());
        }
        Ok(())
    }
}

fn endpoint_url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// Finds moto_server, or fails with the install command.
fn moto_binary() -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(venv) = std::env::var_os(TOOLS_VENV_VAR) {
        candidates.push(PathBuf::from(venv).join("bin/moto_server"));
    }
    let root = workspace_root();
    candidates.push(root.join(".venv-tools/bin/moto_server"));
    locate_moto(&candidates, find_in_path("moto_server"), &root)
}

/// The first executable of `candidates`, else `in_path`, else an error with the install command
/// to run in `root`.
fn locate_moto(
    candidates: &[PathBuf],
    in_path: Option<PathBuf>,
    root: &std::path::Path,
) -> anyhow::Result<PathBuf> {
    if let Some(found) = candidates.iter().find(|path| is_executable(path)) {
        return Ok(found.clone());
    }
    if let Some(found) = in_path {
        return Ok(found);
    }
    let looked_in: Vec<String> = candidates
        .iter()
        .map(|path| path.display().to_string())
        .collect();
    bail!(
        "moto_server not found (looked in {}, then $PATH); install it from {} with: {INSTALL_HINT}",
        looked_in.join(", "),
        root.display()
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_moto_names_the_install_command() {
        let empty_dir = tempfile::tempdir().unwrap();
        let candidates = [empty_dir.path().join("bin/moto_server")];
        let error = locate_moto(&candidates, None, empty_dir.path()).unwrap_err();
        let message = format!("{error:#}");
        assert!(message.contains(INSTALL_HINT), "{message}");
        assert!(
            message.contains(
                "python3 -m venv .venv-tools && .venv-tools/bin/pip install 'moto[server]'"
            ),
            "{message}"
        );
    }
}

//! template.yaml as CloudFormation receives it: the SAM transform run offline by the SAM CLI's
//! own validator (`samcli`'s `SamTemplateValidator`, what `sam validate` runs), from the SAM
//! venv. Every `AWS::Serverless::*` resource is expanded there: functions into
//! `AWS::Lambda::Function` plus an `AWS::IAM::Role` holding their `Policies` (SAM policy
//! templates such as `DynamoDBCrudPolicy` expanded), events into permissions, mappings and
//! schedules.

use std::io::Read as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use serde_json::Value;

use crate::services::workspace_root;

/// The transform, run by the SAM venv's Python: template path in, CloudFormation JSON out.
const TRANSFORM_SCRIPT: &str = include_str!("sam_transform.py");

/// Environment variable naming the Python venv that holds the SAM CLI.
const SAM_VENV_VAR: &str = "EDGECERT_SAM_VENV";

/// How to install the SAM CLI, quoted in errors when it cannot be found.
const INSTALL_HINT: &str = "python3 -m venv .venv-sam && .venv-sam/bin/pip install aws-sam-cli";

/// How long the transform may take (about 3 s here: mostly importing the SAM CLI).
const TRANSFORM_DEADLINE: Duration = Duration::from_secs(120);

/// The workspace's template.yaml transformed, once per process (the transform takes seconds).
static WORKSPACE_TEMPLATE: Mutex<Option<Value>> = Mutex::new(None);

/// The workspace's template.yaml, transformed. It blocks for the transform's seconds on first
/// use: from async code, call it through `tokio::task::spawn_blocking`.
pub fn transformed_template() -> anyhow::Result<Value> {
    // Held while transforming, so concurrent callers wait for one transform instead of
    // starting their own; a poisoned lock still holds a valid cache.
    let mut cached = WORKSPACE_TEMPLATE
        .lock()
        .unwrap_or_else(PoisonError::into_inner);
    if let Some(template) = cached.as_ref() {
        return Ok(template.clone());
    }
    let template = transform(&workspace_root().join("template.yaml"))?;
    *cached = Some(template.clone());
    Ok(template)
}

/// The SAM template at `path`, transformed into plain CloudFormation (JSON).
pub fn transform(path: &Path) -> anyhow::Result<Value> {
    let python = sam_python()?;
    let mut child = Command::new(&python)
        .arg("-c")
        .arg(TRANSFORM_SCRIPT)
        .arg(path)
        // Offline and quiet: the region only names the partition; no credentials, no
        // instance-metadata lookups, no telemetry.
        .env_clear()
        .env("PATH", std::env::var_os("PATH").unwrap_or_default())
        .env("HOME", std::env::temp_dir())
        .env("AWS_DEFAULT_REGION", "us-east-1")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .env("SAM_CLI_TELEMETRY", "0")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting {}", python.display()))?;
    // Read both pipes on threads so a full pipe never blocks the child.
    let mut stdout = child.stdout.take().context("the transform's stdout")?;
    let mut stderr = child.stderr.take().context("the transform's stderr")?;
    let out = std::thread::spawn(move || {
        let mut text = String::new();
        stdout.read_to_string(&mut text).map(|_| text)
    });
    let err = std::thread::spawn(move || {
        let mut text = String::new();
        stderr.read_to_string(&mut text).map(|_| text)
    });
    let started = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().context("waiting for the SAM transform")? {
            break status;
        }
        if started.elapsed() > TRANSFORM_DEADLINE {
            let _ = child.kill();
            let _ = child.wait();
            bail!(
                "the SAM transform of {} did not finish within {TRANSFORM_DEADLINE:?}",
                path.display()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let stdout = out
        .join()
        .map_err(|_| anyhow::anyhow!("the transform's stdout reader panicked"))?
        .context("reading the transform's output")?;
    let stderr = err
        .join()
        .map_err(|_| anyhow::anyhow!("the transform's stderr reader panicked"))?
        .unwrap_or_default();
    if !status.success() {
        bail!(
            "the SAM transform of {} failed ({status}):\n{}",
            path.display(),
            stderr.trim()
        );
    }
    serde_json::from_str(&stdout).context("reading the transformed template as JSON")
}

/// The SAM venv's Python: `$EDGECERT_SAM_VENV/bin/python`, else the workspace's `.venv-sam`.
fn sam_python() -> anyhow::Result<PathBuf> {
    let mut candidates = Vec::new();
    if let Some(venv) = std::env::var_os(SAM_VENV_VAR) {
        candidates.push(PathBuf::from(venv).join("bin/python"));
    }
    let root = workspace_root();
    candidates.push(root.join(".venv-sam/bin/python"));
    candidates
        .iter()
        .find(|path| path.is_file())
        .cloned()
        .with_context(|| {
            format!(
                "the SAM CLI's Python was not found (looked in {}; set {SAM_VENV_VAR}); install it from {} with: {INSTALL_HINT}",
                candidates
                    .iter()
                    .map(|path| path.display().to_string())
                    .collect::<Vec<_>>()
                    .join(", "),
                root.display()
            )
        })
}

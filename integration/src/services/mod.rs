//! Real local services for tests and the local runner, all on 127.0.0.1.
//!
//! - [`Pebble`]: the ACME test CA, together with pebble-challtestsrv ([`Challtestsrv`]) as its
//!   DNS server and optional HTTP-01 responder.
//! - [`Moto`]: moto_server, standing in for DynamoDB, Secrets Manager and Route 53, with
//!   [`AwsRecorder`] in front of it, recording every call each function makes, and
//!   [`Route53Zone`]s whose records challtestsrv serves in DNS.
//!
//! Each service owns a temporary directory with its configuration and logs, starts its processes
//! on free ports ([`free_port`]), waits (bounded) until they answer, and stops them when dropped.
//! A missing binary is an error that names the install command: nothing is skipped silently.

mod aws_recorder;
mod challtestsrv;
mod moto;
mod pebble;
mod ports;
mod process;
mod route53_zone;

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use rustls::pki_types::CertificateDer;

pub use aws_recorder::{AwsCall, AwsRecorder, CallerCredentials};
pub use challtestsrv::{CaaPolicy, Challtestsrv};
pub use moto::Moto;
pub use pebble::{ChalltestsrvHttp01, Pebble, PebbleOptions};
pub use ports::free_port;
pub use process::ServiceProcess;
pub use route53_zone::Route53Zone;

/// How long a service may take to answer after its process started. Generous because tests
/// run next to compilers on small machines (moto alone imports for a few seconds).
const STARTUP_DEADLINE: Duration = Duration::from_secs(30);

/// Pause between two readiness probes.
const PROBE_INTERVAL: Duration = Duration::from_millis(50);

/// Timeout of one readiness probe or management request.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);

/// The root of the EdgeCert workspace this crate was built from.
pub fn workspace_root() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    // This crate lives in `<root>/integration`.
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.to_path_buf(), Path::to_path_buf)
}

/// Whether `path` is a file with an execute bit.
fn is_executable(path: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt as _;
    path.metadata()
        .is_ok_and(|meta| meta.is_file() && meta.permissions().mode() & 0o111 != 0)
}

/// The first executable called `name` in the directories of `$PATH`.
fn find_in_path(name: &str) -> Option<PathBuf> {
    find_in_search_path(std::env::var_os("PATH").as_deref(), name)
}

/// The first executable called `name` in the directories of `search_path` (`$PATH` syntax).
fn find_in_search_path(search_path: Option<&std::ffi::OsStr>, name: &str) -> Option<PathBuf> {
    std::env::split_paths(search_path?)
        .map(|dir| dir.join(name))
        .find(|candidate| is_executable(candidate))
}

/// An HTTP client for the local services that trusts only `roots` for HTTPS (pass `&[]` for
/// plain-HTTP services such as moto or challtestsrv's management API).
///
/// reqwest is built without a rustls provider, so the aws-lc-rs provider is passed explicitly
/// rather than relying on a process-wide default. No proxy from the environment is used, and
/// no idle connections are kept, so the client may be used from any Tokio runtime.
pub fn http_client(roots: &[CertificateDer<'static>]) -> anyhow::Result<reqwest::Client> {
    http_client_builder(roots)?
        .timeout(REQUEST_TIMEOUT)
        .build()
        .context("building the HTTP client")
}

/// What [`http_client`] builds, before its timeout is set.
fn http_client_builder(
    roots: &[CertificateDer<'static>],
) -> anyhow::Result<reqwest::ClientBuilder> {
    let mut root_store = rustls::RootCertStore::empty();
    for root in roots {
        root_store
            .add(root.clone())
            .context("adding a root certificate to the HTTP client")?;
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .context("configuring TLS versions for the HTTP client")?
    .with_root_certificates(root_store)
    .with_no_client_auth();
    Ok(reqwest::Client::builder()
        .use_preconfigured_tls(tls)
        .no_proxy()
        // Clients may be used from several test runtimes: keep no pooled connections that
        // belong to a runtime that may be gone.
        .pool_max_idle_per_host(0))
}

/// Polls `probe` until it succeeds, failing with the log tails of `processes` if one of them
/// exits or [`STARTUP_DEADLINE`] passes first. `what` names the awaited condition in errors.
async fn wait_until_ready<F, Fut>(
    what: &str,
    processes: &mut [&mut ServiceProcess],
    mut probe: F,
) -> anyhow::Result<()>
where
    F: FnMut() -> Fut,
    Fut: Future<Output = anyhow::Result<()>>,
{
    let started = Instant::now();
    loop {
        for process in processes.iter_mut() {
            process
                .ensure_running()
                .with_context(|| format!("while waiting for {what}"))?;
        }
        let last_error = match probe().await {
            Ok(()) => {
                tracing::debug!(
                    what,
                    elapsed_ms = started.elapsed().as_millis(),
                    "service ready"
                );
                return Ok(());
            }
            Err(error) => error,
        };
        if started.elapsed() >= STARTUP_DEADLINE {
            let logs: String = processes
                .iter()
                .map(|process| process.log_section())
                .collect();
            bail!(
                "timed out after {}s waiting for {what}; last attempt: {last_error:#}{logs}",
                STARTUP_DEADLINE.as_secs()
            );
        }
        tokio::time::sleep(PROBE_INTERVAL).await;
    }
}

/// Succeeds when `url` answers HTTP at all (any status), or with a success status if
/// `require_success`.
async fn probe_http(
    client: &reqwest::Client,
    url: &str,
    require_success: bool,
) -> anyhow::Result<()> {
    let response = client.get(url).send().await?;
    if require_success && !response.status().is_success() {
        bail!("GET {url} answered {}", response.status());
    }
    Ok(())
}

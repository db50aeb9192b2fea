//! Scenario 5 of issue #8, Lambda init: time from process start to the first response of every
//! Lambda binary (each API route's function, the authorizer, the issuer and the renewer) under
//! an emulated Lambda Runtime API, against `hello-lambda` (the smallest `lambda_http` function)
//! built the same way; and the binaries' sizes. Target: at most 2x hello-world.
//!
//! Every cold start is a fresh process, started with exactly the environment Lambda and
//! template.yaml give the function (moto's endpoint for DynamoDB, Secrets Manager and Route 53,
//! dummy credentials, pebble-challtestsrv as the only DNS server, Pebble's directory for the
//! functions that talk to the CA), and handed its own event from `events/` as its first
//! invocation. The emulated Runtime API notes when the process first polls for an event (its
//! init is done) and when it posts its answer; a recording proxy in front of moto notes how long
//! each of the function's AWS calls waited on moto (a Python server, far slower than
//! DynamoDB), so the table can show the function's own time apart from moto's.
//!
//! The functions run on [`SERVER_CORE`]; the emulator, the proxy, moto and Pebble on
//! [`LOAD_CORE`]. The harness builds nothing: the binaries are expected next to this one
//! (`cargo build --release -p edgecert-lambda -p edgecert-bench --bins`): every function is the
//! one binary `edgecert-lambda` with its `EDGECERT_FUNCTION`, as template.yaml deploys them.

use std::collections::BTreeSet;
use std::convert::Infallible;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use edgecert_api::ROUTES;
use edgecert_api::config::vars::ADMIN_KEY_SECRET;
use edgecert_aws::AwsClients;
use edgecert_bench::process::{LOAD_CORE, SERVER_CORE, Server, pin_self, sibling_binary};
use edgecert_bench::report::{Options, Section, Table, quantile, ratio, whole};
use edgecert_deployment::vars;
use edgecert_integration::lambda_runtime::lambda_environment;
use edgecert_integration::{Moto, Pebble, PebbleOptions};
use http_body_util::{BodyExt as _, Full};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::oneshot;
use tokio::task::{JoinHandle, JoinSet};

/// The baseline binary (`src/bin/hello-lambda.rs`).
const HELLO_WORLD: &str = "hello-lambda";

/// The binary of every EdgeCert function (functions/lambda).
const LAMBDA_BINARY: &str = "edgecert-lambda";

/// The API Gateway request hello-world answers: any route's event does.
const HELLO_WORLD_EVENT: &str = include_str!("../../../../events/limits-get.json");

/// The event files of `events/`, by the function (Lambda binary) they are delivered to.
macro_rules! fixture {
    ($function:literal) => {
        fixture!($function, $function)
    };
    ($function:literal, $file:literal) => {
        (
            $function,
            include_str!(concat!("../../../../events/", $file, ".json")),
        )
    };
}

const FIXTURES: &[(&str, &str)] = &[
    fixture!("authorizer"),
    fixture!("accounts-create"),
    fixture!("accounts-list"),
    fixture!("accounts-update"),
    fixture!("limits-get"),
    fixture!("domains-create"),
    fixture!("domains-list"),
    fixture!("domains-get"),
    fixture!("domains-update"),
    fixture!("domains-delete"),
    fixture!("domains-dns"),
    fixture!("domains-verify"),
    fixture!("domains-ssl"),
    fixture!("domains-nudge"),
    fixture!("zones-create"),
    fixture!("zones-list"),
    fixture!("zones-delete"),
    fixture!("zones-verification"),
    fixture!("certificates-create"),
    fixture!("certificates-list"),
    fixture!("certificates-get"),
    fixture!("certificates-download"),
    fixture!("certificates-renew"),
    fixture!("certificates-update"),
    fixture!("certificates-delete"),
    fixture!("certificates-logs"),
    fixture!("issuer", "issuer-stream"),
    fixture!("renewer", "renewer-schedule"),
];

/// The functions' CNAME target, as in the Lambda binaries' tests.
const EDGE_HOSTNAME: &str = "edge.edgecert.test";

/// Origins named in the fixtures (domains-create, domains-update): challtestsrv gives them a
/// public documentation address, so the strict origin policy lets the request reach the store.
/// Nothing ever connects to them.
const FIXTURE_ORIGINS: [&str; 2] = ["origin.saas.example.com", "origin-2.saas.example.com"];
const FIXTURE_ORIGIN_ADDRESS: Ipv4Addr = Ipv4Addr::new(198, 51, 100, 8);

/// Longest wait for one cold start's first answer.
const COLD_START_TIMEOUT: Duration = Duration::from_secs(30);

/// How often a waiting cold start checks that its process is still alive.
const LIVENESS_INTERVAL: Duration = Duration::from_millis(20);

/// The target: a function's first response within this multiple of hello-world's.
const TARGET_RATIO: f64 = 2.0;

fn main() -> anyhow::Result<()> {
    pin_self(LOAD_CORE)?;
    let options = Options::from_args();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the Tokio runtime")?
        .block_on(run(options))
}

async fn run(options: Options) -> anyhow::Result<()> {
    let rounds = options.pick(20, 1);
    // Full mode starts every binary once first, unmeasured: the page cache then holds every
    // binary, so the rounds measure process init rather than disk reads.
    let warm_up = options.pick(true, false);

    let hello = Binary::locate(HELLO_WORLD, HELLO_WORLD_EVENT)?;
    let functions = function_names()?
        .into_iter()
        .map(|name| Binary::locate(name, fixture(name)?))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let work_dir = tempfile::Builder::new()
        .prefix("edgecert-bench-lambda-")
        .tempdir()
        .context("creating the work directory")?;
    let experiments = root_experiments(&functions, work_dir.path())?;

    let deployment = Deployment::start().await?;
    let spawner = Spawner::start(SERVER_CORE)?;

    let subjects: Vec<Subject<'_>> = std::iter::once(Subject::as_deployed(&hello))
        .chain(functions.iter().map(Subject::as_deployed))
        .chain(experiments)
        .collect();
    let mut samples: Vec<Vec<ColdStart>> = vec![Vec::new(); subjects.len()];
    let measure_all = || async {
        let mut round = Vec::with_capacity(subjects.len());
        for subject in &subjects {
            let start = cold_start(subject, &deployment, &spawner, work_dir.path())
                .await
                .with_context(|| format!("cold start of {}", subject.label))?;
            round.push(start);
        }
        anyhow::Ok(round)
    };
    if warm_up {
        measure_all().await?;
    }
    // Rounds interleave the binaries, so drift from the machine's other load spreads over all
    // of them alike and hello-world is measured beside each.
    for _ in 0..rounds {
        for (index, start) in measure_all().await?.into_iter().enumerate() {
            samples[index].push(start);
        }
    }

    let mut stats = subjects
        .iter()
        .zip(samples.iter_mut())
        .map(|(subject, samples)| Stats::of(subject, samples))
        .collect::<anyhow::Result<Vec<_>>>()?;
    let experiment_rows = stats.split_off(functions.len() + 1);
    let rows = stats.split_off(1);
    let hello_stats = stats.pop().context("hello-world was not measured")?;

    let mut section = Section::new("Lambda init (cold start)", "lambda-init", options);
    section.table(cold_start_table(&hello_stats, &rows, rounds));
    section.table(summary_table(&hello_stats, &rows));
    if !experiment_rows.is_empty() {
        section.table(experiment_table(&hello_stats, &rows, &experiment_rows));
    }
    for note in notes(&hello_stats, &rows, &experiment_rows, rounds, warm_up) {
        section.note(note);
    }
    section.publish()
}

/// What is measured: a binary, as deployed or with a variable changed for an experiment.
#[derive(Debug)]
struct Subject<'a> {
    /// How the report names it.
    label: String,
    binary: &'a Binary,
    /// Variables added to (or replacing) the deployed environment.
    extra_env: Vec<(String, String)>,
    /// The row of the as-deployed binary an experiment is compared with.
    baseline: Option<&'static str>,
}

impl<'a> Subject<'a> {
    fn as_deployed(binary: &'a Binary) -> Subject<'a> {
        Subject {
            label: format!("`{}`", binary.name),
            binary,
            extra_env: Vec::new(),
            baseline: None,
        }
    }
}

/// Where the system's root certificates are, as `rustls-native-certs` (through openssl-probe)
/// finds them: Debian's bundle, or Amazon Linux's (`provided.al2023`).
const SYSTEM_ROOT_BUNDLES: [&str; 2] = [
    "/etc/ssl/certs/ca-certificates.crt",
    "/etc/pki/tls/certs/ca-bundle.crt",
];

/// The experiments that measure what loading the system's root certificates costs at init: a
/// typical API function and one that also builds the ACME client, with `SSL_CERT_FILE` (which
/// `rustls-native-certs` reads instead of probing) naming the bundle alone (no scan of the
/// certificate directory) or a file holding one root (next to no loading). None when the
/// machine has no bundle.
fn root_experiments<'a>(
    functions: &'a [Binary],
    work_dir: &Path,
) -> anyhow::Result<Vec<Subject<'a>>> {
    let Some(bundle) = SYSTEM_ROOT_BUNDLES
        .iter()
        .map(Path::new)
        .find(|path| path.is_file())
    else {
        return Ok(Vec::new());
    };
    let text =
        std::fs::read_to_string(bundle).with_context(|| format!("reading {}", bundle.display()))?;
    const END: &str = "-----END CERTIFICATE-----";
    let first_root = text
        .find(END)
        .map(|end| &text[..end + END.len()])
        .context("the system's bundle holds no certificate")?;
    let one_root = work_dir.join("one-root.pem");
    std::fs::write(&one_root, format!("{first_root}\n"))
        .with_context(|| format!("writing {}", one_root.display()))?;
    let find = |name: &str| {
        functions
            .iter()
            .find(|binary| binary.name == name)
            .with_context(|| format!("no function {name}"))
    };
    let variant = |binary: &'a Binary, label: &str, file: &Path| Subject {
        label: format!("`{}`, {label}", binary.name),
        binary,
        extra_env: vec![("SSL_CERT_FILE".to_owned(), file.display().to_string())],
        baseline: Some(binary.name),
    };
    let api = find("domains-get")?;
    let acme = find("certificates-delete")?;
    Ok(vec![
        variant(api, "bundle only (no directory scan)", bundle),
        variant(api, "one root", &one_root),
        variant(acme, "one root", &one_root),
    ])
}

// ---------------------------------------------------------------------------------------------
// The binaries and their events

/// A Lambda binary under test and the event of its first invocation.
#[derive(Debug)]
struct Binary {
    name: &'static str,
    path: PathBuf,
    size_bytes: u64,
    event: Bytes,
}

impl Binary {
    fn locate(name: &'static str, event: &str) -> anyhow::Result<Binary> {
        // Every function is the one Lambda binary; hello-world is a binary of its own.
        let file = if name == HELLO_WORLD {
            HELLO_WORLD
        } else {
            LAMBDA_BINARY
        };
        let path = sibling_binary(file).with_context(|| {
            format!(
                "{file} is not built next to this binary: cargo build --release -p edgecert-lambda \
                 -p edgecert-bench --bins"
            )
        })?;
        let size_bytes = path
            .metadata()
            .with_context(|| format!("reading the size of {}", path.display()))?
            .len();
        // Parsed and written back compactly, as the Runtime API hands events out.
        let event: Value = serde_json::from_str(event)
            .with_context(|| format!("the event of {name} is not JSON"))?;
        Ok(Binary {
            name,
            path,
            size_bytes,
            event: Bytes::from(serde_json::to_vec(&event)?),
        })
    }
}

/// Every Lambda binary EdgeCert deploys: the authorizer, one function per API route (from the
/// route table), and the two workers.
fn function_names() -> anyhow::Result<Vec<&'static str>> {
    let mut names = vec!["authorizer"];
    names.extend(ROUTES.iter().map(|route| route.function));
    names.extend(["issuer", "renewer"]);
    let unique: BTreeSet<&str> = names.iter().copied().collect();
    if unique.len() != names.len() {
        bail!("the route table names a function twice: {names:?}");
    }
    Ok(names)
}

fn fixture(function: &str) -> anyhow::Result<&'static str> {
    FIXTURES
        .iter()
        .find(|(name, _)| *name == function)
        .map(|(_, event)| *event)
        .with_context(|| format!("no event for {function} in FIXTURES: add events/{function}.json"))
}

// ---------------------------------------------------------------------------------------------
// The deployment: moto, Pebble and challtestsrv, and each function's environment

/// What template.yaml's parameters stand for here, and the services behind them.
struct Deployment {
    table: String,
    /// The secret in moto holding the admin key, as template.yaml's AdminKeySecret.
    admin_key_secret: String,
    /// The KMS key of sealed key storage (template.yaml's default), as KeyStorageKmsKey.
    kms_key_id: String,
    dns_server: SocketAddr,
    acme_directory: String,
    /// The AWS endpoint (the recording proxy in front of moto), region and dummy credentials.
    aws_env: Vec<(String, String)>,
    moto_tap: MotoTap,
    // The services stop when dropped; after the proxy in front of them.
    _pebble: Pebble,
    _moto: Moto,
}

impl Deployment {
    async fn start() -> anyhow::Result<Deployment> {
        let moto = Moto::start().await.context("starting moto_server")?;
        let clients = AwsClients::for_local_endpoint(&moto.endpoint_url()).await;
        let table = format!("edgecert-bench-lambda-{}", std::process::id());
        edgecert_aws::create_table(&clients.dynamodb, &table)
            .await
            .with_context(|| format!("creating table {table} in moto"))?;
        let kms_key_id = edgecert_aws::ensure_kms_key(&clients.kms, &format!("alias/{table}"))
            .await
            .context("creating the key storage's KMS key in moto")?;
        let pebble = Pebble::start(PebbleOptions::default())
            .await
            .context("starting Pebble and pebble-challtestsrv (apt-get install -y pebble)")?;
        let dns = pebble.challtestsrv();
        for origin in FIXTURE_ORIGINS {
            dns.add_a(origin, &[FIXTURE_ORIGIN_ADDRESS])
                .await
                .with_context(|| format!("giving {origin} an address in challtestsrv"))?;
        }
        let moto_address = SocketAddr::from((Ipv4Addr::LOCALHOST, moto.port()));
        let moto_tap = MotoTap::start(moto_address).await?;
        let mut aws_env = moto.aws_env();
        for (name, value) in &mut aws_env {
            if name == "AWS_ENDPOINT_URL" {
                *value = format!("http://{}", moto_tap.addr);
            }
        }
        let admin_key_secret = clients
            .secrets_manager
            .create_secret()
            .name(format!("{table}-admin-key"))
            .secret_string(format!("AdminBench{}", std::process::id()))
            .send()
            .await
            .context("creating the admin key's secret in moto")?
            .arn
            .context("moto answered no ARN for the admin key's secret")?;
        Ok(Deployment {
            table,
            admin_key_secret,
            kms_key_id,
            dns_server: dns.dns_server_addr(),
            acme_directory: pebble.directory_url(),
            aws_env,
            moto_tap,
            _pebble: pebble,
            _moto: moto,
        })
    }

    /// This deployment's value of the template's variable `name` for `function`.
    fn value(&self, function: &str, name: &str) -> anyhow::Result<String> {
        Ok(match name {
            edgecert_integration::template::FUNCTION_VARIABLE => function.to_owned(),
            vars::TABLE_NAME => self.table.clone(),
            vars::SECRET_PREFIX => format!("{}/", self.table),
            vars::KEY_STORAGE => "sealed".to_owned(),
            vars::KMS_KEY_ID => self.kms_key_id.clone(),
            vars::EDGE_HOSTNAME => EDGE_HOSTNAME.to_owned(),
            vars::EDGE_IPS => "127.0.0.1".to_owned(),
            ADMIN_KEY_SECRET => self.admin_key_secret.clone(),
            // Pebble's listener root is not given (EDGECERT_ACME_CA_ROOT): the functions load
            // the system's roots at init, as deployed. No first invocation here reaches the CA.
            vars::ACME_DIRECTORY => self.acme_directory.clone(),
            vars::ACME_CONTACT => "ops@edgecert.test".to_owned(),
            vars::CAA_IDENTITIES => "letsencrypt.org,pebble.letsencrypt.org".to_owned(),
            "EDGECERT_ISSUE_CONCURRENCY" => "2".to_owned(),
            "EDGECERT_ORDER_BUDGET" => "300".to_owned(),
            "EDGECERT_ORDER_BUDGET_PERIOD_SECONDS" => "10800".to_owned(),
            "EDGECERT_KEY_SWEEP_PER_RUN" => "100".to_owned(),
            // The template's default: no hosted zone of the operator's account is granted.
            vars::ROUTE53_ZONE_GRANTS => String::new(),
            // The template's default level: the functions log as deployed.
            "RUST_LOG" => "info".to_owned(),
            other => bail!("template.yaml gives the functions {other}: give it a value here"),
        })
    }

    /// The environment of `binary` beyond Lambda's own variables: the AWS endpoint and
    /// credentials, the variables template.yaml gives the function, and the DNS server (so no
    /// function asks the system's resolvers). Hello-world gets the AWS variables only.
    fn environment(&self, binary: &str) -> anyhow::Result<Vec<(String, String)>> {
        let mut env = self.aws_env.clone();
        if binary == HELLO_WORLD {
            return Ok(env);
        }
        for name in edgecert_integration::template::function_variables(binary)? {
            let value = self.value(binary, &name)?;
            env.push((name, value));
        }
        env.push((vars::DNS_SERVER.to_owned(), self.dns_server.to_string()));
        Ok(env)
    }
}

// ---------------------------------------------------------------------------------------------
// One cold start

/// What one cold start took.
#[derive(Debug, Clone)]
struct ColdStart {
    /// Process start to its first poll for an event: the function's init.
    init: Duration,
    /// Process start to its answer to the first invocation being received.
    response: Duration,
    /// Time the function's AWS calls waited on moto (included in `response`).
    moto_wait: Duration,
    /// Number of AWS calls.
    moto_calls: usize,
    /// What the function answered, in short (`404`, `authorized (anonymous)`...).
    answer: String,
}

/// Starts the subject's binary as a fresh process against a Runtime API of its own whose first
/// event is the binary's, and measures until its answer arrives. The process is killed
/// afterwards.
async fn cold_start(
    subject: &Subject<'_>,
    deployment: &Deployment,
    spawner: &Spawner,
    logs: &Path,
) -> anyhow::Result<ColdStart> {
    let binary = subject.binary;
    let mut runtime_api = TimingRuntimeApi::start(binary.name, binary.event.clone()).await?;
    let mut command = Command::new(&binary.path);
    command.env_clear();
    for (name, value) in lambda_environment(binary.name, runtime_api.addr)
        .into_iter()
        .chain(deployment.environment(binary.name)?)
        .chain(subject.extra_env.iter().cloned())
    {
        command.env(name, value);
    }
    let log = logs.join(format!("{}.log", binary.name));
    let output =
        std::fs::File::create(&log).with_context(|| format!("creating {}", log.display()))?;
    command
        .stdin(Stdio::null())
        .stdout(output.try_clone()?)
        .stderr(output);

    deployment.moto_tap.clear();
    let (started, child) = spawner.spawn(command).await?;
    let mut process = Server::adopt(binary.name, child, &log);
    let (answered, answer) = runtime_api
        .wait_for_answer(&mut process, COLD_START_TIMEOUT)
        .await?;
    let first_poll = runtime_api
        .first_poll()
        .context("the function answered without polling for an event")?;
    drop(process);

    let calls = deployment.moto_tap.take();
    if let Some(early) = calls.iter().find(|call| call.answered_at < first_poll) {
        // Not an error: worth seeing, since it would count as init.
        eprintln!(
            "note: {} made an AWS call during init (waited {:?})",
            binary.name, early.waited
        );
    }
    let moto_wait = calls
        .iter()
        .filter(|call| call.answered_at <= answered)
        .map(|call| call.waited)
        .sum();
    Ok(ColdStart {
        init: first_poll.saturating_duration_since(started),
        response: answered.saturating_duration_since(started),
        moto_wait,
        moto_calls: calls.iter().filter(|call| !call.is_connect).count(),
        answer: describe_answer(binary.name, answer)?,
    })
}

/// A short description of a function's answer; an invocation error, a server error or a
/// hello-world answer other than 200 fails the run (its time would mean nothing).
fn describe_answer(function: &str, answer: Answer) -> anyhow::Result<String> {
    let body = match answer {
        Answer::Response(body) => body,
        Answer::InvocationError(body) => bail!(
            "{function} answered with an invocation error: {}",
            String::from_utf8_lossy(&body)
        ),
        Answer::InitError(body) => bail!(
            "{function} reported an init error: {}",
            String::from_utf8_lossy(&body)
        ),
    };
    let response: Value = serde_json::from_slice(&body)
        .with_context(|| format!("{function} answered something that is not JSON"))?;
    if let Some(status) = response.get("statusCode").and_then(Value::as_u64) {
        if status >= 500 || (function == HELLO_WORLD && status != 200) {
            bail!("{function} answered {status}: {response}");
        }
        return Ok(status.to_string());
    }
    if let Some(authorized) = response.get("isAuthorized").and_then(Value::as_bool) {
        let role = response["context"]["role"].as_str().unwrap_or("none");
        return Ok(format!("authorized: {authorized} ({role})"));
    }
    if let Some(failures) = response.get("batchItemFailures").and_then(Value::as_array) {
        if !failures.is_empty() {
            bail!("{function} failed items of its batch: {response}");
        }
        return Ok("batch done".to_owned());
    }
    if let Some(examined) = response.get("examined").and_then(Value::as_u64) {
        return Ok(format!("{examined} due"));
    }
    bail!("{function} answered an unexpected payload: {response}")
}

// ---------------------------------------------------------------------------------------------
// The Runtime API, with timestamps

/// What a function posted for its invocation (or for its init).
#[derive(Debug)]
enum Answer {
    Response(Bytes),
    InvocationError(Bytes),
    InitError(Bytes),
}

/// What the emulator's endpoints share.
struct RuntimeState {
    function_arn: String,
    request_id: String,
    event: Bytes,
    /// When the function first asked for an event.
    first_poll: Mutex<Option<Instant>>,
    /// Where the answer goes, with when it arrived (taken by the first answer).
    answer: Mutex<Option<oneshot::Sender<(Instant, Answer)>>>,
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    // The data are plain values: a panic elsewhere cannot leave them half-written.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A Lambda Runtime API for exactly one invocation that notes when the function polls and when
/// it answers. `edgecert_integration::RuntimeApi` is the general emulator; this one exists for
/// its timestamps, taken as each request arrives rather than by polling a flag.
struct TimingRuntimeApi {
    addr: SocketAddr,
    state: Arc<RuntimeState>,
    answer: oneshot::Receiver<(Instant, Answer)>,
    server: JoinHandle<()>,
}

impl TimingRuntimeApi {
    async fn start(function_name: &str, event: Bytes) -> anyhow::Result<TimingRuntimeApi> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("binding the Runtime API emulator")?;
        let addr = listener.local_addr()?;
        let nanos = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos());
        let (sender, answer) = oneshot::channel();
        let state = Arc::new(RuntimeState {
            function_arn: format!("arn:aws:lambda:us-east-1:123456789012:function:{function_name}"),
            request_id: format!(
                "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
                (nanos >> 32) as u32,
                (nanos >> 16) as u16,
                (nanos & 0xfff) as u16,
                addr.port() & 0xfff,
                nanos & 0xffff_ffff_ffff
            ),
            event,
            first_poll: Mutex::new(None),
            answer: Mutex::new(Some(sender)),
        });
        let server = tokio::spawn(serve_runtime_api(listener, Arc::clone(&state)));
        Ok(TimingRuntimeApi {
            addr,
            state,
            answer,
            server,
        })
    }

    fn first_poll(&self) -> Option<Instant> {
        *lock(&self.state.first_poll)
    }

    /// The function's answer and when it arrived; fails if the process exits or takes longer
    /// than `timeout`.
    async fn wait_for_answer(
        &mut self,
        process: &mut Server,
        timeout: Duration,
    ) -> anyhow::Result<(Instant, Answer)> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            tokio::select! {
                answer = &mut self.answer => {
                    return answer.context("the Runtime API emulator stopped");
                }
                () = tokio::time::sleep(LIVENESS_INTERVAL) => {}
            }
            process.check_running()?;
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{} did not answer its first invocation within {timeout:?}",
                    process.name()
                );
            }
        }
    }
}

impl Drop for TimingRuntimeApi {
    fn drop(&mut self) {
        // The accept loop owns the connections' tasks: aborting it ends them too.
        self.server.abort();
    }
}

async fn serve_runtime_api(listener: TcpListener, state: Arc<RuntimeState>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((stream, _)) = accepted else { continue };
                let state = Arc::clone(&state);
                connections.spawn(async move {
                    let service = hyper::service::service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(runtime_api_route(&state, request).await) }
                    });
                    let _ = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await;
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn runtime_api_route(
    state: &RuntimeState,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let arrived = Instant::now();
    let path = request.uri().path().to_owned();
    let segments: Vec<&str> = path
        .strip_prefix("/2018-06-01/runtime/")
        .unwrap_or_default()
        .split('/')
        .collect();
    match (request.method(), segments.as_slice()) {
        (&Method::GET, ["invocation", "next"]) => {
            let first = {
                let mut first_poll = lock(&state.first_poll);
                let first = first_poll.is_none();
                first_poll.get_or_insert(arrived);
                first
            };
            if !first {
                // The one invocation is handed out: later polls wait until the process is
                // killed, as a frozen execution environment's would.
                std::future::pending::<()>().await;
            }
            next_invocation(state)
        }
        (&Method::POST, ["invocation", _, kind @ ("response" | "error")]) => {
            let is_response = *kind == "response";
            let body = match request.into_body().collect().await {
                Ok(collected) => collected.to_bytes(),
                Err(_) => return plain(StatusCode::BAD_REQUEST),
            };
            let answer = if is_response {
                Answer::Response(body)
            } else {
                Answer::InvocationError(body)
            };
            if let Some(sender) = lock(&state.answer).take() {
                let _ = sender.send((Instant::now(), answer));
            }
            plain(StatusCode::ACCEPTED)
        }
        (&Method::POST, ["init", "error"]) => {
            let body = request
                .into_body()
                .collect()
                .await
                .map(|collected| collected.to_bytes())
                .unwrap_or_default();
            if let Some(sender) = lock(&state.answer).take() {
                let _ = sender.send((Instant::now(), Answer::InitError(body)));
            }
            plain(StatusCode::ACCEPTED)
        }
        _ => plain(StatusCode::NOT_FOUND),
    }
}

/// The invocation with the headers the Lambda runtime reads.
fn next_invocation(state: &RuntimeState) -> Response<Full<Bytes>> {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let deadline_ms = (now + COLD_START_TIMEOUT).as_millis().to_string();
    let trace_id = format!(
        "Root=1-{:08x}-{};Parent=0000000000000001;Sampled=0",
        now.as_secs(),
        state.request_id.replace('-', "").get(..24).unwrap_or("0")
    );
    let mut response = Response::new(Full::new(state.event.clone()));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in [
        ("lambda-runtime-aws-request-id", state.request_id.as_str()),
        ("lambda-runtime-deadline-ms", deadline_ms.as_str()),
        (
            "lambda-runtime-invoked-function-arn",
            state.function_arn.as_str(),
        ),
        ("lambda-runtime-trace-id", trace_id.as_str()),
    ] {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.insert(name, value);
        }
    }
    response
}

fn plain(status: StatusCode) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::new()));
    *response.status_mut() = status;
    response
}

// ---------------------------------------------------------------------------------------------
// Moto, timed

/// One AWS call as the proxy saw it.
#[derive(Debug, Clone, Copy)]
struct MotoCall {
    /// When moto's answer began to arrive.
    answered_at: Instant,
    /// From the last byte of the request to the first byte of moto's answer.
    waited: Duration,
    /// Whether this is the proxy connecting to moto rather than a request: the function's first
    /// request on a connection waits for it, as it would for moto's accept without the proxy.
    is_connect: bool,
}

/// A TCP proxy in front of moto that notes how long each request waited for moto's answer.
/// HTTP/1.1 clients (the AWS SDK) send a request and wait for its answer before the next on
/// the same connection, so request and answer alternate on every connection.
struct MotoTap {
    addr: SocketAddr,
    calls: Arc<Mutex<Vec<MotoCall>>>,
    server: JoinHandle<()>,
}

impl MotoTap {
    async fn start(moto: SocketAddr) -> anyhow::Result<MotoTap> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("binding the proxy in front of moto")?;
        let addr = listener.local_addr()?;
        let calls = Arc::new(Mutex::new(Vec::new()));
        let server = tokio::spawn(serve_moto_tap(listener, moto, Arc::clone(&calls)));
        Ok(MotoTap {
            addr,
            calls,
            server,
        })
    }

    fn clear(&self) {
        lock(&self.calls).clear();
    }

    fn take(&self) -> Vec<MotoCall> {
        std::mem::take(&mut *lock(&self.calls))
    }
}

impl Drop for MotoTap {
    fn drop(&mut self) {
        self.server.abort();
    }
}

async fn serve_moto_tap(listener: TcpListener, moto: SocketAddr, calls: Arc<Mutex<Vec<MotoCall>>>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let Ok((client, _)) = accepted else { continue };
                connections.spawn(relay(client, moto, Arc::clone(&calls)));
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

/// Relays one connection both ways, noting each wait for moto.
async fn relay(client: TcpStream, moto: SocketAddr, calls: Arc<Mutex<Vec<MotoCall>>>) {
    let connecting = Instant::now();
    let Ok(upstream) = TcpStream::connect(moto).await else {
        return;
    };
    let connected = Instant::now();
    lock(&calls).push(MotoCall {
        answered_at: connected,
        waited: connected.saturating_duration_since(connecting),
        is_connect: true,
    });
    let _ = client.set_nodelay(true);
    let _ = upstream.set_nodelay(true);
    let (mut client_read, mut client_write) = client.into_split();
    let (mut moto_read, mut moto_write) = upstream.into_split();
    // When the latest request bytes arrived that moto has not started to answer yet.
    let unanswered: Arc<Mutex<Option<Instant>>> = Arc::new(Mutex::new(None));
    let requests = {
        let unanswered = Arc::clone(&unanswered);
        async move {
            let mut buffer = vec![0u8; 16 * 1024];
            loop {
                let read = client_read.read(&mut buffer).await?;
                if read == 0 {
                    return moto_write.shutdown().await;
                }
                *lock(&unanswered) = Some(Instant::now());
                moto_write.write_all(&buffer[..read]).await?;
            }
        }
    };
    let answers = async move {
        let mut buffer = vec![0u8; 16 * 1024];
        loop {
            let read = moto_read.read(&mut buffer).await?;
            if read == 0 {
                return client_write.shutdown().await;
            }
            let now = Instant::now();
            if let Some(sent) = lock(&unanswered).take() {
                lock(&calls).push(MotoCall {
                    answered_at: now,
                    waited: now.saturating_duration_since(sent),
                    is_connect: false,
                });
            }
            client_write.write_all(&buffer[..read]).await?;
        }
    };
    let _: (std::io::Result<()>, std::io::Result<()>) = tokio::join!(requests, answers);
}

// ---------------------------------------------------------------------------------------------
// Starting processes on the server core

/// Starts processes from a thread of its own pinned to one core. A child inherits the CPU
/// affinity of the thread that forks it, so the functions run on the server core while this
/// process stays on the load core, and no `taskset` exec is added to the measured start.
struct Spawner {
    requests: std::sync::mpsc::Sender<SpawnRequest>,
}

type SpawnReply = oneshot::Sender<std::io::Result<(Instant, Child)>>;

struct SpawnRequest {
    command: Command,
    reply: SpawnReply,
}

impl Spawner {
    fn start(core: usize) -> anyhow::Result<Spawner> {
        let (requests, incoming) = std::sync::mpsc::channel::<SpawnRequest>();
        let (ready_sender, ready) = std::sync::mpsc::channel();
        std::thread::Builder::new()
            .name("lambda-spawner".to_owned())
            .spawn(move || {
                let pinned = pin_current_thread(core);
                let failed = pinned.is_err();
                let _ = ready_sender.send(pinned);
                if failed {
                    return;
                }
                for mut request in incoming {
                    let started = Instant::now();
                    let spawned = request.command.spawn().map(|child| (started, child));
                    let _ = request.reply.send(spawned);
                }
            })
            .context("starting the spawner thread")?;
        ready
            .recv()
            .context("the spawner thread stopped")?
            .context("pinning the spawner thread")?;
        Ok(Spawner { requests })
    }

    /// Starts `command`; returns the child and the instant just before it was forked.
    async fn spawn(&self, command: Command) -> anyhow::Result<(Instant, Child)> {
        let program = command.get_program().to_string_lossy().into_owned();
        let (reply, spawned) = oneshot::channel();
        self.requests
            .send(SpawnRequest { command, reply })
            .ok()
            .context("the spawner thread stopped")?;
        spawned
            .await
            .context("the spawner thread stopped")?
            .with_context(|| format!("starting {program}"))
    }
}

/// Pins the calling thread (only) to `core`, through `taskset` on its thread id.
fn pin_current_thread(core: usize) -> anyhow::Result<()> {
    // `/proc/thread-self` links to `<pid>/task/<tid>`.
    let link = std::fs::read_link("/proc/thread-self").context("reading /proc/thread-self")?;
    let tid = link
        .file_name()
        .and_then(|name| name.to_str())
        .context("no thread id in /proc/thread-self")?
        .to_owned();
    let status = Command::new("taskset")
        .args(["-p", "-c", &core.to_string(), &tid])
        .stdout(Stdio::null())
        .status()
        .context("running taskset (util-linux)")?;
    if !status.success() {
        bail!("taskset could not pin thread {tid} to core {core}");
    }
    let allowed = std::fs::read_to_string("/proc/thread-self/status")?
        .lines()
        .find_map(|line| line.strip_prefix("Cpus_allowed_list:"))
        .map(|list| list.trim().to_owned())
        .unwrap_or_default();
    if allowed != core.to_string() {
        bail!("thread {tid} runs on cores {allowed}, not {core}");
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Statistics and the report

/// One binary's figures over all rounds.
#[derive(Debug, Clone)]
struct Stats {
    label: String,
    /// The as-deployed row an experiment is compared with.
    baseline: Option<&'static str>,
    size_bytes: u64,
    init_p50: Duration,
    response_p50: Duration,
    response_p90: Duration,
    moto_wait_p50: Duration,
    moto_calls: usize,
    own_p50: Duration,
    answers: String,
}

impl Stats {
    fn of(subject: &Subject<'_>, samples: &mut [ColdStart]) -> anyhow::Result<Stats> {
        if samples.is_empty() {
            bail!("no cold start of {} was measured", subject.label);
        }
        let pick = |field: fn(&ColdStart) -> Duration| {
            let mut values: Vec<Duration> = samples.iter().map(field).collect();
            (quantile(&mut values, 0.5), quantile(&mut values, 0.9))
        };
        let (init_p50, _) = pick(|sample| sample.init);
        let (response_p50, response_p90) = pick(|sample| sample.response);
        let (moto_wait_p50, _) = pick(|sample| sample.moto_wait);
        let (own_p50, _) = pick(|sample| sample.response.saturating_sub(sample.moto_wait));
        let answers: BTreeSet<&str> = samples
            .iter()
            .map(|sample| sample.answer.as_str())
            .collect();
        let mut calls: Vec<usize> = samples.iter().map(|sample| sample.moto_calls).collect();
        calls.sort_unstable();
        Ok(Stats {
            label: subject.label.clone(),
            baseline: subject.baseline,
            size_bytes: subject.binary.size_bytes,
            init_p50,
            response_p50,
            response_p90,
            moto_wait_p50,
            moto_calls: calls[calls.len() / 2],
            own_p50,
            answers: answers.into_iter().collect::<Vec<_>>().join(", "),
        })
    }

    fn ratio(&self, hello: &Stats) -> f64 {
        self.response_p50.as_secs_f64() / hello.response_p50.as_secs_f64().max(f64::EPSILON)
    }

    fn own_ratio(&self, hello: &Stats) -> f64 {
        self.own_p50.as_secs_f64() / hello.response_p50.as_secs_f64().max(f64::EPSILON)
    }
}

/// Milliseconds with two decimals: hello-world starts in a few milliseconds.
fn ms(duration: Duration) -> String {
    format!("{:.2} ms", duration.as_secs_f64() * 1000.0)
}

fn mib(bytes: u64) -> String {
    format!(
        "{:.1} MiB ({} B)",
        bytes as f64 / (1024.0 * 1024.0),
        whole(bytes as f64)
    )
}

fn cold_start_table(hello: &Stats, rows: &[Stats], rounds: usize) -> Table {
    let mut table = Table::new(
        &format!("Cold start to first response, {rounds} per binary (p50 unless marked)"),
        &[
            "Binary",
            "First answer",
            "Init (start → first poll)",
            "First response",
            "First response p90",
            "vs hello-world",
            "Moto wait (calls)",
            "Response − moto",
            "vs hello-world",
            "Binary size",
            "Size vs hello-world",
        ],
    );
    for stats in std::iter::once(hello).chain(rows) {
        table.row(vec![
            stats.label.clone(),
            stats.answers.clone(),
            ms(stats.init_p50),
            ms(stats.response_p50),
            ms(stats.response_p90),
            format!("{:.2}x", stats.ratio(hello)),
            format!("{} ({})", ms(stats.moto_wait_p50), stats.moto_calls),
            ms(stats.own_p50),
            format!("{:.2}x", stats.own_ratio(hello)),
            mib(stats.size_bytes),
            ratio(stats.size_bytes as f64, hello.size_bytes as f64),
        ]);
    }
    table
}

fn median_of(values: &mut [f64]) -> f64 {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied().unwrap_or(0.0)
}

fn summary_table(hello: &Stats, rows: &[Stats]) -> Table {
    let mut table = Table::new(
        &format!("Against the target (first response <= {TARGET_RATIO:.0}x hello-world's, p50)"),
        &[
            "Measure",
            "hello-world",
            "Functions (median)",
            "Worst function",
            "Within target",
        ],
    );
    let mut line = |measure: &str, hello_value: Duration, value: fn(&Stats) -> Duration| {
        let mut ratios: Vec<f64> = rows
            .iter()
            .map(|stats| value(stats).as_secs_f64() / hello_value.as_secs_f64().max(f64::EPSILON))
            .collect();
        let worst =
            rows.iter()
                .max_by_key(|stats| value(stats))
                .map_or_else(String::new, |stats| {
                    format!(
                        "{}: {} ({})",
                        stats.label,
                        ms(value(stats)),
                        ratio(value(stats).as_secs_f64(), hello_value.as_secs_f64())
                    )
                });
        let within = ratios
            .iter()
            .filter(|ratio| **ratio <= TARGET_RATIO)
            .count();
        let mut values: Vec<f64> = rows
            .iter()
            .map(|stats| value(stats).as_secs_f64())
            .collect();
        table.row(vec![
            measure.to_owned(),
            ms(hello_value),
            format!(
                "{} ({:.2}x)",
                ms(Duration::from_secs_f64(median_of(&mut values))),
                median_of(&mut ratios)
            ),
            worst,
            format!("{within} of {}", rows.len()),
        ]);
    };
    line("Init (start → first poll)", hello.init_p50, |stats| {
        stats.init_p50
    });
    line("First response", hello.response_p50, |stats| {
        stats.response_p50
    });
    line("First response − moto wait", hello.response_p50, |stats| {
        stats.own_p50
    });
    table
}

/// The root-loading experiments, each under the as-deployed row of its binary.
fn experiment_table(hello: &Stats, rows: &[Stats], experiments: &[Stats]) -> Table {
    let mut table = Table::new(
        "Experiment: what loading the system's root certificates costs at init (p50)",
        &[
            "Binary, SSL_CERT_FILE",
            "Init (start → first poll)",
            "Init saved",
            "First response",
            "vs hello-world",
        ],
    );
    let mut baselines: Vec<&'static str> = Vec::new();
    for experiment in experiments {
        if let Some(baseline) = experiment.baseline {
            if !baselines.contains(&baseline) {
                baselines.push(baseline);
            }
        }
    }
    for baseline in baselines {
        let Some(deployed) = rows.iter().find(|row| row.label == format!("`{baseline}`")) else {
            continue;
        };
        let variants = experiments
            .iter()
            .filter(|experiment| experiment.baseline == Some(baseline));
        for stats in std::iter::once(deployed).chain(variants) {
            let (label, saved) = if std::ptr::eq(stats, deployed) {
                (
                    format!("{}, unset (as deployed)", stats.label),
                    "-".to_owned(),
                )
            } else {
                let saved = deployed.init_p50.saturating_sub(stats.init_p50);
                (stats.label.clone(), ms(saved))
            };
            table.row(vec![
                label,
                ms(stats.init_p50),
                saved,
                ms(stats.response_p50),
                format!("{:.2}x", stats.ratio(hello)),
            ]);
        }
    }
    table
}

fn notes(
    hello: &Stats,
    rows: &[Stats],
    experiments: &[Stats],
    rounds: usize,
    warm_up: bool,
) -> Vec<String> {
    let within = rows
        .iter()
        .filter(|stats| stats.ratio(hello) <= TARGET_RATIO)
        .count();
    let own_within = rows
        .iter()
        .filter(|stats| stats.own_ratio(hello) <= TARGET_RATIO)
        .count();
    let mut notes = vec![
        format!(
            "Method: each binary is started {rounds} times as a fresh process ({}rounds \
             interleave the binaries), pinned to core {SERVER_CORE}, with only the environment \
             Lambda and template.yaml give it; the emulator, moto (behind a recording proxy), \
             Pebble and challtestsrv run on core {LOAD_CORE}. Start = just before fork/exec; \
             init = the runtime's first `GET …/invocation/next`; first response = the \
             function's `POST …/response` received. The first invocation is the function's \
             event from `events/` with its placeholder ids, which name nothing in the table: \
             most routes answer 404 after one DynamoDB read, the authorizer finds no key \
             (anonymous), accounts-create creates an account, the issuer finds no certificate, \
             the renewer nothing due; domains-create checks the origin through challtestsrv's \
             DNS first. Hello-world (`src/bin/hello-lambda.rs`, built in the same profile) \
             answers 200 to events/limits-get.json. Moto wait = the proxy's connection to moto \
             plus, for each AWS call (counted in brackets), the time from the request's last \
             byte to the first byte of moto's answer: moto is a Python server, much slower than \
             DynamoDB, so `Response − moto` is the fairer comparison. Sizes are of the binaries as built (release profile: symbols kept).",
            if warm_up {
                "after one unmeasured start of every binary to warm the page cache; "
            } else {
                ""
            }
        ),
        format!(
            "Target (issue #8): first response <= {TARGET_RATIO:.0}x hello-world's. Met by \
             {within} of {} functions including moto's time, and by {own_within} of {} with \
             moto's time taken out.",
            rows.len(),
            rows.len()
        ),
    ];
    if within < rows.len() {
        notes.push(breakdown(hello, rows, experiments));
    }
    notes
}

/// Where the functions' time goes beyond hello-world's, from the medians of the tables.
fn breakdown(hello: &Stats, rows: &[Stats], experiments: &[Stats]) -> String {
    let median = |value: fn(&Stats) -> Duration| {
        let mut values: Vec<f64> = rows
            .iter()
            .map(|stats| value(stats).as_secs_f64())
            .collect();
        Duration::from_secs_f64(median_of(&mut values))
    };
    let init = median(|stats| stats.init_p50);
    let response = median(|stats| stats.response_p50);
    let moto = median(|stats| stats.moto_wait_p50);
    let invocation = median(|stats| {
        stats
            .response_p50
            .saturating_sub(stats.init_p50)
            .saturating_sub(stats.moto_wait_p50)
    });
    let hello_invocation = hello.response_p50.saturating_sub(hello.init_p50);
    let mut text = format!(
        "Where the time goes (medians over the functions, hello-world's in brackets): first \
         response {} ({}) = init {} ({}) + waiting on moto {} + the function's own part of \
         the first invocation {} ({}).",
        ms(response),
        ms(hello.response_p50),
        ms(init),
        ms(hello.init_p50),
        ms(moto),
        ms(invocation),
        ms(hello_invocation),
    );
    for experiment in experiments {
        let deployed = experiment
            .baseline
            .and_then(|name| rows.iter().find(|row| row.label == format!("`{name}`")));
        if let Some(deployed) = deployed {
            text.push_str(&format!(
                " With {}, init is {} shorter ({} → {}).",
                experiment.label,
                ms(deployed.init_p50.saturating_sub(experiment.init_p50)),
                ms(deployed.init_p50),
                ms(experiment.init_p50)
            ));
        }
    }
    text
}

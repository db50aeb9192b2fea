//! Lambda binaries run for real in tests: a minimal emulator of the AWS Lambda Runtime API
//! ([`RuntimeApi`]) and a child process running a Lambda binary against it ([`LambdaProcess`]).
//!
//! A Lambda binary built on `lambda_runtime` does not read its events from a socket of its own:
//! it asks the Runtime API at `AWS_LAMBDA_RUNTIME_API` for the next invocation
//! (`GET /2018-06-01/runtime/invocation/next`, a long poll), runs its handler and posts the
//! outcome back (`POST …/invocation/{id}/response` or `…/error`); a failed initialisation may be
//! posted to `…/init/error`. The emulator serves exactly those endpoints on 127.0.0.1, queues
//! the events a test hands to [`RuntimeApi::invoke`] and returns what the function answered,
//! so a test exercises the binary (its `main`, configuration, SDK clients and runtime loop) and
//! not only its handler function.
//!
//! One emulator serves one function process, as in Lambda each execution environment has its
//! own Runtime API. [`LambdaProcess`] pairs the two: it starts the binary with the environment
//! Lambda gives a function (and nothing else from the test's environment), waits until the
//! runtime polls for its first event, and reports a binary that fails to initialise — exits
//! early or posts an init error — with the tail of its output.

use std::collections::{HashMap, VecDeque};
use std::convert::Infallible;
use std::fmt;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, Limited};
use hyper::body::Incoming;
use hyper::header::{CONTENT_TYPE, HeaderValue};
use hyper::service::service_fn;
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::{Notify, oneshot};
use tokio::task::{JoinHandle, JoinSet};

use crate::services::ServiceProcess;

/// How long an invocation may take by default: API Gateway's integration limit.
pub const DEFAULT_INVOCATION_TIMEOUT: Duration = Duration::from_secs(30);

/// How long a function may take from its start to its first poll for an event. Generous: the
/// binaries start in milliseconds, but tests run next to compilers on small machines.
pub const INIT_TIMEOUT: Duration = Duration::from_secs(30);

/// The largest request or response payload Lambda accepts (synchronous invocations).
const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;

/// Path prefix of every Runtime API endpoint.
const API_PREFIX: &str = "/2018-06-01/runtime";

/// How often a waiting [`LambdaProcess`] checks that its process is still alive.
const LIVENESS_INTERVAL: Duration = Duration::from_millis(20);

/// Region and account of the emulated functions' ARNs.
const REGION: &str = "us-east-1";
const ACCOUNT_ID: &str = "123456789012";

/// The Runtime API's headers on an invocation.
mod headers {
    pub const REQUEST_ID: &str = "lambda-runtime-aws-request-id";
    pub const DEADLINE_MS: &str = "lambda-runtime-deadline-ms";
    pub const INVOKED_FUNCTION_ARN: &str = "lambda-runtime-invoked-function-arn";
    pub const TRACE_ID: &str = "lambda-runtime-trace-id";
    pub const FUNCTION_ERROR_TYPE: &str = "lambda-runtime-function-error-type";
}

/// What a function answered to one invocation.
#[derive(Debug, Clone, PartialEq)]
pub enum InvocationResult {
    /// The function's response payload (`…/response`), parsed as JSON.
    Response(Value),
    /// The function reported that the invocation failed (`…/error`).
    Error(FunctionError),
}

impl InvocationResult {
    /// The response payload, or the function's error as an `Err`.
    pub fn into_response(self) -> anyhow::Result<Value> {
        match self {
            InvocationResult::Response(value) => Ok(value),
            InvocationResult::Error(error) => Err(error.into()),
        }
    }
}

/// An error a function posted to the Runtime API (an invocation error or an init error).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionError {
    /// `errorType` of the posted body, else the `Lambda-Runtime-Function-Error-Type` header.
    pub error_type: String,
    /// `errorMessage` of the posted body, else the body as text.
    pub error_message: String,
}

impl FunctionError {
    /// Reads a posted error: `{"errorType", "errorMessage"}` as `lambda_runtime` sends it, or
    /// anything else kept as text.
    fn read(header: Option<&HeaderValue>, body: &[u8]) -> FunctionError {
        let header = header
            .and_then(|value| value.to_str().ok())
            .unwrap_or("Unknown")
            .to_owned();
        let parsed: Option<Value> = serde_json::from_slice(body).ok();
        let field = |name: &str| {
            parsed
                .as_ref()
                .and_then(|value| value.get(name))
                .and_then(Value::as_str)
                .map(str::to_owned)
        };
        FunctionError {
            error_type: field("errorType").unwrap_or(header),
            error_message: field("errorMessage")
                .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned()),
        }
    }
}

impl fmt::Display for FunctionError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error_type, self.error_message)
    }
}

impl std::error::Error for FunctionError {}

/// A function that did not get as far as asking for its first event.
#[derive(Debug, Clone)]
pub struct InitError {
    /// The function's name.
    pub function: String,
    /// What happened: how the process exited, or that it posted an init error.
    pub reason: String,
    /// The error it posted to `/init/error`, if it did.
    pub reported: Option<FunctionError>,
    /// The last lines of its output (stdout and stderr interleaved, as Lambda's log stream
    /// holds them). A Rust binary whose `main` returns an error prints it last, on stderr.
    pub output_tail: String,
}

impl fmt::Display for InitError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} failed to initialise: {}", self.function, self.reason)?;
        if let Some(reported) = &self.reported {
            write!(f, "; it reported {reported}")?;
        }
        write!(
            f,
            "\n--- last lines of its output ---\n{}",
            self.output_tail
        )
    }
}

impl std::error::Error for InitError {}

/// One queued invocation.
struct Invocation {
    request_id: String,
    timeout: Duration,
    payload: Bytes,
}

/// What the emulator's endpoints share.
struct State {
    function_arn: String,
    /// Invocations not yet handed to the function, oldest first.
    queue: Mutex<VecDeque<Invocation>>,
    /// Wakes a long poll when an invocation is queued.
    queued: Notify,
    /// Where each handed-out or queued invocation's outcome goes, by request id.
    waiting: Mutex<HashMap<String, oneshot::Sender<InvocationResult>>>,
    /// Whether the function has asked for an event at least once (its init is done).
    polled: AtomicBool,
    /// Errors posted to `/init/error`.
    init_errors: Mutex<Vec<FunctionError>>,
    /// Request ids are `<seed>-<counter>` shaped like UUIDs.
    seed: u64,
    next_request: AtomicU64,
}

impl State {
    fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
        // A panic cannot leave these collections half-updated: keep going.
        mutex.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn new_request_id(&self) -> String {
        let counter = self.next_request.fetch_add(1, Ordering::Relaxed);
        format!(
            "{:08x}-{:04x}-4{:03x}-8{:03x}-{:012x}",
            (self.seed >> 32) as u32,
            (self.seed >> 16) as u16,
            self.seed & 0xfff,
            (self.seed >> 12) & 0xfff,
            counter
        )
    }

    /// The next invocation whose caller still waits for it (a timed-out one is dropped).
    fn take_next(&self) -> Option<Invocation> {
        let mut queue = Self::lock(&self.queue);
        let waiting = Self::lock(&self.waiting);
        while let Some(invocation) = queue.pop_front() {
            if waiting.contains_key(&invocation.request_id) {
                return Some(invocation);
            }
        }
        None
    }

    fn complete(&self, request_id: &str, result: InvocationResult) -> bool {
        match Self::lock(&self.waiting).remove(request_id) {
            Some(sender) => {
                // The caller may have stopped waiting (timeout): nothing to do then.
                let _ = sender.send(result);
                true
            }
            None => false,
        }
    }
}

/// An emulated Lambda Runtime API on `127.0.0.1:<free port>`, for one function. It stops when
/// dropped.
pub struct RuntimeApi {
    addr: SocketAddr,
    function_name: String,
    state: Arc<State>,
    server: JoinHandle<()>,
}

impl fmt::Debug for RuntimeApi {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeApi")
            .field("addr", &self.addr)
            .field("function_name", &self.function_name)
            .finish_non_exhaustive()
    }
}

/// An invocation handed to the emulator, whose outcome is still to come. Dropping it withdraws
/// the invocation (a function that answers later gets `400`).
struct PendingInvocation {
    request_id: String,
    outcome: oneshot::Receiver<InvocationResult>,
    state: Arc<State>,
}

impl Drop for PendingInvocation {
    fn drop(&mut self) {
        State::lock(&self.state.waiting).remove(&self.request_id);
    }
}

impl RuntimeApi {
    /// Listens on a free port of 127.0.0.1 for the function `function_name` (which names its
    /// ARN in the invocations' headers).
    pub async fn start(function_name: &str) -> anyhow::Result<RuntimeApi> {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0))
            .await
            .context("binding the Lambda Runtime API emulator on 127.0.0.1")?;
        let addr = listener
            .local_addr()
            .context("reading the Runtime API emulator's address")?;
        let seed = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |elapsed| elapsed.as_nanos() as u64)
            ^ u64::from(addr.port()) << 48;
        let state = Arc::new(State {
            function_arn: format!("arn:aws:lambda:{REGION}:{ACCOUNT_ID}:function:{function_name}"),
            queue: Mutex::new(VecDeque::new()),
            queued: Notify::new(),
            waiting: Mutex::new(HashMap::new()),
            polled: AtomicBool::new(false),
            init_errors: Mutex::new(Vec::new()),
            seed,
            next_request: AtomicU64::new(1),
        });
        let server = tokio::spawn(serve(listener, Arc::clone(&state)));
        Ok(RuntimeApi {
            addr,
            function_name: function_name.to_owned(),
            state,
            server,
        })
    }

    /// Where it listens: the value of `AWS_LAMBDA_RUNTIME_API` (`127.0.0.1:<port>`).
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The emulated function's ARN, sent with every invocation.
    pub fn function_arn(&self) -> &str {
        &self.state.function_arn
    }

    /// Whether the function has asked for an event yet, i.e. finished its initialisation.
    pub fn initialized(&self) -> bool {
        self.state.polled.load(Ordering::SeqCst)
    }

    /// Errors the function posted to `/init/error`.
    pub fn init_errors(&self) -> Vec<FunctionError> {
        State::lock(&self.state.init_errors).clone()
    }

    /// Invokes the function with `event` and waits, at most [`DEFAULT_INVOCATION_TIMEOUT`],
    /// for its response or error.
    pub async fn invoke(&self, event: &Value) -> anyhow::Result<InvocationResult> {
        self.invoke_with_timeout(event, DEFAULT_INVOCATION_TIMEOUT)
            .await
    }

    /// Invokes the function with `event` and waits at most `timeout` (also the deadline the
    /// function is told) for its response or error.
    pub async fn invoke_with_timeout(
        &self,
        event: &Value,
        timeout: Duration,
    ) -> anyhow::Result<InvocationResult> {
        let pending = self.enqueue(event, timeout)?;
        let request_id = pending.request_id.clone();
        match tokio::time::timeout(timeout, wait(pending)).await {
            Ok(result) => result,
            Err(_) => bail!(
                "{} did not answer invocation {request_id} within {timeout:?}",
                self.function_name
            ),
        }
    }

    /// Queues `event` for the function.
    fn enqueue(&self, event: &Value, timeout: Duration) -> anyhow::Result<PendingInvocation> {
        let payload = Bytes::from(serde_json::to_vec(event).context("serialising the event")?);
        if payload.len() > MAX_PAYLOAD_BYTES {
            bail!(
                "the event has {} bytes; Lambda accepts at most {MAX_PAYLOAD_BYTES}",
                payload.len()
            );
        }
        let request_id = self.state.new_request_id();
        let (sender, outcome) = oneshot::channel();
        State::lock(&self.state.waiting).insert(request_id.clone(), sender);
        State::lock(&self.state.queue).push_back(Invocation {
            request_id: request_id.clone(),
            timeout,
            payload,
        });
        self.state.queued.notify_one();
        Ok(PendingInvocation {
            request_id,
            outcome,
            state: Arc::clone(&self.state),
        })
    }
}

impl Drop for RuntimeApi {
    fn drop(&mut self) {
        // The accept loop owns the connections' tasks: aborting it ends them too.
        self.server.abort();
    }
}

/// The outcome of `pending`, however long it takes.
async fn wait(mut pending: PendingInvocation) -> anyhow::Result<InvocationResult> {
    (&mut pending.outcome)
        .await
        .context("the Runtime API emulator stopped before the function answered")
}

async fn serve(listener: TcpListener, state: Arc<State>) {
    let mut connections = JoinSet::new();
    loop {
        tokio::select! {
            accepted = listener.accept() => {
                let stream = match accepted {
                    Ok((stream, _)) => stream,
                    Err(error) => {
                        tracing::warn!(%error, "Runtime API emulator could not accept a connection");
                        tokio::time::sleep(Duration::from_millis(10)).await;
                        continue;
                    }
                };
                let state = Arc::clone(&state);
                connections.spawn(async move {
                    let service = service_fn(move |request| {
                        let state = Arc::clone(&state);
                        async move { Ok::<_, Infallible>(route(&state, request).await) }
                    });
                    if let Err(error) = hyper::server::conn::http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .await
                    {
                        tracing::debug!(%error, "Runtime API connection ended with an error");
                    }
                });
            }
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
        }
    }
}

async fn route(state: &State, request: Request<Incoming>) -> Response<Full<Bytes>> {
    let path = request.uri().path().to_owned();
    let Some(endpoint) = path.strip_prefix(API_PREFIX) else {
        return not_found(&path);
    };
    let segments: Vec<&str> = endpoint.trim_start_matches('/').split('/').collect();
    let method = request.method().clone();
    match (&method, segments.as_slice()) {
        (&Method::GET, ["invocation", "next"]) => next_invocation(state).await,
        (&Method::POST, ["invocation", request_id, "response"]) => {
            let request_id = (*request_id).to_owned();
            let body = match read_body(request).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            let result = match serde_json::from_slice(&body) {
                Ok(value) => InvocationResult::Response(value),
                // The Rust runtime always answers JSON; anything else is reported as an error
                // so a test sees it instead of a parse failure of its own.
                Err(error) => InvocationResult::Error(FunctionError {
                    error_type: "Emulator.InvalidResponse".to_owned(),
                    error_message: format!(
                        "the response is not JSON ({error}): {}",
                        String::from_utf8_lossy(&body)
                    ),
                }),
            };
            completed(state, &request_id, result)
        }
        (&Method::POST, ["invocation", request_id, "error"]) => {
            let request_id = (*request_id).to_owned();
            let header = request.headers().get(headers::FUNCTION_ERROR_TYPE).cloned();
            let body = match read_body(request).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            let error = FunctionError::read(header.as_ref(), &body);
            completed(state, &request_id, InvocationResult::Error(error))
        }
        (&Method::POST, ["init", "error"]) => {
            let header = request.headers().get(headers::FUNCTION_ERROR_TYPE).cloned();
            let body = match read_body(request).await {
                Ok(body) => body,
                Err(response) => return response,
            };
            let error = FunctionError::read(header.as_ref(), &body);
            tracing::debug!(%error, "function posted an init error");
            State::lock(&state.init_errors).push(error);
            accepted()
        }
        _ => not_found(&path),
    }
}

/// The long poll: waits for the next queued invocation and hands it out with its headers.
async fn next_invocation(state: &State) -> Response<Full<Bytes>> {
    state.polled.store(true, Ordering::SeqCst);
    let invocation = loop {
        // Registered before looking, so a notification between the look and the wait is kept.
        let notified = state.queued.notified();
        if let Some(invocation) = state.take_next() {
            break invocation;
        }
        notified.await;
    };
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let deadline_ms = (now + invocation.timeout).as_millis();
    let trace_id = format!(
        "Root=1-{:08x}-{:024x};Parent={:016x};Sampled=0",
        now.as_secs(),
        u128::from(state.seed) << 32 | u128::from(state.next_request.load(Ordering::Relaxed)),
        state.seed ^ now.subsec_nanos() as u64
    );
    let mut response = Response::new(Full::new(invocation.payload));
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    for (name, value) in [
        (headers::REQUEST_ID, invocation.request_id),
        (headers::DEADLINE_MS, deadline_ms.to_string()),
        (headers::INVOKED_FUNCTION_ARN, state.function_arn.clone()),
        (headers::TRACE_ID, trace_id),
    ] {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(name, value);
        }
    }
    response
}

async fn read_body(request: Request<Incoming>) -> Result<Bytes, Response<Full<Bytes>>> {
    match Limited::new(request.into_body(), MAX_PAYLOAD_BYTES)
        .collect()
        .await
    {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) => Err(json_response(
            StatusCode::PAYLOAD_TOO_LARGE,
            &json!({ "errorType": "RequestEntityTooLarge", "errorMessage": error.to_string() }),
        )),
    }
}

fn completed(state: &State, request_id: &str, result: InvocationResult) -> Response<Full<Bytes>> {
    if state.complete(request_id, result) {
        accepted()
    } else {
        json_response(
            StatusCode::BAD_REQUEST,
            &json!({
                "errorType": "InvalidRequestID",
                "errorMessage": format!("no invocation {request_id} is waiting for an answer"),
            }),
        )
    }
}

fn accepted() -> Response<Full<Bytes>> {
    json_response(StatusCode::ACCEPTED, &json!({ "status": "OK" }))
}

fn not_found(path: &str) -> Response<Full<Bytes>> {
    json_response(
        StatusCode::NOT_FOUND,
        &json!({ "errorType": "NotFound", "errorMessage": format!("no endpoint {path}") }),
    )
}

fn json_response(status: StatusCode, body: &Value) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body.to_string())));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

/// The environment Lambda gives every function, for `function_name` served by the Runtime API
/// at `runtime_api`: `AWS_LAMBDA_RUNTIME_API`, the function's name, memory size and version,
/// its log group and stream, and the region.
pub fn lambda_environment(function_name: &str, runtime_api: SocketAddr) -> Vec<(String, String)> {
    [
        ("AWS_LAMBDA_RUNTIME_API", runtime_api.to_string()),
        ("AWS_LAMBDA_FUNCTION_NAME", function_name.to_owned()),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256".to_owned()),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST".to_owned()),
        (
            "AWS_LAMBDA_LOG_GROUP_NAME",
            format!("/aws/lambda/{function_name}"),
        ),
        (
            "AWS_LAMBDA_LOG_STREAM_NAME",
            format!("2025/01/01/[$LATEST]{:032x}", runtime_api.port()),
        ),
        ("AWS_REGION", REGION.to_owned()),
        ("AWS_DEFAULT_REGION", REGION.to_owned()),
    ]
    .into_iter()
    .map(|(name, value)| (name.to_owned(), value))
    .collect()
}

/// Variables passed on from the test's own environment, for debugging only.
const PASSED_THROUGH: [&str; 2] = ["RUST_LOG", "RUST_BACKTRACE"];

/// A Lambda binary running as a child process against its own [`RuntimeApi`]. The process is
/// stopped when this is dropped.
#[derive(Debug)]
pub struct LambdaProcess {
    // Declared first: the process stops before its Runtime API and its directory go.
    process: ServiceProcess,
    runtime: RuntimeApi,
    function_name: String,
    /// Holds the process's output log.
    _work_dir: tempfile::TempDir,
}

impl LambdaProcess {
    /// Starts `binary` as the function `function_name` and waits (at most [`INIT_TIMEOUT`])
    /// until it polls for its first event.
    ///
    /// Its environment is [`lambda_environment`], then `env` (the AWS endpoint and
    /// credentials, e.g. [`Moto::aws_env`](crate::Moto::aws_env), and the function's own
    /// variables; a name given twice takes the later value), and nothing else: none of the
    /// test's variables leak in, but for `RUST_LOG` and `RUST_BACKTRACE`.
    ///
    /// A function that exits or posts an init error before polling fails with an
    /// [`InitError`] (reachable with `downcast_ref`) holding the tail of its output.
    pub async fn start(
        function_name: &str,
        binary: &Path,
        env: &[(String, String)],
    ) -> anyhow::Result<LambdaProcess> {
        if !binary.is_file() {
            bail!(
                "the Lambda binary {} of {function_name} does not exist (is it built?)",
                binary.display()
            );
        }
        let runtime = RuntimeApi::start(function_name).await?;
        let work_dir = tempfile::Builder::new()
            .prefix(&format!("edgecert-lambda-{function_name}-"))
            .tempdir()
            .context("creating the Lambda process's work directory")?;

        let mut variables = lambda_environment(function_name, runtime.addr());
        let passed = PASSED_THROUGH.iter().filter_map(|name| {
            std::env::var(name)
                .ok()
                .map(|value| ((*name).to_owned(), value))
        });
        for (name, value) in passed.chain(env.iter().cloned()) {
            variables.retain(|(existing, _)| *existing != name);
            variables.push((name, value));
        }
        // `env -i` starts the binary with exactly these variables, as Lambda would.
        let mut args: Vec<String> = vec!["-i".to_owned()];
        args.extend(
            variables
                .iter()
                .map(|(name, value)| format!("{name}={value}")),
        );
        args.push(binary.display().to_string());
        let process =
            ServiceProcess::spawn(function_name, Path::new("env"), &args, &[], work_dir.path())?;
        let mut lambda = LambdaProcess {
            process,
            runtime,
            function_name: function_name.to_owned(),
            _work_dir: work_dir,
        };
        lambda.wait_for_init().await?;
        tracing::debug!(
            function = %lambda.function_name,
            pid = lambda.process.pid(),
            runtime_api = %lambda.runtime.addr(),
            "Lambda function initialised"
        );
        Ok(lambda)
    }

    /// Waits until the function polls for an event, failing with an [`InitError`] if it exits
    /// or posts an init error first.
    async fn wait_for_init(&mut self) -> anyhow::Result<()> {
        let started = Instant::now();
        loop {
            let reported = self.runtime.init_errors().into_iter().next();
            if let Some(reported) = reported {
                return Err(self
                    .init_error("it posted an init error", Some(reported))
                    .into());
            }
            if let Err(exited) = self.process.ensure_running() {
                // The runtime may have posted its error just before exiting.
                let reported = self.runtime.init_errors().into_iter().next();
                let reason = format!("{exited:#}");
                let reason = reason.lines().next().unwrap_or("it exited").to_owned();
                return Err(self.init_error(&reason, reported).into());
            }
            if self.runtime.initialized() {
                return Ok(());
            }
            if started.elapsed() >= INIT_TIMEOUT {
                return Err(self
                    .init_error(
                        &format!("it did not poll for an event within {INIT_TIMEOUT:?}"),
                        None,
                    )
                    .into());
            }
            tokio::time::sleep(LIVENESS_INTERVAL).await;
        }
    }

    fn init_error(&self, reason: &str, reported: Option<FunctionError>) -> InitError {
        InitError {
            function: self.function_name.clone(),
            reason: reason.to_owned(),
            reported,
            output_tail: self.process.log_tail(),
        }
    }

    /// The function's name.
    pub fn function_name(&self) -> &str {
        &self.function_name
    }

    /// The pid of the function's process.
    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// The function's Runtime API.
    pub fn runtime_api(&self) -> &RuntimeApi {
        &self.runtime
    }

    /// The last lines of the function's output (stdout and stderr).
    pub fn output_tail(&self) -> String {
        self.process.log_tail()
    }

    /// Invokes the function with `event`, waiting at most [`DEFAULT_INVOCATION_TIMEOUT`].
    pub async fn invoke(&mut self, event: &Value) -> anyhow::Result<InvocationResult> {
        self.invoke_with_timeout(event, DEFAULT_INVOCATION_TIMEOUT)
            .await
    }

    /// Invokes the function with `event`, waiting at most `timeout` for its answer. Fails, with
    /// the function's output tail, if the process exits or does not answer in time.
    pub async fn invoke_with_timeout(
        &mut self,
        event: &Value,
        timeout: Duration,
    ) -> anyhow::Result<InvocationResult> {
        let mut pending = self.runtime.enqueue(event, timeout)?;
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            tokio::select! {
                outcome = &mut pending.outcome => {
                    return outcome.context("the Runtime API emulator stopped before the function answered");
                }
                () = tokio::time::sleep(LIVENESS_INTERVAL) => {}
            }
            if let Err(exited) = self.process.ensure_running() {
                return Err(exited.context(format!(
                    "{} exited during invocation {}",
                    self.function_name, pending.request_id
                )));
            }
            if tokio::time::Instant::now() >= deadline {
                bail!(
                    "{} did not answer invocation {} within {timeout:?}\n--- last lines of its output ---\n{}",
                    self.function_name,
                    pending.request_id,
                    self.output_tail()
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn client() -> reqwest::Client {
        crate::http_client(&[]).unwrap()
    }

    #[tokio::test]
    async fn events_are_handed_out_with_their_headers_and_answers_returned() {
        let api = RuntimeApi::start("echo").await.unwrap();
        assert!(!api.initialized());
        let client = client();
        let base = format!("http://{}/2018-06-01/runtime", api.addr());

        let function = {
            let (client, base) = (client.clone(), base.clone());
            let api_addr = api.addr();
            tokio::spawn(async move {
                // Answer two events: the first with a response, the second with an error.
                for answer in ["response", "error"] {
                    let next = client
                        .get(format!(
                            "http://{api_addr}/2018-06-01/runtime/invocation/next"
                        ))
                        .send()
                        .await
                        .unwrap();
                    assert_eq!(next.status(), 200);
                    let header = |name: &str| {
                        next.headers()
                            .get(name)
                            .unwrap_or_else(|| panic!("{name} is missing"))
                            .to_str()
                            .unwrap()
                            .to_owned()
                    };
                    let id = header("Lambda-Runtime-Aws-Request-Id");
                    let deadline: u128 = header("Lambda-Runtime-Deadline-Ms").parse().unwrap();
                    let now = SystemTime::now()
                        .duration_since(UNIX_EPOCH)
                        .unwrap()
                        .as_millis();
                    assert!(deadline > now && deadline <= now + 31_000, "{deadline}");
                    assert_eq!(
                        header("Lambda-Runtime-Invoked-Function-Arn"),
                        "arn:aws:lambda:us-east-1:123456789012:function:echo"
                    );
                    assert!(header("Lambda-Runtime-Trace-Id").starts_with("Root=1-"));
                    let event: Value = next.json().await.unwrap();
                    let request = client.post(format!("{base}/invocation/{id}/{answer}"));
                    let request = if answer == "response" {
                        request.json(&json!({ "echo": event }))
                    } else {
                        request
                            .header("Lambda-Runtime-Function-Error-Type", "unhandled")
                            .json(&json!({ "errorType": "Boom", "errorMessage": "it broke" }))
                    };
                    assert_eq!(request.send().await.unwrap().status(), 202);
                }
            })
        };

        let first = api.invoke(&json!({ "n": 1 })).await.unwrap();
        assert_eq!(
            first,
            InvocationResult::Response(json!({ "echo": { "n": 1 } }))
        );
        assert!(api.initialized());
        let second = api.invoke(&json!({ "n": 2 })).await.unwrap();
        assert_eq!(
            second,
            InvocationResult::Error(FunctionError {
                error_type: "Boom".to_owned(),
                error_message: "it broke".to_owned(),
            })
        );
        function.await.unwrap();

        // Answers to unknown invocations and unknown endpoints are refused.
        let stray = client
            .post(format!("{base}/invocation/nope/response"))
            .body("{}")
            .send()
            .await
            .unwrap();
        assert_eq!(stray.status(), 400);
        let unknown = client
            .get(format!("{base}/invocation/other"))
            .send()
            .await
            .unwrap();
        assert_eq!(unknown.status(), 404);
    }

    #[tokio::test]
    async fn an_unanswered_invocation_times_out_and_is_withdrawn() {
        let api = RuntimeApi::start("slow").await.unwrap();
        let error = api
            .invoke_with_timeout(&json!({ "n": 1 }), Duration::from_millis(100))
            .await
            .unwrap_err();
        assert!(format!("{error:#}").contains("did not answer"), "{error:#}");

        // The withdrawn event is never handed out: the next poll gets the next event.
        let client = client();
        let next = {
            let client = client.clone();
            let addr = api.addr();
            tokio::spawn(async move {
                let next = client
                    .get(format!("http://{addr}/2018-06-01/runtime/invocation/next"))
                    .send()
                    .await
                    .unwrap();
                let id = next
                    .headers()
                    .get("lambda-runtime-aws-request-id")
                    .unwrap()
                    .to_str()
                    .unwrap()
                    .to_owned();
                let event: Value = next.json().await.unwrap();
                client
                    .post(format!(
                        "http://{addr}/2018-06-01/runtime/invocation/{id}/response"
                    ))
                    .json(&event)
                    .send()
                    .await
                    .unwrap();
            })
        };
        let answer = api.invoke(&json!({ "n": 2 })).await.unwrap();
        assert_eq!(answer, InvocationResult::Response(json!({ "n": 2 })));
        next.await.unwrap();
    }

    #[tokio::test]
    async fn init_errors_are_recorded() {
        let api = RuntimeApi::start("broken").await.unwrap();
        let response = client()
            .post(format!(
                "http://{}/2018-06-01/runtime/init/error",
                api.addr()
            ))
            .header("Lambda-Runtime-Function-Error-Type", "Runtime.InitError")
            .body("not json")
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 202);
        assert_eq!(
            api.init_errors(),
            [FunctionError {
                error_type: "Runtime.InitError".to_owned(),
                error_message: "not json".to_owned(),
            }]
        );
        assert!(!api.initialized());
    }

    #[tokio::test]
    async fn a_process_that_exits_at_start_is_an_init_error_with_its_output() {
        let dir = tempfile::tempdir().unwrap();
        let script = dir.path().join("bootstrap");
        std::fs::write(
            &script,
            "#!/bin/sh\necho \"Error: configuration: EXAMPLE_VARIABLE: is required (runtime at $AWS_LAMBDA_RUNTIME_API, home '$HOME')\" >&2\nexit 1\n",
        )
        .unwrap();
        {
            use std::os::unix::fs::PermissionsExt as _;
            std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        }
        let error = LambdaProcess::start("failing", &script, &[])
            .await
            .unwrap_err();
        let init = error
            .downcast_ref::<InitError>()
            .unwrap_or_else(|| panic!("not an init error: {error:#}"));
        assert_eq!(init.function, "failing");
        assert!(init.reason.contains("exit status 1"), "{init}");
        assert!(
            init.output_tail
                .contains("configuration: EXAMPLE_VARIABLE: is required"),
            "{init}"
        );
        // It got the Runtime API's address, and nothing from the test's environment.
        assert!(init.output_tail.contains("runtime at 127.0.0.1:"), "{init}");
        assert!(init.output_tail.contains("home ''"), "{init}");
    }
}

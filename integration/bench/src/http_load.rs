//! The HTTP load generator for keep-alive proxy runs (HTTP/1.1 and h2 over TLS).
//!
//! A [`Generator`] opens keep-alive connections to one server ([`Generator::connect`]), then
//! drives them in two ways:
//! - [`Generator::closed_loop`]: every request slot sends its next request as soon as the last
//!   one is answered, for a fixed time: the server's maximum rate at that concurrency.
//! - [`Generator::open_loop`]: requests are due at a fixed rate whatever the server does, and
//!   each latency is measured from the time the request was *due*, not from when a slot was
//!   free to send it. A server that stalls is charged for every request that queued behind the
//!   stall (no coordinated omission).
//!
//! Every response must be `200` with a body of exactly the expected length; anything else is a
//! failure, counted and reported. A slot whose connection broke opens a new one.
//!
//! It runs on the caller's (current-thread) runtime; only the open loop's pacer is a thread of
//! its own, because tokio's timer wheel ticks in whole milliseconds while a loopback proxy
//! answers in a fraction of one.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use bytes::Bytes;
use http::{Request, StatusCode, Uri, header};
use http_body_util::{BodyExt as _, Empty};
use hyper::client::conn::{http1, http2};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls::ClientConfig;
use rustls::pki_types::ServerName;
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// Shortest sleep of the open loop's pacer (see [`Generator::open_loop`]).
const PACER_QUANTUM: Duration = Duration::from_micros(200);

/// The HTTP version spoken to the server (over TLS, chosen by ALPN).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HttpVersion {
    /// HTTP/1.1: one request at a time per connection.
    Http1,
    /// HTTP/2: several streams per connection.
    Http2,
}

impl HttpVersion {
    /// As shown in tables.
    pub fn label(self) -> &'static str {
        match self {
            HttpVersion::Http1 => "HTTP/1.1",
            HttpVersion::Http2 => "h2",
        }
    }

    /// The ALPN protocol id offered (and required back).
    pub fn alpn(self) -> &'static [u8] {
        match self {
            HttpVersion::Http1 => b"http/1.1",
            HttpVersion::Http2 => b"h2",
        }
    }
}

/// What is requested, from where.
#[derive(Debug, Clone)]
pub struct Target {
    /// The server's TLS listener.
    pub address: SocketAddr,
    /// SNI and `Host` (`:authority` in h2).
    pub server_name: String,
    /// Path requested, e.g. `/1k`.
    pub path: String,
    /// Exact length every response body must have.
    pub body_bytes: usize,
}

/// How many requests are in flight at most.
#[derive(Debug, Clone, Copy)]
pub struct Concurrency {
    /// Keep-alive connections.
    pub connections: usize,
    /// Requests in flight per connection (1 for HTTP/1.1, which has no pipelining here).
    pub streams_per_connection: usize,
}

impl Concurrency {
    /// Requests in flight at most.
    pub fn slots(&self) -> usize {
        self.connections * self.streams_per_connection
    }
}

/// What one run did.
#[derive(Debug, Clone, Default)]
pub struct LoadRun {
    /// Requests answered `200` with the whole body.
    pub completed: u64,
    /// Requests that failed (connection, status or body length).
    pub failed: u64,
    /// The first failure, for the report.
    pub first_error: Option<String>,
    /// Wall time of the run (in the open loop: until the last due request was answered).
    pub elapsed: Duration,
    /// CPU seconds the load generator (this process) used.
    pub load_cpu_seconds: f64,
    /// Open loop only: per completed request, from when it was due to its last body byte.
    pub latencies: Vec<Duration>,
}

impl LoadRun {
    /// Completed requests per wall-clock second.
    pub fn per_second(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Share of one core the generator used (1.0 = saturated).
    pub fn load_core_share(&self) -> f64 {
        self.load_cpu_seconds / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Adds `other` (a later round of the same run) to this one.
    pub fn absorb(&mut self, other: LoadRun) {
        self.completed += other.completed;
        self.failed += other.failed;
        if self.first_error.is_none() {
            self.first_error = other.first_error;
        }
        self.elapsed += other.elapsed;
        self.load_cpu_seconds += other.load_cpu_seconds;
        self.latencies.extend(other.latencies);
    }
}

/// A request sender over one keep-alive connection.
enum Sender {
    Http1(http1::SendRequest<Empty<Bytes>>),
    Http2(http2::SendRequest<Empty<Bytes>>),
}

impl Sender {
    fn is_closed(&self) -> bool {
        match self {
            Sender::Http1(sender) => sender.is_closed(),
            Sender::Http2(sender) => sender.is_closed(),
        }
    }
}

/// One request in flight at most: its connection (shared with other slots in h2), or none
/// after the connection broke.
pub struct Slot {
    sender: Option<Sender>,
}

impl std::fmt::Debug for Slot {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Slot")
            .field("connected", &self.sender.is_some())
            .finish()
    }
}

/// Requests `target` over TLS in `version`.
pub struct Generator {
    version: HttpVersion,
    target: Target,
    connector: TlsConnector,
    /// Origin-form (`/1k`) for HTTP/1.1 with a `Host` header; absolute for h2, where the
    /// authority becomes `:authority`.
    uri: Uri,
}

impl std::fmt::Debug for Generator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Generator")
            .field("version", &self.version)
            .field("target", &self.target)
            .finish_non_exhaustive()
    }
}

/// Failures in one run, with the first message kept.
#[derive(Default)]
struct Failures {
    count: u64,
    first: Option<String>,
}

impl Failures {
    fn record(&mut self, error: &anyhow::Error) {
        self.count += 1;
        if self.first.is_none() {
            self.first = Some(format!("{error:#}"));
        }
    }

    fn merge(&mut self, other: Failures) {
        self.count += other.count;
        if self.first.is_none() {
            self.first = other.first;
        }
    }
}

impl Generator {
    /// A generator for `target`; `client` must offer `version`'s ALPN id (see
    /// [`crate::tls_load::load_client`]).
    pub fn new(
        version: HttpVersion,
        target: Target,
        client: Arc<ClientConfig>,
    ) -> anyhow::Result<Generator> {
        let uri = match version {
            HttpVersion::Http1 => target.path.parse::<Uri>(),
            HttpVersion::Http2 => {
                format!("https://{}{}", target.server_name, target.path).parse::<Uri>()
            }
        }
        .context("building the request URI")?;
        Ok(Generator {
            version,
            target,
            connector: TlsConnector::from(client),
            uri,
        })
    }

    /// Opens `concurrency.connections` keep-alive connections and returns one slot per request
    /// that may be in flight (h2 slots share their connection).
    pub async fn connect(&self, concurrency: Concurrency) -> anyhow::Result<Vec<Slot>> {
        let mut slots = Vec::with_capacity(concurrency.slots());
        for _ in 0..concurrency.connections {
            match self.open_connection().await? {
                Sender::Http2(sender) => {
                    slots.extend(
                        (0..concurrency.streams_per_connection.max(1)).map(|_| Slot {
                            sender: Some(Sender::Http2(sender.clone())),
                        }),
                    );
                }
                // No pipelining: one request at a time per HTTP/1.1 connection.
                sender @ Sender::Http1(_) => slots.push(Slot {
                    sender: Some(sender),
                }),
            }
        }
        Ok(slots)
    }

    async fn open_connection(&self) -> anyhow::Result<Sender> {
        let tcp = TcpStream::connect(self.target.address)
            .await
            .with_context(|| format!("connecting to {}", self.target.address))?;
        tcp.set_nodelay(true)?;
        let server_name = ServerName::try_from(self.target.server_name.clone())?;
        let tls = self
            .connector
            .connect(server_name, tcp)
            .await
            .context("TLS handshake")?;
        let negotiated = tls.get_ref().1.alpn_protocol().map(<[u8]>::to_vec);
        if negotiated.as_deref() != Some(self.version.alpn()) {
            bail!(
                "the server chose ALPN {:?}, not {}",
                negotiated.map(|id| String::from_utf8_lossy(&id).into_owned()),
                self.version.label()
            );
        }
        let io = TokioIo::new(tls);
        // The connection futures run as tasks of their own; they end when every sender is
        // dropped or the server closes.
        Ok(match self.version {
            HttpVersion::Http1 => {
                let (sender, connection) = http1::handshake(io).await?;
                tokio::spawn(connection);
                Sender::Http1(sender)
            }
            HttpVersion::Http2 => {
                let (sender, connection) = http2::handshake(TokioExecutor::new(), io).await?;
                tokio::spawn(connection);
                Sender::Http2(sender)
            }
        })
    }

    /// One request on `slot`, reconnecting it first if its connection broke; the response
    /// must be `200` with the whole body.
    async fn fetch(&self, slot: &mut Slot) -> anyhow::Result<()> {
        let mut sender = match slot.sender.take() {
            Some(sender) if !sender.is_closed() => sender,
            _ => self.open_connection().await?,
        };
        let result = self.fetch_on(&mut sender).await;
        if !sender.is_closed() {
            slot.sender = Some(sender);
        }
        result
    }

    async fn fetch_on(&self, sender: &mut Sender) -> anyhow::Result<()> {
        let mut request = Request::get(self.uri.clone());
        if self.version == HttpVersion::Http1 {
            request = request.header(header::HOST, &self.target.server_name);
        }
        let request = request.body(Empty::<Bytes>::new())?;
        let response = match sender {
            Sender::Http1(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
            Sender::Http2(sender) => {
                sender.ready().await?;
                sender.send_request(request).await?
            }
        };
        let status = response.status();
        // Read the body frame by frame without gathering it: only its length matters.
        let mut body = response.into_body();
        let mut received = 0;
        while let Some(frame) = body.frame().await {
            if let Some(data) = frame?.data_ref() {
                received += data.len();
            }
        }
        if status != StatusCode::OK {
            bail!("status {status}");
        }
        if received != self.target.body_bytes {
            bail!(
                "body of {received} bytes, expected {}",
                self.target.body_bytes
            );
        }
        Ok(())
    }

    /// Every slot sends its next request as soon as the last is answered, for `duration`.
    pub async fn closed_loop(&self, slots: &mut [Slot], duration: Duration) -> LoadRun {
        let cpu_before = crate::process::own_cpu_seconds();
        let started = Instant::now();
        let deadline = started + duration;
        let per_slot = futures::future::join_all(slots.iter_mut().map(|slot| async move {
            let mut completed = 0_u64;
            let mut failures = Failures::default();
            while Instant::now() < deadline {
                match self.fetch(slot).await {
                    Ok(()) => completed += 1,
                    Err(error) => {
                        failures.record(&error);
                        // A server that refuses at once must not turn this into a busy loop.
                        tokio::time::sleep(Duration::from_millis(10)).await;
                    }
                }
            }
            (completed, failures)
        }))
        .await;
        let elapsed = started.elapsed();
        let mut run = LoadRun {
            elapsed,
            load_cpu_seconds: crate::process::own_cpu_seconds() - cpu_before,
            ..LoadRun::default()
        };
        let mut failures = Failures::default();
        for (completed, slot_failures) in per_slot {
            run.completed += completed;
            failures.merge(slot_failures);
        }
        run.failed = failures.count;
        run.first_error = failures.first;
        run
    }

    /// Requests due at `rate` per second for `duration`, spread over the slots; a request due
    /// while every slot is busy waits for one, and its wait counts in its latency. Requests
    /// still unanswered `drain` after the last one was due are failures.
    pub async fn open_loop(
        &self,
        slots: &mut [Slot],
        rate: f64,
        duration: Duration,
        drain: Duration,
    ) -> anyhow::Result<LoadRun> {
        if !(rate.is_finite() && rate > 0.0) {
            bail!("open-loop rate must be positive, got {rate}");
        }
        let due_count = (rate * duration.as_secs_f64()).round() as u64;
        let (due_sender, due_receiver) = tokio::sync::mpsc::unbounded_channel::<Instant>();
        let cpu_before = crate::process::own_cpu_seconds();
        let started = Instant::now();
        // The pacer: a thread that sleeps (hrtimer precision, ~50 us of timer slack) until the
        // next request is due and releases every request due by then, stamped with the time it
        // was due. It sleeps at least PACER_QUANTUM: each release wakes the runtime thread on
        // the generator's core, and one wake per request would cost the generator as much as
        // the requests themselves at tens of thousands per second. Latency still runs from
        // the due time, so a release up to PACER_QUANTUM late is counted, alike for every
        // server.
        let pacer = std::thread::Builder::new()
            .name("open-loop-pacer".to_owned())
            .spawn(move || {
                let interval = 1.0 / rate;
                let mut index = 0_u64;
                while index < due_count {
                    let now = Instant::now();
                    let due = started + Duration::from_secs_f64(index as f64 * interval);
                    if due > now {
                        std::thread::sleep((due - now).max(PACER_QUANTUM));
                        continue;
                    }
                    if due_sender.send(due).is_err() {
                        return;
                    }
                    index += 1;
                }
            })
            .context("starting the pacer thread")?;
        let queue = tokio::sync::Mutex::new(due_receiver);
        let drain_deadline =
            tokio::time::Instant::from_std(started + duration + drain + Duration::from_millis(1));
        let per_slot = futures::future::join_all(slots.iter_mut().map(|slot| {
            let queue = &queue;
            async move {
                let mut latencies = Vec::new();
                let mut failures = Failures::default();
                loop {
                    // One slot at a time waits on the queue; the others wait for the lock.
                    let due = queue.lock().await.recv().await;
                    let Some(due) = due else { break };
                    let fetched = tokio::time::timeout_at(drain_deadline, self.fetch(slot)).await;
                    match fetched {
                        Ok(Ok(())) => latencies.push(due.elapsed()),
                        Ok(Err(error)) => failures.record(&error),
                        Err(_) => {
                            failures.record(&anyhow::anyhow!(
                                "unanswered {drain:?} after the last request was due"
                            ));
                            // The slot's connection is mid-request: drop it.
                            slot.sender = None;
                        }
                    }
                }
                (latencies, failures)
            }
        }))
        .await;
        let elapsed = started.elapsed();
        let load_cpu_seconds = crate::process::own_cpu_seconds() - cpu_before;
        if pacer.join().is_err() {
            bail!("the pacer thread panicked");
        }
        let mut run = LoadRun {
            elapsed,
            load_cpu_seconds,
            ..LoadRun::default()
        };
        let mut failures = Failures::default();
        for (latencies, slot_failures) in per_slot {
            run.latencies.extend(latencies);
            failures.merge(slot_failures);
        }
        run.completed = run.latencies.len() as u64;
        run.failed = failures.count;
        run.first_error = failures.first;
        let unsent = due_count.saturating_sub(run.completed + run.failed);
        if unsent > 0 {
            run.failed += unsent;
            run.first_error.get_or_insert_with(|| {
                format!("{unsent} due requests were never sent before the drain deadline")
            });
        }
        Ok(run)
    }
}

//! The fault matrix: the whole local stack (API, issuer, renewer and edge in this process,
//! Pebble and challtestsrv beside it) under each fault, on SQLite and on DynamoD + Secrets
//! Manager in a moto of its own, with new names whose first HTTPS requests arrive at once.
//!
//! Faults, each real where a real part can produce it:
//! - the CA stopped (SIGSTOP) in the middle of the orders, then resumed;
//! - the CA answering 5xx and 429 (Pebble never does: the test fault layer of
//!   `edgecert_acme::testing` in front of it);
//! - the store unavailable for a while (SQLite: another connection holding the write lock;
//!   moto: its process stopped);
//! - the runner killed with SIGKILL at a random point of issuance, then started again on the
//!   same storage (the `edgecert-local` binary, in `e2e.rs`'s `restart` flow and here).
//!
//! Invariants checked after each:
//! - no certificate without its key: every active name completes a TLS handshake that
//!   verifies against Pebble's root (rustls checks the key signs the handshake);
//! - one order per name at a time: no order is created while another for one of its names is
//!   still open, however many handshakes, issuer passes and nudges ask for it (the fault layer
//!   follows every order's status);
//! - every domain ends `active`, or shows an error and a `next_attempt_at` in the future;
//! - nothing is stuck: once the fault is over, every name is served within a bound.
//!
//! A longer soak (500 names, faults injected while their first requests arrive) is in the
//! benchmarks (`integration/bench`).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgecert_acme::testing::{CaFaults, Endpoint, Fault};
use edgecert_integration::Moto;
use edgecert_local::{LocalOptions, LocalStack};
use rustls::pki_types::CertificateDer;
use serde_json::{Value, json};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;

/// New names per scenario, requested at once.
const NAMES: usize = 4;
/// Longest wait for anything in a scenario.
const BOUND: Duration = Duration::from_secs(60);

/// How long the names of a killed runner may take to be served after its restart: the lease
/// of an issuance cut short (30 s on the local stack) must run out first, then every name is
/// ordered again from the new Pebble, on a machine loaded by the other scenarios.
const RESTART_BOUND: Duration = Duration::from_secs(120);

/// How long one issuance attempt may take on the local stack: its CA requests are bounded by
/// 10 s each (the local request timeout), a few of them in a row, plus a loaded machine's
/// delays.
const ATTEMPT_BOUND: Duration = Duration::from_secs(40);

/// How soon a domain hit by a fault must say why (the CA's 10 s request timeout and a loaded
/// machine's delays; before the fix, `/ssl` said nothing for about 90 s).
const EXPLAINED_WITHIN: Duration = Duration::from_secs(45);

/// The local stack's longest CA cool-down (`ca_cool_down_max`), plus a second.
const LONGEST_COOL_DOWN_SECONDS: i64 = 21;

/// Where a stack keeps its state.
#[derive(Clone, Copy, Debug)]
enum Backend {
    Sqlite,
    Moto,
}

/// A local stack in this process, its CA's fault layer, and an account on it.
struct Fixture {
    stack: LocalStack,
    faults: CaFaults,
    /// A moto of this scenario's own (stopping it must not stop other tests' stores).
    moto: Option<Moto>,
    data_dir: tempfile::TempDir,
    http: reqwest::Client,
    api_key: String,
    roots: Vec<CertificateDer<'static>>,
    origin: String,
}

/// A zone the fixture's account imported.
struct ZoneImported {
    id: String,
    name: String,
}

impl Fixture {
    async fn start(backend: Backend) -> Fixture {
        Fixture::start_with(backend, "pro", |_| {}).await
    }

    /// A stack whose options `adjust` changes, and an account on `plan`.
    async fn start_with(
        backend: Backend,
        plan: &str,
        adjust: impl FnOnce(&mut LocalOptions),
    ) -> Fixture {
        let data_dir = tempfile::tempdir().unwrap();
        let mut options = LocalOptions::new(data_dir.path().to_path_buf());
        options.api_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        options.edge_https_addr = SocketAddr::from(([127, 0, 0, 1], 0));
        let faults = CaFaults::new();
        options.ca_faults = Some(faults.clone());
        adjust(&mut options);
        let moto = match backend {
            Backend::Sqlite => None,
            Backend::Moto => {
                let moto = Moto::start()
                    .await
                    .expect("a moto_server of the scenario's own");
                options.aws_endpoint = Some(moto.endpoint_url());
                Some(moto)
            }
        };
        let stack = LocalStack::start(options)
            .await
            .expect("the local stack starts");
        let http = edgecert_integration::services::http_client(&[]).unwrap();
        let root = std::fs::read_to_string(&stack.info.pebble_root_file).unwrap();
        let origin = support::start_origin("faults").await;
        let mut fixture = Fixture {
            roots: edgecert_terminator::roots_from_pem(&root),
            stack,
            faults,
            moto,
            data_dir,
            http,
            api_key: String::new(),
            origin,
        };
        let (status, account) = fixture
            .call_as(
                &fixture.stack.admin_key.clone(),
                "POST",
                "/v1/accounts",
                Some(json!({"name": "Fault matrix", "plan": plan})),
            )
            .await;
        assert_eq!(status, 201, "{account}");
        fixture.api_key = account["api_key"].as_str().unwrap().to_owned();
        fixture
    }

    async fn call_as(
        &self,
        key: &str,
        method: &str,
        path: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
        let mut request = self
            .http
            .request(
                method.parse().unwrap(),
                format!("{}{path}", self.stack.info.api_url),
            )
            .bearer_auth(key)
            .timeout(Duration::from_secs(30));
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.expect("the API answers");
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    async fn call(&self, method: &str, path: &str, body: Option<Value>) -> (u16, Value) {
        self.call_as(&self.api_key, method, path, body).await
    }

    /// Whitelists `NAMES` new names; their domain ids.
    async fn whitelist(&self, label: &str) -> Vec<(String, String)> {
        self.whitelist_many(label, NAMES).await
    }

    /// Whitelists `count` new names, each under a registered domain of its own; their domain
    /// ids.
    async fn whitelist_many(&self, label: &str, count: usize) -> Vec<(String, String)> {
        let mut domains = Vec::new();
        for n in 0..count {
            let name = format!(
                "{label}{n}.f{}-{}.com",
                std::process::id(),
                OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_007
            );
            let (status, domain) = self
                .call(
                    "POST",
                    "/v1/domains",
                    Some(json!({"hostname": name, "origin_url": self.origin})),
                )
                .await;
            assert_eq!(status, 201, "{domain}");
            domains.push((name, domain["id"].as_str().unwrap().to_owned()));
        }
        domains
    }

    /// Imports a new zone `{label}-….com` held in challtestsrv, proven with its TXT record.
    async fn verified_zone(&self, label: &str) -> ZoneImported {
        let name = format!(
            "{label}-{}-{}.com",
            std::process::id(),
            OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_007
        );
        let (status, record) = self
            .call("GET", &format!("/v1/zones/verification?name={name}"), None)
            .await;
        assert_eq!(status, 200, "{record}");
        let management = &self.stack.info.challtestsrv_management_url;
        self.http
            .post(format!("{management}/set-txt"))
            .json(&json!({"host": format!("{}.", record["name"].as_str().unwrap()), "value": record["value"]}))
            .timeout(Duration::from_secs(10))
            .send()
            .await
            .and_then(reqwest::Response::error_for_status)
            .expect("challtestsrv takes the TXT record");
        let (status, zone) = self
            .call(
                "POST",
                "/v1/zones",
                Some(json!({"name": name, "provider": "challtestsrv", "provider_zone_id": name})),
            )
            .await;
        assert_eq!(status, 201, "{zone}");
        ZoneImported {
            id: zone["id"].as_str().unwrap().to_owned(),
            name,
        }
    }

    /// One HTTPS request to `name` through the edge, verified against Pebble's root; whether
    /// it reached the origin.
    async fn served(&self, name: &str) -> bool {
        let attempt = async {
            let tls = support::tls_connect(self.stack.info.edge_https_addr, name, &self.roots)
                .await
                .ok()?;
            let (mut sender, connection) =
                hyper::client::conn::http1::handshake(hyper_util::rt::TokioIo::new(tls))
                    .await
                    .ok()?;
            tokio::spawn(connection);
            let request = http::Request::get("/")
                .header("host", name)
                .body(http_body_util::Empty::<bytes::Bytes>::new())
                .ok()?;
            let response = sender.send_request(request).await.ok()?;
            Some(response.status() == 200)
        };
        tokio::time::timeout(Duration::from_secs(30), attempt)
            .await
            .ok()
            .flatten()
            .unwrap_or(false)
    }

    /// First requests for every name at once, several each, in the background.
    fn first_requests(self: &Arc<Self>, domains: &[(String, String)]) {
        for (name, _) in domains {
            for _ in 0..3 {
                let (fixture, name) = (Arc::clone(self), name.clone());
                tokio::spawn(async move { fixture.served(&name).await });
            }
        }
    }

    async fn ssl(&self, id: &str) -> Value {
        let (status, ssl) = self
            .call("GET", &format!("/v1/domains/{id}/ssl"), None)
            .await;
        assert_eq!(status, 200, "{ssl}");
        ssl
    }

    /// The invariant while a fault lasts or after it: each domain is active, or says why not
    /// and when it is tried again, in the future.
    async fn assert_active_or_explained(&self, domains: &[(String, String)]) {
        for (name, id) in domains {
            // A next attempt in the past is an attempt under way: it ends (active, or a new
            // error with a new time) within one attempt's bound, or the domain is stuck.
            let deadline = Instant::now() + ATTEMPT_BOUND;
            loop {
                let now = OffsetDateTime::now_utc();
                let ssl = self.ssl(id).await;
                if ssl["provisioning_step"] == "active" {
                    break;
                }
                assert!(
                    ssl["error"].as_str().is_some_and(|error| !error.is_empty()),
                    "{name} is neither active nor explained: {ssl}"
                );
                let next = ssl["next_attempt_at"]
                    .as_str()
                    .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok())
                    .unwrap_or_else(|| panic!("{name} has no next attempt: {ssl}"));
                if next > now {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{name}'s next attempt stayed in the past for {ATTEMPT_BOUND:?}: {ssl}"
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    }

    /// Waits until the next attempt every domain announced has come: a retry asked for
    /// earlier may still meet the issuer's cool-down. Bounded by the local stack's longest
    /// cool-down.
    async fn wait_for_announced_attempts(&self, domains: &[(String, String)]) {
        let mut latest = OffsetDateTime::now_utc();
        for (_, id) in domains {
            let ssl = self.ssl(id).await;
            if let Some(next) = ssl["next_attempt_at"]
                .as_str()
                .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok())
            {
                latest = latest.max(next);
            }
        }
        let wait = (latest - OffsetDateTime::now_utc()).clamp(
            time::Duration::ZERO,
            time::Duration::seconds(LONGEST_COOL_DOWN_SECONDS),
        );
        tokio::time::sleep(Duration::try_from(wait).unwrap_or_default()).await;
    }

    /// Waits until every domain shows an explanation or is active (bounded).
    async fn wait_until_explained(&self, domains: &[(String, String)], within: Duration) {
        let deadline = Instant::now() + within;
        loop {
            let mut pending = Vec::new();
            for (name, id) in domains {
                let ssl = self.ssl(id).await;
                let explained = ssl["provisioning_step"] == "active"
                    || ssl["error"].as_str().is_some_and(|error| !error.is_empty());
                if !explained {
                    pending.push(format!("{name}: {ssl}"));
                }
            }
            if pending.is_empty() {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "not explained within {within:?}: {pending:#?}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }

    /// Nothing is stuck: nudged once the fault is over, every name is served within the bound,
    /// its domain active, with one order per name.
    async fn assert_recovers(&self, domains: &[(String, String)]) {
        for (_, id) in domains {
            let (status, nudged) = self
                .call("POST", &format!("/v1/domains/{id}/ssl/nudge"), None)
                .await;
            assert_eq!(status, 200, "{nudged}");
        }
        let deadline = Instant::now() + BOUND;
        for (name, id) in domains {
            loop {
                if self.served(name).await && self.ssl(id).await["provisioning_step"] == "active" {
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "{name} stuck after the fault: {}",
                    self.ssl(id).await
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
            assert!(
                self.faults.orders_for(name) >= 1,
                "{name} served without an order of this run"
            );
        }
        let overlapping = self.faults.overlapping_orders();
        assert!(
            overlapping.is_empty(),
            "two orders for one name at once: {overlapping:#?}"
        );
        self.assert_active_or_explained(domains).await;
    }

    fn pebble_pid(&self) -> u32 {
        self.stack.pebble().pebble_pid()
    }
}

fn signal(pid: u32, name: &str) {
    let status = std::process::Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill -{name} {pid}");
}

/// Resumes a stopped process when dropped, so a failed assertion never leaves it stopped.
struct Resume(u32);

impl Drop for Resume {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-CONT", &self.0.to_string()])
            .status();
    }
}

async fn wait_for(within: Duration, what: &str, mut condition: impl FnMut() -> bool) {
    let deadline = Instant::now() + within;
    while !condition() {
        assert!(Instant::now() < deadline, "{what}: not within {within:?}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

// ---------------------------------------------------------------------------------------------

async fn ca_stopped_mid_order(backend: Backend) {
    let fixture = Arc::new(Fixture::start(backend).await);
    let domains = fixture.whitelist("stop").await;
    // GIVEN the first requests of every name arriving together
    fixture.first_requests(&domains);
    // WHEN the CA stops in the middle of their orders
    wait_for(BOUND, "a first order", || fixture.faults.new_orders() >= 1).await;
    let pid = fixture.pebble_pid();
    signal(pid, "STOP");
    let resume = Resume(pid);
    // THEN every domain soon says why it is not active and when it is tried again
    fixture
        .wait_until_explained(&domains, EXPLAINED_WITHIN)
        .await;
    fixture.assert_active_or_explained(&domains).await;
    // WHEN the CA resumes, and the next attempt each domain announced has come (the issuer's
    // cool-down after the CA went quiet: the local stack's doubles from 5 s up to 20 s)
    // THEN nothing is stuck
    drop(resume);
    fixture.wait_for_announced_attempts(&domains).await;
    fixture.assert_recovers(&domains).await;
}

async fn ca_answers_5xx_and_429(backend: Backend) {
    let fixture = Arc::new(Fixture::start(backend).await);
    let domains = fixture.whitelist("busy").await;
    // GIVEN a CA that rate-limits new orders and fails finalizations with 5xx
    fixture.faults.inject(
        Endpoint::NewOrder,
        Fault::RateLimited {
            retry_after: Duration::from_secs(2),
        },
        2,
    );
    fixture
        .faults
        .inject(Endpoint::Finalize, Fault::ServiceUnavailable, 3);
    // WHEN every name's first requests arrive
    fixture.first_requests(&domains);
    // THEN every domain ends active or explained, never stuck in between
    fixture
        .wait_until_explained(&domains, EXPLAINED_WITHIN)
        .await;
    fixture.assert_active_or_explained(&domains).await;
    fixture.assert_recovers(&domains).await;
}

async fn store_unavailable(backend: Backend) {
    let fixture = Arc::new(Fixture::start(backend).await);
    let domains = fixture.whitelist("store").await;
    // GIVEN the store unavailable while the first requests arrive
    let outage = StoreOutage::begin(&fixture, backend);
    fixture.first_requests(&domains);
    tokio::time::sleep(Duration::from_secs(4)).await;
    // WHEN it comes back
    drop(outage);
    // THEN every domain ends active or explained, and nothing is stuck
    fixture
        .wait_until_explained(&domains, EXPLAINED_WITHIN)
        .await;
    fixture.assert_active_or_explained(&domains).await;
    fixture.assert_recovers(&domains).await;
}

/// The store made unavailable until dropped: SQLite's write lock held by another connection,
/// or moto's process stopped.
enum StoreOutage {
    /// Dropping the sender releases the lock.
    Sqlite {
        _release: std::sync::mpsc::Sender<()>,
    },
    /// Dropping it resumes moto.
    Moto { _resume: Resume },
}

impl StoreOutage {
    fn begin(fixture: &Fixture, backend: Backend) -> StoreOutage {
        match backend {
            Backend::Sqlite => StoreOutage::Sqlite {
                _release: hold_write_lock(&fixture.data_dir.path().join("edgecert.db")),
            },
            Backend::Moto => {
                let pid = fixture.moto.as_ref().unwrap().pid();
                signal(pid, "STOP");
                StoreOutage::Moto {
                    _resume: Resume(pid),
                }
            }
        }
    }
}

/// Takes SQLite's write lock on `path` from another connection until the returned sender is
/// dropped.
fn hold_write_lock(path: &Path) -> std::sync::mpsc::Sender<()> {
    let (release, released) = std::sync::mpsc::channel::<()>();
    let (locked, is_locked) = std::sync::mpsc::channel::<()>();
    let path = path.to_path_buf();
    std::thread::spawn(move || {
        let connection = rusqlite::Connection::open(&path).unwrap();
        connection.busy_timeout(Duration::from_secs(10)).unwrap();
        connection.execute_batch("BEGIN EXCLUSIVE").unwrap();
        locked.send(()).unwrap();
        // Held until the sender is dropped (or a bound passes, so a failed test ends).
        let _ = released.recv_timeout(BOUND);
        connection.execute_batch("ROLLBACK").unwrap();
    });
    is_locked
        .recv_timeout(Duration::from_secs(15))
        .expect("the write lock was taken");
    release
}

/// The `edgecert-local` binary killed with SIGKILL at a random point of the issuance of
/// names whose first requests just arrived, then started again on the same storage.
async fn killed_at_a_random_point(storage: support::Storage) {
    use rand::Rng as _;
    let dir = support::data_dir();
    let runner = support::Runner::start(dir.path(), &storage, &[]).await;
    let origin = support::start_origin("killed").await;
    let (_, key) = runner.account("pro", false).await;
    let stamp = OffsetDateTime::now_utc().unix_timestamp_nanos() % 1_000_000_007;
    let mut domains = Vec::new();
    for n in 0..NAMES {
        let name = format!("kill{n}.k{}-{stamp}.com", std::process::id());
        let (status, domain) = runner
            .call(
                "POST",
                "/v1/domains",
                &key,
                Some(json!({"hostname": name, "origin_url": origin})),
            )
            .await;
        assert_eq!(status, 201, "{domain}");
        domains.push((name, domain["id"].as_str().unwrap().to_owned()));
    }
    // GIVEN first requests under way for every name
    let (edge, roots) = (runner.edge_https, runner.roots.clone());
    for (name, _) in &domains {
        let (name, roots) = (name.clone(), roots.clone());
        tokio::spawn(async move { support::tls_connect(edge, &name, &roots).await });
    }
    // WHEN the runner is killed at a random point of their issuance, and started again
    let delay = rand::thread_rng().gen_range(0..1500);
    tokio::time::sleep(Duration::from_millis(delay)).await;
    eprintln!("killed {delay} ms after the first requests");
    runner.kill_hard();
    // The restarted runner's Pebble has a new root: certificates issued before the kill are
    // from another CA and replaced, so only the current root is trusted.
    let runner = support::Runner::start(dir.path(), &storage, &[]).await;
    // THEN every name is served within the bound (a handshake verified against the current
    // root: no certificate without its key), its domain active
    let deadline = Instant::now() + RESTART_BOUND;
    for (name, id) in &domains {
        loop {
            let served = runner.https_get(name, "/").await.is_ok();
            let (_, ssl) = runner
                .call("GET", &format!("/v1/domains/{id}/ssl"), &key, None)
                .await;
            if served && ssl["provisioning_step"] == "active" {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{name} stuck after the restart: {ssl}"
            );
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_a_random_point_on_sqlite() {
    edgecert_integration::bounded(
        std::time::Duration::from_secs(300),
        "killed_at_a_random_point_on_sqlite",
        killed_at_a_random_point(support::Storage::Sqlite),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_at_a_random_point_on_moto() {
    edgecert_integration::bounded(
        std::time::Duration::from_secs(300),
        "killed_at_a_random_point_on_moto",
        killed_at_a_random_point(support::Storage::moto("killed").await),
    )
    .await;
}

macro_rules! on_both_backends {
    ($($scenario:ident),* $(,)?) => {
        mod sqlite {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    edgecert_integration::bounded(
                        std::time::Duration::from_secs(300),
                        concat!(stringify!($scenario), " on sqlite"),
                        super::$scenario(super::Backend::Sqlite),
                    )
                    .await
                }
            )*
        }
        mod moto {
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $scenario() {
                    edgecert_integration::bounded(
                        std::time::Duration::from_secs(300),
                        concat!(stringify!($scenario), " on moto"),
                        super::$scenario(super::Backend::Moto),
                    )
                    .await
                }
            )*
        }
    };
}

/// The order budget every path draws from, spent by a burst of first requests: 50 new names
/// whose first requests arrive at once, with a budget of 10 orders per hour.
async fn order_budget_spent(backend: Backend) {
    const BURST: usize = 50;
    const BUDGET: u32 = 10;
    let fixture = Arc::new(
        Fixture::start_with(backend, "elite", |options| {
            options.order_budget = BUDGET;
            options.order_budget_period = time::Duration::hours(1);
        })
        .await,
    );
    let domains = fixture.whitelist_many("budget", BURST).await;
    // WHEN the first request of every name arrives at once
    let requests: Vec<_> = domains
        .iter()
        .map(|(name, _)| {
            let (fixture, name) = (Arc::clone(&fixture), name.clone());
            tokio::spawn(async move { fixture.served(&name).await })
        })
        .collect();
    // (A refused name's handshake fails at once with an alert: it does not wait on the CA.)
    let mut served = 0;
    for request in requests {
        served += usize::from(request.await.unwrap());
    }
    fixture.wait_until_explained(&domains, BOUND).await;
    // THEN exactly the budget's orders were placed, whatever path asked (handshakes, the
    // issuer loop), and those names are served
    assert_eq!(fixture.faults.new_orders(), BUDGET as usize);
    assert_eq!(served, BUDGET as usize, "first requests served");
    // AND every other name was refused with the reason and when it is tried again
    let now = OffsetDateTime::now_utc();
    let (mut active, mut refused) = (0, 0);
    let mut a_refused_domain = None;
    for (name, id) in &domains {
        let ssl = fixture.ssl(id).await;
        if ssl["provisioning_step"] == "active" {
            active += 1;
            continue;
        }
        assert_eq!(ssl["provisioning_step"], "failed", "{name}: {ssl}");
        assert!(
            ssl["error"].as_str().is_some_and(
                |error| error.contains("budget of new orders") && error.contains("10 per hour")
            ),
            "{name}: {ssl}"
        );
        let next = ssl["next_attempt_at"]
            .as_str()
            .and_then(|at| OffsetDateTime::parse(at, &Rfc3339).ok())
            .unwrap_or_else(|| panic!("{name} has no next attempt: {ssl}"));
        assert!(next > now, "{name}'s next attempt is not ahead: {ssl}");
        refused += 1;
        a_refused_domain = Some(id.clone());
    }
    assert_eq!(
        (active, refused),
        (BUDGET as usize, BURST - BUDGET as usize)
    );
    // AND a nudge cannot hurry a refused name: 429, and when to come back
    let id = a_refused_domain.unwrap();
    let response = fixture
        .http
        .post(format!(
            "{}/v1/domains/{id}/ssl/nudge",
            fixture.stack.info.api_url
        ))
        .bearer_auth(&fixture.api_key)
        .timeout(Duration::from_secs(30))
        .send()
        .await
        .expect("the API answers");
    assert_eq!(response.status().as_u16(), 429);
    let retry_after: u64 = response
        .headers()
        .get("retry-after")
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse().ok())
        .expect("a Retry-After in seconds");
    // One token of 10 per hour comes back every 6 minutes.
    assert!(
        (1..=360).contains(&retry_after),
        "Retry-After: {retry_after}"
    );
    let body: Value = response.json().await.unwrap();
    assert_eq!(body["error"]["code"], "order_budget_spent", "{body}");
    assert_eq!(
        fixture.faults.new_orders(),
        BUDGET as usize,
        "the nudge ordered"
    );
    // AND a new downloadable certificate is refused at once, 429 with when to come back,
    // rather than queued to wait unseen; nothing is stored, nothing ordered
    let zone = fixture.verified_zone("budgetzone").await;
    let request = json!({"zone_id": zone.id, "domain": format!("shop.{}", zone.name)});
    // (The account is on Elite: downloadable certificates are in its plan.)
    let (status, body) = fixture
        .call("POST", "/v1/certificates", Some(request))
        .await;
    assert_eq!(status, 429, "{body}");
    assert_eq!(body["error"]["code"], "order_budget_spent", "{body}");
    let (status, list) = fixture.call("GET", "/v1/certificates", None).await;
    assert_eq!(status, 200, "{list}");
    let wanted = format!("shop.{}", zone.name);
    let stored = list["certificates"]
        .as_array()
        .expect("a list of certificates");
    assert!(
        stored
            .iter()
            .all(|certificate| certificate["domain"] != wanted.as_str()),
        "the refused request was stored: {list}"
    );
    assert_eq!(
        fixture.faults.new_orders(),
        BUDGET as usize,
        "the refused request ordered"
    );
}

on_both_backends!(
    ca_stopped_mid_order,
    ca_answers_5xx_and_429,
    store_unavailable,
    order_budget_spent
);

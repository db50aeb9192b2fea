//! Scenario 6, renewal drain: 1,000 managed certificates due for renewal (among 9,000 that are
//! not), renewed against a real Pebble by the renewer worker under the production order budget.
//!
//! The store is the local default (SQLite), seeded through the store and vault ports with
//! active domains whose certificates carry throwaway material (`pki::BenchCa`); every domain
//! resolves to the edge through challtestsrv, and HTTP-01 is answered from the store
//! ([`Http01Responder`], as every terminator does). The renewer runs exactly as the scheduled
//! Lambda does ([`handle_schedule`] with the workers' [`WorkerConfig`]) once per simulated
//! hour (template.yaml's default `rate(1 hour)`) until nothing is due. Between runs only the
//! clock jumps (to the next scheduled hour); during a run it moves in real time, so the token
//! bucket refills as it would in production, and wall time is measured over the runs alone.
//!
//! Measured: orders per certificate (at the CA through a counting pass-through of the
//! issuer's HTTP client, and per certificate from its events), items the due query returned
//! per run (a counting decorator around the store, checked against the adapter's own count),
//! renewals per minute of wall time, runs needed, failures, and CPU per renewal; where a
//! renewal's time goes, from the gaps between its events and from timing decorators around the
//! issuer, the store and the DNS resolver. Afterwards every due certificate must hold new
//! Pebble material, renewed exactly once, and every other certificate must be untouched; any
//! miss fails the run (after the report is printed).

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context as _, bail};
use async_trait::async_trait;
use edgecert_acme::testing::CaFaults;
use edgecert_acme::{Issuer, IssuerConfig, ca_http_client};
use edgecert_bench::pki::{BenchCa, KeyKind};
use edgecert_bench::process::{LOAD_CORE, SERVER_CORE, cpu_seconds_of, own_cpu_seconds, pin_self};
use edgecert_bench::report::{Options, Section, Table, millis, quantile, whole};
use edgecert_bench::seed::{Seeder, database_path, hostnames};
use edgecert_core::hostname::Hostname;
use edgecert_core::ids::{AccountId, CertificateId, DomainId, ZoneId};
use edgecert_core::model::{
    Account, AccountUsage, ApiKeyHash, BucketLimits, Certificate, CertificateEvent,
    CertificateStatus, Domain, DomainChange, EventLevel, Http01Challenge, Lease, TokenBucket, Zone,
};
use edgecert_core::origin::OriginPolicy;
use edgecert_core::ports::{
    AccountStore, CaaRecord, CertificateStore, ChallengeStore, Clock, DnsProviders, DnsResolver,
    DomainStore, EventLog, Issuance, IssueOutcome, LeaseStore, MaterialVersion, Page, PageRequest,
    Store, TokenBucketStore, Vault, ZoneStore,
};
use edgecert_core::usecases::issuance::OrderBudget;
use edgecert_core::usecases::renewals::RenewalReport;
use edgecert_core::usecases::{EdgeSettings, Services};
use edgecert_core::{PlanCatalog, RenewalSuggestion, Result as CoreResult};
use edgecert_dns::HickoryResolver;
use edgecert_embedded::Database;
use edgecert_integration::{Http01Responder, Pebble, PebbleOptions};
use edgecert_workers::WorkerConfig;
use edgecert_workers::renewer::{ScheduleEvent, handle_schedule};
use time::{Duration, OffsetDateTime};

/// The CA identity Pebble stands for in CAA records.
const PEBBLE_CAA_IDENTITY: &str = "pebble.letsencrypt.org";
/// The renewer's schedule: template.yaml's default `RenewalSchedule`, `rate(1 hour)`.
const SCHEDULE_INTERVAL: Duration = Duration::hours(1);
/// Where the seeded domains proxy to; never contacted here.
const ORIGIN_URL: &str = "http://127.0.0.1:9";
/// A store call or DNS lookup slower than this stalled its run.
const STALL: StdDuration = StdDuration::from_secs(1);
/// Message prefix of the issuer's event for an order it placed (not one it resumed).
const PLACED_ORDER: &str = "Placed an ACME order";

fn main() -> anyhow::Result<()> {
    pin_self(LOAD_CORE)?;
    let options = Options::from_args();
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                // The seeded throwaway certificates have no authority key identifier, so the
                // issuer warns once per due certificate and run that it cannot ask for their
                // ARI window (Pebble 2.4 offers none anyway).
                .unwrap_or_else(|_| {
                    tracing_subscriber::EnvFilter::new("warn,edgecert_acme::ari=error")
                }),
        )
        .with_writer(std::io::stderr)
        .try_init();
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(options))
}

/// Sizes and pacing of one drain.
struct DrainPlan {
    /// Certificates due at the start.
    due: usize,
    /// Certificates stored but not due (they show the due query reads only what is due).
    not_due: usize,
    /// The workers' settings: concurrency.
    workers: WorkerConfig,
    /// New orders per `budget_period` (`EDGECERT_ORDER_BUDGET`).
    budget_orders: u32,
    /// The order budget's period.
    budget_period: Duration,
}

impl DrainPlan {
    fn for_options(options: Options) -> DrainPlan {
        DrainPlan {
            due: options.pick(1_000, 20),
            not_due: options.pick(9_000, 100),
            // 8 certificates at once.
            workers: WorkerConfig::default(),
            // Production defaults: 300 orders per 3 hours (Let's Encrypt's new-order limit per
            // account); in the quick run a budget small enough that it also drains over
            // several runs.
            budget_orders: options.pick(OrderBudget::DEFAULT_ORDERS, 10),
            budget_period: options.pick(OrderBudget::DEFAULT_PERIOD, Duration::hours(2)),
        }
    }

    /// More runs than the budget can need; past it the drain is stuck.
    fn max_runs(&self) -> usize {
        expected_runs(self) + 4
    }
}

/// One renewer run, as measured.
struct RunRecord {
    number: usize,
    scheduled_at: Duration,
    report: RenewalReport,
    due_items_counted: u64,
    due_queries: u64,
    store_calls: u64,
    wall: StdDuration,
    /// Each `Issuance::issue` call of the run, as the renewer waited for it.
    issue_times: Vec<StdDuration>,
    slowest_store_call: StdDuration,
    slowest_dns_lookup: StdDuration,
    slowest_renewal_window: StdDuration,
}

async fn run(options: Options) -> anyhow::Result<()> {
    let plan = DrainPlan::for_options(options);
    let dir = tempfile::tempdir().context("creating the work directory")?;

    let pebble = Pebble::start(PebbleOptions::default())
        .await
        .context("starting Pebble and pebble-challtestsrv")?;
    // The CA gets the other core, so that the renewer's own cost is read apart from Pebble's.
    pin_process(pebble.pebble_pid(), SERVER_CORE)?;
    pin_process(pebble.challtestsrv_pid(), SERVER_CORE)?;

    let seeding = Instant::now();
    let seeded = seed(dir.path(), &plan).await?;
    let seeding = seeding.elapsed();

    let database = Database::open(database_path(dir.path())).context("opening the store")?;
    let sqlite: Arc<dyn Store> = Arc::new(database.store());
    let vault: Arc<dyn Vault> = Arc::new(database.vault());
    let store = Arc::new(CountingStore::new(sqlite.clone()));
    let clock = Arc::new(ScheduleClock::new());
    let resolver = Arc::new(TimedResolver {
        inner: Arc::new(HickoryResolver::with_name_server(
            pebble.challtestsrv().dns_server_addr(),
        )),
        slowest: Slowest::default(),
    });
    let services = Services {
        store: store.clone(),
        vault: vault.clone(),
        resolver: resolver.clone(),
        clock: clock.clone(),
        plans: PlanCatalog::default(),
        // challtestsrv answers every A query with 127.0.0.1: every domain points at the edge.
        edge: EdgeSettings {
            hostname: "edge.edgecert.test".to_owned(),
            addresses: vec![IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)],
        },
        origin_policy: OriginPolicy::default(),
        dns_providers: DnsProviders::default(),
        issuance: None,
    };
    // Production pacing (`IssuerConfig`'s defaults); only the CA's root and CAA identity differ.
    let config = IssuerConfig::new(pebble.directory_url())
        .with_ca_root_pem(pebble.listener_ca_pem_path().to_path_buf())
        .with_caa_identities([PEBBLE_CAA_IDENTITY])
        .with_order_budget(OrderBudget::new(
            &pebble.directory_url(),
            plan.budget_orders,
            plan.budget_period,
        ));
    // A pass-through that counts what the CA saw; no fault is ever injected.
    let ca_counter = CaFaults::new();
    let http = ca_http_client(config.ca_root_pem.as_deref(), config.request_timeout)
        .context("building the CA's HTTP client")?;
    let issuer = TimedIssuance {
        inner: Issuer::with_http_client(services.clone(), config, ca_counter.client(http)),
        issue_times: Mutex::new(Vec::new()),
        slowest_renewal_window: Slowest::default(),
    };
    // Pebble validates HTTP-01 on its http port of 127.0.0.1: answered from the store there,
    // as the edge answers it (the responder reads the store directly, not through the
    // counter, which counts the renewer's and the issuer's calls only).
    let _responder = Http01Responder::start(sqlite.clone(), pebble.http_port()).await?;
    let settings = plan.workers.renewal_settings();

    let first_run_at = OffsetDateTime::now_utc();
    let own_cpu_before = own_cpu_seconds();
    let ca_cpu_before = ca_cpu_seconds(&pebble)?;
    let mut runs: Vec<RunRecord> = Vec::new();
    let mut renewed = 0;
    for number in 1..=plan.max_runs() {
        let scheduled_at = SCHEDULE_INTERVAL * (number as i32 - 1);
        clock.jump_to(first_run_at + scheduled_at);
        let before = store.snapshot();
        let started = Instant::now();
        let report = handle_schedule(
            &services,
            &issuer,
            &settings,
            &ScheduleEvent {
                schedule: Some("bench-renewal-drain".to_owned()),
                scheduled_time: Some(rfc3339(clock.now())),
                execution_id: Some(format!("run-{number}")),
                ..ScheduleEvent::default()
            },
        )
        .await
        .with_context(|| format!("renewer run {number}"))?;
        let wall = started.elapsed();
        let after = store.snapshot();
        let examined = report.examined;
        renewed += report.issued;
        runs.push(RunRecord {
            number,
            scheduled_at,
            report,
            due_items_counted: after.due_items - before.due_items,
            due_queries: after.due_queries - before.due_queries,
            store_calls: after.calls - before.calls,
            wall,
            issue_times: std::mem::take(
                &mut *issuer
                    .issue_times
                    .lock()
                    .unwrap_or_else(PoisonError::into_inner),
            ),
            slowest_store_call: store.slowest.take(),
            slowest_dns_lookup: resolver.slowest.take(),
            slowest_renewal_window: issuer.slowest_renewal_window.take(),
        });
        // The run that finds nothing due closes the drain (and shows an empty due query).
        if examined == 0 {
            break;
        }
    }
    let own_cpu = own_cpu_seconds() - own_cpu_before;
    let ca_cpu = ca_cpu_seconds(&pebble)? - ca_cpu_before;

    let verified = verify(&sqlite, &vault, &pebble, &seeded, clock.now()).await?;
    let mut section = report(
        options,
        &plan,
        &runs,
        renewed,
        &ca_counter,
        &verified,
        own_cpu,
        ca_cpu,
        seeding,
    );
    let problems = problems(&plan, &runs, renewed, &ca_counter, &verified);
    if problems.is_empty() {
        section.note("Checks: all passed.");
    } else {
        section.note(format!("**Checks failed:** {}.", problems.join("; ")));
    }
    section.publish()?;
    if !problems.is_empty() {
        bail!("renewal drain checks failed: {}", problems.join("; "));
    }
    Ok(())
}

/// What was seeded, to compare with after the drain.
struct Seeded {
    /// The one account owning every domain.
    account: Option<AccountId>,
    /// Due certificates with the material version and chain they were seeded with.
    due: Vec<(CertificateId, String, String)>,
    /// Not-due certificates with their version (the renewer must leave them alone).
    not_due: Vec<(CertificateId, u64)>,
}

/// Seeds `plan.due + plan.not_due` active domains with issued certificates, then makes the
/// first `plan.due` look issued 60 days ago and due for renewal (earliest first, a second
/// apart).
async fn seed(dir: &std::path::Path, plan: &DrainPlan) -> anyhow::Result<Seeded> {
    let ca = BenchCa::new()?;
    let due_names = hostnames("due", plan.due);
    let later_names = hostnames("later", plan.not_due);
    {
        let seeder = Seeder::open(dir).await?;
        seeder
            .add_each(&due_names, ORIGIN_URL, &ca, KeyKind::EcdsaP256)
            .await?;
        seeder
            .add_each(&later_names, ORIGIN_URL, &ca, KeyKind::EcdsaP256)
            .await?;
    }
    let database = Database::open(database_path(dir))?;
    let store = database.store();
    let vault = database.vault();
    let now = OffsetDateTime::now_utc();
    let mut seeded = Seeded {
        account: None,
        due: Vec::with_capacity(plan.due),
        not_due: Vec::with_capacity(plan.not_due),
    };
    for (index, name) in due_names.iter().enumerate() {
        let mut certificate = seeded_certificate(&store, name).await?;
        certificate.issued_at = Some(now - Duration::days(60));
        certificate.not_before = Some(now - Duration::days(60));
        certificate.expires_at = Some(now + Duration::days(30));
        certificate.next_renewal_at =
            Some(now - Duration::minutes(1) - Duration::seconds(index as i64));
        let certificate = store.update_certificate(&certificate).await?;
        let version = certificate
            .material_version
            .clone()
            .context("a seeded certificate has no material")?;
        let chain = vault
            .get_material(&certificate.id, &MaterialVersion(version.clone()))
            .await?
            .chain_pem
            .unwrap_or_default();
        seeded.account = Some(certificate.account_id.clone());
        seeded.due.push((certificate.id, version, chain));
    }
    for name in &later_names {
        let certificate = seeded_certificate(&store, name).await?;
        seeded.not_due.push((certificate.id, certificate.version));
    }
    Ok(seeded)
}

/// The managed certificate of the seeded domain `name`.
async fn seeded_certificate(store: &dyn Store, name: &str) -> anyhow::Result<Certificate> {
    let hostname = Hostname::parse_domain(name).with_context(|| format!("{name} is invalid"))?;
    let domain = store
        .domain_by_hostname(&hostname)
        .await?
        .with_context(|| format!("{name} was not seeded"))?;
    let id = CertificateId::managed_for(&domain.id);
    store
        .get_certificate(&domain.account_id, &id)
        .await?
        .with_context(|| format!("{name} has no certificate"))
}

impl Verified {
    /// Adds the gaps between one certificate's consecutive events (given newest first).
    fn add_phases(&mut self, events: &[CertificateEvent]) {
        let oldest_first: Vec<&CertificateEvent> = events.iter().rev().collect();
        for pair in oldest_first.windows(2) {
            let phase = format!("{} -> {}", event_label(pair[0]), event_label(pair[1]));
            let gap = StdDuration::try_from(pair[1].at - pair[0].at).unwrap_or_default();
            match self.phases.iter_mut().find(|(known, _)| *known == phase) {
                Some((_, gaps)) => gaps.push(gap),
                None => self.phases.push((phase, vec![gap])),
            }
        }
    }

    /// Keeps `problem` among the first few, for the report.
    fn example(&mut self, problem: String) {
        if self.examples.len() < 5 {
            self.examples.push(problem);
        }
    }
}

/// What the store and Pebble hold after the drain.
#[derive(Default)]
struct Verified {
    /// Due certificates issued with new material from Pebble, no longer due.
    renewed_with_new_material: usize,
    /// Orders placed per due certificate, from its events: how many had 0, 1, 2, ...
    orders_per_certificate: HashMap<usize, usize>,
    /// `issued` events per due certificate: how many had 0, 1, 2, ...
    issued_per_certificate: HashMap<usize, usize>,
    /// Not-due certificates the renewer changed.
    not_due_touched: usize,
    /// From the order event to the `issued` event, per renewed certificate.
    order_to_issued: Vec<StdDuration>,
    /// Time between consecutive events of a renewal, by the pair of events, in the order they
    /// were first met: where a renewal's time goes.
    phases: Vec<(String, Vec<StdDuration>)>,
    /// Warning and error events of the renewals: transient failures the issuer retried
    /// within a run (a failed renewal also counts in the runs' reports).
    warnings: usize,
    /// Their kinds (step and ACME problem type, or the message without its details), with
    /// how many of each.
    warning_kinds: Vec<(String, usize)>,
    /// The first few problems, for the report.
    examples: Vec<String>,
}

async fn verify(
    store: &Arc<dyn Store>,
    vault: &Arc<dyn Vault>,
    pebble: &Pebble,
    seeded: &Seeded,
    now: OffsetDateTime,
) -> anyhow::Result<Verified> {
    let intermediate = pebble_intermediate(pebble).await?;
    let account = seeded.account.clone().context("nothing was seeded")?;
    let mut verified = Verified::default();
    for (id, old_version, old_chain) in &seeded.due {
        let certificate = store
            .get_certificate(&account, id)
            .await?
            .with_context(|| format!("certificate {id} disappeared"))?;
        let events = store.list_events(id, 1_000).await?;
        let placed: Vec<&CertificateEvent> = events
            .iter()
            .filter(|event| event.step == "order" && event.message.starts_with(PLACED_ORDER))
            .collect();
        let issued: Vec<&CertificateEvent> = events
            .iter()
            .filter(|event| event.step == "issued")
            .collect();
        *verified
            .orders_per_certificate
            .entry(placed.len())
            .or_default() += 1;
        *verified
            .issued_per_certificate
            .entry(issued.len())
            .or_default() += 1;
        if let (Some(order), Some(done)) = (placed.last(), issued.first()) {
            // Events are newest first: the first order placed to the last issuance.
            verified
                .order_to_issued
                .push(StdDuration::try_from(done.at - order.at).unwrap_or_default());
        }
        verified.add_phases(&events);
        for event in events
            .iter()
            .filter(|event| event.level != EventLevel::Info)
        {
            verified.warnings += 1;
            // The problem type, not the message: messages carry one-off details (nonces).
            let kind = format!(
                "{}: {}",
                event.step,
                event.acme_problem.clone().unwrap_or_else(|| event
                    .message
                    .split(':')
                    .next()
                    .unwrap_or_default()
                    .to_owned())
            );
            match verified
                .warning_kinds
                .iter_mut()
                .find(|(known, _)| *known == kind)
            {
                Some((_, count)) => *count += 1,
                None => verified.warning_kinds.push((kind, 1)),
            }
        }
        let new_material = match certificate.material_version.as_deref() {
            Some(version) if version != old_version => {
                let material = vault
                    .get_material(id, &MaterialVersion(version.to_owned()))
                    .await?;
                material.chain_pem.is_some_and(|chain| {
                    chain != *old_chain && squeeze(&chain).contains(&squeeze(&intermediate))
                })
            }
            _ => false,
        };
        let not_due = certificate.due_at().is_none_or(|at| at > now);
        if certificate.status == CertificateStatus::Issued && new_material && not_due {
            verified.renewed_with_new_material += 1;
        } else {
            verified.example(format!(
                "{} is {:?}, new Pebble material: {new_material}, due at {:?}, last error: {:?}",
                certificate.domain,
                certificate.status,
                certificate.due_at(),
                certificate.last_error
            ));
        }
    }
    for (id, version) in &seeded.not_due {
        let unchanged = store
            .get_certificate(&account, id)
            .await?
            .is_some_and(|certificate| certificate.version == *version);
        if !unchanged {
            verified.not_due_touched += 1;
        }
    }
    Ok(verified)
}

/// What an issuer event marks, for the breakdown of a renewal's time.
fn event_label(event: &CertificateEvent) -> String {
    if event.level != EventLevel::Info {
        return format!("{} failure, retried", event.step);
    }
    match (event.step.as_str(), event.message.as_str()) {
        ("preflight", _) => "pre-flight passed".to_owned(),
        ("order", message) if message.starts_with(PLACED_ORDER) => "order placed".to_owned(),
        ("order", message) if message.starts_with("Resumed") => "order resumed".to_owned(),
        ("challenge", message) if message.starts_with("Validating") => "answers stored".to_owned(),
        ("challenge", message) if message.starts_with("Every name") => "order ready".to_owned(),
        ("key", _) => "key stored".to_owned(),
        ("finalize", _) => "CSR sent".to_owned(),
        ("stored", _) => "chain stored".to_owned(),
        ("issued", _) => "issued".to_owned(),
        (step, _) => step.to_owned(),
    }
}

/// The PEM of Pebble's intermediate, which every chain it issues carries after the leaf.
async fn pebble_intermediate(pebble: &Pebble) -> anyhow::Result<String> {
    let url = format!("{}/intermediates/0", pebble.management_url());
    let response = pebble
        .http_client()?
        .get(&url)
        .send()
        .await
        .with_context(|| format!("GET {url}"))?
        .error_for_status()
        .with_context(|| format!("GET {url}"))?;
    Ok(response.text().await?)
}

/// PEM without line breaks, so two encodings of one certificate compare equal.
fn squeeze(pem: &str) -> String {
    pem.chars().filter(|c| !c.is_whitespace()).collect()
}

/// Every target or check the drain missed; empty when all hold.
fn problems(
    plan: &DrainPlan,
    runs: &[RunRecord],
    renewed: usize,
    ca_counter: &CaFaults,
    verified: &Verified,
) -> Vec<String> {
    let mut problems = Vec::new();
    if runs.last().is_none_or(|run| run.report.examined != 0) {
        problems.push(format!(
            "still due after {} runs (the most the budget can need)",
            runs.len()
        ));
    }
    if renewed != plan.due {
        problems.push(format!("{renewed} of {} renewed", plan.due));
    }
    if ca_counter.new_orders() != plan.due {
        problems.push(format!(
            "the CA created {} orders for {} certificates",
            ca_counter.new_orders(),
            plan.due
        ));
    }
    let once = |counts: &HashMap<usize, usize>| counts.get(&1).copied().unwrap_or_default();
    if once(&verified.orders_per_certificate) != plan.due {
        problems.push(format!(
            "orders placed per certificate (count: certificates): {:?}",
            verified.orders_per_certificate
        ));
    }
    if once(&verified.issued_per_certificate) != plan.due {
        problems.push(format!(
            "issuances per certificate (count: certificates): {:?}",
            verified.issued_per_certificate
        ));
    }
    if verified.renewed_with_new_material != plan.due {
        problems.push(format!(
            "{} of {} hold new Pebble material and are no longer due; e.g. {}",
            verified.renewed_with_new_material,
            plan.due,
            verified.examples.join(" | ")
        ));
    }
    if verified.not_due_touched > 0 {
        problems.push(format!(
            "{} certificates that were not due were changed",
            verified.not_due_touched
        ));
    }
    let failures: usize = runs
        .iter()
        .map(|run| run.report.failed + run.report.error_count)
        .sum();
    if failures > 0 {
        let examples: Vec<String> = runs
            .iter()
            .flat_map(|run| run.report.errors.iter().map(|(_, error)| error.clone()))
            .take(3)
            .collect();
        problems.push(format!("{failures} failures ({})", examples.join(" | ")));
    }
    for run in runs {
        let due_at_start = run.report.examined as u64;
        if run.due_items_counted != due_at_start || run.report.items_read != due_at_start {
            problems.push(format!(
                "run {}: the due query returned {} items (adapter: {}) for {} due",
                run.number, run.due_items_counted, run.report.items_read, due_at_start
            ));
        }
    }
    problems
}

#[allow(clippy::too_many_arguments)]
fn report(
    options: Options,
    plan: &DrainPlan,
    runs: &[RunRecord],
    renewed: usize,
    ca_counter: &CaFaults,
    verified: &Verified,
    own_cpu: f64,
    ca_cpu: f64,
    seeding: StdDuration,
) -> Section {
    let mut section = Section::new("Renewal drain", "renewal-drain", options);
    let working: Vec<&RunRecord> = runs.iter().filter(|run| run.report.examined > 0).collect();
    let wall: StdDuration = working.iter().map(|run| run.wall).sum();
    let per_minute = renewed as f64 / wall.as_secs_f64().max(f64::EPSILON) * 60.0;
    let orders = ca_counter.new_orders();
    let stored = plan.due + plan.not_due;
    let most_read = runs
        .iter()
        .map(|run| run.due_items_counted)
        .max()
        .unwrap_or_default();
    let failures: usize = runs
        .iter()
        .map(|run| run.report.failed + run.report.error_count)
        .sum();
    let budget = format!(
        "{} orders per {} h, a run every {} h",
        plan.budget_orders,
        plan.budget_period.whole_minutes() as f64 / 60.0,
        SCHEDULE_INTERVAL.whole_hours()
    );
    let simulated = runs
        .iter()
        .filter(|run| run.report.issued > 0)
        .map(|run| run.scheduled_at)
        .max()
        .unwrap_or_default();
    let mut order_to_issued = verified.order_to_issued.clone();
    let most_orders = verified
        .orders_per_certificate
        .keys()
        .max()
        .copied()
        .unwrap_or_default();
    let ok = |met: bool| if met { "yes" } else { "**no**" }.to_owned();
    let one_order_met = orders == renewed && renewed == plan.due && most_orders == 1;
    let due_reads_met = runs.iter().all(|run| {
        run.due_items_counted == run.report.examined as u64
            && run.report.items_read == run.report.examined as u64
    });
    let empty_run_met = runs
        .last()
        .is_some_and(|run| run.report.examined == 0 && run.due_items_counted == 0);

    let mut summary = Table::new(
        &format!(
            "{} due certificates among {} stored, against Pebble (PEBBLE_VA_NOSLEEP=1), budget {budget}",
            whole(plan.due as f64),
            whole(stored as f64)
        ),
        &["Metric", "EdgeCert", "Target", "Met"],
    );
    summary.row(vec![
        "Orders per certificate (orders the CA created / certificates renewed)".to_owned(),
        format!("{:.3}", orders as f64 / renewed.max(1) as f64),
        "exactly 1.0".to_owned(),
        ok(one_order_met),
    ]);
    summary.row(vec![
        "Most orders placed for one certificate (its events)".to_owned(),
        most_orders.to_string(),
        "1".to_owned(),
        ok(most_orders == 1),
    ]);
    summary.row(vec![
        "Items read by the due query per run, largest".to_owned(),
        format!(
            "{} (= due at that run's start; {} stored)",
            whole(most_read as f64),
            whole(stored as f64)
        ),
        "O(due)".to_owned(),
        ok(due_reads_met),
    ]);
    summary.row(vec![
        "Items read by the run that found nothing due".to_owned(),
        runs.last()
            .map(|run| whole(run.due_items_counted as f64))
            .unwrap_or_default(),
        "0".to_owned(),
        ok(empty_run_met),
    ]);
    summary.row(vec![
        "Certificates renewed, with new Pebble material".to_owned(),
        format!(
            "{} of {}",
            whole(verified.renewed_with_new_material as f64),
            whole(plan.due as f64)
        ),
        "all".to_owned(),
        ok(verified.renewed_with_new_material == plan.due),
    ]);
    summary.row(vec![
        "Renewals per minute of wall time (runs only)".to_owned(),
        whole(per_minute),
        "-".to_owned(),
        "-".to_owned(),
    ]);
    let mut run_rates: Vec<f64> = working
        .iter()
        .map(|run| run.report.issued as f64 / run.wall.as_secs_f64().max(f64::EPSILON) * 60.0)
        .collect();
    run_rates.sort_by(f64::total_cmp);
    summary.row(vec![
        "Renewals per minute, median run (robust to a stalled run)".to_owned(),
        whole(
            run_rates
                .get(run_rates.len() / 2)
                .copied()
                .unwrap_or_default(),
        ),
        "-".to_owned(),
        "-".to_owned(),
    ]);
    summary.row(vec![
        "Runs needed with the budget".to_owned(),
        format!(
            "{} ({} h of schedule)",
            working.len(),
            simulated.whole_hours()
        ),
        format!(
            "{} ({} at once, then the hourly refill)",
            expected_runs(plan),
            plan.budget_orders
        ),
        ok(working.len() <= expected_runs(plan) + 1),
    ]);
    summary.row(vec![
        "Failures (failed renewals + errors)".to_owned(),
        failures.to_string(),
        "0".to_owned(),
        ok(failures == 0),
    ]);
    let mut issue_times: Vec<StdDuration> = runs
        .iter()
        .flat_map(|run| run.issue_times.iter().copied())
        .collect();
    summary.row(vec![
        "Transient failures retried within a renewal (warning events)".to_owned(),
        if verified.warning_kinds.is_empty() {
            "0".to_owned()
        } else {
            format!(
                "{} ({})",
                verified.warnings,
                verified
                    .warning_kinds
                    .iter()
                    .map(|(kind, count)| format!("{count} x {kind}"))
                    .collect::<Vec<_>>()
                    .join("; ")
                    .replace('|', "/")
            )
        },
        "-".to_owned(),
        "-".to_owned(),
    ]);
    summary.row(vec![
        "One renewal as the renewer waits for it (`Issuance::issue`), p50 / p99 / max".to_owned(),
        format!(
            "{} / {} / {}",
            millis(quantile(&mut issue_times, 0.5)),
            millis(quantile(&mut issue_times, 0.99)),
            millis(quantile(&mut issue_times, 1.0))
        ),
        "-".to_owned(),
        "-".to_owned(),
    ]);
    summary.row(vec![
        "Order placed -> issued, p50 / p99 (events)".to_owned(),
        format!(
            "{} / {}",
            millis(quantile(&mut order_to_issued, 0.5)),
            millis(quantile(&mut order_to_issued, 0.99))
        ),
        "-".to_owned(),
        "-".to_owned(),
    ]);
    summary.row(vec![
        "CPU per renewal: renewer + issuer + HTTP-01 responder / Pebble + challtestsrv".to_owned(),
        format!(
            "{:.1} ms / {:.1} ms",
            own_cpu * 1000.0 / renewed.max(1) as f64,
            ca_cpu * 1000.0 / renewed.max(1) as f64
        ),
        "-".to_owned(),
        "-".to_owned(),
    ]);
    section.table(summary);

    let mut phases = Table::new(
        "Where a renewal's time goes (gaps between its events, all renewals)",
        &["Between events", "p50", "p99", "max", "Renewals"],
    );
    for (phase, gaps) in &verified.phases {
        let mut gaps = gaps.clone();
        phases.row(vec![
            phase.clone(),
            millis(quantile(&mut gaps, 0.5)),
            millis(quantile(&mut gaps, 0.99)),
            millis(quantile(&mut gaps, 1.0)),
            whole(gaps.len() as f64),
        ]);
    }
    section.table(phases);

    let mut per_run = Table::new(
        "Runs",
        &[
            "Run",
            "Scheduled at",
            "Due at start",
            "Items read (decorator / adapter)",
            "Due queries",
            "Renewed",
            "Deferred (budget)",
            "Failed",
            "Store calls",
            "Wall time",
            "Renewals/min",
            "Slowest renewal / store call / DNS lookup / ARI probe",
        ],
    );
    for run in runs {
        let report = &run.report;
        per_run.row(vec![
            run.number.to_string(),
            format!("+{} h", run.scheduled_at.whole_hours()),
            whole(report.examined as f64),
            format!(
                "{} / {}",
                whole(run.due_items_counted as f64),
                whole(report.items_read as f64)
            ),
            run.due_queries.to_string(),
            whole(report.issued as f64),
            whole(report.deferred as f64),
            (report.failed + report.error_count).to_string(),
            whole(run.store_calls as f64),
            millis(run.wall),
            if report.issued > 0 {
                whole(report.issued as f64 / run.wall.as_secs_f64().max(f64::EPSILON) * 60.0)
            } else {
                "-".to_owned()
            },
            format!(
                "{} / {} / {} / {}",
                millis(run.issue_times.iter().max().copied().unwrap_or_default()),
                millis(run.slowest_store_call),
                millis(run.slowest_dns_lookup),
                millis(run.slowest_renewal_window)
            ),
        ]);
    }
    section.table(per_run);

    section.note(format!(
        "Method: a SQLite store and vault seeded through the ports with {} active domains and \
         issued managed certificates from a throwaway CA ({:.1} s); {} of them made due \
         (issued 60 days ago, renewal time passed), the rest due in 60 days. Every name resolves \
         to the edge through challtestsrv, HTTP-01 is answered from the store on Pebble's \
         validation port, and the renewer runs as the scheduled Lambda does \
         (`edgecert_workers::renewer::handle_schedule`; the issuer's order budget {budget}; {} at \
         once, pages of 100, the production issuer pacing: `IssuerConfig`'s defaults, first \
         poll after {} ms). \
         Between runs only the clock jumps to the next scheduled hour; during a run it moves in \
         real time, so the order budget refills as in production. Wall time counts the runs \
         only. Orders are counted at the CA (a counting pass-through of the issuer's HTTP client: \
         newOrder requests the CA answered with success; {} newOrder requests in all, {} badNonce \
         answers retried) and per certificate from its `order` events; items read are the due \
         query's results, counted by a decorator around the store and by the adapter itself. \
         Pebble and challtestsrv run on core {SERVER_CORE}, the renewer on core {LOAD_CORE}.",
        whole(stored as f64),
        seeding.as_secs_f64(),
        whole(plan.due as f64),
        plan.workers.concurrency,
        IssuerConfig::new(String::new())
            .poll_initial_delay
            .as_millis(),
        ca_counter.new_order_requests(),
        ca_counter.problems("badNonce"),
    ));
    section.note(
        "Peers: none. The issue sets absolute targets for this scenario (exactly one order per \
         certificate, a due query that reads O(due)); certbot and lego, the usual ACME clients, \
         are not installed here, and neither renews from a shared store under a CA-wide order \
         budget, so there is no like-for-like figure to set beside ours.",
    );
    let renewal_p50 = quantile(&mut issue_times, 0.5);
    let renewals_per_second = per_minute / 60.0;
    section.note(format!(
        "Targets (issue #8): exactly one order per certificate: **{}**; a due query that reads \
         O(due) (items read = due at the run's start, none once nothing is due): **{}**. The \
         issue sets no rate. Within a run: {} renewals in flight, {} per renewal \
         (`Issuance::issue`, p50), {:.1} requests to the CA per renewal (badNonce retries \
         included); CPU per renewal {:.1} ms of ours and {:.1} ms of Pebble's at {:.1} \
         renewals/s ({:.0}% and {:.0}% of a core).",
        verdict(one_order_met),
        verdict(due_reads_met && empty_run_met),
        plan.workers.concurrency,
        millis(renewal_p50),
        ca_counter.requests() as f64 / renewed.max(1) as f64,
        own_cpu * 1000.0 / renewed.max(1) as f64,
        ca_cpu * 1000.0 / renewed.max(1) as f64,
        renewals_per_second,
        own_cpu / wall.as_secs_f64().max(f64::EPSILON) * 100.0,
        ca_cpu / wall.as_secs_f64().max(f64::EPSILON) * 100.0,
    ));
    let stalls: Vec<String> = runs
        .iter()
        .filter(|run| run.slowest_store_call > STALL || run.slowest_dns_lookup > STALL)
        .map(|run| {
            format!(
                "run {} (a store call of {}, a DNS lookup of {})",
                run.number,
                millis(run.slowest_store_call),
                millis(run.slowest_dns_lookup)
            )
        })
        .collect();
    if !stalls.is_empty() {
        section.note(format!(
            "Stalls (a store call or DNS lookup over {}): {}.",
            millis(STALL),
            stalls.join(", ")
        ));
    }
    section
}

fn verdict(met: bool) -> &'static str {
    if met { "met" } else { "missed" }
}

/// Runs the budget needs: the full bucket at once, then one refill per scheduled run.
fn expected_runs(plan: &DrainPlan) -> usize {
    let first = plan.budget_orders as usize;
    let refill = BucketLimits::per_period(plan.budget_orders, plan.budget_period).refill_every;
    let per_run = (SCHEDULE_INTERVAL.whole_seconds() / refill.whole_seconds().max(1)).max(1);
    1 + plan.due.saturating_sub(first).div_ceil(per_run as usize)
}

/// CPU seconds of Pebble and challtestsrv so far.
fn ca_cpu_seconds(pebble: &Pebble) -> anyhow::Result<f64> {
    Ok(cpu_seconds_of(pebble.pebble_pid())? + cpu_seconds_of(pebble.challtestsrv_pid())?)
}

/// Moves a running process (every thread) to `core`.
fn pin_process(pid: u32, core: usize) -> anyhow::Result<()> {
    let status = std::process::Command::new("taskset")
        .args(["-a", "-p", "-c", &core.to_string(), &pid.to_string()])
        .stdout(std::process::Stdio::null())
        .status()
        .context("running taskset (util-linux)")?;
    if !status.success() {
        bail!("taskset could not pin process {pid} to core {core}");
    }
    Ok(())
}

fn rfc3339(at: OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

/// The scheduler's clock: real time shifted so that each run starts at its scheduled hour.
/// Only the jumps between runs are simulated; within a run time passes as it does.
struct ScheduleClock {
    offset: Mutex<Duration>,
}

impl ScheduleClock {
    fn new() -> ScheduleClock {
        ScheduleClock {
            offset: Mutex::new(Duration::ZERO),
        }
    }

    /// Shifts the clock so that it reads `at` now.
    fn jump_to(&self, at: OffsetDateTime) {
        *self.offset.lock().unwrap_or_else(PoisonError::into_inner) =
            at - OffsetDateTime::now_utc();
    }
}

impl Clock for ScheduleClock {
    fn now(&self) -> OffsetDateTime {
        OffsetDateTime::now_utc() + *self.offset.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Counters of a [`CountingStore`] at one moment.
#[derive(Debug, Clone, Copy)]
struct StoreCounts {
    calls: u64,
    due_queries: u64,
    due_items: u64,
}

/// The store, with every call counted and the due query's results counted apart: what a run
/// costs in store reads, measured outside the adapter's own `items_read`.
struct CountingStore {
    inner: Arc<dyn Store>,
    /// The slowest call since last taken (a stall shows here, not in the counts).
    slowest: Slowest,
    calls: AtomicU64,
    due_queries: AtomicU64,
    due_items: AtomicU64,
}

impl CountingStore {
    fn new(inner: Arc<dyn Store>) -> CountingStore {
        CountingStore {
            inner,
            slowest: Slowest::default(),
            calls: AtomicU64::new(0),
            due_queries: AtomicU64::new(0),
            due_items: AtomicU64::new(0),
        }
    }

    fn snapshot(&self) -> StoreCounts {
        StoreCounts {
            calls: self.calls.load(Ordering::SeqCst),
            due_queries: self.due_queries.load(Ordering::SeqCst),
            due_items: self.due_items.load(Ordering::SeqCst),
        }
    }

    /// Awaits one call of the inner store, counted and timed.
    async fn timed<T>(&self, call: impl std::future::Future<Output = T>) -> T {
        self.calls.fetch_add(1, Ordering::Relaxed);
        let started = Instant::now();
        let outcome = call.await;
        self.slowest.record(started.elapsed());
        outcome
    }
}

#[async_trait]
impl AccountStore for CountingStore {
    async fn create_account(&self, account: &Account, api_key: &ApiKeyHash) -> CoreResult<()> {
        self.timed(self.inner.create_account(account, api_key))
            .await
    }
    async fn get_account(&self, id: &AccountId) -> CoreResult<Option<Account>> {
        self.timed(self.inner.get_account(id)).await
    }
    async fn update_account(&self, account: &Account) -> CoreResult<Account> {
        self.timed(self.inner.update_account(account)).await
    }
    async fn account_for_api_key(&self, api_key: &ApiKeyHash) -> CoreResult<Option<AccountId>> {
        self.timed(self.inner.account_for_api_key(api_key)).await
    }
    async fn account_usage(&self, id: &AccountId) -> CoreResult<AccountUsage> {
        self.timed(self.inner.account_usage(id)).await
    }
    async fn list_accounts(&self, page: PageRequest) -> CoreResult<Page<Account>> {
        self.timed(self.inner.list_accounts(page)).await
    }
}

#[async_trait]
impl DomainStore for CountingStore {
    async fn create_domain(&self, domain: &Domain, max_domains: u32) -> CoreResult<()> {
        self.timed(self.inner.create_domain(domain, max_domains))
            .await
    }
    async fn get_domain(&self, account: &AccountId, id: &DomainId) -> CoreResult<Option<Domain>> {
        self.timed(self.inner.get_domain(account, id)).await
    }
    async fn domain_by_hostname(&self, hostname: &Hostname) -> CoreResult<Option<Domain>> {
        self.timed(self.inner.domain_by_hostname(hostname)).await
    }
    async fn list_domains(
        &self,
        account: &AccountId,
        page: PageRequest,
    ) -> CoreResult<Page<Domain>> {
        self.timed(self.inner.list_domains(account, page)).await
    }
    async fn update_domain(&self, domain: &Domain) -> CoreResult<Domain> {
        self.timed(self.inner.update_domain(domain)).await
    }
    async fn delete_domain(
        &self,
        account: &AccountId,
        id: &DomainId,
        at: OffsetDateTime,
    ) -> CoreResult<()> {
        self.timed(self.inner.delete_domain(account, id, at)).await
    }
    async fn domains_changed_since(
        &self,
        since: OffsetDateTime,
        page: PageRequest,
    ) -> CoreResult<Page<DomainChange>> {
        self.timed(self.inner.domains_changed_since(since, page))
            .await
    }
}

#[async_trait]
impl ZoneStore for CountingStore {
    async fn create_zone(&self, zone: &Zone) -> CoreResult<()> {
        self.timed(self.inner.create_zone(zone)).await
    }
    async fn get_zone(&self, account: &AccountId, id: &ZoneId) -> CoreResult<Option<Zone>> {
        self.timed(self.inner.get_zone(account, id)).await
    }
    async fn zone_by_name(&self, name: &Hostname) -> CoreResult<Option<Zone>> {
        self.timed(self.inner.zone_by_name(name)).await
    }
    async fn list_zones(&self, account: &AccountId, page: PageRequest) -> CoreResult<Page<Zone>> {
        self.timed(self.inner.list_zones(account, page)).await
    }
    async fn update_zone(&self, zone: &Zone) -> CoreResult<Zone> {
        self.timed(self.inner.update_zone(zone)).await
    }
    async fn delete_zone(&self, account: &AccountId, id: &ZoneId) -> CoreResult<()> {
        self.timed(self.inner.delete_zone(account, id)).await
    }
}

#[async_trait]
impl CertificateStore for CountingStore {
    async fn create_certificate(
        &self,
        certificate: &Certificate,
        max_certificates: u32,
    ) -> CoreResult<()> {
        self.timed(self.inner.create_certificate(certificate, max_certificates))
            .await
    }
    async fn get_certificate(
        &self,
        account: &AccountId,
        id: &CertificateId,
    ) -> CoreResult<Option<Certificate>> {
        self.timed(self.inner.get_certificate(account, id)).await
    }
    async fn list_certificates(
        &self,
        account: &AccountId,
        page: PageRequest,
    ) -> CoreResult<Page<Certificate>> {
        self.timed(self.inner.list_certificates(account, page))
            .await
    }
    async fn update_certificate(&self, certificate: &Certificate) -> CoreResult<Certificate> {
        self.timed(self.inner.update_certificate(certificate)).await
    }
    async fn delete_certificate(&self, account: &AccountId, id: &CertificateId) -> CoreResult<()> {
        self.timed(self.inner.delete_certificate(account, id)).await
    }
    async fn due_certificates(
        &self,
        now: OffsetDateTime,
        page: PageRequest,
    ) -> CoreResult<Page<Certificate>> {
        let page = self.timed(self.inner.due_certificates(now, page)).await?;
        self.due_queries.fetch_add(1, Ordering::SeqCst);
        self.due_items
            .fetch_add(page.items.len() as u64, Ordering::SeqCst);
        Ok(page)
    }
    async fn certificates_changed_since(
        &self,
        since: OffsetDateTime,
        page: PageRequest,
    ) -> CoreResult<Page<Certificate>> {
        self.timed(self.inner.certificates_changed_since(since, page))
            .await
    }
}

#[async_trait]
impl EventLog for CountingStore {
    async fn append_event(&self, event: &CertificateEvent) -> CoreResult<()> {
        self.timed(self.inner.append_event(event)).await
    }
    async fn list_events(
        &self,
        certificate: &CertificateId,
        limit: u32,
    ) -> CoreResult<Vec<CertificateEvent>> {
        self.timed(self.inner.list_events(certificate, limit)).await
    }
}

#[async_trait]
impl ChallengeStore for CountingStore {
    async fn put_http01(&self, challenge: &Http01Challenge) -> CoreResult<()> {
        self.timed(self.inner.put_http01(challenge)).await
    }
    async fn get_http01(
        &self,
        token: &str,
        now: OffsetDateTime,
    ) -> CoreResult<Option<Http01Challenge>> {
        self.timed(self.inner.get_http01(token, now)).await
    }
    async fn delete_http01(&self, token: &str) -> CoreResult<()> {
        self.timed(self.inner.delete_http01(token)).await
    }
}

#[async_trait]
impl LeaseStore for CountingStore {
    async fn acquire_lease(
        &self,
        name: &str,
        owner: &str,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> CoreResult<Lease> {
        self.timed(self.inner.acquire_lease(name, owner, ttl, now))
            .await
    }
    async fn renew_lease(
        &self,
        lease: &Lease,
        ttl: Duration,
        now: OffsetDateTime,
    ) -> CoreResult<Lease> {
        self.timed(self.inner.renew_lease(lease, ttl, now)).await
    }
    async fn release_lease(&self, lease: &Lease) -> CoreResult<()> {
        self.timed(self.inner.release_lease(lease)).await
    }
}

#[async_trait]
impl TokenBucketStore for CountingStore {
    async fn take_tokens(
        &self,
        name: &str,
        wanted: u32,
        limits: &BucketLimits,
        now: OffsetDateTime,
    ) -> CoreResult<u32> {
        self.timed(self.inner.take_tokens(name, wanted, limits, now))
            .await
    }
    async fn read_token_bucket(&self, name: &str) -> CoreResult<Option<TokenBucket>> {
        self.timed(self.inner.read_token_bucket(name)).await
    }
}

/// The longest of some durations, recorded from many tasks at once.
#[derive(Default)]
struct Slowest {
    nanos: AtomicU64,
}

impl Slowest {
    fn record(&self, took: StdDuration) {
        let nanos = u64::try_from(took.as_nanos()).unwrap_or(u64::MAX);
        self.nanos.fetch_max(nanos, Ordering::Relaxed);
    }

    /// The longest since the last take, and starts again.
    fn take(&self) -> StdDuration {
        StdDuration::from_nanos(self.nanos.swap(0, Ordering::Relaxed))
    }
}

/// The DNS resolver, with its slowest lookup recorded: the renewer checks every due
/// certificate's DNS (deferred ones too), so a lost UDP answer stalls a run here.
struct TimedResolver {
    inner: Arc<dyn DnsResolver>,
    slowest: Slowest,
}

impl TimedResolver {
    async fn timed<T>(&self, lookup: impl std::future::Future<Output = T>) -> T {
        let started = Instant::now();
        let outcome = lookup.await;
        self.slowest.record(started.elapsed());
        outcome
    }
}

#[async_trait]
impl DnsResolver for TimedResolver {
    async fn txt(&self, name: &str) -> CoreResult<Vec<String>> {
        self.timed(self.inner.txt(name)).await
    }
    async fn ip_addresses(&self, name: &str) -> CoreResult<Vec<IpAddr>> {
        self.timed(self.inner.ip_addresses(name)).await
    }
    async fn cname(&self, name: &str) -> CoreResult<Option<String>> {
        self.timed(self.inner.cname(name)).await
    }
    async fn caa(&self, name: &str) -> CoreResult<Vec<CaaRecord>> {
        self.timed(self.inner.caa(name)).await
    }
}

/// The issuer, with the time of every `issue` call recorded as the renewer waits for it (lease,
/// pre-flight and the whole ACME exchange), and the slowest ARI probe.
struct TimedIssuance {
    inner: Issuer,
    issue_times: Mutex<Vec<StdDuration>>,
    slowest_renewal_window: Slowest,
}

#[async_trait]
impl Issuance for TimedIssuance {
    async fn issue(
        &self,
        account: &AccountId,
        certificate: &CertificateId,
    ) -> CoreResult<IssueOutcome> {
        let started = Instant::now();
        let outcome = self.inner.issue(account, certificate).await;
        self.issue_times
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(started.elapsed());
        outcome
    }

    async fn revoke(&self, certificate: &Certificate) -> CoreResult<()> {
        self.inner.revoke(certificate).await
    }

    async fn renewal_window(
        &self,
        certificate: &Certificate,
    ) -> CoreResult<Option<RenewalSuggestion>> {
        let started = Instant::now();
        let window = self.inner.renewal_window(certificate).await;
        self.slowest_renewal_window.record(started.elapsed());
        window
    }
}

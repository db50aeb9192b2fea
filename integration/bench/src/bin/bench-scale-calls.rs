//! Scenario 8: AWS calls and cost at scale, in each key storage mode.
//!
//! Runs EdgeCert's real components on moto_server against Pebble, once with certificate keys
//! sealed in the table (`KeyStorage=sealed`) and once with one Secrets Manager secret per
//! certificate (`KeyStorage=secrets-manager`). Every component gets its own SDK clients, each
//! decorated with a counting interceptor, so every DynamoDB, KMS and Secrets Manager request is
//! counted per component and operation (DynamoDB requests also in request units, from the
//! sizes of the items read and written). A counting decorator on the vault port counts the
//! vault calls the components make. Measured, per mode:
//!
//! - the issuer's first certificate of a domain (the edge's first request: step and issuance);
//! - a terminator start: the full pass that loads every certificate and unseals its key;
//! - a terminator idle second: the change-feed passes when nothing changed;
//! - a renewal: the renewer's share (order, new sealed item or secret version, pruning) and a
//!   terminator's (reading the changed certificate and its new key);
//! - an idle renewer run: due query, expiry count, key storage sweep, with nothing due.
//!
//! The counts per operation, times the rates of a deployment (the constants below) and the
//! public prices (the `PRICE_*` constants, cited in BENCHMARKS.md), give the calls per hour per
//! component and the dollar table at 100, 10k, 100k and 1M domains.

use std::collections::{BTreeMap, HashMap};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration as StdDuration, Instant};

use anyhow::{Context as _, bail};
use async_trait::async_trait;
use aws_sdk_dynamodb::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use edgecert_acme::{Issuer, IssuerConfig};
use edgecert_aws::{AwsClients, DynamoStore, KeyStorage, KeyStorageVault, create_table};
use edgecert_aws::{ensure_kms_key, schema};
use edgecert_bench::report::{Options, Section, Table, whole};
use edgecert_bench::seed::roomy_budget;
use edgecert_core::model::{ProvisioningStep, SecretString};
use edgecert_core::origin::OriginPolicy;
use edgecert_core::ports::{
    CertificateMaterial, DnsProviders, Issuance, IssueOutcome, MaterialSweep, MaterialVersion,
    SystemClock, Vault,
};
use edgecert_core::usecases::accounts::{NewAccount, create_account};
use edgecert_core::usecases::domains::create_domain;
use edgecert_core::usecases::renewals::{EXPIRY_WARNING, count_expiring_unrenewed};
use edgecert_core::usecases::{EdgeSettings, Services};
use edgecert_core::{CertificateId, Plan, PlanCatalog, PlanName, Result as CoreResult};
use edgecert_dns::HickoryResolver;
use edgecert_integration::{Http01Responder, Moto, Pebble, PebbleOptions};
use edgecert_terminator::{Listeners, Terminator, TerminatorConfig};
use edgecert_workers::WorkerConfig;
use edgecert_workers::renewer::{ScheduleEvent, handle_key_storage, handle_schedule};
use serde_json::Value;
use time::Duration;

/// The CA identity Pebble stands for in CAA records.
const PEBBLE_CAA_IDENTITY: &str = "pebble.letsencrypt.org";
/// Where the domains proxy to; never contacted here.
const ORIGIN_URL: &str = "https://origin.example.net";

/// The deployment the model is for (template.yaml's defaults where it has one).
/// Terminator tasks (the scaling policy's minimum).
const TERMINATORS: f64 = 2.0;
/// Terminator starts per task and month (deploys, task replacements): one a day.
const STARTS_PER_TERMINATOR_MONTH: f64 = 30.0;
/// The terminator's full resync (full_resync_interval): once an hour.
const FULL_RESYNCS_PER_HOUR: f64 = 1.0;
/// Renewer runs an hour (RenewalSchedule: rate(1 hour)).
const RENEWER_RUNS_PER_HOUR: f64 = 1.0;
/// 90-day certificates renewed with 30 days left: each certificate every 60 days.
const RENEWAL_PERIOD_HOURS: f64 = 60.0 * 24.0;
const HOURS_PER_MONTH: f64 = 730.0;
/// Domain counts of the cost table.
const SCALES: [f64; 4] = [100.0, 10_000.0, 100_000.0, 1_000_000.0];

/// Public prices, us-east-1 (BENCHMARKS.md cites the pages).
const PRICE_SECRET_MONTH: f64 = 0.40;
const PRICE_SECRETS_PER_CALL: f64 = 0.05 / 10_000.0;
const PRICE_KMS_KEY_MONTH: f64 = 1.0;
const PRICE_KMS_PER_REQUEST: f64 = 0.03 / 10_000.0;
const PRICE_DYNAMODB_PER_WRU: f64 = 0.625 / 1_000_000.0;
const PRICE_DYNAMODB_PER_RRU: f64 = 0.125 / 1_000_000.0;
const PRICE_DYNAMODB_GB_MONTH: f64 = 0.25;

fn main() -> anyhow::Result<()> {
    let options = Options::from_args();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(options))
}

// ---------------------------------------------------------------------------------------------
// Counting: an interceptor on each SDK client, a decorator on the vault port.
// ---------------------------------------------------------------------------------------------

/// What was counted for one component: requests by `Service.Operation`, DynamoDB request
/// units, vault port calls by method.
#[derive(Debug, Default, Clone)]
struct Counts {
    requests: BTreeMap<String, f64>,
    /// DynamoDB read units by operation.
    reads_by_operation: BTreeMap<String, f64>,
    read_units: f64,
    write_units: f64,
    /// Bytes of the items DynamoDB queries answered (the change feeds' reads).
    query_bytes: f64,
    vault: BTreeMap<String, f64>,
}

impl Counts {
    fn service(&self, service: &str) -> f64 {
        self.requests
            .iter()
            .filter(|(name, _)| name.starts_with(service))
            .map(|(_, count)| count)
            .sum::<f64>()
            + 0.0 // an empty sum is -0.0
    }

    /// The requests (and their read units) of the operations `keep` selects; no vault calls.
    fn only(&self, keep: impl Fn(&str) -> bool) -> Counts {
        let pick = |map: &BTreeMap<String, f64>, prefix: &str| -> BTreeMap<String, f64> {
            map.iter()
                .filter(|(name, _)| keep(&format!("{prefix}{name}")))
                .map(|(name, count)| (name.clone(), *count))
                .collect()
        };
        let reads_by_operation = pick(&self.reads_by_operation, "DynamoDB.");
        Counts {
            requests: pick(&self.requests, ""),
            read_units: reads_by_operation.values().sum::<f64>() + 0.0,
            reads_by_operation,
            write_units: if keep("DynamoDB.write") {
                self.write_units
            } else {
                0.0
            },
            query_bytes: 0.0,
            vault: BTreeMap::new(),
        }
    }

    fn scaled(&self, factor: f64) -> Counts {
        let scale = |map: &BTreeMap<String, f64>| {
            map.iter()
                .map(|(name, count)| (name.clone(), count * factor))
                .collect()
        };
        Counts {
            requests: scale(&self.requests),
            reads_by_operation: scale(&self.reads_by_operation),
            read_units: self.read_units * factor,
            write_units: self.write_units * factor,
            query_bytes: self.query_bytes * factor,
            vault: scale(&self.vault),
        }
    }

    fn add(&mut self, other: &Counts) {
        for (name, count) in &other.requests {
            *self.requests.entry(name.clone()).or_default() += count;
        }
        for (name, count) in &other.reads_by_operation {
            *self.reads_by_operation.entry(name.clone()).or_default() += count;
        }
        for (name, count) in &other.vault {
            *self.vault.entry(name.clone()).or_default() += count;
        }
        self.read_units += other.read_units;
        self.write_units += other.write_units;
        self.query_bytes += other.query_bytes;
    }

    /// Negative figures (an estimate less what it over-counted) raised to zero.
    fn non_negative(mut self) -> Counts {
        for count in self
            .requests
            .values_mut()
            .chain(self.reads_by_operation.values_mut())
            .chain(self.vault.values_mut())
        {
            *count = count.max(0.0);
        }
        self.read_units = self.read_units.max(0.0);
        self.write_units = self.write_units.max(0.0);
        self.query_bytes = self.query_bytes.max(0.0);
        self
    }

    fn listing(map: &BTreeMap<String, f64>) -> String {
        map.iter()
            .filter(|(_, count)| **count > 0.0)
            .map(|(name, count)| format!("{name} {count:.2}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One component's counter, shared by its interceptors and its vault decorator.
#[derive(Debug, Default)]
struct Counter {
    counts: Mutex<Counts>,
    /// Last known size of every DynamoDB item (by `PK`, `SK`), for the units of updates and
    /// deletes, whose requests do not carry the item.
    sizes: Mutex<HashMap<(String, String), usize>>,
}

impl Counter {
    fn take(&self) -> Counts {
        std::mem::take(&mut *self.counts.lock().unwrap_or_else(PoisonError::into_inner))
    }

    fn vault_call(&self, method: &str) {
        *self
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .vault
            .entry(method.to_owned())
            .or_default() += 1.0;
    }

    fn vault_calls(&self, method: &str) -> f64 {
        self.counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .vault
            .get(method)
            .copied()
            .unwrap_or(0.0)
    }
}

/// The interceptor of one client (`service`: DynamoDB, KMS or SecretsManager).
#[derive(Debug, Clone)]
struct Counting {
    service: &'static str,
    counter: Arc<Counter>,
}

/// A request on its way, kept in its operation's config bag until the answer comes.
#[derive(Debug, Clone)]
struct Sent {
    operation: String,
    request: Value,
}

impl Storable for Sent {
    type Storer = StoreReplace<Self>;
}

fn json(bytes: Option<&[u8]>) -> Value {
    bytes
        .and_then(|bytes| serde_json::from_slice(bytes).ok())
        .unwrap_or(Value::Null)
}

impl Intercept for Counting {
    fn name(&self) -> &'static str {
        "call-counter"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
        // All three services speak the JSON protocol: the operation is X-Amz-Target's tail.
        let operation = request
            .headers()
            .get("x-amz-target")
            .and_then(|target| target.rsplit('.').next())
            .unwrap_or("?")
            .to_owned();
        cfg.interceptor_state().store_put(Sent {
            operation,
            request: json(request.body().bytes()),
        });
        Ok(())
    }

    fn read_after_attempt(
        &self,
        context: &FinalizerInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let (Some(sent), Some(response)) = (cfg.load::<Sent>(), context.response()) else {
            return Ok(());
        };
        let (read, write, queried) = if self.service == "DynamoDB" && response.status().is_success()
        {
            let answer = json(response.body().bytes());
            let mut sizes = self
                .counter
                .sizes
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            request_units(&sent.operation, &sent.request, &answer, &mut sizes)
        } else {
            (0.0, 0.0, 0)
        };
        // A sealed key's item read apart: a per-certificate read, unlike the key ring's.
        let pk = sent.request["Key"][schema::PK]["S"].as_str().unwrap_or("");
        let operation = if sent.operation == "GetItem"
            && pk.starts_with("SEALED#")
            && !["SEALED#keyring", "SEALED#sweep"].contains(&pk)
        {
            SEALED_KEY_READ.to_owned()
        } else {
            sent.operation.clone()
        };
        let mut counts = self
            .counter
            .counts
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        *counts
            .requests
            .entry(format!("{}.{operation}", self.service))
            .or_default() += 1.0;
        counts.read_units += read;
        counts.query_bytes += queried as f64;
        *counts.reads_by_operation.entry(operation).or_default() += read;
        counts.write_units += write;
        Ok(())
    }
}

/// How the counter names a `GetItem` of a sealed key's item.
const SEALED_KEY_READ: &str = "GetItem(sealed key)";

/// Size of an attribute value by DynamoDB's rules (close enough for units).
fn value_size(value: &Value) -> usize {
    let Some((kind, inner)) = value.as_object().and_then(|object| object.iter().next()) else {
        return 0;
    };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, str::len),
        "N" => inner.as_str().map_or(1, |n| n.len() / 2 + 1),
        "B" => inner.as_str().map_or(0, |b| b.len() * 3 / 4),
        "L" => {
            3 + inner.as_array().map_or(0, |items| {
                items.iter().map(|item| 1 + value_size(item)).sum()
            })
        }
        "M" => 3 + inner.as_object().map_or(0, item_size),
        _ => 1,
    }
}

fn item_size(item: &serde_json::Map<String, Value>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn item_key(item: &Value) -> Option<(String, String)> {
    Some((
        item[schema::PK]["S"].as_str()?.to_owned(),
        item[schema::SK]["S"].as_str()?.to_owned(),
    ))
}

/// Index entries an item's write also writes (every index projects all attributes).
fn index_copies(item: &serde_json::Map<String, Value>) -> f64 {
    [
        schema::GSI1PK,
        schema::GSI2PK,
        schema::GSI3PK,
        schema::LSI1SK,
    ]
    .iter()
    .filter(|attribute| item.contains_key(**attribute))
    .count() as f64
}

fn read_units(bytes: usize, consistent: bool) -> f64 {
    let units = (bytes.max(1) as f64 / 4096.0).ceil();
    if consistent { units } else { units / 2.0 }
}

fn write_units(bytes: usize) -> f64 {
    (bytes.max(1) as f64 / 1024.0).ceil()
}

/// On-demand request units of one DynamoDB request: reads from the items answered (4 KB a
/// unit, halved when eventually consistent), writes from the item written or, for updates and
/// deletes, its last known size (1 KB a unit, plus one write per index entry; doubled in a
/// transaction).
fn request_units(
    operation: &str,
    request: &Value,
    answer: &Value,
    sizes: &mut HashMap<(String, String), usize>,
) -> (f64, f64, usize) {
    let consistent = request["ConsistentRead"].as_bool().unwrap_or(false);
    let mut learn = |item: &Value| -> usize {
        let size = item.as_object().map_or(0, item_size);
        if let Some(key) = item_key(item) {
            sizes.insert(key, size);
        }
        size
    };
    match operation {
        "GetItem" => (read_units(learn(&answer["Item"]), consistent), 0.0, 0),
        "Query" | "Scan" => {
            let bytes: usize = answer["Items"]
                .as_array()
                .map_or(0, |items| items.iter().map(&mut learn).sum());
            (read_units(bytes, consistent), 0.0, bytes)
        }
        "BatchGetItem" => {
            let mut units = 0.0;
            for items in answer["Responses"]
                .as_object()
                .into_iter()
                .flat_map(|tables| tables.values())
                .filter_map(Value::as_array)
            {
                for item in items {
                    units += read_units(learn(item), true);
                }
            }
            (units, 0.0, 0)
        }
        "PutItem" => (0.0, put_units(&request["Item"], sizes), 0),
        "UpdateItem" | "DeleteItem" => (0.0, keyed_units(&request["Key"], sizes), 0),
        "TransactWriteItems" => {
            let mut units = 0.0;
            for entry in request["TransactItems"].as_array().into_iter().flatten() {
                units += if entry["Put"].is_object() {
                    put_units(&entry["Put"]["Item"], sizes)
                } else if entry["ConditionCheck"].is_object() {
                    0.0
                } else {
                    let write = entry
                        .as_object()
                        .and_then(|entry| entry.values().next())
                        .cloned()
                        .unwrap_or(Value::Null);
                    keyed_units(&write["Key"], sizes)
                };
            }
            (0.0, 2.0 * units, 0)
        }
        _ => (0.0, 0.0, 0),
    }
}

fn put_units(item: &Value, sizes: &mut HashMap<(String, String), usize>) -> f64 {
    let Some(object) = item.as_object() else {
        return 0.0;
    };
    let size = item_size(object);
    if let Some(key) = item_key(item) {
        sizes.insert(key, size);
    }
    write_units(size) * (1.0 + index_copies(object))
}

fn keyed_units(key: &Value, sizes: &HashMap<(String, String), usize>) -> f64 {
    let size = item_key(key)
        .and_then(|key| sizes.get(&key).copied())
        .unwrap_or(1);
    write_units(size)
}

/// The vault port, counted: every call of a component through [`Vault`].
struct CountingVault {
    inner: Arc<dyn Vault>,
    counter: Arc<Counter>,
}

#[async_trait]
impl Vault for CountingVault {
    async fn put_material(
        &self,
        certificate: &CertificateId,
        material: &CertificateMaterial,
    ) -> CoreResult<MaterialVersion> {
        self.counter.vault_call("put_material");
        self.inner.put_material(certificate, material).await
    }

    async fn get_material(
        &self,
        certificate: &CertificateId,
        version: &MaterialVersion,
    ) -> CoreResult<CertificateMaterial> {
        self.counter.vault_call("get_material");
        self.inner.get_material(certificate, version).await
    }

    async fn delete_material(&self, certificate: &CertificateId) -> CoreResult<()> {
        self.counter.vault_call("delete_material");
        self.inner.delete_material(certificate).await
    }

    async fn put_acme_account(
        &self,
        directory_url: &str,
        credentials: &SecretString,
    ) -> CoreResult<()> {
        self.counter.vault_call("put_acme_account");
        self.inner
            .put_acme_account(directory_url, credentials)
            .await
    }

    async fn get_acme_account(&self, directory_url: &str) -> CoreResult<Option<SecretString>> {
        self.counter.vault_call("get_acme_account");
        self.inner.get_acme_account(directory_url).await
    }

    async fn prune_material(
        &self,
        certificate: &CertificateId,
        keep: &[MaterialVersion],
        superseded: &[MaterialVersion],
    ) -> CoreResult<()> {
        self.counter.vault_call("prune_material");
        self.inner
            .prune_material(certificate, keep, superseded)
            .await
    }

    async fn storage_generation(&self) -> CoreResult<Option<String>> {
        self.counter.vault_call("storage_generation");
        self.inner.storage_generation().await
    }

    fn is_in_generation(&self, version: &MaterialVersion, generation: &str) -> bool {
        self.inner.is_in_generation(version, generation)
    }

    async fn rotate_data_key(&self) -> CoreResult<bool> {
        self.counter.vault_call("rotate_data_key");
        self.inner.rotate_data_key().await
    }

    async fn load_sweep(&self) -> CoreResult<Option<MaterialSweep>> {
        self.counter.vault_call("load_sweep");
        self.inner.load_sweep().await
    }

    async fn save_sweep(&self, sweep: &MaterialSweep) -> CoreResult<()> {
        self.counter.vault_call("save_sweep");
        self.inner.save_sweep(sweep).await
    }
}

/// SDK clients whose every request `counter` counts.
fn counted_clients(base: &AwsClients, counter: &Arc<Counter>) -> AwsClients {
    let counting = |service| Counting {
        service,
        counter: Arc::clone(counter),
    };
    AwsClients {
        dynamodb: aws_sdk_dynamodb::Client::from_conf(
            base.dynamodb
                .config()
                .to_builder()
                .interceptor(counting("DynamoDB"))
                .build(),
        ),
        secrets_manager: aws_sdk_secretsmanager::Client::from_conf(
            base.secrets_manager
                .config()
                .to_builder()
                .interceptor(counting("SecretsManager"))
                .build(),
        ),
        kms: aws_sdk_kms::Client::from_conf(
            base.kms
                .config()
                .to_builder()
                .interceptor(counting("KMS"))
                .build(),
        ),
    }
}

// ---------------------------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------------------------

/// One deployment's components, each with its own counted clients.
struct Component {
    counter: Arc<Counter>,
    services: Services,
}

/// The components of a deployment in `storage` mode on one table.
fn component(
    base: &AwsClients,
    pebble: &Pebble,
    table: &str,
    storage: KeyStorage,
    kms_key: &str,
) -> anyhow::Result<Component> {
    let counter = Arc::new(Counter::default());
    let clients = counted_clients(base, &counter);
    let vault = KeyStorageVault::new(
        &clients,
        storage,
        table,
        format!("{table}/"),
        Some(kms_key.to_owned()),
    )
    .map_err(anyhow::Error::msg)?;
    let elite = Plan {
        max_domains: 10_000_000,
        ..Plan::default_for(PlanName::Elite)
    };
    let services = Services {
        // moto applies conditional writes without isolation: serialised, as in the tests.
        store: Arc::new(DynamoStore::new(clients.dynamodb.clone(), table).with_serialized_writes()),
        vault: Arc::new(CountingVault {
            inner: Arc::new(vault),
            counter: Arc::clone(&counter),
        }),
        resolver: Arc::new(HickoryResolver::with_name_server(
            pebble.challtestsrv().dns_server_addr(),
        )),
        clock: Arc::new(SystemClock),
        plans: PlanCatalog::with([elite]),
        // challtestsrv answers every A query with 127.0.0.1: every domain points at the edge.
        edge: EdgeSettings {
            hostname: "edge.edgecert.test".to_owned(),
            addresses: vec![IpAddr::V4(Ipv4Addr::LOCALHOST)],
        },
        origin_policy: OriginPolicy {
            allow_loopback: true,
            ..OriginPolicy::default()
        },
        dns_providers: DnsProviders::default(),
        issuance: None,
    };
    Ok(Component { counter, services })
}

/// What one mode measured.
struct Measured {
    storage: KeyStorage,
    /// Certificates measured.
    domains: f64,
    /// The issuer's first certificate of a domain, per domain.
    issue: Counts,
    /// A terminator's start, loading every certificate (all of it).
    start: Counts,
    /// A terminator with nothing changing, per second.
    idle_second: Counts,
    /// One renewer run renewing every certificate (all of it).
    renewal_worker: Counts,
    /// A terminator following those renewals, less its idle passes (all of it).
    renewal_terminator: Counts,
    /// A renewer run with nothing due.
    renewer_run: Counts,
    /// Mean bytes of a certificate's sealed item (0 in Secrets Manager mode).
    sealed_item_bytes: f64,
}

async fn wait_for(what: &str, limit: StdDuration, done: impl Fn() -> bool) -> anyhow::Result<()> {
    let started = Instant::now();
    while !done() {
        if started.elapsed() > limit {
            bail!("{what} did not happen within {limit:?}");
        }
        tokio::time::sleep(StdDuration::from_millis(100)).await;
    }
    Ok(())
}

async fn measure_mode(
    options: Options,
    moto: &Moto,
    pebble: &Pebble,
    storage: KeyStorage,
    domains: usize,
) -> anyhow::Result<Measured> {
    let base = AwsClients::for_local_endpoint(&moto.endpoint_url()).await;
    let table = format!("edgecert-calls-{storage}");
    create_table(&base.dynamodb, &table).await?;
    let kms_key = ensure_kms_key(&base.kms, &format!("alias/{table}")).await?;
    let setup = component(&base, pebble, &table, storage, &kms_key)?;
    let workers = component(&base, pebble, &table, storage, &kms_key)?;
    let edge = component(&base, pebble, &table, storage, &kms_key)?;
    // Every name here is renewed in one run: a budget that never holds it back.
    let config = IssuerConfig::new(pebble.directory_url())
        .with_ca_root_pem(pebble.listener_ca_pem_path().to_path_buf())
        .with_caa_identities([PEBBLE_CAA_IDENTITY])
        .with_order_budget(roomy_budget(&pebble.directory_url()));
    let issuer =
        Arc::new(Issuer::new(workers.services.clone(), config).context("building the issuer")?);
    let _responder =
        Http01Responder::start(setup.services.store.clone(), pebble.http_port()).await?;
    let (account, _key) = create_account(
        &setup.services,
        NewAccount {
            name: "Platform".to_owned(),
            plan: PlanName::Elite,
            require_ownership_verification: false,
        },
    )
    .await?;
    let mut created = Vec::new();
    for n in 0..domains {
        let hostname = format!("shop{n}.customer{n}.example.com");
        created.push(create_domain(&setup.services, &account.id, &hostname, ORIGIN_URL).await?);
    }
    // The ACME account is registered once per deployment: not a per-certificate cost.
    let mut certificates =
        vec![first_request(&workers.services, issuer.as_ref(), &created[0]).await?];
    workers.counter.take();

    // The issuer's first certificate of each domain.
    for domain in &created[1..] {
        certificates.push(first_request(&workers.services, issuer.as_ref(), domain).await?);
    }
    let issue = workers.counter.take().scaled(1.0 / (domains - 1) as f64);

    // A terminator starts (it loads nothing then), and each name's first handshake loads its
    // certificate: the start cost of a terminator that meets every name once.
    let listeners = Listeners::bind(
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0)),
        None,
    )
    .await?;
    let terminator = Terminator::start(
        edge.services.clone(),
        issuer.clone() as Arc<dyn Issuance>,
        TerminatorConfig::default(),
        listeners,
    )
    .await?;
    if !terminator.wait_loaded(StdDuration::from_secs(120)).await {
        bail!("the terminator did not load within 120 s");
    }
    let connector = tokio_rustls::TlsConnector::from(edgecert_bench::tls_load::load_client(
        edgecert_bench::tls_load::TlsVersion::Tls13,
        &[],
    )?);
    for domain in &created {
        edgecert_bench::tls_load::handshake_once(
            &connector,
            terminator.https_addr(),
            domain.hostname.as_str(),
        )
        .await
        .with_context(|| format!("the first handshake for {}", domain.hostname))?;
    }
    if terminator.certificates_cached() != domains {
        bail!(
            "the terminator loaded {} certificates, not {domains}",
            terminator.certificates_cached()
        );
    }
    let start = edge.counter.take();

    // Idle: the change-feed passes when nothing changes.
    let idle = options.pick(20u32, 3);
    tokio::time::sleep(StdDuration::from_secs(u64::from(idle))).await;
    let idle_second = edge.counter.take().scaled(1.0 / f64::from(idle));

    // Every certificate made due (setup's writes), then one renewer run renews them all.
    let now = setup.services.clock.now();
    for id in &certificates {
        let mut certificate = setup
            .services
            .store
            .get_certificate(&account.id, id)
            .await?
            .context("the certificate")?;
        certificate.next_renewal_at = Some(now - Duration::minutes(1));
        setup
            .services
            .store
            .update_certificate(&certificate)
            .await?;
    }
    // The terminator reads those changes (no new material): not a renewal's cost.
    tokio::time::sleep(StdDuration::from_secs(3)).await;
    edge.counter.take();
    workers.counter.take();
    let worker_config = WorkerConfig {
        concurrency: 4,
        ..WorkerConfig::default()
    };
    let event = ScheduleEvent {
        schedule: Some("bench-scale-calls".to_owned()),
        ..ScheduleEvent::default()
    };
    let renewal_started = Instant::now();
    let report = renewer_run(&workers.services, &issuer, &worker_config, &event).await?;
    if report != domains {
        bail!("the renewer renewed {report} of {domains}");
    }
    let renewal_worker = workers.counter.take();
    // The terminator picks up every new chain and key.
    wait_for(
        "the terminator reading every renewed certificate's material",
        StdDuration::from_secs(60),
        || edge.counter.vault_calls("get_material") >= domains as f64,
    )
    .await?;
    tokio::time::sleep(StdDuration::from_secs(2)).await;
    let mut renewal_terminator = edge.counter.take();
    // Less the idle passes of the same seconds (counted apart).
    renewal_terminator.add(&idle_second.scaled(-renewal_started.elapsed().as_secs_f64()));
    let renewal_terminator = renewal_terminator.non_negative();

    // A renewer run with nothing due (the key storage sweep included).
    let nothing = renewer_run(&workers.services, &issuer, &worker_config, &event).await?;
    if nothing != 0 {
        bail!("the idle renewer run renewed {nothing}");
    }
    let renewer_run = workers.counter.take();
    terminator.shutdown().await;

    let sealed_item_bytes = if storage == KeyStorage::Sealed {
        let sizes = edge
            .counter
            .sizes
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        let sealed: Vec<usize> = sizes
            .iter()
            .filter(|((pk, _), _)| pk.starts_with("SEALED#") && pk != "SEALED#keyring")
            .map(|(_, size)| *size)
            .collect();
        sealed.iter().sum::<usize>() as f64 / sealed.len().max(1) as f64
    } else {
        0.0
    };
    Ok(Measured {
        storage,
        domains: domains as f64,
        issue,
        start,
        idle_second,
        renewal_worker,
        renewal_terminator,
        renewer_run,
        sealed_item_bytes,
    })
}

/// The Lambda renewer's run: renewals, the expiry metric's count, then the key storage sweep.
/// Returns how many it renewed.
async fn renewer_run(
    services: &Services,
    issuer: &Issuer,
    config: &WorkerConfig,
    event: &ScheduleEvent,
) -> anyhow::Result<usize> {
    let report = handle_schedule(services, issuer, &config.renewal_settings(), event)
        .await
        .context("the renewer's run")?;
    count_expiring_unrenewed(services, EXPIRY_WARNING).await?;
    handle_key_storage(services, &config.key_sweep_settings(), event).await;
    Ok(report.issued)
}

/// The edge's first request of a domain, as the terminator's on-demand path does it: the
/// domain's current step, then the issuer.
async fn first_request(
    services: &Services,
    issuer: &Issuer,
    domain: &edgecert_core::model::Domain,
) -> anyhow::Result<CertificateId> {
    let stepped = edgecert_bench::seed::request_managed_certificate(services, domain).await?;
    if stepped.provisioning_step != ProvisioningStep::Issuing {
        bail!(
            "{} did not reach issuing: {:?}",
            domain.hostname,
            stepped.last_error
        );
    }
    let certificate = stepped.certificate_id.context("a managed certificate")?;
    match issuer.issue(&stepped.account_id, &certificate).await? {
        IssueOutcome::Issued(_) => Ok(certificate),
        other => bail!("{}: issuance ended {other:?}", domain.hostname),
    }
}

async fn run(options: Options) -> anyhow::Result<()> {
    let domains = options.pick(40, 4);
    let moto = Moto::start().await.context("starting moto_server")?;
    let pebble = Pebble::start(PebbleOptions::default())
        .await
        .context("starting Pebble and pebble-challtestsrv")?;
    let mut measured = Vec::new();
    for storage in [KeyStorage::Sealed, KeyStorage::SecretsManager] {
        measured.push(
            measure_mode(options, &moto, &pebble, storage, domains)
                .await
                .with_context(|| format!("measuring {storage} key storage"))?,
        );
    }
    report_section(options, domains, &measured).publish()
}

// ---------------------------------------------------------------------------------------------
// The report.
// ---------------------------------------------------------------------------------------------

/// Whether a request is made once per certificate a terminator loads (its key), not once per
/// process (KMS, the key ring, the layout) or per feed page.
fn per_certificate(operation: &str) -> bool {
    operation == format!("DynamoDB.{SEALED_KEY_READ}")
        || operation == "SecretsManager.GetSecretValue"
}

/// The terminator's page of a change feed (TerminatorConfig::feed_page_size's default).
const FEED_PAGE: f64 = 500.0;

/// Reading both change feeds whole at `domains`, with `bytes` of items per certificate: a page
/// query per shard and page, index reads eventually consistent (8 KB a unit).
fn full_feed_read(domains: f64, bytes: f64) -> Counts {
    let shards = 2.0 * f64::from(schema::INDEX_SHARDS);
    let queries = shards * (domains / (shards * FEED_PAGE)).ceil().max(1.0);
    let mut counts = Counts::default();
    counts.requests.insert("DynamoDB.Query".to_owned(), queries);
    counts.read_units = (domains * bytes / 8192.0).max(queries * 0.5);
    counts
        .reads_by_operation
        .insert("Query".to_owned(), counts.read_units);
    counts
}

impl Measured {
    /// Feed bytes a terminator's full pass reads per certificate (its domain and certificate).
    fn feed_bytes_per_certificate(&self) -> f64 {
        self.start.query_bytes / self.domains
    }

    /// A terminator's start at `domains`: once per process (KMS, the key ring, the layout),
    /// once per certificate (its key), and both feeds read whole.
    fn start_at(&self, domains: f64) -> Counts {
        let mut counts = self
            .start
            .only(|operation| !per_certificate(operation) && operation != "DynamoDB.Query");
        counts.add(
            &self
                .start
                .only(per_certificate)
                .scaled(domains / self.domains),
        );
        counts.add(&full_feed_read(domains, self.feed_bytes_per_certificate()));
        counts
    }

    /// A terminator following one renewal: the changed items in its feed pass (the pass's
    /// requests are the idle ones) and the new key.
    fn terminator_per_renewal(&self) -> Counts {
        let mut counts = self
            .renewal_terminator
            .only(|operation| operation != "DynamoDB.Query")
            .scaled(1.0 / self.domains);
        counts.read_units += self.renewal_terminator.query_bytes / self.domains / 8192.0;
        counts
    }

    /// The renewer's share of one renewal, less what its run costs with nothing due.
    fn renewer_per_renewal(&self) -> Counts {
        let mut counts = self.renewal_worker.clone();
        counts.add(&self.renewer_run.scaled(-1.0));
        counts.non_negative().scaled(1.0 / self.domains)
    }

    /// Calls an hour per component at `domains`, steady state (terminator starts apart).
    fn per_hour(&self, domains: f64) -> Vec<(&'static str, Counts)> {
        let renewals_per_hour = domains / RENEWAL_PERIOD_HOURS;
        // One pass a second (refresh_interval), one query per feed shard.
        let idle = full_feed_read(0.0, 0.0).scaled(3600.0);
        let mut terminator = idle;
        terminator.add(
            &full_feed_read(domains, self.feed_bytes_per_certificate())
                .scaled(FULL_RESYNCS_PER_HOUR),
        );
        terminator.add(&self.terminator_per_renewal().scaled(renewals_per_hour));
        let terminators = terminator.scaled(TERMINATORS);
        let mut renewer = self.renewer_run.scaled(RENEWER_RUNS_PER_HOUR);
        renewer.add(&self.renewer_per_renewal().scaled(renewals_per_hour));
        vec![("Terminators", terminators), ("Renewer", renewer)]
    }
}

/// Dollars a month of `counts` a month (requests only).
fn request_dollars(counts: &Counts) -> f64 {
    counts.service("SecretsManager") * PRICE_SECRETS_PER_CALL
        + counts.service("KMS") * PRICE_KMS_PER_REQUEST
        + counts.read_units * PRICE_DYNAMODB_PER_RRU
        + counts.write_units * PRICE_DYNAMODB_PER_WRU
}

fn dollars(value: f64) -> String {
    if value >= 100.0 {
        format!("${value:.0}")
    } else {
        format!("${value:.2}")
    }
}

fn report_section(options: Options, domains: usize, measured: &[Measured]) -> Section {
    let mut section = Section::new(
        "8. AWS calls and cost at scale, by key storage mode",
        "scale-calls",
        options,
    );
    let mut table = Table::new(
        &format!(
            "Measured on moto: AWS requests and vault calls per operation ({domains} domains, one terminator)"
        ),
        &[
            "Mode",
            "Operation",
            "DynamoDB requests",
            "Read units",
            "Write units",
            "KMS",
            "Secrets Manager",
            "Requests by API call",
            "Vault port calls",
        ],
    );
    for mode in measured {
        for (name, counts) in [
            (
                "Issuer: first certificate of a domain, per domain",
                &mode.issue,
            ),
            ("Terminator start, loading them all", &mode.start),
            ("Terminator idle, per second", &mode.idle_second),
            ("Renewer run renewing them all", &mode.renewal_worker),
            (
                "A terminator following those renewals (less its idle passes)",
                &mode.renewal_terminator,
            ),
            ("Renewer run with nothing due", &mode.renewer_run),
        ] {
            table.row(vec![
                mode.storage.to_string(),
                name.to_owned(),
                format!("{:.2}", counts.service("DynamoDB")),
                format!("{:.2}", counts.read_units),
                format!("{:.2}", counts.write_units),
                format!("{:.3}", counts.service("KMS")),
                format!("{:.2}", counts.service("SecretsManager")),
                Counts::listing(&counts.requests),
                Counts::listing(&counts.vault),
            ]);
        }
    }
    section.table(table);

    let mut hourly = Table::new(
        &format!(
            "Calls an hour per component, steady state ({TERMINATORS} terminators, renewer hourly, each certificate renewed every 60 days, a full resync an hour per terminator)"
        ),
        &[
            "Mode",
            "Domains",
            "Component",
            "DynamoDB requests/h",
            "KMS requests/h",
            "Secrets Manager calls/h",
            "Terminator start: DynamoDB / KMS / Secrets Manager (per task)",
        ],
    );
    for mode in measured {
        for scale in [100_000.0, 1_000_000.0] {
            let start = mode.start_at(scale);
            for (component, counts) in mode.per_hour(scale) {
                hourly.row(vec![
                    mode.storage.to_string(),
                    whole(scale),
                    component.to_owned(),
                    whole(counts.service("DynamoDB")),
                    whole(counts.service("KMS")),
                    whole(counts.service("SecretsManager")),
                    if component == "Terminators" {
                        format!(
                            "{} / {} / {}",
                            whole(start.service("DynamoDB")),
                            whole(start.service("KMS")),
                            whole(start.service("SecretsManager"))
                        )
                    } else {
                        String::new()
                    },
                ]);
            }
        }
    }
    section.table(hourly);

    let mut cost = Table::new(
        &format!(
            "Dollars a month of key storage and the calls above, by mode ({STARTS_PER_TERMINATOR_MONTH} starts per terminator a month)"
        ),
        &[
            "Domains",
            "sealed: storage",
            "sealed: requests",
            "sealed: total",
            "secrets-manager: storage",
            "secrets-manager: requests",
            "secrets-manager: total",
        ],
    );
    for scale in SCALES {
        let mut cells = vec![whole(scale)];
        for mode in measured {
            let mut monthly = Counts::default();
            for (_, counts) in mode.per_hour(scale) {
                monthly.add(&counts.scaled(HOURS_PER_MONTH));
            }
            monthly.add(
                &mode
                    .start_at(scale)
                    .scaled(TERMINATORS * STARTS_PER_TERMINATOR_MONTH),
            );
            // The stack's KMS key exists in both modes (moving back needs it); the ACME
            // account's secret too.
            let mut storage = PRICE_KMS_KEY_MONTH + PRICE_SECRET_MONTH;
            storage += match mode.storage {
                KeyStorage::SecretsManager => scale * PRICE_SECRET_MONTH,
                KeyStorage::Sealed => {
                    scale * mode.sealed_item_bytes / 1e9 * PRICE_DYNAMODB_GB_MONTH
                }
            };
            let requests = request_dollars(&monthly);
            cells.extend([
                dollars(storage),
                dollars(requests),
                dollars(storage + requests),
            ]);
        }
        cost.row(cells);
    }
    section.table(cost);
    for mode in measured {
        section.note(format!(
            "{}: a terminator's full pass read {} bytes of feed items per certificate (its domain \
             and certificate items); a full resync at 1M domains reads {} units.",
            mode.storage,
            whole(mode.feed_bytes_per_certificate()),
            whole(full_feed_read(1e6, mode.feed_bytes_per_certificate()).read_units)
        ));
    }
    for mode in measured.iter().filter(|mode| mode.sealed_item_bytes > 0.0) {
        section.note(format!(
            "A sealed item (chain and sealed key) measured {} bytes on average; storage at $0.25 per GB-month.",
            whole(mode.sealed_item_bytes)
        ));
    }
    section.note(
        "Prices (us-east-1): Secrets Manager $0.40 per secret-month and $0.05 per 10,000 API calls; \
         KMS $1 per key-month and $0.03 per 10,000 requests; DynamoDB on-demand $0.625 per million \
         write request units, $0.125 per million read request units, $0.25 per GB-month (see \
         BENCHMARKS.md for the sources). DynamoDB units are computed from the item sizes in the \
         requests and answers (reads 4 KB, halved when eventually consistent; writes 1 KB, one \
         more per index entry, doubled in transactions). The table's other costs (domains, \
         certificates, the API) are the same in both modes and are not in this table: scenario 7 \
         models them.",
    );
    section
}

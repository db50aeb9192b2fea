//! Scenario 7: DynamoDB capacity at 1M domains.
//!
//! Runs EdgeCert's real paths on DynamoDB (moto_server) against Pebble, with every DynamoDB
//! request recorded by an SDK interceptor: the API creating domains and reading them, the first
//! HTTPS request of each domain (hostname lookup, the domain's step, the issuer), a renewal run
//! (90-day certificates made due), the edge terminator's change-feed pass, and the hostname
//! lookup of a name not in an edge's cache. Each request's capacity units follow DynamoDB's
//! rules from the sizes of the items it read and wrote (reads: 4 KB units, halved when
//! eventually consistent; writes: 1 KB units, doubled in a transaction; every index entry an
//! item write adds, changes or removes is an index write), charged to the partition key it
//! lands on, table or index.
//!
//! The measured units per operation, multiplied by the rates of a deployment of 1M domains in
//! one account (the constants below, in the report), give the load of every partition key,
//! set against DynamoDB's per-partition limits of 3,000 read and 1,000 write units a second.

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration as StdDuration;

use anyhow::{Context as _, bail};
use aws_sdk_dynamodb::config::interceptors::{
    BeforeTransmitInterceptorContextRef, FinalizerInterceptorContextRef,
};
use aws_sdk_dynamodb::config::{ConfigBag, Intercept, RuntimeComponents};
use aws_sdk_dynamodb::error::BoxError;
use aws_smithy_types::config_bag::{Storable, StoreReplace};
use edgecert_acme::{Issuer, IssuerConfig};
use edgecert_aws::{AwsClients, DynamoStore, SecretsManagerVault, create_table, schema};
use edgecert_bench::report::{Options, Section, Table, whole};
use edgecert_bench::seed::roomy_budget;
use edgecert_core::model::ProvisioningStep;
use edgecert_core::origin::OriginPolicy;
use edgecert_core::ports::{
    Clock, DnsProviders, Issuance, IssueOutcome, ManualClock, PageRequest, Store,
};
use edgecert_core::usecases::accounts::{NewAccount, authenticate, create_account};
use edgecert_core::usecases::domains::{create_domain, get_domain, list_domains, ssl_status};
use edgecert_core::usecases::{EdgeSettings, Services};
use edgecert_core::{Plan, PlanCatalog, PlanName};
use edgecert_dns::HickoryResolver;
use edgecert_integration::{Http01Responder, Moto, Pebble, PebbleOptions};
use edgecert_workers::WorkerConfig;
use edgecert_workers::renewer::{ScheduleEvent, handle_schedule};
use serde_json::Value;
use time::{Duration, OffsetDateTime};

/// The CA identity Pebble stands for in CAA records.
const PEBBLE_CAA_IDENTITY: &str = "pebble.letsencrypt.org";
/// Where the domains proxy to; never contacted here.
const ORIGIN_URL: &str = "https://origin.example.net";
/// Lifetime of the issued certificates: Let's Encrypt's 90 days.
const LIFETIME: Duration = Duration::days(90);

/// DynamoDB's limits per partition.
const PARTITION_RCU: f64 = 3000.0;
const PARTITION_WCU: f64 = 1000.0;

/// The deployment the model is for: 1M domains, all in one platform account.
const DOMAINS: f64 = 1_000_000.0;
/// Edge terminators, each reading the change feeds every second.
const TERMINATORS: f64 = 4.0;
/// Hostname lookups a second per terminator for names its bounded cache does not hold.
const COLD_LOOKUPS_PER_TERMINATOR: f64 = 50.0;
/// Steady API traffic a second: domain reads (GET a domain, its /ssl), list pages, new domains.
const API_GETS: f64 = 20.0;
const API_SSL: f64 = 10.0;
const API_LIST_PAGES: f64 = 2.0;
const API_CREATES: f64 = 1.0;
/// Renewals a second: 90-day certificates renewed with 30 days left (every 60 days), and the
/// same million on 6-day certificates renewed at half-life (every 3 days).
const RENEWALS_90_DAY: f64 = DOMAINS / (60.0 * 86_400.0);
const RENEWALS_6_DAY: f64 = DOMAINS / (3.0 * 86_400.0);

fn main() -> anyhow::Result<()> {
    let options = Options::from_args();
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?
        .block_on(run(options))
}

// ---------------------------------------------------------------------------------------------
// Recording: every request and its answer, as DynamoDB's JSON.
// ---------------------------------------------------------------------------------------------

/// One DynamoDB request that got an answer.
#[derive(Debug, Clone)]
struct Call {
    operation: String,
    request: Value,
    response: Value,
    succeeded: bool,
}

/// The interceptor: keeps every call until [`Recorder::take`].
#[derive(Debug, Default)]
struct Recorder {
    calls: Mutex<Vec<Call>>,
}

impl Recorder {
    fn take(&self) -> Vec<Call> {
        std::mem::take(&mut *self.calls.lock().unwrap_or_else(PoisonError::into_inner))
    }
}

#[derive(Debug, Clone)]
struct RecorderHandle(Arc<Recorder>);

/// A request on its way, kept in its operation's config bag until the answer comes (the
/// orchestrator hands the request itself to the HTTP client).
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

impl Intercept for RecorderHandle {
    fn name(&self) -> &'static str {
        "capacity-recorder"
    }

    fn read_before_transmit(
        &self,
        context: &BeforeTransmitInterceptorContextRef<'_>,
        _runtime_components: &RuntimeComponents,
        cfg: &mut ConfigBag,
    ) -> Result<(), BoxError> {
        let request = context.request();
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
        let call = Call {
            operation: sent.operation.clone(),
            request: sent.request.clone(),
            response: json(response.body().bytes()),
            succeeded: response.status().is_success(),
        };
        self.0
            .calls
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push(call);
        Ok(())
    }
}

// ---------------------------------------------------------------------------------------------
// Capacity units from recorded calls.
// ---------------------------------------------------------------------------------------------

/// Size of an attribute value by DynamoDB's rules (close enough for units).
fn value_size(value: &Value) -> usize {
    let Some((kind, inner)) = value.as_object().and_then(|object| object.iter().next()) else {
        return 0;
    };
    match kind.as_str() {
        "S" => inner.as_str().map_or(0, str::len),
        "N" => inner
            .as_str()
            .map_or(1, |n| n.trim_start_matches('-').len() / 2 + 1),
        "B" => inner.as_str().map_or(0, |b| b.len() * 3 / 4),
        "BOOL" | "NULL" => 1,
        "SS" | "NS" | "BS" => inner.as_array().map_or(0, |items| {
            items.iter().filter_map(Value::as_str).map(str::len).sum()
        }),
        "L" => {
            3 + inner.as_array().map_or(0, |items| {
                items.iter().map(|item| 1 + value_size(item)).sum()
            })
        }
        "M" => {
            3 + inner
                .as_object()
                .map_or(0, |map| item_size(map) + map.len())
        }
        _ => 0,
    }
}

/// Size of an item: every attribute's name and value.
fn item_size(item: &serde_json::Map<String, Value>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn string_attr<'a>(item: &'a serde_json::Map<String, Value>, name: &str) -> Option<&'a str> {
    item.get(name)?.get("S")?.as_str()
}

/// The index entries an item has: (index, partition value). The local index lives in the
/// item's own partition.
fn index_entries(item: &serde_json::Map<String, Value>) -> Vec<(&'static str, String)> {
    let mut entries = Vec::new();
    for (attribute, index) in [
        (schema::GSI1PK, schema::BY_HOSTNAME),
        (schema::GSI2PK, schema::BY_DUE),
        (schema::GSI3PK, schema::BY_UPDATED),
    ] {
        if let Some(partition) = string_attr(item, attribute) {
            entries.push((index, partition.to_owned()));
        }
    }
    if item.contains_key(schema::LSI1SK)
        && let Some(pk) = string_attr(item, schema::PK)
    {
        entries.push((schema::BY_CREATED, pk.to_owned()));
    }
    entries
}

/// Units charged to one partition key.
#[derive(Debug, Default, Clone, Copy)]
struct Units {
    requests: f64,
    rcu: f64,
    wcu: f64,
    /// Bytes of items read (what an item adds to a read, before rounding to units).
    read_bytes: f64,
}

impl Units {
    fn add(&mut self, other: Units) {
        self.requests += other.requests;
        self.rcu += other.rcu;
        self.wcu += other.wcu;
        self.read_bytes += other.read_bytes;
    }

    fn scaled(self, factor: f64) -> Units {
        Units {
            requests: self.requests * factor,
            rcu: self.rcu * factor,
            wcu: self.wcu * factor,
            read_bytes: self.read_bytes * factor,
        }
    }
}

/// The class of a partition key, and how many keys of it a 1M-domain deployment has (`None`:
/// one per item, so a key only sees the traffic of its own item).
fn key_class(index: Option<&str>, partition: &str) -> (String, Option<f64>) {
    let shards = |count: u32| Some(f64::from(count));
    let class = |label: &str, keys: Option<f64>| (label.to_owned(), keys);
    match index {
        Some(index) if index == schema::BY_DUE => {
            class("by_due `DUE#{s}`", shards(schema::INDEX_SHARDS))
        }
        Some(index) if index == schema::BY_UPDATED => {
            if partition.starts_with("CHANGED#DOM") {
                class("by_updated `CHANGED#DOM#{s}`", shards(schema::INDEX_SHARDS))
            } else {
                class(
                    "by_updated `CHANGED#CERT#{s}`",
                    shards(schema::INDEX_SHARDS),
                )
            }
        }
        Some(index) if index == schema::BY_HOSTNAME => class("by_hostname (a hostname)", None),
        // The local index and the table share the item's partition.
        _ => {
            let prefix = partition.split('#').next().unwrap_or("");
            match prefix {
                "ACCT" if partition == schema::LAYOUT_PK => {
                    class("`ACCT#layout` (layout item)", Some(1.0))
                }
                "ACCT" if partition.matches('#').count() == 2 => class(
                    "`ACCT#{account}#{s}` (account shard)",
                    shards(schema::ACCOUNT_SHARDS),
                ),
                "ACCT" => class("`ACCT#{account}` (account item)", Some(1.0)),
                "BUCKET" => class("`BUCKET#…` (order budget)", Some(1.0)),
                "ACCOUNTS" => class("`ACCOUNTS` (account directory)", Some(1.0)),
                other => class(&format!("`{other}#…`"), None),
            }
        }
    }
}

/// What the calls of one phase cost, per partition key and per class.
#[derive(Debug, Default)]
struct Ledger {
    requests_by_operation: BTreeMap<String, u64>,
    by_class: BTreeMap<String, (Option<f64>, Units)>,
    by_key: HashMap<String, Units>,
    total: Units,
}

impl Ledger {
    fn charge(&mut self, index: Option<&str>, partition: &str, units: Units) {
        let (class, keys) = key_class(index, partition);
        self.by_class
            .entry(class)
            .or_insert((keys, Units::default()))
            .1
            .add(units);
        let key = format!("{}:{partition}", index.unwrap_or("table"));
        self.by_key.entry(key).or_default().add(units);
        self.total.add(units);
    }
}

/// Replays calls against what is known of every item (sizes, index keys) to charge units.
#[derive(Debug, Default)]
struct Accountant {
    /// The last known attributes of every item, by `PK` and `SK`.
    items: HashMap<(String, String), serde_json::Map<String, Value>>,
}

fn item_key(item: &serde_json::Map<String, Value>) -> Option<(String, String)> {
    Some((
        string_attr(item, schema::PK)?.to_owned(),
        string_attr(item, schema::SK)?.to_owned(),
    ))
}

fn read_units(bytes: usize, consistent: bool) -> f64 {
    let units = (bytes.max(1) as f64 / 4096.0).ceil();
    if consistent { units } else { units / 2.0 }
}

fn write_units(bytes: usize) -> f64 {
    (bytes.max(1) as f64 / 1024.0).ceil()
}

impl Accountant {
    fn learn(&mut self, item: &serde_json::Map<String, Value>) {
        if let Some(key) = item_key(item) {
            self.items.insert(key, item.clone());
        }
    }

    fn ledger(&mut self, calls: &[Call]) -> Ledger {
        let mut ledger = Ledger::default();
        for call in calls {
            *ledger
                .requests_by_operation
                .entry(call.operation.clone())
                .or_default() += 1;
            let request = &call.request;
            let consistent = request["ConsistentRead"].as_bool().unwrap_or(false);
            match call.operation.as_str() {
                "GetItem" => {
                    let pk = request["Key"]["PK"]["S"].as_str().unwrap_or("?");
                    let size = call.response["Item"].as_object().map_or(0, item_size);
                    if let Some(item) = call.response["Item"].as_object() {
                        self.learn(item);
                    }
                    ledger.charge(
                        None,
                        pk,
                        Units {
                            requests: 1.0,
                            rcu: read_units(size, consistent),
                            wcu: 0.0,
                            read_bytes: size as f64,
                        },
                    );
                }
                "BatchGetItem" => {
                    for items in call.response["Responses"]
                        .as_object()
                        .into_iter()
                        .flat_map(|tables| tables.values())
                        .filter_map(Value::as_array)
                    {
                        for item in items.iter().filter_map(Value::as_object) {
                            self.learn(item);
                            let pk = string_attr(item, schema::PK).unwrap_or("?").to_owned();
                            ledger.charge(
                                None,
                                &pk,
                                Units {
                                    requests: 1.0 / items.len().max(1) as f64,
                                    rcu: read_units(item_size(item), true),
                                    wcu: 0.0,
                                    read_bytes: item_size(item) as f64,
                                },
                            );
                        }
                    }
                }
                "Query" => {
                    let index = request["IndexName"].as_str();
                    let partition = query_partition(request).unwrap_or_else(|| "?".to_owned());
                    let items = call.response["Items"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    let bytes: usize = items
                        .iter()
                        .filter_map(Value::as_object)
                        .map(item_size)
                        .sum();
                    for item in items.iter().filter_map(Value::as_object) {
                        self.learn(item);
                    }
                    let index = index.map(|name| match name {
                        name if name == schema::BY_DUE => schema::BY_DUE,
                        name if name == schema::BY_UPDATED => schema::BY_UPDATED,
                        name if name == schema::BY_HOSTNAME => schema::BY_HOSTNAME,
                        _ => schema::BY_CREATED,
                    });
                    // The local index is read in the table's partition.
                    let charged_index = index.filter(|name| *name != schema::BY_CREATED);
                    ledger.charge(
                        charged_index,
                        &partition,
                        Units {
                            requests: 1.0,
                            rcu: read_units(bytes, consistent),
                            wcu: 0.0,
                            read_bytes: bytes as f64,
                        },
                    );
                }
                "PutItem" | "UpdateItem" | "DeleteItem" => {
                    if let Some(write) = request.as_object() {
                        self.write(&mut ledger, &call.operation, write, 1.0, call.succeeded);
                    }
                }
                "TransactWriteItems" => {
                    let writes = request["TransactItems"]
                        .as_array()
                        .cloned()
                        .unwrap_or_default();
                    for entry in writes.iter().filter_map(Value::as_object) {
                        for (kind, write) in entry {
                            let operation = match kind.as_str() {
                                "Put" => "PutItem",
                                "Update" => "UpdateItem",
                                "Delete" => "DeleteItem",
                                _ => continue,
                            };
                            if let Some(write) = write.as_object() {
                                self.write(&mut ledger, operation, write, 2.0, call.succeeded);
                            }
                        }
                    }
                }
                _ => {}
            }
        }
        ledger
    }

    /// Charges one item write (`factor` 2 in a transaction); an unsuccessful one (a failed
    /// condition) still costs its table write but changes nothing.
    fn write(
        &mut self,
        ledger: &mut Ledger,
        operation: &str,
        write: &serde_json::Map<String, Value>,
        factor: f64,
        succeeded: bool,
    ) {
        let key_map = match operation {
            "PutItem" => write.get("Item"),
            _ => write.get("Key"),
        };
        let Some(key) = key_map.and_then(Value::as_object).and_then(item_key) else {
            return;
        };
        let old = self.items.get(&key).cloned();
        let new = match operation {
            "PutItem" => write.get("Item").and_then(Value::as_object).cloned(),
            "UpdateItem" => Some(updated(old.clone().unwrap_or_default(), write, &key)),
            _ => None,
        };
        let old_size = old.as_ref().map_or(0, item_size);
        let new_size = new.as_ref().map_or(0, item_size);
        ledger.charge(
            None,
            &key.0,
            Units {
                requests: 1.0 / factor,
                rcu: 0.0,
                wcu: write_units(old_size.max(new_size)) * factor,
                read_bytes: 0.0,
            },
        );
        if !succeeded {
            return;
        }
        let old_entries = old.as_ref().map(index_entries).unwrap_or_default();
        let new_entries = new.as_ref().map(index_entries).unwrap_or_default();
        for (index, partition) in &old_entries {
            let kept = new_entries.contains(&(index, partition.clone()));
            let units = if kept { new_size } else { old_size };
            let charged = (*index != schema::BY_CREATED).then_some(*index);
            ledger.charge(
                charged,
                partition,
                Units {
                    requests: 0.0,
                    rcu: 0.0,
                    wcu: write_units(units),
                    read_bytes: 0.0,
                },
            );
        }
        for (index, partition) in &new_entries {
            if !old_entries.contains(&(index, partition.clone())) {
                let charged = (*index != schema::BY_CREATED).then_some(*index);
                ledger.charge(
                    charged,
                    partition,
                    Units {
                        requests: 0.0,
                        rcu: 0.0,
                        wcu: write_units(new_size),
                        read_bytes: 0.0,
                    },
                );
            }
        }
        match new {
            Some(item) => {
                self.items.insert(key, item);
            }
            None => {
                self.items.remove(&key);
            }
        }
    }
}

/// The item after an `UpdateItem`: `SET #a = :b` and `REMOVE #c` clauses applied (arithmetic
/// leaves the attribute's size as it was).
fn updated(
    mut item: serde_json::Map<String, Value>,
    write: &serde_json::Map<String, Value>,
    key: &(String, String),
) -> serde_json::Map<String, Value> {
    item.insert(schema::PK.to_owned(), serde_json::json!({"S": key.0}));
    item.insert(schema::SK.to_owned(), serde_json::json!({"S": key.1}));
    let names = write
        .get("ExpressionAttributeNames")
        .and_then(Value::as_object);
    let values = write
        .get("ExpressionAttributeValues")
        .and_then(Value::as_object);
    let name = |placeholder: &str| -> String {
        names
            .and_then(|names| names.get(placeholder))
            .and_then(Value::as_str)
            .unwrap_or(placeholder)
            .to_owned()
    };
    let expression = write
        .get("UpdateExpression")
        .and_then(Value::as_str)
        .unwrap_or("");
    let (set, remove) = match expression.split_once(" REMOVE ") {
        Some((set, remove)) => (set, remove),
        None => (expression, ""),
    };
    for clause in set.trim_start_matches("SET ").split(", ") {
        if let Some((target, source)) = clause.split_once(" = ")
            && let Some(value) = values.and_then(|values| values.get(source.trim()))
        {
            item.insert(name(target.trim()), value.clone());
        }
    }
    for target in remove.split(", ").filter(|target| !target.is_empty()) {
        item.remove(&name(target.trim()));
    }
    item
}

/// The partition value a `Query` reads: the value compared with `=` first in its key condition.
fn query_partition(request: &Value) -> Option<String> {
    let condition = request["KeyConditionExpression"].as_str()?;
    let first = condition.split(" AND ").next()?;
    let placeholder = first.split(" = ").nth(1)?.trim();
    request["ExpressionAttributeValues"][placeholder]["S"]
        .as_str()
        .map(str::to_owned)
}

// ---------------------------------------------------------------------------------------------
// The run.
// ---------------------------------------------------------------------------------------------

/// One measured phase: what it did, how many times, and what that cost.
struct Phase {
    name: &'static str,
    unit: &'static str,
    count: f64,
    ledger: Ledger,
}

impl Phase {
    /// The phase's units for one of its operations, by class.
    fn per_operation(&self) -> BTreeMap<String, (Option<f64>, Units)> {
        self.ledger
            .by_class
            .iter()
            .map(|(class, (keys, units))| {
                (
                    class.clone(),
                    (*keys, units.scaled(1.0 / self.count.max(1.0))),
                )
            })
            .collect()
    }
}

/// Issues, through the issuer, the first HTTPS request's certificate of a domain, as the edge
/// does: hostname lookup, the domain's current step (DNS check, managed certificate), issue.
async fn first_request(
    services: &Services,
    issuer: &Issuer,
    hostname: &edgecert_core::Hostname,
) -> anyhow::Result<()> {
    let domain = services
        .store
        .domain_by_hostname(hostname)
        .await?
        .context("the domain by its hostname")?;
    let stepped = edgecert_bench::seed::request_managed_certificate(services, &domain).await?;
    if stepped.provisioning_step != ProvisioningStep::Issuing {
        bail!("{hostname} did not reach issuing: {:?}", stepped.last_error);
    }
    let certificate = stepped.certificate_id.context("a managed certificate")?;
    match issuer.issue(&stepped.account_id, &certificate).await? {
        IssueOutcome::Issued(_) => Ok(()),
        other => bail!("{hostname}: issuance ended {other:?}"),
    }
}

async fn run(options: Options) -> anyhow::Result<()> {
    let domains = options.pick(100, 8);
    let moto = Moto::start().await.context("starting moto_server")?;
    let pebble = Pebble::start(PebbleOptions {
        certificate_validity: Some(StdDuration::from_secs(LIFETIME.whole_seconds() as u64)),
        ..PebbleOptions::default()
    })
    .await
    .context("starting Pebble and pebble-challtestsrv")?;

    let recorder = Arc::new(Recorder::default());
    let base = AwsClients::for_local_endpoint(&moto.endpoint_url()).await;
    let dynamodb = aws_sdk_dynamodb::Client::from_conf(
        base.dynamodb
            .config()
            .to_builder()
            .interceptor(RecorderHandle(recorder.clone()))
            .build(),
    );
    let table = "edgecert-capacity";
    create_table(&dynamodb, table).await?;
    // moto applies conditional writes without isolation: serialised, as in the tests.
    let dynamo = DynamoStore::new(dynamodb.clone(), table).with_serialized_writes();
    let store: Arc<dyn Store> = Arc::new(dynamo);
    let vault = Arc::new(SecretsManagerVault::new(
        base.secrets_manager.clone(),
        format!("{table}/"),
    ));
    let clock = Arc::new(ManualClock::new(OffsetDateTime::now_utc()));
    let elite = Plan {
        max_domains: 10_000_000,
        ..Plan::default_for(PlanName::Elite)
    };
    let services = Services {
        store: store.clone(),
        vault,
        resolver: Arc::new(HickoryResolver::with_name_server(
            pebble.challtestsrv().dns_server_addr(),
        )),
        clock: clock.clone(),
        plans: PlanCatalog::with([elite]),
        // challtestsrv answers every A query with 127.0.0.1: every domain points at the edge.
        edge: EdgeSettings {
            hostname: "edge.edgecert.test".to_owned(),
            addresses: vec![IpAddr::V4(std::net::Ipv4Addr::LOCALHOST)],
        },
        // challtestsrv resolves every name, origins included, to 127.0.0.1.
        origin_policy: OriginPolicy {
            allow_loopback: true,
            ..OriginPolicy::default()
        },
        dns_providers: DnsProviders::default(),
        issuance: None,
    };
    // Every certificate here is issued, then renewed in one run: a budget that never holds
    // them back.
    let config = IssuerConfig::new(pebble.directory_url())
        .with_ca_root_pem(pebble.listener_ca_pem_path().to_path_buf())
        .with_caa_identities([PEBBLE_CAA_IDENTITY])
        .with_order_budget(roomy_budget(&pebble.directory_url()));
    let issuer = Issuer::new(services.clone(), config).context("building the issuer")?;
    // Pebble validates HTTP-01 on its port: answered from the store, as the edge does (its
    // reads are part of what issuance costs).
    let _responder = Http01Responder::start(store.clone(), pebble.http_port()).await?;
    let (account, api_key) = create_account(
        &services,
        NewAccount {
            name: "Platform with a million domains".to_owned(),
            plan: PlanName::Elite,
            require_ownership_verification: false,
        },
    )
    .await?;
    let api_key = api_key.expose().to_owned();
    // A process reads the table's layout item once; done here so that no phase pays it.
    store
        .due_certificates(clock.now(), PageRequest::first(1))
        .await?;
    recorder.take();
    let mut accountant = Accountant::default();
    let mut phases = Vec::new();
    let measure = |name, unit, count: usize, accountant: &mut Accountant| Phase {
        name,
        unit,
        count: count as f64,
        ledger: accountant.ledger(&recorder.take()),
    };

    // The API whitelists the domains.
    let mut created = Vec::new();
    for n in 0..domains {
        let hostname = format!("shop{n}.customer{n}.example.com");
        authenticate(&services, Some(&api_key)).await?;
        created.push(create_domain(&services, &account.id, &hostname, ORIGIN_URL).await?);
    }
    phases.push(measure(
        "API: POST /v1/domains (with the authorizer)",
        "domain",
        domains,
        &mut accountant,
    ));

    // The first HTTPS request of each: lookup, step, issuance.
    for domain in &created {
        first_request(&services, &issuer, &domain.hostname).await?;
    }
    phases.push(measure(
        "Edge: first request (lookup, step, issuance)",
        "domain",
        domains,
        &mut accountant,
    ));

    // The API reads them.
    for domain in &created {
        authenticate(&services, Some(&api_key)).await?;
        get_domain(&services, &account.id, &domain.id).await?;
    }
    phases.push(measure(
        "API: GET /v1/domains/{id}",
        "request",
        domains,
        &mut accountant,
    ));
    for domain in &created {
        authenticate(&services, Some(&api_key)).await?;
        ssl_status(&services, &account.id, &domain.id).await?;
    }
    phases.push(measure(
        "API: GET /v1/domains/{id}/ssl",
        "request",
        domains,
        &mut accountant,
    ));
    let pages = domains.div_ceil(25);
    let mut cursor = None;
    for _ in 0..pages {
        authenticate(&services, Some(&api_key)).await?;
        let page = list_domains(&services, &account.id, cursor.take(), Some(25)).await?;
        cursor = page.next_cursor;
    }
    phases.push(measure(
        "API: GET /v1/domains (pages of 25)",
        "page",
        pages,
        &mut accountant,
    ));

    // A terminator's hostname lookup of a name its cache does not hold.
    for domain in &created {
        services.store.domain_by_hostname(&domain.hostname).await?;
    }
    phases.push(measure(
        "Edge: lookup of a name not in its cache",
        "lookup",
        domains,
        &mut accountant,
    ));

    // A terminator's incremental pass when nothing changed: both feeds, 16 s back.
    clock.advance(Duration::minutes(1));
    let passes = 20;
    for _ in 0..passes {
        let since = clock.now() - Duration::seconds(16);
        store
            .domains_changed_since(since, PageRequest::first(1000))
            .await?;
        store
            .certificates_changed_since(since, PageRequest::first(1000))
            .await?;
    }
    phases.push(measure(
        "Edge: change-feed pass, nothing changed",
        "pass",
        passes,
        &mut accountant,
    ));

    // Renewal: 61 days on, every certificate is due; one renewer run renews them all.
    clock.advance(Duration::days(61));
    let workers = WorkerConfig {
        concurrency: 8,
        ..WorkerConfig::default()
    };
    let report = handle_schedule(
        &services,
        &issuer,
        &workers.renewal_settings(),
        &ScheduleEvent {
            schedule: Some("bench-dynamo-capacity".to_owned()),
            scheduled_time: None,
            execution_id: Some("renewals".to_owned()),
            ..ScheduleEvent::default()
        },
    )
    .await
    .context("the renewer's run")?;
    if report.issued != domains {
        bail!(
            "the renewer renewed {} of {domains}: {report:?}",
            report.issued
        );
    }
    phases.push(measure(
        "Renewer: one renewal (due query share included)",
        "renewal",
        domains,
        &mut accountant,
    ));

    // The change-feed pass that reads those renewals: every changed item, once per terminator.
    let since = clock.now() - Duration::hours(1);
    let mut changes = 0;
    let mut cursor = None;
    loop {
        let page = store
            .certificates_changed_since(
                since,
                PageRequest {
                    cursor: cursor.take(),
                    limit: 1000,
                },
            )
            .await?;
        changes += page.items.len();
        match page.next_cursor {
            Some(next) => cursor = Some(next),
            None => break,
        }
    }
    let _ = store
        .domains_changed_since(since, PageRequest::first(1000))
        .await?;
    let mut feed_read = measure(
        "Edge: change-feed read, per changed item",
        "item read",
        changes.max(1),
        &mut accountant,
    );
    // What an item adds to a pass: the requests are the idle pass's (counted apart); an item
    // adds its bytes (eventually consistent: 8 KB a unit), whatever the rounding of one small
    // read.
    let mut total = Units::default();
    for (_, units) in feed_read.ledger.by_class.values_mut() {
        *units = Units {
            rcu: units.read_bytes / 8192.0,
            ..Units::default()
        };
        total.add(*units);
    }
    feed_read.ledger.total = total;
    feed_read.ledger.requests_by_operation.clear();
    phases.push(feed_read);

    let section = report_section(options, domains, &phases, &accountant);
    section.publish()?;
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// The report.
// ---------------------------------------------------------------------------------------------

fn report_section(
    options: Options,
    domains: usize,
    phases: &[Phase],
    accountant: &Accountant,
) -> Section {
    let mut section = Section::new(
        "7. DynamoDB capacity at 1M domains",
        "dynamo-capacity",
        options,
    );

    let mut measured = Table::new(
        &format!(
            "Measured on moto: DynamoDB requests and capacity units per operation ({domains} domains, 90-day Pebble certificates)"
        ),
        &[
            "Operation",
            "Per",
            "Requests",
            "Read units",
            "Write units",
            "Requests by API call",
        ],
    );
    for phase in phases {
        let per = 1.0 / phase.count.max(1.0);
        let total = phase.ledger.total.scaled(per);
        measured.row(vec![
            phase.name.to_owned(),
            phase.unit.to_owned(),
            format!("{:.2}", total.requests),
            format!("{:.2}", total.rcu),
            format!("{:.2}", total.wcu),
            phase
                .ledger
                .requests_by_operation
                .iter()
                .map(|(operation, count)| format!("{operation} {:.2}", *count as f64 * per))
                .collect::<Vec<_>>()
                .join(", "),
        ]);
    }
    section.table(measured);

    // Item sizes as stored.
    let mut sizes: BTreeMap<String, (usize, usize)> = BTreeMap::new();
    for item in accountant.items.values() {
        let entity = string_attr(item, schema::ENTITY).unwrap_or("?").to_owned();
        let entry = sizes.entry(entity).or_default();
        entry.0 += 1;
        entry.1 += item_size(item);
    }
    let mut size_table = Table::new(
        "Item sizes as stored (bytes, mean)",
        &["Item", "Items seen", "Mean size"],
    );
    for (entity, (count, bytes)) in &sizes {
        size_table.row(vec![
            entity.clone(),
            whole(*count as f64),
            whole(*bytes as f64 / *count as f64),
        ]);
    }
    section.table(size_table);

    // Rates at 1M domains.
    let find = |name: &str| phases.iter().find(|phase| phase.name.starts_with(name));
    let workloads: Vec<(&str, f64, &str)> = vec![
        (
            "API: POST /v1/domains",
            API_CREATES,
            "new domains a second (steady)",
        ),
        (
            "Edge: first request",
            API_CREATES,
            "their first HTTPS requests",
        ),
        (
            "API: GET /v1/domains/{id}",
            API_GETS,
            "domain reads a second",
        ),
        (
            "API: GET /v1/domains/{id}/ssl",
            API_SSL,
            "status reads a second",
        ),
        (
            "API: GET /v1/domains (pages",
            API_LIST_PAGES,
            "list pages a second",
        ),
        (
            "Edge: lookup of a name",
            TERMINATORS * COLD_LOOKUPS_PER_TERMINATOR,
            "cold lookups a second (all terminators)",
        ),
        (
            "Edge: change-feed pass",
            TERMINATORS,
            "passes a second (one per terminator)",
        ),
        (
            "Renewer: one renewal",
            RENEWALS_90_DAY,
            "renewals a second (90-day certificates)",
        ),
    ];
    // Every item change is read by every terminator on each pass while it is in the window
    // (1 s passes, 15 s overlap): 16 times. A renewal changes its certificate; a new domain
    // and its first request change the domain and create its certificate.
    let changes_per_second = RENEWALS_90_DAY + API_CREATES * 2.0;
    let feed_reads = TERMINATORS * 16.0 * changes_per_second;

    let mut rates = Table::new(
        "The deployment modelled: 1M domains in one account",
        &["Workload", "Rate a second"],
    );
    for (name, rate, what) in &workloads {
        rates.row(vec![format!("{name} - {what}"), format!("{rate:.3}")]);
    }
    rates.row(vec![
        format!(
            "Edge: change-feed reads of changed items ({changes_per_second:.2} changes a second, each read by every terminator on 16 passes)"
        ),
        format!("{feed_reads:.3}"),
    ]);
    section.table(rates);

    let mut load: BTreeMap<String, (Option<f64>, Units)> = BTreeMap::new();
    let mut add = |per_operation: BTreeMap<String, (Option<f64>, Units)>, rate: f64| {
        for (class, (keys, units)) in per_operation {
            load.entry(class)
                .or_insert((keys, Units::default()))
                .1
                .add(units.scaled(rate));
        }
    };
    for (name, rate, _) in &workloads {
        if let Some(phase) = find(name) {
            add(phase.per_operation(), *rate);
        }
    }
    if let Some(phase) = find("Edge: change-feed read") {
        add(phase.per_operation(), feed_reads);
    }
    let mut per_key = Table::new(
        "Steady load per partition key at 1M domains, against 3,000 read / 1,000 write units a second",
        &[
            "Partition key",
            "Keys",
            "Requests/s per key",
            "Read units/s per key",
            "Write units/s per key",
            "Headroom (reads / writes)",
            "As one key, the earlier layout: units/s (reads / writes)",
        ],
    );
    for (class, (keys, units)) in &load {
        let (keys_text, per) = match keys {
            Some(keys) => (whole(*keys), units.scaled(1.0 / keys)),
            // One per item: a key sees its own item's traffic, spread over a million items.
            None => ("one per item".to_owned(), units.scaled(1.0 / DOMAINS)),
        };
        let headroom = |used: f64, limit: f64| match limit / used {
            _ if used <= 0.0 => "-".to_owned(),
            ratio if ratio > 10_000.0 => "> 10,000x".to_owned(),
            ratio => format!("{}x", whole(ratio)),
        };
        per_key.row(vec![
            class.clone(),
            keys_text,
            format!("{:.3}", per.requests),
            format!("{:.3}", per.rcu),
            format!("{:.3}", per.wcu),
            format!(
                "{} / {}",
                headroom(per.rcu, PARTITION_RCU),
                headroom(per.wcu, PARTITION_WCU)
            ),
            match keys {
                Some(keys) if *keys > 1.0 => format!("{:.1} / {:.1}", units.rcu, units.wcu),
                _ => "same".to_owned(),
            },
        ]);
    }
    section.table(per_key);

    // Peaks: what saturates a key first.
    let mut peaks = Table::new(
        "Peaks: the rate that saturates the busiest key",
        &[
            "Burst",
            "Busiest key",
            "Its units per operation",
            "Most a second",
            "Most a second, the earlier layout (its busiest key)",
        ],
    );
    // The earlier layout: an account's items and its account item in one partition, each
    // index key unsharded.
    let earlier_busiest = |phase: &Phase, reads: bool| -> Option<(String, f64)> {
        let mut merged: BTreeMap<String, f64> = BTreeMap::new();
        for (class, (keys, units)) in phase.per_operation() {
            let value = if reads { units.rcu } else { units.wcu };
            let merged_class = if class.starts_with("`ACCT#{account}") {
                "`ACCT#{account}`".to_owned()
            } else if keys.is_some_and(|keys| keys > 1.0) {
                class.replace("#{s}", "")
            } else if keys.is_none() {
                continue;
            } else {
                class
            };
            *merged.entry(merged_class).or_default() += value;
        }
        merged.into_iter().max_by(|a, b| a.1.total_cmp(&b.1))
    };
    let busiest = |phase: &Phase, reads: bool| -> Option<(String, f64)> {
        phase
            .per_operation()
            .into_iter()
            .map(|(class, (keys, units))| {
                let per_key = match keys {
                    Some(keys) => {
                        let value = if reads { units.rcu } else { units.wcu };
                        value / keys
                    }
                    None => 0.0,
                };
                (class, per_key)
            })
            .max_by(|a, b| a.1.total_cmp(&b.1))
    };
    for (name, reads, label) in [
        (
            "API: POST /v1/domains",
            false,
            "Bulk import of domains (API)",
        ),
        (
            "Edge: first request",
            false,
            "First requests of imported domains (issuance)",
        ),
        (
            "Renewer: one renewal",
            false,
            "Renewal storm (everything due at once)",
        ),
        (
            "Edge: lookup of a name",
            true,
            "Cold hostname lookups (all terminators)",
        ),
        ("API: GET /v1/domains/{id}", true, "API domain reads"),
    ] {
        if let Some(phase) = find(name)
            && let Some((class, per_op)) = busiest(phase, reads)
            && per_op > 0.0
        {
            let limit = if reads { PARTITION_RCU } else { PARTITION_WCU };
            let earlier = earlier_busiest(phase, reads)
                .filter(|(_, units)| *units > 0.0)
                .map_or("-".to_owned(), |(class, units)| {
                    format!("{} ({class})", whole(limit / units))
                });
            peaks.row(vec![
                label.to_owned(),
                class,
                format!("{per_op:.3} {}", if reads { "read" } else { "write" }),
                whole(limit / per_op),
                earlier,
            ]);
        }
    }
    section.table(peaks);

    // A terminator's full pass (start, resync): every domain and certificate once.
    let mean = |entity: &str| {
        sizes
            .get(entity)
            .map_or(0.0, |(count, bytes)| *bytes as f64 / *count as f64)
    };
    let feed_bytes = DOMAINS * (mean("domain") + mean("certificate"));
    let feed_rcu = feed_bytes / 4096.0 / 2.0;
    let shard_keys = 2.0 * f64::from(schema::INDEX_SHARDS);
    section.note(format!(
        "A terminator's full pass (at start and every resync) reads both feeds whole: {:.2} GB, {} read units, which {} shard keys at 3,000 units a second each serve in {:.1} s at the least (one unsharded key per feed: {:.1} s); {} terminators starting together: {:.1} s.",
        feed_bytes / 1e9,
        whole(feed_rcu),
        shard_keys,
        feed_rcu / (shard_keys * PARTITION_RCU),
        feed_rcu / (2.0 * PARTITION_RCU),
        TERMINATORS,
        TERMINATORS * feed_rcu / (shard_keys * PARTITION_RCU),
    ));
    // The item collections: an account's domains and certificates, each with its local-index
    // copy.
    let per_domain = (mean("domain") + mean("certificate")) * 2.0;
    let cap = 10e9;
    let shards = f64::from(schema::ACCOUNT_SHARDS);
    section.note(format!(
        "Item collections: 1M domains with their certificates are {:.1} GB in their account, local-index copies included: {:.0} MB in each of the {} account shards, against the 10 GB cap of a table with a local index. One partition per account would reach the cap at {} domains, the shards at {}; each KB added to a certificate item (sealed key material, say) lowers that to {}.",
        DOMAINS * per_domain / 1e9,
        DOMAINS * per_domain / shards / 1e6,
        schema::ACCOUNT_SHARDS,
        whole(cap / per_domain),
        whole(cap * shards / per_domain),
        whole(cap * shards / (per_domain + 2048.0)),
    ));
    section.note(format!(
        "Renewals of 6-day certificates (every 3 days: {RENEWALS_6_DAY:.2}/s instead of {RENEWALS_90_DAY:.3}/s) multiply the renewal rows by {:.0}.",
        RENEWALS_6_DAY / RENEWALS_90_DAY
    ));
    section.note(
        "Method: moto_server serves DynamoDB; an SDK interceptor on the store's client records every request with its answer. Units follow DynamoDB's rules from the item sizes seen (reads: 4 KB units, half when eventually consistent; writes: 1 KB units, twice in a transaction; an item write adds, rewrites or removes each index entry it has: one index write each, two when an index key moves). Local-index entries and reads are charged to the item's own partition. Each row of the per-key table is the sum over the workloads of (rate x measured units per operation) divided by the keys of that class; `one per item` keys see only their own item's share (the total divided by 1M domains).",
    );
    section
}

//! The Lambda binaries themselves, not only their handlers: every API function, the authorizer
//! and the two workers run as child processes against an in-test Lambda Runtime API
//! (`edgecert_integration::lambda_runtime`), each with exactly the environment template.yaml
//! gives it, on one DynamoDB table, Secrets Manager and KMS in moto (certificate keys sealed,
//! the stack's default; one test deploys `KeyStorage=secrets-manager`), with
//! pebble-challtestsrv as the only DNS server and Pebble as the CA.
//!
//! Every event is the function's file in `events/` with its placeholders replaced by real ids
//! (`harness::ApiCall`), and the caller identity in each API event is the context the
//! authorizer binary returned for the key, as API Gateway passes it on. The assertions read
//! the Lambda response as API Gateway does (`statusCode`, `body`).

mod harness;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgecert_api::config::vars::ADMIN_KEY_SECRET;
use edgecert_api::routes::DASHBOARD_FUNCTION;
use edgecert_api::{ROUTES, routes};
use edgecert_aws::{AwsClients, DynamoStore, create_table, ensure_kms_key};
use edgecert_core::model::{Account, ApiKey, Zone};
use edgecert_core::ports::{AccountStore as _, CertificateStore as _, ZoneStore as _};
use edgecert_core::{AccountId, CertificateId, Hostname, PlanName, ZoneId};
use edgecert_deployment::vars;
use edgecert_integration::iam;
use edgecert_integration::lambda_binary::lambda_binary;
use edgecert_integration::template::{Principal, Stack};
use edgecert_integration::{
    AwsRecorder, Http01Responder, InitError, LambdaProcess, Moto, Pebble, PebbleOptions,
    Route53Zone,
};
use harness::{AUTHORIZER_EVENT, ApiCall, EDGE_HOSTNAME};
use serde_json::{Value, json};
use tokio::task::JoinSet;

/// Every function the one binary serves beside the workers, by its `EDGECERT_FUNCTION`: the
/// authorizer, the dashboard and the routes'.
fn api_functions() -> Vec<(String, PathBuf)> {
    [AUTHORIZER, DASHBOARD_FUNCTION]
        .into_iter()
        .chain(ROUTES.iter().map(|route| route.function))
        .map(|function| (function.to_owned(), lambda_binary()))
        .collect()
}

/// The authorizer's `EDGECERT_FUNCTION`.
const AUTHORIZER: &str = "authorizer";

/// The workers' binaries, in `edgecert-workers` (see [`worker_binaries`]).
const WORKER_BINARIES: [&str; 2] = ["issuer", "renewer"];

const PAID_PLAN: &str = "Certificate management requires paid subscription";

/// The events of the workers, with placeholders (events/README.md).
const ISSUER_STREAM: &str = include_str!("../../../events/issuer-stream.json");
const RENEWER_SCHEDULE: &str = include_str!("../../../events/renewer-schedule.json");

/// How long an issuance through Pebble may take.
const ISSUANCE_TIMEOUT: Duration = Duration::from_secs(120);
/// The renewer's invocation timeout: its deadline margin (it takes no work in its last five
/// minutes) plus time for an issuance.
const RENEWER_TIMEOUT: Duration = Duration::from_secs(300 + ISSUANCE_TIMEOUT.as_secs());

fn binary(_function: &str) -> PathBuf {
    lambda_binary()
}

// ---------------------------------------------------------------------------------------------
// The deployment: a stack of the SAM-transformed template.yaml, with this test's parameters

/// The stack this test deploys: template.yaml transformed by SAM and evaluated with this test's
/// parameter values, so every function gets the environment the template gives it (and its IAM
/// policy names the same table and secrets), plus what only a local run sets
/// (`EDGECERT_DNS_SERVER`, `EDGECERT_ACME_CA_ROOT`). Every function talks to moto through
/// the recorder, on an endpoint of its own: its calls are checked against its policy.
struct Deployment {
    stack: Stack,
    table: String,
    admin_key: String,
    /// A hosted zone of the operator's AWS account (in moto) granted to `granted_account` by
    /// the stack's `Route53ZoneGrants`: DNS-01 through Route 53 with the functions' own roles.
    granted_zone: Arc<Route53Zone>,
    /// The EdgeCert account the hosted zone is granted to (created in the store by the test).
    granted_account: AccountId,
    dns_server: SocketAddr,
    acme_ca_root: PathBuf,
    recorder: AwsRecorder,
}

impl Deployment {
    /// The environment of `binary`: its recorder endpoint and moto's dummy credentials, the
    /// variables template.yaml gives that function (its globals and its own) as this stack
    /// evaluates them, the DNS server (so no binary ever asks the system's resolvers), and
    /// Pebble's listener root where the function talks to the CA.
    async fn environment(&self, binary: &str) -> Vec<(String, String)> {
        let mut env = self
            .recorder
            .aws_env(binary)
            .await
            .expect("a recorder endpoint for the function");
        let variables = self
            .stack
            .function_environment(binary)
            .unwrap_or_else(|error| panic!("the environment of {binary}: {error:#}"));
        let talks_to_the_ca = variables
            .iter()
            .any(|(name, _)| name == vars::ACME_DIRECTORY);
        env.extend(variables);
        env.push((vars::DNS_SERVER.to_owned(), self.dns_server.to_string()));
        if talks_to_the_ca {
            env.push((
                vars::ACME_CA_ROOT.to_owned(),
                self.acme_ca_root.display().to_string(),
            ));
        }
        env
    }
}

/// The Pebble (and challtestsrv) of this test binary. It never reuses an authorization, so
/// that every issuance and renewal answers its challenges, and the calls doing so are always
/// recorded (with reuse, a renewal would skip them half of the time).
async fn pebble() -> &'static Pebble {
    &pebble_and_port().await.0
}

/// The shared Pebble, and the listener on its HTTP-01 validation port: bound before Pebble
/// starts, so no other test's listener takes the port; the one test that answers HTTP-01
/// takes it.
async fn pebble_and_port() -> &'static (Pebble, std::sync::Mutex<Option<std::net::TcpListener>>) {
    static PEBBLE: tokio::sync::OnceCell<(
        Pebble,
        std::sync::Mutex<Option<std::net::TcpListener>>,
    )> = tokio::sync::OnceCell::const_new();
    PEBBLE
        .get_or_try_init(|| async {
            let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
            let pebble = Pebble::start(PebbleOptions {
                authz_reuse_percent: Some(0),
                http_port: Some(listener.local_addr()?.port()),
                ..PebbleOptions::default()
            })
            .await?;
            Ok::<_, anyhow::Error>((pebble, std::sync::Mutex::new(Some(listener))))
        })
        .await
        .expect("Pebble and pebble-challtestsrv start (apt-get install -y pebble)")
}

/// The listener on Pebble's HTTP-01 validation port (once per test binary).
async fn http01_listener() -> tokio::net::TcpListener {
    let listener = pebble_and_port()
        .await
        .1
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .take()
        .expect("one test of this binary answers HTTP-01");
    listener
        .set_nonblocking(true)
        .expect("a non-blocking listener");
    tokio::net::TcpListener::from_std(listener).expect("a Tokio listener")
}

/// Moto's shared server behind a recorder, a fresh table, Pebble and challtestsrv (with public
/// addresses for the fixtures' origins, which the strict origin policy requires).
async fn deployment() -> Deployment {
    deployment_with(&[]).await
}

/// [`deployment`] with more parameter values (e.g. `KeyStorage`); a value given here wins over
/// this test's usual one. Each deployment has a recorder of its own: its calls are only those
/// of the functions started for it.
async fn deployment_with(parameters: &[(&str, &str)]) -> Deployment {
    let moto = Moto::shared().await.expect("moto_server starts");
    let clients = AwsClients::for_local_endpoint(&moto.endpoint_url()).await;
    let unique = format!(
        "edgecert-lambda-{}-{}",
        std::process::id(),
        harness::unique_apex("t").replace('.', "-")
    );
    let pebble = pebble().await;
    // What the stack's GenerateSecretString makes: letters and digits.
    let admin_key = format!(
        "Adm1n{}",
        harness::unique_apex("key").replace(['.', '-'], "")
    );
    let admin_key_secret = clients
        .secrets_manager
        .create_secret()
        .name(format!("{unique}-admin-key"))
        .secret_string(&admin_key)
        .send()
        .await
        .expect("the admin key's secret is created in moto")
        .arn
        .expect("moto answers the secret's ARN");
    // The stack's KMS key of sealed key storage (the template's default), as moto made it.
    let kms_key_arn = ensure_kms_key(&clients.kms, &format!("alias/{unique}"))
        .await
        .expect("a KMS key in moto");
    let kms_key_id = kms_key_arn.rsplit('/').next().expect("a key id").to_owned();
    let acme_directory = pebble.directory_url();
    let granted_zone = Arc::new(
        Route53Zone::create(
            moto,
            pebble.challtestsrv().management_url(),
            &harness::unique_apex("route53"),
        )
        .await
        .expect("a Route 53 hosted zone in moto"),
    );
    let granted_account = AccountId::generate();
    let grants = format!("{granted_account}={}", granted_zone.id);
    let template =
        tokio::task::spawn_blocking(edgecert_integration::template::transformed_template)
            .await
            .expect("the transform task completes")
            .expect("template.yaml transforms (SAM venv)");
    // The template's parameters as this test deploys it (the first value given for a
    // parameter counts); the others keep their defaults.
    let mut values = parameters.to_vec();
    values.extend([
        ("EdgeHostname", EDGE_HOSTNAME),
        ("AcmeEnvironment", acme_directory.as_str()),
        ("AcmeContactEmail", "ops@edgecert.test"),
        ("CaaIdentities", "letsencrypt.org,pebble.letsencrypt.org"),
        ("IssueConcurrency", "2"),
        ("Route53ZoneGrants", grants.as_str()),
        // A VPC of the operator's, so the edge's addresses are the two Elastic IPs alone.
        ("VpcId", "vpc-0123456789abcdef0"),
        ("SubnetIdA", "subnet-0123456789abcdef0"),
        ("SubnetIdB", "subnet-0123456789abcdef1"),
    ]);
    let stack = Stack::new(template, &unique, &values)
        .expect("a stack of template.yaml with this test's parameters")
        // challtestsrv answers every A query with 127.0.0.1 unless told otherwise: every hostname
        // points at the edge.
        .with_physical_id("EdgeAddressA", "127.0.0.1")
        .with_physical_id("EdgeAddressB", "127.0.0.2")
        .with_physical_id("AdminKeySecret", &admin_key_secret)
        .with_physical_id("KeyStorageKmsKey", &kms_key_id);
    let table = stack.physical_id("Table").expect("the table's name");
    create_table(&clients.dynamodb, &table)
        .await
        .expect("the table is created in moto");
    Deployment {
        stack,
        table,
        admin_key,
        granted_zone,
        granted_account,
        dns_server: pebble.challtestsrv().dns_server_addr(),
        acme_ca_root: pebble.listener_ca_pem_path().to_path_buf(),
        recorder: AwsRecorder::new(moto).expect("the AWS call recorder"),
    }
}

/// The store on the deployment's table, for what the binaries cannot create here (not
/// recorded: it is the test's, not a function's).
async fn store(deployment: &Deployment) -> DynamoStore {
    let moto = Moto::shared().await.expect("moto_server starts");
    let clients = AwsClients::for_local_endpoint(&moto.endpoint_url()).await;
    DynamoStore::new(clients.dynamodb, deployment.table.clone())
}

/// Checks every AWS call the functions made against their roles' policies in the stack, writes
/// the report (with the statements no call needed) to `<target>/tmp/<file>`, and fails naming
/// each call no statement allows.
fn assert_iam_allows_every_call(deployment: &Deployment, ran: &[String], file: &str) {
    let principals: Vec<(String, Principal)> = ran
        .iter()
        .map(|binary| (binary.clone(), Principal::LambdaBinary(binary.clone())))
        .collect();
    let calls = deployment.recorder.calls();
    assert!(!calls.is_empty(), "the recorder saw no AWS call");
    let report = iam::check(&deployment.stack, &principals, &calls)
        .unwrap_or_else(|error| panic!("checking IAM: {error:#}"));
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join(file);
    report.write(&path).expect("the IAM report is written");
    eprintln!("{report}(also in {})", path.display());
    assert!(report.all_allowed(), "{report}");
}

// ---------------------------------------------------------------------------------------------
// The functions and their answers

/// Running functions by binary name; each keeps its process (and Runtime API) for all of its
/// invocations, as a warm Lambda execution environment does.
struct Functions {
    running: HashMap<String, LambdaProcess>,
}

impl Functions {
    /// Starts `binaries` (name and path) at once with their deployment environment, and waits
    /// until each has polled for its first event.
    async fn start(deployment: &Deployment, binaries: &[(String, PathBuf)]) -> Functions {
        Functions::start_with(deployment, binaries, &[]).await
    }

    /// [`Functions::start`] with `overrides` replacing variables of the deployment's
    /// environment: processes still configured as before a parameter changed.
    async fn start_with(
        deployment: &Deployment,
        binaries: &[(String, PathBuf)],
        overrides: &[(&str, &str)],
    ) -> Functions {
        let mut starting = JoinSet::new();
        for (name, path) in binaries {
            let (name, path) = (name.clone(), path.clone());
            let mut env = deployment.environment(&name).await;
            for (variable, value) in overrides {
                let set = env.iter_mut().find(|(set, _)| set == variable);
                set.unwrap_or_else(|| panic!("{name} has no {variable} to override"))
                    .1 = (*value).to_owned();
            }
            starting.spawn(async move {
                let started = LambdaProcess::start(&name, &path, &env).await;
                (name, started)
            });
        }
        let mut running = HashMap::new();
        while let Some(joined) = starting.join_next().await {
            let (name, started) = joined.expect("a start task completes");
            let process = started.unwrap_or_else(|error| panic!("{name} starts: {error:#}"));
            running.insert(name, process);
        }
        Functions { running }
    }

    fn process(&mut self, name: &str) -> &mut LambdaProcess {
        self.running
            .get_mut(name)
            .unwrap_or_else(|| panic!("{name} is not running"))
    }

    /// Invokes `name` with `event` and returns its response payload; a function error fails.
    async fn invoke(&mut self, name: &str, event: &Value, timeout: Duration) -> Value {
        let process = self.process(name);
        let result = process
            .invoke_with_timeout(event, timeout)
            .await
            .unwrap_or_else(|error| panic!("invoking {name}: {error:#}"));
        result.into_response().unwrap_or_else(|error| {
            panic!(
                "{name} answered with an invocation error: {error:#}\n--- its output ---\n{}",
                process.output_tail()
            )
        })
    }

    /// Invokes an API function with `call`'s event, as API Gateway would, and reads the HTTP
    /// response it returns.
    /// The function is the one the route table gives the event's method and path, as API
    /// Gateway picks the integration.
    async fn call(&mut self, call: ApiCall) -> Reply {
        let event = call.event();
        let method = event["requestContext"]["http"]["method"].as_str();
        let path = event["rawPath"].as_str();
        let (route, _) = method
            .zip(path)
            .and_then(|(method, path)| routes::find(method, path))
            .unwrap_or_else(|| panic!("no route for the event {event}"));
        let response = self
            .invoke(route.function, event, Duration::from_secs(30))
            .await;
        Reply::read(route.function, &response)
    }

    /// Runs the authorizer binary on events/authorizer.json carrying `key`, and returns the
    /// context API Gateway passes on to the route's function.
    async fn authorize(&mut self, key: &str) -> Value {
        let mut event: Value = serde_json::from_str(AUTHORIZER_EVENT).expect("authorizer.json");
        let bearer = format!("Bearer {key}");
        event["headers"]["authorization"] = json!(bearer);
        event["identitySource"] = json!([bearer]);
        let response = self
            .invoke("authorizer", &event, Duration::from_secs(30))
            .await;
        // A simple response: always authorized, the caller's identity (or `anonymous`) in
        // the context, which the handlers check.
        assert_eq!(response["isAuthorized"], true, "{response}");
        response["context"].clone()
    }
}

/// An API function's answer, as API Gateway reads the Lambda proxy response.
#[derive(Debug)]
struct Reply {
    function: String,
    status: u64,
    /// The JSON body; `Null` when there is none.
    body: Value,
}

impl Reply {
    fn read(function: &str, response: &Value) -> Reply {
        let status = response["statusCode"]
            .as_u64()
            .unwrap_or_else(|| panic!("{function} answered no statusCode: {response}"));
        assert_eq!(
            response["isBase64Encoded"], false,
            "{function} answers JSON as text"
        );
        let body = match response["body"].as_str() {
            None | Some("") => Value::Null,
            Some(text) => {
                assert_eq!(
                    response["headers"]["content-type"], "application/json",
                    "{function}: {response}"
                );
                serde_json::from_str(text).unwrap_or_else(|error| {
                    panic!("{function} answered a body that is not JSON ({error}): {text}")
                })
            }
        };
        Reply {
            function: function.to_owned(),
            status,
            body,
        }
    }

    /// The body, after checking the status.
    #[track_caller]
    fn expect(self, status: u64) -> Value {
        assert_eq!(
            self.status, status,
            "{} answered {} with {}",
            self.function, self.status, self.body
        );
        self.body
    }

    /// The error message, after checking the status and the error code.
    #[track_caller]
    fn expect_error(self, status: u64, code: &str) -> String {
        let function = self.function.clone();
        let body = self.expect(status);
        assert_eq!(body["error"]["code"], json!(code), "{function}: {body}");
        body["error"]["message"]
            .as_str()
            .unwrap_or_else(|| panic!("{function}: no message in {body}"))
            .to_owned()
    }
}

fn text(value: &Value) -> String {
    value
        .as_str()
        .unwrap_or_else(|| panic!("{value} is not a string"))
        .to_owned()
}

// ---------------------------------------------------------------------------------------------
// The workers' binaries

/// The workers' functions, on the one binary.
fn worker_binaries() -> Vec<(String, PathBuf)> {
    WORKER_BINARIES
        .iter()
        .map(|function| ((*function).to_owned(), lambda_binary()))
        .collect()
}

// ---------------------------------------------------------------------------------------------
// DNS-01 through Route 53

/// The deployment's hosted zone (in moto; challtestsrv serves its records in DNS, as Route 53's
/// name servers would), in the operator's AWS account and granted to one EdgeCert account by
/// the stack's `Route53ZoneGrants`: that account, created here with a key of its own, and its
/// zone. Its certificates are issued with DNS-01 through the Route 53 API by the functions'
/// own roles.
struct GrantedZone {
    hosted: Arc<Route53Zone>,
    account: AccountId,
    /// The context the authorizer returned for the account's key.
    caller: Value,
    zone_id: String,
}

impl GrantedZone {
    /// Creates the granted account in the store and authorizes its key with the authorizer
    /// binary of `functions`, and stores the zone: one whose TXT record Route 53 would serve
    /// cannot be verified here (challtestsrv is the DNS), so it is stored directly, as
    /// zones-create stores a verified one.
    async fn set_up(
        deployment: &Deployment,
        store: &DynamoStore,
        functions: &mut Functions,
    ) -> GrantedZone {
        let hosted = Arc::clone(&deployment.granted_zone);
        deployment.recorder.publish_in_dns(Arc::clone(&hosted));
        let account = deployment.granted_account.clone();
        let key = ApiKey::generate();
        let mut stored = Account::new(
            "Granted zone".to_owned(),
            PlanName::Elite,
            false,
            time::OffsetDateTime::now_utc(),
        );
        stored.id = account.clone();
        store
            .create_account(&stored, &key.hash)
            .await
            .expect("the granted account is stored");
        let caller = functions.authorize(key.plaintext.expose()).await;
        let zone = Zone {
            id: ZoneId::generate(),
            account_id: account.clone(),
            name: Hostname::parse_domain(&hosted.name).expect("a zone name"),
            provider: "route53".to_owned(),
            provider_zone_id: hosted.id.clone(),
            role_arn: None,
            verified: true,
            created_at: time::OffsetDateTime::now_utc(),
            version: 1,
        };
        store
            .create_zone(&zone)
            .await
            .expect("the Route 53 zone is stored");
        GrantedZone {
            hosted,
            account,
            caller,
            zone_id: zone.id.to_string(),
        }
    }

    /// `function`'s event, called by the granted account.
    fn call(&self, function: &'static str) -> ApiCall {
        ApiCall::new(function).with_authorizer_context(self.caller.clone())
    }

    /// Requests a certificate for `label`.<zone> (certificates-create), and has the issuer of
    /// `workers` issue it on its stream event; returns its id once certificates-get shows it
    /// issued.
    async fn issue(
        &self,
        functions: &mut Functions,
        workers: &mut Functions,
        label: &str,
    ) -> String {
        let requested = functions
            .call(self.call("certificates-create").json(json!({
                "zone_id": self.zone_id,
                "domain": format!("{label}.{}", self.hosted.name),
                "auto_renew": true,
            })))
            .await
            .expect(202);
        let id = text(&requested["id"]);
        let stream: Value = serde_json::from_str(
            &ISSUER_STREAM
                .replace("acct_placeholder000000000", self.account.as_str())
                .replace("cert_placeholder000000000", &id),
        )
        .expect("issuer-stream.json");
        let answer = workers.invoke("issuer", &stream, ISSUANCE_TIMEOUT).await;
        assert_eq!(answer, json!({ "batchItemFailures": [] }));
        let issued = functions
            .call(self.call("certificates-get").id(&id))
            .await
            .expect(200);
        assert_eq!(issued["status"], "issued", "{issued}");
        id
    }

    /// Downloads the certificate (certificates-download): its chain, read from its material.
    async fn download(&self, functions: &mut Functions, id: &str) {
        let download = functions
            .call(self.call("certificates-download").id(id))
            .await
            .expect(200);
        assert!(
            text(&download["certificate_pem"]).starts_with("-----BEGIN CERTIFICATE-----"),
            "{download}"
        );
    }

    /// Renews the certificate by hand (certificates-renew), carried out by the renewer's next
    /// run on its schedule; returns the renewer's report.
    async fn renew(&self, functions: &mut Functions, workers: &mut Functions, id: &str) -> Value {
        let renewing = functions
            .call(self.call("certificates-renew").id(id))
            .await
            .expect(202);
        assert_eq!(renewing["status"], "validating", "{renewing}");
        let schedule: Value =
            serde_json::from_str(RENEWER_SCHEDULE).expect("renewer-schedule.json");
        // With time to take work before its deadline margin.
        let report = workers.invoke("renewer", &schedule, RENEWER_TIMEOUT).await;
        assert_eq!(report["issued"], 1, "{report}");
        assert_eq!(report["error_count"], 0, "{report}");
        report
    }

    /// Deletes the certificate (the fixture's query: revoke=true): the CA revokes it, then it
    /// is deleted with its material.
    async fn revoke_and_delete(&self, functions: &mut Functions, id: &str) {
        functions
            .call(self.call("certificates-delete").id(id))
            .await
            .expect(204);
    }

    /// Deletes the zone (zones-delete).
    async fn delete_zone(&self, functions: &mut Functions) {
        functions
            .call(self.call("zones-delete").id(&self.zone_id))
            .await
            .expect(204);
    }
}

// ---------------------------------------------------------------------------------------------
// The tests

#[tokio::test]
async fn every_function_binary_answers_its_event_on_moto() {
    let workers = worker_binaries();
    let started = Instant::now();
    let deployment = deployment().await;
    let pebble: &Pebble = pebble().await;
    let dns = pebble.challtestsrv();
    for origin in ["origin.saas.example.com", "origin-2.saas.example.com"] {
        dns.add_a(origin, &[std::net::Ipv4Addr::new(1, 0, 0, 8)])
            .await
            .expect("challtestsrv takes the origin's address");
    }
    let binaries = api_functions();
    let mut functions = Functions::start(&deployment, &binaries).await;
    eprintln!(
        "{} API functions initialised after {:?}",
        binaries.len(),
        started.elapsed()
    );

    // --- The dashboard: its page, with no key and no AWS call ---------------------------------
    let page: Value =
        serde_json::from_str(include_str!("../../../events/dashboard-page.json")).expect("event");
    let answer = functions
        .invoke("dashboard", &page, Duration::from_secs(30))
        .await;
    assert_eq!(answer["statusCode"], 200, "{answer}");

    // --- Accounts and the authorizer --------------------------------------------------------
    let admin = functions.authorize(&deployment.admin_key).await;
    assert_eq!(admin, json!({ "role": "admin" }));

    // The fixture's body: a pro account that does not require ownership verification.
    let account = functions
        .call(ApiCall::new("accounts-create").with_authorizer_context(admin.clone()))
        .await
        .expect(201);
    assert_eq!(account["plan"], "pro");
    let account_id = text(&account["id"]);
    let api_key = text(&account["api_key"]);
    assert!(api_key.starts_with("eck_"), "{account}");
    let free = functions
        .call(
            ApiCall::new("accounts-create")
                .with_authorizer_context(admin.clone())
                .json(json!({ "name": "Free customer", "plan": "free" })),
        )
        .await
        .expect(201);

    let caller = functions.authorize(&api_key).await;
    assert_eq!(
        caller,
        json!({ "role": "account", "account_id": account_id })
    );
    let free_caller = functions.authorize(&text(&free["api_key"])).await;
    assert_eq!(free_caller["account_id"], free["id"]);
    for wrong in [format!("{api_key}x"), "eck_placeholder".to_owned()] {
        assert_eq!(
            functions.authorize(&wrong).await,
            json!({ "role": "anonymous" }),
            "{wrong}"
        );
    }
    // What a handler answers such a caller.
    let message = functions
        .call(ApiCall::new("limits-get").with_authorizer_context(json!({ "role": "anonymous" })))
        .await
        .expect_error(401, "unauthorized");
    assert_eq!(message, "Missing or invalid API key");
    // An account key is no admin key.
    functions
        .call(ApiCall::new("accounts-create").with_authorizer_context(caller.clone()))
        .await
        .expect_error(401, "unauthorized");

    // The operator's list (the fixture's query: limit=20): both accounts, oldest first.
    let listed = functions
        .call(ApiCall::new("accounts-list").with_authorizer_context(admin.clone()))
        .await
        .expect(200);
    let ids: Vec<&Value> = listed["accounts"]
        .as_array()
        .expect("accounts")
        .iter()
        .map(|account| &account["id"])
        .collect();
    assert_eq!(ids, [&account["id"], &free["id"]], "{listed}");
    functions
        .call(ApiCall::new("accounts-list").with_authorizer_context(caller.clone()))
        .await
        .expect_error(401, "unauthorized");

    // The fixture's body: {"plan": "elite"}.
    let updated = functions
        .call(
            ApiCall::new("accounts-update")
                .with_authorizer_context(admin.clone())
                .id(&account_id),
        )
        .await
        .expect(200);
    assert_eq!(updated["plan"], "elite");
    assert!(updated.get("api_key").is_none(), "{updated}");

    let as_account =
        |function: &'static str| ApiCall::new(function).with_authorizer_context(caller.clone());
    let limits = functions.call(as_account("limits-get")).await.expect(200);
    assert_eq!(
        limits,
        json!({
            "plan": "elite", "max_certificates": 100, "current_count": 0,
            "max_domains": 100, "domain_count": 0,
            "wildcard_enabled": true, "auto_renew_enabled": true,
        })
    );

    // --- Domains ------------------------------------------------------------------------------
    // The fixture's body: shop.customer.example.com behind https://origin.saas.example.com.
    let domain = functions
        .call(as_account("domains-create"))
        .await
        .expect(201);
    let domain_id = text(&domain["id"]);
    assert_eq!(domain["hostname"], "shop.customer.example.com");
    assert_eq!(domain["provisioning_step"], "waiting_dns");
    let instructions = json!({ "records": [
        { "type": "CNAME", "name": "shop.customer.example.com", "value": EDGE_HOSTNAME }
    ] });
    assert_eq!(domain["dns_instructions"], instructions);
    let second = functions
        .call(as_account("domains-create").json(json!({
            "hostname": "www.customer.example.com",
            "origin_url": "https://origin.saas.example.com/",
        })))
        .await
        .expect(201);
    let second_id = text(&second["id"]);

    let listed = functions.call(as_account("domains-list")).await.expect(200);
    assert_eq!(listed["next_cursor"], Value::Null);
    assert_eq!(listed["domains"], json!([domain, second]));
    let got = functions
        .call(as_account("domains-get").id(&domain_id))
        .await
        .expect(200);
    assert_eq!(got, domain);
    // The fixture's body: a new origin.
    let moved = functions
        .call(as_account("domains-update").id(&domain_id))
        .await
        .expect(200);
    assert_eq!(moved["origin_url"], "https://origin-2.saas.example.com/");
    let records = functions
        .call(as_account("domains-dns").id(&domain_id))
        .await
        .expect(200);
    assert_eq!(
        records,
        json!({ "hostname": "shop.customer.example.com", "dns_instructions": instructions })
    );
    // No TXT record exists for it in challtestsrv.
    let message = functions
        .call(as_account("domains-verify").id(&domain_id))
        .await
        .expect_error(422, "txt_not_found");
    assert!(
        message.contains("_edgecert-verify.shop.customer.example.com"),
        "{message}"
    );
    let ssl = functions
        .call(as_account("domains-ssl").id(&domain_id))
        .await
        .expect(200);
    assert_eq!(ssl["provisioning_step"], "waiting_dns");
    assert_eq!(ssl["certificate"], Value::Null);
    // The hostname resolves to the edge: the nudge moves it on and requests its certificate.
    let nudged = functions
        .call(as_account("domains-nudge").id(&domain_id))
        .await
        .expect(200);
    assert_eq!(nudged["provisioning_step"], "issuing", "{nudged}");
    assert_eq!(nudged["certificate"]["status"], "pending");
    let managed_id = text(&nudged["certificate"]["id"]);

    // --- Zones and certificates ---------------------------------------------------------------
    let zones = functions.call(as_account("zones-list")).await.expect(200);
    assert_eq!(zones, json!({ "zones": [], "next_cursor": null }));
    // The fixture's query: the record that proves the account may use example-shop.com.
    let verification = functions
        .call(as_account("zones-verification"))
        .await
        .expect(200);
    assert_eq!(verification["type"], "TXT");
    assert_eq!(verification["name"], "_edgecert-zone.example-shop.com");
    let token = text(&verification["value"]);
    assert!(token.starts_with("edgecert-zone-"), "{verification}");
    // The fixture's body names the Route 53 hosted zone example-shop.com. Without the token
    // in DNS, the import is refused, naming the record and the value to create.
    dns.clear_txt("_edgecert-zone.example-shop.com")
        .await
        .expect("challtestsrv clears the record");
    let message = functions
        .call(as_account("zones-create"))
        .await
        .expect_error(422, "zone_token_not_found");
    assert!(
        message.contains("_edgecert-zone.example-shop.com") && message.contains(&token),
        "{message}"
    );
    // With the token published, the hosted zone must still be reachable as the account's
    // own (no role_arn) or granted by the operator (none here): the function's own Route 53
    // credentials are never used for it.
    dns.set_txt("_edgecert-zone.example-shop.com", &token)
        .await
        .expect("challtestsrv serves the token");
    let message = functions
        .call(as_account("zones-create"))
        .await
        .expect_error(403, "zone_access_denied");
    assert!(
        message.contains("role_arn") && message.contains(&account_id),
        "{message}"
    );
    // A zone whose TXT record Route 53 would serve cannot be verified here (challtestsrv is
    // the DNS): it is stored directly, as zones-create stores a verified one.
    let zone = Zone {
        id: ZoneId::generate(),
        account_id: AccountId::parse(&account_id).expect("an account id"),
        name: Hostname::parse_domain("example-shop.com").expect("a zone name"),
        provider: "route53".to_owned(),
        provider_zone_id: "Z0123456789ABCDEFGHIJ".to_owned(),
        role_arn: None,
        verified: true,
        created_at: time::OffsetDateTime::now_utc(),
        version: 1,
    };
    let store = Arc::new(store(&deployment).await);
    store.create_zone(&zone).await.expect("the zone is stored");
    let zone_id = zone.id.to_string();
    let zones = functions.call(as_account("zones-list")).await.expect(200);
    assert_eq!(zones["zones"][0]["id"], json!(zone_id));
    assert_eq!(zones["zones"][0]["verified"], true);

    let message = functions
        .call(
            ApiCall::new("certificates-create")
                .with_authorizer_context(free_caller.clone())
                .json(json!({ "zone_id": zone_id, "domain": "app.example-shop.com" })),
        )
        .await
        .expect_error(403, "paid_plan_required");
    assert_eq!(message, PAID_PLAN);
    // The fixture's body (app.example-shop.com with www, auto-renewed), on the real zone.
    let mut create = as_account("certificates-create");
    let body = create.event()["body"]
        .as_str()
        .expect("a body")
        .replace("zone_placeholder000000000", &zone_id);
    create = create.body(&body);
    let certificate = functions.call(create).await.expect(202);
    let certificate_id = text(&certificate["id"]);
    assert_eq!(certificate["status"], "pending");
    assert_eq!(certificate["domain"], "app.example-shop.com");

    let list = functions
        .call(as_account("certificates-list"))
        .await
        .expect(200);
    assert_eq!(list["certificates"][0]["id"], json!(certificate_id));
    assert_eq!(
        list["limits"],
        json!({
            "max_certificates": 100, "current_count": 1,
            "wildcard_enabled": true, "auto_renew_enabled": true,
        })
    );
    let got = functions
        .call(as_account("certificates-get").id(&certificate_id))
        .await
        .expect(200);
    assert_eq!(got, certificate);
    let message = functions
        .call(as_account("certificates-download").id(&certificate_id))
        .await
        .expect_error(409, "not_issued");
    assert_eq!(message, "Certificate is not issued yet");
    // Already queued for issuance: renewing changes nothing.
    let renewed = functions
        .call(as_account("certificates-renew").id(&certificate_id))
        .await
        .expect(202);
    assert_eq!(renewed["status"], "pending");
    // The fixture's body: {"auto_renew": false}.
    let changed = functions
        .call(as_account("certificates-update").id(&certificate_id))
        .await
        .expect(200);
    assert_eq!(changed["auto_renew"], false);
    let logs = functions
        .call(as_account("certificates-logs").id(&certificate_id))
        .await
        .expect(200);
    let steps: Vec<&str> = logs["events"]
        .as_array()
        .expect("events")
        .iter()
        .filter_map(|event| event["step"].as_str())
        .collect();
    assert_eq!(steps, ["settings", "requested"], "{logs}");
    // The fixture's query: revoke=true; nothing was issued, so nothing is revoked.
    functions
        .call(as_account("certificates-delete").id(&certificate_id))
        .await
        .expect(204);
    functions
        .call(as_account("certificates-get").id(&certificate_id))
        .await
        .expect_error(404, "not_found");
    functions
        .call(as_account("zones-delete").id(&zone_id))
        .await
        .expect(204);

    // --- The workers ---------------------------------------------------------------------------
    // Pebble validates HTTP-01 on 127.0.0.1 at its HTTP port, where every edge terminator
    // answers from the store: the responder stands in for it.
    let _responder = Http01Responder::on(http01_listener().await, Arc::clone(&store))
        .expect("the HTTP-01 responder listens on Pebble's validation port");
    let mut workers = Functions::start(&deployment, &workers).await;

    // The issuer, on the stream batch naming the managed certificate the nudge requested.
    let stream: Value = serde_json::from_str(
        &ISSUER_STREAM
            .replace("acct_placeholder000000000", &account_id)
            .replace("cert_placeholder000000000", &managed_id),
    )
    .expect("issuer-stream.json");
    let answer = workers.invoke("issuer", &stream, ISSUANCE_TIMEOUT).await;
    assert_eq!(answer, json!({ "batchItemFailures": [] }));
    let ssl = functions
        .call(as_account("domains-ssl").id(&domain_id))
        .await
        .expect(200);
    assert_eq!(ssl["provisioning_step"], "active", "{ssl}");
    assert_eq!(ssl["certificate"]["id"], json!(managed_id));
    assert_eq!(ssl["certificate"]["status"], "issued");

    // The renewer, on its schedule, issues what is due: the second domain's certificate.
    let nudged = functions
        .call(as_account("domains-nudge").id(&second_id))
        .await
        .expect(200);
    assert_eq!(nudged["certificate"]["status"], "pending");
    let schedule: Value = serde_json::from_str(RENEWER_SCHEDULE).expect("renewer-schedule.json");
    // With time to take work before its deadline margin.
    let report = workers.invoke("renewer", &schedule, RENEWER_TIMEOUT).await;
    assert_eq!(report["examined"], 1, "{report}");
    assert_eq!(report["issued"], 1, "{report}");
    assert_eq!(report["error_count"], 0, "{report}");
    let ssl = functions
        .call(as_account("domains-ssl").id(&second_id))
        .await
        .expect(200);
    assert_eq!(ssl["certificate"]["status"], "issued", "{ssl}");

    // --- DNS-01 through Route 53 ---------------------------------------------------------------
    // A downloadable certificate on the granted hosted zone: the issuer and the renewer write
    // and remove the challenge records through the Route 53 API and the CA validates them; the
    // API downloads, renews and revokes what they issued.
    let granted = GrantedZone::set_up(&deployment, &store, &mut functions).await;
    let dns01_id = granted.issue(&mut functions, &mut workers, "app").await;
    granted.download(&mut functions, &dns01_id).await;
    granted.renew(&mut functions, &mut workers, &dns01_id).await;
    granted.revoke_and_delete(&mut functions, &dns01_id).await;
    granted.delete_zone(&mut functions).await;

    // --- Cleaning up through the API ----------------------------------------------------------
    for id in [&domain_id, &second_id] {
        functions
            .call(as_account("domains-delete").id(id))
            .await
            .expect(204);
    }
    let message = functions
        .call(as_account("domains-get").id(&domain_id))
        .await
        .expect_error(404, "not_found");
    assert_eq!(message, "Domain not found");
    let limits = functions.call(as_account("limits-get")).await.expect(200);
    assert_eq!(limits["domain_count"], 0);
    assert_eq!(limits["current_count"], 0);
    eprintln!("every function answered after {:?}", started.elapsed());

    // --- IAM: every call each function made is allowed by its role's policy -----------------
    let ran: Vec<String> = binaries
        .iter()
        .map(|(name, _)| name.clone())
        .chain(WORKER_BINARIES.iter().map(|name| (*name).to_owned()))
        .collect();
    let deployed: Vec<String> = deployment
        .stack
        .lambda_binaries()
        .expect("the stack's functions")
        .into_iter()
        .map(|(_, binary)| binary)
        .collect();
    let mut sorted = ran.clone();
    sorted.sort();
    let mut deployed_sorted = deployed.clone();
    deployed_sorted.sort();
    assert_eq!(
        sorted, deployed_sorted,
        "every Lambda function template.yaml deploys runs in this test, so its calls are checked"
    );
    assert_iam_allows_every_call(&deployment, &ran, "iam-lambda-functions.txt");
}

/// With `KeyStorage=secrets-manager`, every call on certificate keys goes to Secrets Manager:
/// the issuer stores a new key and then chain and key, the API downloads and revokes from the
/// secret and deletes it, the renewer stores a renewal's, and its key storage sweep moves a key
/// sealed before the deployment switched modes into a secret. All on DNS-01 through Route 53
/// (the HTTP-01 validation port is the main test's), and every call checked against the
/// functions' policies.
#[tokio::test]
async fn in_secrets_manager_key_storage_every_key_call_is_allowed() {
    let started = Instant::now();
    let deployment = deployment_with(&[("KeyStorage", "secrets-manager")]).await;
    let api: Vec<(String, PathBuf)> = [
        AUTHORIZER,
        "certificates-create",
        "certificates-get",
        "certificates-download",
        "certificates-renew",
        "certificates-delete",
        "zones-delete",
    ]
    .into_iter()
    .map(|function| (function.to_owned(), lambda_binary()))
    .collect();
    let mut functions = Functions::start(&deployment, &api).await;
    let store = store(&deployment).await;
    let granted = GrantedZone::set_up(&deployment, &store, &mut functions).await;

    // A certificate issued before the deployment moved to Secrets Manager: its key sealed in
    // the table by an issuer still configured for sealed storage (same role, same policy).
    let mut before_the_move = Functions::start_with(
        &deployment,
        &[("issuer".to_owned(), lambda_binary())],
        &[(vars::KEY_STORAGE, "sealed")],
    )
    .await;
    let sealed_id = granted
        .issue(&mut functions, &mut before_the_move, "sealed")
        .await;
    drop(before_the_move);

    // The deployment's own workers, storing every key in Secrets Manager.
    let mut workers = Functions::start(&deployment, &worker_binaries()).await;
    let id = granted.issue(&mut functions, &mut workers, "app").await;
    granted.download(&mut functions, &id).await;
    // The renewer renews it, and its sweep moves the sealed key into a secret.
    let report = granted.renew(&mut functions, &mut workers, &id).await;
    let sweep = &report["key_sweep"];
    assert_eq!(sweep["generation"], "secrets-manager", "{report}");
    assert_eq!(sweep["moved"], 1, "{report}");
    assert_eq!(sweep["error_count"], 0, "{report}");
    // Served from its secret now.
    granted.download(&mut functions, &sealed_id).await;
    for id in [&id, &sealed_id] {
        granted.revoke_and_delete(&mut functions, id).await;
    }
    granted.delete_zone(&mut functions).await;
    eprintln!(
        "secrets-manager key storage ran after {:?}",
        started.elapsed()
    );

    // Not vacuous: each function's Secrets Manager calls on certificate keys were recorded.
    let key_secrets = format!(":secret:{}/cert/", deployment.stack.name());
    let calls = deployment.recorder.calls();
    for (caller, action, what) in [
        ("issuer", "CreateSecret", "a certificate's first key"),
        ("issuer", "PutSecretValue", "the issued chain and key"),
        (
            "certificates-download",
            "GetSecretValue",
            "the chain served",
        ),
        ("renewer", "PutSecretValue", "a renewal's key and chain"),
        ("renewer", "CreateSecret", "the sweep moving a sealed key"),
        (
            "certificates-delete",
            "GetSecretValue",
            "the leaf to revoke",
        ),
        (
            "certificates-delete",
            "DeleteSecret",
            "the deleted certificate's secret",
        ),
    ] {
        let action = format!("secretsmanager:{action}");
        assert!(
            calls.iter().any(|call| call.caller == caller
                && call.authorization.action.as_deref() == Some(action.as_str())
                && call.authorization.resource.contains(&key_secrets)
                && call.status < 300),
            "{caller} made no successful {action} on a certificate's secret ({what})"
        );
    }
    let ran: Vec<String> = api
        .iter()
        .map(|(name, _)| name.clone())
        .chain(WORKER_BINARIES.iter().map(|name| (*name).to_owned()))
        .collect();
    assert_iam_allows_every_call(&deployment, &ran, "iam-lambda-secrets-manager.txt");
}

#[tokio::test]
async fn a_binary_without_its_table_fails_at_init_naming_the_variable() {
    let deployment = deployment().await;
    for name in ["domains-list", "authorizer"] {
        let mut env = deployment.environment(name).await;
        env.retain(|(variable, _)| variable != vars::TABLE_NAME);

        let error = LambdaProcess::start(name, &binary(name), &env)
            .await
            .expect_err("no function starts without its table");

        let init = error
            .downcast_ref::<InitError>()
            .unwrap_or_else(|| panic!("{name}: not an init error: {error:#}"));
        assert!(init.reason.contains("exit status 1"), "{init}");
        // What `main` returned, printed last on stderr: the variable at fault.
        let last = init.output_tail.lines().last().unwrap_or_default();
        assert!(
            last.starts_with("Error: ")
                && last.contains("configuration: EDGECERT_TABLE_NAME: is required"),
            "{init}"
        );
    }
}

#[tokio::test]
async fn the_authorizer_without_its_admin_key_secret_fails_at_init_naming_it() {
    let deployment = deployment().await;
    let missing = format!("{}-no-such-admin-key", deployment.table);
    let mut env = deployment.environment(AUTHORIZER).await;
    for (variable, value) in &mut env {
        if variable == ADMIN_KEY_SECRET {
            value.clone_from(&missing);
        }
    }

    let error = LambdaProcess::start(AUTHORIZER, &lambda_binary(), &env)
        .await
        .expect_err("the authorizer does not start without its admin key");

    let init = error
        .downcast_ref::<InitError>()
        .unwrap_or_else(|| panic!("not an init error: {error:#}"));
    let last = init.output_tail.lines().last().unwrap_or_default();
    assert!(
        last.starts_with("Error: ")
            && last.contains(&format!("reading the admin key's secret {missing}"))
            && last.contains("GetSecretValue"),
        "{init}"
    );
    assert!(
        !init.output_tail.contains(&deployment.admin_key),
        "the key never reaches the logs: {init}"
    );
}

/// The renewer takes no certificate within five minutes of its Lambda deadline (the context's
/// deadline, which the Runtime API gives with each event): invoked with a minute left, it
/// leaves a due certificate due, and still publishes the expiry metric.
#[tokio::test]
async fn the_renewer_takes_no_work_close_to_its_deadline() {
    let deployment = deployment().await;
    pebble()
        .await
        .challtestsrv()
        .add_a(
            "origin.saas.example.com",
            &[std::net::Ipv4Addr::new(1, 0, 0, 8)],
        )
        .await
        .expect("challtestsrv takes the origin's address");
    // A managed certificate due now: an account, its domain, and a nudge (the fixtures' bodies).
    let api: Vec<(String, PathBuf)> = ["accounts-create", "domains-create", "domains-nudge"]
        .into_iter()
        .map(|function| (function.to_owned(), lambda_binary()))
        .collect();
    let mut functions = Functions::start(&deployment, &api).await;
    let account = functions
        .call(ApiCall::new("accounts-create").with_authorizer_context(json!({ "role": "admin" })))
        .await
        .expect(201);
    let caller = json!({ "role": "account", "account_id": account["id"] });
    let domain = functions
        .call(ApiCall::new("domains-create").with_authorizer_context(caller.clone()))
        .await
        .expect(201);
    let nudged = functions
        .call(
            ApiCall::new("domains-nudge")
                .with_authorizer_context(caller)
                .id(&text(&domain["id"])),
        )
        .await
        .expect(200);
    assert_eq!(nudged["certificate"]["status"], "pending", "{nudged}");
    let account_id = AccountId::parse(&text(&account["id"])).expect("an account id");
    let certificate_id =
        CertificateId::parse(&text(&nudged["certificate"]["id"])).expect("a certificate id");
    let store = store(&deployment).await;
    let before = store
        .get_certificate(&account_id, &certificate_id)
        .await
        .expect("the store answers")
        .expect("the certificate exists");
    let mut workers =
        Functions::start(&deployment, &[("renewer".to_owned(), lambda_binary())]).await;
    let schedule: Value = serde_json::from_str(RENEWER_SCHEDULE).expect("renewer-schedule.json");

    let report = workers
        .invoke("renewer", &schedule, Duration::from_secs(60))
        .await;

    assert_eq!(report["examined"], 0, "{report}");
    assert_eq!(report["unstarted"], 1, "{report}");
    let after = store
        .get_certificate(&account_id, &certificate_id)
        .await
        .expect("the store answers")
        .expect("the certificate is still there");
    assert_eq!(after.version, before.version, "untouched: {after:?}");
    assert_eq!(after.due_at(), before.due_at(), "still due");
    let output = workers.process("renewer").output_tail();
    let metric = output
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|line| line.get("_aws").is_some());
    assert!(
        metric.is_some_and(|metric| metric["CertificatesExpiringWithin7Days"] == 0
            && metric["Table"] == json!(deployment.table)),
        "the renewer prints its EMF metric line for its table:\n{output}"
    );
}

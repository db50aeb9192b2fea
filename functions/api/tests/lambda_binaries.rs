//! The Lambda binaries themselves, not only their handlers: every API function, the authorizer
//! and the two workers run as child processes against an in-test Lambda Runtime API
//! (`edgecert_integration::lambda_runtime`), each with exactly the environment template.yaml
//! gives it, on one DynamoDB table and Secrets Manager in moto, with pebble-challtestsrv as the
//! only DNS server and Pebble as the CA.
//!
//! Every event is the function's file in `events/` with its placeholders replaced by real ids
//! (`harness::ApiCall`), and the caller identity in each API event is the context the
//! authorizer binary returned for the key, as API Gateway passes it on. The assertions read
//! the Lambda response as API Gateway does (`statusCode`, `body`).

mod harness;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgecert_api::config::vars;
use edgecert_api::{ROUTES, routes};
use edgecert_aws::{AwsClients, DynamoStore, create_table};
use edgecert_core::model::{ApiKeyHash, Zone};
use edgecert_core::ports::{CertificateStore as _, ZoneStore as _};
use edgecert_core::{AccountId, CertificateId, Hostname, ZoneId};
use edgecert_integration::{Http01Responder, InitError, LambdaProcess, Moto, Pebble};
use harness::{AUTHORIZER_EVENT, ApiCall, EDGE_HOSTNAME};
use serde_json::{Value, json};
use tokio::task::JoinSet;

/// The functions template.yaml deploys besides the routes' (every one runs the same binary).
const AUTHORIZER: &str = "authorizer";
const WORKERS: [&str; 2] = ["issuer", "renewer"];

/// The deadline of the renewer's invocations here: the renewer takes no work within five
/// minutes of its deadline (`edgecert_workers::renewer::DEADLINE_MARGIN`; template.yaml gives it
/// 900 s), so this leaves it [`ISSUANCE_TIMEOUT`] to take and finish its work.
const RENEWER_TIMEOUT: Duration = Duration::from_secs(300 + ISSUANCE_TIMEOUT.as_secs());

const PAID_PLAN: &str = "Certificate management requires paid subscription";

/// The events of the workers, with placeholders (events/README.md).
const ISSUER_STREAM: &str = include_str!("../../../events/issuer-stream.json");
const RENEWER_SCHEDULE: &str = include_str!("../../../events/renewer-schedule.json");

/// How long an issuance through Pebble may take.
const ISSUANCE_TIMEOUT: Duration = Duration::from_secs(120);

/// Every function the binary serves by `EDGECERT_FUNCTION`: the authorizer and the routes'.
fn api_functions() -> Vec<String> {
    std::iter::once(AUTHORIZER)
        .chain(ROUTES.iter().map(|route| route.function))
        .map(str::to_owned)
        .collect()
}

// ---------------------------------------------------------------------------------------------
// The deployment: what template.yaml's parameters stand for here

/// The values of the template's parameters in this test, plus what only a local run sets
/// (`EDGECERT_DNS_SERVER`, `EDGECERT_ACME_CA_ROOT`).
struct Deployment {
    table: String,
    secret_prefix: String,
    admin_key: String,
    /// The secret in moto holding `admin_key`, as template.yaml's AdminKeySecret.
    admin_key_secret: String,
    dns_server: SocketAddr,
    acme_directory: String,
    acme_ca_root: PathBuf,
    aws_env: Vec<(String, String)>,
}

impl Deployment {
    /// The test's value of the template's variable `name` for `function`. A variable the
    /// template gains without a value here fails the test: this test must start the binaries
    /// as deployed.
    fn value(&self, function: &str, name: &str) -> String {
        match name {
            edgecert_integration::template::FUNCTION_VARIABLE => function.to_owned(),
            vars::ADMIN_KEY_SECRET => self.admin_key_secret.clone(),
            vars::TABLE_NAME => self.table.clone(),
            vars::SECRET_PREFIX => self.secret_prefix.clone(),
            vars::EDGE_HOSTNAME => EDGE_HOSTNAME.to_owned(),
            // challtestsrv answers every A query with 127.0.0.1 unless told otherwise: every
            // hostname points at the edge.
            vars::EDGE_IPS => "127.0.0.1".to_owned(),
            vars::ADMIN_KEY_SHA256 => ApiKeyHash::of(&self.admin_key).as_str().to_owned(),
            vars::ACME_DIRECTORY => self.acme_directory.clone(),
            vars::ACME_CONTACT => "ops@edgecert.test".to_owned(),
            vars::CAA_IDENTITIES => "letsencrypt.org,pebble.letsencrypt.org".to_owned(),
            "EDGECERT_ISSUE_CONCURRENCY" => "2".to_owned(),
            "EDGECERT_ORDER_BUDGET" => "300".to_owned(),
            "EDGECERT_ORDER_BUDGET_PERIOD_SECONDS" => "10800".to_owned(),
            "RUST_LOG" => "info".to_owned(),
            other => panic!("template.yaml gives the functions {other}: give it a test value"),
        }
    }

    /// The environment of `binary`: moto's endpoint and dummy credentials, the variables
    /// template.yaml gives that function (its globals and its own), and the DNS server (so no
    /// binary ever asks the system's resolvers) and Pebble's listener root where the function
    /// talks to the CA.
    fn environment(&self, function: &str) -> Vec<(String, String)> {
        let mut env = self.aws_env.clone();
        let names = edgecert_integration::template::function_variables(function)
            .expect("template.yaml deploys the function");
        for name in &names {
            env.push((name.clone(), self.value(function, name)));
        }
        env.push((vars::DNS_SERVER.to_owned(), self.dns_server.to_string()));
        if names.iter().any(|name| name == vars::ACME_DIRECTORY) {
            env.push((
                vars::ACME_CA_ROOT.to_owned(),
                self.acme_ca_root.display().to_string(),
            ));
        }
        env
    }
}

/// Moto's shared server, a fresh table, Pebble and challtestsrv (with public addresses for the
/// fixtures' origins, which the strict origin policy requires).
async fn deployment() -> Deployment {
    let moto = Moto::shared().await.expect("moto_server starts");
    let clients = AwsClients::for_local_endpoint(&moto.endpoint_url()).await;
    let table = format!(
        "edgecert-lambda-{}-{}",
        std::process::id(),
        harness::unique_apex("t").replace('.', "-")
    );
    create_table(&clients.dynamodb, &table)
        .await
        .expect("the table is created in moto");
    let pebble = harness::pebble().await;
    // What the stack's GenerateSecretString makes: letters and digits.
    let admin_key = format!(
        "Adm1n{}",
        harness::unique_apex("key").replace(['.', '-'], "")
    );
    let admin_key_secret = clients
        .secrets_manager
        .create_secret()
        .name(format!("{table}-admin-key"))
        .secret_string(&admin_key)
        .send()
        .await
        .expect("the admin key's secret is created in moto")
        .arn
        .expect("moto answers the secret's ARN");
    Deployment {
        secret_prefix: format!("{table}/"),
        table,
        admin_key,
        admin_key_secret,
        dns_server: pebble.challtestsrv().dns_server_addr(),
        acme_directory: pebble.directory_url(),
        acme_ca_root: pebble.listener_ca_pem_path().to_path_buf(),
        aws_env: moto.aws_env(),
    }
}

/// The store on the deployment's table, for what the binaries cannot create here.
async fn store(deployment: &Deployment) -> DynamoStore {
    let moto = Moto::shared().await.expect("moto_server starts");
    let clients = AwsClients::for_local_endpoint(&moto.endpoint_url()).await;
    DynamoStore::new(clients.dynamodb, deployment.table.clone())
}

// ---------------------------------------------------------------------------------------------
// The functions and their answers

/// Running functions by binary name; each keeps its process (and Runtime API) for all of its
/// invocations, as a warm Lambda execution environment does.
struct Functions {
    running: HashMap<String, LambdaProcess>,
}

impl Functions {
    /// Starts the binary once per function of `functions` at once, each with its deployment
    /// environment, and waits until each has polled for its first event.
    async fn start(deployment: &Deployment, functions: &[String]) -> Functions {
        let path = lambda_binary();
        let mut starting = JoinSet::new();
        for name in functions {
            let (name, path) = (name.clone(), path.clone());
            let env = deployment.environment(&name);
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
// The binary

/// The one Lambda binary (`edgecert-lambda`, crate functions/lambda), as fresh as this test.
///
/// Cargo sets `CARGO_BIN_EXE_<name>` only for the binaries of the package under test, and the
/// binary's package depends on this one, so it cannot be a dependency of this test. Cargo puts
/// it next to this package's test executables' profile directory, though: it is used from there
/// when Cargo built it after the last change to any of its sources (its `.d` file lists every
/// source file, which is what Cargo's own freshness check reads), as `cargo test --workspace`
/// does before it runs any test. Otherwise (`cargo test -p edgecert-api` after a change) it is
/// built now, into the same target directory and profile; Cargo released its lock once the test
/// build was done.
fn lambda_binary() -> PathBuf {
    static BINARY: std::sync::OnceLock<PathBuf> = std::sync::OnceLock::new();
    BINARY
        .get_or_init(|| {
            let test_executable = std::env::current_exe().expect("the test's own path");
            // <target>/<profile>/deps/<this test>
            let profile_dir = test_executable
                .parent()
                .and_then(Path::parent)
                .expect("tests live in <profile>/deps");
            let built = profile_dir.join(LAMBDA_BINARY);
            if is_fresh(&built) {
                return built;
            }
            eprintln!("building the Lambda binary (cargo build -p edgecert-lambda --bins)");
            build_lambda_binary(profile_dir)
        })
        .clone()
}

/// The binary's name (functions/lambda/Cargo.toml).
const LAMBDA_BINARY: &str = "edgecert-lambda";

/// Whether `binary` exists and is newer than every file its Cargo dep-info (`<binary>.d`)
/// lists, and than `Cargo.lock`.
fn is_fresh(binary: &Path) -> bool {
    let modified = |path: &Path| path.metadata().and_then(|meta| meta.modified()).ok();
    let Some(built_at) = modified(binary) else {
        return false;
    };
    let Ok(dep_info) = std::fs::read_to_string(binary.with_extension("d")) else {
        return false;
    };
    // `<target>: <source> <source> ...`, spaces inside paths escaped as `\ `.
    let Some((_, sources)) = dep_info.split_once(": ") else {
        return false;
    };
    let sources = sources.replace("\\ ", "\u{0}");
    let lock = edgecert_integration::workspace_root().join("Cargo.lock");
    sources
        .split_whitespace()
        .map(|source| PathBuf::from(source.replace('\u{0}', " ")))
        .chain(std::iter::once(lock))
        .all(|source| modified(&source).is_some_and(|changed| changed <= built_at))
}

/// Builds the binary with Cargo into the target directory and profile of `profile_dir`, and
/// returns its path as Cargo reports it.
fn build_lambda_binary(profile_dir: &Path) -> PathBuf {
    let target_dir = profile_dir.parent().expect("a target directory");
    let profile = match profile_dir.file_name().and_then(|name| name.to_str()) {
        Some("debug") | None => "dev",
        Some(other) => other,
    };
    let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    let output = Command::new(cargo)
        .current_dir(edgecert_integration::workspace_root())
        .args(["build", "--quiet", "--message-format=json", "--bins"])
        .args(["-p", "edgecert-lambda", "--profile", profile])
        .arg("--target-dir")
        .arg(target_dir)
        .output()
        .expect("cargo runs");
    let stdout = String::from_utf8_lossy(&output.stdout);
    assert!(
        output.status.success(),
        "cargo build -p edgecert-lambda --bins failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stderr),
        stdout
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .filter_map(|message| message["message"]["rendered"].as_str().map(str::to_owned))
            .collect::<String>()
    );
    stdout
        .lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .find(|message| message["target"]["name"] == LAMBDA_BINARY)
        .and_then(|message| message["executable"].as_str().map(PathBuf::from))
        .expect("cargo built the Lambda binary")
}

// ---------------------------------------------------------------------------------------------
// The tests

#[test]
fn template_yaml_gives_every_function_its_environment() {
    let functions = api_functions()
        .into_iter()
        .chain(WORKERS.map(str::to_owned));
    for function in functions {
        let names = edgecert_integration::template::function_variables(&function)
            .unwrap_or_else(|error| panic!("{error:#}"));
        assert!(
            names.iter().any(|name| name == vars::TABLE_NAME),
            "{function}: {names:?}"
        );
    }
}

#[tokio::test]
async fn every_function_binary_answers_its_event_on_moto() {
    let started = Instant::now();
    let deployment = deployment().await;
    let pebble: &Pebble = harness::pebble().await;
    let dns = pebble.challtestsrv();
    for origin in ["origin.saas.example.com", "origin-2.saas.example.com"] {
        dns.add_a(origin, &[std::net::Ipv4Addr::new(198, 51, 100, 8)])
            .await
            .expect("challtestsrv takes the origin's address");
    }
    let api = api_functions();
    let mut functions = Functions::start(&deployment, &api).await;
    eprintln!(
        "{} API functions initialised after {:?}",
        api.len(),
        started.elapsed()
    );

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
    // The fixture's body names a Route 53 hosted zone that does not exist (in moto): the
    // function's Route 53 client is refused, and the zone fails verification.
    let message = functions
        .call(as_account("zones-create"))
        .await
        .expect_error(422, "zone_verification_failed");
    assert!(
        message.contains("route53") && message.contains("Z0123456789ABCDEFGHIJ"),
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
    let _responder = Http01Responder::start(Arc::clone(&store), pebble.http_port())
        .await
        .expect("the HTTP-01 responder listens on Pebble's validation port");
    let mut workers = Functions::start(&deployment, &WORKERS.map(str::to_owned)).await;

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
}

#[tokio::test]
async fn a_binary_without_its_table_fails_at_init_naming_the_variable() {
    let deployment = deployment().await;
    for name in ["domains-list", "authorizer"] {
        let mut env = deployment.environment(name);
        env.retain(|(variable, _)| variable != vars::TABLE_NAME);

        let error = LambdaProcess::start(name, &lambda_binary(), &env)
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
    let mut env = deployment.environment(AUTHORIZER);
    for (variable, value) in &mut env {
        if variable == vars::ADMIN_KEY_SECRET {
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
    harness::pebble()
        .await
        .challtestsrv()
        .add_a(
            "origin.saas.example.com",
            &[std::net::Ipv4Addr::new(198, 51, 100, 8)],
        )
        .await
        .expect("challtestsrv takes the origin's address");
    // A managed certificate due now: an account, its domain, and a nudge (the fixtures' bodies).
    let api = ["accounts-create", "domains-create", "domains-nudge"].map(str::to_owned);
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
    let mut workers = Functions::start(&deployment, &["renewer".to_owned()]).await;
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

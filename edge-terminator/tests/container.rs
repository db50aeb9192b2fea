//! The terminator's container binary as template.yaml deploys it: started with exactly the
//! environment the SAM-transformed template gives the `terminator` container (evaluated for a
//! stack of this test), on DynamoDB, Secrets Manager and KMS in moto through the AWS call
//! recorder, with Pebble as the CA; certificate keys sealed in the table (the stack's default
//! key storage). A whitelisted name's first HTTPS request makes it issue the
//! certificate on demand (answering Pebble's HTTP-01 itself) and proxy to the origin; then
//! every AWS call it made is checked against its task role's policies.

mod support;

use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use edgecert_aws::{AwsClients, DynamoStore, SecretsManagerVault, create_table, ensure_kms_key};
use edgecert_core::PlanName;
use edgecert_core::model::{Account, ApiKey};
use edgecert_core::origin::OriginPolicy;
use edgecert_core::ports::AccountStore as _;
use edgecert_core::usecases::domains::create_domain;
use edgecert_dns::HickoryResolver;
use edgecert_integration::iam;
use edgecert_integration::template::{Principal, Stack, transformed_template};
use edgecert_integration::{AwsRecorder, Moto, Pebble, PebbleOptions, ServiceProcess, free_port};
use edgecert_terminator::roots_from_pem;
use http::StatusCode;
use support::origin::Origin;
use time::OffsetDateTime;

/// The container's name in template.yaml's task definition.
const CONTAINER: &str = "terminator";

/// How long the first request may take: start-up, on-demand issuance through Pebble, proxying.
const FIRST_RESPONSE_WITHIN: Duration = Duration::from_secs(90);

/// The variables a container on this machine must get other values for than the template's,
/// and why: listeners on loopback ports (the HTTP one where Pebble validates), the only DNS
/// server (challtestsrv), the CA's test root, and loopback origins.
fn local_overrides(
    https: SocketAddr,
    http: SocketAddr,
    admin: SocketAddr,
    pebble: &Pebble,
) -> Vec<(&'static str, String)> {
    vec![
        ("EDGECERT_TERMINATOR_HTTPS_ADDR", https.to_string()),
        ("EDGECERT_TERMINATOR_HTTP_ADDR", http.to_string()),
        ("EDGECERT_TERMINATOR_ADMIN_ADDR", admin.to_string()),
        (
            "EDGECERT_DNS_SERVER",
            pebble.challtestsrv().dns_server_addr().to_string(),
        ),
        (
            "EDGECERT_ACME_CA_ROOT",
            pebble.listener_ca_pem_path().display().to_string(),
        ),
        ("EDGECERT_ALLOW_LOOPBACK_ORIGINS", "true".to_owned()),
    ]
}

#[tokio::test]
async fn the_container_issues_on_demand_and_serves_within_its_task_role() {
    let started = Instant::now();
    let moto = Moto::shared().await.expect("moto_server starts");
    let http_port = free_port().expect("a port for the edge's HTTP listener");
    let pebble = Pebble::start(PebbleOptions {
        http_port: Some(http_port),
        ..PebbleOptions::default()
    })
    .await
    .expect("Pebble starts");

    // The stack: template.yaml transformed, with a terminator image so the task is deployed.
    let unique = format!(
        "edgecert-container-{}-{}",
        std::process::id(),
        support::unique_name("t").replace('.', "-")
    );
    // The stack's KMS key of sealed key storage (the template's default), as moto made it.
    let clients = AwsClients::for_local_endpoint(&moto.endpoint_url()).await;
    let kms_key_arn = ensure_kms_key(&clients.kms, &format!("alias/{unique}"))
        .await
        .expect("a KMS key in moto");
    let kms_key_id = kms_key_arn.rsplit('/').next().expect("a key id").to_owned();
    let template = tokio::task::spawn_blocking(transformed_template)
        .await
        .expect("the transform task completes")
        .expect("template.yaml transforms (SAM venv)");
    let stack = Stack::new(
        template,
        &unique,
        &[
            ("EdgeHostname", "edge.edgecert.test"),
            ("AcmeEnvironment", &pebble.directory_url()),
            ("AcmeContactEmail", "ops@edgecert.test"),
            ("CaaIdentities", "letsencrypt.org,pebble.letsencrypt.org"),
            ("TerminatorImage", "registry.edgecert.test/terminator:test"),
            // A VPC of the operator's, so the edge's addresses are the two Elastic IPs alone.
            ("VpcId", "vpc-0123456789abcdef0"),
            ("SubnetIdA", "subnet-0123456789abcdef0"),
            ("SubnetIdB", "subnet-0123456789abcdef1"),
        ],
    )
    .expect("a stack of template.yaml with this test's parameters")
    // challtestsrv answers every A query with 127.0.0.1: every name points at the edge.
    .with_physical_id("EdgeAddressA", "127.0.0.1")
    .with_physical_id("EdgeAddressB", "127.0.0.2")
    .with_physical_id("KeyStorageKmsKey", &kms_key_id);
    let containers: Vec<String> = stack
        .containers()
        .expect("the stack's containers")
        .into_iter()
        .map(|(_, name)| name)
        .collect();
    assert_eq!(
        containers,
        [CONTAINER],
        "every container template.yaml deploys runs in this test, so its calls are checked"
    );

    // What the API would have left: an account and a whitelisted name (not recorded: the
    // test's own writes).
    let table = stack.physical_id("Table").expect("the table's name");
    create_table(&clients.dynamodb, &table)
        .await
        .expect("the table is created in moto");
    let store = DynamoStore::new(clients.dynamodb.clone(), table.clone());
    let account = Account::new(
        "Container test".to_owned(),
        PlanName::Elite,
        false,
        OffsetDateTime::now_utc(),
    );
    store
        .create_account(&account, &ApiKey::generate().hash)
        .await
        .expect("the account is stored");
    let origin = Origin::start().await;
    let hostname = support::unique_name("shop");
    let services = support::Env::services_over(
        Arc::new(store),
        Arc::new(SecretsManagerVault::new(
            clients.secrets_manager.clone(),
            format!("{}/", stack.name()),
        )),
        Arc::new(HickoryResolver::with_name_server(
            pebble.challtestsrv().dns_server_addr(),
        )),
        OriginPolicy {
            allow_loopback: true,
            allow_private: false,
        },
    );
    create_domain(&services, &account.id, &hostname, &origin.url())
        .await
        .expect("the name is whitelisted");

    // The container's environment: the template's, then this machine's replacements.
    let recorder = AwsRecorder::new(moto).expect("the AWS call recorder");
    let https = SocketAddr::from(([127, 0, 0, 1], free_port().expect("an HTTPS port")));
    let http = SocketAddr::from(([127, 0, 0, 1], http_port));
    let admin = SocketAddr::from(([127, 0, 0, 1], free_port().expect("an admin port")));
    let mut variables = stack
        .container_environment(CONTAINER)
        .expect("the container's environment");
    for (name, value) in local_overrides(https, http, admin, &pebble) {
        variables.retain(|(existing, _)| existing != name);
        variables.push((name.to_owned(), value));
    }
    variables.extend(
        recorder
            .aws_env(CONTAINER)
            .await
            .expect("a recorder endpoint for the container"),
    );
    if let Ok(filter) = std::env::var("RUST_LOG") {
        variables.push(("RUST_LOG".to_owned(), filter));
    }
    // `env -i`: exactly these variables, nothing from the test's environment.
    let mut args = vec!["-i".to_owned()];
    args.extend(
        variables
            .iter()
            .map(|(name, value)| format!("{name}={value}")),
    );
    args.push(env!("CARGO_BIN_EXE_edgecert-terminator").to_owned());
    let work_dir = tempfile::tempdir().expect("a work directory");
    let mut process =
        ServiceProcess::spawn(CONTAINER, Path::new("env"), &args, &[], work_dir.path())
            .expect("the container binary starts");

    // The first request: issued on demand, then proxied to the origin.
    let roots = roots_from_pem(
        &pebble
            .issuing_root_pem()
            .await
            .expect("Pebble's issuing root"),
    );
    assert!(!roots.is_empty(), "Pebble's issuing root parses");
    let deadline = Instant::now() + FIRST_RESPONSE_WITHIN;
    let answer = loop {
        process
            .ensure_running()
            .unwrap_or_else(|error| panic!("the container exited: {error:#}"));
        match support::get(https, &hostname, &hostname, "/hello", &roots).await {
            Ok(answer) => break answer,
            Err(error) if Instant::now() < deadline => {
                tracing::debug!(%error, "no answer yet");
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
            Err(error) => panic!(
                "no HTTPS answer for {hostname} within {FIRST_RESPONSE_WITHIN:?}: {error:#}\n--- the container's last lines ---\n{}",
                process.log_tail()
            ),
        }
    };
    assert_eq!(
        answer.0,
        StatusCode::OK,
        "{answer:?}\n--- the container's last lines ---\n{}",
        process.log_tail()
    );
    eprintln!(
        "the container served its first on-demand certificate after {:?}",
        started.elapsed()
    );
    // Let one refresh pass run (the feeds, the certificate load) so its calls are checked too.
    tokio::time::sleep(Duration::from_secs(11)).await;
    process
        .ensure_running()
        .unwrap_or_else(|error| panic!("the container exited: {error:#}"));
    drop(process);

    let principals = [(
        CONTAINER.to_owned(),
        Principal::Container(CONTAINER.to_owned()),
    )];
    let report = iam::check(&stack, &principals, &recorder.calls())
        .unwrap_or_else(|error| panic!("checking IAM: {error:#}"));
    let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("iam-terminator.txt");
    report.write(&path).expect("the IAM report is written");
    eprintln!("{report}(also in {})", path.display());
    assert!(report.checked > 0, "the recorder saw no AWS call");
    assert!(report.all_allowed(), "{report}");
}

//! The local services launcher against the real binaries: Pebble, pebble-challtestsrv, moto.

use std::io::{BufRead as _, BufReader};
use std::net::{Ipv4Addr, SocketAddr};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use edgecert_integration::{
    CaaPolicy, ChalltestsrvHttp01, Moto, Pebble, PebbleOptions, free_port, http_client,
};
use hickory_resolver::config::{NameServerConfigGroup, ResolverConfig, ResolverOpts};
use hickory_resolver::name_server::TokioConnectionProvider;
use hickory_resolver::{Resolver, TokioResolver};
use rustls::pki_types::CertificateDer;
use rustls::pki_types::pem::PemObject as _;

fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A resolver that asks only `server` (challtestsrv), caches nothing and reads no system config.
fn resolver_for(server: SocketAddr) -> TokioResolver {
    let name_servers = NameServerConfigGroup::from_ips_clear(&[server.ip()], server.port(), true);
    let config = ResolverConfig::from_parts(None, Vec::new(), name_servers);
    let mut options = ResolverOpts::default();
    options.cache_size = 0;
    options.attempts = 1;
    options.timeout = Duration::from_secs(2);
    Resolver::builder_with_config(config, TokioConnectionProvider::default())
        .with_options(options)
        .build()
}

#[tokio::test]
async fn pebble_serves_a_directory_mock_dns_and_its_issuing_root_then_stops() {
    let pebble = Pebble::start(PebbleOptions::default()).await.unwrap();

    // GIVEN a started Pebble, THEN its directory answers over TLS with the listener CA.
    let directory: serde_json::Value = pebble
        .http_client()
        .unwrap()
        .get(pebble.directory_url())
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .json()
        .await
        .unwrap();
    assert!(directory["newOrder"].is_string(), "{directory}");
    assert!(pebble.listener_ca_pem_path().is_file());
    assert!(pebble.directory_url().starts_with("https://127.0.0.1:"));

    // WHEN a TXT record is set through the management API, THEN challtestsrv's DNS serves it.
    let challtestsrv = pebble.challtestsrv();
    let resolver = resolver_for(challtestsrv.dns_server_addr());
    let host = "_acme-challenge.services-test.example";
    challtestsrv
        .set_txt(host, "key-authorization-digest")
        .await
        .unwrap();
    let txt = resolver.txt_lookup(format!("{host}.")).await.unwrap();
    let values: Vec<String> = txt.iter().map(ToString::to_string).collect();
    assert_eq!(values, ["key-authorization-digest"]);
    let history = challtestsrv.dns_request_history(host).await.unwrap();
    assert!(
        history.as_array().is_some_and(|events| !events.is_empty()),
        "{history}"
    );

    challtestsrv.clear_txt(host).await.unwrap();
    assert!(resolver.txt_lookup(format!("{host}.")).await.is_err());

    // A records default to 127.0.0.1 and can be overridden.
    let a_host = "a.services-test.example.";
    let default_a: Vec<Ipv4Addr> = resolver
        .ipv4_lookup(a_host)
        .await
        .unwrap()
        .iter()
        .map(|a| a.0)
        .collect();
    assert_eq!(default_a, [Ipv4Addr::LOCALHOST]);
    challtestsrv
        .add_a(a_host, &[Ipv4Addr::new(127, 0, 0, 2)])
        .await
        .unwrap();
    let mocked_a: Vec<Ipv4Addr> = resolver
        .ipv4_lookup(a_host)
        .await
        .unwrap()
        .iter()
        .map(|a| a.0)
        .collect();
    assert_eq!(mocked_a, [Ipv4Addr::new(127, 0, 0, 2)]);
    challtestsrv.clear_a(a_host).await.unwrap();

    // SERVFAIL overrides everything until cleared.
    challtestsrv.set_servfail(a_host).await.unwrap();
    assert!(resolver.ipv4_lookup(a_host).await.is_err());
    challtestsrv.clear_servfail(a_host).await.unwrap();
    assert!(resolver.ipv4_lookup(a_host).await.is_ok());

    challtestsrv
        .add_caa(
            a_host,
            &[CaaPolicy {
                tag: "issue".to_owned(),
                value: "pebble.example".to_owned(),
            }],
        )
        .await
        .unwrap();
    challtestsrv.clear_caa(a_host).await.unwrap();

    // The issuing root is a PEM certificate, distinct from the listener CA.
    let root_pem = pebble.issuing_root_pem().await.unwrap();
    let root = CertificateDer::from_pem_slice(root_pem.as_bytes()).unwrap();
    assert_ne!(&root, pebble.listener_ca_der());

    // WHEN Pebble is dropped, THEN both processes are gone and the work directory removed.
    let pids = [pebble.pebble_pid(), pebble.challtestsrv_pid()];
    let work_dir = pebble.work_dir().to_path_buf();
    for pid in pids {
        assert!(process_exists(pid), "pid {pid} should be running");
    }
    drop(pebble);
    for pid in pids {
        assert!(!process_exists(pid), "pid {pid} still exists after drop");
    }
    assert!(!work_dir.exists());
}

#[tokio::test]
async fn pebble_options_reach_pebble_and_challtestsrv() {
    let http_port = free_port().unwrap();
    let pebble = Pebble::start(PebbleOptions {
        http_port: Some(http_port),
        certificate_validity: Some(Duration::from_secs(120)),
        authz_reuse_percent: Some(0),
        nonce_reject_percent: Some(0),
        challtestsrv_http01: ChalltestsrvHttp01::OnPebbleHttpPort,
        ..PebbleOptions::default()
    })
    .await
    .unwrap();
    assert_eq!(pebble.http_port(), http_port);

    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(pebble.work_dir().join("pebble-config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(config["pebble"]["httpPort"], http_port);
    assert_eq!(config["pebble"]["certificateValidityPeriod"], 120);

    // challtestsrv answers HTTP-01 on the port Pebble validates on.
    let challtestsrv = pebble.challtestsrv();
    assert_eq!(
        challtestsrv.http01_addr(),
        Some(SocketAddr::from((Ipv4Addr::LOCALHOST, http_port)))
    );
    challtestsrv
        .add_http01("token-1", "token-1.thumbprint")
        .await
        .unwrap();
    let body = pebble
        .http_client()
        .unwrap()
        .get(format!(
            "http://127.0.0.1:{http_port}/.well-known/acme-challenge/token-1"
        ))
        .send()
        .await
        .unwrap()
        .error_for_status()
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(body, "token-1.thumbprint");
    challtestsrv.del_http01("token-1").await.unwrap();
}

#[tokio::test]
async fn moto_answers_gives_sdk_env_and_stops_on_drop() {
    let moto = Moto::start().await.unwrap();
    let endpoint = moto.endpoint_url();
    assert!(endpoint.starts_with("http://127.0.0.1:"), "{endpoint}");

    let response = http_client(&[])
        .unwrap()
        .get(format!("{endpoint}/moto-api/"))
        .send()
        .await
        .unwrap();
    assert!(response.status().is_success(), "{}", response.status());
    moto.reset().await.unwrap();

    let env = moto.aws_env();
    let value = |key: &str| {
        env.iter()
            .find(|(name, _)| name == key)
            .map(|(_, value)| value.as_str())
    };
    assert_eq!(value("AWS_ENDPOINT_URL"), Some(endpoint.as_str()));
    assert_eq!(value("AWS_REGION"), Some("us-east-1"));
    assert_eq!(value("AWS_ACCESS_KEY_ID"), Some("test"));
    assert_eq!(value("AWS_SECRET_ACCESS_KEY"), Some("test"));
    assert_eq!(value("AWS_EC2_METADATA_DISABLED"), Some("true"));

    let pid = moto.pid();
    assert!(process_exists(pid));
    drop(moto);
    assert!(
        !process_exists(pid),
        "moto pid {pid} still exists after drop"
    );
}

#[tokio::test]
async fn shared_moto_is_started_once_per_test_process() {
    let first = Moto::shared().await.unwrap();
    let second = Moto::shared().await.unwrap();
    assert!(std::ptr::eq(first, second));
    assert!(process_exists(first.pid()));
}

/// Set in the copy of this test binary that [`shared_moto_dies_with_the_test_process`] starts.
const CHILD_MARKER: &str = "EDGECERT_SHARED_MOTO_CHILD";

#[test]
fn shared_moto_dies_with_the_test_process() {
    if std::env::var_os(CHILD_MARKER).is_some() {
        // Child: start the shared moto, report its pid, and wait to be killed (no Drop runs).
        let runtime = tokio::runtime::Runtime::new().unwrap();
        let moto = runtime.block_on(Moto::shared()).unwrap();
        println!("moto-pid={}", moto.pid());
        std::thread::sleep(Duration::from_secs(120));
        return;
    }

    // GIVEN a test process that started the shared moto
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "shared_moto_dies_with_the_test_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(CHILD_MARKER, "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    let pid: u32 = stdout
        .lines()
        .map(Result::unwrap)
        // libtest prints "test <name> ... " on the same line first.
        .find_map(|line| {
            line.split_once("moto-pid=")
                .map(|(_, pid)| pid.trim().parse().unwrap())
        })
        .expect("the child test process did not report a moto pid");
    assert!(process_exists(pid));

    // WHEN that process is killed outright
    child.kill().unwrap();
    child.wait().unwrap();

    // THEN moto goes away too
    let deadline = Instant::now() + Duration::from_secs(15);
    while process_exists(pid) {
        assert!(
            Instant::now() < deadline,
            "moto pid {pid} outlived its test process"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A change a function makes through its recorder endpoint to a published hosted zone is in
/// challtestsrv's DNS by the time the function gets the answer, and leaves it when deleted.
#[tokio::test]
async fn a_route53_change_through_the_recorder_is_in_dns_when_answered() {
    use aws_sdk_route53::types::{
        Change, ChangeAction, ChangeBatch, ResourceRecord, ResourceRecordSet, RrType,
    };
    use edgecert_integration::{AwsRecorder, Route53Zone};
    use std::sync::Arc;

    let pebble = Pebble::start(PebbleOptions::default()).await.unwrap();
    let moto = Moto::shared().await.unwrap();
    let recorder = AwsRecorder::new(moto).unwrap();
    let zone = Arc::new(
        Route53Zone::create(
            moto,
            pebble.challtestsrv().management_url(),
            &format!("published-{}.example", std::process::id()),
        )
        .await
        .unwrap(),
    );
    recorder.publish_in_dns(Arc::clone(&zone));
    let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
        .endpoint_url(recorder.endpoint_for("dns-writer").await.unwrap())
        .region(aws_config::Region::new("us-east-1"))
        .credentials_provider(aws_sdk_route53::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .load()
        .await;
    let client = aws_sdk_route53::Client::new(&config);
    let host = format!("_acme-challenge.app.{}.", zone.name);
    let change = |action: ChangeAction| {
        let set = ResourceRecordSet::builder()
            .name(&host)
            .r#type(RrType::Txt)
            .ttl(60)
            .resource_records(
                ResourceRecord::builder()
                    .value("\"token-one\"")
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap();
        ChangeBatch::builder()
            .changes(
                Change::builder()
                    .action(action)
                    .resource_record_set(set)
                    .build()
                    .unwrap(),
            )
            .build()
            .unwrap()
    };
    let resolver = resolver_for(pebble.challtestsrv().dns_server_addr());

    client
        .change_resource_record_sets()
        .hosted_zone_id(&zone.id)
        .change_batch(change(ChangeAction::Upsert))
        .send()
        .await
        .unwrap();
    let answer = resolver.txt_lookup(host.as_str()).await.unwrap();
    let values: Vec<String> = answer.iter().map(ToString::to_string).collect();
    assert_eq!(values, ["token-one"]);

    client
        .change_resource_record_sets()
        .hosted_zone_id(&zone.id)
        .change_batch(change(ChangeAction::Delete))
        .send()
        .await
        .unwrap();
    assert!(resolver.txt_lookup(host.as_str()).await.is_err());

    let changes = recorder
        .calls()
        .into_iter()
        .filter(|call| {
            call.authorization.action.as_deref() == Some("route53:ChangeResourceRecordSets")
        })
        .count();
    assert_eq!(changes, 2);
}

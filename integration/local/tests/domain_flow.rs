//! The local runner as a real process: the whole domain flow over HTTP — account, domain, DNS
//! instructions, TXT ownership verification against challtestsrv, nudge, delete — once on the
//! embedded SQLite store and once on DynamoDB + Secrets Manager in moto.

#![allow(clippy::unwrap_used)] // a failed expectation in a helper is a failed test

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use edgecert_integration::services::Moto;
use serde_json::{Value, json};

/// A running `edgecert-local`, stopped with SIGTERM on drop.
struct Runner {
    child: Child,
    api_url: String,
    admin_key: String,
    challtestsrv: String,
    _data_dir: tempfile::TempDir,
}

impl Runner {
    async fn start(extra_args: &[&str], env: &[(String, String)]) -> Runner {
        let data_dir = tempfile::tempdir().unwrap();
        let mut command = Command::new(env!("CARGO_BIN_EXE_edgecert-local"));
        command
            .args([
                "--data-dir",
                data_dir.path().to_str().unwrap(),
                "--api-addr",
                "127.0.0.1:0",
                // Tests run side by side: the edge cannot take the default 8443 twice.
                "--edge-https-addr",
                "127.0.0.1:0",
            ])
            .args(extra_args)
            .envs(env.iter().cloned())
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // Owned by the Runner before anything can fail, so a failed start still stops it.
        let mut runner = Runner {
            child: command.spawn().expect("start edgecert-local"),
            api_url: String::new(),
            admin_key: String::new(),
            challtestsrv: String::new(),
            _data_dir: data_dir,
        };
        let stack = wait_for_stack(runner._data_dir.path()).await;
        runner.admin_key = std::fs::read_to_string(stack["admin_key_file"].as_str().unwrap())
            .unwrap()
            .trim()
            .to_owned();
        runner.api_url = stack["api_url"].as_str().unwrap().to_owned();
        runner.challtestsrv = stack["challtestsrv_management_url"]
            .as_str()
            .unwrap()
            .to_owned();
        runner
    }

    async fn call(&self, method: &str, path: &str, key: &str, body: Option<Value>) -> (u16, Value) {
        let mut request = client()
            .request(method.parse().unwrap(), format!("{}{path}", self.api_url))
            .bearer_auth(key);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status().as_u16();
        let text = response.text().await.unwrap();
        (
            status,
            if text.is_empty() {
                Value::Null
            } else {
                serde_json::from_str(&text).unwrap()
            },
        )
    }

    async fn challtestsrv(&self, endpoint: &str, body: Value) {
        let response = client()
            .post(format!("{}{endpoint}", self.challtestsrv))
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(
            response.status().is_success(),
            "challtestsrv {endpoint}: {}",
            response.status()
        );
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        let _ = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn client() -> reqwest::Client {
    edgecert_integration::services::http_client(&[]).expect("http client")
}

async fn wait_for_stack(data_dir: &Path) -> Value {
    let deadline = Instant::now() + Duration::from_secs(60);
    let path = data_dir.join("stack.json");
    loop {
        if let Ok(text) = std::fs::read_to_string(&path) {
            if let Ok(stack) = serde_json::from_str::<Value>(&text) {
                let health = format!("{}/healthz", stack["api_url"].as_str().unwrap_or_default());
                if client()
                    .get(&health)
                    .send()
                    .await
                    .is_ok_and(|r| r.status().is_success())
                {
                    return stack;
                }
            }
        }
        assert!(Instant::now() < deadline, "edgecert-local did not come up");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

async fn domain_flow(runner: &Runner) {
    // Without a key, or with a wrong one: 401.
    let (status, body) = runner.call("GET", "/v1/limits", "eck_wrong", None).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (401, Some("unauthorized"))
    );

    // The operator creates an account that must prove domain ownership.
    let (status, account) = runner
        .call(
            "POST",
            "/v1/accounts",
            &runner.admin_key,
            Some(json!({"name": "Status Pages Inc", "plan": "pro", "require_ownership_verification": true})),
        )
        .await;
    assert_eq!(status, 201, "{account}");
    let key = account["api_key"].as_str().unwrap().to_owned();

    let (status, limits) = runner.call("GET", "/v1/limits", &key, None).await;
    assert_eq!(status, 200);
    assert_eq!(
        (
            limits["plan"].as_str(),
            limits["max_domains"].as_u64(),
            limits["domain_count"].as_u64()
        ),
        (Some("pro"), Some(25), Some(0))
    );

    // Whitelist a customer domain.
    let (status, domain) = runner
        .call("POST", "/v1/domains", &key, Some(json!({"hostname": "Status.Customer-Flow.com", "origin_url": "http://127.0.0.1:3000"})))
        .await;
    assert_eq!(status, 201, "{domain}");
    assert_eq!(domain["hostname"], "status.customer-flow.com");
    assert_eq!(domain["provisioning_step"], "waiting_ownership");
    let id = domain["id"].as_str().unwrap().to_owned();
    let txt = &domain["ownership_verification"];
    assert_eq!(txt["type"], "TXT");

    // DNS instructions: a CNAME to the edge.
    let (status, dns) = runner
        .call("GET", &format!("/v1/domains/{id}/dns"), &key, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(dns["dns_instructions"]["records"][0]["type"], "CNAME");
    assert_eq!(
        dns["dns_instructions"]["records"][0]["value"],
        "edge.edgecert.localhost"
    );

    // Not there yet: 422.
    let (status, body) = runner
        .call("POST", &format!("/v1/domains/{id}/verify"), &key, None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("txt_not_found"))
    );

    // The customer creates the TXT record; verify succeeds and the domain moves on.
    let record = format!("{}.", txt["name"].as_str().unwrap());
    runner
        .challtestsrv("/set-txt", json!({"host": record, "value": txt["value"]}))
        .await;
    let (status, verified) = runner
        .call("POST", &format!("/v1/domains/{id}/verify"), &key, None)
        .await;
    assert_eq!(status, 200, "{verified}");
    assert_eq!(verified["ownership_verified"], true);
    assert_eq!(verified["provisioning_step"], "waiting_dns");

    // The record is removed: verify now fails again.
    runner
        .challtestsrv("/clear-txt", json!({"host": record}))
        .await;
    let (status, body) = runner
        .call("POST", &format!("/v1/domains/{id}/verify"), &key, None)
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (422, Some("txt_not_found"))
    );

    // The name points elsewhere: nudge records why, twice the same (idempotent).
    runner
        .challtestsrv(
            "/add-a",
            json!({"host": "status.customer-flow.com.", "addresses": ["203.0.113.9"]}),
        )
        .await;
    let (status, first) = runner
        .call("POST", &format!("/v1/domains/{id}/ssl/nudge"), &key, None)
        .await;
    assert_eq!(status, 200, "{first}");
    let (status, second) = runner
        .call("POST", &format!("/v1/domains/{id}/ssl/nudge"), &key, None)
        .await;
    assert_eq!(status, 200);
    assert_eq!(first["provisioning_step"], "waiting_dns");
    assert_eq!(second["provisioning_step"], first["provisioning_step"]);
    assert_eq!(second["error"], first["error"]);
    assert!(
        first["error"].as_str().unwrap().contains("203.0.113.9"),
        "{first}"
    );
    assert!(second["next_attempt_at"].is_string());

    // Another account sees nothing of it.
    let (_, other) = runner
        .call(
            "POST",
            "/v1/accounts",
            &runner.admin_key,
            Some(json!({"name": "Other", "plan": "plus"})),
        )
        .await;
    let other_key = other["api_key"].as_str().unwrap();
    let (status, body) = runner
        .call("GET", &format!("/v1/domains/{id}"), other_key, None)
        .await;
    assert_eq!(status, 404);
    assert!(!body.to_string().contains("customer-flow"));
    let (status, body) = runner
        .call("POST", "/v1/domains", other_key, Some(json!({"hostname": "status.customer-flow.com", "origin_url": "http://127.0.0.1:3000"})))
        .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("domain_exists"))
    );

    // Delete: gone, and the hostname is free again.
    let (status, _) = runner
        .call("DELETE", &format!("/v1/domains/{id}"), &key, None)
        .await;
    assert_eq!(status, 204);
    let (status, _) = runner
        .call("GET", &format!("/v1/domains/{id}"), &key, None)
        .await;
    assert_eq!(status, 404);
    let (status, _) = runner.call("GET", "/v1/limits", &key, None).await;
    assert_eq!(status, 200);
    let (status, _) = runner
        .call("POST", "/v1/domains", other_key, Some(json!({"hostname": "status.customer-flow.com", "origin_url": "http://127.0.0.1:3000"})))
        .await;
    assert_eq!(status, 201);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_flow_on_sqlite() {
    let runner = Runner::start(&[], &[]).await;
    domain_flow(&runner).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn domain_flow_on_dynamodb_and_secrets_manager() {
    let moto = Moto::shared().await.expect("moto_server");
    let table = format!("edgecert-flow-{}", std::process::id());
    let runner = Runner::start(
        &[
            "--aws-endpoint",
            &moto.endpoint_url(),
            "--table-name",
            &table,
        ],
        &moto.aws_env(),
    )
    .await;
    domain_flow(&runner).await;
}

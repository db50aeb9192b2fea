//! What the end-to-end suites share: the `edgecert-local` binary run as a real process on
//! SQLite or on moto ([`Runner`], [`Storage`]), API calls, TLS through the edge verified
//! against Pebble's root, and a tiny origin. Every wait here is bounded and fails with what it
//! waited for.

#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use edgecert_integration::services::Moto;
use http_body_util::{BodyExt as _, Empty, Full};
use hyper_util::rt::TokioIo;
use rustls::pki_types::{CertificateDer, ServerName};
use serde_json::{Value, json};
use tokio::net::{TcpListener, TcpStream};

/// Where a runner keeps its state.
#[derive(Clone)]
pub enum Storage {
    Sqlite,
    /// DynamoDB + Secrets Manager in the shared moto, in a table of this run's own.
    Moto {
        /// The table.
        table: String,
    },
}

impl Storage {
    pub async fn moto(flow: &str) -> Storage {
        Storage::Moto {
            table: format!("edgecert-e2e-{flow}-{}", std::process::id()),
        }
    }

    pub async fn args_and_env(&self) -> (Vec<String>, Vec<(String, String)>) {
        match self {
            Storage::Sqlite => (Vec::new(), Vec::new()),
            Storage::Moto { table } => {
                let moto = Moto::shared().await.expect("moto_server");
                (
                    vec![
                        "--aws-endpoint".to_owned(),
                        moto.endpoint_url(),
                        "--table-name".to_owned(),
                        table.clone(),
                        "--secret-prefix".to_owned(),
                        format!("{table}/"),
                    ],
                    moto.aws_env(),
                )
            }
        }
    }
}

/// A running `edgecert-local`, stopped with SIGTERM on drop.
pub struct Runner {
    pub child: Child,
    pub api_url: String,
    pub admin_key: String,
    pub challtestsrv: String,
    pub edge_https: SocketAddr,
    pub edge_admin: String,
    pub roots: Vec<CertificateDer<'static>>,
}

impl Runner {
    /// Starts the runner on `data_dir` with extra environment `env` and waits for its API.
    pub async fn start(data_dir: &Path, storage: &Storage, env: &[(&str, &str)]) -> Runner {
        let (args, storage_env) = storage.args_and_env().await;
        // A previous run's stack.json must not be mistaken for this one's.
        let _ = std::fs::remove_file(data_dir.join("stack.json"));
        let mut command = Command::new(env!("CARGO_BIN_EXE_edgecert-local"));
        command
            .args([
                "--data-dir",
                data_dir.to_str().unwrap(),
                "--api-addr",
                "127.0.0.1:0",
                "--edge-https-addr",
                "127.0.0.1:0",
            ])
            .args(args)
            .envs(storage_env)
            .envs(env.iter().map(|(k, v)| (k.to_string(), v.to_string())))
            .env("RUST_LOG", "warn")
            .stdout(Stdio::null())
            .stderr(Stdio::inherit());
        // Owned by the Runner before anything can fail, so a failed start still stops it.
        let mut runner = Runner {
            child: command.spawn().expect("start edgecert-local"),
            api_url: String::new(),
            admin_key: String::new(),
            challtestsrv: String::new(),
            edge_https: SocketAddr::from(([127, 0, 0, 1], 0)),
            edge_admin: String::new(),
            roots: Vec::new(),
        };
        let stack = wait_for_stack(data_dir).await;
        runner.admin_key = std::fs::read_to_string(stack["admin_key_file"].as_str().unwrap())
            .unwrap()
            .trim()
            .to_owned();
        runner.api_url = stack["api_url"].as_str().unwrap().to_owned();
        runner.challtestsrv = stack["challtestsrv_management_url"]
            .as_str()
            .unwrap()
            .to_owned();
        runner.edge_https = stack["edge_https_addr"].as_str().unwrap().parse().unwrap();
        let root = std::fs::read_to_string(stack["pebble_root_file"].as_str().unwrap()).unwrap();
        runner.roots = edgecert_terminator::roots_from_pem(&root);
        assert!(!runner.roots.is_empty());
        runner.edge_admin = stack["edge_admin_url"].as_str().unwrap().to_owned();
        // The edge answers /healthz 503 until its first load of certificates finished.
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let health = client()
                .get(format!("{}/healthz", runner.edge_admin))
                .send()
                .await
                .unwrap();
            if health.status().is_success() {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "edge /healthz: {}",
                health.text().await.unwrap_or_default()
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        runner
    }

    /// SIGKILL: no shutdown code runs (its Pebble and challtestsrv exit when their stdin
    /// closes).
    pub fn kill_hard(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub async fn call(
        &self,
        method: &str,
        path: &str,
        key: &str,
        body: Option<Value>,
    ) -> (u16, Value) {
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

    /// An account on `plan`; returns (id, api key).
    pub async fn account(&self, plan: &str, require_ownership: bool) -> (String, String) {
        let (status, account) = self
            .call(
                "POST",
                "/v1/accounts",
                &self.admin_key,
                Some(json!({"name": format!("{plan} customer"), "plan": plan,
                    "require_ownership_verification": require_ownership})),
            )
            .await;
        assert_eq!(status, 201, "{account}");
        (
            account["id"].as_str().unwrap().to_owned(),
            account["api_key"].as_str().unwrap().to_owned(),
        )
    }

    pub async fn challtestsrv(&self, endpoint: &str, body: Value) {
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

    /// `GET path` through the edge with SNI and Host `name`, verified against Pebble's root.
    pub async fn https_get(&self, name: &str, path: &str) -> anyhow::Result<(u16, String)> {
        let tls = tls_connect(self.edge_https, name, &self.roots).await?;
        let (mut sender, connection) =
            hyper::client::conn::http1::handshake(TokioIo::new(tls)).await?;
        tokio::spawn(connection);
        let request = http::Request::get(path)
            .header("host", name)
            .body(Empty::<Bytes>::new())?;
        let response = sender.send_request(request).await?;
        let status = response.status().as_u16();
        let body = response.into_body().collect().await?.to_bytes();
        Ok((status, String::from_utf8_lossy(&body).into_owned()))
    }

    /// Polls `path` until `done` holds for its body, at most `within`.
    pub async fn poll(
        &self,
        path: &str,
        key: &str,
        within: Duration,
        done: impl Fn(&Value) -> bool,
    ) -> Value {
        let deadline = Instant::now() + within;
        loop {
            let (status, body) = self.call("GET", path, key, None).await;
            if status == 200 && done(&body) {
                return body;
            }
            assert!(Instant::now() < deadline, "{path} never got there: {body}");
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
}

impl Drop for Runner {
    fn drop(&mut self) {
        if let Ok(Some(_)) = self.child.try_wait() {
            return;
        }
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

pub fn client() -> reqwest::Client {
    edgecert_integration::services::http_client(&[]).expect("http client")
}

pub async fn wait_for_stack(data_dir: &Path) -> Value {
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

pub fn tls_config(roots: &[CertificateDer<'static>]) -> Arc<rustls::ClientConfig> {
    let mut store = rustls::RootCertStore::empty();
    for root in roots {
        store.add(root.clone()).unwrap();
    }
    let mut config = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(store)
    .with_no_client_auth();
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Arc::new(config)
}

pub async fn tls_connect(
    addr: SocketAddr,
    sni: &str,
    roots: &[CertificateDer<'static>],
) -> std::io::Result<tokio_rustls::client::TlsStream<TcpStream>> {
    let tcp = TcpStream::connect(addr).await?;
    let name = ServerName::try_from(sni.to_owned()).map_err(std::io::Error::other)?;
    tokio_rustls::TlsConnector::from(tls_config(roots))
        .connect(name, tcp)
        .await
}

/// The serial of the leaf the edge serves for `name` (the handshake verifies it).
pub async fn served_serial(runner: &Runner, name: &str) -> std::io::Result<Vec<u8>> {
    let tls = tls_connect(runner.edge_https, name, &runner.roots).await?;
    let (_, connection) = tls.get_ref();
    let leaf = connection
        .peer_certificates()
        .and_then(|chain| chain.first())
        .ok_or_else(|| std::io::Error::other("no peer certificate"))?;
    Ok(serial_of(leaf.as_ref()))
}

pub fn serial_of(der: &[u8]) -> Vec<u8> {
    let (_, leaf) = x509_parser::parse_x509_certificate(der).unwrap();
    leaf.raw_serial().to_vec()
}

/// A tiny origin: answers every request with `origin <tag> path=<path>`.
pub async fn start_origin(tag: &'static str) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let address = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                continue;
            };
            tokio::spawn(async move {
                let service = hyper::service::service_fn(move |request: http::Request<_>| {
                    let body = format!("origin {tag} path={}", request.uri().path());
                    async move { Ok::<_, Infallible>(http::Response::new(Full::new(Bytes::from(body)))) }
                });
                let _ = hyper::server::conn::http1::Builder::new()
                    .serve_connection(TokioIo::new(stream), service)
                    .await;
            });
        }
    });
    format!("http://{address}")
}

pub fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir().unwrap()
}

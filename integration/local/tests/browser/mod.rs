//! A real browser for the dashboard tests: Debian's `chromium`, headless, driven by
//! `chromedriver` over W3C WebDriver with a small client on the tree's reqwest. Every wait is
//! bounded and fails with what it waited for, a screenshot and the page's text.
//!
//! Each [`Browser`] has its own chromedriver (a [`ServiceProcess`] on a free port, in a process
//! group of its own with the Chromium it starts) and a fresh profile directory; dropping it ends
//! the WebDriver session (which closes Chromium) and then stops the group.

#![allow(dead_code)] // each test uses part of the client

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use base64::Engine as _;
use edgecert_integration::services::{ServiceProcess, free_port};
use serde_json::{Value, json};

/// Where Debian puts them.
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Set (to anything) where a missing browser must fail the suite rather than skip it (CI).
pub const REQUIRE_BROWSER: &str = "EDGECERT_REQUIRE_BROWSER";

/// The W3C key of an element reference in WebDriver answers.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// How long any one wait lasts unless a test says otherwise.
pub const WAIT: Duration = Duration::from_secs(20);

/// Chromium flags that work on this machine kind (no GPU, no sandbox in containers, no
/// network beyond loopback).
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-dev-shm-usage",
    "--password-store=basic",
    "--hide-scrollbars",
    "--force-device-scale-factor=1",
];

/// Runs chromedriver (`$1`, options `$2...`) under a shell that leads a new process group
/// (`setsid`) and, on SIGTERM, sends SIGTERM to the whole group: chromedriver and every
/// Chromium process it started.
const DRIVER_GROUP: &str = r#"trap 'trap - TERM; kill -TERM 0' TERM
"$@" --allowed-ips=127.0.0.1 &
wait $!
"#;

/// Whether Chromium and chromedriver are installed; when they are not, the suite skips only if
/// [`REQUIRE_BROWSER`] is unset, and says so.
pub fn available() -> bool {
    let present = Path::new(CHROMIUM).is_file() && Path::new(CHROMEDRIVER).is_file();
    if !present && std::env::var_os(REQUIRE_BROWSER).is_some() {
        panic!(
            "{REQUIRE_BROWSER} is set but {CHROMIUM} or {CHROMEDRIVER} is missing: \
             apt-get install chromium chromium-driver (integration/scripts/setup.sh --browser)"
        );
    }
    if !present {
        eprintln!(
            "SKIPPED: the dashboard browser suite needs {CHROMIUM} and {CHROMEDRIVER} \
             (apt-get install chromium chromium-driver); set {REQUIRE_BROWSER}=1 to fail instead"
        );
    }
    present
}

/// A headless Chromium with its WebDriver session.
pub struct Browser {
    http: reqwest::Client,
    /// `http://127.0.0.1:<port>/session/<id>`.
    session: String,
    /// Where Chromium saves downloads.
    pub downloads: PathBuf,
    /// Where screenshots go (`<target>/tmp/dashboard-screenshots`).
    pub screenshots: PathBuf,
    // Dropped last: the profile and the downloads live in it.
    _driver: ServiceProcess,
    _work_dir: tempfile::TempDir,
}

/// An element reference.
#[derive(Debug, Clone)]
pub struct Element(String);

impl Browser {
    /// Starts chromedriver and a headless Chromium of `width` x `height` CSS pixels.
    pub async fn start(width: u32, height: u32) -> anyhow::Result<Browser> {
        let work_dir = tempfile::Builder::new()
            .prefix("edgecert-browser-")
            .tempdir()?;
        let port = free_port()?;
        // chromedriver and the Chromium it starts run in a process group of their own, led by
        // a shell that ends the whole group when it is told to stop (by our drop, or because
        // this test process died): a failed session never leaves a browser behind.
        let mut driver = ServiceProcess::spawn(
            "chromedriver",
            Path::new("setsid"),
            [
                "sh".to_owned(),
                "-c".to_owned(),
                DRIVER_GROUP.to_owned(),
                "chromedriver-group".to_owned(),
                CHROMEDRIVER.to_owned(),
                format!("--port={port}"),
            ],
            &[],
            work_dir.path(),
        )?;
        // Plain HTTP to chromedriver, but reqwest wants a TLS provider: the tree's one.
        let tls = rustls::ClientConfig::builder_with_provider(std::sync::Arc::new(
            rustls::crypto::aws_lc_rs::default_provider(),
        ))
        .with_safe_default_protocol_versions()?
        .with_root_certificates(rustls::RootCertStore::empty())
        .with_no_client_auth();
        // Starting Chromium and taking a screenshot take seconds on a busy machine.
        let http = reqwest::Client::builder()
            .use_preconfigured_tls(tls)
            .no_proxy()
            .timeout(Duration::from_secs(60))
            .pool_max_idle_per_host(0)
            .build()?;
        let base = format!("http://127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(20);
        loop {
            driver.ensure_running()?;
            let ready = http.get(format!("{base}/status")).send().await;
            if let Ok(response) = ready {
                let status: Value = response.json().await.unwrap_or_default();
                if status["value"]["ready"] == true {
                    break;
                }
            }
            if Instant::now() > deadline {
                bail!(
                    "chromedriver did not become ready within 20 s: {}",
                    driver.log_tail()
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        let profile = work_dir.path().join("profile");
        let downloads = work_dir.path().join("downloads");
        std::fs::create_dir_all(&downloads)?;
        let mut args: Vec<String> = FLAGS.iter().map(|flag| (*flag).to_owned()).collect();
        args.push(format!("--user-data-dir={}", profile.display()));
        args.push(format!("--window-size={width},{height}"));
        let capabilities = json!({
            "capabilities": { "alwaysMatch": {
                "browserName": "chrome",
                "pageLoadStrategy": "normal",
                "timeouts": { "script": 30000, "pageLoad": 30000, "implicit": 0 },
                "goog:chromeOptions": {
                    "binary": CHROMIUM,
                    "args": args,
                    "prefs": {
                        "download.default_directory": downloads.display().to_string(),
                        "download.prompt_for_download": false,
                    },
                    "excludeSwitches": ["enable-automation"],
                },
            }}
        });
        let created: Value = tokio::time::timeout(
            Duration::from_secs(60),
            http.post(format!("{base}/session"))
                .json(&capabilities)
                .send(),
        )
        .await
        .context("chromedriver did not start Chromium within 60 s")??
        .json()
        .await?;
        let Some(id) = created["value"]["sessionId"].as_str() else {
            bail!(
                "chromedriver refused the session: {created}\n{}",
                driver.log_tail()
            );
        };
        let screenshots = PathBuf::from(env!("CARGO_TARGET_TMPDIR")).join("dashboard-screenshots");
        std::fs::create_dir_all(&screenshots)?;
        let browser = Browser {
            http,
            session: format!("{base}/session/{id}"),
            downloads,
            screenshots,
            _driver: driver,
            _work_dir: work_dir,
        };
        // Headless Chromium drops downloads unless told where to put them.
        browser
            .command(
                "POST",
                "/goog/cdp/execute",
                json!({ "cmd": "Browser.setDownloadBehavior", "params": {
                    "behavior": "allow", "downloadPath": browser.downloads.display().to_string(),
                    "eventsEnabled": true,
                }}),
            )
            .await?;
        browser.set_size(width, height).await?;
        Ok(browser)
    }

    /// One WebDriver command; an error answer fails with WebDriver's message.
    async fn command(&self, method: &str, path: &str, body: Value) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.session);
        let request = match method {
            "GET" => self.http.get(&url),
            "DELETE" => self.http.delete(&url),
            _ => self.http.post(&url).json(&body),
        };
        let response = request
            .send()
            .await
            .with_context(|| format!("WebDriver {method} {path}"))?;
        let status = response.status();
        let answer: Value = response
            .json()
            .await
            .with_context(|| format!("WebDriver {method} {path}: not JSON"))?;
        if !status.is_success() {
            bail!(
                "WebDriver {method} {path}: {} ({})",
                answer["value"]["error"],
                answer["value"]["message"]
                    .as_str()
                    .unwrap_or_default()
                    .lines()
                    .next()
                    .unwrap_or_default()
            );
        }
        Ok(answer["value"].clone())
    }

    /// Resizes the window's viewport to `width` x `height` CSS pixels.
    pub async fn set_size(&self, width: u32, height: u32) -> anyhow::Result<()> {
        // The window rect includes the (headless, empty) frame: size the viewport exactly.
        self.command(
            "POST",
            "/goog/cdp/execute",
            json!({ "cmd": "Emulation.setDeviceMetricsOverride", "params": {
                "width": width, "height": height, "deviceScaleFactor": 1, "mobile": width < 600,
            }}),
        )
        .await?;
        Ok(())
    }

    /// Lets the page read and write the clipboard (headless Chromium asks nobody).
    pub async fn grant_clipboard(&self) -> anyhow::Result<()> {
        self.command(
            "POST",
            "/goog/cdp/execute",
            json!({ "cmd": "Browser.grantPermissions", "params": {
                "permissions": ["clipboardReadWrite", "clipboardSanitizedWrite"],
            }}),
        )
        .await?;
        Ok(())
    }

    /// Loads `url` and waits for the document.
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.command("POST", "/url", json!({ "url": url })).await?;
        Ok(())
    }

    /// Runs `script` (a function body; `arguments` holds `args`) in the page and returns its
    /// value. WebDriver runs it outside the page's CSP.
    pub async fn execute(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.command(
            "POST",
            "/execute/sync",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// Runs an async `script` whose last argument is the callback to call with its result.
    pub async fn execute_async(&self, script: &str, args: Value) -> anyhow::Result<Value> {
        self.command(
            "POST",
            "/execute/async",
            json!({ "script": script, "args": args }),
        )
        .await
    }

    /// The elements matching `css` now (possibly none).
    pub async fn find_all(&self, css: &str) -> anyhow::Result<Vec<Element>> {
        let found = self
            .command(
                "POST",
                "/elements",
                json!({ "using": "css selector", "value": css }),
            )
            .await?;
        Ok(found
            .as_array()
            .map(|elements| {
                elements
                    .iter()
                    .filter_map(|element| element[ELEMENT_KEY].as_str())
                    .map(|id| Element(id.to_owned()))
                    .collect()
            })
            .unwrap_or_default())
    }

    /// The first visible element matching `css`, waiting for it at most [`WAIT`].
    pub async fn find(&self, css: &str) -> Element {
        self.wait_for_element(css, WAIT).await
    }

    /// The first displayed element matching `css`, waiting at most `within`.
    pub async fn wait_for_element(&self, css: &str, within: Duration) -> Element {
        let deadline = Instant::now() + within;
        loop {
            if let Ok(elements) = self.find_all(css).await {
                for element in elements {
                    if self.displayed(&element).await.unwrap_or(false) {
                        return element;
                    }
                }
            }
            if Instant::now() > deadline {
                self.fail(&format!(
                    "no visible element matches {css} after {within:?}"
                ))
                .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Waits at most `within` until the page's `condition` (a JavaScript expression, with
    /// `arguments` from `args`) is truthy, and returns its value.
    pub async fn wait_until(
        &self,
        what: &str,
        within: Duration,
        condition: &str,
        args: Value,
    ) -> Value {
        let deadline = Instant::now() + within;
        let script = format!("return ({condition});");
        loop {
            match self.execute(&script, args.clone()).await {
                Ok(value) if truthy(&value) => return value,
                _ => {}
            }
            if Instant::now() > deadline {
                self.fail(&format!("{what}: not true after {within:?}: {condition}"))
                    .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// Fails the test with `message`, the page's visible text and a screenshot.
    pub async fn fail(&self, message: &str) -> ! {
        let text = self
            .execute("return document.body.innerText;", json!([]))
            .await
            .ok()
            .and_then(|value| value.as_str().map(str::to_owned))
            .unwrap_or_default();
        let shot = self.screenshot("failure").await.ok();
        panic!(
            "{message}\n--- screenshot: {} ---\n--- page text ---\n{text}",
            shot.map(|path| path.display().to_string())
                .unwrap_or_default()
        );
    }

    pub async fn displayed(&self, element: &Element) -> anyhow::Result<bool> {
        Ok(self
            .command(
                "GET",
                &format!("/element/{}/displayed", element.0),
                json!({}),
            )
            .await?
            == true)
    }

    pub async fn click(&self, element: &Element) -> anyhow::Result<()> {
        self.command("POST", &format!("/element/{}/click", element.0), json!({}))
            .await?;
        Ok(())
    }

    /// Clicks the first visible element matching `css` (waiting for it).
    pub async fn click_css(&self, css: &str) {
        let element = self.find(css).await;
        if let Err(error) = self.click(&element).await {
            self.fail(&format!("clicking {css}: {error:#}")).await;
        }
    }

    /// Types `text` into the element (after clearing it).
    pub async fn fill(&self, css: &str, text: &str) {
        let element = self.find(css).await;
        let cleared = self
            .command("POST", &format!("/element/{}/clear", element.0), json!({}))
            .await;
        let typed = self
            .command(
                "POST",
                &format!("/element/{}/value", element.0),
                json!({ "text": text }),
            )
            .await;
        if let Err(error) = cleared.and(typed) {
            self.fail(&format!("typing into {css}: {error:#}")).await;
        }
    }

    /// Sends keys (e.g. `"\u{E00C}"`, Escape) to whatever has the focus.
    pub async fn press(&self, keys: &str) -> anyhow::Result<()> {
        let actions: Vec<Value> = keys
            .chars()
            .flat_map(|key| {
                [
                    json!({ "type": "keyDown", "value": key.to_string() }),
                    json!({ "type": "keyUp", "value": key.to_string() }),
                ]
            })
            .collect();
        self.command(
            "POST",
            "/actions",
            json!({ "actions": [{ "type": "key", "id": "keyboard", "actions": actions }] }),
        )
        .await?;
        self.command("DELETE", "/actions", json!({})).await?;
        Ok(())
    }

    /// The element's rendered text.
    pub async fn text(&self, element: &Element) -> anyhow::Result<String> {
        Ok(self
            .command("GET", &format!("/element/{}/text", element.0), json!({}))
            .await?
            .as_str()
            .unwrap_or_default()
            .to_owned())
    }

    /// The text of the first visible element matching `css`.
    pub async fn text_of(&self, css: &str) -> String {
        let element = self.find(css).await;
        match self.text(&element).await {
            Ok(text) => text,
            Err(error) => self.fail(&format!("reading {css}: {error:#}")).await,
        }
    }

    /// A DOM property (`value`, `checked`, `disabled`...) of the first element matching `css`.
    pub async fn property(&self, css: &str, name: &str) -> Value {
        self.execute(
            "const e = document.querySelector(arguments[0]); return e ? e[arguments[1]] : null;",
            json!([css, name]),
        )
        .await
        .unwrap_or(Value::Null)
    }

    /// Saves a PNG of the viewport as `<screenshots>/<name>.png` and returns its path.
    pub async fn screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let encoded = self.command("GET", "/screenshot", json!({})).await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(encoded.as_str().unwrap_or_default())
            .context("the screenshot is base64")?;
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// Saves a screenshot of the whole page (not only the viewport).
    pub async fn full_page_screenshot(&self, name: &str) -> anyhow::Result<PathBuf> {
        let size = self
            .execute(
                "return [document.documentElement.scrollWidth, document.documentElement.scrollHeight];",
                json!([]),
            )
            .await?;
        let capture = self
            .command(
                "POST",
                "/goog/cdp/execute",
                json!({ "cmd": "Page.captureScreenshot", "params": {
                    "format": "png", "captureBeyondViewport": true,
                    "clip": { "x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 1 },
                }}),
            )
            .await?;
        let png = base64::engine::general_purpose::STANDARD
            .decode(capture["data"].as_str().unwrap_or_default())
            .context("the screenshot is base64")?;
        let path = self.screenshots.join(format!("{name}.png"));
        std::fs::write(&path, png)?;
        Ok(path)
    }

    /// Waits at most `within` for a finished download named `name` and returns its contents.
    pub async fn downloaded(&self, name: &str, within: Duration) -> Vec<u8> {
        let path = self.downloads.join(name);
        let deadline = Instant::now() + within;
        loop {
            // Chromium writes `<name>.crdownload` and renames it when done, and may hold the
            // final name meanwhile with an empty placeholder: only a file with content and no
            // download still in progress is the download.
            let in_progress = self.downloads.join(format!("{name}.crdownload")).exists();
            if let Ok(bytes) = std::fs::read(&path)
                && !bytes.is_empty()
                && !in_progress
            {
                return bytes;
            }
            if Instant::now() > deadline {
                let present: Vec<String> = std::fs::read_dir(&self.downloads)
                    .map(|entries| {
                        entries
                            .flatten()
                            .map(|entry| entry.file_name().to_string_lossy().into_owned())
                            .collect()
                    })
                    .unwrap_or_default();
                self.fail(&format!(
                    "no download {name} after {within:?} (downloads: {present:?})"
                ))
                .await;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
}

impl Drop for Browser {
    /// Ends the session (Chromium exits) with a plain blocking request, since drop cannot
    /// await; chromedriver is stopped by its own drop afterwards.
    fn drop(&mut self) {
        use std::io::{Read as _, Write as _};
        let Some(rest) = self.session.strip_prefix("http://") else {
            return;
        };
        let Some((authority, path)) = rest.split_once('/') else {
            return;
        };
        let Ok(address) = authority.parse::<std::net::SocketAddr>() else {
            return;
        };
        let Ok(mut stream) = std::net::TcpStream::connect_timeout(&address, Duration::from_secs(2))
        else {
            return;
        };
        let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
        let request = format!(
            "DELETE /{path} HTTP/1.1\r\nHost: {authority}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
        );
        if stream.write_all(request.as_bytes()).is_ok() {
            let mut answer = Vec::new();
            let _ = stream.read_to_end(&mut answer);
        }
    }
}

fn truthy(value: &Value) -> bool {
    match value {
        Value::Null => false,
        Value::Bool(value) => *value,
        Value::Number(number) => number.as_f64().is_some_and(|n| n != 0.0),
        Value::String(text) => !text.is_empty(),
        Value::Array(_) | Value::Object(_) => true,
    }
}

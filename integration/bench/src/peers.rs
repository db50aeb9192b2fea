//! The peers, configured like the terminator: TLS 1.2 and 1.3, X25519 first, ALPN h2 and
//! http/1.1, one worker (one process, one thread) pinned to the server core, no access logs,
//! and, where a scenario asks, no session resumption.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::Context as _;

use crate::process::{Server, require};

/// One HTTPS site for a peer.
#[derive(Debug, Clone)]
pub struct TlsSite {
    /// Listen port on 127.0.0.1.
    pub https_port: u16,
    /// Certificate chain, PEM.
    pub chain: PathBuf,
    /// Private key, PEM.
    pub key: PathBuf,
    /// Chain then key in one PEM file (haproxy's `crt`).
    pub combined: PathBuf,
    /// Where requests go; `None`: answer `200 ok` from the peer itself.
    pub upstream: Option<SocketAddr>,
    /// Allow session resumption (tickets, session cache).
    pub resumption: bool,
}

/// nginx (Debian's `nginx-light` or `nginx`) serving `site`: `master_process off` and
/// `worker_processes 1`, so one process does all the work. Files go into `dir`.
pub fn nginx(dir: &Path, site: &TlsSite, core: Option<usize>) -> anyhow::Result<Server> {
    let (session_cache, tickets) = if site.resumption {
        ("shared:bench:10m", "on")
    } else {
        ("off", "off")
    };
    let (upstream_block, location) = match site.upstream {
        Some(origin) => (
            format!("upstream origin {{ server {origin}; keepalive 64; }}"),
            "proxy_pass http://origin; proxy_http_version 1.1; \
             proxy_set_header Connection \"\"; proxy_buffering on;"
                .to_owned(),
        ),
        None => (
            String::new(),
            "default_type text/plain; return 200 \"ok\\n\";".to_owned(),
        ),
    };
    let http = format!(
        r#"    http2_max_requests 1000000;
    {upstream_block}
    server {{
        listen 127.0.0.1:{port} ssl http2;
        ssl_certificate {chain};
        ssl_certificate_key {key};
        ssl_protocols TLSv1.2 TLSv1.3;
        ssl_ecdh_curve X25519:prime256v1;
        ssl_session_cache {session_cache};
        ssl_session_tickets {tickets};
        location / {{ {location} }}
    }}
"#,
        port = site.https_port,
        chain = site.chain.display(),
        key = site.key.display(),
    );
    nginx_with("nginx", dir, "nginx", &http, core)
}

/// nginx as one process (`master_process off`, one worker, no access log, long keep-alive),
/// with `http` added inside its `http` block: what every nginx here shares, the proxy under
/// test as much as the origin. Its files are `<dir>/<stem>.conf`, `.pid`, `-error.log` and
/// `.log`.
pub fn nginx_with(
    name: &str,
    dir: &Path,
    stem: &str,
    http: &str,
    core: Option<usize>,
) -> anyhow::Result<Server> {
    let binary = require("nginx", "nginx-light")?;
    let temp = dir.join(format!("{stem}-temp"));
    std::fs::create_dir_all(&temp)?;
    let error_log = dir.join(format!("{stem}-error.log"));
    let config = format!(
        r#"daemon off;
master_process off;
worker_processes 1;
pid {dir}/{stem}.pid;
error_log {error_log} warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {temp}/body;
    proxy_temp_path {temp}/proxy;
    fastcgi_temp_path {temp}/fastcgi;
    uwsgi_temp_path {temp}/uwsgi;
    scgi_temp_path {temp}/scgi;
    keepalive_requests 1000000;
    keepalive_timeout 300s;
{http}}}
"#,
        dir = dir.display(),
        error_log = error_log.display(),
        temp = temp.display(),
    );
    let path = dir.join(format!("{stem}.conf"));
    std::fs::write(&path, config).with_context(|| format!("writing {}", path.display()))?;
    Server::spawn(
        name,
        core,
        Command::new(binary)
            .arg("-p")
            .arg(dir)
            .arg("-c")
            .arg(&path)
            .arg("-e")
            .arg(&error_log),
        &dir.join(format!("{stem}.log")),
    )
}

/// haproxy serving `site` in one thread (`nbthread 1`), in the foreground. Files go into
/// `dir`.
pub fn haproxy(dir: &Path, site: &TlsSite, core: Option<usize>) -> anyhow::Result<Server> {
    let binary = require("haproxy", "haproxy")?;
    let (cache, tickets) = if site.resumption {
        ("20000", "")
    } else {
        ("0", " no-tls-tickets")
    };
    let backend = match site.upstream {
        Some(origin) => format!(
            "    default_backend origin\nbackend origin\n    http-reuse always\n    server origin {origin}\n"
        ),
        None => {
            "    http-request return status 200 content-type text/plain string \"ok\"\n".to_owned()
        }
    };
    let config = format!(
        r#"global
    nbthread 1
    maxconn 4000
    tune.ssl.cachesize {cache}
    ssl-default-bind-curves X25519:P-256
defaults
    mode http
    timeout connect 5s
    timeout client 300s
    timeout server 300s
    timeout http-keep-alive 300s
frontend https
    bind 127.0.0.1:{port} ssl crt {combined} alpn h2,http/1.1 ssl-min-ver TLSv1.2{tickets}
{backend}"#,
        port = site.https_port,
        combined = site.combined.display(),
    );
    let path = dir.join("haproxy.cfg");
    std::fs::write(&path, config).context("writing haproxy.cfg")?;
    Server::spawn(
        "haproxy",
        core,
        Command::new(binary).arg("-db").arg("-f").arg(&path),
        &dir.join("haproxy.log"),
    )
}

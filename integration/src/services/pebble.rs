//! Pebble, the ACME test CA, with pebble-challtestsrv as its DNS server.
//!
//! [`Pebble::start`] generates the TLS certificate of Pebble's own HTTPS listener (the Debian
//! package ships none), writes `pebble-config.json` with free ports, starts challtestsrv, then
//! Pebble pointed at challtestsrv for every DNS lookup, and waits for the directory.

use std::fs;
use std::net::{Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::{Context as _, bail};
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose,
};
use rustls::pki_types::CertificateDer;
use serde_json::json;

use super::{
    Challtestsrv, ServiceProcess, find_in_path, free_port, http_client, probe_http,
    wait_until_ready,
};

/// How to install Pebble and challtestsrv, quoted in errors when they cannot be found.
const INSTALL_HINT: &str = "apt-get install -y pebble";

/// Whether challtestsrv answers HTTP-01 requests, and where.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum ChalltestsrvHttp01 {
    /// challtestsrv does not listen for HTTP-01: the edge under test answers Pebble's
    /// validations on [`Pebble::http_port`].
    #[default]
    Disabled,
    /// challtestsrv answers HTTP-01 on Pebble's validation port, [`Pebble::http_port`]; publish
    /// responses with [`Challtestsrv::add_http01`].
    OnPebbleHttpPort,
    /// challtestsrv answers HTTP-01 on this port of 127.0.0.1 (Pebble still validates on
    /// [`Pebble::http_port`]).
    Port(u16),
}

/// How to start [`Pebble`]. `PebbleOptions::default()` suits most tests.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PebbleOptions {
    /// Port Pebble connects to on the resolved address (127.0.0.1) to validate HTTP-01; the
    /// edge's HTTP listener must be there. `None`: a free port, see [`Pebble::http_port`].
    pub http_port: Option<u16>,
    /// Port Pebble connects to for TLS-ALPN-01. `None`: a free port.
    pub tls_port: Option<u16>,
    /// Lifetime of issued certificates (`certificateValidityPeriod`, whole seconds), for
    /// renewal tests. `None`: Pebble's default (about five years).
    pub certificate_validity: Option<Duration>,
    /// Skip Pebble's random 0-15 s sleep before each validation (`PEBBLE_VA_NOSLEEP=1`).
    /// Default: `true`.
    pub va_no_sleep: bool,
    /// Percentage of valid authorizations Pebble reuses (`PEBBLE_AUTHZREUSE`). `None`:
    /// Pebble's default (50); `Some(0)` forces a fresh challenge for every order.
    pub authz_reuse_percent: Option<u8>,
    /// Percentage of valid nonces Pebble rejects with `badNonce` (`PEBBLE_WFE_NONCEREJECT`).
    /// `None`: Pebble's default (5); keep it in at least one test path.
    pub nonce_reject_percent: Option<u8>,
    /// Whether and where challtestsrv answers HTTP-01. Default: disabled.
    pub challtestsrv_http01: ChalltestsrvHttp01,
}

impl Default for PebbleOptions {
    fn default() -> Self {
        Self {
            http_port: None,
            tls_port: None,
            certificate_validity: None,
            va_no_sleep: true,
            authz_reuse_percent: None,
            nonce_reject_percent: None,
            challtestsrv_http01: ChalltestsrvHttp01::Disabled,
        }
    }
}

/// A running Pebble and its pebble-challtestsrv on 127.0.0.1, both stopped when dropped.
#[derive(Debug)]
pub struct Pebble {
    // Fields drop in declaration order: Pebble stops before challtestsrv, and both before
    // the directory holding their configuration and logs is removed.
    pebble: ServiceProcess,
    challtestsrv_process: ServiceProcess,
    challtestsrv: Challtestsrv,
    listen_port: u16,
    management_port: u16,
    http_port: u16,
    tls_port: u16,
    listener_ca: CertificateDer<'static>,
    listener_ca_pem_path: PathBuf,
    work_dir: tempfile::TempDir,
}

/// Starts tried when a port was taken by another process in the meantime.
const START_ATTEMPTS: u32 = 3;

impl Pebble {
    /// Starts challtestsrv and Pebble with `options` and waits until Pebble's directory answers.
    ///
    /// Fails, naming `apt-get install -y pebble`, if either binary is missing, and with the log
    /// tail if a process exits or does not become ready in time.
    ///
    /// A port found free can be taken by another process before Pebble or challtestsrv binds
    /// it (an outgoing connection's ephemeral port, on a busy machine): such a start is tried
    /// again on new ports, a bounded number of times.
    pub async fn start(options: PebbleOptions) -> anyhow::Result<Pebble> {
        let mut attempt = 1;
        loop {
            match Pebble::start_once(options.clone()).await {
                Err(error)
                    if attempt < START_ATTEMPTS
                        && format!("{error:#}").contains("address already in use") =>
                {
                    tracing::warn!(attempt, "a port was taken before Pebble bound it; again");
                    attempt += 1;
                }
                outcome => return outcome,
            }
        }
    }

    /// One start of challtestsrv and Pebble on ports found free now.
    async fn start_once(options: PebbleOptions) -> anyhow::Result<Pebble> {
        let pebble_binary = required_binary("pebble")?;
        let challtestsrv_binary = required_binary("pebble-challtestsrv")?;
        let work_dir = tempfile::Builder::new()
            .prefix("edgecert-pebble-")
            .tempdir()
            .context("creating the Pebble work directory")?;
        let dir = work_dir.path();

        let listener = ListenerCertificate::generate()?;
        let listener_ca_pem_path = dir.join("listener-ca.pem");
        let cert_path = dir.join("listener-cert.pem");
        let key_path = dir.join("listener-key.pem");
        write(&listener_ca_pem_path, &listener.ca_pem)?;
        write(&cert_path, &listener.cert_pem)?;
        write(&key_path, &listener.key_pem)?;

        let listen_port = free_port()?;
        let management_port = free_port()?;
        let http_port = options.http_port.map_or_else(free_port, Ok)?;
        let tls_port = options.tls_port.map_or_else(free_port, Ok)?;
        let challtestsrv_management = loopback(free_port()?);
        let dns_addr = loopback(free_port()?);
        let challtestsrv_http01 = match options.challtestsrv_http01 {
            ChalltestsrvHttp01::Disabled => None,
            ChalltestsrvHttp01::OnPebbleHttpPort => Some(loopback(http_port)),
            ChalltestsrvHttp01::Port(port) => Some(loopback(port)),
        };

        let mut config = json!({
            "listenAddress": loopback(listen_port).to_string(),
            "managementListenAddress": loopback(management_port).to_string(),
            "certificate": cert_path,
            "privateKey": key_path,
            "httpPort": http_port,
            "tlsPort": tls_port,
            "ocspResponderURL": "",
            "externalAccountBindingRequired": false,
        });
        if let Some(validity) = options.certificate_validity {
            config["certificateValidityPeriod"] = json!(validity.as_secs());
        }
        let config_path = dir.join("pebble-config.json");
        write(
            &config_path,
            &serde_json::to_string_pretty(&json!({ "pebble": config }))?,
        )?;

        let mut challtestsrv_process = ServiceProcess::spawn(
            "pebble-challtestsrv",
            &challtestsrv_binary,
            [
                "-management".to_owned(),
                challtestsrv_management.to_string(),
                "-dns01".to_owned(),
                dns_addr.to_string(),
                "-http01".to_owned(),
                challtestsrv_http01
                    .map(|addr| addr.to_string())
                    .unwrap_or_default(),
                "-tlsalpn01".to_owned(),
                String::new(),
                "-https01".to_owned(),
                String::new(),
                "-defaultIPv4".to_owned(),
                Ipv4Addr::LOCALHOST.to_string(),
                "-defaultIPv6".to_owned(),
                String::new(),
            ],
            &[],
            dir,
        )?;
        let challtestsrv =
            Challtestsrv::new(challtestsrv_management, dns_addr, challtestsrv_http01);
        let plain_client = http_client(&[])?;
        {
            let (client, url) = (&plain_client, challtestsrv.management_url());
            wait_until_ready(
                &format!("pebble-challtestsrv management API at {url}"),
                &mut [&mut challtestsrv_process],
                move || probe_http(client, url, false),
            )
            .await?;
        }
        // challtestsrv only logs a failure to bind its DNS port and keeps running.
        wait_until_ready(
            &format!("pebble-challtestsrv DNS server on {dns_addr}"),
            &mut [&mut challtestsrv_process],
            || async move {
                tokio::net::TcpStream::connect(dns_addr).await?;
                Ok::<(), anyhow::Error>(())
            },
        )
        .await?;

        let mut env = Vec::new();
        if options.va_no_sleep {
            env.push(("PEBBLE_VA_NOSLEEP".to_owned(), "1".to_owned()));
        }
        if let Some(percent) = options.authz_reuse_percent {
            env.push(("PEBBLE_AUTHZREUSE".to_owned(), percent.to_string()));
        }
        if let Some(percent) = options.nonce_reject_percent {
            env.push(("PEBBLE_WFE_NONCEREJECT".to_owned(), percent.to_string()));
        }
        let mut pebble = ServiceProcess::spawn(
            "pebble",
            &pebble_binary,
            [
                "-config".to_owned(),
                config_path.display().to_string(),
                "-dnsserver".to_owned(),
                dns_addr.to_string(),
            ],
            &env,
            dir,
        )?;
        let directory_url = directory_url(listen_port);
        let tls_client = http_client(std::slice::from_ref(&listener.ca_der))?;
        {
            let (client, url) = (&tls_client, directory_url.as_str());
            wait_until_ready(
                &format!("Pebble directory at {url}"),
                &mut [&mut pebble, &mut challtestsrv_process],
                move || probe_http(client, url, true),
            )
            .await?;
        }
        tracing::info!(
            service = "pebble",
            pid = pebble.pid(),
            challtestsrv_pid = challtestsrv_process.pid(),
            directory_url = %directory_url,
            http_port,
            tls_port,
            dns_server = %dns_addr,
            "Pebble started"
        );

        Ok(Pebble {
            pebble,
            challtestsrv_process,
            challtestsrv,
            listen_port,
            management_port,
            http_port,
            tls_port,
            listener_ca: listener.ca_der,
            listener_ca_pem_path,
            work_dir,
        })
    }

    /// The ACME directory URL, `https://127.0.0.1:<port>/dir`.
    pub fn directory_url(&self) -> String {
        directory_url(self.listen_port)
    }

    /// PEM file of the CA that signed Pebble's HTTPS listener certificate (for instant-acme's
    /// `Account::builder_with_root`). Not the CA that issues ACME certificates: see
    /// [`Pebble::issuing_root_pem`].
    pub fn listener_ca_pem_path(&self) -> &Path {
        &self.listener_ca_pem_path
    }

    /// The listener CA of [`Pebble::listener_ca_pem_path`], in DER.
    pub fn listener_ca_der(&self) -> &CertificateDer<'static> {
        &self.listener_ca
    }

    /// An HTTP client trusting Pebble's listener CA (directory, management API).
    pub fn http_client(&self) -> anyhow::Result<reqwest::Client> {
        http_client(std::slice::from_ref(&self.listener_ca))
    }

    /// Base URL of Pebble's management API, `https://127.0.0.1:<port>`.
    pub fn management_url(&self) -> String {
        format!("https://{}", loopback(self.management_port))
    }

    /// Port on 127.0.0.1 where Pebble validates HTTP-01 challenges.
    pub fn http_port(&self) -> u16 {
        self.http_port
    }

    /// Port on 127.0.0.1 where Pebble validates TLS-ALPN-01 challenges.
    pub fn tls_port(&self) -> u16 {
        self.tls_port
    }

    /// The challtestsrv that serves Pebble's DNS.
    pub fn challtestsrv(&self) -> &Challtestsrv {
        &self.challtestsrv
    }

    /// The pid of the Pebble process.
    pub fn pebble_pid(&self) -> u32 {
        self.pebble.pid()
    }

    /// The pid of the pebble-challtestsrv process.
    pub fn challtestsrv_pid(&self) -> u32 {
        self.challtestsrv_process.pid()
    }

    /// Directory holding the configuration and the `pebble.log` and `pebble-challtestsrv.log`
    /// files; removed on drop.
    pub fn work_dir(&self) -> &Path {
        self.work_dir.path()
    }

    /// PEM of the root that issues ACME certificates (`GET <management>/roots/0`). It changes
    /// at every start of Pebble.
    pub async fn issuing_root_pem(&self) -> anyhow::Result<String> {
        let url = format!("{}/roots/0", self.management_url());
        let response = self
            .http_client()?
            .get(&url)
            .send()
            .await
            .with_context(|| format!("GET {url}"))?;
        if !response.status().is_success() {
            bail!("GET {url} answered {}", response.status());
        }
        response
            .text()
            .await
            .with_context(|| format!("reading the body of GET {url}"))
    }
}

/// Pebble's HTTPS listener certificate and the CA that signed it, as the openssl commands in
/// LOCAL-STACK.md would make them: a P-256 root (`CA:TRUE`, keyCertSign + cRLSign) and a leaf
/// for `localhost` and `127.0.0.1` (`CA:FALSE`, digitalSignature, serverAuth).
struct ListenerCertificate {
    ca_pem: String,
    ca_der: CertificateDer<'static>,
    cert_pem: String,
    key_pem: String,
}

impl ListenerCertificate {
    fn generate() -> anyhow::Result<Self> {
        let ca_key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut ca_params = CertificateParams::new(Vec::<String>::new())?;
        ca_params
            .distinguished_name
            .push(DnType::CommonName, "EdgeCert test Pebble listener CA");
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        ca_params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let ca_cert = ca_params
            .self_signed(&ca_key)
            .context("self-signing the Pebble listener CA")?;
        let issuer = Issuer::new(ca_params, ca_key);

        let key = KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256)?;
        let mut params =
            CertificateParams::new(vec!["localhost".to_owned(), "127.0.0.1".to_owned()])?;
        params
            .distinguished_name
            .push(DnType::CommonName, "localhost");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        let cert = params
            .signed_by(&key, &issuer)
            .context("signing the Pebble listener certificate")?;

        Ok(Self {
            ca_pem: ca_cert.pem(),
            ca_der: ca_cert.der().clone(),
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }
}

/// Finds `name` in `$PATH`, or fails with the install command.
fn required_binary(name: &str) -> anyhow::Result<PathBuf> {
    found_or_install_hint(name, find_in_path(name))
}

fn found_or_install_hint(name: &str, found: Option<PathBuf>) -> anyhow::Result<PathBuf> {
    found.with_context(|| format!("{name} not found in $PATH; install it with: {INSTALL_HINT}"))
}

fn write(path: &Path, contents: &str) -> anyhow::Result<()> {
    fs::write(path, contents).with_context(|| format!("writing {}", path.display()))
}

fn loopback(port: u16) -> SocketAddr {
    SocketAddr::from((Ipv4Addr::LOCALHOST, port))
}

fn directory_url(port: u16) -> String {
    format!("https://{}/dir", loopback(port))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::find_in_search_path;

    #[test]
    fn a_missing_binary_names_the_install_command() {
        let empty_dir = tempfile::tempdir().unwrap();
        let found = find_in_search_path(Some(empty_dir.path().as_os_str()), "pebble");
        let error = found_or_install_hint("pebble", found).unwrap_err();
        assert!(
            format!("{error:#}").contains("apt-get install -y pebble"),
            "{error:#}"
        );
    }

    #[test]
    fn listener_certificate_is_a_root_and_a_leaf_for_localhost() {
        let listener = ListenerCertificate::generate().unwrap();
        assert!(listener.ca_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(listener.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
        assert!(listener.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
        // The leaf must verify against the root for both names Pebble is reached by.
        let mut roots = rustls::RootCertStore::empty();
        roots.add(listener.ca_der.clone()).unwrap();
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::aws_lc_rs::default_provider()),
        )
        .build()
        .unwrap();
        use rustls::pki_types::pem::PemObject as _;
        let leaf = CertificateDer::from_pem_slice(listener.cert_pem.as_bytes()).unwrap();
        for name in ["localhost", "127.0.0.1"] {
            let server_name = rustls::pki_types::ServerName::try_from(name).unwrap();
            rustls::client::danger::ServerCertVerifier::verify_server_cert(
                verifier.as_ref(),
                &leaf,
                &[],
                &server_name,
                &[],
                rustls::pki_types::UnixTime::now(),
            )
            .unwrap();
        }
    }
}

//! The TLS load generator: full handshakes (no resumption), as many at once as asked, for a
//! fixed time, over random server names.
//!
//! It does as little work per handshake as it can, so that on the one core it has it is not
//! the bottleneck: X25519 key exchange, and no certificate or signature verification (the server still
//! signs every handshake; only the client skips checking it). The server's work is what is
//! measured, per server CPU-second.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use rand::{Rng as _, SeedableRng as _};
use rustls::client::Resumption;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, aws_lc_rs};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use tokio::net::TcpStream;
use tokio_rustls::TlsConnector;

/// The protocol version of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TlsVersion {
    /// TLS 1.2 (ECDHE, AES-128-GCM).
    Tls12,
    /// TLS 1.3.
    Tls13,
}

impl TlsVersion {
    /// As shown in tables.
    pub fn label(self) -> &'static str {
        match self {
            TlsVersion::Tls12 => "TLS 1.2",
            TlsVersion::Tls13 => "TLS 1.3",
        }
    }
}

/// Accepts any certificate and signature: a benchmark client, never a real one.
#[derive(Debug)]
struct AcceptAnything {
    schemes: Vec<SignatureScheme>,
}

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.schemes.clone()
    }
}

/// A client for load: `version` only, X25519 key exchange, no resumption, no verification, offering
/// `alpn`.
pub fn load_client(version: TlsVersion, alpn: &[&[u8]]) -> anyhow::Result<Arc<ClientConfig>> {
    let provider = CryptoProvider {
        // X25519 is the only key share sent; P-256 is listed because a TLS 1.2 server (OpenSSL)
        // serves an ECDSA P-256 certificate only to clients naming that curve.
        kx_groups: vec![aws_lc_rs::kx_group::X25519, aws_lc_rs::kx_group::SECP256R1],
        ..aws_lc_rs::default_provider()
    };
    let schemes = provider
        .signature_verification_algorithms
        .supported_schemes();
    let versions: &[&rustls::SupportedProtocolVersion] = match version {
        TlsVersion::Tls12 => &[&rustls::version::TLS12],
        TlsVersion::Tls13 => &[&rustls::version::TLS13],
    };
    let mut config = ClientConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(versions)?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything { schemes }))
        .with_no_client_auth();
    config.resumption = Resumption::disabled();
    config.alpn_protocols = alpn.iter().map(|protocol| protocol.to_vec()).collect();
    Ok(Arc::new(config))
}

/// What a handshake run did.
#[derive(Debug, Clone)]
pub struct HandshakeRun {
    /// Handshakes completed.
    pub completed: u64,
    /// Connections or handshakes that failed.
    pub failed: u64,
    /// Wall time of the run.
    pub elapsed: Duration,
    /// CPU seconds the load generator (this process) used.
    pub load_cpu_seconds: f64,
    /// The first failure, to say why when nothing completes.
    pub first_error: Option<String>,
}

impl HandshakeRun {
    /// Completed handshakes per wall-clock second.
    pub fn per_second(&self) -> f64 {
        self.completed as f64 / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Share of one core the generator used (1.0 = saturated).
    pub fn load_core_share(&self) -> f64 {
        self.load_cpu_seconds / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }
}

/// Handshake runs summed, per server and mode, over the rounds of a scenario.
#[derive(Debug, Default, Clone, Copy)]
pub struct HandshakeTotals {
    /// Handshakes completed.
    pub handshakes: u64,
    /// Handshakes that failed.
    pub failed: u64,
    /// Wall time of the runs.
    pub seconds: f64,
    /// Server CPU seconds over the same windows.
    pub server_cpu: f64,
    /// Load generator CPU seconds over the same windows.
    pub load_cpu: f64,
}

impl HandshakeTotals {
    /// Adds one run and the server CPU time it took.
    pub fn add(&mut self, run: &HandshakeRun, server_cpu: f64) {
        self.handshakes += run.completed;
        self.failed += run.failed;
        self.seconds += run.elapsed.as_secs_f64();
        self.server_cpu += server_cpu;
        self.load_cpu += run.load_cpu_seconds;
    }

    /// Adds another set of totals.
    pub fn merge(&mut self, other: &HandshakeTotals) {
        self.handshakes += other.handshakes;
        self.failed += other.failed;
        self.seconds += other.seconds;
        self.server_cpu += other.server_cpu;
        self.load_cpu += other.load_cpu;
    }

    /// Completed handshakes per server CPU-second.
    pub fn per_server_cpu_second(&self) -> f64 {
        self.handshakes as f64 / self.server_cpu.max(f64::EPSILON)
    }

    /// Completed handshakes per wall-clock second.
    pub fn per_second(&self) -> f64 {
        self.handshakes as f64 / self.seconds.max(f64::EPSILON)
    }

    /// How busy the server's core was, as `NN%`.
    pub fn server_core(&self) -> String {
        format!(
            "{:.0}%",
            100.0 * self.server_cpu / self.seconds.max(f64::EPSILON)
        )
    }

    /// How busy the generator's core was, as `NN%`.
    pub fn load_core(&self) -> String {
        format!(
            "{:.0}%",
            100.0 * self.load_cpu / self.seconds.max(f64::EPSILON)
        )
    }
}

/// One full handshake with `name` at `address`, then the connection is reset (no TIME_WAIT to
/// exhaust loopback ports).
pub async fn handshake_once(
    connector: &TlsConnector,
    address: SocketAddr,
    name: &str,
) -> anyhow::Result<()> {
    let tcp = TcpStream::connect(address).await?;
    tcp.set_nodelay(true)?;
    // A zero linger resets on close (it never blocks; only a non-zero one does, which is why
    // Tokio deprecates the setter).
    #[allow(deprecated)]
    tcp.set_linger(Some(Duration::ZERO))?;
    let server_name = ServerName::try_from(name.to_owned())?;
    let tls = connector.connect(server_name, tcp).await?;
    drop(tls);
    Ok(())
}

/// Runs `connections` handshake loops against `address` for `duration`, each handshake with a
/// name drawn at random from `names`.
pub async fn handshakes(
    address: SocketAddr,
    names: Arc<Vec<String>>,
    client: Arc<ClientConfig>,
    connections: usize,
    duration: Duration,
) -> HandshakeRun {
    let completed = Arc::new(AtomicU64::new(0));
    let failed = Arc::new(AtomicU64::new(0));
    let first_error = Arc::new(std::sync::Mutex::new(None::<String>));
    let connector = TlsConnector::from(client);
    let cpu_before = crate::process::own_cpu_seconds();
    let started = Instant::now();
    let deadline = started + duration;
    let mut tasks = Vec::with_capacity(connections);
    for _ in 0..connections {
        let (names, connector) = (Arc::clone(&names), connector.clone());
        let (completed, failed) = (Arc::clone(&completed), Arc::clone(&failed));
        let first_error = Arc::clone(&first_error);
        tasks.push(tokio::spawn(async move {
            let mut random = rand::rngs::StdRng::from_entropy();
            while Instant::now() < deadline {
                let name = &names[random.gen_range(0..names.len())];
                match handshake_once(&connector, address, name).await {
                    Ok(()) => completed.fetch_add(1, Ordering::Relaxed),
                    Err(error) => {
                        let mut first = first_error
                            .lock()
                            .unwrap_or_else(std::sync::PoisonError::into_inner);
                        first.get_or_insert_with(|| format!("{error:#}"));
                        failed.fetch_add(1, Ordering::Relaxed)
                    }
                };
            }
        }));
    }
    for task in tasks {
        let _ = task.await;
    }
    HandshakeRun {
        completed: completed.load(Ordering::Relaxed),
        failed: failed.load(Ordering::Relaxed),
        elapsed: started.elapsed(),
        load_cpu_seconds: crate::process::own_cpu_seconds() - cpu_before,
        first_error: first_error
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take(),
    }
}

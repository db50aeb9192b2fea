//! Configuration: [`TerminatorConfig`] (every tunable of the edge, with production defaults) and
//! [`DeploymentConfig`] (what the container binary reads from its environment once at start,
//! failing with the name of the variable at fault).
//!
//! The variables shared with the API and the workers (table, secrets, edge, origins, DNS, ACME
//! CA) are read by [`edgecert_deployment::DeploymentConfig`], the one parser of them; the
//! terminator's own start with `EDGECERT_TERMINATOR_` and are read here.

use std::net::SocketAddr;
use std::time::Duration;

use rustls::pki_types::CertificateDer;

use crate::error::{Result, TerminatorError};

const MIB: usize = 1024 * 1024;

/// Names of the terminator's own environment variables (the shared ones are
/// [`edgecert_deployment::vars`]).
pub mod vars {
    /// HTTPS listen address (default `0.0.0.0:8443`; the NLB maps 443 to it).
    pub const HTTPS_ADDR: &str = "EDGECERT_TERMINATOR_HTTPS_ADDR";
    /// HTTP listen address for HTTP-01 and redirects (default `0.0.0.0:8080`; the NLB maps 80).
    pub const HTTP_ADDR: &str = "EDGECERT_TERMINATOR_HTTP_ADDR";
    /// Admin listen address for `/healthz` and `/metrics` (default `0.0.0.0:9090`).
    pub const ADMIN_ADDR: &str = "EDGECERT_TERMINATOR_ADMIN_ADDR";
    /// Port in the `https://` redirects of the HTTP listener (default 443).
    pub const REDIRECT_HTTPS_PORT: &str = "EDGECERT_TERMINATOR_REDIRECT_HTTPS_PORT";
    /// Longest hold of a handshake while its certificate is issued on demand (default 20).
    pub const ON_DEMAND_WAIT_SECS: &str = "EDGECERT_TERMINATOR_ON_DEMAND_WAIT_SECS";
    /// Issuances run at once by this terminator (default 8).
    pub const MAX_CONCURRENT_ISSUANCES: &str = "EDGECERT_TERMINATOR_MAX_CONCURRENT_ISSUANCES";
    /// Client connections served at once, HTTPS and HTTP each (default 10000).
    pub const MAX_CONNECTIONS: &str = "EDGECERT_TERMINATOR_MAX_CONNECTIONS";
    /// Store lookups that served nothing (names not whitelisted or not ready) per second per
    /// client address (default 5).
    pub const LOOKUPS_PER_SECOND: &str = "EDGECERT_TERMINATOR_LOOKUPS_PER_SECOND";
    /// Burst of such lookups per client address (default 20).
    pub const LOOKUP_BURST: &str = "EDGECERT_TERMINATOR_LOOKUP_BURST";
    /// How long a name found not whitelisted is refused without asking again (default 30).
    pub const NEGATIVE_CACHE_SECS: &str = "EDGECERT_TERMINATOR_NEGATIVE_CACHE_SECS";
    /// Pause between two reads of the change feeds (default 1).
    pub const REFRESH_SECS: &str = "EDGECERT_TERMINATOR_REFRESH_SECS";
    /// Memory budget of the certificates and routes held, in MiB (default 256).
    pub const CACHE_MIB: &str = "EDGECERT_TERMINATOR_CACHE_MIB";
    /// `true` to send the client's Host to origins instead of the origin URL's host.
    pub const PRESERVE_HOST: &str = "EDGECERT_TERMINATOR_PRESERVE_HOST";
    /// Extra PEM roots trusted for HTTPS origins, besides the system's.
    pub const ORIGIN_CA_FILE: &str = "EDGECERT_TERMINATOR_ORIGIN_CA_FILE";
    /// Seconds a client has to send a request's headers (default 10).
    pub const HEADER_TIMEOUT_SECS: &str = "EDGECERT_TERMINATOR_HEADER_TIMEOUT_SECS";
    /// Seconds a connection may stay silent both ways (default 60).
    pub const IDLE_TIMEOUT_SECS: &str = "EDGECERT_TERMINATOR_IDLE_TIMEOUT_SECS";
    /// Seconds to connect to an origin (default 5).
    pub const ORIGIN_CONNECT_TIMEOUT_SECS: &str = "EDGECERT_TERMINATOR_ORIGIN_CONNECT_TIMEOUT_SECS";
    /// Seconds an origin has to answer with headers (default 30).
    pub const ORIGIN_TIMEOUT_SECS: &str = "EDGECERT_TERMINATOR_ORIGIN_TIMEOUT_SECS";
}

/// Every tunable of the terminator. `TerminatorConfig::default()` holds production defaults;
/// change fields one by one (the struct is `#[non_exhaustive]`).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct TerminatorConfig {
    /// Longest hold of a handshake while its certificate is issued on demand; past it the
    /// handshake fails and issuance goes on in the background.
    pub on_demand_wait: Duration,
    /// Time a client has, once connected, to send its whole ClientHello.
    pub client_hello_timeout: Duration,
    /// Time from the ClientHello to the end of the handshake (certificate already chosen).
    pub handshake_timeout: Duration,
    /// Time a client has to send a request's headers (HTTP/1; also bounds an idle keep-alive).
    pub header_read_timeout: Duration,
    /// A connection with no byte read or written for this long is closed.
    pub idle_timeout: Duration,
    /// Largest request head accepted, measured exactly on every request (`request_head`);
    /// larger gets 431. hyper and h2 stop reading heads at twice this.
    pub max_header_bytes: usize,
    /// Client connections served at once, on each of the HTTPS and HTTP listeners; more are
    /// closed at once.
    pub max_connections: usize,
    /// Streams per HTTP/2 connection.
    pub max_concurrent_streams: u32,
    /// Time to connect to an origin (resolution, SSRF check and TCP; TLS is in the next one).
    pub origin_connect_timeout: Duration,
    /// Time an origin has to answer with headers.
    pub origin_header_timeout: Duration,
    /// An origin response body silent for this long is cut.
    pub origin_idle_timeout: Duration,
    /// How long an idle pooled origin connection is kept.
    pub origin_pool_idle_timeout: Duration,
    /// Idle pooled connections kept per origin.
    pub origin_pool_max_idle_per_host: usize,
    /// Send the client's Host to the origin instead of the origin URL's host.
    pub preserve_host: bool,
    /// Roots trusted for HTTPS origins besides the system's (tests, private CAs).
    pub origin_extra_roots: Vec<CertificateDer<'static>>,
    /// How long a name that is not whitelisted is refused without asking the store again.
    pub negative_cache_ttl: Duration,
    /// Most names held in the negative cache.
    pub negative_cache_capacity: usize,
    /// Store lookups that served nothing (a name not whitelisted or not ready, a failed read)
    /// allowed per second per client address (IPv6 per /64). Lookups that load a certificate
    /// are not limited.
    pub lookups_per_second: f64,
    /// Burst of lookups per client address.
    pub lookup_burst: u32,
    /// Issuances this terminator runs at once; more wait for a slot.
    pub max_concurrent_issuances: usize,
    /// Pause between two reads of the change feeds.
    pub refresh_interval: Duration,
    /// Bytes of recently used certificates and routes held in memory (estimated); past it, the
    /// least recently used are evicted and loaded again on their next handshake.
    pub cache_memory_budget: usize,
    /// How far back each feed read reaches before the last change seen (writers' clock skew,
    /// index propagation).
    pub change_overlap: Duration,
    /// `/healthz` answers 503 once the store has not been read for this long.
    pub unhealthy_after_store_failures: Duration,
    /// Vault reads in flight while the refresher loads changed certificates.
    pub load_concurrency: usize,
    /// Items per page of the change feeds.
    pub feed_page_size: u32,
    /// Port in the `https://` redirects of the HTTP listener (443 is left out of the URL).
    pub redirect_https_port: u16,
    /// TLS sessions kept for resumption by session id (tickets need no state).
    pub session_cache_entries: usize,
    /// Whether clients may resume TLS sessions (tickets and session ids). On in production;
    /// benchmarks of full handshakes turn it off, as on the peers they are compared with.
    pub tls_resumption: bool,
    /// How long a graceful shutdown waits for open connections.
    pub shutdown_grace: Duration,
}

impl Default for TerminatorConfig {
    fn default() -> Self {
        TerminatorConfig {
            on_demand_wait: Duration::from_secs(20),
            client_hello_timeout: Duration::from_secs(5),
            handshake_timeout: Duration::from_secs(10),
            header_read_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            max_header_bytes: 64 * 1024,
            max_connections: 10_000,
            max_concurrent_streams: 100,
            origin_connect_timeout: Duration::from_secs(5),
            origin_header_timeout: Duration::from_secs(30),
            origin_idle_timeout: Duration::from_secs(60),
            origin_pool_idle_timeout: Duration::from_secs(30),
            origin_pool_max_idle_per_host: 32,
            preserve_host: false,
            origin_extra_roots: Vec::new(),
            negative_cache_ttl: Duration::from_secs(30),
            negative_cache_capacity: 100_000,
            lookups_per_second: 5.0,
            lookup_burst: 20,
            // An issuance mostly waits on the CA (about 120 ms against Pebble, seconds against
            // Let's Encrypt) and costs little CPU: 32 at once lets a burst of new names be
            // issued in one or two waves (BENCHMARKS.md, scenario 4) while bounding the load
            // one terminator puts on the CA.
            max_concurrent_issuances: 32,
            // Within a second, every edge follows a deletion, a re-claim or a new certificate.
            refresh_interval: Duration::from_secs(1),
            // About 70,000 certificates of a P-256 key and a Let's Encrypt chain (110,000 with
            // the benchmark's short chain, BENCHMARKS.md scenario 3): every certificate of most
            // deployments, and within the task's 1 GiB with room for 10,000 connections.
            cache_memory_budget: 256 * MIB,
            // Covers writers' clock skew and the change index's propagation (under a second on
            // DynamoDB); each pass re-reads this much, so it is kept short.
            change_overlap: Duration::from_secs(15),
            unhealthy_after_store_failures: Duration::from_secs(60),
            load_concurrency: 32,
            feed_page_size: 500,
            redirect_https_port: 443,
            session_cache_entries: 10_000,
            tls_resumption: true,
            shutdown_grace: Duration::from_secs(20),
        }
    }
}

/// What the container binary needs: listeners, the terminator's tunables, and the deployment
/// settings every EdgeCert process shares (with the ACME CA, which the terminator requires).
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct DeploymentConfig {
    /// HTTPS listen address.
    pub https_addr: SocketAddr,
    /// HTTP listen address (HTTP-01, redirects).
    pub http_addr: SocketAddr,
    /// Admin listen address (`/healthz`, `/metrics`).
    pub admin_addr: SocketAddr,
    /// The terminator's tunables.
    pub terminator: TerminatorConfig,
    /// Table, secrets, edge, origin policy, DNS server and the ACME CA.
    pub shared: edgecert_deployment::DeploymentConfig,
}

impl DeploymentConfig {
    /// Reads the process environment.
    pub fn from_env() -> Result<DeploymentConfig> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads variables through `lookup` (tests pass a map).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<DeploymentConfig> {
        let env = Env { lookup: &lookup };
        let shared =
            edgecert_deployment::DeploymentConfig::from_lookup(&lookup).map_err(shared_problem)?;
        shared
            .required_acme("the terminator")
            .map_err(shared_problem)?;
        Ok(DeploymentConfig {
            https_addr: env.address(vars::HTTPS_ADDR, "0.0.0.0:8443")?,
            http_addr: env.address(vars::HTTP_ADDR, "0.0.0.0:8080")?,
            admin_addr: env.address(vars::ADMIN_ADDR, "0.0.0.0:9090")?,
            terminator: TerminatorConfig::from_lookup(&lookup)?,
            shared,
        })
    }
}

impl TerminatorConfig {
    /// The tunables set in the process environment (`EDGECERT_TERMINATOR_*`), the defaults
    /// for the others.
    pub fn from_env() -> Result<TerminatorConfig> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The tunables read through `lookup`, the defaults for those it does not have.
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<TerminatorConfig> {
        let env = Env { lookup: &lookup };
        let defaults = TerminatorConfig::default();
        let mut terminator = TerminatorConfig {
            on_demand_wait: env.seconds(vars::ON_DEMAND_WAIT_SECS, defaults.on_demand_wait)?,
            max_concurrent_issuances: env.number(
                vars::MAX_CONCURRENT_ISSUANCES,
                defaults.max_concurrent_issuances,
            )?,
            max_connections: env.number(vars::MAX_CONNECTIONS, defaults.max_connections)?,
            lookups_per_second: env
                .number(vars::LOOKUPS_PER_SECOND, defaults.lookups_per_second)?,
            lookup_burst: env.number(vars::LOOKUP_BURST, defaults.lookup_burst)?,
            negative_cache_ttl: env
                .seconds(vars::NEGATIVE_CACHE_SECS, defaults.negative_cache_ttl)?,
            refresh_interval: env.seconds(vars::REFRESH_SECS, defaults.refresh_interval)?,
            cache_memory_budget: env
                .number(vars::CACHE_MIB, defaults.cache_memory_budget / MIB)?
                .checked_mul(MIB)
                .ok_or_else(|| problem(vars::CACHE_MIB, "is too large"))?,
            preserve_host: env.flag(vars::PRESERVE_HOST)?,
            redirect_https_port: env
                .number(vars::REDIRECT_HTTPS_PORT, defaults.redirect_https_port)?,
            header_read_timeout: env
                .seconds(vars::HEADER_TIMEOUT_SECS, defaults.header_read_timeout)?,
            idle_timeout: env.seconds(vars::IDLE_TIMEOUT_SECS, defaults.idle_timeout)?,
            origin_connect_timeout: env.seconds(
                vars::ORIGIN_CONNECT_TIMEOUT_SECS,
                defaults.origin_connect_timeout,
            )?,
            origin_header_timeout: env
                .seconds(vars::ORIGIN_TIMEOUT_SECS, defaults.origin_header_timeout)?,
            ..defaults
        };
        if terminator.max_concurrent_issuances == 0 {
            return Err(problem(
                vars::MAX_CONCURRENT_ISSUANCES,
                "must be at least 1",
            ));
        }
        if terminator.max_connections == 0 {
            return Err(problem(vars::MAX_CONNECTIONS, "must be at least 1"));
        }
        if terminator.cache_memory_budget == 0 {
            return Err(problem(vars::CACHE_MIB, "must be at least 1"));
        }
        if !(terminator.lookups_per_second > 0.0 && terminator.lookups_per_second.is_finite()) {
            return Err(problem(
                vars::LOOKUPS_PER_SECOND,
                "must be a positive number",
            ));
        }
        if let Some(path) = env.get(vars::ORIGIN_CA_FILE) {
            terminator.origin_extra_roots =
                read_pem_roots(&path).map_err(|reason| problem(vars::ORIGIN_CA_FILE, &reason))?;
        }
        Ok(terminator)
    }
}

/// A shared variable's error as the terminator's.
fn shared_problem(error: edgecert_deployment::ConfigError) -> TerminatorError {
    TerminatorError::Config {
        variable: error.variable,
        problem: error.problem,
    }
}

/// Reads every certificate of a PEM file.
pub(crate) fn read_pem_roots(
    path: &str,
) -> std::result::Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject as _;
    let roots = CertificateDer::pem_file_iter(path)
        .map_err(|error| format!("cannot read {path}: {error}"))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|error| format!("{path} is not PEM: {error}"))?;
    if roots.is_empty() {
        return Err(format!("{path} holds no certificate"));
    }
    Ok(roots)
}

fn problem(variable: &'static str, problem: &str) -> TerminatorError {
    TerminatorError::Config {
        variable,
        problem: problem.to_owned(),
    }
}

/// Typed reads of trimmed, non-empty variables.
struct Env<'a> {
    lookup: &'a dyn Fn(&str) -> Option<String>,
}

impl Env<'_> {
    fn get(&self, name: &str) -> Option<String> {
        (self.lookup)(name)
            .map(|value| value.trim().to_owned())
            .filter(|value| !value.is_empty())
    }

    fn flag(&self, name: &'static str) -> Result<bool> {
        match self.get(name).as_deref() {
            None | Some("false") | Some("0") => Ok(false),
            Some("true") | Some("1") => Ok(true),
            Some(other) => Err(problem(name, &format!("'{other}' is not true or false"))),
        }
    }

    fn number<T: std::str::FromStr>(&self, name: &'static str, default: T) -> Result<T> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse()
                .map_err(|_| problem(name, &format!("'{text}' is not a valid number"))),
        }
    }

    fn seconds(&self, name: &'static str, default: Duration) -> Result<Duration> {
        match self.get(name) {
            None => Ok(default),
            Some(text) => text
                .parse::<f64>()
                .ok()
                .filter(|seconds| seconds.is_finite() && *seconds > 0.0)
                .map(Duration::from_secs_f64)
                .ok_or_else(|| {
                    problem(
                        name,
                        &format!("'{text}' is not a positive number of seconds"),
                    )
                }),
        }
    }

    fn address(&self, name: &'static str, default: &str) -> Result<SocketAddr> {
        let text = self.get(name).unwrap_or_else(|| default.to_owned());
        text.parse().map_err(|_| {
            problem(
                name,
                &format!("'{text}' is not an address like 0.0.0.0:8443"),
            )
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use std::collections::HashMap;

    use edgecert_deployment::vars as shared;

    use super::*;

    fn config(pairs: &[(&str, &str)]) -> Result<DeploymentConfig> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        DeploymentConfig::from_lookup(|name| map.get(name).cloned())
    }

    const REQUIRED: [(&str, &str); 3] = [
        (shared::EDGE_HOSTNAME, "edge.example.net"),
        (shared::TABLE_NAME, "edgecert"),
        (shared::ACME_DIRECTORY, "https://acme.example/dir"),
    ];

    fn variable(error: TerminatorError) -> &'static str {
        match error {
            TerminatorError::Config { variable, .. } => variable,
            other => panic!("not a configuration error: {other}"),
        }
    }

    #[test]
    fn errors_name_the_variable() {
        assert_eq!(variable(config(&[]).unwrap_err()), shared::EDGE_HOSTNAME);
        // The terminator cannot run without a CA.
        assert_eq!(
            variable(config(&REQUIRED[..2]).unwrap_err()),
            shared::ACME_DIRECTORY
        );
        let mut pairs = REQUIRED.to_vec();
        pairs.push((vars::ON_DEMAND_WAIT_SECS, "soon"));
        let error = config(&pairs).unwrap_err();
        assert!(error.to_string().contains("soon"), "{error}");
        assert_eq!(variable(error), vars::ON_DEMAND_WAIT_SECS);
        let mut pairs = REQUIRED.to_vec();
        pairs.push((vars::HTTPS_ADDR, "443"));
        assert_eq!(variable(config(&pairs).unwrap_err()), vars::HTTPS_ADDR);
        let mut pairs = REQUIRED.to_vec();
        pairs.push((vars::ORIGIN_CA_FILE, "/nonexistent/ca.pem"));
        assert_eq!(variable(config(&pairs).unwrap_err()), vars::ORIGIN_CA_FILE);
        for bad in ["0", "lots", "-5"] {
            let mut pairs = REQUIRED.to_vec();
            pairs.push((vars::CACHE_MIB, bad));
            assert_eq!(
                variable(config(&pairs).unwrap_err()),
                vars::CACHE_MIB,
                "{bad}"
            );
        }
        let mut pairs = REQUIRED.to_vec();
        pairs.push((vars::MAX_CONCURRENT_ISSUANCES, "0"));
        assert_eq!(
            variable(config(&pairs).unwrap_err()),
            vars::MAX_CONCURRENT_ISSUANCES
        );
    }

    #[test]
    fn defaults_and_overrides_read_back() {
        let config = config(&[
            REQUIRED[0],
            REQUIRED[1],
            REQUIRED[2],
            (vars::ON_DEMAND_WAIT_SECS, "7.5"),
            (vars::CACHE_MIB, "64"),
            (vars::HTTPS_ADDR, "127.0.0.1:8443"),
            (shared::ALLOW_LOOPBACK_ORIGINS, "true"),
            (shared::EDGE_IPS, "203.0.113.1, 2001:db8::1"),
        ])
        .unwrap();
        assert_eq!(
            config.terminator.on_demand_wait,
            Duration::from_millis(7500)
        );
        assert_eq!(config.https_addr, "127.0.0.1:8443".parse().unwrap());
        assert_eq!(config.http_addr, "0.0.0.0:8080".parse().unwrap());
        assert!(config.shared.origin_policy.allow_loopback);
        assert_eq!(config.shared.edge.addresses.len(), 2);
        assert_eq!(config.shared.secret_prefix, "edgecert/");
        let acme = config.shared.required_acme("the terminator").unwrap();
        assert_eq!(
            acme.issuer_config().caa_identities,
            vec!["letsencrypt.org".to_owned()]
        );
        assert_eq!(config.terminator.max_concurrent_issuances, 32);
        assert_eq!(config.terminator.cache_memory_budget, 64 * MIB);
        assert_eq!(
            TerminatorConfig::default().cache_memory_budget,
            256 * MIB,
            "the default budget"
        );
    }
}

//! EdgeCert as one local process: the API on the same routes as in AWS (through the same
//! authorizer and handlers), on the embedded SQLite store by default or on DynamoDB + Secrets
//! Manager when pointed at an endpoint, with Pebble and pebble-challtestsrv started for it.
//! The issuer, the renewer and the edge terminator run in the same process.

pub mod api_server;
pub mod stack;

pub use stack::{LocalCa, LocalOptions, LocalStack, StackInfo};

/// The local runner's own environment variables, the fallbacks of its flags. What it shares
/// with deployed processes is [`edgecert_deployment::vars`] (read by the same parser), and the
/// workers' and the edge's tunables are theirs (`edgecert_workers::config::vars`,
/// `edgecert_terminator::vars`).
pub mod vars {
    /// Directory of the SQLite file, the admin key and `stack.json`.
    pub const DATA_DIR: &str = "EDGECERT_DATA_DIR";
    /// The API's listen address.
    pub const API_ADDR: &str = "EDGECERT_API_ADDR";
    /// DynamoDB + Secrets Manager endpoint (moto) instead of SQLite.
    pub const AWS_ENDPOINT: &str = "EDGECERT_AWS_ENDPOINT";
    /// The port Pebble validates HTTP-01 on (the edge's HTTP listener).
    pub const HTTP01_PORT: &str = "EDGECERT_HTTP01_PORT";
    /// The edge's HTTPS listener.
    pub const EDGE_HTTPS_ADDR: &str = "EDGECERT_EDGE_HTTPS_ADDR";
    /// The edge's admin listener.
    pub const EDGE_ADMIN_ADDR: &str = "EDGECERT_EDGE_ADMIN_ADDR";
    /// Seconds between two renewer runs.
    pub const RENEWAL_INTERVAL_SECONDS: &str = "EDGECERT_RENEWAL_INTERVAL_SECONDS";
    /// Lifetime of Pebble's certificates in seconds.
    pub const CERTIFICATE_VALIDITY_SECONDS: &str = "EDGECERT_CERTIFICATE_VALIDITY_SECONDS";

    /// Every one of them.
    pub const ALL: &[&str] = &[
        DATA_DIR,
        API_ADDR,
        AWS_ENDPOINT,
        HTTP01_PORT,
        EDGE_HTTPS_ADDR,
        EDGE_ADMIN_ADDR,
        RENEWAL_INTERVAL_SECONDS,
        CERTIFICATE_VALIDITY_SECONDS,
    ];
}

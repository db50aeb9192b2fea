//! The terminator's one error type: what can stop it from starting. Failures while serving a
//! connection are answers (a TLS alert, a 4xx/5xx, a closed socket) and a log line, never errors
//! returned from here.

/// Why the terminator could not be configured or started.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TerminatorError {
    /// A configuration value is missing or malformed; names the environment variable.
    #[error("configuration: {variable}: {problem}")]
    Config {
        /// The environment variable at fault.
        variable: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// rustls refused the TLS configuration (protocol versions, ticketer).
    #[error("building the TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
    /// The roots trusted for HTTPS origins could not be loaded.
    #[error("loading the CA roots trusted for origins: {0}")]
    OriginRoots(String),
    /// A listener's local address could not be read.
    #[error("reading the address of the {listener} listener: {source}")]
    Listener {
        /// Which listener (`https`, `http`, `admin`).
        listener: &'static str,
        /// The I/O error.
        #[source]
        source: std::io::Error,
    },
}

/// Result alias of this crate.
pub type Result<T, E = TerminatorError> = std::result::Result<T, E>;

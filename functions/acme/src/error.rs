//! The crate's error type and how it maps into the core's [`Error`](edgecert_core::Error).

use edgecert_core::Error;

/// What can go wrong in the ACME engine itself (failures of the store or vault are the core's
/// errors and pass through unchanged).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AcmeError {
    /// The CA answered with a problem document, could not be reached, or answered something
    /// instant-acme could not use.
    #[error(transparent)]
    Protocol(#[from] instant_acme::Error),
    /// The configuration cannot work (unreadable CA root file, no usable TLS roots).
    #[error("invalid ACME configuration: {0}")]
    Config(String),
    /// Generating a key or encoding a CSR failed, or a stored key could not be read.
    #[error("key or CSR: {0}")]
    Key(#[from] rcgen::Error),
    /// The certificate chain from the CA (or from the vault) could not be read.
    #[error("unreadable certificate: {0}")]
    Certificate(String),
    /// Stored ACME account credentials could not be encoded or decoded.
    #[error("ACME account credentials: {0}")]
    Credentials(#[from] serde_json::Error),
    /// The TLS configuration of the CA client could not be built.
    #[error("TLS configuration: {0}")]
    Tls(#[from] rustls::Error),
}

/// Result alias of this crate.
pub type Result<T, E = AcmeError> = std::result::Result<T, E>;

impl AcmeError {
    /// The CA's problem document, when the CA answered with one.
    pub fn problem(&self) -> Option<&instant_acme::Problem> {
        match self {
            AcmeError::Protocol(instant_acme::Error::Api(problem)) => Some(problem),
            _ => None,
        }
    }
}

impl From<AcmeError> for Error {
    fn from(error: AcmeError) -> Error {
        match error {
            AcmeError::Protocol(instant_acme::Error::Api(problem)) => Error::Acme {
                problem: problem.r#type.clone(),
                message: problem.to_string(),
            },
            AcmeError::Protocol(other) => Error::Acme {
                problem: None,
                message: other.to_string(),
            },
            AcmeError::Config(_) | AcmeError::Tls(_) => Error::Acme {
                problem: None,
                message: error.to_string(),
            },
            AcmeError::Key(_) | AcmeError::Certificate(_) | AcmeError::Credentials(_) => {
                Error::Corrupt(error.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ca_problems_keep_their_type_in_the_core_error() {
        let problem: instant_acme::Problem = serde_json::from_str(
            r#"{"type":"urn:ietf:params:acme:error:rateLimited","detail":"slow down","status":429}"#,
        )
        .unwrap();
        let error = Error::from(AcmeError::Protocol(instant_acme::Error::Api(problem)));
        match &error {
            Error::Acme { problem, message } => {
                assert_eq!(
                    problem.as_deref(),
                    Some("urn:ietf:params:acme:error:rateLimited")
                );
                assert!(message.contains("slow down"));
            }
            other => panic!("unexpected {other:?}"),
        }
        assert_eq!(error.status(), 503);
    }
}

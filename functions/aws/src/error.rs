//! The crate's one error type: what went wrong talking to AWS, converted into
//! [`edgecert_core::Error`] at the port boundary (`Store` for DynamoDB, `Vault` for Secrets
//! Manager) so core logic never sees an SDK type.
//!
//! Messages carry operation names, AWS error codes and item keys, never item bodies or secret
//! values: SDK errors do not echo request payloads, and the vault never formats material.

use aws_sdk_dynamodb::error::{BuildError, DisplayErrorContext, SdkError};

/// Failures of the AWS adapters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AwsError {
    /// A DynamoDB call failed (network, throttling, validation, missing table...).
    #[error("DynamoDB {operation} failed: {detail}")]
    DynamoDb {
        /// The API operation, e.g. `TransactWriteItems`.
        operation: &'static str,
        /// The SDK error with its whole source chain, for the logs.
        detail: String,
        /// The SDK error.
        #[source]
        source: Box<aws_sdk_dynamodb::Error>,
    },
    /// A Secrets Manager call failed.
    #[error("Secrets Manager {operation} failed: {detail}")]
    SecretsManager {
        /// The API operation, e.g. `PutSecretValue`.
        operation: &'static str,
        /// The SDK error with its whole source chain, for the logs.
        detail: String,
        /// The SDK error.
        #[source]
        source: Box<aws_sdk_secretsmanager::Error>,
    },
    /// A KMS call failed (the data key of sealed key storage could not be made or unwrapped).
    #[error("KMS {operation} failed: {detail}")]
    Kms {
        /// The API operation, e.g. `Decrypt`.
        operation: &'static str,
        /// The SDK error with its whole source chain, for the logs.
        detail: String,
        /// The SDK error.
        #[source]
        source: Box<aws_sdk_kms::Error>,
    },
    /// Sealed key storage could not seal or unseal (a wrong key, a tampered item, a data key
    /// KMS did not return whole). Says which item, never what it holds.
    #[error("sealed key storage: {0}")]
    Sealing(String),
    /// A request could not be built (a required field was missing: a bug in this crate).
    #[error("could not build {what}: {source}")]
    Build {
        /// What was being built.
        what: &'static str,
        /// The builder's complaint.
        #[source]
        source: BuildError,
    },
    /// A transaction kept being cancelled by concurrent transactions on the same items.
    #[error("{operation} still conflicted after {attempts} attempts")]
    TransactionConflict {
        /// The store operation, e.g. `create_domain`.
        operation: &'static str,
        /// How many times it was tried.
        attempts: u32,
    },
    /// A batch call kept leaving part of its request unprocessed (the table is throttling).
    #[error("{operation} left keys unprocessed after {attempts} attempts")]
    Unprocessed {
        /// The API operation, e.g. `BatchGetItem`.
        operation: &'static str,
        /// How many times it was tried.
        attempts: u32,
    },
    /// An item that must be new already exists (an id or API key hash was reused).
    #[error("{what} already exists")]
    Duplicate {
        /// What was duplicated.
        what: &'static str,
    },
    /// The table did not become `ACTIVE` in time after being created.
    #[error("table {table} is not ACTIVE after {waited_secs} s")]
    TableNotActive {
        /// The table name.
        table: String,
        /// How long we waited.
        waited_secs: u64,
    },
    /// Secrets Manager answered without a field it always sends.
    #[error("Secrets Manager {operation} answered without {field}")]
    MissingField {
        /// The API operation.
        operation: &'static str,
        /// The absent field.
        field: &'static str,
    },
}

/// Result alias for the crate's own helpers (ports return [`edgecert_core::Result`]).
pub type Result<T, E = AwsError> = std::result::Result<T, E>;

impl AwsError {
    /// Wraps a failed DynamoDB call.
    pub fn dynamodb<E, R>(operation: &'static str, error: SdkError<E, R>) -> Self
    where
        aws_sdk_dynamodb::Error: From<SdkError<E, R>>,
    {
        let source = aws_sdk_dynamodb::Error::from(error);
        AwsError::DynamoDb {
            operation,
            detail: DisplayErrorContext(&source).to_string(),
            source: Box::new(source),
        }
    }

    /// Wraps a failed Secrets Manager call.
    pub fn secrets_manager<E, R>(operation: &'static str, error: SdkError<E, R>) -> Self
    where
        aws_sdk_secretsmanager::Error: From<SdkError<E, R>>,
    {
        let source = aws_sdk_secretsmanager::Error::from(error);
        AwsError::SecretsManager {
            operation,
            detail: DisplayErrorContext(&source).to_string(),
            source: Box::new(source),
        }
    }

    /// Wraps a failed KMS call.
    pub fn kms<E, R>(operation: &'static str, error: SdkError<E, R>) -> Self
    where
        aws_sdk_kms::Error: From<SdkError<E, R>>,
    {
        let source = aws_sdk_kms::Error::from(error);
        AwsError::Kms {
            operation,
            detail: DisplayErrorContext(&source).to_string(),
            source: Box::new(source),
        }
    }

    /// Wraps a failed request builder.
    pub fn build(what: &'static str) -> impl FnOnce(BuildError) -> AwsError {
        move |source| AwsError::Build { what, source }
    }
}

/// Secrets Manager, KMS and sealing failures are vault failures; everything else is a store
/// failure (the sealed vault's DynamoDB calls included: the table is down for both).
impl From<AwsError> for edgecert_core::Error {
    fn from(error: AwsError) -> Self {
        match error {
            AwsError::SecretsManager { .. }
            | AwsError::MissingField { .. }
            | AwsError::Kms { .. }
            | AwsError::Sealing(_) => edgecert_core::Error::vault(error),
            _ => edgecert_core::Error::store(error),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_manager_failures_become_vault_errors_and_the_rest_store_errors() {
        let vault = edgecert_core::Error::from(AwsError::MissingField {
            operation: "PutSecretValue",
            field: "VersionId",
        });
        assert!(matches!(vault, edgecert_core::Error::Vault(_)));
        let store = edgecert_core::Error::from(AwsError::TransactionConflict {
            operation: "create_domain",
            attempts: 5,
        });
        assert!(matches!(store, edgecert_core::Error::Store(_)));
        assert_eq!(store.status(), 503);
    }
}

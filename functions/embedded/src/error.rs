//! The crate's one error type, and how it becomes [`edgecert_core::Error`].
//!
//! Messages name tables, paths and SQLite codes, never stored values: the same database holds
//! private keys, so nothing read from it is ever quoted in an error.

use std::path::PathBuf;

/// Result alias of this crate.
pub type Result<T, E = EmbeddedError> = std::result::Result<T, E>;

/// What can go wrong in the embedded adapters.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum EmbeddedError {
    /// The database file or its directory could not be created, opened or restricted.
    #[error("cannot prepare database file {path}: {source}")]
    File {
        /// The path concerned.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// SQLite failed (I/O, lock timeout, constraint, malformed database).
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The file was written by a newer EdgeCert whose schema this build does not know.
    #[error("database schema version {found} is newer than the {supported} this build knows")]
    SchemaTooNew {
        /// `PRAGMA user_version` of the file.
        found: i64,
        /// Migrations this build carries.
        supported: usize,
    },
    /// A stored item could not be decoded into its model.
    #[error("stored {table} item cannot be decoded: {source}")]
    Corrupt {
        /// The table it was read from.
        table: &'static str,
        /// The decoding failure.
        #[source]
        source: serde_json::Error,
    },
    /// A model could not be encoded for storage.
    #[error("{table} item cannot be encoded: {source}")]
    Encode {
        /// The table it was meant for.
        table: &'static str,
        /// The encoding failure.
        #[source]
        source: serde_json::Error,
    },
    /// A number stored or given does not fit its column (a version past `i64::MAX`).
    #[error("{0} is out of range for its column")]
    OutOfRange(&'static str),
    /// The work sent to the database's thread panicked (its transaction was rolled back), or
    /// the thread is gone.
    #[error("database task failed: {0}")]
    Task(&'static str),
    /// A rule of the port refused the operation (duplicate hostname, limit, version...); it
    /// passes through unchanged.
    #[error(transparent)]
    Refused(#[from] edgecert_core::Error),
}

impl EmbeddedError {
    /// The core error a store operation answers with.
    pub fn into_store_error(self) -> edgecert_core::Error {
        self.into_core(edgecert_core::Error::store)
    }

    /// The core error a vault operation answers with.
    pub fn into_vault_error(self) -> edgecert_core::Error {
        self.into_core(edgecert_core::Error::vault)
    }

    fn into_core(
        self,
        unavailable: fn(edgecert_core::error::BoxError) -> edgecert_core::Error,
    ) -> edgecert_core::Error {
        match self {
            EmbeddedError::Refused(error) => error,
            corrupt @ EmbeddedError::Corrupt { .. } => {
                edgecert_core::Error::Corrupt(corrupt.to_string())
            }
            other => unavailable(Box::new(other)),
        }
    }
}

impl From<EmbeddedError> for edgecert_core::Error {
    fn from(error: EmbeddedError) -> Self {
        error.into_store_error()
    }
}

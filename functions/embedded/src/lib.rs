//! EdgeCert's embedded adapters, the local default: the store and the vault in one SQLite file.
//!
//! ```no_run
//! # fn main() -> Result<(), edgecert_embedded::EmbeddedError> {
//! let database = edgecert_embedded::Database::open("/var/lib/edgecert/edgecert.db")?;
//! let store = database.store(); // implements edgecert_core::ports::Store
//! let vault = database.vault(); // implements edgecert_core::ports::Vault
//! # Ok(())
//! # }
//! ```
//!
//! The file is created 0600 because it holds private keys; both adapters share one connection,
//! owned by a thread of the database's own that runs their blocking work in turn.

mod database;
mod error;
mod store;
mod vault;

pub use database::Database;
pub use error::{EmbeddedError, Result};
pub use store::SqliteStore;
pub use vault::SqliteVault;

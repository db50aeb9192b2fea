//! The shared store and vault conformance suite, run against the SQLite adapters.

use std::sync::Arc;

use edgecert_conformance::Adapters;
use edgecert_embedded::Database;

/// Fresh adapters over a new database file in a temporary directory, removed on drop.
async fn make_adapters() -> Adapters {
    let directory = tempfile::tempdir().expect("temporary directory");
    let database = Database::open(directory.path().join("edgecert.db")).expect("open database");
    Adapters {
        store: Arc::new(database.store()),
        vault: Arc::new(database.vault()),
        guard: Box::new(directory),
    }
}

edgecert_conformance::conformance_suite!(sqlite, crate::make_adapters);

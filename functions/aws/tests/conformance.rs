//! The shared store and vault conformance suite, run against DynamoDB and Secrets Manager as
//! served by moto_server (see `support` for how the endpoint is found).

#![allow(clippy::unwrap_used, clippy::expect_used)]

mod support;

use std::sync::Arc;

use edgecert_conformance::Adapters;

/// Fresh adapters for one case: a new table and a new secret prefix on the shared moto.
async fn make_adapters() -> Adapters {
    let clients = support::clients().await;
    let store = support::fresh_store(&clients).await;
    let vault = support::fresh_vault(&clients);
    Adapters {
        store: Arc::new(store),
        vault: Arc::new(vault),
        // moto keeps everything in memory and stops with the test binary: nothing to drop.
        guard: Box::new(()),
    }
}

edgecert_conformance::conformance_suite!(dynamodb, make_adapters);

//! What every handler gets: the core services and the operator's admin key.

use edgecert_core::model::ApiKeyHash;
use edgecert_core::usecases::Services;

/// Shared, read-only state of the API, built once per process.
#[derive(Clone)]
pub struct ApiState {
    /// Core services (store, vault, DNS, clock, plans, edge settings, origin policy).
    pub services: Services,
    /// SHA-256 of the operator's admin key; `None` disables the admin endpoints.
    pub admin_key: Option<ApiKeyHash>,
}

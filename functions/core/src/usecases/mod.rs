//! Use cases: what the API, the workers and the edge do, written once over the ports.
//! HTTP handlers, Lambda binaries and the local runner are thin shells around these.

use std::net::IpAddr;
use std::sync::Arc;

use crate::origin::OriginPolicy;
use crate::plan::PlanCatalog;
use crate::ports::{Clock, DnsProviders, DnsResolver, Issuance, Store, Vault};

pub mod accounts;
pub mod certificates;
pub mod domains;
pub mod issuance;
pub mod key_storage;
pub mod managed;
pub mod profiles;
pub mod renewals;
pub mod versioned;
pub mod zones;

/// Where customers point their DNS: the edge's hostname (CNAME target) and addresses (A/AAAA
/// records for apex names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EdgeSettings {
    /// CNAME target for subdomains, e.g. `edge.edgecert.example`.
    pub hostname: String,
    /// Addresses of the edge for apex names.
    pub addresses: Vec<IpAddr>,
}

/// Everything a use case may touch, built once per process.
#[derive(Clone)]
pub struct Services {
    /// The store.
    pub store: Arc<dyn Store>,
    /// The vault.
    pub vault: Arc<dyn Vault>,
    /// DNS reads.
    pub resolver: Arc<dyn DnsResolver>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Plans in force.
    pub plans: PlanCatalog,
    /// Where customers point DNS.
    pub edge: EdgeSettings,
    /// Which origin addresses are allowed.
    pub origin_policy: OriginPolicy,
    /// DNS providers for zones (DNS-01, zone verification).
    pub dns_providers: DnsProviders,
    /// The ACME engine, where this process may talk to the CA (`None` in functions that never
    /// do; revocation there answers 503).
    pub issuance: Option<Arc<dyn Issuance>>,
}

//! EdgeCert's core: the model, the rules (hostnames, plans, renewal), the one error type and
//! the ports that adapters implement. It does no I/O of its own.

pub mod caa;
pub mod error;
pub mod hostname;
pub mod ids;
pub mod model;
pub mod origin;
pub mod plan;
pub mod ports;
pub mod renewal;
pub mod special_purpose;
pub mod usecases;

pub use error::{Error, ItemKind, Result};
pub use hostname::{Hostname, HostnameRules};
pub use ids::{AccountId, CertificateId, DomainId, ZoneId};
pub use plan::{Plan, PlanCatalog, PlanName};
pub use renewal::{RenewalBasis, RenewalPlan, RenewalPolicy, RenewalSuggestion, RenewalWindow};

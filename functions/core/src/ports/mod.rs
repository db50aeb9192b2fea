//! Ports: the narrow traits core logic talks to. Adapters (DynamoDB, Secrets Manager, SQLite)
//! implement them in their own crates and pass the shared conformance suite
//! (`edgecert-conformance`).

mod clock;
mod dns;
mod store;
mod vault;

pub use clock::{Clock, ManualClock, SystemClock};
pub use dns::DnsResolver;
pub use store::{
    AccountStore, CertificateStore, ChallengeStore, DomainStore, EventLog, LeaseStore, Page,
    PageRequest, Store, ZoneStore,
};
pub use vault::{CertificateMaterial, MAX_MATERIAL_BYTES, MaterialVersion, Vault};

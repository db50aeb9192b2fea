//! Ports: the narrow traits core logic talks to. Adapters (DynamoDB, Secrets Manager, SQLite)
//! implement them in their own crates and pass the shared conformance suite
//! (`edgecert-conformance`).

mod certificate_authority;
mod clock;
mod dns;
mod dns_provider;
mod issuance;
mod store;
mod vault;

pub use certificate_authority::{
    CaOrder, CertificateAuthority, ChallengeKind, IssuedChain, OpenedOrder, OrderNote,
    OrderRequest, OrderState, Profiles, Publication, ValidationRun,
};
pub use clock::{Clock, ManualClock, SystemClock};
pub use dns::{CaaRecord, DnsResolver};
pub use dns_provider::{DnsProvider, DnsProviders, ZoneGrants};
pub use issuance::{Issuance, IssueOutcome};
pub use store::{
    AccountStore, CertificateStore, ChallengeStore, DomainStore, EventLog, LeaseStore, Page,
    PageRequest, Store, TokenBucketStore, ZoneStore,
};
pub use vault::{CertificateMaterial, MAX_MATERIAL_BYTES, MaterialSweep, MaterialVersion, Vault};

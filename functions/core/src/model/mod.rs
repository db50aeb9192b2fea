//! EdgeCert's model: what the store keeps and the API shows.

mod account;
mod certificate;
mod challenge;
mod domain;
mod event;
mod lease;
mod lifecycle;
mod secret;
mod token_bucket;
mod zone;

pub use account::{Account, AccountUsage, ApiKey, ApiKeyHash, ZoneToken};
pub use certificate::{Certificate, CertificateKind, CertificateStatus, KeyType};
pub use challenge::Http01Challenge;
pub use domain::{DeletedDomain, Domain, DomainChange, ProvisioningStep};
pub use event::{CertificateEvent, EventLevel};
pub use lease::Lease;
pub use lifecycle::{DnsCheck, IssueFailure, IssueStop, IssuedMaterial, Servable};
pub use secret::SecretString;
pub use token_bucket::{BucketLevel, BucketLimits, Taken, TokenBucket};
pub use zone::Zone;

/// `at` as RFC 3339, as the API and the event log show times.
pub fn rfc3339(at: time::OffsetDateTime) -> String {
    at.format(&time::format_description::well_known::Rfc3339)
        .unwrap_or_else(|_| at.to_string())
}

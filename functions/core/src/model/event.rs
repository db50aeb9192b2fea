//! Certificate events: the logs a client reads at `/v1/certificates/{id}/logs`.

use serde::{Deserialize, Serialize};
use time::OffsetDateTime;

use crate::ids::CertificateId;

/// How serious an event is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventLevel {
    /// Progress.
    Info,
    /// Something to look at, not fatal.
    Warning,
    /// The step failed.
    Error,
}

/// One step of a certificate's life, kept 30 days.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CertificateEvent {
    /// The certificate.
    pub certificate_id: CertificateId,
    /// When it happened.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
    /// Which step (`preflight`, `order`, `challenge`, `finalize`, `stored`, `renewal`...).
    pub step: String,
    /// Severity.
    pub level: EventLevel,
    /// Human sentence.
    pub message: String,
    /// The ACME problem type (`urn:ietf:params:acme:error:…`) when the CA gave one.
    pub acme_problem: Option<String>,
}

impl CertificateEvent {
    /// How long events are kept.
    pub const RETENTION: time::Duration = time::Duration::days(30);
}

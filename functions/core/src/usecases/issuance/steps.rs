//! Named steps of an issuance run, and a hook called after each one.
//!
//! The hook exists for crash-safety tests (`edgecert_acme::testing::CrashAfter` stops a run dead
//! after a chosen step); production issuers have none.

use std::fmt;

use crate::ids::CertificateId;

/// A point in an issuance run after which everything done so far is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Step {
    /// The order exists at the CA and its URL is stored on the certificate.
    OrderCreated,
    /// The first challenge answers are published and the CA was told to validate them.
    ChallengeReady,
    /// The certificate's new key is in the vault and recorded as pending on the certificate.
    KeyStored,
    /// The CA accepted the CSR (the order is processing or valid).
    Finalized,
}

impl Step {
    /// The step's name in events and logs.
    pub fn as_str(self) -> &'static str {
        match self {
            Step::OrderCreated => "order_created",
            Step::ChallengeReady => "challenge_ready",
            Step::KeyStored => "key_stored",
            Step::Finalized => "finalized",
        }
    }
}

impl fmt::Display for Step {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Called by the issuer after each [`Step`] of a run.
pub trait StepHook: Send + Sync {
    /// `step` of `certificate`'s run just completed.
    fn after(&self, step: Step, certificate: &CertificateId);
}

//! The issuance port: the ACME engine as seen by the API, the workers and the edge.
//! Implemented by `edgecert-acme`; one code path for API requests, first TLS requests and
//! renewals.

use async_trait::async_trait;

use crate::error::Result;
use crate::ids::{AccountId, CertificateId};
use crate::model::{BucketLevel, Certificate};
use crate::ports::Profiles;
use crate::renewal::RenewalSuggestion;

/// How one run of the issue use case ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum IssueOutcome {
    /// The certificate is issued (or already was, with nothing due): the stored item.
    Issued(Certificate),
    /// The attempt failed; the stored item carries `last_error` and `next_attempt_at`.
    Failed(Certificate),
    /// Not ordered: the order budget is spent. The stored item carries the reason in
    /// `last_error` and when a token is next expected in `next_attempt_at`.
    Deferred(Certificate),
    /// Another owner holds the lease on these names and is working on them.
    InProgress,
    /// Nothing to do now (not due, deleted, revoked, or the renewal is not allowed).
    Skipped,
}

/// Obtains and revokes certificates.
#[async_trait]
pub trait Issuance: Send + Sync {
    /// Runs, or resumes after a crash, the issuance of a stored certificate until it is issued
    /// or has failed. Safe to call concurrently and repeatedly: the lease lets one caller work.
    async fn issue(&self, account: &AccountId, certificate: &CertificateId)
    -> Result<IssueOutcome>;
    /// [`Issuance::issue`] of a certificate the caller just read, saving the first read.
    async fn issue_certificate(&self, certificate: &Certificate) -> Result<IssueOutcome> {
        self.issue(&certificate.account_id, &certificate.id).await
    }
    /// Revokes the certificate's served material at the CA.
    async fn revoke(&self, certificate: &Certificate) -> Result<()>;
    /// The CA's current renewal window for the certificate's served material (ARI, RFC 9773),
    /// or `None` when the CA offers none, the certificate has no material, or the CA could not
    /// be asked (callers then keep to their own schedule). The default offers none.
    async fn renewal_window(&self, certificate: &Certificate) -> Result<Option<RenewalSuggestion>> {
        let _ = certificate;
        Ok(None)
    }
    /// The ACME profiles the CA advertises (`meta.profiles`), or `None` when this process
    /// cannot ask it. The default cannot.
    async fn profiles(&self) -> Result<Option<Profiles>> {
        Ok(None)
    }
    /// What the budget of new orders at the CA account holds now
    /// ([`OrderBudget`](crate::usecases::issuance::OrderBudget)), or `None` when this process
    /// orders under none. The default has none.
    async fn order_budget_level(&self) -> Result<Option<BucketLevel>> {
        Ok(None)
    }
    /// The directory URL of the CA certificates are ordered from, when there is one: material
    /// from any other CA is due now. The default has none.
    fn ca_directory_url(&self) -> Option<&str> {
        None
    }
}

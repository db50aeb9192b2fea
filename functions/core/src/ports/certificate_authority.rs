//! The certificate authority port: the ACME protocol as the issue use case needs it.
//!
//! The issue use case ([`IssuanceEngine`](crate::usecases::issuance::IssuanceEngine)) decides
//! everything about a certificate's life: when to order, with what, what to store when, what a
//! failure means. The CA's adapter (`edgecert-acme`) only speaks the protocol: it opens
//! (resumes or places) an order, validates its authorizations through the [`ValidationRun`] the
//! use case gives it (which publishes and withdraws the answers, and records progress),
//! finalizes with the key the use case stored, downloads the chain, and answers ARI, profile
//! and revocation requests. Its failures come back as
//! [`IssueFailure`](crate::model::IssueFailure)s, already worded for the certificate's log.

use std::collections::BTreeMap;

use async_trait::async_trait;
use time::OffsetDateTime;

use crate::error::Result;
use crate::hostname::Hostname;
use crate::model::{EventLevel, IssueFailure, IssueStop, KeyType, SecretString};
use crate::renewal::RenewalSuggestion;

/// What to order.
#[derive(Debug, Clone, Copy)]
pub struct OrderRequest<'a> {
    /// The names, primary first.
    pub names: &'a [Hostname],
    /// The stored order to resume, when this CA created it.
    pub resume: Option<&'a str>,
    /// The ARI identifier of the certificate this order replaces (a renewal), sent as
    /// `replaces`.
    pub replaces: Option<&'a str>,
    /// The ACME profile to order with (`None`: the CA's default).
    pub profile: Option<&'a str>,
}

/// Something that happened while an order was opened, for the certificate's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OrderNote {
    /// The stored order is invalid at the CA: a new one was placed.
    StoredInvalid,
    /// The CA no longer knows the stored order (`detail`): a new one was placed.
    StoredUnknown {
        /// The CA's words.
        detail: String,
        /// The ACME problem type.
        problem: Option<String>,
    },
    /// The CA refused `replaces` (the certificate was already replaced, or the CA will not
    /// take it): the order was placed without it.
    ReplacesRefused {
        /// The CA's words.
        detail: String,
        /// The ACME problem type.
        problem: Option<String>,
    },
}

/// An order's status at the CA.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OrderState {
    /// Authorizations to validate.
    Pending,
    /// Validated; waiting for the CSR.
    Ready,
    /// The CA is issuing.
    Processing,
    /// Issued; the chain can be downloaded.
    Valid,
    /// Failed for good.
    Invalid,
}

impl OrderState {
    /// The status as the ACME protocol names it.
    pub fn as_str(self) -> &'static str {
        match self {
            OrderState::Pending => "pending",
            OrderState::Ready => "ready",
            OrderState::Processing => "processing",
            OrderState::Valid => "valid",
            OrderState::Invalid => "invalid",
        }
    }
}

/// An opened order and what opening it found.
pub struct OpenedOrder {
    /// The order.
    pub order: Box<dyn CaOrder>,
    /// Whether it is the stored order, resumed (else a new one).
    pub resumed: bool,
    /// What happened on the way.
    pub notes: Vec<OrderNote>,
}

/// How names are validated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChallengeKind {
    /// An answer served at `/.well-known/acme-challenge/{token}` by every edge.
    Http01,
    /// A TXT record at `_acme-challenge.<name>` in the name's zone.
    Dns01,
}

impl ChallengeKind {
    /// The challenge's name in messages.
    pub fn as_str(self) -> &'static str {
        match self {
            ChallengeKind::Http01 => "HTTP-01",
            ChallengeKind::Dns01 => "DNS-01",
        }
    }
}

/// What has to be published for one pending authorization.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Publication {
    /// Served at `/.well-known/acme-challenge/{token}` by every terminator, from the store.
    Http01 {
        /// The challenge token.
        token: String,
        /// Its key authorization.
        key_authorization: String,
    },
    /// TXT `record` (no trailing dot) holding `value`.
    Dns01 {
        /// The record name.
        record: String,
        /// The record value.
        value: String,
    },
}

impl Publication {
    /// What two answers must not share within one round of validation: the token, or the
    /// TXT record name (a DNS provider's write replaces the record).
    pub fn slot(&self) -> &str {
        match self {
            Publication::Http01 { token, .. } => token,
            Publication::Dns01 { record, .. } => record,
        }
    }
}

/// What the CA's adapter asks of the issuance run while it validates an order.
#[async_trait]
pub trait ValidationRun: Send + Sync {
    /// Publishes the answer for `name`.
    async fn publish(&self, name: &str, publication: &Publication) -> Result<(), IssueFailure>;
    /// Withdraws an answer; never fails (a leftover expires or is swept by a later run).
    async fn withdraw(&self, publication: &Publication);
    /// Records progress in the certificate's log.
    async fn note(&self, level: EventLevel, message: String, problem: Option<String>);
    /// `Ok` while the run still holds its lease; otherwise the adapter stops without another
    /// request.
    fn check_lease(&self) -> Result<(), IssueStop>;
    /// The first round of answers is published and the CA was asked to validate it.
    fn challenge_ready(&self);
}

/// A chain the CA issued, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssuedChain {
    /// PEM leaf then intermediates.
    pub chain_pem: String,
    /// Start of validity of the leaf.
    pub not_before: OffsetDateTime,
    /// End of validity of the leaf.
    pub not_after: OffsetDateTime,
    /// The leaf's ARI identifier, when it has one.
    pub ari_id: Option<String>,
}

/// One order at the CA.
#[async_trait]
pub trait CaOrder: Send {
    /// Its URL (stored on the certificate, so a crashed run resumes it).
    fn url(&self) -> &str;
    /// Its status as last read.
    fn state(&mut self) -> OrderState;
    /// Validates the pending authorizations by `kind` through `run`, and returns once the order
    /// is ready. Answers an interrupted run left for `names` are withdrawn as well, whatever
    /// the outcome.
    async fn validate(
        &mut self,
        kind: ChallengeKind,
        names: &[Hostname],
        run: &dyn ValidationRun,
    ) -> Result<(), IssueStop>;
    /// Sends the CSR for `names` signed by `key_pem` when the order is ready; `false` when it
    /// was past that already (processing or valid).
    async fn finalize(
        &mut self,
        names: &[Hostname],
        key_pem: &SecretString,
    ) -> Result<bool, IssueFailure>;
    /// Downloads the chain once issued. A leaf that does not certify `key_pem` is a failure
    /// with a dead order.
    async fn certificate(&mut self, key_pem: &SecretString) -> Result<IssuedChain, IssueFailure>;
}

/// An ACME certificate authority.
#[async_trait]
pub trait CertificateAuthority: Send + Sync {
    /// Its ACME directory URL: the CA's identity, recorded on what it issues.
    fn directory_url(&self) -> &str;
    /// The profiles its directory advertises (`meta.profiles`: name -> description); empty
    /// when it advertises none.
    async fn profiles(&self) -> Result<BTreeMap<String, String>, IssueFailure>;
    /// Resumes `request.resume` when the CA can still complete it, else places a new order.
    async fn open_order(&self, request: OrderRequest<'_>) -> Result<OpenedOrder, IssueFailure>;
    /// A new private key of `key_type`, PKCS#8 PEM.
    fn generate_key(&self, key_type: KeyType) -> Result<SecretString, IssueFailure>;
    /// The CA's renewal window (ARI) for the leaf of `chain_pem`; `None` when it offers no ARI
    /// or could not tell (renewal then keeps to its own schedule).
    async fn renewal_info(&self, chain_pem: &str) -> Option<RenewalSuggestion>;
    /// Revokes the leaf of `chain_pem`; revoking twice is not an error.
    async fn revoke(&self, chain_pem: &str) -> Result<()>;
}

/// The profiles a CA advertises, by name.
pub type Profiles = BTreeMap<String, String>;

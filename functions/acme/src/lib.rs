//! EdgeCert's issuance engine on [instant-acme](https://docs.rs/instant-acme).
//!
//! [`Issuer`] implements the core's [`Issuance`](edgecert_core::ports::Issuance) port with the
//! five steps of DESIGN.md, and is the one code path for API requests, the edge's first TLS
//! request and renewals:
//!
//! 1. a lease on the certificate's name set, so one ACME order per names runs at a time;
//! 2. pre-flight checks that never reach the CA (hostname rules, plan, zone or DNS pointing,
//!    CAA);
//! 3. a new ACME order, or the stored one resumed after a crash; HTTP-01 answers through the
//!    store for managed certificates, DNS-01 TXT records through the zone's provider for
//!    downloadable ones;
//! 4. the key generated and stored before finalizing, the CSR, the chain downloaded;
//! 5. chain and key stored as a new vault version, then the certificate flipped to `issued`.
//!
//! Every step appends a certificate event. Failures are recorded on the certificate
//! (`last_error`, `next_attempt_at` after the renewal policy's backoff or the CA's
//! `Retry-After`), never half-applied: a served certificate is replaced only once its successor
//! is stored whole.
//!
//! [`testing`] holds fakes (a faulty CA HTTP client, a failing vault, a DNS provider that
//! writes nothing, a crash hook) for tests of this crate and of others.

mod account;
mod ari;
mod ca_outage;
mod caa;
mod challenges;
mod config;
mod error;
mod failure;
mod http;
mod issuer;
mod keys;
mod lease;
mod preflight;
mod steps;
pub mod testing;

pub use config::{IssuerConfig, LETS_ENCRYPT_CAA_IDENTITY};
pub use error::{AcmeError, Result};
pub use http::ca_http_client;
pub use issuer::Issuer;
pub use steps::{Step, StepHook};

/// The instant-acme types that appear in this crate's API (the HTTP client trait for
/// [`Issuer::with_http_client`]), re-exported so callers need no direct dependency.
pub use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

//! EdgeCert's ACME protocol on [instant-acme](https://docs.rs/instant-acme): the CA behind the
//! core's [`CertificateAuthority`](edgecert_core::ports::CertificateAuthority) port.
//!
//! The certificate lifecycle (what is due, pre-flight, leases, the order of durable steps,
//! failures and their backoff, domain transitions) is the core's issue use case
//! ([`edgecert_core::usecases::issuance`]). This crate only speaks ACME, one concern per module:
//!
//! - `account`: the ACME account, registered once per directory and kept in the vault;
//! - `ca`: [`AcmeCa`], the port: orders resumed or placed (with `replaces` and a profile, and
//!   placed again without `replaces` when the CA refuses it), the directory's profiles, ARI,
//!   revocation;
//! - `orders`: one order: validation, the CSR, the chain;
//! - `challenges`: the authorizations, in rounds, answers published through the run;
//! - `ari`: RFC 9773 identifiers and renewal windows;
//! - `keys`: keys, CSRs and the leaf of a chain;
//! - `errors`: the CA's errors as [`IssueFailure`](edgecert_core::model::IssueFailure)s;
//! - `http`: the HTTP client (one TLS stack) and the CA's `Retry-After`.
//!
//! [`Issuer`] assembles the core's engine with this CA from one [`IssuerConfig`].
//! [`testing`] holds fakes (a faulty CA HTTP client that also plays ARI and profiles, a failing
//! vault, a DNS provider that writes nothing, a crash hook) for tests of this crate and others.

mod account;
mod ari;
mod ca;
mod challenges;
mod config;
mod error;
mod errors;
mod http;
mod issuer;
mod keys;
mod orders;
pub mod testing;

pub use ca::AcmeCa;
pub use config::{IssuerConfig, LETS_ENCRYPT_CAA_IDENTITY};
pub use error::{AcmeError, Result};
pub use http::ca_http_client;
pub use issuer::Issuer;

/// The instant-acme types that appear in this crate's API (the HTTP client trait for
/// [`Issuer::with_http_client`]), re-exported so callers need no direct dependency.
pub use instant_acme::{BodyWrapper, BytesResponse, HttpClient};

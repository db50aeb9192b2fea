//! EdgeCert's background workers, each written once and run two ways.
//!
//! - The **issuer** ([`issuer`]) issues certificates someone asked for (status `pending`, or
//!   `validating` after a manual renew): on AWS a Lambda on the table's stream
//!   ([`issuer::handle_stream`]); locally an in-process loop over the due index
//!   ([`issuer::IssuerLoop`]).
//! - The **renewer** ([`renewer`]) runs the core's renewal use case
//!   ([`run_renewals`](edgecert_core::usecases::renewals::run_renewals)): on AWS a Lambda on an
//!   EventBridge schedule ([`renewer::handle_schedule`]); locally a timer
//!   ([`renewer::RenewerTimer`]).
//!
//! Both hand certificates to the same [`Issuance`](edgecert_core::ports::Issuance) (the ACME
//! [`Issuer`](edgecert_acme::Issuer)), whose lease per name set makes duplicated stream records,
//! overlapping schedule events and concurrent runs harmless. [`lambda`] is the shell of the two
//! Lambda functions (run by the one binary of `functions/lambda`).

pub mod config;
pub mod issuer;
pub mod lambda;
pub mod renewer;
mod timer;

pub use config::WorkerConfig;

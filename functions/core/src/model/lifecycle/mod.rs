//! The certificate lifecycle as one state machine: what "due", "servable", a failure and its
//! backoff, and a domain's next step mean, decided here and nowhere else. The issue use case,
//! the renewer, the edge and the API ask these methods; they never re-derive them.
//!
//! A **certificate** (status, and the times that say when the scheduler looks at it):
//!
//! ```text
//!             request_again / renew_now
//!                 |           |
//!  (new) -> pending --order_opened--> validating --issued--> issued --renewal due--> (order again,
//!             ^  |                        |                     |     old material served)
//!             |  +---failed------+--------+                     +--failed (material valid)--> issued + retry
//!             |                  v                              +--past expiry--> expired
//!             +---request_again- failed --past expiry of old material--> expired
//!  any --revoked--> revoked
//! ```
//!
//! - Due ([`Certificate::due_at`], [`Certificate::is_due`]): when the scheduler (the store's due
//!   index) must look at it. A certificate from a CA other than the configured one is due now
//!   ([`Certificate::from_other_ca`]).
//! - Needs issuance ([`Certificate::needs_issuance`]): whether an issuance run has work on it.
//! - Servable ([`Certificate::servable`]): what the edge serves, and what a download returns:
//!   the current material until it expires, whatever a renewal in flight or a failed one does.
//! - A failure ([`IssueFailure`]) and its backoff ([`Certificate::record_failure`], after the
//!   [`RenewalPolicy`](crate::RenewalPolicy)).
//!
//! A **domain**'s provisioning steps:
//!
//! ```text
//! waiting_ownership --TXT found--> waiting_dns --points at the edge--> issuing --issued--> active
//!                                   |   ^  |                             |
//!                                   |   |  +-- waited dns_wait --> stale  +--failed--> failed
//!                                   |   +--nudge / traffic at the edge--+
//!                                   +-- (active, DNS left the edge: waiting_dns, certificate kept)
//! ```
//!
//! Each transition is a method on [`Domain`](crate::model::Domain) in [`domain`].

mod certificate;
mod domain;
mod failure;

pub use certificate::{IssuedMaterial, Servable};
pub use domain::DnsCheck;
pub use failure::{IssueFailure, IssueStop};

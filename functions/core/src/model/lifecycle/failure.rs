//! Why an issuance run stopped, in the words recorded on the certificate.
//!
//! An [`IssueFailure`] carries a sentence for `last_error` and the event log (what a customer
//! can act on; never internal addresses or secrets, which go to the logs only), the ACME problem
//! type, the CA's `Retry-After`, and whether retrying within the same run can help. The CA's
//! adapter builds them from its protocol's errors; the lifecycle records them
//! ([`Certificate::record_failure`](crate::model::Certificate::record_failure)).

use std::time::Duration;

use crate::error::Error;

/// A stopped run, as recorded on the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IssueFailure {
    /// The step that failed (`preflight`, `order`, `challenge`, `key`, `finalize`, `stored`...).
    pub step: &'static str,
    /// Readable sentence for `last_error` and the event.
    pub message: String,
    /// ACME problem type when the CA gave one.
    pub problem: Option<String>,
    /// How long the CA asked us to wait.
    pub retry_after: Option<Duration>,
    /// Whether another attempt in the same run may succeed.
    pub transient: bool,
    /// Whether the stored order can never complete (a new one is needed next time).
    pub order_dead: bool,
    /// Whether the CA never answered (refused, reset, timed out): retrying at once only waits
    /// for the same timeout again.
    pub ca_unreachable: bool,
}

impl IssueFailure {
    /// A failure that is nobody's infrastructure hiccup: a rule, a refusal, a bad answer.
    pub fn new(step: &'static str, message: impl Into<String>) -> IssueFailure {
        IssueFailure {
            step,
            message: message.into(),
            problem: None,
            retry_after: None,
            transient: false,
            order_dead: false,
            ca_unreachable: false,
        }
    }

    /// The CA is known to be unreachable for `wait` more: recorded without asking it.
    pub fn ca_cooling_down(wait: Duration) -> IssueFailure {
        IssueFailure {
            retry_after: Some(wait),
            ca_unreachable: true,
            ..IssueFailure::new(
                "order",
                "The certificate authority could not be reached; it will be asked again",
            )
        }
    }

    /// Marks the stored order as unusable.
    pub fn with_dead_order(mut self) -> IssueFailure {
        self.order_dead = true;
        self
    }

    /// A failure of our own store, vault or DNS provider while doing `doing`.
    pub fn from_core(step: &'static str, doing: &str, error: &Error) -> IssueFailure {
        tracing::warn!(step, %error, "issuance step failed");
        let what = match error {
            Error::Vault(_) => "the key vault was unavailable".to_owned(),
            Error::Store(_) => "storage was unavailable".to_owned(),
            Error::Dns(_) => "DNS could not be updated or read".to_owned(),
            other => other.public_message(),
        };
        IssueFailure::new(step, format!("{doing}: {what}; it will be retried"))
    }
}

/// How a run ends when it does not issue.
#[derive(Debug)]
pub enum IssueStop {
    /// Record this failure.
    Failed(IssueFailure),
    /// Another owner took the lease over: stop without writing.
    LeaseLost,
    /// The certificate was deleted meanwhile.
    Gone,
}

impl From<IssueFailure> for IssueStop {
    fn from(failure: IssueFailure) -> IssueStop {
        IssueStop::Failed(failure)
    }
}

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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_new_failure_is_nobody_s_hiccup() {
        let failure = IssueFailure::new("finalize", "The CA refused the CSR");
        assert_eq!(failure.step, "finalize");
        assert_eq!(failure.message, "The CA refused the CSR");
        assert_eq!(failure.problem, None);
        assert_eq!(failure.retry_after, None);
        assert!(!failure.transient && !failure.order_dead && !failure.ca_unreachable);
    }

    #[test]
    fn a_ca_cooling_down_is_unreachable_for_the_rest_of_the_wait() {
        let wait = Duration::from_secs(90);
        let failure = IssueFailure::ca_cooling_down(wait);
        assert_eq!(failure.step, "order");
        assert_eq!(failure.retry_after, Some(wait));
        assert!(failure.ca_unreachable && !failure.transient);
        assert_eq!(
            failure.message,
            "The certificate authority could not be reached; it will be asked again"
        );
    }

    #[test]
    fn with_dead_order_marks_the_order_unusable_and_keeps_the_rest() {
        let failure = IssueFailure::new("challenge", "invalid").with_dead_order();
        assert!(failure.order_dead);
        assert_eq!(failure.message, "invalid");
    }

    #[test]
    fn failures_of_our_own_parts_say_what_was_unavailable_and_nothing_internal() {
        let cases = [
            (
                Error::store("connection refused to 10.0.3.7:5432"),
                "storage was unavailable",
            ),
            (
                Error::vault("kms key arn:aws:kms:secret"),
                "the key vault was unavailable",
            ),
            (
                Error::dns("resolver 10.0.0.2 timed out"),
                "DNS could not be updated or read",
            ),
        ];
        for (error, what) in cases {
            let failure = IssueFailure::from_core("stored", "Storing the certificate", &error);
            assert_eq!(
                failure.message,
                format!("Storing the certificate: {what}; it will be retried")
            );
            assert!(!failure.message.contains("10.0."), "{}", failure.message);
            assert!(!failure.message.contains("arn:"), "{}", failure.message);
            assert_eq!(failure.step, "stored");
        }
    }

    #[test]
    fn a_failure_stops_the_run_as_failed() {
        let stop = IssueStop::from(IssueFailure::new("order", "refused"));
        assert!(matches!(stop, IssueStop::Failed(failure) if failure.message == "refused"));
    }
}

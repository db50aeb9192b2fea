//! Why an issuance run stopped, in the words recorded on the certificate.
//!
//! A [`Failure`] carries a sentence for `last_error` and the event log (what a customer can act
//! on; never internal addresses or secrets, which go to the logs only), the ACME problem type,
//! the CA's `Retry-After`, and whether retrying within the same run can help.

use std::time::Duration;

use edgecert_core::Error;
use instant_acme::Problem;

use crate::account::AccountFailure;
use crate::error::AcmeError;
use crate::http;

/// Problem types that a retry of the same request may clear.
const TRANSIENT_PROBLEMS: &[&str] = &["badNonce", "serverInternal"];

/// A stopped run, as recorded on the certificate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Failure {
    /// The step that failed (`preflight`, `order`, `challenge`, `key`, `finalize`, `stored`...).
    pub(crate) step: &'static str,
    /// Readable sentence for `last_error` and the event.
    pub(crate) message: String,
    /// ACME problem type when the CA gave one.
    pub(crate) problem: Option<String>,
    /// How long the CA asked us to wait.
    pub(crate) retry_after: Option<Duration>,
    /// Whether another attempt in the same run may succeed.
    pub(crate) transient: bool,
    /// Whether the stored order can never complete (a new one is needed next time).
    pub(crate) order_dead: bool,
    /// Whether the CA never answered (refused, reset, timed out): retrying at once only waits
    /// for the same timeout again.
    pub(crate) ca_unreachable: bool,
}

impl Failure {
    /// A failure that is nobody's infrastructure hiccup: a rule, a refusal, a bad answer.
    pub(crate) fn new(step: &'static str, message: impl Into<String>) -> Failure {
        Failure {
            step,
            message: message.into(),
            problem: None,
            retry_after: None,
            transient: false,
            order_dead: false,
            ca_unreachable: false,
        }
    }

    /// The CA is known to be unreachable until `until` (see [`CaOutage`](crate::ca_outage)):
    /// recorded without asking it.
    pub(crate) fn ca_cooling_down(wait: Duration) -> Failure {
        Failure {
            retry_after: Some(wait),
            ca_unreachable: true,
            ..Failure::new(
                "order",
                "The certificate authority could not be reached; it will be asked again",
            )
        }
    }

    /// Marks the stored order as unusable.
    pub(crate) fn with_dead_order(mut self) -> Failure {
        self.order_dead = true;
        self
    }

    /// A failed CA exchange: `doing` says what we asked, e.g. "Creating the order".
    pub(crate) fn from_acme(
        step: &'static str,
        doing: &str,
        error: instant_acme::Error,
    ) -> Failure {
        let retry_after = http::take_retry_after();
        match error {
            instant_acme::Error::Api(problem) => {
                Failure::from_problem(step, doing, &problem, retry_after)
            }
            instant_acme::Error::Timeout(_) => Failure {
                step,
                message: format!(
                    "{doing}: the certificate authority did not finish in time; \
                     it will be asked again"
                ),
                problem: None,
                retry_after,
                transient: false,
                order_dead: false,
                ca_unreachable: false,
            },
            // Our HTTP client reports transport failures (resets, timeouts, TLS) as `Other`:
            // the next attempt resumes the stored order.
            instant_acme::Error::Other(error) => {
                tracing::warn!(step, %error, "ACME request failed");
                // Refused or unanswered: asking again at once would wait as long again. A
                // connection lost mid-answer is worth another attempt in the same run.
                let unreachable = error.downcast_ref::<http::CaUnreachable>().is_some();
                Failure {
                    step,
                    message: format!("{doing}: the certificate authority could not be reached"),
                    problem: None,
                    retry_after,
                    transient: !unreachable && retry_after.is_none(),
                    order_dead: false,
                    ca_unreachable: unreachable,
                }
            }
            other => {
                tracing::warn!(step, error = %other, "unexpected answer from the ACME CA");
                Failure {
                    step,
                    message: format!(
                        "{doing}: the certificate authority gave an unexpected answer"
                    ),
                    problem: None,
                    retry_after,
                    transient: false,
                    order_dead: false,
                    ca_unreachable: false,
                }
            }
        }
    }

    /// A problem document from the CA, about the request or about a challenge.
    pub(crate) fn from_problem(
        step: &'static str,
        doing: &str,
        problem: &Problem,
        retry_after: Option<Duration>,
    ) -> Failure {
        let short_type = problem
            .r#type
            .as_deref()
            .and_then(|kind| kind.strip_prefix("urn:ietf:params:acme:error:"));
        let server_side = problem.status.is_some_and(|status| status >= 500);
        let transient = retry_after.is_none()
            && (server_side || short_type.is_some_and(|kind| TRANSIENT_PROBLEMS.contains(&kind)));
        let detail = problem
            .detail
            .as_deref()
            .map(str::trim)
            .filter(|detail| !detail.is_empty())
            .unwrap_or("no detail given");
        let message = match short_type {
            Some("rateLimited") => {
                format!("{doing}: the certificate authority rate-limited the request ({detail})")
            }
            _ => format!("{doing}: {detail}"),
        };
        Failure {
            step,
            message,
            problem: problem.r#type.clone(),
            retry_after,
            transient,
            order_dead: false,
            ca_unreachable: false,
        }
    }

    /// A failure of our own store, vault or DNS provider while doing `doing`.
    pub(crate) fn from_core(step: &'static str, doing: &str, error: &Error) -> Failure {
        tracing::warn!(step, %error, "issuance step failed");
        let what = match error {
            Error::Vault(_) => "the key vault was unavailable".to_owned(),
            Error::Store(_) => "storage was unavailable".to_owned(),
            Error::Dns(_) => "DNS could not be updated or read".to_owned(),
            other => other.public_message(),
        };
        Failure::new(step, format!("{doing}: {what}; it will be retried"))
    }

    /// A local failure of key handling or certificate parsing.
    pub(crate) fn from_local(step: &'static str, doing: &str, error: &AcmeError) -> Failure {
        tracing::warn!(step, %error, "issuance step failed");
        Failure::new(step, format!("{doing}: {error}"))
    }

    /// The ACME account could not be loaded or registered.
    pub(crate) fn from_account(failure: AccountFailure) -> Failure {
        let doing = "Loading the ACME account";
        match failure {
            AccountFailure::Vault(error) => Failure::from_core("account", doing, &error),
            AccountFailure::Acme(AcmeError::Protocol(error)) => {
                Failure::from_acme("account", doing, error)
            }
            AccountFailure::Acme(other) => Failure::from_local("account", doing, &other),
        }
    }
}

/// How a run ends when it does not issue.
#[derive(Debug)]
pub(crate) enum Stop {
    /// Record this failure.
    Failed(Failure),
    /// Another owner took the lease over: stop without writing.
    LeaseLost,
    /// The certificate was deleted meanwhile.
    Gone,
}

impl From<Failure> for Stop {
    fn from(failure: Failure) -> Stop {
        Stop::Failed(failure)
    }
}

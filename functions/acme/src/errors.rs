//! CA failures in the words recorded on the certificate: instant-acme's errors (problem
//! documents, transport failures, timeouts) as [`IssueFailure`]s.
//!
//! A failure carries a sentence for `last_error` and the event log (what a customer can act
//! on; never internal addresses or secrets, which go to the logs only), the ACME problem type,
//! the CA's `Retry-After`, and whether retrying within the same run can help.

use std::time::Duration;

use edgecert_core::model::IssueFailure;
use instant_acme::Problem;

use crate::account::AccountFailure;
use crate::error::AcmeError;
use crate::http;

/// Problem types that a retry of the same request may clear.
const TRANSIENT_PROBLEMS: &[&str] = &["badNonce", "serverInternal"];

/// A failed CA exchange: `doing` says what we asked, e.g. "Creating the order".
pub(crate) fn from_acme(
    step: &'static str,
    doing: &str,
    error: instant_acme::Error,
) -> IssueFailure {
    let retry_after = http::take_retry_after();
    match error {
        instant_acme::Error::Api(problem) => from_problem(step, doing, &problem, retry_after),
        instant_acme::Error::Timeout(_) => IssueFailure {
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
            IssueFailure {
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
            IssueFailure {
                step,
                message: format!("{doing}: the certificate authority gave an unexpected answer"),
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
) -> IssueFailure {
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
    IssueFailure {
        step,
        message,
        problem: problem.r#type.clone(),
        retry_after,
        transient,
        order_dead: false,
        ca_unreachable: false,
    }
}

/// A local failure of key handling or certificate parsing.
pub(crate) fn from_local(step: &'static str, doing: &str, error: &AcmeError) -> IssueFailure {
    tracing::warn!(step, %error, "issuance step failed");
    IssueFailure::new(step, format!("{doing}: {error}"))
}

/// The ACME account could not be loaded or registered.
pub(crate) fn from_account(failure: AccountFailure) -> IssueFailure {
    let doing = "Loading the ACME account";
    match failure {
        AccountFailure::Vault(error) => IssueFailure::from_core("account", doing, &error),
        AccountFailure::Acme(AcmeError::Protocol(error)) => from_acme("account", doing, error),
        AccountFailure::Acme(other) => from_local("account", doing, &other),
    }
}

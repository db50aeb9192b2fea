//! The one error type of EdgeCert. Every HTTP surface maps it to a response through
//! [`Error::status`], [`Error::code`] and [`Error::public_message`], and nowhere else.

use std::fmt;

use time::OffsetDateTime;

/// What kind of item a [`Error::NotFound`] is about; it chooses the client-facing message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ItemKind {
    /// An account.
    Account,
    /// A whitelisted domain.
    Domain,
    /// A DNS zone.
    Zone,
    /// A certificate.
    Certificate,
    /// Stored certificate material (chain and key) in the vault.
    CertificateMaterial,
}

impl fmt::Display for ItemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ItemKind::Account => "account",
            ItemKind::Domain => "domain",
            ItemKind::Zone => "zone",
            ItemKind::Certificate => "certificate",
            ItemKind::CertificateMaterial => "certificate material",
        })
    }
}

/// Boxed source of an infrastructure failure (store, vault, CA, DNS).
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// Everything that can go wrong in EdgeCert, as seen by its users.
///
/// Variants that are the client's fault carry a message safe to show; infrastructure failures
/// carry their source for the logs but show clients only a generic sentence.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The hostname breaks a rule (length, characters, IP literal, public suffix, wildcard...).
    #[error("invalid hostname: {0}")]
    InvalidHostname(String),
    /// The origin URL is malformed or points at an address the edge refuses to reach.
    #[error("invalid origin: {0}")]
    InvalidOrigin(String),
    /// A request body or parameter is malformed; `code` is a snake_case code for clients.
    #[error("{message}")]
    BadRequest {
        /// Machine-readable code, e.g. `invalid_json` or `unknown_field`.
        code: &'static str,
        /// Human sentence for the client.
        message: String,
    },
    /// The request body is larger than the API accepts.
    #[error("request body is larger than {limit} bytes")]
    PayloadTooLarge {
        /// The limit in bytes.
        limit: usize,
    },
    /// No credentials, or credentials that match no account.
    #[error("missing or invalid API key")]
    Unauthorized,
    /// The item does not exist or belongs to another account (never distinguished).
    #[error("{0} not found")]
    NotFound(ItemKind),
    /// The hostname is already whitelisted, by this or any other account.
    #[error("domain already exists")]
    DomainExists,
    /// The account's plan allows no more domains.
    #[error("domain limit reached for plan")]
    DomainLimitReached,
    /// The certificate's primary domain already has a certificate in this account.
    #[error("Certificate already exists for domain")]
    CertificateExists,
    /// The account's plan allows no more certificates.
    #[error("Certificate limit reached for plan")]
    CertificateLimitReached,
    /// The plan does not include what was asked (certificates, wildcards, auto-renew...).
    #[error("{message}")]
    PlanForbids {
        /// Machine-readable code, e.g. `wildcard_requires_elite`.
        code: &'static str,
        /// The reference's sentence, verbatim.
        message: &'static str,
    },
    /// A name of the certificate is not under the chosen zone.
    #[error("Domain not under zone")]
    DomainNotUnderZone,
    /// The ownership TXT record was not found when checked.
    #[error("ownership TXT record not found at {record}")]
    TxtNotFound {
        /// The record name that was queried.
        record: String,
    },
    /// The certificate has no issued material to download yet.
    #[error("certificate is not issued yet")]
    NotIssued,
    /// The zone name is already imported, by this or any other account: a zone name belongs to
    /// one account at a time.
    #[error("zone already exists")]
    ZoneExists,
    /// The account's zone token was not found in DNS at the zone's token record, so the
    /// account has not proven that the zone's owner lets it use the zone.
    #[error(
        "zone ownership not proven: create the TXT record {record} with the value {value} (this account's zone token), then import the zone again"
    )]
    ZoneTokenNotFound {
        /// The record to create, e.g. `_edgecert-zone.example.com`.
        record: String,
        /// The value it must hold: the account's zone token.
        value: String,
    },
    /// The account may not use the zone through its DNS provider (on Route 53: neither a role
    /// in the account's own AWS account nor an operator's grant). `reason` is built by
    /// EdgeCert and safe to show.
    #[error("zone access denied: {reason}")]
    ZoneAccessDenied {
        /// What is missing, for the client.
        reason: String,
    },
    /// A name of a certificate is whitelisted (as a domain) by another account.
    #[error("the name {name} is whitelisted by another account")]
    NameClaimedByAnotherAccount {
        /// The name, as the certificate would carry it.
        name: String,
    },
    /// A zone could not be verified: the TXT record written through its DNS provider was not
    /// read back from DNS. `reason` is built by EdgeCert and safe to show.
    #[error("zone verification failed: {reason}")]
    ZoneVerificationFailed {
        /// The verification record's name.
        record: String,
        /// What went wrong, for the client.
        reason: String,
    },
    /// This process has no ACME engine (`Services::issuance` is `None`), so it cannot do what
    /// needs the CA (revocation): a deployment fault, not the client's.
    #[error("certificate authority operations are not available in this function")]
    IssuanceUnavailable,
    /// The order budget at the CA holds this certificate back: asking again now cannot hurry
    /// it. Answered 429 with `Retry-After`.
    #[error(
        "the budget of new orders at the certificate authority is spent; retry after {retry_after_seconds} seconds"
    )]
    OrderBudgetSpent {
        /// When a token is next expected, in seconds from now.
        retry_after_seconds: u64,
    },
    /// The ACME profile asked for is not one the CA's directory advertises.
    #[error("{}", unknown_profile_message(profile, offered))]
    UnknownProfile {
        /// The name asked for.
        profile: String,
        /// The names the CA advertises, sorted (empty when it offers no profiles).
        offered: Vec<String>,
    },
    /// An optimistic version check failed: someone else changed the item first.
    #[error("{0} was changed concurrently")]
    VersionConflict(ItemKind),
    /// Another owner holds the lease on this name set until `expires_at`.
    #[error("lease on {name} is held by another owner")]
    LeaseHeld {
        /// The leased name.
        name: String,
    },
    /// Stored material is larger than the vault accepts.
    #[error("material of {size} bytes exceeds the vault limit of {limit} bytes")]
    MaterialTooLarge {
        /// Size that was offered.
        size: usize,
        /// The vault's limit.
        limit: usize,
    },
    /// The store failed (I/O, throttling, corruption); retryable.
    #[error("store unavailable: {0}")]
    Store(#[source] BoxError),
    /// The vault failed; retryable.
    #[error("vault unavailable: {0}")]
    Vault(#[source] BoxError),
    /// DNS could not be queried (resolver down or timing out); retryable.
    #[error("DNS lookup failed: {0}")]
    Dns(#[source] BoxError),
    /// Stored data could not be decoded: a bug or a manual edit.
    #[error("corrupt stored item: {0}")]
    Corrupt(String),
    /// The ACME CA refused or failed a request, or could not be reached.
    #[error("ACME CA error: {message}")]
    Acme {
        /// The problem type (`urn:ietf:params:acme:error:…`) when the CA answered with one;
        /// `None` when it could not be reached.
        problem: Option<String>,
        /// What went wrong, for the logs (clients see [`Error::public_message`]).
        message: String,
    },
}

/// The sentence of [`Error::UnknownProfile`]: what was asked and what may be.
fn unknown_profile_message(profile: &str, offered: &[String]) -> String {
    if offered.is_empty() {
        format!("unknown ACME profile \"{profile}\": the certificate authority offers no profiles")
    } else {
        format!(
            "unknown ACME profile \"{profile}\": the certificate authority offers {}",
            offered.join(", ")
        )
    }
}

/// Result alias used across EdgeCert.
pub type Result<T, E = Error> = std::result::Result<T, E>;

impl Error {
    /// Wraps a store adapter failure.
    pub fn store(source: impl Into<BoxError>) -> Self {
        Error::Store(source.into())
    }

    /// Wraps a DNS resolver failure.
    pub fn dns(source: impl Into<BoxError>) -> Self {
        Error::Dns(source.into())
    }

    /// Wraps a vault adapter failure.
    pub fn vault(source: impl Into<BoxError>) -> Self {
        Error::Vault(source.into())
    }

    /// HTTP status for this error.
    pub fn status(&self) -> u16 {
        match self {
            Error::InvalidHostname(_)
            | Error::InvalidOrigin(_)
            | Error::BadRequest { .. }
            | Error::UnknownProfile { .. }
            | Error::DomainNotUnderZone => 400,
            Error::Unauthorized => 401,
            Error::DomainLimitReached
            | Error::CertificateLimitReached
            | Error::PlanForbids { .. }
            | Error::ZoneAccessDenied { .. } => 403,
            Error::NotFound(_) => 404,
            Error::DomainExists
            | Error::ZoneExists
            | Error::NameClaimedByAnotherAccount { .. }
            | Error::CertificateExists
            | Error::NotIssued
            | Error::VersionConflict(_)
            | Error::LeaseHeld { .. } => 409,
            Error::PayloadTooLarge { .. } => 413,
            Error::OrderBudgetSpent { .. } => 429,
            Error::TxtNotFound { .. }
            | Error::ZoneTokenNotFound { .. }
            | Error::ZoneVerificationFailed { .. } => 422,
            Error::MaterialTooLarge { .. } | Error::Corrupt(_) => 500,
            Error::Store(_) | Error::Vault(_) | Error::Dns(_) | Error::IssuanceUnavailable => 503,
            // The CA asking us to slow down, or not answering, is a temporary unavailability;
            // any other refusal is a bad answer from the upstream we depend on.
            Error::Acme { .. } if self.is_retryable() => 503,
            Error::Acme { .. } => 502,
        }
    }

    /// Stable snake_case code for clients.
    pub fn code(&self) -> &'static str {
        match self {
            Error::InvalidHostname(_) => "invalid_hostname",
            Error::InvalidOrigin(_) => "invalid_origin",
            Error::BadRequest { code, .. } => code,
            Error::PayloadTooLarge { .. } => "payload_too_large",
            Error::Unauthorized => "unauthorized",
            Error::NotFound(ItemKind::Zone) => "zone_not_found",
            Error::NotFound(_) => "not_found",
            Error::DomainExists => "domain_exists",
            Error::DomainLimitReached => "domain_limit_reached",
            Error::CertificateExists => "certificate_exists",
            Error::CertificateLimitReached => "certificate_limit_reached",
            Error::PlanForbids { code, .. } => code,
            Error::DomainNotUnderZone => "domain_not_under_zone",
            Error::TxtNotFound { .. } => "txt_not_found",
            Error::NotIssued => "not_issued",
            Error::ZoneVerificationFailed { .. } => "zone_verification_failed",
            Error::ZoneExists => "zone_exists",
            Error::ZoneTokenNotFound { .. } => "zone_token_not_found",
            Error::ZoneAccessDenied { .. } => "zone_access_denied",
            Error::NameClaimedByAnotherAccount { .. } => "name_claimed_by_another_account",
            Error::IssuanceUnavailable => "issuance_unavailable",
            Error::OrderBudgetSpent { .. } => "order_budget_spent",
            Error::UnknownProfile { .. } => "unknown_profile",
            Error::VersionConflict(_) => "conflict",
            Error::LeaseHeld { .. } => "in_progress",
            Error::MaterialTooLarge { .. } | Error::Corrupt(_) => "internal_error",
            Error::Store(_) | Error::Vault(_) => "service_unavailable",
            Error::Dns(_) => "dns_unavailable",
            Error::Acme { .. } => "acme_error",
        }
    }

    /// The sentence shown to clients: the reference's wording where it has one, and never the
    /// text of an internal failure.
    pub fn public_message(&self) -> String {
        match self {
            Error::NotFound(ItemKind::Zone) => "Zone not found or no permission".to_owned(),
            Error::NotFound(kind) => format!("{} not found", capitalize(&kind.to_string())),
            Error::DomainExists => "Domain already exists".to_owned(),
            Error::ZoneExists => {
                "Zone already exists: a zone belongs to one account at a time".to_owned()
            }
            Error::DomainLimitReached => "Domain limit reached for plan".to_owned(),
            Error::VersionConflict(_) => {
                "The item was changed by another request; retry".to_owned()
            }
            Error::LeaseHeld { .. } => "Another operation on this name is in progress".to_owned(),
            Error::MaterialTooLarge { .. } | Error::Corrupt(_) => "Internal error".to_owned(),
            Error::Store(_) | Error::Vault(_) => {
                "Service temporarily unavailable; retry later".to_owned()
            }
            Error::Dns(_) => "DNS lookup failed; retry later".to_owned(),
            Error::IssuanceUnavailable => {
                "Certificate authority operations are not available; retry later".to_owned()
            }
            Error::Acme { .. } => {
                "The certificate authority could not complete the request; retry later".to_owned()
            }
            other => capitalize(&other.to_string()),
        }
    }

    /// Held back by the order budget until `until`, as seen at `now` (at least a second).
    pub fn order_budget_spent(until: OffsetDateTime, now: OffsetDateTime) -> Self {
        let wait = (until - now).whole_seconds().max(1);
        Error::OrderBudgetSpent {
            retry_after_seconds: u64::try_from(wait).unwrap_or(1),
        }
    }

    /// The `Retry-After` of the answer, in seconds, when the error says when to come back.
    pub fn retry_after_seconds(&self) -> Option<u64> {
        match self {
            Error::OrderBudgetSpent {
                retry_after_seconds,
            } => Some(*retry_after_seconds),
            _ => None,
        }
    }

    /// Whether retrying the same operation later can succeed without any change of input.
    pub fn is_retryable(&self) -> bool {
        match self {
            Error::Store(_)
            | Error::Vault(_)
            | Error::Dns(_)
            | Error::VersionConflict(_)
            | Error::LeaseHeld { .. }
            | Error::OrderBudgetSpent { .. } => true,
            Error::Acme { problem, .. } => is_transient_acme_problem(problem.as_deref()),
            _ => false,
        }
    }
}

/// ACME problems that go away by themselves: rate limits, CA-side failures, nonce races, and
/// no answer at all (`None`).
fn is_transient_acme_problem(problem: Option<&str>) -> bool {
    match problem {
        None => true,
        Some(problem) => matches!(
            problem.strip_prefix("urn:ietf:params:acme:error:"),
            Some("rateLimited" | "serverInternal" | "badNonce")
        ),
    }
}

fn capitalize(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_messages_are_verbatim() {
        assert_eq!(
            Error::NotFound(ItemKind::Zone).public_message(),
            "Zone not found or no permission"
        );
        assert_eq!(Error::NotFound(ItemKind::Zone).status(), 404);
        assert_eq!(
            Error::CertificateExists.public_message(),
            "Certificate already exists for domain"
        );
        assert_eq!(Error::CertificateExists.status(), 409);
        assert_eq!(
            Error::DomainNotUnderZone.public_message(),
            "Domain not under zone"
        );
        assert_eq!(Error::DomainNotUnderZone.status(), 400);
        assert_eq!(
            Error::CertificateLimitReached.public_message(),
            "Certificate limit reached for plan"
        );
        assert_eq!(Error::CertificateLimitReached.status(), 403);
    }

    #[test]
    fn acme_errors_hide_the_ca_text_and_say_whether_to_retry() {
        let limited = Error::Acme {
            problem: Some("urn:ietf:params:acme:error:rateLimited".to_owned()),
            message: "too many certificates for example.com".to_owned(),
        };
        assert_eq!((limited.status(), limited.code()), (503, "acme_error"));
        assert!(limited.is_retryable());
        assert!(!limited.public_message().contains("example.com"));
        let refused = Error::Acme {
            problem: Some("urn:ietf:params:acme:error:rejectedIdentifier".to_owned()),
            message: "policy forbids".to_owned(),
        };
        assert_eq!(refused.status(), 502);
        assert!(!refused.is_retryable());
    }

    #[test]
    fn a_spent_order_budget_is_429_with_the_seconds_to_wait() {
        let now = time::macros::datetime!(2026-12-02 06:00 UTC);
        let spent = Error::order_budget_spent(now + time::Duration::seconds(90), now);
        assert_eq!((spent.status(), spent.code()), (429, "order_budget_spent"));
        assert_eq!(spent.retry_after_seconds(), Some(90));
        assert!(spent.public_message().ends_with("retry after 90 seconds"));
        // Never less than a second, even when the time has just passed.
        assert_eq!(
            Error::order_budget_spent(now, now).retry_after_seconds(),
            Some(1)
        );
        assert_eq!(Error::DomainExists.retry_after_seconds(), None);
    }

    #[test]
    fn zone_and_issuance_errors_have_their_status_and_code() {
        let failed = Error::ZoneVerificationFailed {
            record: "_edgecert-zone-verify.example.com".to_owned(),
            reason: "the record was not found in DNS".to_owned(),
        };
        assert_eq!(
            (failed.status(), failed.code()),
            (422, "zone_verification_failed")
        );
        assert_eq!(
            failed.public_message(),
            "Zone verification failed: the record was not found in DNS"
        );
        let token = Error::ZoneTokenNotFound {
            record: "_edgecert-zone.example.com".to_owned(),
            value: "edgecert-zone-0123".to_owned(),
        };
        assert_eq!(
            (token.status(), token.code()),
            (422, "zone_token_not_found")
        );
        let message = token.public_message();
        assert!(
            message.contains(
                "TXT record _edgecert-zone.example.com with the value edgecert-zone-0123"
            ),
            "{message}"
        );
        assert_eq!(
            (Error::ZoneExists.status(), Error::ZoneExists.code()),
            (409, "zone_exists")
        );
        let denied = Error::ZoneAccessDenied {
            reason: "no role".to_owned(),
        };
        assert_eq!(
            (denied.status(), denied.code()),
            (403, "zone_access_denied")
        );
        let claimed = Error::NameClaimedByAnotherAccount {
            name: "shop.example.com".to_owned(),
        };
        assert_eq!(
            (claimed.status(), claimed.code()),
            (409, "name_claimed_by_another_account")
        );
        assert_eq!(
            claimed.public_message(),
            "The name shop.example.com is whitelisted by another account"
        );
        let unavailable = Error::IssuanceUnavailable;
        assert_eq!(
            (unavailable.status(), unavailable.code()),
            (503, "issuance_unavailable")
        );
    }

    #[test]
    fn internal_failures_never_show_their_text() {
        let error = Error::store(std::io::Error::other(
            "dynamodb table edgecert-prod at 10.1.2.3",
        ));
        assert_eq!(error.status(), 503);
        assert!(!error.public_message().contains("10.1.2.3"));
        assert!(error.is_retryable());
    }
}

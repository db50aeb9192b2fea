//! How an [`Issuer`](crate::Issuer) talks to its CA and paces its work.

use std::path::PathBuf;
use std::time::Duration;

use edgecert_core::RenewalPolicy;
use edgecert_core::usecases::issuance::{IssuanceSettings, OrderBudget};

/// The CA identity Let's Encrypt recognises in CAA `issue` records.
pub const LETS_ENCRYPT_CAA_IDENTITY: &str = "letsencrypt.org";

/// Configuration of an [`Issuer`](crate::Issuer), read once at start.
///
/// `IssuerConfig::new(directory_url)` gives production-minded defaults; tests shorten the
/// polling delays.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct IssuerConfig {
    /// The ACME directory, e.g. `https://acme-v02.api.letsencrypt.org/directory`. One ACME
    /// account is created per directory URL and kept in the vault.
    pub directory_url: String,
    /// PEM file of the root that signs the CA's HTTPS listener (Pebble's). `None`: the
    /// system's trusted roots.
    pub ca_root_pem: Option<PathBuf>,
    /// Contact e-mail registered with the ACME account (expiry notices, CA incidents).
    pub contact_email: Option<String>,
    /// Identities of the CA in CAA records (`issue "letsencrypt.org"`); a name whose closest
    /// CAA record set names none of them is refused before any order.
    pub caa_identities: Vec<String>,
    /// How long the lease on a name set lasts without renewal; also when an interrupted
    /// issuance becomes due again.
    pub lease_ttl: time::Duration,
    /// How long an HTTP-01 answer stays in the store.
    pub http01_ttl: time::Duration,
    /// First delay when polling an authorization, order or certificate; doubles each time.
    pub poll_initial_delay: Duration,
    /// Longest wait for the CA to validate or to issue, per poll.
    pub poll_timeout: Duration,
    /// Deadline of one HTTP request to the CA.
    pub request_timeout: Duration,
    /// Attempts within one run when the CA fails transiently (connection reset, 5xx, a nonce
    /// rejected more often than instant-acme retries); the run resumes its stored order.
    pub attempts_per_run: u32,
    /// Pause before the second attempt of a run; grows linearly.
    pub attempt_pause: Duration,
    /// How long runs fail at once, without a request, after the CA could not be reached
    /// (doubling while it stays unreachable, up to `ca_cool_down_max`).
    pub ca_cool_down: time::Duration,
    /// The longest cool-down: how late, at worst, a CA that is back is asked again.
    pub ca_cool_down_max: time::Duration,
    /// The budgets of new orders, shared with every process ordering from this CA account;
    /// `None`: Let's Encrypt's limits ([`OrderBudget::default_for`]).
    pub order_budget: Option<OrderBudget>,
    /// Renewal time and retry backoff.
    pub renewal_policy: RenewalPolicy,
}

impl IssuerConfig {
    /// Defaults for `directory_url`: system roots, no contact, CAA identity `letsencrypt.org`,
    /// 5-minute leases, 1-hour HTTP-01 answers, polling from 50 ms (doubling) for up to 90 s.
    pub fn new(directory_url: impl Into<String>) -> IssuerConfig {
        IssuerConfig {
            directory_url: directory_url.into(),
            ca_root_pem: None,
            contact_email: None,
            caa_identities: vec![LETS_ENCRYPT_CAA_IDENTITY.to_owned()],
            lease_ttl: time::Duration::minutes(5),
            http01_ttl: time::Duration::hours(1),
            // A first request waits on this: a CA that validates in milliseconds (Pebble, or Let's
            // Encrypt's cached authorizations) is seen at once, a slow one after a few doublings.
            poll_initial_delay: Duration::from_millis(50),
            poll_timeout: Duration::from_secs(90),
            request_timeout: Duration::from_secs(30),
            attempts_per_run: 3,
            attempt_pause: Duration::from_millis(500),
            ca_cool_down: time::Duration::seconds(30),
            ca_cool_down_max: time::Duration::minutes(5),
            order_budget: None,
            renewal_policy: RenewalPolicy::default(),
        }
    }

    /// What the core's issue use case takes from this configuration (the rest is the CA
    /// client's).
    pub fn issuance_settings(&self) -> IssuanceSettings {
        IssuanceSettings {
            caa_identities: self.caa_identities.clone(),
            lease_ttl: self.lease_ttl,
            http01_ttl: self.http01_ttl,
            attempts_per_run: self.attempts_per_run,
            attempt_pause: self.attempt_pause,
            ca_cool_down: self.ca_cool_down,
            ca_cool_down_max: self.ca_cool_down_max,
            order_budget: self
                .order_budget
                .clone()
                .unwrap_or_else(|| OrderBudget::default_for(&self.directory_url)),
            renewal_policy: self.renewal_policy.clone(),
        }
    }

    /// Trusts `path` (PEM) for the CA's HTTPS listener instead of the system roots.
    pub fn with_ca_root_pem(mut self, path: impl Into<PathBuf>) -> IssuerConfig {
        self.ca_root_pem = Some(path.into());
        self
    }

    /// Registers `email` as the ACME account's contact.
    pub fn with_contact_email(mut self, email: impl Into<String>) -> IssuerConfig {
        self.contact_email = Some(email.into());
        self
    }

    /// Draws new orders from `budget` instead of Let's Encrypt's default limits.
    pub fn with_order_budget(mut self, budget: OrderBudget) -> IssuerConfig {
        self.order_budget = Some(budget);
        self
    }

    /// Replaces the CA identities accepted in CAA records.
    pub fn with_caa_identities<I, S>(mut self, identities: I) -> IssuerConfig
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        self.caa_identities = identities.into_iter().map(Into::into).collect();
        self
    }

    /// Sets the first polling delay (tests against Pebble use a few milliseconds).
    pub fn with_poll_initial_delay(mut self, delay: Duration) -> IssuerConfig {
        self.poll_initial_delay = delay;
        self
    }
}

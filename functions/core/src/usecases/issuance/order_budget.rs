//! [`OrderBudget`]: the new orders this installation may place at its CA account, drawn by
//! every path that orders (the edge's first requests, the issuer worker for the API, the
//! renewer) in every process, from token buckets kept in the store
//! ([`TokenBucketStore`](crate::ports::TokenBucketStore)).
//!
//! Two budgets, Let's Encrypt's limits by default:
//! - per ACME account: 300 new orders per 3 hours;
//! - per registered domain (by the public suffix list): 50 new certificates per week, because
//!   many customer hostnames can share one registered domain. Renewals (the same names again)
//!   do not draw from it, as at Let's Encrypt.
//!
//! A run that is about to place a new order takes its tokens first; a run resuming a stored
//! order takes none. Refused, it records why and when a token is next expected, without asking
//! the CA, and without counting as one more failure of the certificate. A process that saw the
//! account's budget spent refuses without asking the store again until that time, so a burst of
//! first requests costs one bucket write each, not more.

use std::collections::BTreeSet;
use std::sync::{Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

use crate::error::Result;
use crate::model::{BucketLevel, BucketLimits, Certificate, TokenBucket};
use crate::ports::TokenBucketStore;

/// The budgets of new ACME orders, as token buckets shared by every process.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OrderBudget {
    /// Name of the account's bucket in the store; one per CA account (it includes the directory
    /// URL). The registered domains' buckets are named after it.
    pub bucket: String,
    /// The account's budget: size and refill rate.
    pub limits: BucketLimits,
    /// Each registered domain's budget of new (not renewed) certificates.
    pub per_registered_domain: BucketLimits,
}

impl OrderBudget {
    /// Orders per [`OrderBudget::DEFAULT_PERIOD`] by default: Let's Encrypt's limit of new
    /// orders per account.
    pub const DEFAULT_ORDERS: u32 = 300;
    /// The period of [`OrderBudget::DEFAULT_ORDERS`].
    pub const DEFAULT_PERIOD: Duration = Duration::hours(3);
    /// New certificates per registered domain per [`OrderBudget::REGISTERED_DOMAIN_PERIOD`]:
    /// Let's Encrypt's limit of certificates per registered domain.
    pub const DEFAULT_PER_REGISTERED_DOMAIN: u32 = 50;
    /// The period of [`OrderBudget::DEFAULT_PER_REGISTERED_DOMAIN`].
    pub const REGISTERED_DOMAIN_PERIOD: Duration = Duration::weeks(1);

    /// `orders` per `period` for the CA account at `directory_url`, and the default budget per
    /// registered domain.
    pub fn new(directory_url: &str, orders: u32, period: Duration) -> OrderBudget {
        OrderBudget {
            bucket: format!("acme-orders:{directory_url}"),
            limits: BucketLimits::per_period(orders, period),
            per_registered_domain: BucketLimits::per_period(
                OrderBudget::DEFAULT_PER_REGISTERED_DOMAIN,
                OrderBudget::REGISTERED_DOMAIN_PERIOD,
            ),
        }
    }

    /// The default budgets (300 orders per 3 hours, 50 per registered domain per week) for the
    /// CA account at `directory_url`.
    pub fn default_for(directory_url: &str) -> OrderBudget {
        OrderBudget::new(
            directory_url,
            OrderBudget::DEFAULT_ORDERS,
            OrderBudget::DEFAULT_PERIOD,
        )
    }

    /// The same account budget with `certificates` per `period` for each registered domain.
    pub fn with_per_registered_domain(mut self, certificates: u32, period: Duration) -> Self {
        self.per_registered_domain = BucketLimits::per_period(certificates, period);
        self
    }

    /// What the account's budget holds at `now`, read without taking anything (`/metrics`).
    pub async fn account_level(
        &self,
        store: &dyn TokenBucketStore,
        now: OffsetDateTime,
    ) -> Result<BucketLevel> {
        let stored = store.read_token_bucket(&self.bucket).await?;
        let bucket = stored.unwrap_or_else(|| TokenBucket::full(&self.limits, now));
        Ok(bucket.level(&self.limits, now))
    }

    /// The bucket of `registered_domain`.
    fn registered_domain_bucket(&self, registered_domain: &str) -> String {
        format!("{}:domain:{registered_domain}", self.bucket)
    }
}

/// A refusal: the sentence recorded on the certificate (and its domain), and when a token is
/// next expected.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Spent {
    pub(crate) reason: String,
    pub(crate) retry_at: OffsetDateTime,
}

/// One process's view of the budget: the buckets are the truth; this only remembers that the
/// account's was found spent, and until when.
#[derive(Debug)]
pub(crate) struct OrderBudgetGate {
    budget: OrderBudget,
    account_spent_until: Mutex<Option<OffsetDateTime>>,
}

impl OrderBudgetGate {
    pub(crate) fn new(budget: OrderBudget) -> OrderBudgetGate {
        OrderBudgetGate {
            budget,
            account_spent_until: Mutex::new(None),
        }
    }

    /// The refusal this process already knows of, without asking the store: the account's
    /// budget was found spent a moment ago.
    pub(crate) fn known_spent(&self, now: OffsetDateTime) -> Option<Spent> {
        let until = (*self.lock()).filter(|until| *until > now)?;
        Some(self.account_spent(until))
    }

    /// Takes the tokens a new order of `certificate` needs: one from each of its registered
    /// domains' buckets (not for a renewal), then one from the account's. `None` when granted.
    ///
    /// The registered domains go first: a token they grant is lost when the account's is then
    /// refused, which only errs on the safe side of a per-week limit, while the account's
    /// tokens are the scarce ones every customer shares.
    pub(crate) async fn take(
        &self,
        store: &dyn TokenBucketStore,
        certificate: &Certificate,
        now: OffsetDateTime,
    ) -> Result<Option<Spent>> {
        if let Some(spent) = self.known_spent(now) {
            return Ok(Some(spent));
        }
        if !certificate.is_renewal() {
            let limits = &self.budget.per_registered_domain;
            for domain in registered_domains(certificate) {
                let bucket = self.budget.registered_domain_bucket(&domain);
                if store.take_tokens(&bucket, 1, limits, now).await? == 0 {
                    return Ok(Some(Spent {
                        reason: format!(
                            "The budget of new certificates for {domain} at the certificate \
                             authority is spent ({}); the order waits until it refills",
                            per_period(limits)
                        ),
                        retry_at: now + limits.refill_every,
                    }));
                }
            }
        }
        let limits = &self.budget.limits;
        if store
            .take_tokens(&self.budget.bucket, 1, limits, now)
            .await?
            == 0
        {
            let until = now + limits.refill_every;
            *self.lock() = Some(until);
            return Ok(Some(self.account_spent(until)));
        }
        Ok(None)
    }

    fn account_spent(&self, until: OffsetDateTime) -> Spent {
        Spent {
            reason: format!(
                "The budget of new orders at the certificate authority is spent ({}); the order \
                 waits until it refills",
                per_period(&self.budget.limits)
            ),
            retry_at: until,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<OffsetDateTime>> {
        self.account_spent_until
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }
}

/// The registered domains of a certificate's names (`*.shop.example.co.uk` counts against
/// `example.co.uk`), each once; a name under no public suffix counts as itself.
fn registered_domains(certificate: &Certificate) -> BTreeSet<String> {
    certificate
        .names()
        .map(|name| {
            let base = name.base();
            psl::domain_str(base).unwrap_or(base).to_owned()
        })
        .collect()
}

/// `limits` in words: "300 per 3 hours", "50 per week".
fn per_period(limits: &BucketLimits) -> String {
    // A budget of none keeps its period as the refill time.
    let period = match limits.capacity {
        0 => limits.refill_every,
        tokens => limits.refill_every * tokens,
    };
    let (count, unit) = if period.whole_weeks() >= 1
        && period == Duration::weeks(period.whole_weeks())
    {
        (period.whole_weeks(), "week")
    } else if period.whole_days() >= 1 && period == Duration::days(period.whole_days()) {
        (period.whole_days(), "day")
    } else if period.whole_hours() >= 1 && period == Duration::hours(period.whole_hours()) {
        (period.whole_hours(), "hour")
    } else if period.whole_minutes() >= 1 && period == Duration::minutes(period.whole_minutes()) {
        (period.whole_minutes(), "minute")
    } else {
        (period.whole_seconds(), "second")
    };
    match count {
        1 => format!("{} per {unit}", limits.capacity),
        _ => format!("{} per {count} {unit}s", limits.capacity),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_budgets_are_lets_encrypts_limits() {
        let budget = OrderBudget::default_for("https://acme.example/dir");
        assert_eq!(budget.limits.capacity, 300);
        assert_eq!(budget.limits.refill_every, Duration::seconds(36));
        assert_eq!(budget.per_registered_domain.capacity, 50);
        assert_eq!(budget.bucket, "acme-orders:https://acme.example/dir");
        assert_eq!(
            budget.registered_domain_bucket("example.co.uk"),
            "acme-orders:https://acme.example/dir:domain:example.co.uk"
        );
        assert_eq!(per_period(&budget.limits), "300 per 3 hours");
        assert_eq!(per_period(&budget.per_registered_domain), "50 per week");
        assert_eq!(
            per_period(&BucketLimits::per_period(10, Duration::hours(1))),
            "10 per hour"
        );
    }
}

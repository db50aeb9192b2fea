//! When to renew and when to retry.
//!
//! Renewal time is the CA's ARI window (RFC 9773) when it offers one, at a random point inside
//! it so a fleet does not renew in lock step; otherwise when a third of the lifetime remains
//! (half, for lifetimes under 10 days). For a 90-day certificate that is exactly 30 days before
//! expiry (the reference's promise), and it stays right for 45-day and 6-day certificates where
//! "expiry minus 30 days" would already be past. Whatever ARI says, a certificate is renewed
//! once a twentieth of its lifetime remains (the emergency point): a CA's window can move, or be
//! wrong, and letting a certificate expire is the one outcome renewal exists to prevent.
//!
//! Failures back off 1 min, 10 min, 100 min, then daily, but never further than a tenth of the
//! remaining lifetime so a failing certificate is retried several times before it expires. A
//! CA's `Retry-After` always wins: no attempt is made before it. ARI's own `Retry-After` (how
//! long before its window may be asked again) is clamped to between one minute and one day, as
//! RFC 9773 advises: a CA cannot make us poll every second, nor stop us looking for a day.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// A suggested renewal window from the CA's ARI `renewalInfo` resource.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RenewalWindow {
    /// Earliest suggested renewal time.
    #[serde(with = "time::serde::rfc3339")]
    pub start: OffsetDateTime,
    /// Latest suggested renewal time.
    #[serde(with = "time::serde::rfc3339")]
    pub end: OffsetDateTime,
}

/// What the CA's ARI `renewalInfo` resource said about one certificate.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewalSuggestion {
    /// The suggested window.
    pub window: RenewalWindow,
    /// How long the CA asked clients to wait before asking again (its `Retry-After`).
    pub retry_after: Duration,
}

/// What a renewal time was chosen by, for the certificate's events.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenewalBasis {
    /// A random point of the CA's ARI window.
    AriWindow,
    /// The share of the lifetime left ([`RenewalPolicy::renewal_point`]).
    Lifetime,
    /// The emergency point: a twentieth of the lifetime left, earlier than ARI's window.
    Emergency,
}

impl RenewalBasis {
    /// How the event log says it.
    pub fn describe(self) -> &'static str {
        match self {
            RenewalBasis::AriWindow => "inside the certificate authority's renewal window",
            RenewalBasis::Lifetime => "with a third of its lifetime left (half under 10 days)",
            RenewalBasis::Emergency => "with a twentieth of its lifetime left",
        }
    }
}

/// When a certificate will be renewed, and why then.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RenewalPlan {
    /// The renewal time.
    pub at: OffsetDateTime,
    /// What chose it.
    pub basis: RenewalBasis,
}

/// The renewal and retry rules; the defaults are DESIGN.md's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalPolicy {
    /// Delays after the 1st, 2nd, 3rd... consecutive failure; the last one repeats.
    pub backoff: Vec<Duration>,
    /// The share of the remaining lifetime a retry may never wait past, as a divisor (10 = 1/10).
    pub remaining_lifetime_divisor: i32,
    /// Lifetimes shorter than this renew with half of it left rather than a third.
    pub short_lifetime: Duration,
    /// The share of the lifetime left at which a certificate renews whatever ARI says, as a
    /// divisor (20 = 1/20).
    pub emergency_divisor: i32,
    /// Bounds of ARI's `Retry-After`.
    pub ari_retry_after: (Duration, Duration),
    /// How long a domain waits for its DNS to point at the edge, re-checked with the backoff,
    /// before it stops being checked ([`ProvisioningStep::Stale`](crate::model::ProvisioningStep)).
    pub dns_wait: Duration,
}

impl Default for RenewalPolicy {
    fn default() -> Self {
        RenewalPolicy {
            backoff: vec![
                Duration::minutes(1),
                Duration::minutes(10),
                Duration::minutes(100),
                Duration::days(1),
            ],
            remaining_lifetime_divisor: 10,
            short_lifetime: Duration::days(10),
            emergency_divisor: 20,
            ari_retry_after: (Duration::minutes(1), Duration::days(1)),
            dns_wait: RenewalPolicy::DEFAULT_DNS_WAIT,
        }
    }
}

impl RenewalPolicy {
    /// How long a domain waits for its DNS by default: 7 days, as Cloudflare for SaaS does.
    pub const DEFAULT_DNS_WAIT: Duration = Duration::days(7);

    /// When a certificate valid from `not_before` to `not_after` renews without ARI: with a
    /// third of its lifetime left, or half for lifetimes under [`RenewalPolicy::short_lifetime`].
    pub fn renewal_point(
        &self,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> OffsetDateTime {
        let lifetime = not_after - not_before;
        let left = if lifetime < self.short_lifetime {
            lifetime / 2
        } else {
            lifetime / 3
        };
        not_after - left
    }

    /// The point past which a certificate renews whatever ARI says: a twentieth of its lifetime
    /// before `not_after`.
    pub fn emergency_point(
        &self,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
    ) -> OffsetDateTime {
        not_after - (not_after - not_before) / self.emergency_divisor.max(1)
    }

    /// When a certificate valid from `not_before` to `not_after` should be renewed.
    ///
    /// `position` in `[0, 1)` picks the point inside an ARI window (callers pass a random
    /// number); it is ignored without a window. A window that ends after the emergency point
    /// gives way to it.
    pub fn plan(
        &self,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        ari_window: Option<RenewalWindow>,
        position: f64,
    ) -> RenewalPlan {
        let emergency = self.emergency_point(not_before, not_after);
        if let Some(window) = ari_window.filter(|w| w.end >= w.start) {
            let at = window.point(position);
            return if at > emergency {
                RenewalPlan {
                    at: emergency,
                    basis: RenewalBasis::Emergency,
                }
            } else {
                RenewalPlan {
                    at,
                    basis: RenewalBasis::AriWindow,
                }
            };
        }
        RenewalPlan {
            at: self.renewal_point(not_before, not_after).min(emergency),
            basis: RenewalBasis::Lifetime,
        }
    }

    /// When a certificate valid from `not_before` to `not_after` should be renewed (the time of
    /// [`RenewalPolicy::plan`]).
    pub fn next_renewal_at(
        &self,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        ari_window: Option<RenewalWindow>,
        position: f64,
    ) -> OffsetDateTime {
        self.plan(not_before, not_after, ari_window, position).at
    }

    /// ARI's `Retry-After`, clamped to [`RenewalPolicy::ari_retry_after`].
    pub fn clamp_ari_retry_after(&self, retry_after: Duration) -> Duration {
        let (shortest, longest) = self.ari_retry_after;
        retry_after.clamp(shortest, longest)
    }

    /// What to do with a certificate whose renewal time came, given the CA's window read again
    /// at `now`: `None` when the window is open (renew now), else when to look again.
    ///
    /// That is a random point of the window (`position` in `[0, 1)`), never before the CA's
    /// `Retry-After` (clamped, so its `renewalInfo` is not asked again sooner), except that the
    /// end of the window wins: letting the window pass risks serving an expired certificate.
    /// And once the emergency point of the certificate (valid `not_before` to `not_after`) has
    /// come, it renews now, whatever the window says.
    pub fn reschedule_within_window(
        &self,
        now: OffsetDateTime,
        suggestion: &RenewalSuggestion,
        position: f64,
        validity: (OffsetDateTime, OffsetDateTime),
    ) -> Option<OffsetDateTime> {
        let window = suggestion.window;
        let emergency = self.emergency_point(validity.0, validity.1);
        if window.start <= now || window.end < window.start || emergency <= now {
            return None;
        }
        let point = window.point(position);
        let retry_after = self.clamp_ari_retry_after(suggestion.retry_after);
        Some(point.max(now + retry_after).min(window.end).min(emergency))
    }

    /// When to try again after `consecutive_failures` failures in a row (1 for the first).
    pub fn next_attempt_at(
        &self,
        now: OffsetDateTime,
        consecutive_failures: u32,
        expires_at: Option<OffsetDateTime>,
        retry_after: Option<OffsetDateTime>,
    ) -> OffsetDateTime {
        let index =
            (consecutive_failures.max(1) as usize - 1).min(self.backoff.len().saturating_sub(1));
        let mut delay = self
            .backoff
            .get(index)
            .copied()
            .unwrap_or(Duration::minutes(1));
        if let Some(expires_at) = expires_at {
            let remaining = expires_at - now;
            if remaining.is_positive() {
                delay = delay.min(remaining / self.remaining_lifetime_divisor);
            }
        }
        let planned = now + delay;
        match retry_after {
            Some(not_before) if not_before > planned => not_before,
            _ => planned,
        }
    }
}

impl RenewalWindow {
    /// The point at `position` (`[0, 1]`) of the window.
    pub fn point(&self, position: f64) -> OffsetDateTime {
        self.start + (self.end - self.start) * position.clamp(0.0, 1.0)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn ninety_day_certificates_renew_thirty_days_before_expiry() {
        // GIVEN a 90-day certificate without ARI
        let not_before = datetime!(2026-01-15 10:30 UTC);
        let not_after = not_before + Duration::days(90);
        // WHEN the policy schedules it THEN it renews exactly 30 days before expiry
        let at = RenewalPolicy::default().next_renewal_at(not_before, not_after, None, 0.5);
        assert_eq!(at, not_after - Duration::days(30));
        assert_eq!(at, datetime!(2026-03-16 10:30 UTC));
    }

    #[test]
    fn lifetimes_of_ten_days_and_more_renew_with_a_third_left_shorter_ones_with_half() {
        let policy = RenewalPolicy::default();
        let start = datetime!(2026-06-01 00:00 UTC);
        let plan = policy.plan(start, start + Duration::days(45), None, 0.0);
        assert_eq!(plan.at, start + Duration::days(30));
        assert_eq!(plan.basis, RenewalBasis::Lifetime);
        assert_eq!(
            policy.next_renewal_at(start, start + Duration::days(10), None, 0.0),
            start + Duration::days(10) - Duration::days(10) / 3
        );
        // A 6-day certificate renews at 3 days, not at 4: half its life is its margin.
        assert_eq!(
            policy.next_renewal_at(start, start + Duration::days(6), None, 0.0),
            start + Duration::days(3)
        );
        assert_eq!(
            policy.next_renewal_at(start, start + Duration::seconds(90), None, 0.0),
            start + Duration::seconds(45)
        );
    }

    #[test]
    fn an_ari_window_past_the_emergency_point_gives_way_to_it() {
        // GIVEN a 45-day certificate and a CA window ending two days before expiry
        let policy = RenewalPolicy::default();
        let start = datetime!(2026-06-01 00:00 UTC);
        let end = start + Duration::days(45);
        let window = RenewalWindow {
            start: end - Duration::days(4),
            end: end - Duration::days(2),
        };
        // WHEN a late point of the window is drawn THEN the emergency point (45/20 days before
        // expiry) wins
        let plan = policy.plan(start, end, Some(window), 0.99);
        assert_eq!(plan.basis, RenewalBasis::Emergency);
        assert_eq!(plan.at, end - Duration::days(45) / 20);
        // and an early point stays the window's
        let early = policy.plan(start, end, Some(window), 0.0);
        assert_eq!(
            (early.at, early.basis),
            (window.start, RenewalBasis::AriWindow)
        );
    }

    #[test]
    fn ari_window_wins_and_position_picks_inside_it() {
        let policy = RenewalPolicy::default();
        let start = datetime!(2026-06-01 00:00 UTC);
        let window = RenewalWindow {
            start: start + Duration::days(10),
            end: start + Duration::days(12),
        };
        let end = start + Duration::days(90);
        assert_eq!(
            policy.next_renewal_at(start, end, Some(window), 0.0),
            window.start
        );
        assert_eq!(
            policy.next_renewal_at(start, end, Some(window), 0.5),
            start + Duration::days(11)
        );
        let late = policy.next_renewal_at(start, end, Some(window), 0.999);
        assert!(late > window.start && late <= window.end);
    }

    #[test]
    fn an_open_window_renews_now_and_a_later_one_waits_for_retry_after() {
        let policy = RenewalPolicy::default();
        let now = datetime!(2026-06-01 00:00 UTC);
        let open = RenewalSuggestion {
            window: RenewalWindow {
                start: now - Duration::hours(1),
                end: now + Duration::days(1),
            },
            retry_after: Duration::hours(6),
        };
        let validity = (now - Duration::days(60), now + Duration::days(30));
        assert_eq!(
            policy.reschedule_within_window(now, &open, 0.5, validity),
            None
        );
        // GIVEN a window that moved later, and a CA asking not to be asked again for 20 hours
        let later = RenewalSuggestion {
            window: RenewalWindow {
                start: now + Duration::hours(12),
                end: now + Duration::hours(36),
            },
            retry_after: Duration::hours(20),
        };
        // WHEN the renewer reschedules THEN it waits for both the window and the Retry-After
        assert_eq!(
            policy.reschedule_within_window(now, &later, 0.0, validity),
            Some(now + Duration::hours(20))
        );
        assert_eq!(
            policy.reschedule_within_window(now, &later, 0.75, validity),
            Some(now + Duration::hours(30))
        );
        // A Retry-After past the window's end gives way to the window.
        let patient = RenewalSuggestion {
            retry_after: Duration::hours(23),
            window: RenewalWindow {
                start: now + Duration::hours(1),
                end: now + Duration::hours(2),
            },
        };
        assert_eq!(
            policy.reschedule_within_window(now, &patient, 0.1, validity),
            Some(now + Duration::hours(2))
        );
    }

    #[test]
    fn aris_retry_after_is_clamped_between_a_minute_and_a_day() {
        let policy = RenewalPolicy::default();
        let now = datetime!(2026-06-01 00:00 UTC);
        let validity = (now - Duration::days(60), now + Duration::days(30));
        let window = RenewalWindow {
            start: now + Duration::days(5),
            end: now + Duration::days(6),
        };
        // A CA asking to be asked again in a second is asked after a minute, at the earliest...
        let eager = RenewalSuggestion {
            window: RenewalWindow {
                start: now + Duration::seconds(10),
                end: now + Duration::seconds(20),
            },
            retry_after: Duration::seconds(1),
        };
        assert_eq!(
            policy.reschedule_within_window(now, &eager, 0.0, validity),
            Some(now + Duration::seconds(20))
        );
        assert_eq!(
            policy.clamp_ari_retry_after(Duration::seconds(1)),
            Duration::minutes(1)
        );
        // ... and one asking for a month is asked again within the window anyway, a day on.
        let silent = RenewalSuggestion {
            window,
            retry_after: Duration::days(30),
        };
        assert_eq!(
            policy.clamp_ari_retry_after(silent.retry_after),
            Duration::days(1)
        );
        assert_eq!(
            policy.reschedule_within_window(now, &silent, 0.0, validity),
            Some(window.start)
        );
    }

    #[test]
    fn past_the_emergency_point_a_later_window_renews_now() {
        // GIVEN a 6-day certificate with less than a twentieth of its life left
        let policy = RenewalPolicy::default();
        let now = datetime!(2026-06-01 00:00 UTC);
        let validity = (
            now - Duration::days(6) + Duration::hours(7),
            now + Duration::hours(7),
        );
        // WHEN ARI says to wait a day THEN it renews now anyway
        let later = RenewalSuggestion {
            window: RenewalWindow {
                start: now + Duration::days(1),
                end: now + Duration::days(2),
            },
            retry_after: Duration::hours(6),
        };
        assert_eq!(
            policy.reschedule_within_window(now, &later, 0.5, validity),
            None
        );
        // and before it, the reschedule never passes it
        let earlier = (
            validity.0 - Duration::days(1),
            validity.1 - Duration::days(1) + Duration::days(2),
        );
        let at = policy
            .reschedule_within_window(now, &later, 0.9, earlier)
            .unwrap();
        assert!(at <= policy.emergency_point(earlier.0, earlier.1), "{at}");
    }

    #[test]
    fn backoff_grows_then_stays_daily() {
        let policy = RenewalPolicy::default();
        let now = datetime!(2026-06-01 00:00 UTC);
        let far = Some(now + Duration::days(365));
        let delays: Vec<_> = (1..=6)
            .map(|n| policy.next_attempt_at(now, n, far, None) - now)
            .collect();
        assert_eq!(
            delays,
            vec![
                Duration::minutes(1),
                Duration::minutes(10),
                Duration::minutes(100),
                Duration::days(1),
                Duration::days(1),
                Duration::days(1)
            ]
        );
    }

    #[test]
    fn backoff_never_passes_a_tenth_of_remaining_lifetime() {
        let policy = RenewalPolicy::default();
        let now = datetime!(2026-06-01 00:00 UTC);
        let at = policy.next_attempt_at(now, 4, Some(now + Duration::hours(5)), None);
        assert_eq!(at, now + Duration::minutes(30));
    }

    #[test]
    fn retry_after_is_honoured_even_past_the_backoff() {
        let policy = RenewalPolicy::default();
        let now = datetime!(2026-06-01 00:00 UTC);
        let retry_after = now + Duration::hours(3);
        assert_eq!(
            policy.next_attempt_at(now, 1, None, Some(retry_after)),
            retry_after
        );
        assert_eq!(
            policy.next_attempt_at(now, 4, None, Some(now + Duration::seconds(5))),
            now + Duration::days(1)
        );
    }
}

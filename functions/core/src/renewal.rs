//! When to renew and when to retry.
//!
//! Renewal time is the CA's ARI window (RFC 9773) when it offers one, at a random point inside it
//! so a fleet does not renew in lock step; otherwise `not_before + 2/3 * lifetime`. For a 90-day
//! certificate that is exactly 30 days before expiry (the reference's promise), and it stays
//! right for 45-day and 6-day certificates where "expiry minus 30 days" would already be past.
//!
//! Failures back off 1 min, 10 min, 100 min, then daily, but never further than a tenth of the
//! remaining lifetime so a failing certificate is retried several times before it expires. A
//! CA's `Retry-After` always wins: no attempt is made before it.

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

/// The renewal and retry rules; the defaults are DESIGN.md's.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RenewalPolicy {
    /// Delays after the 1st, 2nd, 3rd... consecutive failure; the last one repeats.
    pub backoff: Vec<Duration>,
    /// The share of the remaining lifetime a retry may never wait past, as a divisor (10 = 1/10).
    pub remaining_lifetime_divisor: i32,
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
        }
    }
}

impl RenewalPolicy {
    /// When a certificate valid from `not_before` to `not_after` should be renewed.
    ///
    /// `position` in `[0, 1)` picks the point inside an ARI window (callers pass a random
    /// number); it is ignored without a window.
    pub fn next_renewal_at(
        &self,
        not_before: OffsetDateTime,
        not_after: OffsetDateTime,
        ari_window: Option<RenewalWindow>,
        position: f64,
    ) -> OffsetDateTime {
        if let Some(window) = ari_window.filter(|w| w.end >= w.start) {
            let span = window.end - window.start;
            return window.start + span * position.clamp(0.0, 1.0);
        }
        let lifetime = not_after - not_before;
        not_before + lifetime * 2 / 3
    }

    /// What to do with a certificate whose renewal time came, given the CA's window read again
    /// at `now`: `None` when the window is open (renew now), else when to look again.
    ///
    /// That is a random point of the window (`position` in `[0, 1)`), never before the CA's
    /// `Retry-After` (so its `renewalInfo` is not asked again sooner), except that the end of
    /// the window wins: letting the window pass risks serving an expired certificate.
    pub fn reschedule_within_window(
        &self,
        now: OffsetDateTime,
        suggestion: &RenewalSuggestion,
        position: f64,
    ) -> Option<OffsetDateTime> {
        let window = suggestion.window;
        if window.start <= now || window.end < window.start {
            return None;
        }
        let point = self.next_renewal_at(window.start, window.end, Some(window), position);
        Some(point.max(now + suggestion.retry_after).min(window.end))
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
    fn short_lifetimes_renew_at_two_thirds() {
        let policy = RenewalPolicy::default();
        let start = datetime!(2026-06-01 00:00 UTC);
        assert_eq!(
            policy.next_renewal_at(start, start + Duration::days(45), None, 0.0),
            start + Duration::days(30)
        );
        assert_eq!(
            policy.next_renewal_at(start, start + Duration::days(6), None, 0.0),
            start + Duration::days(4)
        );
        assert_eq!(
            policy.next_renewal_at(start, start + Duration::seconds(90), None, 0.0),
            start + Duration::seconds(60)
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
        assert_eq!(policy.reschedule_within_window(now, &open, 0.5), None);
        // GIVEN a window that moved later, and a CA asking not to be asked again for 5.5 days
        let later = RenewalSuggestion {
            window: RenewalWindow {
                start: now + Duration::days(5),
                end: now + Duration::days(6),
            },
            retry_after: Duration::hours(132),
        };
        // WHEN the renewer reschedules THEN it waits for both the window and the Retry-After
        assert_eq!(
            policy.reschedule_within_window(now, &later, 0.0),
            Some(now + Duration::hours(132))
        );
        assert_eq!(
            policy.reschedule_within_window(now, &later, 0.75),
            Some(now + Duration::hours(138))
        );
        // A Retry-After past the window's end gives way to the window.
        let patient = RenewalSuggestion {
            retry_after: Duration::days(30),
            ..later
        };
        assert_eq!(
            policy.reschedule_within_window(now, &patient, 0.1),
            Some(later.window.end)
        );
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

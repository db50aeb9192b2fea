//! [`CaOutage`]: what one issuer remembers of its CA being unreachable.
//!
//! When a request to the CA fails at the transport level (refused, reset, timed out), every
//! run started in the next moments would wait for the same timeout, and so would every
//! handshake of a new name waiting on one. Instead, the first such failure opens a cool-down
//! ([`IssuanceSettings::ca_cool_down`](super::IssuanceSettings::ca_cool_down), doubling while
//! the CA stays unreachable, up to
//! [`IssuanceSettings::ca_cool_down_max`](super::IssuanceSettings::ca_cool_down_max)): runs in it record "the certificate authority
//! could not be reached" with the end of the cool-down as the next
//! attempt, without a request. The first run after the cool-down asks the CA again; an answer
//! of any kind closes the outage.

use std::sync::{Mutex, PoisonError};

use time::{Duration, OffsetDateTime};

#[derive(Debug, Default)]
struct State {
    /// End of the current cool-down.
    until: Option<OffsetDateTime>,
    /// Unreachable failures in a row.
    failures: u32,
}

/// The CA's reachability as seen by one issuer.
#[derive(Debug)]
pub(crate) struct CaOutage {
    /// The first cool-down; each next one doubles, up to `max_cool_down`.
    first_cool_down: Duration,
    /// The longest cool-down.
    max_cool_down: Duration,
    state: Mutex<State>,
}

impl CaOutage {
    /// An outage tracker whose first cool-down is `first_cool_down`, doubling up to
    /// `max_cool_down`.
    pub(crate) fn new(first_cool_down: Duration, max_cool_down: Duration) -> CaOutage {
        CaOutage {
            first_cool_down,
            max_cool_down,
            state: Mutex::new(State::default()),
        }
    }

    /// The end of the cool-down in force at `now`, if any.
    pub(crate) fn cooling_down(&self, now: OffsetDateTime) -> Option<OffsetDateTime> {
        self.lock().until.filter(|until| *until > now)
    }

    /// Notes a request that never got an answer; returns the end of the cool-down. Runs that
    /// were already waiting on the CA when the first of them gave up end within moments of
    /// each other: they share one cool-down rather than double it each.
    pub(crate) fn unreachable(&self, now: OffsetDateTime) -> OffsetDateTime {
        let mut state = self.lock();
        if let Some(until) = state.until.filter(|until| *until > now) {
            return until;
        }
        state.failures = state.failures.saturating_add(1);
        let doublings = state.failures.saturating_sub(1).min(8);
        let cool_down = (self.first_cool_down * 2i32.pow(doublings)).min(self.max_cool_down);
        let until = now + cool_down;
        state.until = Some(until);
        until
    }

    /// Notes that the CA answered (with anything).
    pub(crate) fn answered(&self) {
        *self.lock() = State::default();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    #[test]
    fn cool_downs_double_while_the_ca_stays_unreachable_and_end_when_it_answers() {
        let now = datetime!(2026-06-01 12:00 UTC);
        let outage = CaOutage::new(Duration::seconds(30), Duration::minutes(5));
        assert_eq!(outage.cooling_down(now), None);
        assert_eq!(outage.unreachable(now), now + Duration::seconds(30));
        assert_eq!(outage.cooling_down(now), Some(now + Duration::seconds(30)));
        // Runs giving up during the cool-down share it.
        assert_eq!(outage.unreachable(now), now + Duration::seconds(30));
        assert_eq!(outage.cooling_down(now + Duration::seconds(30)), None);
        // Once it is over, the next failure doubles it, up to five minutes.
        let mut at = now + Duration::seconds(30);
        assert_eq!(outage.unreachable(at), at + Duration::seconds(60));
        for _ in 0..10 {
            at += Duration::minutes(10);
            outage.unreachable(at);
        }
        assert_eq!(outage.cooling_down(at), Some(at + Duration::minutes(5)));
        outage.answered();
        assert_eq!(outage.cooling_down(at), None);
        assert_eq!(outage.unreachable(at), at + Duration::seconds(30));
    }
}

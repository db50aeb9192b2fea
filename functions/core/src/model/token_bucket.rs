//! Token buckets: a budget of operations (ACME orders) shared by every process, refilled with
//! time. The arithmetic lives here so that every store adapter applies the same rule inside its
//! own atomic read-modify-write ([`TokenBucketStore`](crate::ports::TokenBucketStore)).
//!
//! The level is kept in thousandths of a token so that a bucket read often (every run of the
//! renewer, every few seconds in tests) still refills at its exact rate: each read credits the
//! whole thousandths earned since the last one and moves the bucket's clock by exactly the time
//! they took to earn, so no fraction is lost between reads.

use serde::{Deserialize, Serialize};
use time::{Duration, OffsetDateTime};

/// Thousandths of a token per token.
const MILLI: i128 = 1000;

/// The shape of a bucket: how many tokens it holds at most and how fast it refills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct BucketLimits {
    /// Most tokens the bucket holds; a new bucket starts full.
    pub capacity: u32,
    /// Time to earn one token back (e.g. 36 s for 300 tokens per 3 hours).
    pub refill_every: Duration,
}

impl BucketLimits {
    /// `tokens` per `period`, refilled evenly: 300 per 3 hours gives one token every 36 s.
    /// A zero `tokens` gives a bucket that never grants anything.
    pub fn per_period(tokens: u32, period: Duration) -> BucketLimits {
        BucketLimits {
            capacity: tokens,
            refill_every: if tokens == 0 { period } else { period / tokens },
        }
    }
}

/// The stored state of a bucket.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct TokenBucket {
    /// Tokens available, in thousandths.
    pub level_milli: u64,
    /// The instant `level_milli` was computed for.
    #[serde(with = "time::serde::rfc3339")]
    pub updated_at: OffsetDateTime,
}

/// What a bucket holds at one instant, without taking anything: what `/metrics` and the
/// operator see.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BucketLevel {
    /// Whole tokens available now.
    pub available: u32,
    /// The most the bucket holds.
    pub capacity: u32,
    /// When the next whole token is earned; `None` when the bucket is full.
    pub next_token_at: Option<OffsetDateTime>,
}

/// What one [`TokenBucket::take`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Taken {
    /// The bucket to store.
    pub bucket: TokenBucket,
    /// Whole tokens granted, `0..=wanted`.
    pub granted: u32,
}

impl TokenBucket {
    /// A bucket that has never been used: full.
    pub fn full(limits: &BucketLimits, now: OffsetDateTime) -> TokenBucket {
        TokenBucket {
            level_milli: u64::from(limits.capacity) * MILLI as u64,
            updated_at: now,
        }
    }

    /// Refills the bucket for the time since it was last computed (never past its capacity),
    /// then takes up to `wanted` whole tokens.
    ///
    /// Judged by the caller's clock: a `now` earlier than the bucket's own time (a caller with
    /// a clock behind another's) refills nothing and leaves the bucket's time where it was.
    pub fn take(self, wanted: u32, limits: &BucketLimits, now: OffsetDateTime) -> Taken {
        let capacity = i128::from(limits.capacity) * MILLI;
        let mut level = i128::from(self.level_milli).min(capacity);
        let mut updated_at = self.updated_at;
        let step = limits.refill_every.whole_nanoseconds().max(1);
        let elapsed = (now - self.updated_at).whole_nanoseconds();
        if elapsed > 0 {
            let earned = elapsed * MILLI / step;
            if level + earned >= capacity {
                level = capacity;
                updated_at = now;
            } else {
                level += earned;
                // Only the time that earned whole thousandths is consumed; the rest counts
                // towards the next read.
                let used = earned * step / MILLI;
                updated_at += Duration::nanoseconds(i64::try_from(used).unwrap_or(i64::MAX));
            }
        }
        let available = level / MILLI;
        let granted = i128::from(wanted).min(available).max(0);
        level -= granted * MILLI;
        Taken {
            bucket: TokenBucket {
                level_milli: u64::try_from(level).unwrap_or(0),
                updated_at,
            },
            granted: u32::try_from(granted).unwrap_or(0),
        }
    }
}

impl TokenBucket {
    /// The bucket's level at `now` after its refill, taking nothing.
    pub fn level(self, limits: &BucketLimits, now: OffsetDateTime) -> BucketLevel {
        let refilled = self.take(0, limits, now).bucket;
        let available = u32::try_from(i128::from(refilled.level_milli) / MILLI).unwrap_or(0);
        let next_token_at = (available < limits.capacity).then(|| {
            let missing = MILLI - i128::from(refilled.level_milli) % MILLI;
            let step = limits.refill_every.whole_nanoseconds().max(1);
            let wait = missing * step / MILLI;
            refilled.updated_at + Duration::nanoseconds(i64::try_from(wait).unwrap_or(i64::MAX))
        });
        BucketLevel {
            available: available.min(limits.capacity),
            capacity: limits.capacity,
            next_token_at,
        }
    }
}

#[cfg(test)]
mod tests {
    use time::macros::datetime;

    use super::*;

    const START: OffsetDateTime = datetime!(2026-06-01 12:00 UTC);

    fn limits() -> BucketLimits {
        BucketLimits::per_period(300, Duration::hours(3))
    }

    #[test]
    fn three_hundred_per_three_hours_is_one_token_every_36_seconds() {
        assert_eq!(limits().refill_every, Duration::seconds(36));
        assert_eq!(limits().capacity, 300);
    }

    #[test]
    fn a_new_bucket_grants_its_capacity_then_nothing() {
        let bucket = TokenBucket::full(&limits(), START);
        let first = bucket.take(250, &limits(), START);
        assert_eq!(first.granted, 250);
        let second = first.bucket.take(100, &limits(), START);
        assert_eq!(second.granted, 50);
        assert_eq!(second.bucket.take(1, &limits(), START).granted, 0);
    }

    #[test]
    fn it_refills_at_its_rate_without_losing_fractions() {
        let empty = TokenBucket::full(&limits(), START)
            .take(300, &limits(), START)
            .bucket;
        // Read every 5 s for 72 s: exactly two tokens earned in total.
        let mut bucket = empty;
        let mut granted = 0;
        for step in 1..=14 {
            let taken = bucket.take(10, &limits(), START + Duration::seconds(5 * step));
            bucket = taken.bucket;
            granted += taken.granted;
        }
        assert_eq!(granted, 1, "70 s earn one token");
        let taken = bucket.take(10, &limits(), START + Duration::seconds(72));
        assert_eq!(granted + taken.granted, 2);
    }

    #[test]
    fn refill_stops_at_capacity() {
        let bucket = TokenBucket::full(&limits(), START).take(10, &limits(), START);
        let later = bucket
            .bucket
            .take(1000, &limits(), START + Duration::days(2));
        assert_eq!(later.granted, 300);
    }

    #[test]
    fn a_clock_behind_the_bucket_refills_nothing() {
        let bucket = TokenBucket::full(&limits(), START)
            .take(300, &limits(), START)
            .bucket;
        let taken = bucket.take(1, &limits(), START - Duration::hours(1));
        assert_eq!(taken.granted, 0);
        assert_eq!(taken.bucket.updated_at, START);
    }

    #[test]
    fn its_level_counts_whole_tokens_and_when_the_next_one_comes() {
        let never_used = TokenBucket::full(&limits(), START);
        assert_eq!(
            never_used.level(&limits(), START),
            BucketLevel {
                available: 300,
                capacity: 300,
                next_token_at: None
            }
        );
        let spent = never_used.take(300, &limits(), START).bucket;
        let level = spent.level(&limits(), START + Duration::seconds(50));
        // One token every 36 s: one earned after 50 s, the next at 72 s.
        assert_eq!(level.available, 1);
        assert_eq!(level.next_token_at, Some(START + Duration::seconds(72)));
        // Reading takes nothing.
        assert_eq!(
            spent
                .take(300, &limits(), START + Duration::seconds(50))
                .granted,
            1
        );
    }

    #[test]
    fn fifty_per_hour_refills_fully_in_an_hour() {
        let limits = BucketLimits::per_period(50, Duration::hours(1));
        let empty = TokenBucket::full(&limits, START)
            .take(50, &limits, START)
            .bucket;
        assert_eq!(
            empty.take(60, &limits, START + Duration::hours(1)).granted,
            50
        );
    }
}

//! Limits that keep unknown server names cheap: a per-client-address token bucket on store
//! lookups that served nothing ([`LookupLimiter`]) and a short-lived cache of refusals
//! ([`NegativeCache`]).
//! Both are bounded in memory whatever the clients send.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Mutex, PoisonError};
use std::time::{Duration, Instant};

/// Clients tracked at most; past it, buckets that refilled completely are forgotten first.
const MAX_TRACKED_CLIENTS: usize = 100_000;

/// Most debt a client can run up, in seconds of refill: concurrent lookups all start before
/// any of them is charged.
const MAX_DEBT_SECONDS: f64 = 300.0;

/// A token per store lookup that served nothing (a name not whitelisted, not ready, or a
/// failed read), refilled continuously, per client address. A lookup starts only while the
/// client's bucket holds a token; it is charged when it ends without a certificate, so
/// clients reaching real names that are not in memory (a cache miss, a restart) are never
/// held back, while one spraying made-up names is. IPv6 clients are keyed by their /64: one
/// host usually holds the whole prefix.
#[derive(Debug)]
pub(crate) struct LookupLimiter {
    rate_per_second: f64,
    burst: f64,
    buckets: Mutex<HashMap<IpAddr, (f64, Instant)>>,
}

impl LookupLimiter {
    pub(crate) fn new(rate_per_second: f64, burst: u32) -> Self {
        LookupLimiter {
            rate_per_second,
            burst: f64::from(burst.max(1)),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `client` may start a lookup now (its bucket holds a token).
    pub(crate) fn may_look_up(&self, client: IpAddr) -> bool {
        self.refilled(client, Instant::now(), |tokens| *tokens >= 1.0)
    }

    /// Charges `client` a token for a lookup that served nothing; the bucket may go into debt.
    pub(crate) fn charge(&self, client: IpAddr) {
        self.charge_at(client, Instant::now());
    }

    fn charge_at(&self, client: IpAddr, now: Instant) {
        let floor = -(self.rate_per_second * MAX_DEBT_SECONDS).max(self.burst);
        self.refilled(client, now, |tokens| {
            *tokens = (*tokens - 1.0).max(floor);
        });
    }

    /// Refills `client`'s bucket up to `now` and hands its tokens to `f`.
    fn refilled<T>(&self, client: IpAddr, now: Instant, f: impl FnOnce(&mut f64) -> T) -> T {
        let key = bucket_key(client);
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if buckets.len() >= MAX_TRACKED_CLIENTS && !buckets.contains_key(&key) {
            let (rate, burst) = (self.rate_per_second, self.burst);
            buckets.retain(|_, (tokens, at)| {
                *tokens + now.duration_since(*at).as_secs_f64() * rate < burst
            });
            if buckets.len() >= MAX_TRACKED_CLIENTS {
                // Every tracked client is mid-burst: an attack across many addresses. Start
                // over rather than grow without bound.
                buckets.clear();
            }
        }
        let (tokens, at) = buckets.entry(key).or_insert((self.burst, now));
        *tokens = (*tokens + now.duration_since(*at).as_secs_f64() * self.rate_per_second)
            .min(self.burst);
        *at = now;
        f(tokens)
    }
}

fn bucket_key(client: IpAddr) -> IpAddr {
    match client {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let mut segments = v6.segments();
                segments[4..].fill(0);
                IpAddr::V6(segments.into())
            }
        },
        v4 => v4,
    }
}

/// A refusal: until when it holds, and the version of the domain record it was decided on
/// (`None` when no record had the name).
#[derive(Debug, Clone, Copy)]
struct Refused {
    until: Instant,
    as_of: Option<u64>,
}

/// Names recently refused, with when the refusal lapses. A change to the name's domain that
/// the refusal did not see lifts it at once ([`NegativeCache::forget_before`]).
#[derive(Debug)]
pub(crate) struct NegativeCache {
    capacity: usize,
    entries: Mutex<HashMap<String, Refused>>,
}

impl NegativeCache {
    pub(crate) fn new(capacity: usize) -> Self {
        NegativeCache {
            capacity: capacity.max(1),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// Whether `name` is refused now.
    pub(crate) fn contains(&self, name: &str) -> bool {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        match entries.get(name) {
            Some(refused) if refused.until > Instant::now() => true,
            Some(_) => {
                entries.remove(name);
                false
            }
            None => false,
        }
    }

    /// Refuses `name` for `ttl`, decided on version `as_of` of its domain (`None`: no domain).
    pub(crate) fn insert(&self, name: &str, ttl: Duration, as_of: Option<u64>) {
        let now = Instant::now();
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries.len() >= self.capacity && !entries.contains_key(name) {
            entries.retain(|_, refused| refused.until > now);
            if entries.len() >= self.capacity {
                // Full of live refusals: dropping them costs a few extra lookups, which the
                // per-client limiter still bounds.
                entries.clear();
            }
        }
        entries.insert(
            name.to_owned(),
            Refused {
                until: now + ttl,
                as_of,
            },
        );
    }

    /// Lifts the refusal of `name` unless it was decided on `version` of its domain or a later
    /// one: the domain changed since (whitelisted, nudged, issued, re-claimed).
    pub(crate) fn forget_before(&self, name: &str, version: u64) {
        let mut entries = self.entries.lock().unwrap_or_else(PoisonError::into_inner);
        if entries
            .get(name)
            .is_some_and(|refused| refused.as_of.is_none_or(|as_of| as_of < version))
        {
            entries.remove(name);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use super::*;

    #[test]
    fn a_client_gets_its_burst_of_empty_lookups_then_the_rate() {
        let limiter = LookupLimiter::new(2.0, 3);
        let client = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 7));
        let start = Instant::now();
        let allowed = (0..10)
            .filter(|_| {
                let allowed = limiter.refilled(client, start, |tokens| *tokens >= 1.0);
                if allowed {
                    limiter.charge_at(client, start);
                }
                allowed
            })
            .count();
        assert_eq!(allowed, 3);
        // Half a second later: one more token.
        let later = start + Duration::from_millis(500);
        assert!(limiter.refilled(client, later, |tokens| *tokens >= 1.0));
        limiter.charge_at(client, later);
        assert!(!limiter.refilled(client, later, |tokens| *tokens >= 1.0));
        // Another client is not affected.
        assert!(limiter.refilled(
            IpAddr::V4(Ipv4Addr::new(198, 51, 100, 8)),
            start,
            |tokens| *tokens >= 1.0
        ));
    }

    #[test]
    fn lookups_that_serve_cost_nothing_and_concurrent_empty_ones_leave_a_debt() {
        let limiter = LookupLimiter::new(1.0, 2);
        let client = IpAddr::V4(Ipv4Addr::new(198, 51, 100, 9));
        let start = Instant::now();
        // Lookups that found a certificate are never charged.
        assert!((0..100).all(|_| limiter.refilled(client, start, |tokens| *tokens >= 1.0)));
        // Ten empty lookups started at once are all charged when they end: the client waits
        // for the debt to be paid back.
        for _ in 0..10 {
            limiter.charge_at(client, start);
        }
        let after = |seconds| start + Duration::from_secs(seconds);
        assert!(!limiter.refilled(client, after(8), |tokens| *tokens >= 1.0));
        assert!(limiter.refilled(client, after(10), |tokens| *tokens >= 1.0));
    }

    #[test]
    fn ipv6_clients_share_their_slash_64() {
        let limiter = LookupLimiter::new(1.0, 1);
        let start = Instant::now();
        let first = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0, 0, 0, 1));
        let same_prefix = IpAddr::V6(Ipv6Addr::new(0x2001, 0xdb8, 0, 1, 0xffff, 0, 0, 2));
        limiter.charge_at(first, start);
        assert!(!limiter.refilled(same_prefix, start, |tokens| *tokens >= 1.0));
    }

    #[test]
    fn refusals_lapse_and_stay_bounded() {
        let cache = NegativeCache::new(2);
        cache.insert("a.example.com", Duration::from_secs(60), None);
        assert!(cache.contains("a.example.com"));
        cache.insert("b.example.com", Duration::ZERO, None);
        assert!(!cache.contains("b.example.com"));
        cache.insert("c.example.com", Duration::from_secs(60), None);
        cache.insert("d.example.com", Duration::from_secs(60), None);
        assert!(cache.contains("d.example.com"));
        cache.forget_before("d.example.com", 1);
        assert!(!cache.contains("d.example.com"));
    }

    #[test]
    fn only_a_domain_change_the_refusal_did_not_see_lifts_it() {
        let cache = NegativeCache::new(10);
        cache.insert("shop.example.com", Duration::from_secs(60), Some(4));
        // The feed reads again the version the refusal was decided on (its overlap).
        cache.forget_before("shop.example.com", 4);
        assert!(cache.contains("shop.example.com"));
        // A newer version (a nudge, an issued certificate) lifts it.
        cache.forget_before("shop.example.com", 5);
        assert!(!cache.contains("shop.example.com"));
    }
}

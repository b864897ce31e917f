//! Per-client limits: open streams per client address, and a publish rate per token subject or
//! address (token bucket). Every table is bounded: an entry lives only while it holds something
//! (an open stream, a bucket that is not full), and a table at its cap sheds idle entries first.
//!
//! Client addresses come from the `ConnectInfo<SocketAddr>` request extension that
//! [`crate::serve`] sets; a router mounted elsewhere without it is not limited per client.
//! IPv6 clients are grouped by their /64 (one host usually owns a whole /64).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv6Addr};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use crate::error::ApiError;

/// A publish rate: `per_second` sustained, with bursts of up to `burst` publishes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PublishRate {
    /// Publishes per second, sustained.
    pub per_second: f64,
    /// Publishes allowed at once after an idle period.
    pub burst: u32,
}

/// Most distinct publishers tracked by the rate limiter at once: memory stays bounded (about
/// 100 bytes each) whatever the number of clients. Past it, idle entries are dropped; if all are
/// busy, new publishers wait for one to free.
pub const MAX_RATE_ENTRIES: usize = 100_000;

/// The key a client is counted under: IPv4 as is, IPv6 by its /64.
pub(crate) fn client_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => {
                let s = v6.segments();
                IpAddr::V6(Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0))
            }
        },
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Plain counters: a panic while holding the lock cannot leave them inconsistent.
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// Open `GET /events` streams per client address. An entry exists only while its count is
/// above zero, so the table is bounded by the number of open streams.
#[derive(Debug)]
pub(crate) struct StreamCounter {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl StreamCounter {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            max,
            open: Mutex::default(),
        }
    }

    /// Counts one more stream for `ip`, or refuses with 429 at the cap (0: no cap).
    pub(crate) fn acquire(&self, ip: IpAddr) -> Result<IpAddr, ApiError> {
        let key = client_key(ip);
        let mut open = lock(&self.open);
        let n = open.entry(key).or_insert(0);
        if self.max != 0 && *n >= self.max {
            let max = self.max;
            if *n == 0 {
                open.remove(&key);
            }
            return Err(ApiError::too_many_requests(
                format!("too many open streams from this address (at most {max}): close one first"),
                DEFAULT_RETRY_AFTER_SECS,
            ));
        }
        *n += 1;
        Ok(key)
    }

    /// Forgets one stream of `key` (as returned by [`StreamCounter::acquire`]).
    pub(crate) fn release(&self, key: IpAddr) {
        let mut open = lock(&self.open);
        if let Some(n) = open.get_mut(&key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&key);
            }
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.open).len()
    }
}

/// The `Retry-After` of a refusal by a limit that frees by itself soon.
pub(crate) const DEFAULT_RETRY_AFTER_SECS: u64 = 1;

/// Who a publish is counted against.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) enum Publisher {
    /// A token's `sub`.
    Subject(Box<str>),
    /// A client address (see [`client_key`]).
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Bucket {
    tokens: f64,
    updated: Instant,
}

#[derive(Debug)]
struct RateTable {
    buckets: HashMap<Publisher, Bucket>,
}

/// A token bucket per publisher.
#[derive(Debug)]
pub(crate) struct RateLimiter {
    rate: PublishRate,
    max_entries: usize,
    table: Mutex<RateTable>,
}

impl RateLimiter {
    pub(crate) fn new(rate: PublishRate) -> Self {
        Self::with_max_entries(rate, MAX_RATE_ENTRIES)
    }

    fn with_max_entries(rate: PublishRate, max_entries: usize) -> Self {
        Self {
            rate,
            max_entries,
            table: Mutex::new(RateTable {
                buckets: HashMap::new(),
            }),
        }
    }

    fn refill(&self, bucket: &mut Bucket, now: Instant) {
        let elapsed = now.saturating_duration_since(bucket.updated).as_secs_f64();
        bucket.tokens = (bucket.tokens + elapsed * self.rate.per_second).min(self.burst());
        bucket.updated = now;
    }

    fn burst(&self) -> f64 {
        f64::from(self.rate.burst.max(1))
    }

    /// Takes one publish from `who`'s bucket, or refuses with 429 and when to retry.
    pub(crate) fn check(&self, who: Publisher, now: Instant) -> Result<(), ApiError> {
        let mut table = lock(&self.table);
        if !table.buckets.contains_key(&who) && table.buckets.len() >= self.max_entries {
            // Full buckets say nothing a fresh one would not: drop them (O(n), only at the cap).
            let per_second = self.rate.per_second;
            let burst = self.burst();
            table.buckets.retain(|_, b| {
                let elapsed = now.saturating_duration_since(b.updated).as_secs_f64();
                b.tokens + elapsed * per_second < burst
            });
            if table.buckets.len() >= self.max_entries {
                return Err(ApiError::too_many_requests(
                    "too many publishers at once: try again shortly",
                    DEFAULT_RETRY_AFTER_SECS,
                ));
            }
        }
        let burst = self.burst();
        let bucket = table.buckets.entry(who).or_insert(Bucket {
            tokens: burst,
            updated: now,
        });
        self.refill(bucket, now);
        if bucket.tokens >= 1.0 {
            bucket.tokens -= 1.0;
            return Ok(());
        }
        let wait = if self.rate.per_second > 0.0 {
            // A tiny rate (1e-20) makes this wait longer than a Duration holds: `from_secs_f64`
            // panicked there on the second publish. Such a wait is "never", so saturate.
            Duration::try_from_secs_f64((1.0 - bucket.tokens) / self.rate.per_second)
                .unwrap_or(Duration::MAX)
        } else {
            Duration::from_secs(60)
        };
        Err(ApiError::too_many_requests(
            format!(
                "publish rate limit: at most {} per second (bursts of {})",
                self.rate.per_second, self.rate.burst
            ),
            wait.as_secs_f64().ceil().max(1.0) as u64,
        ))
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        lock(&self.table).buckets.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn streams_per_address_are_capped_and_freed() {
        let c = StreamCounter::new(2);
        let a = c.acquire(ip("10.0.0.1")).unwrap();
        c.acquire(ip("10.0.0.1")).unwrap();
        let err = c.acquire(ip("10.0.0.1")).unwrap_err();
        assert_eq!(err.status(), 429);
        c.acquire(ip("10.0.0.2")).unwrap();
        c.release(a);
        c.acquire(ip("10.0.0.1")).unwrap();
        for _ in 0..2 {
            c.release(ip("10.0.0.1"));
        }
        c.release(ip("10.0.0.2"));
        assert_eq!(c.len(), 0, "no entry outlives its streams");
        // IPv6 by /64, mapped IPv4 as IPv4.
        assert_eq!(
            client_key(ip("2001:db8::1")),
            client_key(ip("2001:db8::ffff:1"))
        );
        assert_ne!(
            client_key(ip("2001:db8::1")),
            client_key(ip("2001:db8:0:1::1"))
        );
        assert_eq!(client_key(ip("::ffff:10.0.0.1")), ip("10.0.0.1"));
    }

    #[test]
    fn token_bucket_refills_and_says_when() {
        let r = RateLimiter::new(PublishRate {
            per_second: 2.0,
            burst: 3,
        });
        let who = || Publisher::Subject("alice".into());
        let t0 = Instant::now();
        for _ in 0..3 {
            r.check(who(), t0).unwrap();
        }
        let err = r.check(who(), t0).unwrap_err();
        assert_eq!(err.status(), 429);
        // Another publisher has its own bucket.
        r.check(Publisher::Address(ip("10.0.0.1")), t0).unwrap();
        // Half a second later one token is back.
        r.check(who(), t0 + Duration::from_millis(500)).unwrap();
        assert!(r.check(who(), t0 + Duration::from_millis(500)).is_err());
    }

    #[test]
    fn a_tiny_rate_refuses_with_a_long_retry_after_instead_of_panicking() {
        let r = RateLimiter::new(PublishRate {
            per_second: 1e-20,
            burst: 1,
        });
        let t0 = Instant::now();
        r.check(Publisher::Subject("a".into()), t0).unwrap();
        let err = r.check(Publisher::Subject("a".into()), t0).unwrap_err();
        assert_eq!(err.status(), 429);
        let response = axum::response::IntoResponse::into_response(err);
        let secs: u64 = response.headers()["retry-after"]
            .to_str()
            .unwrap()
            .parse()
            .unwrap();
        assert!(secs > 1_000_000_000, "{secs}");
    }

    #[test]
    fn table_is_bounded_and_sheds_idle_entries() {
        let r = RateLimiter::with_max_entries(
            PublishRate {
                per_second: 1.0,
                burst: 2,
            },
            3,
        );
        let t0 = Instant::now();
        for i in 1..=3 {
            r.check(Publisher::Address(ip(&format!("10.0.0.{i}"))), t0)
                .unwrap();
        }
        // All three are mid-bucket: a fourth publisher is told to retry, nothing grows.
        let err = r.check(Publisher::Address(ip("10.0.0.4")), t0).unwrap_err();
        assert_eq!(err.status(), 429);
        assert_eq!(r.len(), 3);
        // Once their buckets are full again they are dropped and the newcomer fits.
        let later = t0 + Duration::from_secs(5);
        r.check(Publisher::Address(ip("10.0.0.4")), later).unwrap();
        assert_eq!(r.len(), 1);
    }
}

//! When to reconnect: the reconnection time of the spec as a floor, exponential backoff with
//! jitter on repeated failures, a cap, and an optional limit.

use std::time::Duration;

/// How an [`EventSource`](crate::EventSource) waits before it reconnects.
///
/// - After an open stream ends (cleanly or not), it waits the **reconnection time**, as the spec
///   says: [`RetryPolicy::DEFAULT_RECONNECTION_TIME`] until the server sends a `retry:` field,
///   then the server's value.
/// - After the `n`-th failed attempt in a row (no stream opened), it waits
///   `min(max_delay, reconnection_time * 2^n)`, with jitter that draws the delay uniformly from
///   the upper half of that range (never below the reconnection time). A server's `retry:` above
///   the cap wins over the cap.
/// - A stream that opens resets the count of failures.
/// - With [`RetryPolicy::max_retries`], the source gives up (a fatal error ends the stream) after
///   that many retries in a row have failed.
/// - With [`RetryPolicy::retry_server_errors`], HTTP 5xx and 429 answers are retried like network
///   failures, waiting at least what `Retry-After` asks (at most [`RetryPolicy::MAX_RETRY_AFTER`]).
///   By default they fail the source, as the spec says.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    pub(crate) reconnection_time: Duration,
    pub(crate) max_delay: Duration,
    pub(crate) max_retries: Option<u32>,
    pub(crate) jitter: bool,
    pub(crate) retry_server_errors: bool,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            reconnection_time: Self::DEFAULT_RECONNECTION_TIME,
            max_delay: Self::DEFAULT_MAX_DELAY,
            max_retries: None,
            jitter: true,
            retry_server_errors: false,
        }
    }
}

impl RetryPolicy {
    /// The reconnection time before the server sets one with `retry:`: 3 s, what Chromium uses
    /// (the spec leaves it to the user agent, "probably in the region of a few seconds").
    pub const DEFAULT_RECONNECTION_TIME: Duration = Duration::from_secs(3);

    /// The default cap of the backoff: 30 s, so that a client finds a recovered server quickly
    /// while a crowd of failing clients still thins out.
    pub const DEFAULT_MAX_DELAY: Duration = Duration::from_secs(30);

    /// The longest `Retry-After` honoured: 5 minutes, so that a broken or hostile header cannot
    /// park a client for days.
    pub const MAX_RETRY_AFTER: Duration = Duration::from_secs(5 * 60);

    /// The default policy (see the type's docs).
    pub fn new() -> Self {
        Self::default()
    }

    /// The reconnection time until the server sends `retry:`.
    pub fn reconnection_time(mut self, delay: Duration) -> Self {
        self.reconnection_time = delay;
        self
    }

    /// The cap of the exponential backoff.
    pub fn max_delay(mut self, cap: Duration) -> Self {
        self.max_delay = cap;
        self
    }

    /// Give up after this many failed retries in a row (`0`: the first failure is final). The
    /// default is to retry forever, as browsers do.
    pub fn max_retries(mut self, retries: u32) -> Self {
        self.max_retries = Some(retries);
        self
    }

    /// Randomize backoff delays (on by default) so that clients cut off together do not come back
    /// together. Off, the delays are exact, which tests like.
    pub fn jitter(mut self, on: bool) -> Self {
        self.jitter = on;
        self
    }

    /// Retry HTTP 5xx and 429 answers instead of failing (off by default, as in the spec).
    pub fn retry_server_errors(mut self, on: bool) -> Self {
        self.retry_server_errors = on;
        self
    }

    /// The delay before the next attempt. `floor` is the current reconnection time (the server's
    /// `retry:` or the policy's), `failures` the failed attempts in a row so far (0 after an open
    /// stream ended), `retry_after` what the server asked for.
    pub(crate) fn delay(
        &self,
        floor: Duration,
        failures: u32,
        retry_after: Option<Duration>,
    ) -> Duration {
        let delay = if failures == 0 {
            floor
        } else {
            let cap = self.max_delay.max(floor);
            // 2^failures, saturating: past 2^31 the cap has long been reached.
            let factor = 1u32.checked_shl(failures.min(31)).unwrap_or(u32::MAX);
            let ceiling = floor.saturating_mul(factor).min(cap);
            if self.jitter {
                let low = (ceiling / 2).max(floor);
                if low >= ceiling {
                    ceiling
                } else {
                    let span = (ceiling - low).as_millis() as u64;
                    low + Duration::from_millis(rand::random_range(0..=span))
                }
            } else {
                ceiling
            }
        };
        match retry_after {
            Some(asked) => delay.max(asked.min(Self::MAX_RETRY_AFTER)),
            None => delay,
        }
    }

    /// Whether the source may try again after `failures` failed attempts in a row.
    pub(crate) fn may_retry(&self, failures: u32) -> bool {
        self.max_retries.is_none_or(|max| failures <= max)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const S: Duration = Duration::from_secs(1);

    #[test]
    fn after_an_open_stream_the_delay_is_the_reconnection_time_exactly() {
        let policy = RetryPolicy::new();
        for _ in 0..100 {
            assert_eq!(policy.delay(S, 0, None), S);
        }
    }

    #[test]
    fn without_jitter_failures_double_the_delay_up_to_the_cap() {
        let policy = RetryPolicy::new().jitter(false).max_delay(10 * S);
        let delays: Vec<_> = (1..=6).map(|n| policy.delay(S, n, None)).collect();
        assert_eq!(delays, [2 * S, 4 * S, 8 * S, 10 * S, 10 * S, 10 * S]);
    }

    #[test]
    fn jitter_stays_between_half_the_backoff_and_the_backoff_and_never_below_the_floor() {
        let policy = RetryPolicy::new().max_delay(10 * S);
        let mut seen = std::collections::HashSet::new();
        for failures in 1..=8 {
            let ceiling = (S * 2u32.pow(failures)).min(10 * S);
            for _ in 0..200 {
                let delay = policy.delay(S, failures, None);
                assert!(delay >= S, "{delay:?} below the floor");
                assert!(
                    delay >= ceiling / 2 && delay <= ceiling,
                    "{delay:?} for {failures}"
                );
                seen.insert(delay);
            }
        }
        assert!(seen.len() > 50, "jitter draws distinct delays");
    }

    #[test]
    fn a_server_retry_above_the_cap_wins() {
        let policy = RetryPolicy::new().jitter(false).max_delay(10 * S);
        assert_eq!(policy.delay(60 * S, 3, None), 60 * S);
    }

    #[test]
    fn huge_failure_counts_saturate_at_the_cap() {
        let policy = RetryPolicy::new().jitter(false);
        assert_eq!(
            policy.delay(S, u32::MAX, None),
            RetryPolicy::DEFAULT_MAX_DELAY
        );
        let huge = Duration::from_secs(u64::MAX / 4);
        assert_eq!(policy.delay(huge, 40, None), huge);
    }

    #[test]
    fn retry_after_is_a_minimum_and_is_clamped() {
        let policy = RetryPolicy::new().jitter(false);
        assert_eq!(policy.delay(S, 1, Some(7 * S)), 7 * S);
        assert_eq!(policy.delay(S, 3, Some(S / 2)), 8 * S);
        let year = Duration::from_secs(365 * 24 * 3600);
        assert_eq!(policy.delay(S, 1, Some(year)), RetryPolicy::MAX_RETRY_AFTER);
    }

    #[test]
    fn max_retries_counts_retries_after_the_first_failure() {
        let policy = RetryPolicy::new().max_retries(2);
        assert!(policy.may_retry(1));
        assert!(policy.may_retry(2));
        assert!(!policy.may_retry(3));
        assert!(!RetryPolicy::new().max_retries(0).may_retry(1));
        assert!(RetryPolicy::new().may_retry(u32::MAX));
    }
}

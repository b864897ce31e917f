//! The hub's counters, as lock-free atomics, rendered as Prometheus text on `GET /metrics`.

use std::fmt::Write as _;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Counters and gauges of one hub. Relaxed atomics: each is independent and only read for display.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Open HTTP connections (gauge; only counted by [`crate::serve`]).
    pub connections: AtomicU64,
    /// Open SSE streams (gauge).
    pub subscriptions: AtomicU64,
    /// Events stored by `POST /publish` (duplicates by idempotency key not counted).
    pub published: AtomicU64,
    /// Event frames handed to subscribers' connections (live and replayed).
    pub delivered: AtomicU64,
    /// Times a subscriber fell behind its live queue and caught up from the log.
    pub lagged_catchups: AtomicU64,
    /// Connections closed because the client stopped reading.
    pub slow_clients_closed: AtomicU64,
    /// Bytes of SSE frames handed to connections.
    pub bytes_out: AtomicU64,
    /// Store operations of a request (publish, replay read) that failed: a disk that is full or
    /// failing, Redis down. Alert on its rate; `GET /healthz` says whether it is still failing.
    pub store_errors: AtomicU64,
}

impl Metrics {
    /// Adds one to a counter.
    pub(crate) fn inc(counter: &AtomicU64) {
        counter.fetch_add(1, Relaxed);
    }

    /// Subtracts one from a gauge.
    pub(crate) fn dec(gauge: &AtomicU64) {
        gauge.fetch_sub(1, Relaxed);
    }

    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let rows: [(&str, &str, &str, &AtomicU64); 8] = [
            (
                "herald_connections",
                "gauge",
                "Open HTTP connections.",
                &self.connections,
            ),
            (
                "herald_subscriptions",
                "gauge",
                "Open SSE streams.",
                &self.subscriptions,
            ),
            (
                "herald_published_total",
                "counter",
                "Events stored by publish.",
                &self.published,
            ),
            (
                "herald_delivered_total",
                "counter",
                "Event frames handed to subscribers.",
                &self.delivered,
            ),
            (
                "herald_lagged_catchups_total",
                "counter",
                "Times a subscriber fell behind the live path and caught up from the log.",
                &self.lagged_catchups,
            ),
            (
                "herald_slow_clients_closed_total",
                "counter",
                "Connections closed because the client stopped reading.",
                &self.slow_clients_closed,
            ),
            (
                "herald_bytes_out_total",
                "counter",
                "Bytes of SSE frames sent.",
                &self.bytes_out,
            ),
            (
                "herald_store_errors_total",
                "counter",
                "Store operations of requests (publish, replay) that failed.",
                &self.store_errors,
            ),
        ];
        let mut out = String::with_capacity(1024);
        for (name, kind, help, value) in rows {
            let _ = writeln!(out, "# HELP {name} {help}");
            let _ = writeln!(out, "# TYPE {name} {kind}");
            let _ = writeln!(out, "{name} {}", value.load(Relaxed));
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_every_metric() {
        let m = Metrics::default();
        Metrics::inc(&m.published);
        Metrics::inc(&m.published);
        let text = m.render();
        assert!(text.contains("herald_published_total 2\n"), "{text}");
        assert!(text.contains("# TYPE herald_connections gauge\n"));
        assert_eq!(text.lines().filter(|l| !l.starts_with('#')).count(), 8);
    }
}

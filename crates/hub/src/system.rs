//! The hub's own system topic, [`METRICS_TOPIC`]: once a second (see
//! [`crate::HubConfig::metrics_interval`]) the hub sends an event of type [`METRICS_EVENT_TYPE`]
//! whose data is a JSON snapshot of itself, which `GET /dashboard` draws.
//!
//! These events do **not** go through the log: one event a second would be 86,400 a day pushing
//! users' events out of the retention window, and a snapshot is worth nothing once the next one
//! arrives. They go from this task straight to the broker, as frames with no `id:`, to streams
//! that name the topic exactly (`**` or `herald/*` do not select it). Resume stays sound: an event
//! without `id:` never moves a client's last event id (a resumed stream first restores it, see
//! `sse`), there is nothing to replay, and a subscriber that cannot take one simply misses it.
//!
//! The last [`MAX_METRICS_HISTORY`] snapshots are also kept in memory and served as one JSON
//! array at `GET /dashboard/samples`, so that a dashboard draws the last minutes as it opens.
//!
//! Topics whose first segment is `herald` ([`RESERVED_TOPIC_PREFIX`]) are the hub's: publishes to
//! them are refused, so nobody can fake the hub's metrics.
//!
//! The data, e.g.:
//!
//! ```json
//! {"time":1764629000000,"interval_ms":1000,"connections":3,"subscriptions":2,
//!  "published_per_sec":12.0,"delivered_per_sec":24.0,"catchups_per_sec":0.0,
//!  "slow_closed_per_sec":0.0,"bytes_out_per_sec":5120.0,"published_total":420,
//!  "delivered_total":840,"catchups_total":0,"slow_clients_closed_total":0,
//!  "rss_bytes":12582912,"topic_count":2,
//!  "topics":[{"topic":"chat/demo","subscriptions":1},{"topic":"herald/metrics","subscriptions":1}]}
//! ```

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Mutex, Weak};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use crate::Shared;

/// The topic the hub publishes its metrics to.
pub const METRICS_TOPIC: &str = "herald/metrics";
/// The event type of the metrics events.
pub const METRICS_EVENT_TYPE: &str = "metrics";
/// Topics equal to `herald` or starting with this are the hub's own: publishing to them is refused.
pub const RESERVED_TOPIC_PREFIX: &str = "herald/";
/// Topics (and wildcard patterns) listed in a snapshot, those with the most subscriptions: a
/// dashboard needs the big ones, and the event stays small with 10,000 topics.
pub const MAX_METRICS_TOPICS: usize = 10;

/// Snapshots kept for `GET /dashboard/samples`, so that a dashboard opened now draws the last
/// five minutes at once: 300 of about 500 bytes, some 150 KB.
pub const MAX_METRICS_HISTORY: usize = 300;

/// The last [`MAX_METRICS_HISTORY`] snapshots' JSON, oldest first.
#[derive(Debug, Default)]
pub(crate) struct History(Mutex<VecDeque<String>>);

impl History {
    fn push(&self, json: String) {
        let mut h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if h.len() == MAX_METRICS_HISTORY {
            h.pop_front();
        }
        h.push_back(json);
    }

    /// The kept snapshots as one JSON array, oldest first.
    pub(crate) fn to_json(&self) -> String {
        let h = self.0.lock().unwrap_or_else(|e| e.into_inner());
        let mut out = String::with_capacity(2 + h.iter().map(|s| s.len() + 1).sum::<usize>());
        out.push('[');
        for (i, sample) in h.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(sample);
        }
        out.push(']');
        out
    }
}

/// True for the topics only the hub publishes to.
pub(crate) fn is_reserved_topic(topic: &str) -> bool {
    topic == "herald" || topic.starts_with(RESERVED_TOPIC_PREFIX)
}

/// The counters a rate is computed from.
#[derive(Clone, Copy, Default)]
struct Totals {
    published: u64,
    delivered: u64,
    catchups: u64,
    slow_closed: u64,
    bytes_out: u64,
}

/// Sends a snapshot every `period` until the hub is dropped or closed.
pub(crate) async fn run(shared: Weak<Shared>, period: Duration) {
    let mut ticker = tokio::time::interval(period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut previous: Option<(Totals, tokio::time::Instant)> = None;
    loop {
        ticker.tick().await;
        // Holding only a weak reference: the task must not keep a dropped hub alive.
        let Some(shared) = shared.upgrade() else {
            break;
        };
        if shared.broker.is_closed() {
            break;
        }
        let now = tokio::time::Instant::now();
        let totals = read_totals(&shared);
        if let Some((before, then)) = previous {
            let data = snapshot(&shared, &before, &totals, now - then, period);
            // The type is a constant without CR, LF or NUL, so this cannot fail.
            let frame = herald_wire::Event::new(data.clone())
                .with_type(METRICS_EVENT_TYPE)
                .map(|e| e.encode())
                .unwrap_or_default();
            shared.broker.dispatch_unlogged(METRICS_TOPIC, &frame);
            shared.metrics_history.push(data);
        }
        previous = Some((totals, now));
    }
}

fn read_totals(shared: &Shared) -> Totals {
    let m = &shared.metrics;
    Totals {
        published: m.published.load(Relaxed),
        delivered: m.delivered.load(Relaxed),
        catchups: m.lagged_catchups.load(Relaxed),
        slow_closed: m.slow_clients_closed.load(Relaxed),
        bytes_out: m.bytes_out.load(Relaxed),
    }
}

/// One snapshot, as JSON.
fn snapshot(
    shared: &Shared,
    before: &Totals,
    now: &Totals,
    elapsed: Duration,
    period: Duration,
) -> String {
    let secs = elapsed.as_secs_f64().max(0.001);
    // One decimal: enough for a chart, and the JSON stays short.
    let rate = |a: u64, b: u64| (b.saturating_sub(a) as f64 / secs * 10.0).round() / 10.0;
    let (top, topic_count) = shared.broker.subscription_counts(MAX_METRICS_TOPICS);
    let topics: Vec<_> = top
        .into_iter()
        .map(|(topic, n)| serde_json::json!({ "topic": topic, "subscriptions": n }))
        .collect();
    let m = &shared.metrics;
    let time = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0);
    let data = serde_json::json!({
        "time": time,
        "interval_ms": period.as_millis() as u64,
        "connections": m.connections.load(Relaxed),
        "subscriptions": m.subscriptions.load(Relaxed),
        "published_per_sec": rate(before.published, now.published),
        "delivered_per_sec": rate(before.delivered, now.delivered),
        "catchups_per_sec": rate(before.catchups, now.catchups),
        "slow_closed_per_sec": rate(before.slow_closed, now.slow_closed),
        "bytes_out_per_sec": rate(before.bytes_out, now.bytes_out),
        "published_total": now.published,
        "delivered_total": now.delivered,
        "catchups_total": now.catchups,
        "slow_clients_closed_total": now.slow_closed,
        "rss_bytes": rss_bytes(),
        "topic_count": topic_count,
        "topics": topics,
    });
    data.to_string()
}

/// The process's resident memory (Linux: `VmRSS` of `/proc/self/status`, which is in kB and so
/// needs no page size); `None` elsewhere.
fn rss_bytes() -> Option<u64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let kb: u64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .strip_suffix("kB")?
        .trim()
        .parse()
        .ok()?;
    Some(kb * 1024)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reserved_topics() {
        for t in ["herald", "herald/metrics", "herald/x/y"] {
            assert!(is_reserved_topic(t), "{t}");
        }
        for t in ["heralds", "herald-x/metrics", "chat/herald", "heraldx/y"] {
            assert!(!is_reserved_topic(t), "{t}");
        }
    }

    #[test]
    fn history_is_bounded_and_ordered() {
        let h = History::default();
        assert_eq!(h.to_json(), "[]");
        for i in 0..MAX_METRICS_HISTORY + 2 {
            h.push(format!("{{\"n\":{i}}}"));
        }
        let v: Vec<serde_json::Value> = serde_json::from_str(&h.to_json()).unwrap();
        assert_eq!(v.len(), MAX_METRICS_HISTORY);
        assert_eq!(v[0]["n"], 2);
        assert_eq!(v[MAX_METRICS_HISTORY - 1]["n"], MAX_METRICS_HISTORY + 1);
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn reads_resident_memory() {
        let rss = rss_bytes().expect("VmRSS on Linux");
        assert!(rss > 1024 * 1024, "{rss}");
    }
}

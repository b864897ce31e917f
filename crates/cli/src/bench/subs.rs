//! Subscribers: one tokio task per SSE connection, counting what arrives.
//!
//! A [`LocalPool`] runs `count` subscribers in this process; the parent of a multi-process run
//! talks to pools in child processes through [`super::worker`]. Both end in the same
//! [`GroupReport`].

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::{Context, bail};
use hdrhistogram::Histogram;
use herald_wire::Parser;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;
use tokio::sync::{Semaphore, watch};
use tokio::task::JoinSet;

use super::http::{self, BodyDecoder, ResponseHead, Target};
use super::sys::mono_ns;

/// Bytes read from a socket at a time. Small: an SSE event of a benchmark is a few hundred bytes,
/// and the buffer lives on the stack only during the read, not in the idle task.
const READ_BUF: usize = 4096;

/// How long one subscriber may take to connect and receive its response head.
const OPEN_TIMEOUT: Duration = Duration::from_secs(30);

/// Number of latency histograms a pool shares among its subscribers; spreads lock contention.
const HIST_SHARDS: usize = 8;

/// Largest sequence number a subscriber accepts as the harness's own; anything above is a
/// foreign (or forged) event, so a hostile server cannot make the gap bookkeeping huge.
pub(crate) const MAX_SEQ: u64 = 1 << 40;

/// Highest latency the histograms hold (60 s, in microseconds); larger values are clamped.
const MAX_LATENCY_US: u64 = 60_000_000;

/// Distinct error messages remembered per pool; more are counted under "other errors".
const MAX_ERROR_KINDS: usize = 16;

/// The data of a benchmark event: `"{seq} {send time in ns} {acked below} "` padded with `x` to
/// `size` bytes, where every sequence number below `acked_below` was acknowledged before this
/// event was sent. Only ASCII letters, digits and spaces, so it can be pasted into a JSON string.
pub(crate) fn payload(seq: u64, sent_ns: u64, acked_below: u64, size: usize) -> String {
    let mut s = format!("{seq} {sent_ns} {acked_below} ");
    if s.len() < size {
        s.extend(std::iter::repeat_n('x', size - s.len()));
    }
    s
}

/// What [`payload`] wrote.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Payload {
    /// The sequence number.
    pub(crate) seq: u64,
    /// The send time ([`mono_ns`]).
    pub(crate) sent_ns: u64,
    /// Every sequence number below this was acknowledged before the send.
    pub(crate) acked_below: u64,
}

/// Reads back what [`payload`] wrote, or `None` for anything else. A server that forwards the
/// JSON string of the publish with its quotes is understood too.
pub(crate) fn parse_payload(data: &str) -> Option<Payload> {
    let mut parts = data.strip_prefix('"').unwrap_or(data).splitn(4, ' ');
    let seq = parts.next()?.parse::<u64>().ok().filter(|s| *s < MAX_SEQ)?;
    let sent_ns = parts.next()?.parse::<u64>().ok()?;
    let acked_below = parts.next()?.parse::<u64>().ok().filter(|a| *a <= seq)?;
    Some(Payload {
        seq,
        sent_ns,
        acked_below,
    })
}

/// What one subscriber has seen of the sequence numbers, in memory proportional to the number of
/// gaps (not of events): everything below `next` arrived except the `missing` ranges.
#[derive(Debug, Default)]
pub(crate) struct SeqTracker {
    next: u64,
    /// Sorted, disjoint, half-open ranges of sequence numbers skipped so far.
    missing: Vec<(u64, u64)>,
}

/// How an arriving sequence number relates to what came before.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Seen {
    /// First time, and after every lower number seen so far.
    New,
    /// First time, but after a higher number (out of order).
    Late,
    /// Seen before.
    Duplicate,
}

impl SeqTracker {
    /// Records `seq` (below [`MAX_SEQ`]).
    pub(crate) fn record(&mut self, seq: u64) -> Seen {
        if seq >= self.next {
            if seq > self.next {
                self.missing.push((self.next, seq));
            }
            self.next = seq + 1;
            return Seen::New;
        }
        let i = self.missing.partition_point(|r| r.1 <= seq);
        match self.missing.get(i).copied() {
            Some((start, end)) if start <= seq => {
                // Cut the range around `seq`; late arrivals are rare, so the shifting is cheap.
                match (start == seq, end == seq + 1) {
                    (true, true) => {
                        self.missing.remove(i);
                    }
                    (true, false) => self.missing[i].0 = seq + 1,
                    (false, true) => self.missing[i].1 = seq,
                    (false, false) => {
                        self.missing[i].1 = seq;
                        self.missing.insert(i + 1, (seq + 1, end));
                    }
                }
                Seen::Late
            }
            _ => Seen::Duplicate,
        }
    }

    /// Whether `seq` has arrived.
    pub(crate) fn contains(&self, seq: u64) -> bool {
        if seq >= self.next {
            return false;
        }
        let i = self.missing.partition_point(|r| r.1 <= seq);
        !matches!(self.missing.get(i), Some((start, _)) if *start <= seq)
    }

    /// How many distinct sequence numbers have arrived.
    pub(crate) fn unique(&self) -> u64 {
        self.next - self.missing.iter().map(|(s, e)| e - s).sum::<u64>()
    }
}

/// Live counters of a group of subscribers (local or in a child), for the progress bar and for
/// knowing when everyone is connected or everything is delivered.
#[derive(Clone, Copy, Debug, Default, Serialize, Deserialize)]
pub(crate) struct Progress {
    /// Subscribers that got a 200 `text/event-stream` response.
    pub(crate) opened: u64,
    /// Subscribers that could not connect or got another response.
    pub(crate) failed: u64,
    /// Opened subscribers whose stream ended before the run did.
    pub(crate) closed: u64,
    /// Benchmark events received, duplicates included.
    pub(crate) received: u64,
    /// Distinct (subscriber, sequence number) pairs received.
    pub(crate) unique: u64,
}

/// Everything a group of subscribers observed, ready to be merged with other groups.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub(crate) struct GroupReport {
    /// Subscribers that got a 200 `text/event-stream` response.
    pub(crate) opened: u64,
    /// Subscribers that never got one.
    pub(crate) failed: u64,
    /// Subscribers still connected when the run stopped them.
    pub(crate) held: u64,
    /// Error messages and how often each happened.
    pub(crate) errors: Vec<(String, u64)>,
    /// Distinct deliveries of acknowledged publishes.
    pub(crate) delivered: u64,
    /// Distinct deliveries of publishes that were not acknowledged (failed or timed out).
    pub(crate) delivered_unacked: u64,
    /// Deliveries of a sequence number the subscriber already had.
    pub(crate) duplicates: u64,
    /// Deliveries that came after a higher sequence number.
    pub(crate) out_of_order: u64,
    /// Events that arrived after an event published once they were already acknowledged: the
    /// server reordered them (publishes that raced each other do not count).
    pub(crate) order_violations: u64,
    /// Events whose data is not a benchmark payload.
    pub(crate) foreign: u64,
    /// Events over the size limit, dropped by the parser.
    pub(crate) too_large: u64,
    /// Publish-to-receive latency in microseconds, as (value, count) pairs.
    pub(crate) latency_us: Vec<(u64, u64)>,
    /// When the last benchmark event arrived ([`mono_ns`]), 0 if none.
    pub(crate) last_delivery_ns: u64,
}

impl GroupReport {
    /// Adds `other` into `self`.
    pub(crate) fn merge(&mut self, other: GroupReport) {
        self.opened += other.opened;
        self.failed += other.failed;
        self.held += other.held;
        self.delivered += other.delivered;
        self.delivered_unacked += other.delivered_unacked;
        self.duplicates += other.duplicates;
        self.out_of_order += other.out_of_order;
        self.order_violations += other.order_violations;
        self.foreign += other.foreign;
        self.too_large += other.too_large;
        self.latency_us.extend(other.latency_us);
        self.last_delivery_ns = self.last_delivery_ns.max(other.last_delivery_ns);
        for (msg, n) in other.errors {
            match self.errors.iter_mut().find(|(m, _)| *m == msg) {
                Some(entry) => entry.1 += n,
                None => self.errors.push((msg, n)),
            }
        }
    }

    /// The latency histogram of this report.
    pub(crate) fn histogram(&self) -> Histogram<u64> {
        let mut h = new_histogram();
        for &(v, n) in &self.latency_us {
            h.saturating_record_n(v, n);
        }
        h
    }
}

/// A histogram of microseconds from 1 µs to 60 s at 3 significant digits.
pub(crate) fn new_histogram() -> Histogram<u64> {
    // The bounds are valid constants, so construction cannot fail.
    Histogram::new_with_bounds(1, MAX_LATENCY_US, 3).unwrap_or_else(|_| unreachable!())
}

/// The (value, count) pairs of a histogram, for sending it between processes.
pub(crate) fn histogram_pairs(h: &Histogram<u64>) -> Vec<(u64, u64)> {
    h.iter_recorded()
        .map(|v| (v.value_iterated_to(), v.count_at_value()))
        .collect()
}

/// Which of `urls` event streams subscriber `index` of a run of `total` uses: equal contiguous
/// blocks (`index * urls / total`) whose sizes differ by one at most when the split is uneven.
/// Always the first with one URL.
pub(crate) fn url_of(index: usize, total: usize, urls: usize) -> usize {
    // `index < total`, so the quotient is below `urls`; `max(1)` only guards a misuse.
    (index * urls / total.max(1)).min(urls.saturating_sub(1))
}

/// What all subscribers of a pool need to know.
#[derive(Debug)]
pub(crate) struct SubsConfig {
    /// The event streams to subscribe to (at least one), spread by [`url_of`].
    pub(crate) targets: Vec<Target>,
    /// Extra request headers, `Name: value`.
    pub(crate) headers: Vec<String>,
    /// Number of subscribers.
    pub(crate) count: usize,
    /// Index of the first subscriber across all processes (spreads source addresses and URLs).
    pub(crate) first_index: usize,
    /// Number of subscribers across all processes (spreads URLs).
    pub(crate) total: usize,
    /// How many subscribers may be connecting at the same time (the server's accept queue is
    /// finite; flooding it only produces SYN retries of a second or more).
    pub(crate) connect_concurrency: usize,
    /// Size limit of one event for the parser.
    pub(crate) max_event_size: usize,
}

#[derive(Default)]
struct Counters {
    opened: AtomicU64,
    failed: AtomicU64,
    closed: AtomicU64,
    received: AtomicU64,
    unique: AtomicU64,
    last_delivery_ns: AtomicU64,
}

struct Shared {
    counters: Counters,
    hists: Vec<Mutex<Histogram<u64>>>,
    errors: Mutex<HashMap<String, u64>>,
}

impl Shared {
    fn error(&self, msg: String) {
        // A std mutex: held for one map update, never across an await.
        let mut errors = self.errors.lock().unwrap_or_else(PoisonError::into_inner);
        let key = if errors.len() < MAX_ERROR_KINDS || errors.contains_key(&msg) {
            msg
        } else {
            "other errors".to_owned()
        };
        *errors.entry(key).or_default() += 1;
    }
}

/// What one subscriber task hands back when it ends.
#[derive(Debug, Default)]
struct SubOutcome {
    opened: bool,
    held: bool,
    tracker: SeqTracker,
    duplicates: u64,
    out_of_order: u64,
    order_violations: u64,
    /// The highest `acked_below` among the events received so far.
    acked_below: u64,
    foreign: u64,
    too_large: u64,
}

/// Subscribers running as tasks of this process.
pub(crate) struct LocalPool {
    shared: Arc<Shared>,
    stop: watch::Sender<bool>,
    tasks: JoinSet<SubOutcome>,
}

impl LocalPool {
    /// Starts `config.count` subscribers; they connect in the background.
    pub(crate) fn start(config: SubsConfig) -> Self {
        let shared = Arc::new(Shared {
            counters: Counters::default(),
            hists: (0..HIST_SHARDS)
                .map(|_| Mutex::new(new_histogram()))
                .collect(),
            errors: Mutex::new(HashMap::new()),
        });
        let (stop, stop_rx) = watch::channel(false);
        let sem = Arc::new(Semaphore::new(config.connect_concurrency.max(1)));
        let config = Arc::new(config);
        let mut tasks = JoinSet::new();
        for i in 0..config.count {
            tasks.spawn(subscriber(
                i,
                Arc::clone(&config),
                Arc::clone(&shared),
                stop_rx.clone(),
                Arc::clone(&sem),
            ));
        }
        Self {
            shared,
            stop,
            tasks,
        }
    }

    /// The live counters.
    pub(crate) fn progress(&self) -> Progress {
        let c = &self.shared.counters;
        Progress {
            opened: c.opened.load(Ordering::Relaxed),
            failed: c.failed.load(Ordering::Relaxed),
            closed: c.closed.load(Ordering::Relaxed),
            received: c.received.load(Ordering::Relaxed),
            unique: c.unique.load(Ordering::Relaxed),
        }
    }

    /// Stops every subscriber and reports. `not_acked` lists, sorted, the sequence numbers below
    /// the highest acknowledged one whose publish was not acknowledged: their deliveries are not
    /// counted as delivered.
    pub(crate) async fn finish(mut self, not_acked: &[u64]) -> GroupReport {
        let _ = self.stop.send(true);
        let mut report = GroupReport::default();
        // Every task returns promptly once stopped (it is either in a select with the stop signal
        // or about to reach one), so this loop ends after `count` joins.
        while let Some(joined) = self.tasks.join_next().await {
            let Ok(out) = joined else {
                report.failed += 1;
                continue;
            };
            if !out.opened {
                continue;
            }
            report.opened += 1;
            report.held += u64::from(out.held);
            let unacked = not_acked
                .iter()
                .filter(|&&s| out.tracker.contains(s))
                .count() as u64;
            report.delivered += out.tracker.unique() - unacked;
            report.delivered_unacked += unacked;
            report.duplicates += out.duplicates;
            report.out_of_order += out.out_of_order;
            report.order_violations += out.order_violations;
            report.foreign += out.foreign;
            report.too_large += out.too_large;
        }
        let c = &self.shared.counters;
        report.failed += c.failed.load(Ordering::Relaxed);
        report.last_delivery_ns = c.last_delivery_ns.load(Ordering::Relaxed);
        let mut hist = new_histogram();
        for h in &self.shared.hists {
            let h = h.lock().unwrap_or_else(PoisonError::into_inner);
            // Same bounds on both sides, so adding cannot fail.
            let _ = hist.add(&*h);
        }
        report.latency_us = histogram_pairs(&hist);
        let errors = self
            .shared
            .errors
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        report.errors = errors.iter().map(|(m, n)| (m.clone(), *n)).collect();
        report.errors.sort();
        report
    }
}

async fn subscriber(
    index: usize,
    config: Arc<SubsConfig>,
    shared: Arc<Shared>,
    mut stop: watch::Receiver<bool>,
    sem: Arc<Semaphore>,
) -> SubOutcome {
    let mut out = SubOutcome::default();
    let opened = tokio::select! {
        biased;
        _ = stop.wait_for(|s| *s) => return out,
        r = tokio::time::timeout(OPEN_TIMEOUT, open(index, &config, &sem)) => r,
    };
    let (stream, head, rest) = match opened {
        Ok(Ok(x)) => x,
        Ok(Err(e)) => {
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            shared.error(format!("{e:#}"));
            return out;
        }
        Err(_) => {
            shared.counters.failed.fetch_add(1, Ordering::Relaxed);
            shared.error(format!(
                "no response head within {} s",
                OPEN_TIMEOUT.as_secs()
            ));
            return out;
        }
    };
    out.opened = true;
    shared.counters.opened.fetch_add(1, Ordering::Relaxed);

    let mut body = BodyDecoder::new(head.body);
    let mut parser = Parser::new().with_max_event_size(config.max_event_size);
    let shard = index % HIST_SHARDS;
    let mut ended = handle(&rest, &mut body, &mut parser, &mut out, &shared, shard);
    while ended.is_none() {
        tokio::select! {
            biased;
            _ = stop.wait_for(|s| *s) => {
                out.held = true;
                return out;
            }
            r = stream.readable() => {
                if let Err(e) = r {
                    ended = Some(Err(e.to_string()));
                    break;
                }
            }
        }
        // Declared after the await, so the buffer is never part of the idle task's state.
        let mut buf = [0u8; READ_BUF];
        ended = match stream.try_read(&mut buf) {
            Ok(0) if body.ends_at_close() => Some(Ok(())),
            Ok(0) => Some(Err("connection closed in the middle of the body".to_owned())),
            Ok(n) => handle(&buf[..n], &mut body, &mut parser, &mut out, &shared, shard),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => None,
            Err(e) => Some(Err(e.to_string())),
        };
    }
    shared.counters.closed.fetch_add(1, Ordering::Relaxed);
    match ended {
        Some(Err(e)) => shared.error(format!("stream broken: {e}")),
        _ => shared.error("stream ended by the server".to_owned()),
    }
    out
}

/// Feeds bytes from the socket through the body decoder and the SSE parser and counts the
/// events. Returns `Some` when the stream is over (`Err` when it is malformed).
fn handle(
    bytes: &[u8],
    body: &mut BodyDecoder,
    parser: &mut Parser,
    out: &mut SubOutcome,
    shared: &Shared,
    shard: usize,
) -> Option<Result<(), String>> {
    if let Err(e) = body.decode(bytes, &mut |b| parser.feed(b)) {
        return Some(Err(e.to_string()));
    }
    let now = mono_ns();
    let mut hist = None;
    let (mut received, mut unique) = (0, 0);
    while let Some(event) = parser.next_event() {
        let Ok(event) = event else {
            out.too_large += 1;
            continue;
        };
        let Some(Payload {
            seq,
            sent_ns: sent,
            acked_below,
        }) = parse_payload(&event.data)
        else {
            out.foreign += 1;
            continue;
        };
        received += 1;
        match out.tracker.record(seq) {
            Seen::New => unique += 1,
            Seen::Late => {
                unique += 1;
                out.out_of_order += 1;
                // An event published after this one was acknowledged came first.
                if seq < out.acked_below {
                    out.order_violations += 1;
                }
            }
            Seen::Duplicate => out.duplicates += 1,
        }
        out.acked_below = out.acked_below.max(acked_below);
        // One lock per read, not per event.
        let h = hist.get_or_insert_with(|| {
            shared.hists[shard]
                .lock()
                .unwrap_or_else(PoisonError::into_inner)
        });
        h.saturating_record((now.saturating_sub(sent) / 1000).max(1));
    }
    drop(hist);
    if received > 0 {
        let c = &shared.counters;
        c.received.fetch_add(received, Ordering::Relaxed);
        c.unique.fetch_add(unique, Ordering::Relaxed);
        c.last_delivery_ns.fetch_max(now, Ordering::Relaxed);
    }
    body.is_done().then_some(Ok(()))
}

/// Connects, sends the request and reads the response head; only a 200 `text/event-stream`
/// response counts as opened. Returns the stream, the head and the body bytes read with it.
async fn open(
    index: usize,
    config: &SubsConfig,
    sem: &Semaphore,
) -> anyhow::Result<(TcpStream, ResponseHead, Vec<u8>)> {
    let _permit = sem.acquire().await.context("shutting down")?;
    let global = config.first_index + index;
    let target = &config.targets[url_of(global, config.total, config.targets.len())];
    let mut stream = http::connect(target, global)
        .await
        .with_context(|| format!("connect to {}", target.addr))?;
    http::send_get(&mut stream, target, &config.headers)
        .await
        .context("send request")?;
    let mut buf = Vec::with_capacity(1024);
    loop {
        if buf.capacity() == buf.len() {
            buf.reserve(1024);
        }
        let n = stream.read_buf(&mut buf).await.context("read response")?;
        if let Some(end) = http::head_end(&buf) {
            let head = http::parse_head(&buf[..end]).map_err(anyhow::Error::msg)?;
            if head.status != 200 {
                bail!("status {} (expected 200)", head.status);
            }
            let ct = head.content_type.as_deref().unwrap_or("");
            let essence = ct.split(';').next().unwrap_or("").trim();
            if !essence.eq_ignore_ascii_case("text/event-stream") {
                bail!("Content-Type `{ct}` (expected text/event-stream)");
            }
            let rest = buf.split_off(end);
            return Ok((stream, head, rest));
        }
        if buf.len() > http::MAX_HEAD_SIZE {
            bail!("response head over {} bytes", http::MAX_HEAD_SIZE);
        }
        if n == 0 {
            bail!("connection closed before the response head");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trips_and_is_padded() {
        let p = payload(42, 123_456_789, 40, 64);
        assert_eq!(p.len(), 64);
        assert!(p.starts_with("42 123456789 40 xxx"));
        let expected = Some(Payload {
            seq: 42,
            sent_ns: 123_456_789,
            acked_below: 40,
        });
        assert_eq!(parse_payload(&p), expected);
        assert_eq!(parse_payload(&format!("\"{p}\"")), expected);
        // A size below the header keeps the header whole.
        assert_eq!(payload(7, 9, 0, 1), "7 9 0 ");
        for foreign in [
            "",
            "hello",
            "1",
            "1 2",
            "x 2 0 ",
            "-1 2 0 ",
            "1 -2 0 ",
            "1 2 3 ",
            "1099511627776 5 0 ",
        ] {
            assert_eq!(parse_payload(foreign), None, "{foreign:?}");
        }
    }

    #[test]
    fn tracker_counts_gaps_late_and_duplicates() {
        let mut t = SeqTracker::default();
        assert_eq!(t.record(0), Seen::New);
        assert_eq!(t.record(1), Seen::New);
        assert_eq!(t.record(1), Seen::Duplicate);
        assert_eq!(t.record(5), Seen::New); // 2, 3, 4 missing
        assert_eq!(t.unique(), 3);
        assert!(!t.contains(3) && t.contains(5) && !t.contains(6));
        assert_eq!(t.record(3), Seen::Late); // splits the gap
        assert_eq!(t.record(3), Seen::Duplicate);
        assert_eq!(t.record(2), Seen::Late);
        assert_eq!(t.record(4), Seen::Late);
        assert_eq!(t.missing, []);
        assert_eq!(t.unique(), 6);
        assert_eq!(t.record(9), Seen::New);
        assert_eq!(t.record(8), Seen::Late);
        assert_eq!(t.record(6), Seen::Late);
        assert_eq!(t.missing, [(7, 8)]);
        assert_eq!(t.unique(), 9);
        assert_eq!(t.record(0), Seen::Duplicate);
    }

    /// How many of `total` subscribers each of `urls` URLs gets.
    fn per_url(total: usize, urls: usize) -> Vec<usize> {
        let mut counts = vec![0; urls];
        for i in 0..total {
            counts[url_of(i, total, urls)] += 1;
        }
        counts
    }

    #[test]
    fn subscribers_spread_over_urls_in_equal_blocks() {
        assert_eq!(per_url(7, 1), [7]);
        assert_eq!(per_url(6, 2), [3, 3]);
        assert_eq!(per_url(7, 2), [4, 3]);
        assert_eq!(per_url(5, 3), [2, 2, 1]);
        assert_eq!(
            per_url(100_000, 6),
            [16_667, 16_667, 16_666, 16_667, 16_667, 16_666]
        );
        // Fewer subscribers than URLs: some URLs get none, none gets two.
        assert_eq!(per_url(2, 3), [1, 1, 0]);
        // Contiguous: the URL index never goes down as the subscriber index goes up.
        let order: Vec<usize> = (0..10).map(|i| url_of(i, 10, 3)).collect();
        assert_eq!(order, [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]);
    }

    #[test]
    fn reports_merge() {
        let mut a = GroupReport {
            opened: 1,
            errors: vec![("x".into(), 1)],
            latency_us: vec![(10, 1)],
            last_delivery_ns: 5,
            ..Default::default()
        };
        a.merge(GroupReport {
            opened: 2,
            errors: vec![("x".into(), 2), ("y".into(), 1)],
            latency_us: vec![(10, 2)],
            last_delivery_ns: 3,
            ..Default::default()
        });
        assert_eq!(a.opened, 3);
        assert_eq!(a.errors, [("x".to_owned(), 3), ("y".to_owned(), 1)]);
        assert_eq!(a.histogram().len(), 3);
        assert_eq!(a.last_delivery_ns, 5);
    }
}

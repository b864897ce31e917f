//! The publisher of `herald bench fanout`: `in_flight` keep-alive connections, each sending one
//! POST at a time, claiming sequence numbers from one shared counter, paced at a fixed rate or as
//! fast as acknowledgements come back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::time::Instant;

use super::http::{self, BodyDecoder, BodyKind, Target};
use super::subs::{histogram_pairs, new_histogram, payload};
use super::sys::mono_ns;

/// How long one publish may wait for its response before it counts as an error.
const ACK_TIMEOUT: Duration = Duration::from_secs(10);

/// How far behind its schedule a fixed-rate publish may go out before it counts as late (tokio's
/// timer granularity is 1 ms).
pub(crate) const LATE: Duration = Duration::from_millis(5);

/// Largest publish response body read (herald answers `{"id": ...}`).
const MAX_ACK_BODY: u64 = 1024 * 1024;

/// How fast to publish.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Rate {
    /// Events per second, spread evenly.
    PerSec(f64),
    /// As fast as acknowledgements come back.
    Max,
}

/// What the publisher needs.
#[derive(Debug)]
pub(crate) struct PubConfig {
    /// Where to POST.
    pub(crate) target: Target,
    /// Extra request headers, `Name: value`.
    pub(crate) headers: Vec<String>,
    /// The body before the data.
    pub(crate) body_prefix: String,
    /// The body after the data.
    pub(crate) body_suffix: String,
    /// `Content-Type` of the publish.
    pub(crate) content_type: String,
    /// Size of the data of each event.
    pub(crate) size: usize,
    /// Pace.
    pub(crate) rate: Rate,
    /// How long to publish.
    pub(crate) duration: Duration,
    /// Publishes in flight at most (one per connection).
    pub(crate) in_flight: usize,
    /// Publishes at most, whatever the duration.
    pub(crate) max_events: u64,
}

/// What the publisher did.
#[derive(Debug, Default)]
pub(crate) struct PubOutcome {
    /// Publishes acknowledged with a 2xx status.
    pub(crate) acked: u64,
    /// Publishes sent or attempted that were not acknowledged.
    pub(crate) errors: u64,
    /// Sorted sequence numbers below the highest acknowledged one that were not acknowledged.
    pub(crate) not_acked: Vec<u64>,
    /// Error messages and their counts.
    pub(crate) error_kinds: Vec<(String, u64)>,
    /// Publish acknowledgement latency (µs).
    pub(crate) ack_latency_us: Vec<(u64, u64)>,
    /// Wall time from the first publish to the last acknowledgement.
    pub(crate) elapsed: Duration,
}

/// Live counters for the progress bar.
#[derive(Debug, Default)]
pub(crate) struct PubCounters {
    /// Acknowledged publishes.
    pub(crate) acked: AtomicU64,
    /// Failed publishes.
    pub(crate) errors: AtomicU64,
    /// Publishes sent more than [`LATE`] after their scheduled time (fixed rate only).
    pub(crate) late: AtomicU64,
}

/// The acknowledgement watermark: every sequence number below `below` is acknowledged. Each
/// event carries the watermark at its send time, so a subscriber can tell a server that reorders
/// events from publishes that merely raced each other (see [`super::subs::SeqTracker`]).
#[derive(Debug, Default)]
struct Watermark {
    /// Published as an atomic so that a send reads it without taking the lock.
    below: AtomicU64,
    /// Acknowledged sequence numbers at or above `below`; a std mutex, held for a set update.
    ahead: std::sync::Mutex<std::collections::BTreeSet<u64>>,
}

impl Watermark {
    fn ack(&self, seq: u64) {
        let mut ahead = self
            .ahead
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut below = self.below.load(Ordering::Relaxed);
        if seq != below {
            ahead.insert(seq);
            return;
        }
        below += 1;
        while ahead.remove(&below) {
            below += 1;
        }
        self.below.store(below, Ordering::Relaxed);
    }
}

struct WorkerOutcome {
    acked: Vec<u64>,
    errors: Vec<String>,
    hist: Histogram<u64>,
}

/// Publishes until the duration or the event cap is reached.
pub(crate) async fn run(config: PubConfig, counters: Arc<PubCounters>) -> PubOutcome {
    let config = Arc::new(config);
    let next = Arc::new(AtomicU64::new(0));
    let watermark = Arc::new(Watermark::default());
    let start = Instant::now();
    let start_mono = mono_ns();
    let mut workers = tokio::task::JoinSet::new();
    for i in 0..config.in_flight.max(1) {
        workers.spawn(worker(
            i,
            Arc::clone(&config),
            Arc::clone(&next),
            Arc::clone(&watermark),
            Arc::clone(&counters),
            start,
        ));
    }
    let mut acked = Vec::new();
    let mut errors: Vec<(String, u64)> = Vec::new();
    let mut hist = new_histogram();
    while let Some(joined) = workers.join_next().await {
        let Ok(w) = joined else { continue };
        acked.extend(w.acked);
        let _ = hist.add(&w.hist);
        for e in w.errors {
            if let Some(entry) = errors.iter_mut().find(|(m, _)| *m == e) {
                entry.1 += 1;
            } else if errors.len() < 16 {
                errors.push((e, 1));
            }
        }
    }
    let elapsed = Duration::from_nanos(mono_ns().saturating_sub(start_mono));
    acked.sort_unstable();
    let not_acked = match acked.last() {
        Some(&max) => {
            let mut missing = Vec::new();
            let mut it = acked.iter().peekable();
            for seq in 0..max {
                if it.peek() == Some(&&seq) {
                    it.next();
                } else {
                    missing.push(seq);
                }
            }
            missing
        }
        None => Vec::new(),
    };
    PubOutcome {
        acked: acked.len() as u64,
        errors: counters.errors.load(Ordering::Relaxed),
        not_acked,
        error_kinds: errors,
        ack_latency_us: histogram_pairs(&hist),
        elapsed,
    }
}

async fn worker(
    index: usize,
    config: Arc<PubConfig>,
    next: Arc<AtomicU64>,
    watermark: Arc<Watermark>,
    counters: Arc<PubCounters>,
    start: Instant,
) -> WorkerOutcome {
    let mut out = WorkerOutcome {
        acked: Vec::new(),
        errors: Vec::new(),
        hist: new_histogram(),
    };
    let deadline = start + config.duration;
    let mut conn: Option<TcpStream> = None;
    let mut request = Vec::with_capacity(config.size + 512);
    let mut response = Vec::with_capacity(1024);
    loop {
        let seq = next.fetch_add(1, Ordering::Relaxed);
        if seq >= config.max_events {
            break;
        }
        if let Rate::PerSec(r) = config.rate {
            let due = start + Duration::from_secs_f64(seq as f64 / r);
            if due >= deadline {
                break;
            }
            tokio::time::sleep_until(due).await;
            // A server slower than the rate holds the in-flight publishes back; count the
            // publishes that go out late rather than hiding them.
            if due.elapsed() > LATE {
                counters.late.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Never publish past the deadline, even when behind schedule: the run is bounded in time.
        if Instant::now() >= deadline {
            break;
        }
        let sent = mono_ns();
        let acked_below = watermark.below.load(Ordering::Relaxed);
        let data = payload(seq, sent, acked_below, config.size);
        request.clear();
        let body_len = config.body_prefix.len() + data.len() + config.body_suffix.len();
        request.extend_from_slice(
            format!(
                "POST {} HTTP/1.1\r\nHost: {}\r\nContent-Type: {}\r\nContent-Length: {}\r\n",
                config.target.path, config.target.host, config.content_type, body_len
            )
            .as_bytes(),
        );
        for h in &config.headers {
            request.extend_from_slice(h.as_bytes());
            request.extend_from_slice(b"\r\n");
        }
        request.extend_from_slice(b"\r\n");
        request.extend_from_slice(config.body_prefix.as_bytes());
        request.extend_from_slice(data.as_bytes());
        request.extend_from_slice(config.body_suffix.as_bytes());

        let result = tokio::time::timeout(
            ACK_TIMEOUT,
            publish_one(&mut conn, &config.target, index, &request, &mut response),
        )
        .await
        .unwrap_or_else(|_| Err(format!("no response within {} s", ACK_TIMEOUT.as_secs())));
        match result {
            Ok(()) => {
                out.hist
                    .saturating_record((mono_ns().saturating_sub(sent) / 1000).max(1));
                out.acked.push(seq);
                watermark.ack(seq);
                counters.acked.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                // The connection may hold half a response: start over on a fresh one.
                conn = None;
                out.errors.push(e);
                counters.errors.fetch_add(1, Ordering::Relaxed);
                if out.errors.len() >= 10_000 {
                    // A server that refuses everything: no point in hammering it for the full run.
                    break;
                }
            }
        }
    }
    out
}

/// Sends one request on the kept-alive connection (opening one if needed) and reads the response.
async fn publish_one(
    conn: &mut Option<TcpStream>,
    target: &Target,
    index: usize,
    request: &[u8],
    buf: &mut Vec<u8>,
) -> Result<(), String> {
    let stream = match conn {
        Some(s) => s,
        None => conn.insert(
            http::connect(target, index)
                .await
                .map_err(|e| format!("connect to {}: {e}", target.addr))?,
        ),
    };
    stream
        .write_all(request)
        .await
        .map_err(|e| format!("send publish: {e}"))?;
    buf.clear();
    let (head, end) = loop {
        if buf.capacity() == buf.len() {
            buf.reserve(1024);
        }
        let n = stream
            .read_buf(buf)
            .await
            .map_err(|e| format!("read publish response: {e}"))?;
        if let Some(end) = http::head_end(buf) {
            break (http::parse_head(&buf[..end])?, end);
        }
        if n == 0 {
            return Err("connection closed before the publish response".to_owned());
        }
        if buf.len() > http::MAX_HEAD_SIZE {
            return Err("publish response head too large".to_owned());
        }
    };
    if let BodyKind::Length(n) = head.body
        && n > MAX_ACK_BODY
    {
        return Err(format!("publish response body of {n} bytes"));
    }
    let mut body = BodyDecoder::new(head.body);
    let mut len = 0u64;
    body.decode(&buf[end..], &mut |b: &[u8]| len += b.len() as u64)
        .map_err(|e| e.to_string())?;
    while !body.is_done() {
        if len > MAX_ACK_BODY {
            return Err("publish response body too large".to_owned());
        }
        let mut chunk = [0u8; 4096];
        let n = stream
            .read(&mut chunk)
            .await
            .map_err(|e| format!("read publish response: {e}"))?;
        if n == 0 {
            if body.ends_at_close() {
                break;
            }
            return Err("connection closed in the publish response body".to_owned());
        }
        body.decode(&chunk[..n], &mut |b: &[u8]| len += b.len() as u64)
            .map_err(|e| e.to_string())?;
    }
    if head.close || head.body == BodyKind::Close {
        *conn = None;
    }
    if (200..300).contains(&head.status) {
        Ok(())
    } else {
        Err(format!("publish status {}", head.status))
    }
}

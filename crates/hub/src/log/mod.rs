//! The event log: the durable, totally ordered record of every published event, and the seam that
//! lets herald run on one machine (memory, embedded) or several (Redis Streams).
//!
//! Every store assigns ids in one total order across all topics, so that a subscriber's
//! `Last-Event-ID` is a position and resume is a range read ([`Log::read_after`]). New events reach
//! the hub's fan-out through [`Log::tail`] only once they are durable, the same way for every store
//! (Redis included, where the tail is fed by other hubs' appends too).
//!
//! | store           | durable                    | for                                  |
//! |-----------------|----------------------------|--------------------------------------|
//! | [`MemoryLog`]   | no (a ring in memory)      | tests, `--store memory`              |
//! | [`EmbeddedLog`] | yes: fsynced, group commit | one machine (`--data-dir`), default  |
//! | [`RedisLog`]    | as Redis is configured     | several hubs sharing one Redis Stream |
//!
//! Semantics every store shares (one test suite holds them all to it):
//! - ids are `<millis>-<seq>`: the append's wall-clock time, or the previous id's millis when
//!   the clock stands still or went back, so they only increase, across restarts too;
//! - an idempotency key is remembered per topic for as long as its event is retained;
//! - retention removes the oldest events past `max_events` or older than `max_age` (judged by
//!   the id's millis); reads never return an event past either bound;
//! - [`ReadBatch::truncated`] is true exactly when retention removed an event after the reader's
//!   id (`None` counts as before every id);
//! - [`Log::read_before`] reads the same retained events backwards, newest first;
//! - [`Log::last_id`] is the newest id ever assigned, even if retention removed that event;
//! - after [`Log::close`], appends fail with [`LogError::Unavailable`] and tail receivers end
//!   (`RecvError::Closed`) once they have received every event appended before.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::broadcast;

mod clock;
mod codec;
pub mod embedded;
pub mod memory;
pub mod redis;
#[cfg(test)]
mod suite;

pub use embedded::EmbeddedLog;
pub use memory::MemoryLog;
pub use redis::RedisLog;

/// A boxed future, so that stores can be chosen at run time behind `Arc<dyn Log>`.
pub type BoxFuture<'a, T> = Pin<Box<dyn Future<Output = T> + Send + 'a>>;

/// The position of an event in the log's total order, written `<millis>-<seq>` like a Redis
/// Streams id: the append time in Unix milliseconds, then a sequence within that millisecond.
/// Every store uses this one format, so ids look the same whatever the store.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct EventId {
    /// Unix time of the append in milliseconds (never decreasing within one log).
    pub millis: u64,
    /// Order among the events of the same millisecond.
    pub seq: u64,
}

impl EventId {
    /// The id made of `millis` and `seq`.
    pub const fn new(millis: u64, seq: u64) -> Self {
        Self { millis, seq }
    }

    /// The smallest id that orders after `self`.
    pub const fn next(self) -> Self {
        if self.seq == u64::MAX {
            Self::new(self.millis + 1, 0)
        } else {
            Self::new(self.millis, self.seq + 1)
        }
    }
}

impl fmt::Display for EventId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.millis, self.seq)
    }
}

/// A `Last-Event-ID` that is not of the form `<digits>-<digits>`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("event id must look like <millis>-<seq>, e.g. 1700000000000-0")]
pub struct InvalidEventId;

impl FromStr for EventId {
    type Err = InvalidEventId;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (millis, seq) = s.split_once('-').ok_or(InvalidEventId)?;
        let number = |part: &str| {
            if part.is_empty() || part.len() > 20 || !part.bytes().all(|b| b.is_ascii_digit()) {
                return Err(InvalidEventId);
            }
            part.parse::<u64>().map_err(|_| InvalidEventId)
        };
        Ok(Self::new(number(millis)?, number(seq)?))
    }
}

/// An event to append, already validated by the HTTP layer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewEvent {
    /// The topic it is published to.
    pub topic: String,
    /// The SSE event type, when not the default `message`.
    pub event_type: Option<String>,
    /// The data, as text.
    pub data: String,
    /// A reconnection time in milliseconds to send along with the event.
    pub retry: Option<u64>,
    /// Whether only subscribers authorised for the topic may receive it.
    pub private: bool,
    /// The publisher's idempotency key: a second append with the same topic and key is not stored
    /// again and answers the first append's id (for as long as that event is retained).
    pub idempotency_key: Option<String>,
}

/// An event as the log holds it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredEvent {
    /// Its position in the log.
    pub id: EventId,
    /// The topic it was published to.
    pub topic: String,
    /// The SSE event type, when not the default `message`.
    pub event_type: Option<String>,
    /// The data, as text.
    pub data: String,
    /// A reconnection time in milliseconds to send along with the event.
    pub retry: Option<u64>,
    /// Whether only subscribers authorised for the topic may receive it.
    pub private: bool,
}

/// What [`Log::append`] did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Appended {
    /// The id of the event: the new one, or the first append's for a repeated idempotency key.
    pub id: EventId,
    /// True when the idempotency key was seen before and nothing was stored.
    pub duplicate: bool,
}

/// The events [`Log::read_after`] found.
#[derive(Clone, Debug, Default)]
pub struct ReadBatch {
    /// Events after the requested id, in id order, all topics.
    pub events: Vec<Arc<StoredEvent>>,
    /// True when retention removed events that came after the requested id: the reader missed
    /// something (the hub then sends `herald.reset`).
    pub truncated: bool,
}

/// How much of the log is kept. Events past either bound are removed, oldest first.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Retention {
    /// At most this many events (all topics together).
    pub max_events: Option<u64>,
    /// No event older than this.
    pub max_age: Option<Duration>,
}

impl Default for Retention {
    fn default() -> Self {
        Self {
            max_events: Some(Self::DEFAULT_MAX_EVENTS),
            max_age: Some(Self::DEFAULT_MAX_AGE),
        }
    }
}

impl Retention {
    /// One million events: a day of ten events per second, a few hundred MB at most on disk.
    pub const DEFAULT_MAX_EVENTS: u64 = 1_000_000;
    /// One day: long enough for a laptop to wake up from the night and resume without loss.
    pub const DEFAULT_MAX_AGE: Duration = Duration::from_secs(24 * 60 * 60);
}

/// Why the log could not do what was asked.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum LogError {
    /// The store cannot be reached now (e.g. Redis is down); the caller may retry later.
    #[error("the event store is unavailable: {0}")]
    Unavailable(String),
    /// The store failed (disk error, corruption).
    #[error("the event store failed: {0}")]
    Storage(String),
    /// The write was sent but its outcome could not be learnt: the event may or may not be
    /// stored. The Redis store says this when Redis's answer was lost and it did not answer again
    /// in time; the embedded store when a commit failed with an I/O error other than a full disk
    /// (a failing fsync may come after the commit reached the disk). A retry with the same
    /// idempotency key is stored at most once.
    #[error(
        "the event store did not confirm the write, so it may or may not be stored \
         (retry with the same idempotency key: never a duplicate): {0}"
    )]
    Unknown(String),
}

/// A totally ordered, durable event log shared by every subscriber of the hub.
pub trait Log: Send + Sync + 'static {
    /// Appends an event and answers once it is durable (for the embedded store: on disk, fsynced;
    /// group commit makes concurrent appends share one sync). Its id orders after every id this
    /// log gave before.
    fn append(&self, event: NewEvent) -> BoxFuture<'_, Result<Appended, LogError>>;

    /// Up to `limit` retained events with an id greater than `after` (all of them from the oldest
    /// when `after` is `None`), in id order, all topics: the caller filters.
    fn read_after(
        &self,
        after: Option<EventId>,
        limit: usize,
    ) -> BoxFuture<'_, Result<ReadBatch, LogError>>;

    /// Up to `limit` retained events with an id smaller than `before` (from the newest when
    /// `before` is `None`), newest first, all topics: the caller filters. The backward read
    /// behind `GET /events?last=N` (the recent history a new subscriber starts with); paging
    /// on with the oldest id of a batch reads every retained event once.
    fn read_before(
        &self,
        before: Option<EventId>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Arc<StoredEvent>>, LogError>>;

    /// New durable events in id order, as they are appended (by this hub or, for a shared store,
    /// by any hub). A receiver that lags recovers with [`Log::read_after`].
    fn tail(&self) -> broadcast::Receiver<Arc<StoredEvent>>;

    /// The id of the newest event, if any.
    fn last_id(&self) -> BoxFuture<'_, Result<Option<EventId>, LogError>>;

    /// Makes everything appended so far durable and releases the store, for a clean shutdown.
    fn close(&self) -> BoxFuture<'_, Result<(), LogError>>;

    /// Whether the store can take appends now, for `GET /healthz`. Cheap (no I/O, no await): it
    /// reports what the store last saw, so that a health probe never waits on a sick disk or
    /// network.
    fn health(&self) -> StoreHealth;
}

/// What [`Log::health`] answers: the store's name and, when it cannot take appends now, why.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoreHealth {
    /// The store's name as `herald serve --store` spells it: `memory`, `embedded`, `redis`.
    pub store: &'static str,
    /// `None` while appends work; else why they do not (e.g. "the disk is full"), until the
    /// store recovers.
    pub problem: Option<String>,
}

impl StoreHealth {
    /// A store that works.
    pub const fn ok(store: &'static str) -> Self {
        Self {
            store,
            problem: None,
        }
    }

    /// Whether appends work now.
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// How many events a [`Log::tail`] receiver may fall behind before it lags (and gets
/// `RecvError::Lagged`). The hub's broker is meant to be the one tail receiver, and it only moves
/// events on to bounded per-topic rings, so it falls behind only while it is not scheduled: 4096
/// covers a burst of several group commits on a loaded machine. Each slot is one `Arc`, so the
/// channel costs 32 KiB at most, and a receiver that lags anyway loses nothing: it re-reads from
/// [`Log::read_after`].
pub const TAIL_CAPACITY: usize = 4096;

/// A tail receiver that is already closed: what [`Log::tail`] answers after [`Log::close`].
pub(crate) fn closed_tail() -> broadcast::Receiver<Arc<StoredEvent>> {
    broadcast::channel(1).1
}

/// The id for an event appended at `now` (Unix ms) after `last`: `now` if the clock moved on,
/// else the next id after `last`, so that ids keep increasing when the clock stands still or
/// goes backwards (NTP step, restored VM), as Redis Streams do.
pub(crate) fn next_id(last: Option<EventId>, now: u64) -> EventId {
    match last {
        Some(last) if last.millis >= now => last.next(),
        _ => EventId::new(now, 0),
    }
}

/// The smallest id still young enough to keep at `now`, if there is an age bound: events with a
/// smaller id are older than `max_age`. Age is read from the id's millis, the append time (or
/// later, if the clock went backwards), as Redis `XTRIM MINID` does.
pub(crate) fn age_cutoff(retention: &Retention, now: u64) -> Option<EventId> {
    let max_age = retention.max_age?;
    let max_age = u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX);
    Some(EventId::new(now.saturating_sub(max_age), 0))
}

/// Whether a reader after `after` missed events, given the highest id retention removed. `None`
/// (from the oldest) is before every id: it missed something as soon as anything was removed.
pub(crate) fn is_truncated(trimmed: Option<EventId>, after: Option<EventId>) -> bool {
    match (trimmed, after) {
        (None, _) => false,
        (Some(_), None) => true,
        (Some(trimmed), Some(after)) => trimmed > after,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn truncation_is_relative_to_the_reader() {
        let id = EventId::new(10, 3);
        assert!(!is_truncated(None, None));
        assert!(!is_truncated(None, Some(id)));
        assert!(is_truncated(Some(id), None));
        assert!(is_truncated(Some(id), Some(EventId::new(10, 2))));
        assert!(!is_truncated(Some(id), Some(id)));
        assert!(!is_truncated(Some(id), Some(EventId::new(11, 0))));
    }

    #[test]
    fn next_id_follows_the_clock_and_never_goes_back() {
        assert_eq!(next_id(None, 7), EventId::new(7, 0));
        assert_eq!(next_id(Some(EventId::new(5, 9)), 7), EventId::new(7, 0));
        assert_eq!(next_id(Some(EventId::new(7, 0)), 7), EventId::new(7, 1));
        assert_eq!(next_id(Some(EventId::new(9, 4)), 7), EventId::new(9, 5));
        assert_eq!(
            next_id(Some(EventId::new(9, u64::MAX)), 7),
            EventId::new(10, 0)
        );
    }

    #[test]
    fn age_cutoff_is_now_minus_max_age() {
        let keep_all = Retention {
            max_events: None,
            max_age: None,
        };
        assert_eq!(age_cutoff(&keep_all, 10_000), None);
        let second = Retention {
            max_events: None,
            max_age: Some(Duration::from_secs(1)),
        };
        assert_eq!(age_cutoff(&second, 10_000), Some(EventId::new(9_000, 0)));
        assert_eq!(age_cutoff(&second, 10), Some(EventId::new(0, 0)));
    }

    #[test]
    fn id_round_trips_and_orders() {
        let id: EventId = "1700000000000-3".parse().unwrap();
        assert_eq!(id, EventId::new(1_700_000_000_000, 3));
        assert_eq!(id.to_string(), "1700000000000-3");
        assert!(EventId::new(1, 9) < EventId::new(2, 0));
        assert!(EventId::new(1, 1) < EventId::new(1, 2));
        assert_eq!(EventId::new(1, u64::MAX).next(), EventId::new(2, 0));
    }

    #[test]
    fn malformed_ids_are_refused() {
        for bad in [
            "",
            "-",
            "1",
            "1-",
            "-1",
            "a-1",
            "1-a",
            "1-2-3",
            " 1-2",
            "1-2 ",
            "+1-2",
            "1--2",
            "99999999999999999999999-0",
            "18446744073709551616-0",
        ] {
            assert_eq!(bad.parse::<EventId>(), Err(InvalidEventId), "{bad:?}");
        }
    }
}

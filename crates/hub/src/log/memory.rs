//! [`MemoryLog`]: the log as a ring in memory, for tests and `--store memory`. Nothing survives a
//! restart; everything else (ids, idempotency, retention, `truncated`, tail) behaves like the
//! durable stores, and the shared suite holds it to that.

use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};

use tokio::sync::broadcast;

use super::clock::{self, Clock};
use super::{
    Appended, BoxFuture, EventId, Log, LogError, NewEvent, ReadBatch, Retention, StoreHealth,
    StoredEvent, TAIL_CAPACITY, age_cutoff, closed_tail, is_truncated, next_id,
};

/// A log held in memory: a ring of the retained events, oldest first.
///
/// Appends are "durable" once they are in the ring. Events past the [`Retention`] bounds are
/// removed on the next append or read (so a read never returns an event older than `max_age`).
///
/// ```
/// # tokio::runtime::Runtime::new().unwrap().block_on(async {
/// use herald_hub::log::{Log, MemoryLog, NewEvent, Retention};
///
/// let log = MemoryLog::new(Retention::default());
/// let appended = log.append(NewEvent {
///     topic: "chat".into(),
///     event_type: None,
///     data: "hello".into(),
///     retry: None,
///     private: false,
///     idempotency_key: None,
/// }).await?;
/// let batch = log.read_after(None, 10).await?;
/// assert_eq!(batch.events[0].id, appended.id);
/// # Ok::<(), herald_hub::log::LogError>(())
/// # }).unwrap();
/// ```
pub struct MemoryLog {
    /// Everything that changes. A std `Mutex`, not tokio's: it is never held across an `.await`
    /// (every method takes it, does a bounded amount of work and releases it before returning its
    /// ready future), and the tail is sent to while it is held so that tail order is id order.
    state: Mutex<State>,
    /// The bounds on what is kept.
    retention: Retention,
    /// The time source for ids and age retention.
    clock: Clock,
}

/// What the lock protects.
struct State {
    /// The retained events, in id order.
    events: VecDeque<Entry>,
    /// The newest id ever assigned (kept when retention removes that event, so ids never repeat).
    last: Option<EventId>,
    /// (topic, idempotency key) -> id, for the retained events that had a key.
    keys: HashMap<(String, String), EventId>,
    /// The highest id retention ever removed: a read after an id below it missed something.
    trimmed: Option<EventId>,
    /// Feeds [`Log::tail`], sent to under the lock so that tail order is id order. `None` once
    /// closed: appends are refused and tail receivers end.
    tail: Option<broadcast::Sender<Arc<StoredEvent>>>,
}

/// One retained event and the idempotency key to forget with it.
struct Entry {
    event: Arc<StoredEvent>,
    key: Option<(String, String)>,
}

impl MemoryLog {
    /// An empty log that keeps what `retention` allows.
    pub fn new(retention: Retention) -> Self {
        Self::with_clock(retention, clock::system())
    }

    /// An empty log reading the time from `clock` (tests).
    pub(crate) fn with_clock(retention: Retention, clock: Clock) -> Self {
        let (tail, _) = broadcast::channel(TAIL_CAPACITY);
        Self {
            state: Mutex::new(State {
                events: VecDeque::new(),
                last: None,
                keys: HashMap::new(),
                trimmed: None,
                tail: Some(tail),
            }),
            retention,
            clock,
        }
    }

    fn lock(&self) -> MutexGuard<'_, State> {
        // A panic while the lock was held cannot leave the ring half-updated in a way that
        // breaks order (each mutation is a push or a pop), so a poisoned lock is still usable.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn do_append(&self, event: NewEvent) -> Result<Appended, LogError> {
        let now = (self.clock)();
        let mut state = self.lock();
        if state.tail.is_none() {
            return Err(closed());
        }
        state.trim(&self.retention, now);
        let key = event.idempotency_key.map(|key| (event.topic.clone(), key));
        if let Some(key) = &key
            && let Some(&id) = state.keys.get(key)
        {
            return Ok(Appended {
                id,
                duplicate: true,
            });
        }
        let id = next_id(state.last, now);
        let stored = Arc::new(StoredEvent {
            id,
            topic: event.topic,
            event_type: event.event_type,
            data: event.data,
            retry: event.retry,
            private: event.private,
        });
        if let Some(key) = &key {
            state.keys.insert(key.clone(), id);
        }
        state.last = Some(id);
        state.events.push_back(Entry {
            event: Arc::clone(&stored),
            key,
        });
        state.trim(&self.retention, now);
        if let Some(tail) = &state.tail {
            // No receiver is not an error: the hub may not be tailing yet.
            let _ = tail.send(stored);
        }
        Ok(Appended {
            id,
            duplicate: false,
        })
    }

    fn do_read_after(&self, after: Option<EventId>, limit: usize) -> ReadBatch {
        let now = (self.clock)();
        let mut state = self.lock();
        state.trim(&self.retention, now);
        let start = after.map_or(0, |after| {
            state
                .events
                .partition_point(|entry| entry.event.id <= after)
        });
        let events = state
            .events
            .range(start..)
            .take(limit)
            .map(|entry| Arc::clone(&entry.event))
            .collect();
        ReadBatch {
            events,
            truncated: is_truncated(state.trimmed, after),
        }
    }

    fn do_read_before(&self, before: Option<EventId>, limit: usize) -> Vec<Arc<StoredEvent>> {
        let now = (self.clock)();
        let mut state = self.lock();
        state.trim(&self.retention, now);
        let end = before.map_or(state.events.len(), |before| {
            state
                .events
                .partition_point(|entry| entry.event.id < before)
        });
        state
            .events
            .range(..end)
            .rev()
            .take(limit)
            .map(|entry| Arc::clone(&entry.event))
            .collect()
    }
}

fn closed() -> LogError {
    LogError::Unavailable("the log is closed".into())
}

impl State {
    /// Removes the oldest events past the count or age bound.
    fn trim(&mut self, retention: &Retention, now: u64) {
        let cutoff = age_cutoff(retention, now);
        let max = retention
            .max_events
            .map_or(usize::MAX, |max| usize::try_from(max).unwrap_or(usize::MAX));
        while let Some(oldest) = self.events.front() {
            let too_many = self.events.len() > max;
            let too_old = cutoff.is_some_and(|cutoff| oldest.event.id < cutoff);
            if !too_many && !too_old {
                break;
            }
            let Some(entry) = self.events.pop_front() else {
                break;
            };
            if let Some(key) = entry.key {
                self.keys.remove(&key);
            }
            self.trimmed = Some(entry.event.id);
        }
    }
}

impl Log for MemoryLog {
    fn append(&self, event: NewEvent) -> BoxFuture<'_, Result<Appended, LogError>> {
        let result = self.do_append(event);
        Box::pin(async move { result })
    }

    fn read_after(
        &self,
        after: Option<EventId>,
        limit: usize,
    ) -> BoxFuture<'_, Result<ReadBatch, LogError>> {
        let batch = self.do_read_after(after, limit);
        Box::pin(async move { Ok(batch) })
    }

    fn read_before(
        &self,
        before: Option<EventId>,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<Arc<StoredEvent>>, LogError>> {
        let events = self.do_read_before(before, limit);
        Box::pin(async move { Ok(events) })
    }

    fn tail(&self) -> broadcast::Receiver<Arc<StoredEvent>> {
        self.lock()
            .tail
            .as_ref()
            .map_or_else(closed_tail, broadcast::Sender::subscribe)
    }

    fn last_id(&self) -> BoxFuture<'_, Result<Option<EventId>, LogError>> {
        let last = self.lock().last;
        Box::pin(async move { Ok(last) })
    }

    fn close(&self) -> BoxFuture<'_, Result<(), LogError>> {
        self.lock().tail = None;
        Box::pin(async { Ok(()) })
    }

    fn health(&self) -> StoreHealth {
        // Memory cannot fail short of the process failing.
        StoreHealth::ok("memory")
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;
    use crate::log::suite::{self, Opener};

    struct Memory;

    impl Opener for Memory {
        fn open(&self, retention: Retention) -> BoxFuture<'_, Arc<dyn Log>> {
            Box::pin(async move { Arc::new(MemoryLog::new(retention)) as Arc<dyn Log> })
        }
    }

    crate::log::suite::suite_tests!(Memory);

    #[tokio::test]
    async fn ids_keep_increasing_when_the_clock_goes_back() {
        let now = Arc::new(AtomicU64::new(5_000));
        let clock: Clock = {
            let now = Arc::clone(&now);
            Arc::new(move || now.load(Ordering::SeqCst))
        };
        let log = MemoryLog::with_clock(Retention::default(), clock);
        let first = log.append(suite::event("a", "1")).await.unwrap().id;
        assert_eq!(first, EventId::new(5_000, 0));
        let second = log.append(suite::event("a", "2")).await.unwrap().id;
        assert_eq!(second, EventId::new(5_000, 1));
        now.store(1_000, Ordering::SeqCst);
        let third = log.append(suite::event("a", "3")).await.unwrap().id;
        assert_eq!(third, EventId::new(5_000, 2));
        now.store(6_000, Ordering::SeqCst);
        let fourth = log.append(suite::event("a", "4")).await.unwrap().id;
        assert_eq!(fourth, EventId::new(6_000, 0));
    }
}

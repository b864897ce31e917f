//! The live fan-out: one task reads [`Log::tail`], encodes each event once and pushes the same
//! `Bytes` into the mailbox of every subscription whose patterns match its topic.
//!
//! Ordering: the tail yields events in id order and the broker pushes them in that order, so each
//! mailbox holds strictly increasing ids whatever the number of topics or patterns of its
//! subscription (an event that matches two patterns of one subscription is pushed once).
//!
//! Lag is not loss: a mailbox holds at most `max_unsent_bytes`. When a push would pass that bound
//! the mailbox is emptied (its memory freed) and marked *lagged*; the broker then drops events for
//! it until its stream takes the mark, reads the missed events from the log with
//! [`Log::read_after`] from the last id it sent, and drops live events it already sent (ids are
//! totally ordered, so "already sent" is `id <= cursor`). Because the tail only carries durable
//! events, every event the broker dropped is in the log when the stream reads it. If the broker's
//! own tail receiver lags, every mailbox is marked lagged and each stream recovers the same way.
//!
//! Locks: the registry and each mailbox are std `Mutex`es, never held across an `.await`; the
//! broker holds the registry lock while it pushes one event (no allocation per subscriber, only a
//! reference-count increment per matching mailbox).

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::task::Waker;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::{Notify, broadcast};

use crate::log::{EventId, StoredEvent};
use crate::topic::TopicPattern;

/// The heartbeat comment, encoded once and shared by every stream. A comment line alone, with no
/// blank line: a blank line would dispatch, and at the start of a resumed stream that clears a spec
/// client's last event id (see `herald_wire::encode_retry`).
pub(crate) static HEARTBEAT: Bytes = Bytes::from_static(b":\n");

/// One frame waiting for a subscriber's connection.
#[derive(Debug)]
pub(crate) struct Frame {
    /// The log id of an event frame; `None` for a heartbeat.
    pub(crate) id: Option<EventId>,
    pub(crate) bytes: Bytes,
}

/// What a stream finds in its mailbox.
#[derive(Debug)]
pub(crate) enum Pop {
    Frame(Frame),
    /// Events were dropped: catch up from the log (the mark is cleared by this pop).
    Lagged,
    /// The hub is shutting down: send this last frame (a `retry:`) and end.
    Closing(Bytes),
    /// Nothing to do: the waker given to [`Mailbox::pop`] is woken by the next push, lag or close.
    Empty,
}

#[derive(Debug, Default)]
struct MailboxState {
    queue: VecDeque<Frame>,
    queued_bytes: usize,
    last_queued: Option<EventId>,
    lagged: bool,
    /// Broker ticks (every half heartbeat interval) since something was last queued.
    idle_ticks: u8,
    closing: Option<Bytes>,
    /// The stream's waker, set when it found the mailbox empty. Kept under the same lock as the
    /// queue, so a push cannot fall between the stream's check and its wait, and a push costs
    /// one lock and (on the empty-to-ready transition only) one wake: no separate notifier.
    waiting: Option<Waker>,
}

/// The bounded queue between the broker and one subscriber's stream.
#[derive(Debug, Default)]
pub(crate) struct Mailbox {
    state: Mutex<MailboxState>,
}

/// Wakes a stream after its mailbox's lock is released (waking under the lock would make the
/// woken task contend for it).
fn wake(waiting: Option<Waker>) {
    if let Some(waker) = waiting {
        waker.wake();
    }
}

impl Mailbox {
    fn lock(&self) -> MutexGuard<'_, MailboxState> {
        // A panic while holding this lock cannot leave the state inconsistent (plain fields).
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Queues an event frame unless already queued, lagged or closing.
    fn push_event(&self, id: EventId, bytes: &Bytes, max: usize) {
        let mut s = self.lock();
        if s.lagged || s.closing.is_some() || s.last_queued.is_some_and(|last| last >= id) {
            return;
        }
        s.last_queued = Some(id);
        s.idle_ticks = 0;
        // One frame always fits in an empty queue, so that an event larger than the bound still
        // takes the live path (its size is bounded by the publish body limit).
        if !s.queue.is_empty() && s.queued_bytes + bytes.len() > max {
            // Free the memory now: the stream re-reads these events from the log.
            s.queue = VecDeque::new();
            s.queued_bytes = 0;
            s.lagged = true;
            let waiting = s.waiting.take();
            drop(s);
            wake(waiting);
            return;
        }
        s.queued_bytes += bytes.len();
        s.queue.push_back(Frame {
            id: Some(id),
            bytes: bytes.clone(),
        });
        let waiting = s.waiting.take();
        drop(s);
        wake(waiting);
    }

    /// Queues a frame that is not in the log (a system event: no id, nothing to resume). When
    /// it does not fit, or the stream is catching up, it is dropped: the next one replaces it.
    fn push_unlogged(&self, bytes: &Bytes, max: usize) {
        let mut s = self.lock();
        if s.lagged
            || s.closing.is_some()
            || (!s.queue.is_empty() && s.queued_bytes + bytes.len() > max)
        {
            return;
        }
        s.idle_ticks = 0;
        s.queued_bytes += bytes.len();
        s.queue.push_back(Frame {
            id: None,
            bytes: bytes.clone(),
        });
        let waiting = s.waiting.take();
        drop(s);
        wake(waiting);
    }

    fn mark_lagged(&self) {
        let mut s = self.lock();
        s.queue = VecDeque::new();
        s.queued_bytes = 0;
        s.lagged = true;
        let waiting = s.waiting.take();
        drop(s);
        wake(waiting);
    }

    /// One broker tick (every half interval). Two ticks after the last frame, a heartbeat is
    /// queued: so no stream stays silent longer than the interval, without a timer of its own.
    fn tick(&self, max: usize) {
        let mut s = self.lock();
        s.idle_ticks = s.idle_ticks.saturating_add(1);
        if s.idle_ticks >= 2
            && s.queue.is_empty()
            && !s.lagged
            && s.closing.is_none()
            && HEARTBEAT.len() <= max
        {
            s.idle_ticks = 0;
            s.queued_bytes += HEARTBEAT.len();
            s.queue.push_back(Frame {
                id: None,
                bytes: HEARTBEAT.clone(),
            });
            let waiting = s.waiting.take();
            drop(s);
            wake(waiting);
        }
    }

    fn close(&self, last: Bytes) {
        let mut s = self.lock();
        s.closing = Some(last);
        let waiting = s.waiting.take();
        drop(s);
        wake(waiting);
    }

    /// The last frame to send when the hub is shutting down.
    pub(crate) fn closing(&self) -> Option<Bytes> {
        self.lock().closing.clone()
    }

    /// Takes the next thing the stream must handle; on [`Pop::Empty`], `waker` is woken by the
    /// next push, lag or close.
    pub(crate) fn pop(&self, waker: &Waker) -> Pop {
        let mut s = self.lock();
        if let Some(last) = &s.closing {
            return Pop::Closing(last.clone());
        }
        if let Some(frame) = s.queue.pop_front() {
            s.queued_bytes -= frame.bytes.len();
            return Pop::Frame(frame);
        }
        if s.lagged {
            s.lagged = false;
            return Pop::Lagged;
        }
        // A stream polls with the same waker every time: keep it rather than clone it again.
        if !s.waiting.as_ref().is_some_and(|w| w.will_wake(waker)) {
            s.waiting = Some(waker.clone());
        }
        Pop::Empty
    }
}

/// One open `GET /events` stream as the broker sees it.
#[derive(Debug)]
pub(crate) struct Subscription {
    id: u64,
    patterns: Box<[TopicPattern]>,
    /// The `subscribe` patterns of its token: the private events it may receive (none when
    /// anonymous).
    private_grants: Box<[TopicPattern]>,
    /// The grants cover every pattern of the subscription, so every private event it matches is
    /// allowed: the common case costs no pattern check per event.
    all_private: bool,
    pub(crate) mailbox: Mailbox,
}

impl Subscription {
    /// Whether any of its patterns selects `topic`.
    pub(crate) fn matches(&self, topic: &str) -> bool {
        self.patterns.iter().any(|p| p.matches(topic))
    }

    /// Whether it may receive an event on `topic` that it matches (a private one only when its
    /// token's subscribe patterns cover the topic).
    pub(crate) fn allowed(&self, topic: &str, private: bool) -> bool {
        !private || self.all_private || self.private_grants.iter().any(|g| g.matches(topic))
    }
}

#[derive(Debug, Default)]
struct Registry {
    /// Subscriptions with at least one exact topic, by topic: one hash lookup per event.
    exact: HashMap<Box<str>, HashMap<u64, Arc<Subscription>>>,
    /// Subscriptions with at least one wildcard pattern: checked one by one.
    wild: HashMap<u64, Arc<Subscription>>,
    all: HashMap<u64, Arc<Subscription>>,
    /// Set on shutdown: the `retry:` base and jitter given to streams that end.
    closed: Option<(u64, u64)>,
}

/// The registry of subscriptions and the fan-out logic (the task is [`run`]).
#[derive(Debug)]
pub(crate) struct Broker {
    registry: Mutex<Registry>,
    next_id: AtomicU64,
    max_unsent_bytes: usize,
    stop: Notify,
}

fn closing_frame(base: u64, jitter: u64) -> Bytes {
    let extra = if jitter == 0 {
        0
    } else {
        rand::random_range(0..jitter)
    };
    herald_wire::encode_retry(base + extra)
}

impl Broker {
    pub(crate) fn new(max_unsent_bytes: usize) -> Self {
        Self {
            registry: Mutex::default(),
            next_id: AtomicU64::new(0),
            max_unsent_bytes,
            stop: Notify::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Registry> {
        self.registry.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Registers a subscription; live events reach its mailbox from now on.
    /// `private_grants` are the private events it may receive (see [`Subscription::allowed`]).
    pub(crate) fn subscribe(
        &self,
        patterns: Vec<TopicPattern>,
        private_grants: Box<[TopicPattern]>,
    ) -> Arc<Subscription> {
        let all_private = patterns
            .iter()
            .all(|p| private_grants.iter().any(|g| g.covers(p)));
        let sub = Arc::new(Subscription {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            patterns: patterns.into(),
            private_grants,
            all_private,
            mailbox: Mailbox::default(),
        });
        let mut reg = self.lock();
        if let Some((base, jitter)) = reg.closed {
            sub.mailbox.close(closing_frame(base, jitter));
            return sub;
        }
        for p in sub.patterns.iter() {
            if p.is_exact() {
                reg.exact
                    .entry(p.as_str().into())
                    .or_default()
                    .insert(sub.id, sub.clone());
            } else {
                reg.wild.insert(sub.id, sub.clone());
            }
        }
        reg.all.insert(sub.id, sub.clone());
        sub
    }

    /// Forgets a subscription (its stream was dropped).
    pub(crate) fn unsubscribe(&self, sub: &Subscription) {
        let mut reg = self.lock();
        reg.all.remove(&sub.id);
        reg.wild.remove(&sub.id);
        for p in sub.patterns.iter().filter(|p| p.is_exact()) {
            if let Some(subs) = reg.exact.get_mut(p.as_str()) {
                subs.remove(&sub.id);
                if subs.is_empty() {
                    reg.exact.remove(p.as_str());
                }
            }
        }
    }

    /// Pushes one encoded event to every matching subscription.
    pub(crate) fn dispatch(&self, event: &StoredEvent, bytes: &Bytes) {
        let reg = self.lock();
        let max = self.max_unsent_bytes;
        if let Some(subs) = reg.exact.get(event.topic.as_str()) {
            for sub in subs.values() {
                if sub.allowed(&event.topic, event.private) {
                    sub.mailbox.push_event(event.id, bytes, max);
                }
            }
        }
        for sub in reg.wild.values() {
            if sub.matches(&event.topic) && sub.allowed(&event.topic, event.private) {
                sub.mailbox.push_event(event.id, bytes, max);
            }
        }
    }

    /// Pushes a frame that is not in the log (the hub's system events) to the subscriptions that
    /// name `topic` exactly: wildcard patterns never select system topics.
    pub(crate) fn dispatch_unlogged(&self, topic: &str, bytes: &Bytes) {
        let reg = self.lock();
        if let Some(subs) = reg.exact.get(topic) {
            for sub in subs.values() {
                sub.mailbox.push_unlogged(bytes, self.max_unsent_bytes);
            }
        }
    }

    /// The `top` exact topics and wildcard patterns with the most subscriptions, largest first,
    /// and how many distinct ones there are. Costs one pass over the topics and the wildcard
    /// subscriptions under the registry lock, and copies only the `top` names: cheap enough
    /// to run once a second.
    pub(crate) fn subscription_counts(&self, top: usize) -> (Vec<(String, usize)>, usize) {
        let reg = self.lock();
        let mut counts: Vec<(&str, usize)> = reg
            .exact
            .iter()
            .map(|(t, subs)| (&**t, subs.len()))
            .collect();
        let mut wild: HashMap<&str, usize> = HashMap::new();
        for sub in reg.wild.values() {
            for p in sub.patterns.iter().filter(|p| !p.is_exact()) {
                *wild.entry(p.as_str()).or_default() += 1;
            }
        }
        counts.extend(wild);
        let distinct = counts.len();
        let by_size = |a: &(&str, usize), b: &(&str, usize)| b.1.cmp(&a.1).then(a.0.cmp(b.0));
        if counts.len() > top && top > 0 {
            counts.select_nth_unstable_by(top - 1, by_size);
        }
        counts.truncate(top);
        counts.sort_unstable_by(by_size);
        let named = counts.into_iter().map(|(t, n)| (t.to_owned(), n)).collect();
        (named, distinct)
    }

    /// True once [`Broker::close`] ran.
    pub(crate) fn is_closed(&self) -> bool {
        self.lock().closed.is_some()
    }

    fn lag_all(&self) {
        for sub in self.lock().all.values() {
            sub.mailbox.mark_lagged();
        }
    }

    fn tick(&self) {
        for sub in self.lock().all.values() {
            sub.mailbox.tick(self.max_unsent_bytes);
        }
    }

    /// Ends every stream (each gets `retry: base + random(0..jitter)` first), refuses new ones
    /// the same way, and stops the broker task.
    pub(crate) fn close(&self, retry_base: u64, jitter: u64) {
        let mut reg = self.lock();
        reg.closed = Some((retry_base, jitter));
        for sub in reg.all.values() {
            sub.mailbox.close(closing_frame(retry_base, jitter));
        }
        drop(reg);
        self.stop.notify_one();
    }

    /// Number of registered subscriptions.
    #[cfg(test)]
    pub(crate) fn len(&self) -> usize {
        self.lock().all.len()
    }
}

/// Encodes a stored event as its `text/event-stream` frame, with the log id as `id:`.
pub(crate) fn encode(event: &StoredEvent) -> Bytes {
    fn frame(event: &StoredEvent, with_type: bool) -> Result<Bytes, herald_wire::EncodeError> {
        let mut frame =
            herald_wire::Event::new(event.data.clone()).with_id(event.id.to_string())?;
        if let (true, Some(t)) = (with_type, &event.event_type) {
            frame = frame.with_type(t.clone())?;
        }
        if let Some(ms) = event.retry {
            frame = frame.with_retry(ms);
        }
        Ok(frame.encode())
    }
    // Types are checked at publish; a store that hands back a bad one loses only the type. An id
    // prints as digits and '-', so the second attempt cannot fail.
    frame(event, true)
        .or_else(|err| {
            tracing::warn!(id = %event.id, %err, "stored event type is not encodable");
            frame(event, false)
        })
        .unwrap_or_default()
}

/// The broker task: fans out the log's tail until the tail closes or the broker is closed.
pub(crate) async fn run(
    broker: Arc<Broker>,
    mut tail: broadcast::Receiver<Arc<StoredEvent>>,
    heartbeat: Duration,
) {
    // Half-interval ticks: see `Mailbox::tick`.
    let period = (heartbeat / 2).max(Duration::from_millis(1));
    let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last: Option<EventId> = None;
    loop {
        tokio::select! {
            received = tail.recv() => match received {
                Ok(event) => {
                    // A store may repeat an event across a reconnect; ids only go up.
                    if last.is_some_and(|l| l >= event.id) {
                        continue;
                    }
                    last = Some(event.id);
                    let bytes = encode(&event);
                    broker.dispatch(&event, &bytes);
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    tracing::warn!(missed = n, "fan-out fell behind the log; subscribers catch up from the log");
                    broker.lag_all();
                }
                Err(broadcast::error::RecvError::Closed) => break,
            },
            _ = ticker.tick() => broker.tick(),
            () = broker.stop.notified() => break,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(id: u64, topic: &str, data: &str) -> StoredEvent {
        StoredEvent {
            id: EventId::new(id, 0),
            topic: topic.into(),
            event_type: None,
            data: data.into(),
            retry: None,
            private: false,
        }
    }

    fn patterns(p: &[&str]) -> Vec<TopicPattern> {
        p.iter()
            .map(|p| TopicPattern::try_new(p).unwrap())
            .collect()
    }

    fn send(broker: &Broker, e: &StoredEvent) {
        broker.dispatch(e, &encode(e));
    }

    fn pop_id(sub: &Subscription) -> Option<u64> {
        match sub.mailbox.pop(Waker::noop()) {
            Pop::Frame(f) => f.id.map(|id| id.millis),
            other => panic!("expected a frame, got {other:?}"),
        }
    }

    #[test]
    fn encodes_once_with_log_id_and_type() {
        let mut e = event(5, "t", "a\nb");
        e.event_type = Some("chat".into());
        e.retry = Some(10);
        assert_eq!(
            &encode(&e)[..],
            b"id: 5-0\nevent: chat\nretry: 10\ndata: a\ndata: b\n\n"
        );
    }

    #[test]
    fn routes_by_topic_and_pattern_once_each_in_order() {
        let broker = Broker::new(1 << 20);
        let exact = broker.subscribe(patterns(&["a"]), Box::default());
        let both = broker.subscribe(patterns(&["a", "*", "b/**"]), Box::default());
        let other = broker.subscribe(patterns(&["c"]), Box::default());
        send(&broker, &event(1, "a", "x"));
        send(&broker, &event(2, "b/c/d", "x"));
        send(&broker, &event(3, "a", "x"));
        assert_eq!((pop_id(&exact), pop_id(&exact)), (Some(1), Some(3)));
        assert_eq!(
            (pop_id(&both), pop_id(&both), pop_id(&both)),
            (Some(1), Some(2), Some(3))
        );
        assert!(matches!(exact.mailbox.pop(Waker::noop()), Pop::Empty));
        assert!(matches!(both.mailbox.pop(Waker::noop()), Pop::Empty));
        assert!(matches!(other.mailbox.pop(Waker::noop()), Pop::Empty));
    }

    #[test]
    fn overflow_frees_the_queue_and_marks_lag_once() {
        let one = encode(&event(1, "a", "x")).len();
        let broker = Broker::new(one * 2);
        let sub = broker.subscribe(patterns(&["a"]), Box::default());
        for id in 1..=5 {
            send(&broker, &event(id, "a", "x"));
        }
        // (An event bigger than the bound alone still fits an empty queue: tested below.)
        // The third push overflowed: the queue was dropped, later pushes are ignored.
        assert!(matches!(sub.mailbox.pop(Waker::noop()), Pop::Lagged));
        assert_eq!(sub.mailbox.lock().queue.capacity(), 0);
        assert!(matches!(sub.mailbox.pop(Waker::noop()), Pop::Empty));
        // Taking the mark re-enables the live path.
        send(&broker, &event(6, "a", "x"));
        assert_eq!(pop_id(&sub), Some(6));
    }

    #[test]
    fn a_big_event_fits_an_empty_queue() {
        let broker = Broker::new(8);
        let sub = broker.subscribe(patterns(&["a"]), Box::default());
        send(&broker, &event(1, "a", &"x".repeat(100)));
        assert_eq!(pop_id(&sub), Some(1));
        // A second frame behind it passes the bound: lag.
        send(&broker, &event(2, "a", &"x".repeat(100)));
        send(&broker, &event(3, "a", "x"));
        assert!(matches!(sub.mailbox.pop(Waker::noop()), Pop::Lagged));
    }

    #[test]
    fn heartbeat_only_on_idle_streams() {
        let broker = Broker::new(1 << 20);
        let busy = broker.subscribe(patterns(&["a"]), Box::default());
        let idle = broker.subscribe(patterns(&["b"]), Box::default());
        broker.tick(); // half an interval
        assert!(matches!(idle.mailbox.pop(Waker::noop()), Pop::Empty));
        send(&broker, &event(1, "a", "x"));
        assert_eq!(pop_id(&busy), Some(1));
        broker.tick(); // a full interval since subscribing; half since `busy` got an event
        assert!(matches!(busy.mailbox.pop(Waker::noop()), Pop::Empty));
        match idle.mailbox.pop(Waker::noop()) {
            Pop::Frame(f) => assert_eq!((f.id, &f.bytes[..]), (None, &b":\n"[..])),
            other => panic!("{other:?}"),
        }
    }

    /// Counts its wake-ups: a stream's task as the mailbox sees it.
    #[derive(Default)]
    struct CountingWaker(AtomicU64);

    impl std::task::Wake for CountingWaker {
        fn wake(self: Arc<Self>) {
            self.0.fetch_add(1, Ordering::Relaxed);
        }
    }

    #[test]
    fn a_waiting_stream_is_woken_once_by_push_lag_tick_and_close() {
        let one = encode(&event(1, "a", "x")).len();
        let broker = Broker::new(one * 2);
        let sub = broker.subscribe(patterns(&["a"]), Box::default());
        let counter = Arc::new(CountingWaker::default());
        let waker = Waker::from(Arc::clone(&counter));
        let woken = || counter.0.load(Ordering::Relaxed);

        // Nothing queued: the waker is kept, and only the first push wakes it (the stream
        // drains the queue before it waits again).
        assert!(matches!(sub.mailbox.pop(&waker), Pop::Empty));
        assert!(matches!(sub.mailbox.pop(&waker), Pop::Empty));
        send(&broker, &event(1, "a", "x"));
        send(&broker, &event(2, "a", "x"));
        assert_eq!(woken(), 1);
        assert_eq!(pop_id(&sub), Some(1));
        assert_eq!(pop_id(&sub), Some(2));

        // Overflow marks lag and wakes.
        assert!(matches!(sub.mailbox.pop(&waker), Pop::Empty));
        for id in 3..=5 {
            send(&broker, &event(id, "a", "x"));
        }
        assert_eq!(woken(), 2);
        assert!(matches!(sub.mailbox.pop(&waker), Pop::Lagged));

        // A heartbeat after two idle ticks wakes, and so does the close.
        assert!(matches!(sub.mailbox.pop(&waker), Pop::Empty));
        broker.tick();
        assert_eq!(woken(), 2);
        broker.tick();
        assert_eq!(woken(), 3);
        assert!(matches!(
            sub.mailbox.pop(&waker),
            Pop::Frame(Frame { id: None, .. })
        ));
        assert!(matches!(sub.mailbox.pop(&waker), Pop::Empty));
        broker.close(1000, 0);
        assert_eq!(woken(), 4);
        // A push nobody waits for wakes nothing.
        assert!(matches!(sub.mailbox.pop(&waker), Pop::Closing(_)));
        send(&broker, &event(9, "a", "x"));
        assert_eq!(woken(), 4);
    }

    #[test]
    fn close_ends_current_and_later_streams() {
        let broker = Broker::new(1 << 20);
        let sub = broker.subscribe(patterns(&["a"]), Box::default());
        send(&broker, &event(1, "a", "x"));
        broker.close(1000, 0);
        for s in [&sub, &broker.subscribe(patterns(&["a"]), Box::default())] {
            match s.mailbox.pop(Waker::noop()) {
                Pop::Closing(b) => assert_eq!(&b[..], b"retry: 1000\n"),
                other => panic!("{other:?}"),
            }
        }
    }

    #[test]
    fn private_events_reach_only_covered_subscriptions() {
        let broker = Broker::new(1 << 20);
        let anonymous = broker.subscribe(patterns(&["a", "b/*"]), Box::default());
        let granted = broker.subscribe(patterns(&["a", "b/*"]), patterns(&["**"]).into());
        let partly = broker.subscribe(patterns(&["a", "b/*"]), patterns(&["b/x"]).into());
        assert!(granted.all_private && !partly.all_private && !anonymous.all_private);
        let private = |id, topic| {
            let mut e = event(id, topic, "secret");
            e.private = true;
            send(&broker, &e);
        };
        private(1, "a");
        private(2, "b/x");
        send(&broker, &event(3, "a", "public"));
        assert_eq!(pop_id(&anonymous), Some(3));
        assert_eq!(
            (pop_id(&granted), pop_id(&granted), pop_id(&granted)),
            (Some(1), Some(2), Some(3))
        );
        assert_eq!((pop_id(&partly), pop_id(&partly)), (Some(2), Some(3)));
        for s in [&anonymous, &granted, &partly] {
            assert!(matches!(s.mailbox.pop(Waker::noop()), Pop::Empty));
        }
    }

    #[test]
    fn unlogged_frames_reach_exact_subscribers_only_and_never_lag() {
        let broker = Broker::new(64);
        let exact = broker.subscribe(patterns(&["herald/metrics"]), Box::default());
        let wild = broker.subscribe(patterns(&["**", "herald/*"]), Box::default());
        let frame = Bytes::from_static(b"event: metrics\ndata: {}\n\n");
        broker.dispatch_unlogged("herald/metrics", &frame);
        assert!(matches!(wild.mailbox.pop(Waker::noop()), Pop::Empty));
        match exact.mailbox.pop(Waker::noop()) {
            Pop::Frame(f) => assert_eq!((f.id, f.bytes), (None, frame.clone())),
            other => panic!("{other:?}"),
        }
        // Past the bound the frame is dropped, and the stream is not sent to the log.
        for _ in 0..10 {
            broker.dispatch_unlogged("herald/metrics", &frame);
        }
        let mut frames = 0;
        while let Pop::Frame(_) = exact.mailbox.pop(Waker::noop()) {
            frames += 1;
        }
        assert_eq!(frames, 64 / frame.len());
        assert!(matches!(exact.mailbox.pop(Waker::noop()), Pop::Empty));
    }

    #[test]
    fn subscription_counts_top_n() {
        let broker = Broker::new(1 << 20);
        let _keep: Vec<_> = [
            &["a"][..],
            &["a", "b"],
            &["a", "c/*"],
            &["c/*"],
            &["c/*", "d/**"],
            &["b"],
        ]
        .iter()
        .map(|p| broker.subscribe(patterns(p), Box::default()))
        .collect();
        let (top, distinct) = broker.subscription_counts(2);
        assert_eq!(distinct, 4);
        assert_eq!(top, [("a".to_string(), 3), ("c/*".to_string(), 3)]);
        let (all, _) = broker.subscription_counts(10);
        assert_eq!(all.len(), 4);
        assert_eq!(all[2..], [("b".to_string(), 2), ("d/**".to_string(), 1)]);
        assert_eq!(broker.subscription_counts(0).0, []);
    }

    #[test]
    fn unsubscribe_forgets() {
        let broker = Broker::new(1 << 20);
        let a = broker.subscribe(patterns(&["a", "x/*"]), Box::default());
        let b = broker.subscribe(patterns(&["a"]), Box::default());
        assert_eq!(broker.len(), 2);
        broker.unsubscribe(&a);
        broker.unsubscribe(&b);
        assert_eq!(broker.len(), 0);
        let reg = broker.lock();
        assert!(reg.exact.is_empty() && reg.wild.is_empty());
    }
}

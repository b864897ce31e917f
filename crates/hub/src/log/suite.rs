//! The test suite every [`Log`] store passes: one async function per property, generic over a way
//! to open the store ([`Opener`]), and [`suite_tests!`] to stamp them out as `#[tokio::test]`s in
//! the store's own test module:
//!
//! ```ignore
//! struct Memory;
//! impl Opener for Memory { /* open a fresh MemoryLog */ }
//! crate::log::suite::suite_tests!(Memory);
//! ```
//!
//! Only what the trait promises is asserted, nothing about how a store does it, so a Redis
//! Streams store plugs in with an opener that starts `redis-server` and gives each test its own key.

use std::collections::HashSet;
use std::future::Future;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::sync::broadcast;

use super::{BoxFuture, EventId, Log, NewEvent, Retention, StoredEvent};

/// How long any one step may take before the test fails rather than hangs: generous, since the
/// machine running the tests may be loaded.
const STEP_TIMEOUT: Duration = Duration::from_secs(30);

/// Opens a fresh, empty store for one test. It owns whatever the store needs to outlive the test
/// (a temporary directory, a server process) and is dropped at the end of the test.
pub(crate) trait Opener: Send + Sync + 'static {
    /// A new empty log with this retention.
    fn open(&self, retention: Retention) -> BoxFuture<'_, Arc<dyn Log>>;
}

/// Generates one `#[tokio::test]` per suite property, each opening the store with `$opener`.
macro_rules! suite_tests {
    ($opener:expr) => {
        $crate::log::suite::suite_tests!(@each $opener;
            ids_order_events_across_topics,
            stores_any_text_faithfully,
            read_after_honours_bounds_and_limits,
            paging_reads_everything_once,
            read_before_reads_backwards_newest_first,
            read_before_hides_what_retention_removed,
            idempotency_key_answers_the_first_id,
            idempotency_keys_are_per_topic,
            concurrent_retries_store_one_event,
            retention_by_count_keeps_the_newest,
            retention_by_age_removes_old_events,
            truncated_only_when_the_reader_missed_something,
            tail_sees_appends_in_order_once_readable,
            concurrent_appends_get_distinct_increasing_ids,
            last_id_is_the_newest_ever_assigned,
            no_acknowledged_or_tailed_id_is_beyond_last_id,
            append_after_close_is_refused,
            tail_ends_after_close,
        );
    };
    (@each $opener:expr; $($name:ident),* $(,)?) => {
        $(
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn $name() {
                $crate::log::suite::$name($opener).await;
            }
        )*
    };
}
pub(crate) use suite_tests;

/// An event on `topic` with `data` and nothing else.
pub(crate) fn event(topic: &str, data: &str) -> NewEvent {
    NewEvent {
        topic: topic.into(),
        event_type: None,
        data: data.into(),
        retry: None,
        private: false,
        idempotency_key: None,
    }
}

/// An event on `topic` with an idempotency key.
pub(crate) fn keyed(topic: &str, data: &str, key: &str) -> NewEvent {
    NewEvent {
        idempotency_key: Some(key.into()),
        ..event(topic, data)
    }
}

/// Keeps everything: the suite's default.
pub(crate) const KEEP_ALL: Retention = Retention {
    max_events: None,
    max_age: None,
};

/// `fut`, or a test failure naming `what` if it takes longer than [`STEP_TIMEOUT`].
pub(crate) async fn within<T>(what: &str, fut: impl Future<Output = T>) -> T {
    match tokio::time::timeout(STEP_TIMEOUT, fut).await {
        Ok(value) => value,
        Err(_) => panic!("timed out: {what}"),
    }
}

/// Appends and unwraps, returning the new id (asserting it is not a duplicate).
pub(crate) async fn append(log: &dyn Log, event: NewEvent) -> EventId {
    let appended = within("append", log.append(event)).await.expect("append");
    assert!(!appended.duplicate, "a fresh append is not a duplicate");
    appended.id
}

/// Every retained event, from the oldest.
pub(crate) async fn read_all(log: &dyn Log) -> Vec<Arc<StoredEvent>> {
    within("read_after", log.read_after(None, usize::MAX))
        .await
        .expect("read_after")
        .events
}

fn ids(events: &[Arc<StoredEvent>]) -> Vec<EventId> {
    events.iter().map(|e| e.id).collect()
}

async fn recv(rx: &mut broadcast::Receiver<Arc<StoredEvent>>) -> Arc<StoredEvent> {
    within("tail", rx.recv()).await.expect("tail receive")
}

pub(crate) async fn ids_order_events_across_topics(opener: impl Opener) {
    let log = opener.open(KEEP_ALL).await;
    let mut appended = Vec::new();
    for (topic, data) in [("a", "1"), ("b", "2"), ("a", "3"), ("chat/x", "4")] {
        appended.push(append(&*log, event(topic, data)).await);
    }
    assert!(appended.windows(2).all(|w| w[0] < w[1]), "{appended:?}");
    let events = read_all(&*log).await;
    assert_eq!(ids(&events), appended);
    let got: Vec<(&str, &str)> = events
        .iter()
        .map(|e| (e.topic.as_str(), e.data.as_str()))
        .collect();
    assert_eq!(got, [("a", "1"), ("b", "2"), ("a", "3"), ("chat/x", "4")]);
}

pub(crate) async fn stores_any_text_faithfully(opener: impl Opener) {
    let log = opener.open(KEEP_ALL).await;
    let big = "x".repeat(1 << 20);
    let cases = [
        NewEvent {
            topic: "t".into(),
            event_type: Some("update".into()),
            data: String::new(),
            retry: Some(0),
            private: true,
            idempotency_key: None,
        },
        NewEvent {
            topic: "ünï/cødé 🎉".into(),
            event_type: Some("typé".into()),
            data: "line 1\nline 2\r\nline 3\rnul\0end".into(),
            retry: Some(u64::MAX),
            private: false,
            idempotency_key: Some("k\0ey".into()),
        },
        NewEvent {
            topic: String::new(),
            event_type: Some(String::new()),
            data: big.clone(),
            retry: None,
            private: true,
            idempotency_key: Some(String::new()),
        },
        NewEvent {
            topic: "t".repeat(64 << 10),
            event_type: None,
            data: "long topic and key".into(),
            retry: None,
            private: false,
            idempotency_key: Some("k".repeat(64 << 10)),
        },
    ];
    let mut expected = Vec::new();
    for case in cases {
        let id = append(&*log, case.clone()).await;
        expected.push(StoredEvent {
            id,
            topic: case.topic,
            event_type: case.event_type,
            data: case.data,
            retry: case.retry,
            private: case.private,
        });
    }
    let got: Vec<StoredEvent> = read_all(&*log)
        .await
        .iter()
        .map(|e| (**e).clone())
        .collect();
    assert_eq!(got, expected);
}

pub(crate) async fn read_after_honours_bounds_and_limits(opener: impl Opener) {
    let log = opener.open(KEEP_ALL).await;
    let empty = log.read_after(None, 10).await.unwrap();
    assert!(empty.events.is_empty() && !empty.truncated);
    let mut appended = Vec::new();
    for i in 0..10 {
        appended.push(append(&*log, event("t", &i.to_string())).await);
    }
    let read = |after, limit| {
        let log = Arc::clone(&log);
        async move {
            let batch = within("read_after", log.read_after(after, limit))
                .await
                .unwrap();
            assert!(!batch.truncated, "nothing was removed");
            ids(&batch.events)
        }
    };
    assert_eq!(
        read(None, 100).await,
        appended,
        "None reads from the oldest"
    );
    assert_eq!(read(None, 3).await, appended[..3]);
    assert_eq!(read(Some(appended[3]), 3).await, appended[4..7]);
    assert_eq!(read(Some(appended[3]), 100).await, appended[4..]);
    assert_eq!(read(Some(appended[8]), 100).await, appended[9..]);
    assert_eq!(read(Some(appended[9]), 100).await, [], "after the newest");
    assert_eq!(read(None, 0).await, [], "limit 0");
    assert_eq!(read(Some(appended[0]), 0).await, []);
    assert_eq!(read(Some(EventId::new(0, 0)), 100).await, appended);
    let future = EventId::new(u64::MAX, u64::MAX);
    assert_eq!(read(Some(future), 100).await, [], "an id from the future");
    // An id that may not be in the log (the first one's millis, a larger seq) is a position too.
    let probe = EventId::new(appended[0].millis, appended[0].seq + 1);
    let expected: Vec<EventId> = appended.iter().copied().filter(|id| *id > probe).collect();
    assert_eq!(read(Some(probe), 100).await, expected);
}

pub(crate) async fn paging_reads_everything_once(opener: impl Opener) {
    let log = opener.open(KEEP_ALL).await;
    let mut appended = Vec::new();
    for i in 0..25 {
        appended.push(append(&*log, event(["a", "b", "c"][i % 3], "x")).await);
    }
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let batch = within("read_after", log.read_after(after, 4))
            .await
            .unwrap();
        assert!(batch.events.len() <= 4);
        let Some(last) = batch.events.last() else {
            break;
        };
        after = Some(last.id);
        seen.extend(ids(&batch.events));
    }
    assert_eq!(seen, appended);
}

pub(crate) async fn read_before_reads_backwards_newest_first(opener: impl Opener) {
    let log = opener.open(KEEP_ALL).await;
    assert!(log.read_before(None, 10).await.unwrap().is_empty());
    let mut appended = Vec::new();
    for i in 0..10 {
        appended.push(append(&*log, event(["a", "b"][i % 2], "x")).await);
    }
    let read = |before, limit| {
        let log = Arc::clone(&log);
        async move {
            ids(&within("read_before", log.read_before(before, limit))
                .await
                .unwrap())
        }
    };
    let newest_first: Vec<EventId> = appended.iter().rev().copied().collect();
    assert_eq!(
        read(None, 100).await,
        newest_first,
        "None reads from the newest"
    );
    assert_eq!(read(None, 3).await, newest_first[..3]);
    assert_eq!(read(Some(appended[5]), 2).await, [appended[4], appended[3]]);
    assert_eq!(read(Some(appended[0]), 100).await, [], "before the oldest");
    assert_eq!(read(Some(EventId::new(0, 0)), 100).await, []);
    assert_eq!(read(None, 0).await, [], "limit 0");
    let future = EventId::new(u64::MAX, u64::MAX);
    assert_eq!(read(Some(future), 100).await, newest_first);
    // Paging on with the oldest id of each batch reads everything once.
    let mut seen = Vec::new();
    let mut before = None;
    loop {
        let batch = read(before, 4).await;
        let Some(&oldest) = batch.last() else { break };
        before = Some(oldest);
        seen.extend(batch);
    }
    assert_eq!(seen, newest_first);
}

pub(crate) async fn read_before_hides_what_retention_removed(opener: impl Opener) {
    let log = opener
        .open(Retention {
            max_events: Some(3),
            max_age: None,
        })
        .await;
    let mut appended = Vec::new();
    for i in 0..6 {
        appended.push(append(&*log, event("t", &i.to_string())).await);
    }
    let read = within("read_before", log.read_before(None, 100))
        .await
        .unwrap();
    assert_eq!(ids(&read), [appended[5], appended[4], appended[3]]);
}

pub(crate) async fn idempotency_key_answers_the_first_id(opener: impl Opener) {
    let log = opener.open(KEEP_ALL).await;
    let mut tail = log.tail();
    let first = append(&*log, keyed("orders", "v1", "req-1")).await;
    let other = append(&*log, event("orders", "unkeyed")).await;
    // The retry carries different data: the first append wins, nothing is stored.
    let again = log.append(keyed("orders", "v2", "req-1")).await.unwrap();
    assert_eq!(again.id, first);
    assert!(again.duplicate);
    let third = log.append(keyed("orders", "v1", "req-1")).await.unwrap();
    assert_eq!((third.id, third.duplicate), (first, true));
    // Without a key, the same content is stored again.
    let repeat = append(&*log, event("orders", "unkeyed")).await;
    assert_ne!(repeat, other);
    let events = read_all(&*log).await;
    assert_eq!(ids(&events), [first, other, repeat]);
    assert_eq!(events[0].data, "v1");
    // Duplicates are not published to the tail either.
    for id in [first, other, repeat] {
        assert_eq!(recv(&mut tail).await.id, id);
    }
    assert!(matches!(
        tail.try_recv(),
        Err(broadcast::error::TryRecvError::Empty)
    ));
}

pub(crate) async fn idempotency_keys_are_per_topic(opener: impl Opener) {
    let log = opener.open(KEEP_ALL).await;
    let a = append(&*log, keyed("a", "1", "k")).await;
    let b = append(&*log, keyed("b", "1", "k")).await;
    assert_ne!(a, b);
    // Topic and key are kept apart however a store joins them: no separator confuses them.
    let c = append(&*log, keyed("x\0y", "1", "z")).await;
    let d = append(&*log, keyed("x", "1", "y\0z")).await;
    let e = append(&*log, keyed("xy", "1", "z")).await;
    let f = append(&*log, keyed("x", "1", "yz")).await;
    let all = [a, b, c, d, e, f];
    assert_eq!(all.iter().collect::<HashSet<_>>().len(), all.len());
    for (topic, key, id) in [
        ("a", "k", a),
        ("b", "k", b),
        ("x\0y", "z", c),
        ("x", "y\0z", d),
    ] {
        let again = log.append(keyed(topic, "2", key)).await.unwrap();
        assert_eq!((again.id, again.duplicate), (id, true), "{topic:?} {key:?}");
    }
    assert_eq!(read_all(&*log).await.len(), all.len());
}

pub(crate) async fn concurrent_retries_store_one_event(opener: impl Opener) {
    // A publisher retrying while its first attempt is still in flight: one event, one id.
    const RETRIES: usize = 20;
    let log = opener.open(KEEP_ALL).await;
    let attempts: Vec<_> = (0..RETRIES)
        .map(|_| {
            let log = Arc::clone(&log);
            tokio::spawn(async move { log.append(keyed("t", "once", "same")).await })
        })
        .collect();
    let mut answers = Vec::new();
    for attempt in attempts {
        answers.push(within("append", attempt).await.unwrap().unwrap());
    }
    let stored = read_all(&*log).await;
    assert_eq!(stored.len(), 1);
    assert!(answers.iter().all(|a| a.id == stored[0].id));
    assert_eq!(answers.iter().filter(|a| !a.duplicate).count(), 1);
}

pub(crate) async fn retention_by_count_keeps_the_newest(opener: impl Opener) {
    let log = opener
        .open(Retention {
            max_events: Some(3),
            max_age: None,
        })
        .await;
    let first = append(&*log, keyed("t", "0", "once")).await;
    let mut appended = vec![first];
    for i in 1..6 {
        appended.push(append(&*log, event(["t", "u"][i % 2], &i.to_string())).await);
    }
    let batch = log.read_after(None, 100).await.unwrap();
    assert_eq!(ids(&batch.events), appended[3..]);
    assert!(batch.truncated);
    // The key went with its event: the same key now stores a new event.
    let again = log.append(keyed("t", "later", "once")).await.unwrap();
    assert!(!again.duplicate);
    assert!(again.id > appended[5]);
    let batch = log.read_after(None, 100).await.unwrap();
    assert_eq!(ids(&batch.events), [appended[4], appended[5], again.id]);
}

pub(crate) async fn retention_by_age_removes_old_events(opener: impl Opener) {
    // Long enough that a loaded machine does not age the second event out between its append and
    // the read; the first event waits it out.
    const MAX_AGE: Duration = Duration::from_millis(1500);
    let log = opener
        .open(Retention {
            max_events: None,
            max_age: Some(MAX_AGE),
        })
        .await;
    let old = append(&*log, keyed("t", "old", "k")).await;
    tokio::time::sleep(MAX_AGE + Duration::from_millis(200)).await;
    let young_at = Instant::now();
    let again = log.append(keyed("t", "new", "k")).await.unwrap();
    assert!(!again.duplicate, "the key went with its aged-out event");
    let young = again.id;
    let from_oldest = log.read_after(None, 100).await.unwrap();
    let after_old = log.read_after(Some(old), 100).await.unwrap();
    if young_at.elapsed() < MAX_AGE {
        assert_eq!(ids(&from_oldest.events), [young]);
        assert_eq!(ids(&after_old.events), [young]);
    }
    assert!(from_oldest.truncated, "the old event was removed");
    assert!(!after_old.truncated, "nothing after `old` was removed");
}

pub(crate) async fn truncated_only_when_the_reader_missed_something(opener: impl Opener) {
    let log = opener
        .open(Retention {
            max_events: Some(2),
            max_age: None,
        })
        .await;
    let mut appended = Vec::new();
    for i in 0..5 {
        appended.push(append(&*log, event("t", &i.to_string())).await);
    }
    // Retained: 3 and 4. Removed: 0, 1, 2.
    let truncated = |after| {
        let log = Arc::clone(&log);
        async move { log.read_after(after, 10).await.unwrap() }
    };
    let batch = truncated(Some(appended[1])).await;
    assert!(batch.truncated, "2 was removed and comes after 1");
    assert_eq!(ids(&batch.events), appended[3..]);
    assert!(truncated(Some(EventId::new(0, 0))).await.truncated);
    assert!(truncated(None).await.truncated);
    let batch = truncated(Some(appended[2])).await;
    assert!(!batch.truncated, "the reader already had 2");
    assert_eq!(ids(&batch.events), appended[3..]);
    assert!(!truncated(Some(appended[3])).await.truncated);
    assert!(!truncated(Some(appended[4])).await.truncated);
}

pub(crate) async fn tail_sees_appends_in_order_once_readable(opener: impl Opener) {
    let log = opener.open(KEEP_ALL).await;
    let mut tail = log.tail();
    for i in 0..20 {
        let id = append(&*log, event(["a", "b"][i % 2], &i.to_string())).await;
        let seen = recv(&mut tail).await;
        assert_eq!(seen.id, id);
        assert_eq!(seen.data, i.to_string());
    }
    // Whatever the tail shows is already readable: a lagging subscriber can recover it.
    let mut later = log.tail();
    let writer = {
        let log = Arc::clone(&log);
        tokio::spawn(async move {
            for i in 0..20 {
                append(&*log, event("c", &i.to_string())).await;
            }
        })
    };
    for _ in 0..20 {
        let seen = recv(&mut later).await;
        let readable = read_all(&*log).await;
        assert!(
            readable.iter().any(|e| e.id == seen.id),
            "{} is tailed but not readable",
            seen.id
        );
    }
    within("writer", writer).await.unwrap();
}

pub(crate) async fn concurrent_appends_get_distinct_increasing_ids(opener: impl Opener) {
    const TASKS: usize = 16;
    const EACH: usize = 25;
    let log = opener.open(KEEP_ALL).await;
    let mut tail = log.tail();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                let mut ids = Vec::with_capacity(EACH);
                for i in 0..EACH {
                    let data = format!("{task}/{i}");
                    ids.push(append(&*log, event(&format!("t{task}"), &data)).await);
                }
                ids
            })
        })
        .collect();
    let mut all = Vec::new();
    for task in tasks {
        let ids = within("appender", task).await.unwrap();
        assert!(
            ids.windows(2).all(|w| w[0] < w[1]),
            "one task's ids increase"
        );
        all.extend(ids);
    }
    all.sort();
    let unique: HashSet<_> = all.iter().collect();
    assert_eq!(unique.len(), TASKS * EACH, "ids are distinct");
    let mut tailed = Vec::new();
    for _ in 0..TASKS * EACH {
        tailed.push(recv(&mut tail).await.id);
    }
    assert_eq!(tailed, all, "the tail is in id order");
    assert_eq!(ids(&read_all(&*log).await), all);
}

pub(crate) async fn last_id_is_the_newest_ever_assigned(opener: impl Opener) {
    let log = opener
        .open(Retention {
            max_events: Some(1),
            max_age: None,
        })
        .await;
    assert_eq!(log.last_id().await.unwrap(), None);
    let first = append(&*log, event("a", "1")).await;
    assert_eq!(log.last_id().await.unwrap(), Some(first));
    let second = append(&*log, event("b", "2")).await;
    assert_eq!(log.last_id().await.unwrap(), Some(second));
    let dup = log.append(keyed("b", "3", "k")).await.unwrap();
    let dup_again = log.append(keyed("b", "3", "k")).await.unwrap();
    assert_eq!(dup_again.id, dup.id);
    assert_eq!(log.last_id().await.unwrap(), Some(dup.id));
}

/// The hub calls a `Last-Event-ID` beyond [`Log::last_id`] "from the future" and resets it (see
/// `sse`): that is sound only if no id a client can know, from a publish answer or from a stream
/// fed by the tail, is ever beyond `last_id` when read after it, even while appends are under way.
pub(crate) async fn no_acknowledged_or_tailed_id_is_beyond_last_id(opener: impl Opener) {
    const TASKS: usize = 4;
    const EACH: usize = 25;
    let log = opener.open(KEEP_ALL).await;
    let mut tail = log.tail();
    let tasks: Vec<_> = (0..TASKS)
        .map(|task| {
            let log = Arc::clone(&log);
            tokio::spawn(async move {
                for i in 0..EACH {
                    let id = append(&*log, event("t", &format!("{task}/{i}"))).await;
                    let last = within("last_id", log.last_id()).await.unwrap();
                    assert!(last >= Some(id), "acknowledged {id}, last_id {last:?}");
                }
            })
        })
        .collect();
    for _ in 0..TASKS * EACH {
        let id = recv(&mut tail).await.id;
        let last = within("last_id", log.last_id()).await.unwrap();
        assert!(last >= Some(id), "tailed {id}, last_id {last:?}");
    }
    for task in tasks {
        within("appender", task).await.unwrap();
    }
}

pub(crate) async fn append_after_close_is_refused(opener: impl Opener) {
    let log = opener.open(KEEP_ALL).await;
    append(&*log, event("a", "1")).await;
    within("close", log.close()).await.unwrap();
    assert!(within("append", log.append(event("a", "2"))).await.is_err());
    // Closing twice is harmless.
    within("close", log.close()).await.unwrap();
}

pub(crate) async fn tail_ends_after_close(opener: impl Opener) {
    let log = opener.open(KEEP_ALL).await;
    let mut tail = log.tail();
    let id = append(&*log, event("a", "1")).await;
    within("close", log.close()).await.unwrap();
    // What was appended before still arrives, then the tail ends: the hub's broker can stop.
    assert_eq!(recv(&mut tail).await.id, id);
    assert_eq!(
        within("tail end", tail.recv()).await,
        Err(broadcast::error::RecvError::Closed)
    );
    assert_eq!(
        within("tail after close", log.tail().recv()).await,
        Err(broadcast::error::RecvError::Closed)
    );
}

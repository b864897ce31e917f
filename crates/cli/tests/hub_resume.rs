//! Resume of the real `herald serve`: `Last-Event-ID` (header or query parameter) replays exactly
//! what was missed, then live, with no gap and no duplicate; `herald.reset` past retention; a
//! subscriber that lags behind the live path catches up from the log; a resume from an id beyond
//! the log's newest gets `herald.reset` and the live events, on every store.

mod hub_support;

use std::thread;

use herald_hub::log::EventId;
use herald_testkit::redis::RedisServer;
use hub_support::Hub;

#[test]
fn resume_after_a_drop_by_header_and_by_query_parameter() {
    let hub = Hub::start(&["--store", "memory"]);
    let mut sub = hub.subscribe("topic=chat/*", None);
    let first: Vec<String> = (0..3)
        .map(|i| hub.publish("chat/a", &format!("a{i}")))
        .collect();
    let seen = sub.take(3);
    assert_eq!(seen[2].last_event_id, first[2]);
    drop(sub); // the client drops

    let mut missed = Vec::new();
    for i in 0..4 {
        missed.push(hub.publish("chat/b", &format!("b{i}")));
        hub.publish("other", "not subscribed");
    }
    let last = seen[2].last_event_id.as_str();
    for (query, header) in [
        ("topic=chat/*".to_string(), Some(last)),
        (format!("topic=chat/*&lastEventId={last}"), None),
        // The header wins over the query parameter (a browser sets it on reconnect).
        (format!("topic=chat/*&lastEventId={}", first[0]), Some(last)),
    ] {
        let mut resumed = hub.subscribe(&query, header);
        let got = resumed.take(missed.len());
        let ids: Vec<&str> = got.iter().map(|e| e.last_event_id.as_str()).collect();
        assert_eq!(ids, missed);
        assert_eq!(got[0].data, "b0");
        // Then live.
        let live = hub.publish("chat/c", "live");
        let ev = resumed.next().unwrap();
        assert_eq!(
            (ev.data.as_str(), ev.last_event_id.as_str()),
            ("live", live.as_str())
        );
        missed.push(live); // the next resume from `last` replays it too
    }
}

/// While a publisher keeps publishing, subscribers resume from every position: each sees the
/// exact suffix of the log, the replay and the live path joined with no gap and no duplicate.
#[test]
fn resume_during_publishing_has_no_gap_and_no_duplicate() {
    let hub = Hub::start(&["--store", "memory"]);
    let total = 400;
    let addr = hub.addr;
    let publisher = thread::spawn(move || {
        let hub = hub_support::Client(addr);
        (0..total)
            .map(|i| hub.publish("t", &i.to_string()))
            .collect::<Vec<_>>()
    });
    let first = hub.subscribe("topic=t", None).take(1).remove(0);
    let mut resumers = Vec::new();
    for _ in 0..8 {
        let from = first.last_event_id.clone();
        let addr = hub.addr;
        resumers.push(thread::spawn(move || {
            let mut sub = hub_support::Sub::open(addr, "topic=t", Some(&from));
            let start: usize = first_data(&mut sub);
            let mut expected = start;
            while expected + 1 < total {
                let ev = sub.next().expect("event");
                expected += 1;
                assert_eq!(ev.data, expected.to_string(), "gap or duplicate");
            }
        }));
        thread::sleep(std::time::Duration::from_millis(5)); // spread the resumes over the publishing
    }
    let ids = publisher.join().unwrap();
    assert_eq!(ids.len(), total);
    for r in resumers {
        r.join().unwrap();
    }

    fn first_data(sub: &mut hub_support::Sub) -> usize {
        sub.next().unwrap().data.parse().unwrap()
    }
}

#[test]
fn resume_past_retention_sends_herald_reset_then_the_oldest_retained() {
    let hub = Hub::start(&["--store", "memory", "--retention-events", "5"]);
    let ids: Vec<String> = (0..10)
        .map(|i| hub.publish("t", &format!("e{i}")))
        .collect();
    let mut sub = hub.subscribe("topic=t", Some(&ids[0]));
    let reset = sub.next().unwrap();
    assert_eq!(reset.event_type, "herald.reset");
    let data: serde_json::Value = serde_json::from_str(&reset.data).unwrap();
    assert_eq!(data["reason"], "retention");
    assert_eq!(data["after"], ids[0].as_str());
    // The reset carries the resume position as its id, so even a spec parser (whose new stream
    // starts with an empty id buffer) keeps its place if the connection drops right after it.
    assert_eq!(reset.last_event_id, ids[0]);
    let raw = String::from_utf8_lossy(&sub.raw);
    let expected = format!(
        "retry: 3000\nid: {0}\nevent: herald.reset\ndata: {{\"after\":\"{0}\",\"reason\":\"retention\"}}\n\n",
        ids[0]
    );
    assert!(raw.starts_with(&expected), "{raw}");
    let got = sub.take(5);
    let got_ids: Vec<&str> = got.iter().map(|e| e.last_event_id.as_str()).collect();
    assert_eq!(got_ids, ids[5..]);

    // A resume within retention gets no reset.
    let mut sub = hub.subscribe("topic=t", Some(&ids[7]));
    let ev = sub.next().unwrap();
    assert_eq!(
        (ev.event_type.as_str(), ev.last_event_id.as_str()),
        ("message", ids[8].as_str())
    );
}

/// A subscriber that does not read while much is published falls behind its small live queue;
/// it is neither disconnected nor fed a gap: it catches up from the log.
#[test]
fn lagging_subscriber_catches_up_from_the_log() {
    let hub = Hub::start(&["--store", "memory", "--max-unsent-bytes", "2048"]);
    let mut sub = hub.subscribe("topic=bulk", None);
    // ~12 MB: more than the socket buffers of a reader that does not read can hold (its receive
    // window only grows as it reads; the sender's buffer is capped by net.ipv4.tcp_wmem, 4 MB by
    // default), so the small queue overflows.
    let total = 3000;
    hub_support::publish_concurrently(hub.addr, "bulk", 3, total / 3, 4000);
    let got = sub.take(total);
    let mut ids: Vec<herald_hub::log::EventId> = got
        .iter()
        .map(|e| e.last_event_id.parse().unwrap())
        .collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids not strictly increasing"
    );
    ids.dedup();
    assert_eq!(ids.len(), total);
    assert!(
        hub.metric("herald_lagged_catchups_total") > 0,
        "the subscriber never lagged"
    );
    let end = hub.publish("bulk", "end");
    let ev = sub.next().unwrap();
    assert_eq!(
        (ev.data.as_str(), ev.last_event_id.as_str()),
        ("end", end.as_str())
    );
}

/// A subscriber that lags so far that retention removed what it missed gets `herald.reset` in the
/// middle of its stream, then continues in order up to the newest event.
#[test]
fn lag_past_retention_sends_herald_reset_mid_stream() {
    let hub = Hub::start(&[
        "--store",
        "memory",
        "--max-unsent-bytes",
        "2048",
        "--retention-events",
        "20",
    ]);
    let mut sub = hub.subscribe("topic=bulk", None);
    // ~12 MB in all: see `lagging_subscriber_catches_up_from_the_log`.
    hub_support::publish_concurrently(hub.addr, "bulk", 3, 1000, 4000);
    let end = hub.publish("bulk", "end");
    let mut resets = 0;
    let mut last: Option<herald_hub::log::EventId> = None;
    loop {
        let ev = sub.next().expect("stream ended");
        if ev.event_type == "herald.reset" {
            resets += 1;
            continue;
        }
        let id = ev.last_event_id.parse().unwrap();
        assert!(last.is_none_or(|l| l < id), "ids not strictly increasing");
        last = Some(id);
        if ev.last_event_id == end {
            break;
        }
    }
    assert!(
        resets >= 1,
        "the subscriber lost events without a herald.reset"
    );
}

/// A resume from `requested`, an id beyond everything `hub` ever assigned (its newest is
/// `newest`, `0-0` when none): `herald.reset` first, then the live events; reconnections with the
/// stream's last id (the reset's, then an event's) resume exactly.
fn resume_from_the_future(hub: &Hub, requested: &str, newest: &str) {
    let mut sub = hub.subscribe("topic=t", Some(requested));
    assert_eq!(sub.status(), 200);
    let reset = sub.next().expect("herald.reset");
    assert_eq!(reset.event_type, "herald.reset", "{reset:?}");
    let data: serde_json::Value = serde_json::from_str(&reset.data).unwrap();
    assert_eq!(
        data,
        serde_json::json!({"reason": "future", "after": newest, "requested": requested})
    );
    // Its id is the log's real position: a reconnection right after it resumes from there.
    assert_eq!(reset.last_event_id, newest);
    let live = hub.publish("t", "live");
    let ev = sub.next().expect("the live event");
    assert_eq!(
        (ev.data.as_str(), ev.last_event_id.as_str()),
        ("live", live.as_str())
    );
    drop(sub);
    let missed = hub.publish("t", "missed");
    let mut from_reset = hub.subscribe("topic=t", Some(&reset.last_event_id));
    let got = from_reset.take_ids_and_data(2);
    assert_eq!(
        got,
        [
            (live.clone(), "live".into()),
            (missed.clone(), "missed".into())
        ]
    );
    let mut from_event = hub.subscribe("topic=t", Some(&live));
    let ev = from_event.next().unwrap();
    assert_eq!(
        (ev.event_type.as_str(), ev.last_event_id.as_str()),
        ("message", missed.as_str()),
        "a resume from an id the log has gets no reset"
    );
}

/// The ids a client may bring from the future: a clock an hour ahead of the hub's, and the
/// largest id there is.
fn future_ids(newest: &str) -> [String; 2] {
    let newest: EventId = newest.parse().unwrap();
    [
        EventId::new(newest.millis + 3_600_000, 0).to_string(),
        EventId::new(u64::MAX, u64::MAX).to_string(),
    ]
}

/// The issue-13 report: a `Last-Event-ID` beyond the log's last id answered 200 and then
/// silently skipped live events.
fn resume_from_the_future_on(store: &[&str]) {
    // No heartbeat within the read timeout: a stream that sends nothing fails the test rather
    // than hanging on comments (which is what today's main did).
    let mut args = vec!["--heartbeat", "1h"];
    args.extend_from_slice(store);
    // A log that never assigned an id (a wiped store): everything is from the future but `0-0`.
    let hub = Hub::start(&args);
    resume_from_the_future(&hub, "1700000000000-0", "0-0");
    let newest = hub.publish("t", "newest");
    for requested in future_ids(&newest) {
        let newest = hub.publish("other", "the newest id, of another topic");
        resume_from_the_future(&hub, &requested, &newest);
    }
}

#[test]
fn resume_from_an_id_beyond_the_newest_gets_herald_reset_then_live_events_memory() {
    resume_from_the_future_on(&["--store", "memory"]);
}

#[test]
fn resume_from_an_id_beyond_the_newest_gets_herald_reset_then_live_events_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    resume_from_the_future_on(&["--store", "embedded", "--data-dir", data_dir]);
}

#[test]
fn resume_from_an_id_beyond_the_newest_gets_herald_reset_then_live_events_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    resume_from_the_future_on(&["--store", "redis", "--redis-url", &url]);
}

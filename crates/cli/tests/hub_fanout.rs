//! Fan-out of the real `herald serve`: many subscribers, topic patterns, and each subscriber's
//! events in strictly increasing id order across all its topics.

mod hub_support;

use std::thread;

use herald_hub::log::EventId;
use hub_support::{Hub, Sub};

fn id(s: &str) -> EventId {
    s.parse().expect("event id")
}

#[test]
fn two_hundred_subscribers_get_every_event_in_order() {
    let hub = Hub::start(&["--store", "memory"]);
    let mut subs: Vec<Sub> = (0..200)
        .map(|i| {
            let query = if i % 2 == 0 {
                "topic=room/1"
            } else {
                "topic=room/*&topic=other"
            };
            hub.subscribe(query, None)
        })
        .collect();
    assert_eq!(hub.metric("herald_subscriptions"), 200);
    let ids: Vec<String> = (0..20)
        .map(|i| hub.publish("room/1", &format!("event {i}")))
        .collect();
    let handles: Vec<_> = subs
        .drain(..)
        .map(|mut sub| thread::spawn(move || sub.take(20)))
        .collect();
    for handle in handles {
        let events = handle.join().unwrap();
        let got: Vec<&str> = events.iter().map(|e| e.last_event_id.as_str()).collect();
        assert_eq!(got, ids);
        for (i, ev) in events.iter().enumerate() {
            assert_eq!(ev.data, format!("event {i}"));
            assert_eq!(ev.event_type, "message");
        }
    }
    hub.wait_metric("herald_delivered_total", |n| n == 4000);
}

#[test]
fn patterns_select_topics() {
    let hub = Hub::start(&["--store", "memory"]);
    let topics = [
        "chat",
        "chat/lobby",
        "chat/dev",
        "chat/dev/rust",
        "demo/time",
        "news",
    ];
    let cases: [(&str, &[&str]); 6] = [
        ("topic=chat", &["chat"]),
        ("topic=chat/*", &["chat/lobby", "chat/dev"]),
        (
            "topic=chat/**",
            &["chat/lobby", "chat/dev", "chat/dev/rust"],
        ),
        ("topic=*/time&topic=news", &["demo/time", "news"]),
        ("topic=**", &topics),
        // Overlapping patterns deliver each event once.
        (
            "topic=chat/dev&topic=chat/*&topic=chat/**",
            &["chat/lobby", "chat/dev", "chat/dev/rust"],
        ),
    ];
    let mut subs: Vec<Sub> = cases.iter().map(|(q, _)| hub.subscribe(q, None)).collect();
    for t in topics {
        hub.publish(t, t);
    }
    // A last event that every subscriber receives marks the end of what it should have got.
    hub.publish("chat", "end");
    hub.publish("news", "end");
    hub.publish("chat/dev", "end");
    hub.publish("demo/time", "end");
    for ((query, expected), sub) in cases.iter().zip(subs.iter_mut()) {
        let mut got = Vec::new();
        loop {
            let ev = sub.next().expect("event");
            if ev.data == "end" {
                break;
            }
            got.push(ev.data);
        }
        assert_eq!(got, *expected, "{query}");
    }
}

/// Concurrent publishers on several topics: a subscriber of all of them (by name and by pattern)
/// sees every event once, in strictly increasing id order.
#[test]
fn multi_topic_order_is_the_log_order() {
    let hub = Hub::start(&["--store", "memory"]);
    let mut sub = hub.subscribe("topic=a&topic=b/*&topic=c", None);
    let addr = hub.addr;
    let per_thread = 60;
    let publishers: Vec<_> = ["a", "b/x", "c", "b/y"]
        .into_iter()
        .map(|topic| {
            thread::spawn(move || {
                let hub = hub_support::Client(addr);
                (0..per_thread)
                    .map(|i| hub.publish(topic, &format!("{topic} {i}")))
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    let mut published: Vec<EventId> = publishers
        .into_iter()
        .flat_map(|h| h.join().unwrap())
        .map(|s| id(&s))
        .collect();
    published.sort();
    let got: Vec<EventId> = sub
        .take(published.len())
        .iter()
        .map(|e| id(&e.last_event_id))
        .collect();
    assert!(
        got.windows(2).all(|w| w[0] < w[1]),
        "ids not strictly increasing"
    );
    assert_eq!(got, published);
}

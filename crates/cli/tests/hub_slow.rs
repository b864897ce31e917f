//! A subscriber that stops reading: it does not grow the hub's memory without bound, does not
//! delay the other subscribers, and is closed after the write timeout (and counted).

mod hub_support;

use std::thread;

use hub_support::{Client, Hub};

#[test]
fn stalled_subscriber_is_bounded_closed_and_harmless() {
    let hub = Hub::start(&[
        "--store",
        "memory",
        "--write-timeout",
        "1s",
        "--max-unsent-bytes",
        "16384",
        "--retention-events",
        "200",
    ]);
    // Subscribes, reads the head, then never reads again.
    let stalled = hub.subscribe("topic=feed", None);
    let mut healthy = hub.subscribe("topic=feed", None);
    let rss_before = hub.rss_kib();

    let payload = "y".repeat(32 * 1024);
    let total = 300; // ~10 MB: far more than the stalled socket's buffers hold
    let addr = hub.addr;
    let publisher = thread::spawn(move || {
        let client = Client(addr);
        (0..total)
            .map(|i| client.publish("feed", &format!("{i} {payload}")))
            .collect::<Vec<_>>()
    });
    // The healthy subscriber keeps up with everything while the other is stalled.
    let got = healthy.take(total);
    let ids = publisher.join().unwrap();
    let got_ids: Vec<&str> = got.iter().map(|e| e.last_event_id.as_str()).collect();
    assert_eq!(got_ids, ids);

    // The stalled one is closed after the write timeout and counted.
    hub.wait_metric("herald_slow_clients_closed_total", |n| n == 1);
    hub.wait_metric("herald_subscriptions", |n| n == 1);
    // Memory: the store holds at most 200 events (~6.5 MB); the stalled stream held at most its
    // 16 KiB queue plus hyper's buffer. Far below the 10 MB it would hold unbounded.
    let rss_after = hub.rss_kib();
    assert!(
        rss_after < rss_before + 24 * 1024,
        "hub grew from {rss_before} KiB to {rss_after} KiB"
    );
    drop(stalled);

    // The healthy stream is still live.
    let id = hub.publish("feed", "still here");
    let ev = healthy.next().unwrap();
    assert_eq!(
        (ev.data.as_str(), ev.last_event_id.as_str()),
        ("still here", id.as_str())
    );
}

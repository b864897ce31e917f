//! The hub's system topic `herald/metrics` on the real `herald serve`: a snapshot a second to
//! streams that name it, none to wildcards, never in the log, no `id:` and no lost resume
//! position; publishing to it is refused; `--no-metrics-topic` turns it off; `GET /dashboard`.

mod hub_support;

use std::time::Duration;

use hub_support::{Hub, error_of};

/// Everything `GET /events?<query>` sends in `time` (response head included).
fn read_for(hub: &Hub, query: &str, time: Duration) -> String {
    use std::io::{Read, Write};
    let mut stream = std::net::TcpStream::connect(hub.addr).unwrap();
    stream.set_read_timeout(Some(time)).unwrap();
    write!(stream, "GET /events?{query} HTTP/1.0\r\nHost: x\r\n\r\n").unwrap();
    let mut raw = Vec::new();
    let mut chunk = [0u8; 4096];
    // Ends with the read timeout (an error): the stream stays open.
    while let Ok(n @ 1..) = stream.read(&mut chunk) {
        raw.extend_from_slice(&chunk[..n]);
    }
    String::from_utf8_lossy(&raw).into_owned()
}

#[test]
fn snapshots_reach_exact_subscribers_without_ids_and_stay_out_of_the_log() {
    let hub = Hub::start(&["--store", "memory"]);
    let mut sub = hub.subscribe("topic=herald/metrics&topic=jobs", None);
    assert_eq!(sub.status(), 200);
    let first = sub.next().expect("a metrics event");
    assert_eq!(first.event_type, "metrics");
    assert_eq!(first.last_event_id, "", "system events carry no id");
    let v: serde_json::Value = serde_json::from_str(&first.data).unwrap();
    assert_eq!(v["subscriptions"], 1);
    assert!(v["rss_bytes"].as_u64().unwrap() > 0);
    let topics = v["topics"].as_array().unwrap();
    assert!(topics.iter().any(|t| t["topic"] == "herald/metrics"), "{v}");

    // A published event is counted in the next snapshots and keeps its id on the stream.
    let id = hub.publish("jobs", "one");
    let mut saw_event = false;
    let mut published_total = 0;
    while published_total < 1 || !saw_event {
        let ev = sub.next().expect("stream open");
        if ev.event_type == "metrics" {
            // An id-less event does not clear the id the stream had reached.
            assert_eq!(ev.last_event_id, if saw_event { id.as_str() } else { "" });
            let v: serde_json::Value = serde_json::from_str(&ev.data).unwrap();
            published_total = v["published_total"].as_u64().unwrap();
        } else {
            assert_eq!(
                (ev.data.as_str(), ev.last_event_id.as_str()),
                ("one", id.as_str())
            );
            saw_event = true;
        }
    }

    // The log holds only the user's event: a fresh reader of everything gets just that.
    let mut all = hub.subscribe("topic=**", Some("0-0"));
    let replayed = all.next().unwrap();
    assert_eq!(
        (replayed.data.as_str(), replayed.last_event_id),
        ("one", id.clone())
    );
    // ...and `**` never gets the metrics (2.5 snapshots' worth of waiting).
    let text = read_for(&hub, "topic=**", Duration::from_millis(2500));
    assert!(text.starts_with("HTTP/1.1 200"), "{text}");
    assert!(!text.contains("metrics"), "{text}");
}

#[test]
fn a_resumed_stream_restores_its_id_before_a_metrics_event() {
    let hub = Hub::start(&["--store", "memory"]);
    let id = hub.publish("jobs", "one");
    // Resume after the newest event: no replay, so the first frame with data is a snapshot.
    let mut sub = hub.subscribe("topic=herald/metrics&topic=jobs", Some(&id));
    let ev = sub.next().unwrap();
    assert_eq!(ev.event_type, "metrics");
    assert_eq!(
        ev.last_event_id, id,
        "the resume position survives an id-less event"
    );
    let text = String::from_utf8_lossy(&sub.raw);
    assert!(
        text.starts_with(&format!("retry: 3000\nid: {id}\nevent: metrics\ndata: {{")),
        "{text}"
    );
}

#[test]
fn nobody_can_publish_to_the_system_topics() {
    let hub = Hub::start(&["--store", "memory"]);
    for topic in ["herald/metrics", "herald", "herald/anything/else"] {
        let body = serde_json::json!({ "topic": topic, "event": "metrics", "data": "{}" });
        let (status, answer) = hub.publish_json(&body.to_string());
        assert_eq!(status, 400, "{topic}: {answer}");
        assert!(error_of(&answer).contains("reserved"), "{answer}");
    }
    let (status, answer) = hub.request(
        "POST",
        "/publish",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"topic=herald%2Fmetrics&data=x",
    );
    assert_eq!(status, 400, "{answer}");
    assert_eq!(hub.metric("herald_published_total"), 0);
}

#[test]
fn no_metrics_topic_turns_snapshots_off() {
    let hub = Hub::start(&["--store", "memory", "--no-metrics-topic"]);
    let text = read_for(&hub, "topic=herald/metrics", Duration::from_millis(2500));
    assert!(text.ends_with("\r\n\r\nretry: 3000\n"), "{text}");
}

#[test]
fn dashboard_page_is_served() {
    let hub = Hub::start(&["--store", "memory"]);
    let (status, head, body) = hub.request_full("GET", "/dashboard", &[], b"");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{head}"
    );
    assert!(
        body.contains("herald/metrics"),
        "the page subscribes to the system topic"
    );
    assert_eq!(hub.request("POST", "/dashboard", &[], b"").0, 405);

    // The last snapshots, oldest first, for a dashboard that opens now.
    let deadline = std::time::Instant::now() + hub_support::TIMEOUT;
    let samples = loop {
        let (status, body) = hub.request("GET", "/dashboard/samples", &[], b"");
        assert_eq!(status, 200);
        let samples: Vec<serde_json::Value> = serde_json::from_str(&body).unwrap();
        if samples.len() >= 2 {
            break samples;
        }
        assert!(std::time::Instant::now() < deadline, "no snapshots: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    assert!(samples[0]["time"].as_u64() < samples[1]["time"].as_u64());
    assert!(samples.iter().all(|s| s["interval_ms"] == 1000));
}

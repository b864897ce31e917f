//! `GET /events?last=N` on the real `herald serve`: a new subscriber starts with the newest N
//! retained events of its topics (patterns matched, private events only as its token allows),
//! oldest first, then live with no gap and no duplicate; a `Last-Event-ID` wins over it; bad
//! values are 400 with the reason; on every store.

mod hub_support;

use std::thread;

use herald_testkit::redis::RedisServer;
use hub_support::{Hub, Sub, error_of};
use jsonwebtoken::{Algorithm, EncodingKey, Header};

const SECRET: &str = "test-secret-0123456789abcdef-0123456789";

fn token(subscribe: &[&str], publish: &[&str]) -> String {
    let claims = serde_json::json!({
        "herald": {"publish": publish, "subscribe": subscribe},
        "exp": jsonwebtoken::get_current_timestamp() + 600,
    });
    let key = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
}

fn ids_and_data(sub: &mut Sub, n: usize) -> Vec<(String, String)> {
    sub.take_ids_and_data(n)
}

/// What a new visitor of the demo page saw: "No messages yet" on a chat with history.
fn a_new_subscriber_sees_the_recent_history_then_live(store: &[&str]) {
    let mut args = vec!["--heartbeat", "1h"];
    args.extend_from_slice(store);
    let hub = Hub::start(&args);
    // An empty log: nothing to start with, and the live path still works.
    let mut empty = hub.subscribe("topic=chat/demo&last=50", None);
    assert_eq!(empty.status(), 200);
    let mut demo = Vec::new();
    let mut chat = Vec::new();
    for i in 0..6 {
        let id = hub.publish("chat/demo", &format!("d{i}"));
        demo.push((id.clone(), format!("d{i}")));
        chat.push((id, format!("d{i}")));
        hub.publish("other", "not asked for");
        let id = hub.publish("chat/x", &format!("x{i}"));
        chat.push((id, format!("x{i}")));
    }
    assert_eq!(ids_and_data(&mut empty, 6), demo);
    for (query, only_demo, n) in [
        ("topic=chat/demo&last=3", true, Some(3)),
        ("topic=chat/demo&last=1000", true, None),
        ("topic=chat/*&last=4", false, Some(4)),
        ("topic=chat/demo&topic=chat/x&last=5", false, Some(5)),
    ] {
        // The newest n of what was published so far (live events of earlier rounds included).
        let all = if only_demo { &demo } else { &chat };
        let want = all[all.len() - n.unwrap_or(all.len())..].to_vec();
        let mut sub = hub.subscribe(query, None);
        assert_eq!(sub.status(), 200, "{query}");
        assert_eq!(ids_and_data(&mut sub, want.len()), want, "{query}");
        // Then live, nothing repeated.
        let live = hub.publish("chat/demo", "live");
        assert_eq!(
            ids_and_data(&mut sub, 1),
            [(live.clone(), "live".into())],
            "{query}"
        );
        demo.push((live.clone(), "live".into()));
        chat.push((live, "live".into()));
    }
    // A Last-Event-ID (header or query parameter) wins: a reconnection resumes, no history.
    let from = demo[demo.len() - 2].0.clone();
    for (query, header) in [
        ("topic=chat/demo&last=50".to_string(), Some(from.as_str())),
        (format!("topic=chat/demo&last=50&lastEventId={from}"), None),
    ] {
        let mut sub = hub.subscribe(&query, header);
        assert_eq!(ids_and_data(&mut sub, 1), demo[demo.len() - 1..], "{query}");
    }
}

#[test]
fn a_new_subscriber_with_last_n_sees_the_recent_history_then_live_memory() {
    a_new_subscriber_sees_the_recent_history_then_live(&["--store", "memory"]);
}

#[test]
fn a_new_subscriber_with_last_n_sees_the_recent_history_then_live_embedded() {
    let dir = tempfile::tempdir().unwrap();
    let data_dir = dir.path().to_str().unwrap();
    a_new_subscriber_sees_the_recent_history_then_live(&[
        "--store",
        "embedded",
        "--data-dir",
        data_dir,
    ]);
}

#[test]
fn a_new_subscriber_with_last_n_sees_the_recent_history_then_live_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    a_new_subscriber_sees_the_recent_history_then_live(&["--store", "redis", "--redis-url", &url]);
}

/// Subscribers open with `last=1000` while a publisher publishes: each gets every event from the
/// first, in order, once (history, catch-up and live joined with no gap and no duplicate).
#[test]
fn history_joins_live_with_no_gap_and_no_duplicate_while_publishing() {
    let hub = Hub::start(&["--store", "memory", "--heartbeat", "1h"]);
    let total = 300;
    let addr = hub.addr;
    let publisher = thread::spawn(move || {
        let client = hub_support::Client(addr);
        (0..total)
            .map(|i| client.publish("t", &i.to_string()))
            .collect::<Vec<_>>()
    });
    let mut subs = Vec::new();
    for _ in 0..5 {
        let sub = hub.subscribe("topic=t&last=1000", None);
        assert_eq!(sub.status(), 200);
        subs.push(sub);
    }
    let published = publisher.join().unwrap();
    for mut sub in subs {
        let got: Vec<String> = sub
            .take(total)
            .into_iter()
            .map(|e| e.last_event_id)
            .collect();
        assert_eq!(got, published);
    }
}

/// Private events in the history only as the token allows, as on the live path.
#[test]
fn history_holds_private_events_only_for_tokens_that_cover_them() {
    let hub = Hub::start(&[
        "--store",
        "memory",
        "--jwt-secret",
        SECRET,
        "--allow-anonymous-subscribers",
    ]);
    let publisher = format!("Bearer {}", token(&[], &["**"]));
    for body in [
        r#"{"topic":"chat/a","data":"private a","private":true}"#,
        r#"{"topic":"chat/b","data":"private b","private":true}"#,
        r#"{"topic":"chat/a","data":"public a"}"#,
    ] {
        let (status, _, answer) = hub.request_full(
            "POST",
            "/publish",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &publisher),
            ],
            body.as_bytes(),
        );
        assert_eq!(status, 200, "{answer}");
    }
    let a_only = token(&["chat/a"], &[]);
    let all = token(&["**"], &[]);
    for (name, query, want) in [
        (
            "anonymous",
            "topic=chat/*&last=10".to_string(),
            vec!["public a"],
        ),
        (
            "chat/a",
            format!("topic=chat/*&last=10&access_token={a_only}"),
            vec!["private a", "public a"],
        ),
        (
            "everything",
            format!("topic=chat/*&last=2&access_token={all}"),
            vec!["private b", "public a"],
        ),
    ] {
        // The live marker goes to a topic of this round's own, so that no earlier one is history.
        let mark = format!("mark/{}", name.replace('/', "-"));
        let mut sub = hub.subscribe(&format!("{query}&topic={mark}"), None);
        assert_eq!(sub.status(), 200, "{name}");
        let mut got: Vec<String> = sub.take(want.len()).into_iter().map(|e| e.data).collect();
        // Nothing else was sent before the live marker.
        let (status, _, answer) = hub.request_full(
            "POST",
            "/publish",
            &[
                ("Content-Type", "application/json"),
                ("Authorization", &publisher),
            ],
            serde_json::json!({"topic": mark, "data": "end"})
                .to_string()
                .as_bytes(),
        );
        assert_eq!(status, 200, "{answer}");
        got.push(sub.next().unwrap().data);
        let mut want: Vec<&str> = want;
        want.push("end");
        assert_eq!(got, want, "{name}");
    }
}

/// A `last` that is not a count from 0 to 1000 is refused with the reason, not ignored.
#[test]
fn a_bad_last_is_400_with_the_reason() {
    let hub = Hub::start(&["--store", "memory"]);
    for bad in ["1001", "-1", "ten", "", "1e3", "99999999999999999999999"] {
        let (status, body) = hub.request("GET", &format!("/events?topic=t&last={bad}"), &[], b"");
        assert_eq!(status, 400, "{bad:?}: {body}");
        let reason = error_of(&body);
        assert!(
            reason.contains("\"last\"") && reason.contains("1000"),
            "{reason}"
        );
    }
    let ok = hub.subscribe("topic=t&last=1000", None);
    assert_eq!(ok.status(), 200);
}

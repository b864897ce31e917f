//! Several real `herald serve --store redis` processes against a real `redis-server` started by
//! the test: delivery across hubs, failover after `kill -9` without loss, a Redis restart, and an
//! idempotent publish retried through another hub.

mod hub_support;

use std::time::{Duration, Instant};

use herald_testkit::redis::{Persistence, RedisServer};
use hub_support::{Hub, TIMEOUT, error_of, id_of};

fn hub(redis: &RedisServer, extra: &[&str]) -> Hub {
    let url = redis.url();
    let mut args = vec!["--store", "redis", "--redis-url", url.as_str()];
    args.extend_from_slice(extra);
    Hub::start(&args)
}

fn publish_keyed(hub: &Hub, topic: &str, data: &str, key: &str) -> String {
    let body = serde_json::json!({ "topic": topic, "data": data, "id": key }).to_string();
    let (status, body) = hub.publish_json(&body);
    assert_eq!(status, 200, "{body}");
    id_of(&body)
}

#[test]
fn an_event_published_through_one_hub_reaches_subscribers_of_every_hub() {
    let redis = RedisServer::start();
    let a = hub(&redis, &[]);
    let b = hub(&redis, &[]);
    let mut on_a = a.subscribe("topic=news", None);
    let mut on_b = b.subscribe("topic=news", None);
    assert_eq!((on_a.status(), on_b.status()), (200, 200));
    let first = a.publish("news", "through a");
    let second = b.publish("news", "through b");
    for sub in [&mut on_a, &mut on_b] {
        let got = sub.take_ids_and_data(2);
        assert_eq!(
            got,
            [
                (first.clone(), "through a".to_string()),
                (second.clone(), "through b".to_string())
            ]
        );
    }
}

#[test]
fn subscribers_of_a_killed_hub_resume_on_another_without_loss() {
    const SUBSCRIBERS: usize = 5;
    let redis = RedisServer::start_with(Persistence::AppendFsyncAlways);
    let mut a = hub(&redis, &[]);
    let b = hub(&redis, &[]);
    let mut subs: Vec<_> = (0..SUBSCRIBERS)
        .map(|_| a.subscribe("topic=orders", None))
        .collect();
    let before: Vec<String> = (0..10)
        .map(|i| a.publish("orders", &format!("a{i}")))
        .collect();
    let mut last_ids = Vec::new();
    for sub in &mut subs {
        let got: Vec<String> = sub.take(10).into_iter().map(|e| e.last_event_id).collect();
        assert_eq!(got, before);
        last_ids.push(got.last().unwrap().clone());
    }
    a.signal("KILL");
    assert!(a.wait_exit(TIMEOUT).is_some(), "hub a did not die");
    drop(subs);
    // Published while the subscribers were away, through the surviving hub.
    let during: Vec<(String, String)> = (0..20)
        .map(|i| {
            let data = format!("b{i}");
            (b.publish("orders", &data), data)
        })
        .collect();
    let mut resumed = Vec::new();
    for last_id in &last_ids {
        let mut sub = b.subscribe("topic=orders", Some(last_id));
        assert_eq!(sub.status(), 200);
        let got = sub.take_ids_and_data(20);
        assert_eq!(got, during, "every event once, in order");
        resumed.push(sub);
    }
    // Nothing else follows: a marker published now is the very next event of each.
    let marker = b.publish("orders", "marker");
    for sub in &mut resumed {
        let next = sub.next().expect("marker");
        assert_eq!(
            (next.last_event_id.as_str(), next.data.as_str()),
            (marker.as_str(), "marker")
        );
    }
}

#[test]
fn a_redis_restart_is_ridden_out() {
    let mut redis = RedisServer::start_with(Persistence::AppendFsyncAlways);
    let mut a = hub(&redis, &["--heartbeat", "200ms"]);
    let b = hub(&redis, &["--heartbeat", "200ms"]);
    let mut sub = b.subscribe("topic=t", None);
    let first = a.publish("t", "before");
    assert_eq!(sub.next().unwrap().last_event_id, first);

    redis.stop();
    let started = Instant::now();
    let (status, body) = a.publish_json(r#"{"topic":"t","data":"during"}"#);
    assert_eq!(status, 503, "{body}");
    assert!(error_of(&body).contains("unavailable"), "{body}");
    assert!(
        started.elapsed() < Duration::from_secs(15),
        "the 503 took too long"
    );
    // The subscriber's connection stays up: heartbeats keep coming during the outage.
    let seen = sub.raw.len();
    sub.wait_bytes(seen + 3);
    assert!(String::from_utf8_lossy(&sub.raw[seen..]).starts_with(':'));

    redis.restart();
    let deadline = Instant::now() + TIMEOUT;
    let after = loop {
        let (status, body) = a.publish_json(r#"{"topic":"t","data":"after"}"#);
        if status == 200 {
            break id_of(&body);
        }
        assert_eq!(status, 503, "{body}");
        assert!(Instant::now() < deadline, "redis did not come back: {body}");
        std::thread::sleep(Duration::from_millis(200));
    };
    let next = sub.next().expect("the event after the restart");
    assert_eq!(
        (next.last_event_id.as_str(), next.data.as_str()),
        (after.as_str(), "after")
    );
    assert!(after.parse::<Id>().unwrap() > first.parse::<Id>().unwrap());
    assert!(
        a.child.try_wait().unwrap().is_none(),
        "hub a is still running"
    );
    // The data persisted (appendfsync always): a resume from the start sees both events.
    let mut resumed = b.subscribe("topic=t", Some("0-0"));
    let got: Vec<String> = resumed.take(2).into_iter().map(|e| e.data).collect();
    assert_eq!(got, ["before", "after"]);
}

/// Polls `GET /healthz` until its status is `want`; answers its body.
fn wait_health(hub: &Hub, want: u16) -> serde_json::Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (status, body) = hub.request("GET", "/healthz", &[], b"");
        if status == want {
            return serde_json::from_str(&body).expect("JSON health");
        }
        assert!(
            Instant::now() < deadline,
            "healthz stayed {status}, not {want}: {body}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn healthz_fails_while_redis_is_down_and_recovers_after() {
    let mut redis = RedisServer::start();
    let a = hub(&redis, &[]);
    assert_eq!(wait_health(&a, 200)["status"], "ok");

    redis.stop();
    let health = wait_health(&a, 503);
    assert_eq!(health["store"], "redis", "{health}");
    assert!(
        health["error"].as_str().is_some_and(|e| !e.is_empty()),
        "{health}"
    );
    let (status, head, body) = a.request_full(
        "POST",
        "/publish",
        &[("Content-Type", "application/json")],
        br#"{"topic":"t","data":"during"}"#,
    );
    assert_eq!(status, 503, "{body}");
    assert!(
        head.to_ascii_lowercase().contains("\r\nretry-after: "),
        "{head}"
    );
    assert!(a.metric("herald_store_errors_total") >= 1);

    redis.restart();
    assert_eq!(wait_health(&a, 200)["status"], "ok");
}

/// An id as a comparable pair.
#[derive(PartialEq, Eq, PartialOrd, Ord, Debug)]
struct Id(u64, u64);

impl std::str::FromStr for Id {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        let (ms, seq) = s.split_once('-').ok_or(())?;
        Ok(Id(
            ms.parse().map_err(|_| ())?,
            seq.parse().map_err(|_| ())?,
        ))
    }
}

#[test]
fn a_publish_retried_through_another_hub_is_stored_once() {
    let redis = RedisServer::start();
    let a = hub(&redis, &[]);
    let b = hub(&redis, &[]);
    let mut sub = b.subscribe("topic=pay", None);
    let first = publish_keyed(&a, "pay", "charge 10", "req-7");
    let retried = publish_keyed(&b, "pay", "charge 10", "req-7");
    assert_eq!(retried, first);
    let marker = b.publish("pay", "marker");
    let got = sub.take_ids_and_data(2);
    assert_eq!(
        got,
        [
            (first, "charge 10".to_string()),
            (marker, "marker".to_string())
        ]
    );
}

#[test]
fn serve_refuses_a_missing_or_bad_redis_configuration() {
    let run = |args: &[&str]| {
        std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
            .arg("serve")
            .args(["--addr", "127.0.0.1:0", "--store", "redis"])
            .args(args)
            .output()
            .expect("run herald")
    };
    let port = herald_testkit::free_port().to_string();
    let down = format!("redis://127.0.0.1:{port}");
    for (args, says) in [
        (vec![], "--redis-url"),
        (vec!["--redis-url", "http://x"], "redis url"),
        (vec!["--redis-url", down.as_str()], "redis"),
        (
            vec!["--redis-url", down.as_str(), "--redis-prefix", "a b"],
            "redis prefix",
        ),
    ] {
        let out = run(&args);
        assert!(!out.status.success(), "{args:?}");
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(stderr.contains(says), "{args:?}: {stderr}");
    }
}

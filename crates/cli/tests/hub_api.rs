//! The HTTP API of the real `herald serve`: routes, headers, and every bad input refused with its
//! status and JSON error, publishing nothing.

mod hub_support;

use hub_support::{Hub, error_of, id_of};

#[test]
fn events_sends_headers_and_retry_first() {
    let hub = Hub::start(&["--store", "memory", "--retry", "2500ms"]);
    let mut sub = hub.subscribe("topic=chat", None);
    assert_eq!(sub.status(), 200);
    let head = sub.head.to_ascii_lowercase();
    assert!(
        head.contains("content-type: text/event-stream\r\n"),
        "{head}"
    );
    assert!(head.contains("cache-control: no-cache\r\n"), "{head}");
    assert!(head.contains("x-accel-buffering: no\r\n"), "{head}");
    sub.wait_bytes(b"retry: 2500\n".len());
    assert_eq!(&sub.raw[..], b"retry: 2500\n");
    assert_eq!(sub.parser.reconnection_time(), Some(2500));

    let body = r#"{"topic":"chat","data":{"text":"hi"},"event":"chat","retry":700}"#;
    let (status, answer) = hub.publish_json(body);
    assert_eq!(status, 200);
    let id = id_of(&answer);
    let ev = sub.next().unwrap();
    assert_eq!(ev.event_type, "chat");
    assert_eq!(ev.data, r#"{"text":"hi"}"#);
    assert_eq!(ev.last_event_id, id);
    assert_eq!(sub.parser.reconnection_time(), Some(700));
}

#[test]
fn heartbeat_comment_when_idle() {
    let hub = Hub::start(&["--store", "memory", "--heartbeat", "200ms"]);
    let mut sub = hub.subscribe("topic=quiet", None);
    let expected = b"retry: 3000\n:\n".len();
    sub.wait_bytes(expected);
    assert_eq!(&sub.raw[..expected], b"retry: 3000\n:\n");
}

#[test]
fn form_publish_and_multiline_data() {
    let hub = Hub::start(&["--store", "memory"]);
    let mut sub = hub.subscribe("topic=news", None);
    let (status, body) = hub.request(
        "POST",
        "/publish",
        &[("Content-Type", "application/x-www-form-urlencoded")],
        b"topic=news&event=notice&data=line+one%0Aline+two%0D%0Aline+three",
    );
    assert_eq!(status, 200, "{body}");
    let ev = sub.next().unwrap();
    assert_eq!(ev.event_type, "notice");
    assert_eq!(ev.data, "line one\nline two\nline three");
    assert_eq!(ev.last_event_id, id_of(&body));
}

#[test]
fn idempotency_key_stores_once() {
    let hub = Hub::start(&["--store", "memory"]);
    let mut sub = hub.subscribe("topic=t", None);
    let body = r#"{"topic":"t","data":"once","id":"key-1"}"#;
    let (s1, a1) = hub.publish_json(body);
    let (s2, a2) = hub.publish_json(body);
    assert_eq!((s1, s2), (200, 200));
    assert_eq!(id_of(&a1), id_of(&a2));
    let marker = hub.publish("t", "after");
    assert_eq!(sub.next().unwrap().data, "once");
    let ev = sub.next().unwrap();
    assert_eq!(
        (ev.data.as_str(), ev.last_event_id.as_str()),
        ("after", marker.as_str())
    );
    assert_eq!(hub.metric("herald_published_total"), 2);
}

#[test]
fn healthz_metrics_index_and_unknown_routes() {
    let hub = Hub::start(&["--store", "memory"]);
    let (status, body) = hub.request("GET", "/healthz", &[], b"");
    assert_eq!((status, body.as_str()), (200, r#"{"status":"ok"}"#));
    let (status, head, body) = hub.request_full("GET", "/metrics", &[], b"");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/plain"),
        "{head}"
    );
    for name in [
        "herald_connections",
        "herald_subscriptions",
        "herald_published_total",
        "herald_delivered_total",
        "herald_lagged_catchups_total",
        "herald_slow_clients_closed_total",
        "herald_bytes_out_total",
    ] {
        assert!(
            body.contains(&format!("\n{name} ")),
            "{name} missing: {body}"
        );
    }
    let (status, head, body) = hub.request_full("GET", "/", &[], b"");
    assert_eq!(status, 200);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: text/html"),
        "{head}"
    );
    assert!(body.contains("<title>"), "{body}");

    let (status, head, body) = hub.request_full("GET", "/nope", &[], b"");
    assert_eq!(status, 404);
    assert!(
        head.to_ascii_lowercase()
            .contains("content-type: application/json")
    );
    assert_eq!(error_of(&body), "no such route");
    for (method, path) in [
        ("GET", "/publish"),
        ("DELETE", "/publish"),
        ("POST", "/events"),
        ("PUT", "/healthz"),
    ] {
        let (status, body) = hub.request(method, path, &[], b"");
        assert_eq!(status, 405, "{method} {path}");
        assert_eq!(error_of(&body), "method not allowed");
    }
}

/// Every bad publish gets its status and a JSON error, and stores nothing: a subscriber of the
/// topic sees only the valid event sent afterwards.
#[test]
fn bad_publishes_are_refused_and_change_nothing() {
    let hub = Hub::start(&["--store", "memory", "--max-body-bytes", "1000"]);
    let mut sub = hub.subscribe("topic=t&topic=t/**", None);
    let json = ("Content-Type", "application/json");
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    // (what, header, body, status, part of the error message)
    type Case<'a> = (&'a str, (&'a str, &'a str), Vec<u8>, u16, &'a str);
    let cases: Vec<Case<'_>> = vec![
        (
            "invalid JSON",
            json,
            b"{\"topic\":".to_vec(),
            400,
            "invalid JSON",
        ),
        (
            "JSON not an object",
            json,
            b"[1,2]".to_vec(),
            400,
            "invalid JSON",
        ),
        (
            "wrong field type",
            json,
            br#"{"topic":7}"#.to_vec(),
            400,
            "invalid JSON",
        ),
        (
            "missing topic",
            json,
            br#"{"data":"x"}"#.to_vec(),
            400,
            "missing \"topic\"",
        ),
        (
            "empty topic",
            json,
            br#"{"topic":"","data":"x"}"#.to_vec(),
            400,
            "invalid topic",
        ),
        (
            "wildcard topic",
            json,
            br#"{"topic":"t/*","data":"x"}"#.to_vec(),
            400,
            "invalid topic",
        ),
        (
            "bad topic char",
            json,
            br#"{"topic":"t x","data":"x"}"#.to_vec(),
            400,
            "invalid topic",
        ),
        (
            "LF in event",
            json,
            br#"{"topic":"t","event":"a\nid: 1","data":"x"}"#.to_vec(),
            400,
            "invalid event type",
        ),
        (
            "CR in event",
            json,
            br#"{"topic":"t","event":"a\rb","data":"x"}"#.to_vec(),
            400,
            "invalid event type",
        ),
        (
            "LF in id",
            json,
            br#"{"topic":"t","id":"k\nevent: x","data":"x"}"#.to_vec(),
            400,
            "invalid id",
        ),
        (
            "CR in id",
            json,
            br#"{"topic":"t","id":"k\r","data":"x"}"#.to_vec(),
            400,
            "invalid id",
        ),
        (
            "reserved type",
            json,
            br#"{"topic":"t","event":"herald.reset","data":"x"}"#.to_vec(),
            400,
            "reserved",
        ),
        (
            "invalid UTF-8 JSON",
            json,
            b"{\"topic\":\"t\",\"data\":\"\xff\xfe\"}".to_vec(),
            400,
            "not valid UTF-8",
        ),
        (
            "invalid UTF-8 form",
            form,
            b"topic=t&data=%FF%FE".to_vec(),
            400,
            "not valid UTF-8",
        ),
        (
            "bad escape form",
            form,
            b"topic=t&data=%G1".to_vec(),
            400,
            "percent-escape",
        ),
        (
            "CR/LF in form event",
            form,
            b"topic=t&event=a%0D%0Ab&data=x".to_vec(),
            400,
            "invalid event type",
        ),
        (
            "missing topic form",
            form,
            b"data=x".to_vec(),
            400,
            "missing \"topic\"",
        ),
        (
            "bad retry form",
            form,
            b"topic=t&retry=soon".to_vec(),
            400,
            "retry",
        ),
        (
            "oversized body",
            json,
            format!(r#"{{"topic":"t","data":"{}"}}"#, "x".repeat(2000)).into_bytes(),
            413,
            "larger than 1000 bytes",
        ),
        (
            "no content type",
            ("X-Nothing", "1"),
            br#"{"topic":"t"}"#.to_vec(),
            415,
            "content type",
        ),
        (
            "text/plain",
            ("Content-Type", "text/plain"),
            b"hello".to_vec(),
            415,
            "content type",
        ),
    ];
    for (what, header, body, status, message) in cases {
        let (got, head, answer) = hub.request_full("POST", "/publish", &[header], &body);
        assert_eq!(got, status, "{what}: {answer}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json"),
            "{what}: {head}"
        );
        let error = error_of(&answer);
        assert!(
            error.contains(message),
            "{what}: {error:?} lacks {message:?}"
        );
    }
    assert_eq!(hub.metric("herald_published_total"), 0);
    let id = hub.publish("t", "valid");
    let ev = sub.next().unwrap();
    assert_eq!(
        (ev.data.as_str(), ev.last_event_id.as_str()),
        ("valid", id.as_str())
    );
}

#[test]
fn bad_subscriptions_are_refused() {
    let hub = Hub::start(&["--store", "memory", "--max-topics", "2"]);
    let cases = [
        ("/events", None, "missing \"topic\""),
        ("/events?topic=", None, "invalid topic pattern"),
        ("/events?topic=a%20b", None, "invalid topic pattern"),
        ("/events?topic=ch*t", None, "invalid topic pattern"),
        ("/events?topic=**/a", None, "invalid topic pattern"),
        ("/events?topic=a&topic=b&topic=c", None, "at most 2 topics"),
        ("/events?topic=%ZZ", None, "percent-escape"),
        (
            "/events?topic=a&lastEventId=banana",
            None,
            "malformed Last-Event-ID",
        ),
        ("/events?topic=a", Some("12"), "malformed Last-Event-ID"),
        ("/events?topic=a", Some("1-2-3"), "malformed Last-Event-ID"),
        (
            "/events?topic=a",
            Some("99999999999999999999999-0"),
            "malformed Last-Event-ID",
        ),
    ];
    for (path, id, message) in cases {
        let headers: Vec<(&str, &str)> = id.map(|id| ("Last-Event-ID", id)).into_iter().collect();
        let (status, head, body) = hub.request_full("GET", path, &headers, b"");
        assert_eq!(status, 400, "{path} {id:?}: {body}");
        assert!(
            head.to_ascii_lowercase()
                .contains("content-type: application/json")
        );
        let error = error_of(&body);
        assert!(
            error.contains(message),
            "{path}: {error:?} lacks {message:?}"
        );
    }
    assert_eq!(hub.metric("herald_subscriptions"), 0);
}

#[test]
fn refuses_non_loopback_without_allow_anonymous() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--store", "memory", "--addr", "0.0.0.0:0"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("--allow-anonymous"), "{stderr}");
    assert!(stderr.contains("--jwt-secret"), "{stderr}");
}

#[test]
fn static_dir_replaces_the_demo_page() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<p>mine</p>").unwrap();
    std::fs::write(dir.path().join("app.js"), "let x = 1;").unwrap();
    let hub = Hub::start(&[
        "--store",
        "memory",
        "--static",
        dir.path().to_str().unwrap(),
    ]);
    assert_eq!(
        hub.request("GET", "/", &[], b""),
        (200, "<p>mine</p>".into())
    );
    assert_eq!(
        hub.request("GET", "/app.js", &[], b""),
        (200, "let x = 1;".into())
    );
    let (status, body) = hub.request("GET", "/missing.js", &[], b"");
    assert_eq!((status, error_of(&body).as_str()), (404, "no such route"));
    let (status, _) = hub.request("GET", "/healthz", &[], b"");
    assert_eq!(status, 200);
}

/// Issue 13: `--static DIR` served files reached through a symlink pointing outside DIR (a link
/// to `/etc` published the file system). Such paths are 404 unless `--static-follow-symlinks`;
/// links that stay inside DIR work.
#[test]
fn static_dir_refuses_symlinks_that_leave_it() {
    let outside = tempfile::tempdir().unwrap();
    std::fs::write(outside.path().join("secret.txt"), "top secret").unwrap();
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("index.html"), "<p>mine</p>").unwrap();
    let link = |target: &std::path::Path, name: &str| {
        std::os::unix::fs::symlink(target, dir.path().join(name)).unwrap();
    };
    link(&outside.path().join("secret.txt"), "leak.txt");
    link(outside.path(), "out");
    link(&dir.path().join("index.html"), "home.html");
    let static_dir = dir.path().to_str().unwrap();
    let hub = Hub::start(&["--store", "memory", "--static", static_dir]);
    for path in ["/leak.txt", "/out/secret.txt", "/out/%73ecret.txt"] {
        let (status, body) = hub.request("GET", path, &[], b"");
        assert_eq!(status, 404, "{path}: {body}");
        assert!(!body.contains("top secret"), "{path}");
    }
    assert_eq!(
        hub.request("GET", "/home.html", &[], b""),
        (200, "<p>mine</p>".into())
    );
    let hub = Hub::start(&[
        "--store",
        "memory",
        "--static",
        static_dir,
        "--static-follow-symlinks",
    ]);
    assert_eq!(
        hub.request("GET", "/out/secret.txt", &[], b""),
        (200, "top secret".into())
    );
}

#[test]
fn oversized_and_hostile_requests() {
    let hub = Hub::start(&["--store", "memory"]);
    // A request head past the connection buffer is refused by the HTTP layer.
    let huge = format!("/events?topic={}", "a".repeat(40 * 1024));
    let (status, _) = hub.request("GET", &huge, &[], b"");
    assert_eq!(status, 431);
    // A topic past the length limit, and control bytes, get a JSON 400.
    let long = format!("/events?topic={}", "a".repeat(256));
    let (status, body) = hub.request("GET", &long, &[], b"");
    assert_eq!(status, 400);
    assert!(error_of(&body).contains("longer than 255"), "{body}");
    let (status, _) = hub.request("GET", "/events?topic=a%0Ab", &[], b"");
    assert_eq!(status, 400);
    // A Last-Event-ID that is not UTF-8.
    let (status, body) = hub.request(
        "GET",
        "/events?topic=a",
        &[("Last-Event-ID", "1-\u{e9}")],
        b"",
    );
    assert_eq!(
        (status, error_of(&body).contains("Last-Event-ID")),
        (400, true)
    );
    // A body that lies about its length (shorter than announced, then the client closes).
    {
        use std::io::Write;
        let mut s = std::net::TcpStream::connect(hub.addr).unwrap();
        s.write_all(b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n{\"topic\":\"t\"").unwrap();
    }
    // A deeply nested JSON data value is refused (herald_hub::MAX_DATA_DEPTH), not a crash, and
    // not passed on to subscribers whose JSON parsers recurse.
    let deep = format!(
        r#"{{"topic":"t","data":{}{}}}"#,
        "[".repeat(100_000),
        "]".repeat(100_000)
    );
    let (status, body) = hub.request(
        "POST",
        "/publish",
        &[("Content-Type", "application/json")],
        deep.as_bytes(),
    );
    assert_eq!(status, 400, "{body}");
    assert_eq!(hub.metric("herald_published_total"), 0);
    assert_eq!(hub.request("GET", "/healthz", &[], b"").0, 200);
}

/// Past --max-connections a new connection is answered 503 with `Retry-After`; once a
/// connection ends, the hub serves again.
#[test]
fn connection_cap_answers_503_with_retry_after() {
    let hub = Hub::start(&["--store", "memory", "--max-connections", "2"]);
    let first = hub.subscribe("topic=a", None);
    let _second = hub.subscribe("topic=a", None);
    let (status, head, body) = hub.request_full("GET", "/healthz", &[], b"");
    assert_eq!(status, 503, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("retry-after: 1"),
        "{head}"
    );
    assert!(
        hub_support::error_of(&body).contains("connection limit"),
        "{body}"
    );
    drop(first);
    let deadline = std::time::Instant::now() + hub_support::TIMEOUT;
    loop {
        let (status, _) = hub.request("GET", "/healthz", &[], b"");
        if status == 200 {
            break;
        }
        assert_eq!(status, 503);
        assert!(std::time::Instant::now() < deadline, "never served again");
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
}

/// `GET /events` as the second request of a keep-alive connection (as a browser that loaded the
/// page first does) streams the same way as on a fresh connection.
#[test]
fn events_on_a_keep_alive_connection() {
    use std::io::Write;
    let hub = Hub::start(&["--store", "memory"]);
    let mut s = std::net::TcpStream::connect(hub.addr).unwrap();
    s.set_read_timeout(Some(hub_support::TIMEOUT)).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    hub_support::read_until(&mut s, &mut got, r#"{"status":"ok"}"#);
    s.write_all(b"GET /events?topic=k HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    got.clear();
    hub_support::read_until(&mut s, &mut got, "retry: 3000\n");
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200 ok\r\n"), "{text}");
    assert!(
        text.contains("content-type: text/event-stream\r\n"),
        "{text}"
    );
    let id = hub.publish("k", "over keep-alive");
    let expected = format!("id: {id}\ndata: over keep-alive\n\n");
    hub_support::read_until(&mut s, &mut got, &expected);
}

/// A subscriber that goes away while its stream is idle is forgotten at once, not at the next
/// write.
#[test]
fn idle_subscriber_that_disconnects_is_forgotten() {
    let hub = Hub::start(&["--store", "memory"]);
    let subs: Vec<_> = (0..10).map(|_| hub.subscribe("topic=a", None)).collect();
    assert_eq!(hub.metric("herald_subscriptions"), 10);
    drop(subs);
    hub.wait_metric("herald_subscriptions", |n| n == 0);
    hub.wait_metric("herald_connections", |n| n <= 1); // the metrics request itself
}

/// An HTTP/1.1 subscriber on a fresh connection (curl, services) gets a close-delimited stream.
#[test]
fn events_over_http_1_1_fresh_connection() {
    use std::io::Write;
    let hub = Hub::start(&["--store", "memory"]);
    let mut s = std::net::TcpStream::connect(hub.addr).unwrap();
    s.set_read_timeout(Some(hub_support::TIMEOUT)).unwrap();
    s.write_all(b"GET /events?topic=f HTTP/1.1\r\nHost: x\r\nAccept: text/event-stream\r\nLast-Event-ID: \r\n\r\n")
        .unwrap();
    let mut got = Vec::new();
    hub_support::read_until(&mut s, &mut got, "retry: 3000\n");
    let text = String::from_utf8_lossy(&got).to_ascii_lowercase();
    assert!(text.starts_with("http/1.1 200 ok\r\n"), "{text}");
    for h in [
        "content-type: text/event-stream\r\n",
        "cache-control: no-cache\r\n",
        "x-accel-buffering: no\r\n",
        "connection: close\r\n",
    ] {
        assert!(text.contains(h), "{h} missing: {text}");
    }
    assert!(!text.contains("content-length"), "{text}");
}

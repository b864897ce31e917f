//! What a publisher sends is what subscribers of the real `herald serve` receive, byte for byte;
//! and a publish the hub cannot deliver faithfully (a `retry` no browser honours, a form field
//! given twice) is refused with a 400 that says why.

mod hub_support;

use hub_support::{Hub, error_of, id_of};

/// Issue 13 item 6: `123456789012345678901234567890` arrived as `1.2345678901234568e+29`,
/// `{"b":1,"a":2}` as `{"a":2,"b":1}`, `-0` as `-0.0`.
#[test]
fn json_data_arrives_byte_for_byte_as_published() {
    let hub = Hub::start(&["--store", "memory"]);
    let mut sub = hub.subscribe("topic=exact", None);
    sub.wait_bytes(b"retry: 3000\n".len());
    // (the `data` value as the publisher wrote it, the `data:` line subscribers must receive)
    let cases = [
        (
            "123456789012345678901234567890",
            "123456789012345678901234567890",
        ),
        (r#"{"b":1,"a":2}"#, r#"{"b":1,"a":2}"#),
        ("-0", "-0"),
        ("1.0", "1.0"),
        ("1e5", "1e5"),
        (r#"{"a":1,"a":2}"#, r#"{"a":1,"a":2}"#),
        (
            r#"["\u00e9","\ud83d\ude00"]"#,
            r#"["\u00e9","\ud83d\ude00"]"#,
        ),
        (
            "{ \"say\" : \"a \\\"b\\\"  c\\\\\" ,\n  \"n\" : [ 1 , 2 ] }",
            r#"{"say":"a \"b\"  c\\","n":[1,2]}"#,
        ),
        (r#""a string \u0041""#, "a string A"),
    ];
    let mut expected = b"retry: 3000\n".to_vec();
    for (data, line) in cases {
        let (status, answer) = hub.publish_json(&format!(r#"{{"topic":"exact","data":{data}}}"#));
        assert_eq!(status, 200, "{data}: {answer}");
        let id = id_of(&answer);
        expected.extend_from_slice(format!("id: {id}\ndata: {line}\n\n").as_bytes());
    }
    sub.wait_bytes(expected.len());
    assert_eq!(
        String::from_utf8_lossy(&sub.raw),
        String::from_utf8_lossy(&expected)
    );
}

/// Issue 13 item 8: `retry: 18446744073709551615` was accepted and forwarded to every subscriber
/// (browsers treat a delay above 2^31-1 ms as 0: all of them would reconnect at once).
#[test]
fn huge_retry_is_refused_and_not_forwarded() {
    let hub = Hub::start(&["--store", "memory"]);
    let mut sub = hub.subscribe("topic=r", None);
    let limit = "retry must be at most 86400000 milliseconds (24 hours)";
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    for retry in ["18446744073709551615", "86400001"] {
        let (status, body) = hub.publish_json(&format!(r#"{{"topic":"r","retry":{retry}}}"#));
        assert_eq!((status, error_of(&body).as_str()), (400, limit));
        let form_body = format!("topic=r&retry={retry}");
        let (status, body) = hub.request("POST", "/publish", &[form], form_body.as_bytes());
        assert_eq!((status, error_of(&body).as_str()), (400, limit));
    }
    let (status, body) = hub.publish_json(r#"{"topic":"r","data":"ok","retry":86400000}"#);
    assert_eq!(status, 200, "{body}");
    let ev = sub.next().unwrap();
    assert_eq!((ev.data.as_str(), ev.last_event_id), ("ok", id_of(&body)));
    assert_eq!(sub.parser.reconnection_time(), Some(86_400_000));
}

/// Issue 13 item 8: a form body with `topic` twice published to the last topic, while JSON
/// refused the same duplicate.
#[test]
fn form_with_topic_twice_is_refused_like_json() {
    let hub = Hub::start(&["--store", "memory"]);
    let mut sub = hub.subscribe("topic=a&topic=b", None);
    let form = ("Content-Type", "application/x-www-form-urlencoded");
    let (status, body) = hub.request("POST", "/publish", &[form], b"topic=a&data=x&topic=b");
    assert_eq!(status, 400, "{body}");
    assert_eq!(error_of(&body), "invalid form: duplicate field `topic`");
    let (status, body) = hub.publish_json(r#"{"topic":"a","data":"x","topic":"b"}"#);
    assert_eq!(status, 400, "{body}");
    assert!(
        error_of(&body).starts_with("invalid JSON: duplicate field `topic`"),
        "{body}"
    );
    // Nothing was published: the next event the subscriber sees is this one.
    let id = hub.publish("b", "after");
    let ev = sub.next().unwrap();
    assert_eq!((ev.data.as_str(), ev.last_event_id), ("after", id));
}

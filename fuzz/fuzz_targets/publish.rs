//! Property fuzzing of the `POST /publish` body parser: the same bytes are sent as a JSON body and
//! as a form body, and beyond "no panic" the outcomes must keep the hub's promises:
//!
//! - an accepted event's topic and idempotency key hold no CR, LF or NUL, its type no CR or LF
//!   (they would inject SSE fields or break resume), its type is not the hub's own (`herald.`), its `retry` is within `MAX_RETRY_MS`;
//! - a JSON `data` that is a string arrives decoded; any other JSON `data` arrives as valid JSON on
//!   one line, the same JSON value as the publisher's (nothing re-serialised, nothing lost);
//! - an accepted event, form-encoded again, is accepted as the same event (JSON and form agree);
//! - a form body that decodes is refused or accepted identically once its pairs are re-encoded
//!   (percent-escapes and `+` change nothing; a repeated field is refused either way).
#![no_main]

use herald_hub::fuzzing::{form_pairs, parse_body};
use herald_hub::log::NewEvent;
use herald_hub::{ApiError, MAX_RETRY_MS, RESERVED_TYPE_PREFIX};
use libfuzzer_sys::fuzz_target;
use serde_json::Value;

const JSON: &str = "application/json";
const FORM: &str = "application/x-www-form-urlencoded";

fn outcome(r: Result<NewEvent, ApiError>) -> Result<NewEvent, (u16, String)> {
    r.map_err(|e| (e.status().as_u16(), e.message().to_owned()))
}

fn no_breaks(what: &str, s: &str) {
    assert!(!s.contains(['\r', '\n']), "{what} {s:?} holds CR or LF");
}

fn no_breaks_or_nul(what: &str, s: &str) {
    assert!(
        !s.contains(['\r', '\n', '\0']),
        "{what} {s:?} holds CR, LF or NUL"
    );
}

fn check_accepted(e: &NewEvent) {
    no_breaks_or_nul("topic", &e.topic);
    if let Some(t) = &e.event_type {
        // A NUL in a type is allowed by the contract (docs/http-api.md: "No CR or LF"); the spec
        // ignores only an `id` with NUL, since `Last-Event-ID` cannot carry it.
        no_breaks("event type", t);
        assert!(
            !t.is_empty() && !t.starts_with(RESERVED_TYPE_PREFIX),
            "type {t:?}"
        );
    }
    if let Some(k) = &e.idempotency_key {
        no_breaks_or_nul("id", k);
        assert!(!k.is_empty(), "empty id kept");
    }
    assert!(
        e.retry.is_none_or(|ms| ms <= MAX_RETRY_MS),
        "retry {:?}",
        e.retry
    );
}

/// Percent-encodes everything but unreserved bytes; `plus` picks `+` or `%20` for a space.
fn encode(s: &str, plus: bool, out: &mut String) {
    for &b in s.as_bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                out.push(char::from(b))
            }
            b' ' if plus => out.push('+'),
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
}

fn form_body(pairs: &[(&str, &str)], plus: bool) -> Vec<u8> {
    let mut out = String::new();
    for (i, (name, value)) in pairs.iter().enumerate() {
        if i > 0 {
            out.push('&');
        }
        encode(name, plus, &mut out);
        out.push('=');
        encode(value, plus, &mut out);
    }
    out.into_bytes()
}

/// An accepted event, sent again as a form, is the same event.
fn check_form_round_trip(e: &NewEvent, plus: bool) {
    let retry = e.retry.map(|ms| ms.to_string());
    let mut pairs = vec![("topic", e.topic.as_str()), ("data", e.data.as_str())];
    if let Some(t) = &e.event_type {
        pairs.push(("event", t));
    }
    if let Some(k) = &e.idempotency_key {
        pairs.push(("id", k));
    }
    if let Some(ms) = &retry {
        pairs.push(("retry", ms));
    }
    pairs.push(("private", if e.private { "true" } else { "false" }));
    let again = outcome(parse_body(FORM, &form_body(&pairs, plus)));
    assert_eq!(again.as_ref(), Ok(e), "form-encoded again: {pairs:?}");
}

fn check_json(body: &[u8], plus: bool) {
    let e = match parse_body(JSON, body) {
        Ok(e) => e,
        Err(err) => {
            assert_eq!(err.status(), 400, "{err}");
            return;
        }
    };
    check_accepted(&e);
    check_form_round_trip(&e, plus);
    // serde_json's `Value` refuses numbers out of f64's range (`1e400`) that are valid JSON text:
    // such a body is passed through and not compared.
    let sent: Option<Value> = serde_json::from_slice::<Value>(body).ok();
    match sent.as_ref().and_then(|v| v.get("data")) {
        Some(Value::String(s)) => assert_eq!(&e.data, s),
        Some(Value::Null) => assert_eq!(e.data, ""),
        Some(value) => {
            no_breaks("JSON data", &e.data);
            let got: Value = serde_json::from_str(&e.data).expect("delivered data is JSON");
            assert_eq!(&got, value, "data changed: {:?}", e.data);
        }
        None if sent.is_some() => assert_eq!(e.data, ""),
        None => {} // not comparable: a decoded string and a JSON value's text look alike
    }
}

fn check_form(body: &[u8], plus: bool) {
    let first = outcome(parse_body(FORM, body));
    if let Ok(e) = &first {
        check_accepted(e);
        check_form_round_trip(e, plus);
    }
    match form_pairs(body) {
        Some(pairs) => {
            let pairs: Vec<(&str, &str)> = pairs
                .iter()
                .map(|(n, v)| (n.as_str(), v.as_str()))
                .collect();
            let again = outcome(parse_body(FORM, &form_body(&pairs, plus)));
            assert_eq!(again, first, "re-encoded pairs: {pairs:?}");
        }
        None => assert_eq!(first.map_err(|(status, _)| status), Err(400)),
    }
}

fuzz_target!(|input: &[u8]| {
    // The first byte picks how spaces are re-encoded; the rest is the body.
    let Some((&knob, body)) = input.split_first() else {
        return;
    };
    let plus = knob & 1 == 1;
    check_json(body, plus);
    check_form(body, plus);
});

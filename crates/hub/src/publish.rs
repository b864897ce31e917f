//! `POST /publish`: JSON or form fields, validated into a [`NewEvent`].
//!
//! A JSON `data` that is not a string is delivered as the publisher wrote it: the exact text of
//! the value (serde_json's `RawValue`), with only the whitespace outside strings removed by
//! [`compact_json`] so that the event stays one `data:` line. Big integers, key order, duplicate
//! keys, `-0`, `1.0`, `1e5` and `\u` escapes reach subscribers unchanged. A string `data` is
//! delivered as its decoded value.
//!
//! A field given twice is refused, in JSON (serde's "duplicate field") and in a form alike.

use axum::http::HeaderMap;
use axum::http::header::CONTENT_TYPE;
use bytes::Bytes;
use serde::Deserialize;

use crate::error::ApiError;
use crate::log::NewEvent;
use crate::topic::check_topic;

/// Longest event type, in bytes.
pub const MAX_EVENT_TYPE_LEN: usize = 128;
/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_LEN: usize = 256;
/// Largest `retry` a publisher may send, in milliseconds (24 hours). Browsers' `setTimeout` treats
/// a delay above 2^31-1 ms as 0, so a huge `retry` would make every subscriber reconnect at once;
/// no client needs to wait longer than a day.
pub const MAX_RETRY_MS: u64 = 86_400_000;
/// Deepest nesting of arrays and objects in a JSON `data` value: serde_json's own recursion
/// limit, so what the hub parsed before it passed `data` through as written is still accepted,
/// and subscribers whose JSON parsers recurse are not handed a value that overflows their stack.
pub const MAX_DATA_DEPTH: usize = 128;
/// Event types starting with this are the hub's own (e.g. `herald.reset`) and cannot be published.
pub const RESERVED_TYPE_PREFIX: &str = "herald.";

/// The fields of a publish, before validation.
#[derive(Debug, Default, Deserialize)]
struct Fields {
    topic: Option<String>,
    /// The value's exact text (a string is decoded later), so that nothing is re-serialised.
    #[serde(default)]
    data: Option<Box<serde_json::value::RawValue>>,
    event: Option<String>,
    id: Option<String>,
    retry: Option<u64>,
    private: Option<bool>,
}

/// Checks the fields of an event to publish; the same rules for HTTP and for [`crate::Hub::publish`].
pub(crate) fn validate(event: &mut NewEvent) -> Result<(), ApiError> {
    check_topic(&event.topic).map_err(|e| ApiError::bad_request(format!("invalid topic: {e}")))?;
    if crate::system::is_reserved_topic(&event.topic) {
        return Err(ApiError::bad_request(format!(
            "topics under {:?} are reserved for the hub's own events",
            crate::system::RESERVED_TOPIC_PREFIX
        )));
    }
    if event.event_type.as_deref() == Some("") {
        event.event_type = None;
    }
    if let Some(t) = &event.event_type {
        herald_wire::check_type(t)
            .map_err(|e| ApiError::bad_request(format!("invalid event type: {e}")))?;
        if t.len() > MAX_EVENT_TYPE_LEN {
            return Err(ApiError::bad_request(format!(
                "event type is longer than {MAX_EVENT_TYPE_LEN} bytes"
            )));
        }
        if t.starts_with(RESERVED_TYPE_PREFIX) {
            return Err(ApiError::bad_request(format!(
                "event types starting with {RESERVED_TYPE_PREFIX:?} are reserved for the hub"
            )));
        }
    }
    if let Some(ms) = event.retry
        && ms > MAX_RETRY_MS
    {
        return Err(ApiError::bad_request(format!(
            "retry must be at most {MAX_RETRY_MS} milliseconds (24 hours)"
        )));
    }
    if event.idempotency_key.as_deref() == Some("") {
        event.idempotency_key = None;
    }
    if let Some(key) = &event.idempotency_key {
        herald_wire::check_id(key)
            .map_err(|e| ApiError::bad_request(format!("invalid id: {e}")))?;
        if key.len() > MAX_IDEMPOTENCY_KEY_LEN {
            return Err(ApiError::bad_request(format!(
                "id is longer than {MAX_IDEMPOTENCY_KEY_LEN} bytes"
            )));
        }
    }
    Ok(())
}

fn media_type(headers: &HeaderMap) -> Option<String> {
    let value = headers.get(CONTENT_TYPE)?.to_str().ok()?;
    Some(
        value
            .split(';')
            .next()
            .unwrap_or_default()
            .trim()
            .to_ascii_lowercase(),
    )
}

/// The whitespace-free form of already-validated JSON text: spaces, tabs, CRs and LFs outside
/// strings are removed, everything else (including every byte inside a string) is kept.
///
/// JSON strings cannot hold a raw CR or LF (they must be escaped), so the result is one line.
/// Nesting deeper than [`MAX_DATA_DEPTH`] is refused (400).
fn compact_json(json: &str) -> Result<String, ApiError> {
    let mut out = String::with_capacity(json.len());
    let mut in_string = false;
    let mut escaped = false;
    let mut depth = 0usize;
    for c in json.chars() {
        if in_string {
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
        } else {
            match c {
                ' ' | '\t' | '\n' | '\r' => continue,
                '"' => in_string = true,
                '[' | '{' => {
                    depth += 1;
                    if depth > MAX_DATA_DEPTH {
                        return Err(ApiError::bad_request(format!(
                            "data is nested deeper than {MAX_DATA_DEPTH} arrays or objects"
                        )));
                    }
                }
                ']' | '}' => depth = depth.saturating_sub(1),
                _ => {}
            }
        }
        out.push(c);
    }
    Ok(out)
}

/// The refusal of a field given twice, in the words serde uses for JSON, so both say the same.
fn duplicate(name: &str) -> ApiError {
    ApiError::bad_request(format!("invalid form: duplicate field `{name}`"))
}

/// The text delivered for a JSON `data` value: a string's decoded value, any other value's own
/// text without whitespace outside strings.
fn json_data(raw: &serde_json::value::RawValue) -> Result<String, ApiError> {
    let text = raw.get();
    if text.starts_with('"') {
        serde_json::from_str(text).map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))
    } else {
        compact_json(text)
    }
}

/// The fields of a form body, and its `data` (always text in a form).
fn from_form(body: &[u8]) -> Result<(Fields, Option<String>), ApiError> {
    let pairs = crate::form::parse(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut fields = Fields::default();
    let mut data = None;
    for (name, value) in pairs {
        // As in JSON, a known field given twice is refused (taking either value would be a guess);
        // unknown fields are ignored, repeated or not.
        let seen = match name.as_str() {
            "topic" => fields.topic.is_some(),
            "data" => data.is_some(),
            "event" => fields.event.is_some(),
            "id" => fields.id.is_some(),
            "retry" => fields.retry.is_some(),
            "private" => fields.private.is_some(),
            _ => false,
        };
        if seen {
            return Err(duplicate(&name));
        }
        match name.as_str() {
            "topic" => fields.topic = Some(value),
            "data" => data = Some(value),
            "event" => fields.event = Some(value),
            "id" => fields.id = Some(value),
            "retry" => {
                let ms = value.parse().map_err(|_| {
                    ApiError::bad_request("retry must be a whole number of milliseconds")
                })?;
                fields.retry = Some(ms);
            }
            "private" => {
                let flag = match value.as_str() {
                    "true" | "1" | "on" => true,
                    "false" | "0" | "off" | "" => false,
                    _ => return Err(ApiError::bad_request("private must be true or false")),
                };
                fields.private = Some(flag);
            }
            _ => {} // unknown fields are ignored, as in JSON
        }
    }
    Ok((fields, data))
}

/// Parses and validates a publish body.
pub(crate) fn parse(headers: &HeaderMap, body: &Bytes) -> Result<NewEvent, ApiError> {
    let (fields, data) = match media_type(headers).as_deref() {
        Some("application/json") => {
            if std::str::from_utf8(body).is_err() {
                return Err(ApiError::bad_request("request body is not valid UTF-8"));
            }
            let fields = serde_json::from_slice::<Fields>(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?;
            let data = fields.data.as_deref().map(json_data).transpose()?;
            (fields, data)
        }
        Some("application/x-www-form-urlencoded") => from_form(body)?,
        _ => return Err(ApiError::unsupported_media_type()),
    };
    let topic = fields
        .topic
        .ok_or_else(|| ApiError::bad_request("missing \"topic\""))?;
    let mut event = NewEvent {
        topic,
        event_type: fields.event,
        data: data.unwrap_or_default(),
        retry: fields.retry,
        private: fields.private.unwrap_or(false),
        idempotency_key: fields.id,
    };
    validate(&mut event)?;
    Ok(event)
}

/// What fuzz/fuzz_targets/publish.rs needs, behind the `fuzzing` feature so that it is never
/// part of the hub's API: the parser is reached with a content type and a body, as over HTTP.
#[cfg(feature = "fuzzing")]
pub mod fuzzing {
    use super::*;

    /// [`parse`] for a body sent with this `Content-Type`.
    pub fn parse_body(content_type: &str, body: &[u8]) -> Result<NewEvent, ApiError> {
        let mut headers = HeaderMap::new();
        if let Ok(value) = axum::http::HeaderValue::from_str(content_type) {
            headers.insert(CONTENT_TYPE, value);
        }
        parse(&headers, &Bytes::copy_from_slice(body))
    }

    /// The decoded name/value pairs of a form body, `None` when it does not decode.
    pub fn form_pairs(body: &[u8]) -> Option<Vec<(String, String)>> {
        crate::form::parse(body).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::HeaderValue;

    fn headers(ct: &str) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert(CONTENT_TYPE, HeaderValue::from_str(ct).unwrap());
        h
    }

    fn json(body: &str) -> Result<NewEvent, ApiError> {
        parse(
            &headers("application/json; charset=utf-8"),
            &Bytes::copy_from_slice(body.as_bytes()),
        )
    }

    #[test]
    fn json_fields() {
        let e = json(r#"{"topic":"chat","data":"hi","event":"msg","id":"k1","retry":5,"private":true,"x":1}"#)
            .unwrap();
        assert_eq!(
            e,
            NewEvent {
                topic: "chat".into(),
                event_type: Some("msg".into()),
                data: "hi".into(),
                retry: Some(5),
                private: true,
                idempotency_key: Some("k1".into()),
            }
        );
        assert_eq!(
            json(r#"{"topic":"t","data":{"a":[1,2]}}"#).unwrap().data,
            r#"{"a":[1,2]}"#
        );
        assert_eq!(json(r#"{"topic":"t","data":42}"#).unwrap().data, "42");
        assert_eq!(json(r#"{"topic":"t","data":null}"#).unwrap().data, "");
        assert_eq!(
            json(r#"{"topic":"t","data":"a \"q\" \u00e9\n"}"#)
                .unwrap()
                .data,
            "a \"q\" é\n"
        );
        assert_eq!(json(r#"{"topic":"t"}"#).unwrap().data, "");
        assert_eq!(
            json(r#"{"topic":"t","event":""}"#).unwrap().event_type,
            None
        );
    }

    #[test]
    fn form_fields() {
        let e = parse(
            &headers("application/x-www-form-urlencoded"),
            &Bytes::from_static(b"topic=chat%2Fa&data=a+b&event=m&retry=7&private=1"),
        )
        .unwrap();
        assert_eq!(e.topic, "chat/a");
        assert_eq!(e.data, "a b");
        assert_eq!(e.event_type.as_deref(), Some("m"));
        assert_eq!(e.retry, Some(7));
        assert!(e.private);
    }

    #[test]
    fn bad_input_is_refused() {
        let cases = [
            "{",
            "[]",
            r#"{"data":"x"}"#,
            r#"{"topic":""}"#,
            r#"{"topic":"a/*"}"#,
            r#"{"topic":5}"#,
            r#"{"topic":"t","event":"a\nb"}"#,
            r#"{"topic":"t","event":"a\rb"}"#,
            r#"{"topic":"t","id":"a\nb"}"#,
            r#"{"topic":"t","id":"a\u0000b"}"#,
            r#"{"topic":"t","event":"herald.reset"}"#,
            r#"{"topic":"herald/metrics","event":"metrics","data":"{}"}"#,
            r#"{"topic":"herald"}"#,
            r#"{"topic":"t","retry":-1}"#,
        ];
        for body in cases {
            let err = json(body).unwrap_err();
            assert_eq!(err.status(), 400, "{body}: {err}");
        }
        let err = parse(
            &headers("application/json"),
            &Bytes::from_static(b"{\"topic\":\"\xff\"}"),
        )
        .unwrap_err();
        assert_eq!(err.message(), "request body is not valid UTF-8");
        let err = parse(&headers("text/plain"), &Bytes::from_static(b"x")).unwrap_err();
        assert_eq!(err.status(), 415);
        let err = parse(&HeaderMap::new(), &Bytes::from_static(b"x")).unwrap_err();
        assert_eq!(err.status(), 415);
        let form = headers("application/x-www-form-urlencoded");
        for body in [
            &b"topic=t&retry=x"[..],
            b"topic=t&private=maybe",
            b"topic=%FF",
            b"topic=t&event=a%0Ab",
            b"data=x",
        ] {
            assert_eq!(
                parse(&form, &Bytes::copy_from_slice(body))
                    .unwrap_err()
                    .status(),
                400,
                "{body:?}"
            );
        }
    }

    /// Issue 13 item 6: `123456789012345678901234567890` arrived as `1.2345678901234568e+29`,
    /// `{"b":1,"a":2}` as `{"a":2,"b":1}`, `-0` as `-0.0`.
    #[test]
    fn json_data_arrives_as_the_publisher_wrote_it() {
        let exact = [
            "123456789012345678901234567890",
            "-0",
            "1.0",
            "1e5",
            "-1.5E-7",
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2}"#,
            r#"["\u00e9","\ud83d\ude00","\/"]"#,
            r#"{"k":[true,false,null,{}]}"#,
            "[]",
            "true",
        ];
        for data in exact {
            let body = format!(r#"{{"topic":"t","data":{data}}}"#);
            assert_eq!(json(&body).unwrap().data, data, "{body}");
        }
        let spaced = "{ \"b\" :\t1 ,\r\n \"a\" : [ 1 , 2 ] }";
        let body = format!("{{\"topic\":\"t\",\"data\": {spaced} }}");
        assert_eq!(json(&body).unwrap().data, r#"{"b":1,"a":[1,2]}"#);
    }

    #[test]
    fn data_nested_past_the_limit_is_refused_not_passed_on() {
        let nested = |n: usize| {
            format!(
                r#"{{"topic":"t","data":{}{}}}"#,
                "[".repeat(n),
                "]".repeat(n)
            )
        };
        assert_eq!(
            json(&nested(MAX_DATA_DEPTH)).unwrap().data.len(),
            2 * MAX_DATA_DEPTH
        );
        let err = json(&nested(MAX_DATA_DEPTH + 1)).unwrap_err();
        assert_eq!(err.status(), 400);
        assert!(err.message().contains("nested deeper than 128"), "{err}");
        // Brackets inside strings are text, not nesting.
        let text = format!(r#"{{"topic":"t","data":["{}"]}}"#, "[".repeat(1000));
        assert!(json(&text).is_ok());
    }

    #[test]
    fn compact_json_keeps_strings_whole() {
        let cases = [
            ("[ 1 , 2 ]", "[1,2]"),
            (r#"{ "a b" : " c  d " }"#, r#"{"a b":" c  d "}"#),
            (
                r#"[ "say \"hi there\" " , 1 ]"#,
                r#"["say \"hi there\" ",1]"#,
            ),
            (r#"[ "back\\" , " x " ]"#, r#"["back\\"," x "]"#),
            (r#"[ "\\\"" , " y " ]"#, r#"["\\\""," y "]"#),
            (r#"[ "\\\\" ,	"\t " ]"#, r#"["\\\\","\t "]"#),
            ("\n\t 7 \r\n", "7"),
            (r#"" keep ""#, r#"" keep ""#),
            ("[\"é ü\" , \"😀 \"]", "[\"é ü\",\"😀 \"]"),
        ];
        for (input, want) in cases {
            assert_eq!(compact_json(input).unwrap(), want, "{input}");
            // The result is the same JSON value, on one line.
            let a: serde_json::Value = serde_json::from_str(input).unwrap();
            let b: serde_json::Value = serde_json::from_str(want).unwrap();
            assert_eq!(a, b, "{input}");
        }
    }

    /// Issue 13 item 8: `retry: 18446744073709551615` was accepted and forwarded to subscribers.
    #[test]
    fn huge_retry_is_refused_naming_the_limit() {
        let limit = format!("retry must be at most {MAX_RETRY_MS} milliseconds (24 hours)");
        let form = headers("application/x-www-form-urlencoded");
        for big in [MAX_RETRY_MS + 1, u64::MAX] {
            let err = json(&format!(r#"{{"topic":"t","retry":{big}}}"#)).unwrap_err();
            assert_eq!(
                (err.status().as_u16(), err.message()),
                (400, limit.as_str())
            );
            let body = format!("topic=t&retry={big}");
            let err = parse(&form, &Bytes::from(body)).unwrap_err();
            assert_eq!(
                (err.status().as_u16(), err.message()),
                (400, limit.as_str())
            );
        }
        let at_limit = format!(r#"{{"topic":"t","retry":{MAX_RETRY_MS}}}"#);
        assert_eq!(json(&at_limit).unwrap().retry, Some(MAX_RETRY_MS));
        let body = format!("topic=t&retry={MAX_RETRY_MS}");
        assert_eq!(
            parse(&form, &Bytes::from(body)).unwrap().retry,
            Some(MAX_RETRY_MS)
        );
    }

    /// Issue 13 item 8: a form body with `topic` twice took the last value, while JSON refused it.
    #[test]
    fn repeated_form_field_is_refused_like_json() {
        let form = headers("application/x-www-form-urlencoded");
        // (field, form body, JSON body)
        let cases = [
            ("topic", "topic=a&topic=b", r#"{"topic":"a","topic":"b"}"#),
            (
                "data",
                "topic=t&data=1&data=2",
                r#"{"topic":"t","data":1,"data":2}"#,
            ),
            (
                "event",
                "topic=t&event=a&event=a",
                r#"{"topic":"t","event":"a","event":"a"}"#,
            ),
            (
                "id",
                "topic=t&id=k&id=k",
                r#"{"topic":"t","id":"k","id":"k"}"#,
            ),
            (
                "retry",
                "topic=t&retry=1&retry=2",
                r#"{"topic":"t","retry":1,"retry":2}"#,
            ),
            (
                "private",
                "private=1&topic=t&private=0",
                r#"{"private":true,"topic":"t","private":false}"#,
            ),
        ];
        for (name, form_body, json_body) in cases {
            let err = parse(&form, &Bytes::from(form_body)).unwrap_err();
            assert_eq!(err.status(), 400, "{form_body}");
            assert_eq!(
                err.message(),
                format!("invalid form: duplicate field `{name}`"),
                "{form_body}"
            );
            // JSON refuses the same fields, in serde's words (with a position after them).
            let err = json(json_body).unwrap_err();
            assert_eq!(err.status(), 400, "{json_body}");
            assert!(
                err.message()
                    .starts_with(&format!("invalid JSON: duplicate field `{name}` at line 1")),
                "{json_body}: {}",
                err.message()
            );
        }
        // Unknown fields are ignored, repeated or not, in both.
        let e = parse(&form, &Bytes::from_static(b"topic=t&x=1&x=2")).unwrap();
        assert_eq!(e.topic, "t");
        assert_eq!(json(r#"{"topic":"t","x":1,"x":2}"#).unwrap().topic, "t");
    }
}

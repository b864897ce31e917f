//! `POST /publish`: JSON or form fields, validated into a [`NewEvent`].

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
/// Event types starting with this are the hub's own (e.g. `herald.reset`) and cannot be published.
pub const RESERVED_TYPE_PREFIX: &str = "herald.";

/// The fields of a publish, before validation.
#[derive(Debug, Default, Deserialize)]
struct Fields {
    topic: Option<String>,
    #[serde(default)]
    data: Option<serde_json::Value>,
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

fn from_form(body: &[u8]) -> Result<Fields, ApiError> {
    let pairs = crate::form::parse(body).map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut fields = Fields::default();
    for (name, value) in pairs {
        match name.as_str() {
            "topic" => fields.topic = Some(value),
            "data" => fields.data = Some(serde_json::Value::String(value)),
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
    Ok(fields)
}

/// Parses and validates a publish body.
pub(crate) fn parse(headers: &HeaderMap, body: &Bytes) -> Result<NewEvent, ApiError> {
    let fields = match media_type(headers).as_deref() {
        Some("application/json") => {
            if std::str::from_utf8(body).is_err() {
                return Err(ApiError::bad_request("request body is not valid UTF-8"));
            }
            serde_json::from_slice::<Fields>(body)
                .map_err(|e| ApiError::bad_request(format!("invalid JSON: {e}")))?
        }
        Some("application/x-www-form-urlencoded") => from_form(body)?,
        _ => return Err(ApiError::unsupported_media_type()),
    };
    let topic = fields
        .topic
        .ok_or_else(|| ApiError::bad_request("missing \"topic\""))?;
    let data = match fields.data {
        None => String::new(),
        Some(serde_json::Value::String(s)) => s,
        Some(other) => other.to_string(),
    };
    let mut event = NewEvent {
        topic,
        event_type: fields.event,
        data,
        retry: fields.retry,
        private: fields.private.unwrap_or(false),
        idempotency_key: fields.id,
    };
    validate(&mut event)?;
    Ok(event)
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
}

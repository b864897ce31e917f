//! The one rejection type of the HTTP API: every refusal knows its status and message and becomes
//! a `{"error": "..."}` JSON response here, in one place.

use axum::http::StatusCode;
use axum::http::header::{CONTENT_TYPE, HeaderValue, RETRY_AFTER, WWW_AUTHENTICATE};
use axum::response::{IntoResponse, Response};

/// The `Retry-After` of a 503 for a store that cannot be reached or cannot write now: the
/// embedded store tries to recover every second, and a Redis reconnection takes about as long.
pub const STORE_RETRY_AFTER_SECS: u64 = 1;

/// A refused request: an HTTP status and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{status}: {message}")]
pub struct ApiError {
    status: StatusCode,
    message: String,
    /// Seconds for a `Retry-After` header (429, 503).
    retry_after: Option<u64>,
    /// The `WWW-Authenticate` challenge of a 401.
    challenge: Option<&'static str>,
}

impl ApiError {
    /// A refusal with this status and message.
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
            retry_after: None,
            challenge: None,
        }
    }

    /// 401: no valid token. `with_token` tells a refused token (RFC 6750 `invalid_token`) from
    /// a missing one.
    pub fn unauthorized(message: impl Into<String>, with_token: bool) -> Self {
        let mut err = Self::new(StatusCode::UNAUTHORIZED, message);
        err.challenge = Some(if with_token {
            r#"Bearer realm="herald", error="invalid_token""#
        } else {
            r#"Bearer realm="herald""#
        });
        err
    }

    /// 403: the token does not allow this.
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }

    /// 429: over a limit; try again after `retry_after_secs`.
    pub fn too_many_requests(message: impl Into<String>, retry_after_secs: u64) -> Self {
        Self::new(StatusCode::TOO_MANY_REQUESTS, message).with_retry_after(retry_after_secs)
    }

    /// Adds a `Retry-After` of this many seconds.
    pub fn with_retry_after(mut self, secs: u64) -> Self {
        self.retry_after = Some(secs);
        self
    }

    /// 400: the request is malformed.
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }

    /// 404: no such route.
    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "no such route")
    }

    /// 405: the route exists with other methods.
    pub fn method_not_allowed() -> Self {
        Self::new(StatusCode::METHOD_NOT_ALLOWED, "method not allowed")
    }

    /// 413: the body is over the limit.
    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            format!("request body is larger than {limit} bytes"),
        )
    }

    /// 408: the request body did not arrive within `timeout` of its headers.
    pub fn request_timeout(timeout: std::time::Duration) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            format!(
                "the request body did not arrive within {} ms of its headers",
                timeout.as_millis()
            ),
        )
    }

    /// 415: neither JSON nor a form.
    pub fn unsupported_media_type() -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "content type must be application/json or application/x-www-form-urlencoded",
        )
    }

    /// 503: the hub is shutting down or its store is unavailable.
    pub fn unavailable(message: impl Into<String>) -> Self {
        Self::new(StatusCode::SERVICE_UNAVAILABLE, message)
    }

    /// 500: the store failed.
    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, message)
    }

    /// The HTTP status of this refusal.
    pub fn status(&self) -> StatusCode {
        self.status
    }

    /// The message sent to the caller.
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl From<crate::log::LogError> for ApiError {
    fn from(err: crate::log::LogError) -> Self {
        match err {
            // The store says it may work again (a full disk freed, Redis back): say when to retry.
            crate::log::LogError::Unavailable(_) => {
                Self::unavailable(err.to_string()).with_retry_after(STORE_RETRY_AFTER_SECS)
            }
            // Not a 503: a 503 says nothing was stored, and here that is not known.
            crate::log::LogError::Unknown(_) => {
                Self::new(StatusCode::GATEWAY_TIMEOUT, err.to_string())
            }
            _ => Self::internal(err.to_string()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = serde_json::json!({ "error": self.message }).to_string();
        let mut response = (self.status, body).into_response();
        let headers = response.headers_mut();
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        if let Some(secs) = self.retry_after {
            headers.insert(RETRY_AFTER, HeaderValue::from(secs));
        }
        if let Some(challenge) = self.challenge {
            headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static(challenge));
        }
        response
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn renders_json_with_status() {
        let response = ApiError::bad_request("missing \"topic\"").into_response();
        assert_eq!(response.status(), StatusCode::BAD_REQUEST);
        assert_eq!(response.headers()[CONTENT_TYPE], "application/json");
        let body = axum::body::to_bytes(response.into_body(), 1024)
            .await
            .unwrap();
        assert_eq!(&body[..], br#"{"error":"missing \"topic\""}"#);
    }

    #[test]
    fn an_unavailable_store_is_503_with_retry_after() {
        let err = ApiError::from(crate::log::LogError::Unavailable("the disk is full".into()));
        assert_eq!(err.status(), StatusCode::SERVICE_UNAVAILABLE);
        assert!(err.message().contains("the disk is full"), "{err}");
        let response = err.into_response();
        assert_eq!(response.headers()[RETRY_AFTER], "1");
    }
}

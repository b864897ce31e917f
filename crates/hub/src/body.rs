//! Reading a request body (`POST /publish`) with two bounds, before the handler sees it:
//!
//! - a `Content-Length` over [`crate::HubConfig::max_body_bytes`] is refused with 413 before
//!   the body is touched. hyper answers `Expect: 100-continue` with `100 Continue` when a body is
//!   first read, so checking first means such a client gets its 413 at once and never sends
//!   the body;
//! - the whole body must arrive within [`crate::HubConfig::body_read_timeout`] of the headers:
//!   a body that stalls (or drips) is answered 408 and its connection closed, instead of holding
//!   a connection slot for as long as the client likes.
//!
//! The body is then handed on whole (at most `max_body_bytes`, which the handler holds anyway).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Version, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use bytes::BytesMut;
use futures_util::StreamExt as _;

use crate::Shared;
use crate::error::ApiError;

/// Why a body could not be read.
enum Unread {
    TooLarge,
    Failed,
}

/// The middleware of `POST /publish`: see the module doc.
pub(crate) async fn read_within_limits(
    State(shared): State<Arc<Shared>>,
    request: Request,
    next: Next,
) -> Response {
    let limit = shared.config.max_body_bytes;
    let timeout = shared.config.body_read_timeout;
    let declared = request
        .headers()
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok()?.parse::<u64>().ok());
    if declared.is_some_and(|len| len > limit as u64) {
        return close(ApiError::payload_too_large(limit), request.version());
    }
    let (parts, body) = request.into_parts();
    let read = async {
        let mut frames = body.into_data_stream();
        let mut buf = BytesMut::new();
        while let Some(frame) = frames.next().await {
            let frame = frame.map_err(|_| Unread::Failed)?;
            if buf.len() + frame.len() > limit {
                return Err(Unread::TooLarge);
            }
            buf.extend_from_slice(&frame);
        }
        Ok(buf.freeze())
    };
    let body = match tokio::time::timeout(timeout, read).await {
        Ok(Ok(body)) => body,
        Ok(Err(Unread::TooLarge)) => {
            return close(ApiError::payload_too_large(limit), parts.version);
        }
        Ok(Err(Unread::Failed)) => {
            let err = ApiError::bad_request("the request body could not be read");
            return close(err, parts.version);
        }
        Err(_) => return close(ApiError::request_timeout(timeout), parts.version),
    };
    next.run(Request::from_parts(parts, Body::from(body))).await
}

/// `err` as a response that also closes an HTTP/1 connection: the rest of its body (unread,
/// perhaps never sent) must not be taken for the next request. HTTP/2 ends just the stream, and
/// has no `Connection` header.
fn close(err: ApiError, version: Version) -> Response {
    let mut response = err.into_response();
    if version < Version::HTTP_2 {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

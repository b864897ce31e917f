//! `GET /events`: one subscriber's stream, from resume to live.
//!
//! | state       | what the stream does                                                        |
//! |-------------|-----------------------------------------------------------------------------|
//! | start       | sends `retry:`; registered with the broker *before* any event is read       |
//! | catching up | reads [`Log::read_after`]`(cursor)` in batches, sends the matching events    |
//! | live        | sends its mailbox's frames, skipping ids `<= cursor` (already sent)         |
//! | closing     | sends the shutdown `retry:` and ends                                        |
//! | expiring    | the token's `exp` is near: sends `herald.token-expiring`, ends at `exp`     |
//!
//! `catching up -> live` when a batch comes back empty; `live -> catching up` when the mailbox
//! reports lag. The cursor is the highest log id the stream has sent or read past, so a replayed
//! event is never sent again by the live path and nothing between the two is skipped.
//!
//! A `Last-Event-ID` beyond the newest id the log ever assigned (a wiped store, another
//! deployment's id, a client's clock ahead of the hub's) is a position the log does not have:
//! taken as is, the live path would skip every event until the log's ids pass it. The stream
//! instead starts with `herald.reset` (reason `future`) and continues from the log's newest id.
//!
//! History: `?last=N` (at most [`MAX_LAST`]) on a request without a `Last-Event-ID` starts the
//! stream with the newest N retained events of its topics (those its token may see), oldest
//! first, read backwards ([`Log::read_before`]) up to the log's newest id; the stream then
//! catches up from that id and goes live, as a resume from it would: no gap, no duplicate. A
//! `Last-Event-ID` wins: a reconnecting client resumes, it is not given the history again.
//!
//! Time: a token is refused from the instant the wall clock reaches its `exp` second
//! ([`crate::auth`]); a stream's timers are computed from the wall clock to the millisecond
//! (not rounded to whole seconds) and checked against it again when they fire, so the
//! warning comes [`expiry_warning`] before `exp` and the stream ends at `exp`, not up to a
//! second later.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use axum::Extension;
use axum::body::Body;
use axum::extract::{ConnectInfo, RawQuery, State};
use axum::http::header::{CACHE_CONTROL, CONTENT_TYPE, HeaderValue};
use axum::http::{HeaderMap, HeaderName};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use hyper::body::{Body as HttpBody, Frame as HttpFrame};
use tokio::time::{Instant, Sleep};

use crate::Shared;
use crate::auth::{Subscriber, TOKEN_QUERY_PARAM};
use crate::broker::{Pop, Subscription};
use crate::error::ApiError;
use crate::log::{BoxFuture, EventId, LogError, ReadBatch, StoredEvent};
use crate::metrics::Metrics;
use crate::topic::TopicPattern;

/// Events read from the log per catch-up step: bounds the memory of one catch-up.
pub const CATCH_UP_BATCH: usize = 256;

/// The largest `last=N` on `GET /events`: a chat's or a dashboard's recent history, while one
/// request cannot ask the hub to encode and hold a large share of the log at once.
pub(crate) const MAX_LAST: usize = 1000;

/// How many of the newest events a `last=N` request looks through for its topics, at most: a
/// rare topic in a busy log must not make one request read the whole log before it is answered.
/// At ten events per second this is almost three hours of every topic.
pub(crate) const MAX_LAST_SCAN: usize = 100_000;

/// The type of the event sent when a stream cannot give everything after its resume position:
/// before the oldest retained events when retention already removed some
/// (`{"reason":"retention","after":"<the id resumed from>"}`), or first when the resume position
/// is beyond the newest id the log ever assigned
/// (`{"reason":"future","after":"<the log's newest id>","requested":"<the id resumed from>"}`).
/// Its `id:` is `after`, the position the stream continues from.
pub const RESET_EVENT_TYPE: &str = "herald.reset";

/// The type of the event sent on a stream whose token expires soon: a tenth of the time the token
/// had left when the stream opened, at least 1 s and at most 30 s, before `exp`. Its
/// data is JSON `{"exp": <the token's exp, Unix seconds>}`; at `exp` the stream ends, and the
/// client reconnects with a fresh token and its last event id.
pub const TOKEN_EXPIRING_EVENT_TYPE: &str = "herald.token-expiring";

/// Longest a token's `exp` is taken to be away (see [`Expiry::at`]).
const MAX_STREAM_LIFE: Duration = Duration::from_secs(365 * 86_400);
/// Longest warning before a token's `exp`: time enough for any client to fetch a fresh token,
/// without asking a long-lived token's stream to refresh early.
pub(crate) const MAX_EXPIRY_WARNING: Duration = Duration::from_secs(30);
/// Shortest warning before a token's `exp` (unless the stream opens with less left): about what a
/// client needs to get a fresh token from its login service, a round trip or two. A tenth of a
/// short token's life (0.3 s for 3 s) would often come too late to act on.
pub(crate) const MIN_EXPIRY_WARNING: Duration = Duration::from_secs(1);
/// Shortest wait when a stream's end is re-armed because the wall clock has not reached `exp`
/// yet (it was stepped back): keeps a clock a hair behind from spinning the stream.
const MIN_EXPIRY_REARM: Duration = Duration::from_millis(1);

/// How long before `exp` the warning comes: a tenth of the token's remaining life, at least
/// [`MIN_EXPIRY_WARNING`] and at most [`MAX_EXPIRY_WARNING`], and at once when less than that is
/// left (a 3 s token is warned 1 s before, a 10 min one 30 s before, one with 0.5 s left at once).
pub(crate) fn expiry_warning(remaining: Duration) -> Duration {
    (remaining / 10)
        .clamp(MIN_EXPIRY_WARNING, MAX_EXPIRY_WARNING)
        .min(remaining)
}

/// Time from `now` until the wall clock reaches `exp` (Unix seconds), to the nanosecond: zero
/// when it already has, capped at [`MAX_STREAM_LIFE`] (an `exp` centuries ahead must not overflow
/// the clock; a year is "never" for a stream, which reconnects more often than that anyway).
fn until_exp(exp: u64, now: SystemTime) -> Duration {
    match UNIX_EPOCH.checked_add(Duration::from_secs(exp)) {
        Some(at) => at.duration_since(now).unwrap_or(Duration::ZERO),
        None => MAX_STREAM_LIFE,
    }
    .min(MAX_STREAM_LIFE)
}

/// When a stream's token runs out, and the one timer that wakes the stream for it.
struct Expiry {
    exp: u64,
    warn_at: Instant,
    end_at: Instant,
    warned: bool,
    /// Boxed once per stream with a token (not per wait); reset from `warn_at` to `end_at`.
    timer: Pin<Box<Sleep>>,
}

impl Expiry {
    fn new(exp: u64) -> Self {
        Self::at(exp, SystemTime::now(), Instant::now())
    }

    /// The timers of a token with this `exp` for a stream opened when the wall clock read `wall`
    /// and the monotonic clock `now`. The remaining time is not rounded to whole seconds: a stream
    /// opened at 10.9 s with `exp` 13 ends at 13.0, not 13.9.
    fn at(exp: u64, wall: SystemTime, now: Instant) -> Self {
        let remaining = until_exp(exp, wall);
        let end_at = now + remaining;
        let warn_at = end_at - expiry_warning(remaining);
        Self {
            exp,
            warn_at,
            end_at,
            warned: false,
            timer: Box::pin(tokio::time::sleep_until(warn_at)),
        }
    }
}

/// The `herald.token-expiring` event; like `herald.reset` it carries the stream's position as
/// its `id:` so that its dispatch does not clear the client's last event id.
fn expiring_frame(exp: u64, cursor: Option<EventId>) -> Bytes {
    let data = serde_json::json!({ "exp": exp }).to_string();
    let event = herald_wire::Event::new(data).with_type(TOKEN_EXPIRING_EVENT_TYPE);
    match event.and_then(|e| match cursor {
        Some(id) => e.with_id(id.to_string()),
        None => Ok(e),
    }) {
        Ok(event) => event.encode(),
        Err(_) => Bytes::new(),
    }
}

struct SubscriberStream {
    shared: Arc<Shared>,
    sub: Arc<Subscription>,
    /// Highest log id sent or read past.
    cursor: Option<EventId>,
    catching_up: bool,
    /// Frames ready to send, from the start and from a catch-up batch.
    ready: VecDeque<(Bytes, bool)>,
    done: bool,
    /// Set when the subscriber has a token: the stream ends at its `exp`.
    expiry: Option<Expiry>,
    /// The client key counted in [`Shared::streams`], released on drop.
    client: Option<IpAddr>,
    /// A resumed stream that has sent no event with an id yet. A spec client starts each
    /// connection with an empty last-event-id buffer, so an event without `id:` (a system event,
    /// not in the log) would clear its position; such a frame is preceded by `id: <cursor>`.
    restore_id: bool,
    /// The catch-up read in progress.
    reading: Option<BoxFuture<'static, Result<ReadBatch, LogError>>>,
}

impl Drop for SubscriberStream {
    fn drop(&mut self) {
        if let Some(client) = self.client {
            self.shared.streams.release(client);
        }
        self.shared.broker.unsubscribe(&self.sub);
        Metrics::dec(&self.shared.metrics.subscriptions);
    }
}

/// The `herald.reset` event. It carries the id the subscriber resumed from as its `id:`: without
/// one, its dispatch would clear a spec client's last event id (a new stream starts with an empty
/// id buffer), and a reconnection before the next event would lose the client's place.
fn reset_frame(after: Option<EventId>) -> Bytes {
    let after = after.map(|id| id.to_string()).unwrap_or_default();
    let data = serde_json::json!({ "reason": "retention", "after": after }).to_string();
    let event = herald_wire::Event::new(data).with_type(RESET_EVENT_TYPE);
    // Neither the constant type nor an id rendered as `<digits>-<digits>` holds CR, LF or NUL.
    match event.and_then(|e| {
        if after.is_empty() {
            Ok(e)
        } else {
            e.with_id(after)
        }
    }) {
        Ok(event) => event.encode(),
        Err(_) => Bytes::new(),
    }
}

/// The `herald.reset` event for a resume from `requested`, an id beyond `newest`, the newest id
/// the log ever assigned (`0-0` for a log that never assigned one). Its `id:` is `newest`, where
/// the stream continues: a reconnection after it resumes from a position the log has.
fn future_reset_frame(requested: EventId, newest: EventId) -> Bytes {
    let data = serde_json::json!({
        "reason": "future",
        "after": newest.to_string(),
        "requested": requested.to_string(),
    })
    .to_string();
    // The constant type and an id rendered as `<digits>-<digits>` hold no CR, LF or NUL.
    match herald_wire::Event::new(data)
        .with_type(RESET_EVENT_TYPE)
        .and_then(|e| e.with_id(newest.to_string()))
    {
        Ok(event) => event.encode(),
        Err(_) => Bytes::new(),
    }
}

/// Where a stream resuming from `requested` starts, given the log's newest id: `requested`
/// itself when the log has reached it, or (with the `herald.reset` frame to send first) the
/// newest id when `requested` is beyond it. `0-0` comes before every id, so it is never beyond.
fn resume_position(requested: EventId, newest: Option<EventId>) -> (EventId, Option<Bytes>) {
    let newest = newest.unwrap_or_default();
    if requested > newest {
        (newest, Some(future_reset_frame(requested, newest)))
    } else {
        (requested, None)
    }
}

impl SubscriberStream {
    fn take_batch(&mut self, events: &[Arc<StoredEvent>]) {
        for event in events {
            if self.cursor.is_some_and(|c| c >= event.id) {
                continue;
            }
            self.cursor = Some(event.id);
            if self.sub.matches(&event.topic) && self.sub.allowed(&event.topic, event.private) {
                // Replay encodes per subscriber: it is the cold path, and bounded by the batch.
                self.ready.push_back((crate::broker::encode(event), true));
            }
        }
    }

    /// The next chunk of the response body, or `None` at its end. Polled in place (no future
    /// per frame, no copy of the stream's state): a delivery costs one mailbox lock.
    fn poll_next_frame(&mut self, cx: &mut Context<'_>) -> Poll<Option<Bytes>> {
        loop {
            if let Some((bytes, event)) = self.ready.pop_front() {
                self.restore_id &= !event;
                return Poll::Ready(Some(self.count(bytes, event)));
            }
            if self.done {
                return Poll::Ready(None);
            }
            if let Some(expiry) = &mut self.expiry {
                let now = Instant::now();
                if now >= expiry.end_at {
                    // The timer runs on the monotonic clock; tokens are judged on the wall clock.
                    // If that one has not reached `exp` yet (stepped back meanwhile), wait on:
                    // a stream must not end while a reconnection with its token would succeed.
                    let left = until_exp(expiry.exp, SystemTime::now());
                    if !left.is_zero() {
                        expiry.end_at = now + left.max(MIN_EXPIRY_REARM);
                        let end_at = expiry.end_at;
                        expiry.timer.as_mut().reset(end_at);
                        continue;
                    }
                    // Ends cleanly: the client reconnects with a fresh token and its last id.
                    self.done = true;
                    continue;
                }
                if !expiry.warned && now >= expiry.warn_at {
                    expiry.warned = true;
                    let end_at = expiry.end_at;
                    expiry.timer.as_mut().reset(end_at);
                    let frame = expiring_frame(expiry.exp, self.cursor);
                    self.ready.push_back((frame, false));
                    continue;
                }
            }
            if self.catching_up {
                let reading = match &mut self.reading {
                    Some(reading) => reading,
                    None => {
                        // A long replay must not hold the shutdown: check for it between batches.
                        if let Some(last) = self.sub.mailbox.closing() {
                            self.done = true;
                            self.ready.push_back((last, false));
                            continue;
                        }
                        let log = Arc::clone(&self.shared.log);
                        let cursor = self.cursor;
                        // One boxed future per catch-up batch (the cold path), none per live frame.
                        self.reading.insert(Box::pin(async move {
                            log.read_after(cursor, CATCH_UP_BATCH).await
                        }))
                    }
                };
                let read = std::task::ready!(reading.as_mut().poll(cx));
                self.reading = None;
                match read {
                    Ok(batch) => {
                        if batch.truncated {
                            self.ready.push_back((reset_frame(self.cursor), false));
                        }
                        // Done only when the log has nothing more: a short batch is not proof
                        // (a store may bound a read by bytes), and one empty read is cheap.
                        self.catching_up = !batch.events.is_empty();
                        self.take_batch(&batch.events);
                    }
                    Err(err) => {
                        // End the stream: the client reconnects with its Last-Event-ID and
                        // resumes exactly where it stopped.
                        tracing::warn!(%err, "catch-up read failed; ending the stream");
                        Metrics::inc(&self.shared.metrics.store_errors);
                        return Poll::Ready(None);
                    }
                }
                continue;
            }
            match self.sub.mailbox.pop(cx.waker()) {
                Pop::Frame(frame) => {
                    if let Some(id) = frame.id {
                        if self.cursor.is_some_and(|c| c >= id) {
                            continue;
                        }
                        self.cursor = Some(id);
                        self.restore_id = false;
                    } else if self.restore_id && !frame.bytes.starts_with(b":") {
                        self.restore_id = false;
                        if let Some(cursor) = self.cursor {
                            // A field line alone, no blank line: sets the buffer, dispatches nothing.
                            let line = Bytes::from(format!("id: {cursor}\n"));
                            self.ready.push_back((frame.bytes, false));
                            return Poll::Ready(Some(self.count(line, false)));
                        }
                    }
                    let event = frame.id.is_some();
                    return Poll::Ready(Some(self.count(frame.bytes, event)));
                }
                Pop::Lagged => {
                    Metrics::inc(&self.shared.metrics.lagged_catchups);
                    self.catching_up = true;
                }
                Pop::Closing(last) => {
                    self.done = true;
                    self.ready.push_back((last, false));
                }
                // The mailbox wakes this task on its next push; the token's timer wakes it at
                // the warning and at `exp`.
                Pop::Empty => {
                    let timer_fired = self
                        .expiry
                        .as_mut()
                        .is_some_and(|e| e.timer.as_mut().poll(cx).is_ready());
                    if !timer_fired {
                        return Poll::Pending;
                    }
                }
            }
        }
    }

    fn count(&self, bytes: Bytes, event: bool) -> Bytes {
        let m = &self.shared.metrics;
        if event {
            Metrics::inc(&m.delivered);
        }
        m.bytes_out
            .fetch_add(bytes.len() as u64, std::sync::atomic::Ordering::Relaxed);
        bytes
    }
}

impl HttpBody for SubscriberStream {
    type Data = Bytes;
    type Error = Infallible;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<HttpFrame<Bytes>, Infallible>>> {
        self.get_mut()
            .poll_next_frame(cx)
            .map(|bytes| bytes.map(|b| Ok(HttpFrame::data(b))))
    }

    fn is_end_stream(&self) -> bool {
        self.done && self.ready.is_empty()
    }
}

struct Request {
    patterns: Vec<TopicPattern>,
    last_event_id: Option<EventId>,
    /// The `last` query parameter: how many retained events to start with (0: none).
    last: usize,
    /// The `access_token` query parameter.
    token: Option<String>,
}

/// The `access_token` query parameter of a request, if any.
pub(crate) fn query_token(query: Option<&str>) -> Result<Option<String>, ApiError> {
    let pairs = crate::form::parse(query.unwrap_or_default().as_bytes())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    Ok(pairs
        .into_iter()
        .find(|(name, _)| name == TOKEN_QUERY_PARAM)
        .map(|(_, value)| value))
}

fn parse_request(
    headers: &HeaderMap,
    query: Option<&str>,
    max_topics: usize,
) -> Result<Request, ApiError> {
    let pairs = crate::form::parse(query.unwrap_or_default().as_bytes())
        .map_err(|e| ApiError::bad_request(e.to_string()))?;
    let mut patterns = Vec::new();
    let mut query_id = None;
    let mut token = None;
    let mut last = 0;
    for (name, value) in pairs {
        match name.as_str() {
            "topic" => {
                if patterns.len() == max_topics {
                    return Err(ApiError::bad_request(format!(
                        "at most {max_topics} topics per stream"
                    )));
                }
                let p = TopicPattern::try_new(&value).map_err(|e| {
                    ApiError::bad_request(format!("invalid topic pattern {value:?}: {e}"))
                })?;
                if !patterns.contains(&p) {
                    patterns.push(p);
                }
            }
            "lastEventId" => query_id = Some(value),
            "last" => last = parse_last(&value)?,
            TOKEN_QUERY_PARAM => token = Some(value),
            _ => {}
        }
    }
    if patterns.is_empty() {
        return Err(ApiError::bad_request(
            "missing \"topic\": name at least one topic, e.g. /events?topic=chat",
        ));
    }
    // The header wins: a browser sets it on reconnect, while the query parameter is fixed in the
    // URL and so older.
    let header_id = match headers.get("last-event-id") {
        Some(v) => Some(
            v.to_str()
                .map_err(|_| ApiError::bad_request("malformed Last-Event-ID"))?
                .to_owned(),
        ),
        None => None,
    };
    let raw = header_id.or(query_id).filter(|id| !id.is_empty());
    let last_event_id =
        match raw {
            None => None,
            Some(id) => Some(id.parse::<EventId>().map_err(|e| {
                ApiError::bad_request(format!("malformed Last-Event-ID {id:?}: {e}"))
            })?),
        };
    Ok(Request {
        patterns,
        last_event_id,
        last,
        token,
    })
}

/// The `last` query parameter: a count from 0 to [`MAX_LAST`], in decimal digits.
fn parse_last(value: &str) -> Result<usize, ApiError> {
    let bad = || {
        ApiError::bad_request(format!(
            "invalid \"last\" {value:?}: give how many recent events to start with, \
             a whole number from 0 to {MAX_LAST}"
        ))
    };
    if value.is_empty() || value.len() > 5 || !value.bytes().all(|b| b.is_ascii_digit()) {
        return Err(bad());
    }
    let last: usize = value.parse().map_err(|_| bad())?;
    if last > MAX_LAST {
        return Err(bad());
    }
    Ok(last)
}

/// The newest `last` retained events that a subscriber to `patterns` with these private
/// `grants` receives, oldest first, and the log's newest id when the read began (where the
/// stream continues). Events appended after that id are left to the catch-up from it.
async fn recent_events(
    log: &dyn crate::log::Log,
    patterns: &[TopicPattern],
    grants: &[TopicPattern],
    last: usize,
) -> Result<(Option<EventId>, Vec<Arc<StoredEvent>>), LogError> {
    let newest = log.last_id().await?;
    let mut found = Vec::new();
    let Some(newest) = newest else {
        return Ok((None, found));
    };
    let mut before = None;
    let mut scanned = 0;
    while found.len() < last && scanned < MAX_LAST_SCAN {
        let batch = log
            .read_before(before, CATCH_UP_BATCH.min(MAX_LAST_SCAN - scanned))
            .await?;
        let Some(oldest) = batch.last() else {
            break;
        };
        before = Some(oldest.id);
        scanned += batch.len();
        for event in batch {
            if event.id <= newest
                && patterns.iter().any(|p| p.matches(&event.topic))
                && (!event.private || grants.iter().any(|g| g.matches(&event.topic)))
            {
                found.push(event);
                if found.len() == last {
                    break;
                }
            }
        }
    }
    found.reverse();
    Ok((Some(newest), found))
}

/// The `GET /events` handler.
pub(crate) async fn events(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    peer: Option<Extension<ConnectInfo<SocketAddr>>>,
) -> Result<Response, ApiError> {
    let request = parse_request(&headers, query.as_deref(), shared.config.max_topics)?;
    let (grants, exp) = match &shared.config.auth {
        None => (Box::default(), None),
        Some(auth) => {
            let allow_anonymous = shared.config.allow_anonymous_subscribers;
            match auth.subscriber(&headers, request.token.as_deref(), allow_anonymous)? {
                Subscriber::Anonymous => (Box::default(), None),
                Subscriber::Token(grant) => {
                    (grant.subscribe_patterns().into(), Some(grant.expires_at()))
                }
            }
        }
    };
    let retry = herald_wire::encode_retry(shared.config.retry.as_millis() as u64);
    let mut ready = VecDeque::from([(retry, false)]);
    let mut cursor = request.last_event_id;
    let mut done = false;
    let mut catching_up = cursor.is_some();
    if request.last_event_id.is_none() && request.last > 0 {
        // Read before subscribing, like the resume check below: the catch-up from the newest id
        // read here sends whatever is appended meanwhile, and the live path skips it.
        match recent_events(&*shared.log, &request.patterns, &grants, request.last).await {
            Ok((newest, events)) => {
                ready.extend(
                    events
                        .iter()
                        .map(|event| (crate::broker::encode(event), true)),
                );
                cursor = newest;
                catching_up = true;
            }
            Err(err) => {
                // As for a failed catch-up read: end at once, the client reconnects.
                tracing::warn!(%err, "cannot read the recent events; ending the stream");
                Metrics::inc(&shared.metrics.store_errors);
                done = true;
            }
        }
    }
    if let Some(requested) = request.last_event_id {
        // Is the position one the log has? Every store sets its newest id before it acknowledges
        // or tails an event, so an id a client could know is never beyond it: only an id this
        // log never assigned is. Read before subscribing: whatever is appended after this read
        // is after the position, and the catch-up reads it.
        match shared.log.last_id().await {
            Ok(newest) => {
                let (position, reset) = resume_position(requested, newest);
                if let Some(reset) = reset {
                    tracing::debug!(%requested, %position, "resume from an id the log never assigned");
                    ready.push_back((reset, false));
                }
                cursor = Some(position);
            }
            Err(err) => {
                // Like a failed catch-up read: end at once; the client reconnects with its
                // Last-Event-ID (a refusal would stop a browser's EventSource for good).
                tracing::warn!(%err, "cannot read the log's newest id; ending the stream");
                done = true;
            }
        }
    }
    // Taken after the await above: the stream's drop releases it, and a handler dropped while
    // waiting must not hold it.
    let client = match peer {
        Some(Extension(ConnectInfo(addr))) => Some(shared.streams.acquire(addr.ip())?),
        None => None,
    };
    // Subscribe to the live path before reading the log, so nothing falls between the two.
    let sub = shared.broker.subscribe(request.patterns, grants);
    Metrics::inc(&shared.metrics.subscriptions);
    let stream = SubscriberStream {
        shared,
        sub,
        cursor,
        catching_up: catching_up && !done,
        ready,
        done,
        expiry: exp.map(Expiry::new),
        client,
        restore_id: request.last_event_id.is_some(),
        reading: None,
    };
    let body = Body::new(stream);
    let mut response = body.into_response();
    let h = response.headers_mut();
    h.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    h.insert(
        HeaderName::from_static("x-accel-buffering"),
        HeaderValue::from_static("no"),
    );
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(query: &str, header: Option<&str>) -> Result<Request, ApiError> {
        let mut h = HeaderMap::new();
        if let Some(v) = header {
            h.insert("last-event-id", HeaderValue::from_str(v).unwrap());
        }
        parse_request(&h, Some(query), 3)
    }

    #[test]
    fn topics_and_ids() {
        let r = req("topic=a&topic=b%2F*&topic=a&lastEventId=5-1", None).unwrap();
        let names: Vec<_> = r.patterns.iter().map(|p| p.as_str()).collect();
        assert_eq!(names, ["a", "b/*"]);
        assert_eq!(r.last_event_id, Some(EventId::new(5, 1)));
        let r = req("topic=a&lastEventId=5-1", Some("7-0")).unwrap();
        assert_eq!(r.last_event_id, Some(EventId::new(7, 0)));
        let r = req("topic=a", Some("")).unwrap();
        assert_eq!(r.last_event_id, None);
        assert_eq!(r.last, 0);
        assert_eq!(req("topic=a&last=1000", None).unwrap().last, MAX_LAST);
        assert_eq!(req("topic=a&last=007", None).unwrap().last, 7);
    }

    #[test]
    fn bad_requests() {
        for (q, h) in [
            ("", None),
            ("x=1", None),
            ("topic=", None),
            ("topic=a%20b", None),
            ("topic=ch*t", None),
            ("topic=a&topic=b&topic=c&topic=d", None),
            ("topic=a&lastEventId=abc", None),
            ("topic=a", Some("1-2-3")),
            ("topic=%zz", None),
            ("topic=a&last=1001", None),
            ("topic=a&last=-1", None),
            ("topic=a&last=ten", None),
            ("topic=a&last=", None),
            ("topic=a&last=1e3", None),
            ("topic=a&last=99999999999999999999", None),
        ] {
            assert_eq!(
                req(q, h).err().map(|e| e.status()),
                Some(400.try_into().unwrap()),
                "{q} {h:?}"
            );
        }
    }

    #[test]
    fn expiry_warning_is_a_tenth_up_to_thirty_seconds() {
        assert_eq!(
            expiry_warning(Duration::from_secs(10)),
            Duration::from_secs(1)
        );
        assert_eq!(
            expiry_warning(Duration::from_secs(3600)),
            Duration::from_secs(30)
        );
        assert_eq!(expiry_warning(Duration::ZERO), Duration::ZERO);
        // Never less than a second ahead, unless less than that is left: then at once.
        assert_eq!(
            expiry_warning(Duration::from_millis(2400)),
            MIN_EXPIRY_WARNING
        );
        assert_eq!(
            expiry_warning(Duration::from_millis(500)),
            Duration::from_millis(500)
        );
        assert_eq!(
            expiry_warning(Duration::from_secs(20)),
            Duration::from_secs(2)
        );
        assert_eq!(
            &expiring_frame(7, Some(EventId::new(1, 2)))[..],
            b"id: 1-2\nevent: herald.token-expiring\ndata: {\"exp\":7}\n\n"
        );
    }

    #[tokio::test]
    async fn a_far_exp_does_not_overflow() {
        let far = Expiry::new(u64::MAX);
        assert!(far.end_at > Instant::now() + Duration::from_secs(364 * 86_400));
        let past = Expiry::new(0);
        assert!(past.end_at <= Instant::now() && past.warn_at == past.end_at);
    }

    /// The issue-13 report: `herald.token-expiring` came 0.6 s after `exp` and the stream ended
    /// 0.9 s after it, because the time left was rounded down to whole seconds at the open.
    #[tokio::test]
    async fn expiry_timers_are_exact_to_the_millisecond() {
        let exp = 1_700_000_013;
        let now = Instant::now();
        // Opened at 10.600 s on the wall clock: 2.4 s left.
        let wall = UNIX_EPOCH + Duration::from_millis(1_700_000_010_600);
        let expiry = Expiry::at(exp, wall, now);
        assert_eq!(expiry.end_at - now, Duration::from_millis(2400));
        assert_eq!(expiry.end_at - expiry.warn_at, MIN_EXPIRY_WARNING);
        // One nanosecond before `exp`, one nanosecond is left; at `exp` and after, none.
        let at_exp = UNIX_EPOCH + Duration::from_secs(exp);
        assert_eq!(
            until_exp(exp, at_exp - Duration::from_nanos(1)),
            Duration::from_nanos(1)
        );
        assert_eq!(until_exp(exp, at_exp), Duration::ZERO);
        assert_eq!(
            until_exp(exp, at_exp + Duration::from_secs(5)),
            Duration::ZERO
        );
        assert_eq!(until_exp(u64::MAX, at_exp), MAX_STREAM_LIFE);
    }

    /// The issue-13 report: a `Last-Event-ID` beyond the log's newest id answered 200 and then
    /// skipped every live event until the log's ids passed it.
    #[test]
    fn a_resume_from_beyond_the_newest_id_is_reset_to_it() {
        let newest = EventId::new(1_000, 4);
        // Positions the log has: any id up to the newest, assigned or not.
        for requested in [EventId::new(0, 0), EventId::new(999, 9), newest] {
            assert_eq!(resume_position(requested, Some(newest)), (requested, None));
        }
        let (position, reset) = resume_position(EventId::new(1_000, 5), Some(newest));
        assert_eq!(position, newest);
        assert_eq!(
            &reset.unwrap()[..],
            b"id: 1000-4\nevent: herald.reset\ndata: {\"after\":\"1000-4\",\"reason\":\"future\",\"requested\":\"1000-5\"}\n\n"
        );
        // A log that never assigned an id: `0-0` (the documented "everything") is no reset;
        // anything else is, and continues from `0-0`.
        assert_eq!(
            resume_position(EventId::new(0, 0), None),
            (EventId::new(0, 0), None)
        );
        let (position, reset) = resume_position(EventId::new(u64::MAX, u64::MAX), None);
        assert_eq!(position, EventId::new(0, 0));
        assert!(
            reset
                .unwrap()
                .starts_with(b"id: 0-0\nevent: herald.reset\n")
        );
    }

    #[test]
    fn reset_frame_keeps_the_resume_position_as_its_id() {
        assert_eq!(
            &reset_frame(Some(EventId::new(1, 2)))[..],
            b"id: 1-2\nevent: herald.reset\ndata: {\"after\":\"1-2\",\"reason\":\"retention\"}\n\n"
        );
    }
}

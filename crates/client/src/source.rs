//! The [`EventSource`]: the spec's reconnect loop as an explicit state machine behind a `Stream`.

use std::pin::Pin;
use std::sync::Arc;
use std::sync::atomic::{AtomicU8, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use futures_util::stream::{BoxStream, Stream, StreamExt};
use herald_wire::{MessageEvent, Parser, redact_url};
use reqwest::header::{self, HeaderMap, HeaderName, HeaderValue};
use reqwest::{StatusCode, Url};
use tokio::sync::watch;

use crate::error::{Error, Kind, TlsProblem};
use crate::retry::RetryPolicy;

/// What an [`EventSource`] yields besides errors.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Event {
    /// A connection opened: the server answered 200 with `text/event-stream` (a browser's `open`
    /// event). It comes again after every reconnection.
    Open,
    /// A dispatched event (a browser's `message` event, or one named by `event:`).
    Message(MessageEvent),
}

/// The spec's `readyState`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReadyState {
    /// Connecting, or waiting to reconnect.
    Connecting,
    /// A stream is open and events are arriving.
    Open,
    /// Closed for good: by [`EventSource::close`], by the server (204, a fatal error), or after
    /// the retries ran out.
    Closed,
}

impl ReadyState {
    fn from_u8(value: u8) -> Self {
        match value {
            0 => Self::Connecting,
            1 => Self::Open,
            _ => Self::Closed,
        }
    }
}

/// What the source and its [`CloseHandle`]s share.
#[derive(Debug)]
struct Shared {
    /// The [`ReadyState`] as a `u8`, written by the driver, read by anyone.
    ready_state: AtomicU8,
    /// Set to `true` by `close()`; the driver waits on it alongside every await, so a close cuts
    /// a pending connect, read or reconnect delay at once.
    closed: watch::Sender<bool>,
}

impl Shared {
    fn set(&self, state: ReadyState) {
        self.ready_state.store(state as u8, Ordering::Release);
    }
}

/// Closes an [`EventSource`] from anywhere (another task, a signal handler). Cheap to clone.
#[derive(Clone, Debug)]
pub struct CloseHandle {
    shared: Arc<Shared>,
}

impl CloseHandle {
    /// Closes the source: the stream ends, with no reconnection. A task waiting on the stream is
    /// woken at once and drops the connection (or the pending reconnection delay); a source that
    /// nobody polls releases its connection at its next poll or when it is dropped. Closing twice
    /// is harmless.
    pub fn close(&self) {
        self.shared.set(ReadyState::Closed);
        self.shared.closed.send_replace(true);
    }

    /// The source's current state.
    pub fn ready_state(&self) -> ReadyState {
        ReadyState::from_u8(self.shared.ready_state.load(Ordering::Acquire))
    }
}

/// An async `EventSource`: a [`Stream`] of [`Event`]s and [`Error`]s from one SSE endpoint (or
/// the same stream served by several hubs, see [`EventSourceBuilder::fallback_url`]), following
/// the WHATWG processing model (see the [crate docs](crate)).
///
/// Errors are items of the stream: a non-fatal one (a lost connection, a dropped oversized event)
/// is followed by more items; after a fatal one ([`Error::is_fatal`]) the stream ends. It also
/// ends, without an error, after a 204 answer or [`EventSource::close`].
pub struct EventSource {
    shared: Arc<Shared>,
    /// The driver; `None` once the stream has ended, so nothing is polled after the end.
    inner: Option<BoxStream<'static, Result<Event, Error>>>,
}

impl std::fmt::Debug for EventSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("EventSource")
            .field("ready_state", &self.ready_state())
            .finish_non_exhaustive()
    }
}

impl EventSource {
    /// Starts configuring a source for `url` (`http://...`).
    pub fn builder(url: impl AsRef<str>) -> EventSourceBuilder {
        EventSourceBuilder {
            url: url.as_ref().to_owned(),
            fallback_urls: Vec::new(),
            headers: Vec::new(),
            last_event_id: None,
            retry: RetryPolicy::default(),
            idle_timeout: None,
            max_event_size: Parser::DEFAULT_MAX_EVENT_SIZE,
            root_certificates: None,
            accept_invalid_certs: false,
        }
    }

    /// A source for `url` with the defaults.
    pub fn new(url: impl AsRef<str>) -> Result<Self, Error> {
        Self::builder(url).build()
    }

    /// Closes the source (see [`CloseHandle::close`]).
    pub fn close(&self) {
        self.close_handle().close();
    }

    /// A handle that closes this source from another task.
    pub fn close_handle(&self) -> CloseHandle {
        CloseHandle {
            shared: self.shared.clone(),
        }
    }

    /// The source's current state.
    pub fn ready_state(&self) -> ReadyState {
        self.close_handle().ready_state()
    }
}

impl Stream for EventSource {
    type Item = Result<Event, Error>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        if *self.shared.closed.borrow() {
            self.inner = None; // drops the connection now, not when the source is dropped
            return Poll::Ready(None);
        }
        let Some(inner) = self.inner.as_mut() else {
            return Poll::Ready(None);
        };
        let item = std::task::ready!(inner.poll_next_unpin(cx));
        if item.is_none() {
            self.inner = None;
            self.shared.set(ReadyState::Closed);
        }
        Poll::Ready(item)
    }
}

/// Configures an [`EventSource`]; made by [`EventSource::builder`].
#[derive(Debug)]
#[must_use]
pub struct EventSourceBuilder {
    url: String,
    fallback_urls: Vec<String>,
    headers: Vec<(String, String)>,
    last_event_id: Option<String>,
    retry: RetryPolicy,
    idle_timeout: Option<Duration>,
    max_event_size: usize,
    /// PEM certificates to trust instead of the platform's (`curl --cacert`); parsed by `build`.
    root_certificates: Option<Vec<u8>>,
    /// Skip certificate verification (`curl --insecure`).
    accept_invalid_certs: bool,
}

impl EventSourceBuilder {
    /// Trusts the certificates of this PEM file's content (one or more `BEGIN CERTIFICATE`
    /// blocks) **instead of** the platform's, as `curl --cacert` does: for a hub with a private
    /// CA or a self-signed certificate. Checked by [`EventSourceBuilder::build`]. Needs the
    /// `rustls` feature.
    #[cfg(feature = "rustls")]
    pub fn root_certificates_pem(mut self, pem: impl Into<Vec<u8>>) -> Self {
        self.root_certificates = Some(pem.into());
        self
    }

    /// Accepts any server certificate, as `curl --insecure` does. The connection is still
    /// encrypted but anyone in the middle can read it: for development only. Needs the `rustls`
    /// feature.
    #[cfg(feature = "rustls")]
    pub fn danger_accept_invalid_certs(mut self, accept: bool) -> Self {
        self.accept_invalid_certs = accept;
        self
    }

    /// Adds a URL to reconnect to when the one in use fails (repeatable; checked by
    /// [`EventSourceBuilder::build`] like the main URL), for several hubs that serve the same
    /// stream, e.g. herald hubs sharing one Redis store, where event ids are global and a
    /// `Last-Event-ID` resumes on any of them.
    ///
    /// The rule: the first connection goes to the main URL; **every reconnection** (after a
    /// failed attempt, a retried status, or a stream that ended or broke) goes to the next URL of
    /// the list `[main, fallback 1, fallback 2, ...]`, wrapping around to the main URL after the
    /// last. The source carries its last event id and its current delay over: the
    /// [`RetryPolicy`]'s backoff and its [`RetryPolicy::max_retries`] count failed attempts in a
    /// row across the whole list, not per URL. A redirect followed within one attempt is not a
    /// move. A fatal error (a status that is not retried, a wrong content type) ends the source
    /// without trying the other URLs: the hubs answer alike, so the next would fail the same way.
    pub fn fallback_url(mut self, url: impl AsRef<str>) -> Self {
        self.fallback_urls.push(url.as_ref().to_owned());
        self
    }

    /// Adds a header sent with every request, e.g. `Authorization: Bearer ...` (which a browser's
    /// EventSource cannot send). Checked by [`EventSourceBuilder::build`]. `Accept`,
    /// `Cache-Control` and `Last-Event-ID` are the source's own and are refused.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// The last event id to send with the first request, to resume a stream seen before.
    pub fn last_event_id(mut self, id: impl Into<String>) -> Self {
        self.last_event_id = Some(id.into());
        self
    }

    /// When and how often to reconnect (default: [`RetryPolicy::default`]).
    pub fn retry_policy(mut self, policy: RetryPolicy) -> Self {
        self.retry = policy;
        self
    }

    /// Treat a connection as lost when no byte (not even a comment used as heartbeat) arrived for
    /// this long, also while waiting for the response head. Off by default, as in browsers; set it
    /// a little above the server's heartbeat interval (herald's: 15 s).
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = Some(timeout);
        self
    }

    /// The largest event kept, in bytes (default [`Parser::DEFAULT_MAX_EVENT_SIZE`]); a larger one
    /// is dropped and reported as an [`Error::is_event_too_large`] item.
    pub fn max_event_size(mut self, bytes: usize) -> Self {
        self.max_event_size = bytes;
        self
    }

    /// Checks the configuration and returns the source. Nothing is sent before the stream is
    /// first polled. Must be called within a Tokio runtime only when polled; building is sync.
    pub fn build(self) -> Result<EventSource, Error> {
        let urls = std::iter::once(&self.url)
            .chain(&self.fallback_urls)
            .map(|raw| parse_url(raw))
            .collect::<Result<Vec<_>, _>>()?;
        let mut headers = HeaderMap::new();
        for (name, value) in &self.headers {
            let name = HeaderName::from_bytes(name.as_bytes())
                .map_err(|_| Error::builder(format!("invalid header name `{name}`")))?;
            if name == header::ACCEPT
                || name == header::CACHE_CONTROL
                || name.as_str() == "last-event-id"
            {
                return Err(Error::builder(format!(
                    "header `{name}` is set by the event source itself"
                )));
            }
            let value = HeaderValue::from_str(value)
                .map_err(|_| Error::builder(format!("invalid value for header `{name}`")))?;
            headers.append(name, value);
        }
        headers.insert(
            header::ACCEPT,
            HeaderValue::from_static("text/event-stream"),
        );
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));

        #[allow(unused_mut)] // without `rustls` there is nothing more to configure
        let mut client = reqwest::Client::builder()
            // An event stream is long-lived and reconnects are seconds apart: a pool buys
            // nothing, and a fresh connection per attempt is what the spec's model assumes.
            .pool_max_idle_per_host(0);
        #[cfg(feature = "rustls")]
        {
            if let Some(pem) = &self.root_certificates {
                let certs = reqwest::Certificate::from_pem_bundle(pem)
                    .map_err(|e| Error::builder(format!("root certificates: {e}")))?;
                if certs.is_empty() {
                    return Err(Error::builder(
                        "root certificates: no `BEGIN CERTIFICATE` block in the PEM",
                    ));
                }
                client = client.tls_certs_only(certs);
            }
            client = client.tls_danger_accept_invalid_certs(self.accept_invalid_certs);
        }
        let client = client
            .build()
            .map_err(|e| Error::builder(format!("HTTP client: {e}")))?;

        let mut parser = Parser::new().with_max_event_size(self.max_event_size);
        if let Some(id) = self.last_event_id {
            parser = parser.with_last_event_id(id);
        }
        let (closed, closed_rx) = watch::channel(false);
        let shared = Arc::new(Shared {
            ready_state: AtomicU8::new(ReadyState::Connecting as u8),
            closed,
        });
        let driver = Driver {
            client,
            urls,
            current: 0,
            headers,
            policy: self.retry,
            idle_timeout: self.idle_timeout,
            parser,
            failures: 0,
            state: State::Connecting,
            shared: shared.clone(),
        };
        let inner = futures_util::stream::unfold(
            (driver, closed_rx),
            |(mut driver, mut closed)| async move {
                let item = tokio::select! {
                    biased;
                    _ = closed.wait_for(|closed| *closed) => None,
                    item = driver.next() => item,
                };
                item.map(|item| (item, (driver, closed)))
            },
        )
        .boxed();
        Ok(EventSource {
            shared,
            inner: Some(inner),
        })
    }
}

/// The states of the reconnect loop.
///
/// | state | on | next |
/// |---|---|---|
/// | `Connecting` | 200 + `text/event-stream` | `Open` (yields [`Event::Open`]) |
/// | `Connecting` | 204 | `Closed` (the stream ends) |
/// | `Connecting` | network error, idle timeout, retried status | `Waiting` (yields the error), or `Closed` when retries ran out |
/// | `Connecting` | other status, wrong content type | `Closed` (yields a fatal error) |
/// | `Open` | bytes | `Open` (yields the events they complete) |
/// | `Open` | end of body | `Waiting` for the reconnection time |
/// | `Open` | body error, idle timeout | `Waiting` (yields the error) |
/// | `Waiting` | the delay passed | `Connecting`, to the next URL of the list (cyclically) |
///
/// `close()` takes any state to `Closed` at once (outside the driver, see [`EventSource`]).
enum State {
    Connecting,
    Open(BoxStream<'static, reqwest::Result<Bytes>>),
    Waiting(Duration),
    Closed,
}

/// Owns the protocol state for the life of the source: one parser (last event id, reconnection
/// time), the failure count and the current [`State`].
struct Driver {
    client: reqwest::Client,
    /// Where to connect: the main URL, then the fallbacks; never empty.
    urls: Vec<Url>,
    /// The index in `urls` of the URL in use; each reconnection moves it on by one, cyclically.
    current: usize,
    headers: HeaderMap,
    policy: RetryPolicy,
    idle_timeout: Option<Duration>,
    parser: Parser,
    /// Failed attempts in a row since the last stream opened.
    failures: u32,
    state: State,
    shared: Arc<Shared>,
}

/// How a connection attempt ended.
enum Attempt {
    Opened(reqwest::Response),
    NoContent,
    /// Worth retrying; at least this delay when the server said so.
    Retry(Error, Option<Duration>),
    Fatal(Error),
}

impl Driver {
    /// Runs the state machine up to its next item.
    async fn next(&mut self) -> Option<Result<Event, Error>> {
        loop {
            match std::mem::replace(&mut self.state, State::Closed) {
                State::Closed => {
                    self.shared.set(ReadyState::Closed);
                    return None;
                }
                State::Connecting => {
                    self.shared.set(ReadyState::Connecting);
                    match self.connect().await {
                        Attempt::Opened(response) => {
                            self.failures = 0;
                            self.state = State::Open(response.bytes_stream().boxed());
                            self.shared.set(ReadyState::Open);
                            return Some(Ok(Event::Open));
                        }
                        Attempt::NoContent => return None,
                        // No failover on a fatal answer: hubs sharing a store share their
                        // configuration, so a 401, a 404 or a wrong content type from one is
                        // the same from all, and trying them would only hide the cause.
                        Attempt::Fatal(error) => return Some(Err(error.into_fatal())),
                        Attempt::Retry(error, retry_after) => {
                            self.failures = self.failures.saturating_add(1);
                            if !self.policy.may_retry(self.failures) {
                                return Some(Err(error.into_fatal()));
                            }
                            let delay = self.policy.delay(
                                self.reconnection_time(),
                                self.failures,
                                retry_after,
                            );
                            tracing::debug!(
                                ?delay,
                                %error,
                                url = %redact_url(self.urls[self.current].as_str()),
                                "reconnecting after a failed attempt"
                            );
                            self.state = State::Waiting(delay);
                            return Some(Err(error));
                        }
                    }
                }
                State::Waiting(delay) => {
                    self.shared.set(ReadyState::Connecting);
                    tokio::time::sleep(delay).await;
                    // Every reconnection, and only a reconnection, moves to the next URL: the one
                    // place that decides it, so the rule stays what the builder's docs say.
                    self.current = (self.current + 1) % self.urls.len();
                    if self.urls.len() > 1 {
                        tracing::debug!(url = %redact_url(self.urls[self.current].as_str()), "reconnecting to the next URL");
                    }
                    self.state = State::Connecting;
                }
                State::Open(mut body) => {
                    // Pull what the bytes fed so far complete before reading more.
                    if let Some(parsed) = self.parser.next_event() {
                        self.state = State::Open(body);
                        return Some(match parsed {
                            Ok(event) => Ok(Event::Message(event)),
                            Err(error) => Err(Error::new(Kind::EventTooLarge(error))),
                        });
                    }
                    let chunk = match self.idle_timeout {
                        Some(idle) => match tokio::time::timeout(idle, body.next()).await {
                            Ok(chunk) => chunk,
                            Err(_) => {
                                self.reconnect_after_stream();
                                return Some(Err(Error::new(Kind::IdleTimeout(idle))));
                            }
                        },
                        None => body.next().await,
                    };
                    match chunk {
                        Some(Ok(bytes)) => {
                            self.parser.feed(&bytes);
                            self.state = State::Open(body);
                        }
                        None => self.reconnect_after_stream(),
                        Some(Err(error)) => {
                            self.reconnect_after_stream();
                            return Some(Err(Error::new(Kind::Body(redacted(error)))));
                        }
                    }
                }
            }
        }
    }

    /// The reconnection time: the server's last `retry:`, else the policy's.
    fn reconnection_time(&self) -> Duration {
        self.parser
            .reconnection_time()
            .map_or(self.policy.reconnection_time, Duration::from_millis)
    }

    /// An open stream ended: drop its unfinished event and wait the reconnection time.
    fn reconnect_after_stream(&mut self) {
        self.parser.finish();
        let delay = self.policy.delay(self.reconnection_time(), 0, None);
        tracing::debug!(
            ?delay,
            url = %redact_url(self.urls[self.current].as_str()),
            "stream ended, reconnecting"
        );
        self.state = State::Waiting(delay);
        self.shared.set(ReadyState::Connecting);
    }

    /// One request, up to the response head, judged by the spec's rules.
    async fn connect(&mut self) -> Attempt {
        let mut request = self
            .client
            .get(self.urls[self.current].clone())
            .headers(self.headers.clone());
        let last_event_id = self.parser.last_event_id();
        if !last_event_id.is_empty() {
            // Ids come from the server and may hold bytes a header cannot carry (controls other
            // than CR, LF and NUL, which the parser never stores); such an id is not sent.
            match HeaderValue::from_str(last_event_id) {
                Ok(value) => request = request.header("last-event-id", value),
                Err(_) => tracing::warn!("last event id not sendable as a header; not sent"),
            }
        }
        let send = request.send();
        let sent = match self.idle_timeout {
            Some(idle) => match tokio::time::timeout(idle, send).await {
                Ok(sent) => sent,
                Err(_) => return Attempt::Retry(Error::new(Kind::IdleTimeout(idle)), None),
            },
            None => send.await,
        };
        let response = match sent {
            Ok(response) => response,
            Err(error) => {
                // A TLS failure repeats on every attempt: stop and say why, instead of
                // reconnecting forever.
                if let Some(problem) = tls_problem(&error, self.urls[self.current].scheme()) {
                    return Attempt::Fatal(Error::new(Kind::Tls(problem, redacted(error))));
                }
                return Attempt::Retry(Error::new(Kind::Connect(redacted(error))), None);
            }
        };
        let status = response.status();
        if status == StatusCode::NO_CONTENT {
            return Attempt::NoContent;
        }
        if status != StatusCode::OK {
            let retry_after = response
                .headers()
                .get(header::RETRY_AFTER)
                .and_then(parse_retry_after);
            let message = reason(response, self.idle_timeout).await;
            let error = Error::new(Kind::Status {
                status,
                retry_after,
                message,
            });
            let retryable = status.is_server_error() || status == StatusCode::TOO_MANY_REQUESTS;
            return if retryable && self.policy.retry_server_errors {
                Attempt::Retry(error, retry_after)
            } else {
                Attempt::Fatal(error)
            };
        }
        let content_type = response.headers().get(header::CONTENT_TYPE);
        if !content_type.is_some_and(is_event_stream) {
            let shown = content_type
                .and_then(|v| v.to_str().ok())
                .map(str::to_owned);
            return Attempt::Fatal(Error::new(Kind::ContentType(shown)));
        }
        Attempt::Opened(response)
    }
}

/// A URL the source can connect to: `http`, or `https` with the `rustls` feature. Errors name
/// the URL, since a builder may hold several.
/// The URL in them is redacted (see [`redact_url`]): it may carry a password or a token.
fn parse_url(raw: &str) -> Result<Url, Error> {
    let url = Url::parse(raw)
        .map_err(|e| Error::builder(format!("invalid URL `{}`: {e}", redact_url(raw))))?;
    let raw = redact_url(raw);
    match url.scheme() {
        "http" => Ok(url),
        "https" if cfg!(feature = "rustls") => Ok(url),
        "https" => Err(Error::builder(format!(
            "`{raw}`: https needs herald-client's `rustls` feature, which this build lacks"
        ))),
        other => Err(Error::builder(format!(
            "unsupported URL scheme `{other}` in `{raw}`"
        ))),
    }
}

/// `error` with the URL it quotes redacted (see [`redact_url`]): a user prints it, and the URL may
/// carry an `access_token`.
fn redacted(error: reqwest::Error) -> reqwest::Error {
    match error.url().map(|url| Url::parse(&redact_url(url.as_str()))) {
        Some(Ok(shown)) => error.with_url(shown),
        Some(Err(_)) => error.without_url(),
        None => error,
    }
}

/// The most of an error body read for its reason: 4 KiB, far above a hub's JSON error.
const MAX_REASON_BYTES: usize = 4 * 1024;

/// The longest wait for an error body (unless the idle timeout is shorter): 2 s, since a hub
/// sends its error at once with the status, and a body that trickles must not hold up the exit.
const MAX_REASON_WAIT: Duration = Duration::from_secs(2);

/// The reason an error answer gives in its body (see [`Error::message`]), read within
/// [`MAX_REASON_WAIT`] and [`MAX_REASON_BYTES`].
async fn reason(response: reqwest::Response, idle: Option<Duration>) -> Option<String> {
    let is_text = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| {
            let essence = v.split(';').next().unwrap_or_default().trim();
            essence.eq_ignore_ascii_case("text/plain")
        });
    let wait = idle.map_or(MAX_REASON_WAIT, |idle| idle.min(MAX_REASON_WAIT));
    let mut body = Vec::new();
    let mut chunks = response.bytes_stream();
    let _ = tokio::time::timeout(wait, async {
        while let Some(Ok(chunk)) = chunks.next().await {
            let room = MAX_REASON_BYTES - body.len();
            body.extend_from_slice(&chunk[..chunk.len().min(room)]);
            if body.len() == MAX_REASON_BYTES {
                break;
            }
        }
    })
    .await;
    reason_of(&body, is_text)
}

/// The `error` field of a JSON body, else (for `text/plain`) the first line, made printable.
fn reason_of(body: &[u8], is_text: bool) -> Option<String> {
    let text = String::from_utf8_lossy(body);
    let raw = match serde_json::from_str::<serde_json::Value>(&text) {
        Ok(serde_json::Value::Object(map)) => match map.get("error") {
            Some(serde_json::Value::String(error)) => error.clone(),
            _ => return None,
        },
        _ if is_text => text.lines().find(|l| !l.trim().is_empty())?.to_owned(),
        _ => return None,
    };
    // Printed on a terminal: a control character could move the cursor or change colours.
    let mut shown: String = raw
        .trim()
        .chars()
        .map(|c| if c.is_control() { '\u{fffd}' } else { c })
        .take(Error::MAX_MESSAGE_CHARS)
        .collect();
    if raw.trim().chars().count() > Error::MAX_MESSAGE_CHARS {
        shown.push_str("...");
    }
    (!shown.is_empty()).then_some(shown)
}

/// Which TLS failure `error` is, if it is one: found by walking its causes, where rustls's
/// error sits (inside an `io::Error`, whose `source()` skips it), or hyper's parse error when
/// an `http://` URL got TLS bytes back.
fn tls_problem(error: &reqwest::Error, scheme: &str) -> Option<TlsProblem> {
    let mut cause: Option<&(dyn std::error::Error + 'static)> = Some(error);
    while let Some(current) = cause {
        #[cfg(feature = "rustls")]
        {
            let tls = find_rustls(current);
            match tls {
                Some(
                    rustls::Error::InvalidCertificate(_)
                    | rustls::Error::NoCertificatesPresented
                    | rustls::Error::UnsupportedNameType,
                ) => return Some(TlsProblem::Certificate),
                Some(rustls::Error::InvalidMessage(_)) if scheme == "https" => {
                    return Some(TlsProblem::NotTls);
                }
                _ => {}
            }
        }
        // Bytes that do not even start like an HTTP status line (a TLS alert, an SSH banner):
        // not an HTTP server, which retrying will not change. A status line or head that is
        // merely malformed (a bad code, a head too large) is an HTTP server's passing fault,
        // and is retried like any failed connection.
        if scheme == "http"
            && current
                .downcast_ref::<hyper::Error>()
                .is_some_and(|e| e.is_parse() && !e.is_parse_status() && !is_head_too_large(e))
        {
            return Some(TlsProblem::PlainToTls);
        }
        cause = current.source();
    }
    None
}

/// Whether hyper refused a response head for its size. hyper's own predicate for this
/// (`is_parse_too_large`) exists only with its `server` feature, which the client does not build,
/// so its message (stable across hyper 1.x) is read instead.
fn is_head_too_large(e: &hyper::Error) -> bool {
    e.to_string().contains("too large")
}

/// The rustls error inside `error`: itself, inside an `io::Error` (whose `source()` skips its
/// inner error), at any depth of wrapping.
#[cfg(feature = "rustls")]
fn find_rustls<'a>(error: &'a (dyn std::error::Error + 'static)) -> Option<&'a rustls::Error> {
    if let Some(tls) = error.downcast_ref::<rustls::Error>() {
        return Some(tls);
    }
    if let Some(inner) = error
        .downcast_ref::<std::io::Error>()
        .and_then(|io| io.get_ref())
    {
        return find_rustls(inner);
    }
    None
}

/// Whether a `Content-Type` is `text/event-stream`, parameters (such as `charset`) allowed.
fn is_event_stream(value: &HeaderValue) -> bool {
    let Ok(value) = value.to_str() else {
        return false;
    };
    let essence = value.split(';').next().unwrap_or_default().trim();
    essence.eq_ignore_ascii_case("text/event-stream")
}

/// `Retry-After`: delay-seconds or an HTTP date.
fn parse_retry_after(value: &HeaderValue) -> Option<Duration> {
    let value = value.to_str().ok()?.trim();
    if let Ok(seconds) = value.parse::<u64>() {
        return Some(Duration::from_secs(seconds));
    }
    let at = httpdate::parse_http_date(value).ok()?;
    Some(
        at.duration_since(std::time::SystemTime::now())
            .unwrap_or_default(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_type_essence_is_matched_case_insensitively_with_parameters() {
        for ok in [
            "text/event-stream",
            "Text/Event-Stream",
            "text/event-stream; charset=utf-8",
            " text/event-stream ;charset=UTF-8",
        ] {
            assert!(is_event_stream(&HeaderValue::from_static(ok)), "{ok}");
        }
        for bad in [
            "text/plain",
            "text/event-streams",
            "text/event",
            "",
            "application/json; x=text/event-stream",
        ] {
            assert!(!is_event_stream(&HeaderValue::from_static(bad)), "{bad}");
        }
    }

    #[test]
    fn retry_after_takes_seconds_and_dates_and_ignores_garbage() {
        let parse = |s: &'static str| parse_retry_after(&HeaderValue::from_static(s));
        assert_eq!(parse("120"), Some(Duration::from_secs(120)));
        assert_eq!(parse(" 5 "), Some(Duration::from_secs(5)));
        assert_eq!(parse("Thu, 01 Jan 1970 00:00:00 GMT"), Some(Duration::ZERO));
        assert_eq!(parse("-1"), None);
        assert_eq!(parse("soon"), None);
        assert_eq!(parse("99999999999999999999999"), None);
    }

    #[test]
    fn builder_refuses_bad_urls_and_headers() {
        let cases = [
            EventSource::builder("not a url").build(),
            EventSource::builder("ftp://x/").build(),
            EventSource::builder("http://x/")
                .fallback_url("not a url")
                .build(),
            EventSource::builder("http://x/")
                .header("bad name", "v")
                .build(),
            EventSource::builder("http://x/")
                .header("x-a", "a\r\nb")
                .build(),
            EventSource::builder("http://x/")
                .header("Accept", "x")
                .build(),
            EventSource::builder("http://x/")
                .header("Last-Event-ID", "1")
                .build(),
        ];
        for case in cases {
            let error = case.expect_err("refused");
            assert!(error.is_builder() && error.is_fatal(), "{error}");
        }
    }

    #[test]
    fn https_is_accepted_exactly_when_tls_is_compiled_in() {
        let built = EventSource::builder("https://example.invalid/events").build();
        assert_eq!(built.is_ok(), cfg!(feature = "rustls"));
        let fallback = EventSource::builder("http://example.invalid/events")
            .fallback_url("https://example.invalid/events")
            .build();
        assert_eq!(fallback.is_ok(), cfg!(feature = "rustls"));
    }
}

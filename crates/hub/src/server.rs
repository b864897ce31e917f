//! [`serve`]: a hub on a listener, with bounded per-connection buffers, a write-stall timeout
//! and a graceful shutdown that open SSE streams cannot hang.
//!
//! Transports: on plain TCP, HTTP/1.1 and HTTP/2 with prior knowledge (h2c, told apart by the
//! HTTP/2 preface); with [`crate::HubConfig::tls`], TLS with ALPN `h2` and `http/1.1`. A first
//! plain HTTP/1 `GET /events` is served directly on the socket ([`stream_events`]); everything
//! else goes through hyper.
//!
//! Bounds on connections that never finish a request (each a [`crate::HubConfig`] field):
//! a first request head within `header_read_timeout` of the accept (one deadline, whether the
//! head is read here or by hyper, TLS handshake included); no request in flight for
//! `idle_timeout` closes the connection (HTTP/1.1 keep-alive, HTTP/2 with no open stream); at
//! most `max_connections_per_client` connections per address. A failing `accept` (out of file
//! descriptors) is retried with a bounded exponential backoff, logged once per burst.

mod tls;

pub use tls::{TlsConfig, TlsError};

use std::collections::HashMap;
use std::future::Future;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll, ready};
use std::time::Duration;

use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderName, HeaderValue, Request};
use bytes::{Bytes, BytesMut};
use futures_util::{FutureExt as _, StreamExt as _};
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncReadExt as _, AsyncWrite, AsyncWriteExt as _, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, Semaphore, watch};
use tokio::time::{Instant, Sleep};
use tower_http::add_extension::AddExtension;

use crate::Hub;
use crate::metrics::Metrics;

/// Cap of hyper's per-connection buffers, hence of a request head (request line and headers):
/// room for a long topic list and cookies, while hyper still starts every connection at its 8 KiB
/// minimum. A publish body is not held whole here: it is read up to its own limit.
const MAX_CONNECTION_BUF: usize = 16 * 1024;
/// Most concurrent HTTP/2 streams per connection: far more than the SSE streams and publishes of
/// one page, while one connection (one permit of `max_connections`) cannot hold thousands.
const MAX_H2_STREAMS: u32 = 256;
/// Most bytes hyper queues per HTTP/2 stream before a write waits (hyper's default is 400 KiB):
/// an SSE stream already bounds its unsent bytes in the hub (`max_unsent_bytes`).
const MAX_H2_SEND_BUF: usize = 64 * 1024;

/// The first wait after a failed `accept`; each further failure in a row doubles it.
const MIN_ACCEPT_BACKOFF: Duration = Duration::from_millis(5);
/// The longest wait between `accept` attempts while they fail: a hub out of file descriptors
/// answers again within a second of some being freed, and retries at most once a second.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// How long an idle connection being closed may take to finish: HTTP/2 sends GOAWAY, then waits
/// for a PING round trip before closing; a client that never answers is cut after this.
const MAX_IDLE_CLOSE_GRACE: Duration = Duration::from_secs(1);

/// Serves `hub` on `listener` until `shutdown` resolves, then: stops accepting, ends every open
/// stream with a jittered `retry:`, waits up to [`crate::HubConfig::drain_timeout`] for
/// connections to finish, and closes the log.
pub async fn serve(
    listener: TcpListener,
    hub: Hub,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let router = hub.router();
    let metrics = hub.shared.metrics.clone();
    let write_timeout = hub.config().write_timeout;
    let drain_timeout = hub.config().drain_timeout;
    let tls = hub.config().tls.clone();
    let timeouts = Timeouts {
        header: hub.config().header_read_timeout,
        idle: hub.config().idle_timeout,
    };
    let per_client = Arc::new(ClientConnections::new(
        hub.config().max_connections_per_client,
    ));
    // Every connection holds a receiver: `closed()` on the sender resolves once all are gone.
    let (signal, watcher) = watch::channel(false);
    // A permit per connection (mini-redis style): past the cap, a connection gets a 503.
    let permits = Arc::new(Semaphore::new(hub.config().max_connections));
    let refusals = Arc::new(Semaphore::new(MAX_PENDING_REFUSALS));
    // `accept` failures in a row: the backoff grows with them, and only the first is logged.
    let mut failures: u32 = 0;
    tokio::pin!(shutdown);
    loop {
        let accepted = tokio::select! {
            accepted = listener.accept() => accepted,
            () = &mut shutdown => break,
        };
        let (stream, peer) = match accepted {
            Ok(conn) => {
                if failures > 0 {
                    tracing::info!(failures, "accepting connections again");
                    failures = 0;
                }
                conn
            }
            Err(err) => {
                // Out of file descriptors and the like: the pending connection stays queued, so
                // retrying at once would spin; wait longer after each failure instead.
                if failures == 0 {
                    tracing::warn!(
                        %err,
                        "accept failed; retrying with backoff until it succeeds (out of file descriptors? raise `ulimit -n` or lower --max-connections)"
                    );
                }
                failures = failures.saturating_add(1);
                let delay = MIN_ACCEPT_BACKOFF
                    .saturating_mul(1 << (failures - 1).min(16))
                    .min(MAX_ACCEPT_BACKOFF);
                tokio::select! {
                    () = tokio::time::sleep(delay) => continue,
                    () = &mut shutdown => break,
                }
            }
        };
        let refusal = match per_client.acquire(peer.ip()) {
            Some(client) => match permits.clone().try_acquire_owned() {
                Ok(permit) => Ok((permit, client)),
                Err(_) => Err(Refusal::Busy),
            },
            None => Err(Refusal::PerClient(per_client.max)),
        };
        let (permit, client) = match refusal {
            Ok(held) => held,
            Err(refusal) => {
                // Past that many answers in flight, close at once: a flood cannot pile up tasks.
                if let Ok(slot) = refusals.clone().try_acquire_owned() {
                    tokio::spawn(async move {
                        refuse_busy(stream, refusal).await;
                        drop(slot);
                    });
                }
                continue;
            }
        };
        let _ = stream.set_nodelay(true);
        // The client address, for the per-client limits (read as axum's `ConnectInfo`).
        let service =
            TowerToHyperService::new(AddExtension::new(router.clone(), ConnectInfo(peer)));
        let watcher = watcher.clone();
        let metrics = metrics.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            Metrics::inc(&metrics.connections);
            match tls {
                Some(tls) => {
                    // Boxed, like hyper below: see `connection`.
                    Box::pin(tls_connection(
                        stream,
                        &tls,
                        service,
                        write_timeout,
                        timeouts,
                        &metrics,
                        watcher,
                    ))
                    .await;
                }
                None => {
                    connection(stream, service, write_timeout, timeouts, &metrics, watcher).await;
                }
            }
            Metrics::dec(&metrics.connections);
            drop(client);
            drop(permit);
        });
    }
    drop(listener);
    tracing::info!("shutting down: ending streams and draining connections");
    hub.close_streams();
    let _ = signal.send(true);
    drop(watcher);
    if tokio::time::timeout(drain_timeout, signal.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            ?drain_timeout,
            "connections still open after the drain timeout"
        );
    }
    hub.close_log()
        .await
        .map_err(|err| io::Error::other(err.to_string()))
}

type Service = TowerToHyperService<AddExtension<axum::Router, ConnectInfo<SocketAddr>>>;

/// Most 503 answers to connections past the cap in flight at once (each lives at most twice
/// [`BUSY_READ_TIMEOUT`]); beyond, such connections are closed without an answer.
const MAX_PENDING_REFUSALS: usize = 1024;
/// How long a connection past the cap may take to send its request head before its 503.
const BUSY_READ_TIMEOUT: Duration = Duration::from_secs(1);

/// Why a new connection is refused before it is served.
#[derive(Clone, Copy, Debug)]
enum Refusal {
    /// [`crate::HubConfig::max_connections`] are open: 503.
    Busy,
    /// This many are open from the client's address
    /// ([`crate::HubConfig::max_connections_per_client`]): 429.
    PerClient(usize),
}

/// Answers a connection past [`crate::HubConfig::max_connections`] with a 503 (past
/// [`crate::HubConfig::max_connections_per_client`], a 429) and closes it.
/// The request head is read first (briefly, into a small buffer) so that closing does not reset
/// the connection before the client reads the answer.
async fn refuse_busy(mut stream: TcpStream, refusal: Refusal) {
    let mut buf = [0u8; 1024];
    let _ = tokio::time::timeout(BUSY_READ_TIMEOUT, stream.read(&mut buf)).await;
    let (status, body) = match refusal {
        Refusal::Busy => (
            "503 Service Unavailable",
            r#"{"error":"the hub is at its connection limit: try again shortly"}"#.to_owned(),
        ),
        Refusal::PerClient(max) => (
            "429 Too Many Requests",
            format!(
                r#"{{"error":"too many connections from this address (at most {max}): close one first"}}"#
            ),
        ),
    };
    let answer = format!(
        "HTTP/1.1 {status}\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    let _ = tokio::time::timeout(BUSY_READ_TIMEOUT, async {
        let _ = stream.write_all(answer.as_bytes()).await;
        let _ = stream.shutdown().await;
    })
    .await;
}

/// One connection. A first request `GET /events` on a fresh connection is served here directly
/// on the socket (see [`stream_events`]); anything else goes to hyper, with the bytes already read
/// replayed in front.
async fn connection(
    mut stream: TcpStream,
    service: Service,
    write_timeout: Duration,
    timeouts: Timeouts,
    metrics: &Arc<Metrics>,
    watcher: watch::Receiver<bool>,
) {
    // One deadline for the first request head, here and then in hyper (not one each).
    let deadline = Instant::now() + timeouts.header;
    let first = match tokio::time::timeout_at(deadline, read_first(&mut stream)).await {
        Ok(Ok(first)) => first,
        // No complete request head in time, or the socket failed: nothing to answer.
        Ok(Err(_)) | Err(_) => return,
    };
    let prefix = match first {
        First::Events(request) => {
            return stream_events(stream, &service, request, write_timeout, metrics).await;
        }
        First::Other(prefix) => prefix,
    };
    let io = Rewind {
        prefix,
        inner: StallGuard::new(stream, write_timeout, metrics.clone()),
    };
    // Boxed: a task is allocated at the size of its largest state, and hyper's connection state
    // (HTTP/1 and HTTP/2) is several KiB. Inline, every direct SSE stream would carry that
    // unused room for its whole life.
    Box::pin(serve_hyper(io, service, watcher, deadline, timeouts)).await;
}

/// One TLS connection: the handshake, then hyper with HTTP/2 or HTTP/1.1 (the handshake and the
/// first request head within one `header_read_timeout`). The stall guard sits under TLS, on the
/// socket, where a client that stops reading shows.
async fn tls_connection(
    stream: TcpStream,
    tls: &TlsConfig,
    service: Service,
    write_timeout: Duration,
    timeouts: Timeouts,
    metrics: &Arc<Metrics>,
    watcher: watch::Receiver<bool>,
) {
    let deadline = Instant::now() + timeouts.header;
    let guarded = StallGuard::new(stream, write_timeout, metrics.clone());
    let stream = match tokio::time::timeout_at(deadline, tls.acceptor().accept(guarded)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(err)) => {
            // Plain HTTP on the TLS port, a client that does not trust the certificate, ...
            tracing::debug!(%err, "TLS handshake failed");
            return;
        }
        Err(_) => return,
    };
    serve_hyper(stream, service, watcher, deadline, timeouts).await;
}

/// Serves `io` with hyper, HTTP/1.1 or HTTP/2 (told apart by the HTTP/2 preface), until the
/// client is done or shutdown is signalled; then in-flight responses finish (streams were just
/// told to end) and HTTP/2 sends GOAWAY.
///
/// Idle connections are closed here, as hyper has no such timer: with no request in flight, a
/// connection whose first request head is not in by `first_deadline`, or that stayed without a
/// request for `timeouts.idle` (since it opened or since its last response ended), is closed.
/// HTTP/1.1 keep-alive and HTTP/2 alike: PING and SETTINGS frames are not requests.
async fn serve_hyper<I>(
    io: I,
    service: Service,
    mut watcher: watch::Receiver<bool>,
    first_deadline: Instant,
    timeouts: Timeouts,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        // For later requests on the connection (the first one is bounded by `first_deadline`).
        .header_read_timeout(timeouts.header)
        .max_buf_size(MAX_CONNECTION_BUF);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(MAX_H2_STREAMS)
        .max_send_buf_size(MAX_H2_SEND_BUF)
        .max_header_list_size(MAX_CONNECTION_BUF as u32);
    let activity = Arc::new(Activity::default());
    let service = Tracked {
        inner: service,
        activity: activity.clone(),
    };
    let conn = builder.serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut idle_since = Instant::now();
    loop {
        // Taken before reading the count: a change after the read still wakes this loop.
        let changed = activity.changed.notified();
        let idle_until = match activity.in_flight.load(Ordering::Acquire) {
            0 if activity.seen.load(Ordering::Acquire) => Some(idle_since + timeouts.idle),
            0 => Some(first_deadline.min(idle_since + timeouts.idle)),
            _ => None,
        };
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(err) = result {
                    tracing::debug!(%err, "connection ended with an error");
                }
                return;
            }
            () = async { let _ = watcher.wait_for(|stop| *stop).await; } => {
                // Finish the response in flight (streams were just told to end), then close.
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
                return;
            }
            () = changed => {
                idle_since = Instant::now();
            }
            () = tokio::time::sleep_until(idle_until.unwrap_or(first_deadline)),
                if idle_until.is_some() =>
            {
                if !activity.seen.load(Ordering::Acquire) {
                    // Not one complete request: nothing to finish, nothing to answer.
                    tracing::debug!("closing a connection that sent no request in time");
                    return;
                }
                tracing::debug!("closing an idle connection");
                // HTTP/2: GOAWAY, then close; HTTP/1.1 between requests: close.
                conn.as_mut().graceful_shutdown();
                let _ = tokio::time::timeout(MAX_IDLE_CLOSE_GRACE, conn).await;
                return;
            }
        }
    }
}

/// The connection timeouts of [`serve`], from [`crate::HubConfig`].
#[derive(Clone, Copy, Debug)]
struct Timeouts {
    /// [`crate::HubConfig::header_read_timeout`].
    header: Duration,
    /// [`crate::HubConfig::idle_timeout`].
    idle: Duration,
}

/// Open connections per client address (IPv6: per /64, as [`crate::limits::client_key`]). An
/// entry exists only while its count is above zero. A std `Mutex`: held for one map update, never
/// across an await.
struct ClientConnections {
    max: usize,
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ClientConnections {
    fn new(max: usize) -> Self {
        Self {
            max,
            open: Mutex::default(),
        }
    }

    /// Counts one more connection from `ip`, or `None` at the cap.
    fn acquire(self: &Arc<Self>, ip: IpAddr) -> Option<ClientConnection> {
        let key = crate::limits::client_key(ip);
        // Plain counters: a panic while holding the lock cannot leave them inconsistent.
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let n = open.entry(key).or_insert(0);
        if *n >= self.max {
            if *n == 0 {
                open.remove(&key);
            }
            return None;
        }
        *n += 1;
        Some(ClientConnection {
            table: self.clone(),
            key,
        })
    }
}

/// One counted connection of [`ClientConnections`]; uncounted on drop.
struct ClientConnection {
    table: Arc<ClientConnections>,
    key: IpAddr,
}

impl Drop for ClientConnection {
    fn drop(&mut self) {
        let mut open = self.table.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = open.get_mut(&self.key) {
            *n -= 1;
            if *n == 0 {
                open.remove(&self.key);
            }
        }
    }
}

/// What the idle timer of [`serve_hyper`] watches on one connection.
#[derive(Default)]
struct Activity {
    /// Requests whose response has not ended yet (an open SSE stream is one).
    in_flight: AtomicUsize,
    /// Whether a request head ever arrived complete.
    seen: AtomicBool,
    /// Notified when `in_flight` changes.
    changed: Notify,
}

/// One request in flight of an [`Activity`]; ends when the response body is dropped (sent
/// whole, or the stream reset).
struct InFlight(Arc<Activity>);

impl InFlight {
    fn new(activity: Arc<Activity>) -> Self {
        activity.seen.store(true, Ordering::Release);
        activity.in_flight.fetch_add(1, Ordering::AcqRel);
        activity.changed.notify_one();
        Self(activity)
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.in_flight.fetch_sub(1, Ordering::AcqRel);
        self.0.changed.notify_one();
    }
}

/// The hub's service, counting requests in flight for the idle timer.
struct Tracked {
    inner: Service,
    activity: Arc<Activity>,
}

impl hyper::service::Service<Request<hyper::body::Incoming>> for Tracked {
    type Response = axum::response::Response;
    type Error = std::convert::Infallible;
    // Boxed: the router's future has no name to write here; one allocation per request on the
    // hyper path (the direct SSE path does not come here).
    type Future = Pin<Box<dyn Future<Output = Result<Self::Response, Self::Error>> + Send>>;

    fn call(&self, request: Request<hyper::body::Incoming>) -> Self::Future {
        let in_flight = InFlight::new(self.activity.clone());
        let response = self.inner.call(request);
        Box::pin(async move {
            let response = response.await?;
            Ok(response.map(|body| {
                Body::new(Counted {
                    inner: body,
                    _in_flight: in_flight,
                })
            }))
        })
    }
}

/// A response body that holds its request's [`InFlight`] until it is dropped.
struct Counted {
    inner: Body,
    _in_flight: InFlight,
}

impl axum::body::HttpBody for Counted {
    type Data = Bytes;
    type Error = axum::Error;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<hyper::body::Frame<Bytes>, axum::Error>>> {
        Pin::new(&mut self.inner).poll_frame(cx)
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> hyper::body::SizeHint {
        self.inner.size_hint()
    }
}

/// What the first bytes of a connection are.
enum First {
    /// A complete `GET /events` request head and nothing after it.
    Events(Box<Request<Body>>),
    /// Anything else: the bytes read so far, for hyper.
    Other(Bytes),
}

/// The request line prefix of the requests served directly.
const EVENTS_PREFIX: &[u8] = b"GET /events";
/// Most header lines in a request served directly (more: hyper answers it).
const MAX_HEADERS: usize = 64;

async fn read_first(stream: &mut TcpStream) -> io::Result<First> {
    // Freed before the stream starts: an idle subscriber keeps no read buffer.
    let mut buf = BytesMut::with_capacity(1024);
    loop {
        if stream.read_buf(&mut buf).await? == 0 {
            return Ok(First::Other(buf.freeze())); // let hyper see the end
        }
        let n = buf.len().min(EVENTS_PREFIX.len());
        if buf[..n] != EVENTS_PREFIX[..n] {
            return Ok(First::Other(buf.freeze()));
        }
        match parse_events_request(&buf) {
            Parsed::Events(request) => return Ok(First::Events(request)),
            Parsed::Partial if buf.len() < MAX_CONNECTION_BUF => buf.reserve(1024),
            // Too big, or not for us: hyper answers (431, 400, ...) as for any request.
            Parsed::Partial | Parsed::Other => return Ok(First::Other(buf.freeze())),
        }
    }
}

enum Parsed {
    Events(Box<Request<Body>>),
    Partial,
    Other,
}

/// Parses a complete `GET /events...` head with nothing after it (no body, no pipelining).
fn parse_events_request(buf: &[u8]) -> Parsed {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut req = httparse::Request::new(&mut headers);
    let len = match req.parse(buf) {
        Ok(httparse::Status::Complete(len)) => len,
        Ok(httparse::Status::Partial) => return Parsed::Partial,
        Err(_) => return Parsed::Other,
    };
    let (Some("GET"), Some(path), Some(minor)) = (req.method, req.path, req.version) else {
        return Parsed::Other;
    };
    let is_events = path == "/events" || path.starts_with("/events?");
    if len != buf.len() || !is_events {
        return Parsed::Other;
    }
    let version = if minor == 0 {
        axum::http::Version::HTTP_10
    } else {
        axum::http::Version::HTTP_11
    };
    let mut builder = Request::builder().method("GET").uri(path).version(version);
    for h in req.headers.iter() {
        let name = h.name.as_bytes();
        if name.eq_ignore_ascii_case(b"content-length") && h.value != b"0"
            || name.eq_ignore_ascii_case(b"transfer-encoding")
        {
            return Parsed::Other; // a body on a GET: leave the details to hyper
        }
        let (Ok(name), Ok(value)) = (
            HeaderName::from_bytes(name),
            HeaderValue::from_bytes(h.value),
        ) else {
            return Parsed::Other;
        };
        builder = builder.header(name, value);
    }
    match builder.body(Body::empty()) {
        Ok(request) => Parsed::Events(Box::new(request)),
        Err(_) => Parsed::Other,
    }
}

/// The HTTP/1.1 head of a direct SSE response, `Connection: close` (see [`stream_events`]).
fn response_head(parts: axum::http::response::Parts, body: &Body) -> Box<[u8]> {
    let mut head = Vec::with_capacity(256);
    head.extend_from_slice(b"HTTP/1.1 ");
    head.extend_from_slice(parts.status.as_str().as_bytes());
    head.push(b' ');
    head.extend_from_slice(parts.status.canonical_reason().unwrap_or("").as_bytes());
    head.extend_from_slice(b"\r\n");
    for (name, value) in &parts.headers {
        head.extend_from_slice(name.as_str().as_bytes());
        head.extend_from_slice(b": ");
        head.extend_from_slice(value.as_bytes());
        head.extend_from_slice(b"\r\n");
    }
    // The router already sets it for a body of exact size (every refusal): a second copy makes
    // strict parsers (Node's `http`, `fetch`) fail the response before reading its status.
    if !parts
        .headers
        .contains_key(axum::http::header::CONTENT_LENGTH)
        && let Some(len) = axum::body::HttpBody::size_hint(body).exact()
    {
        head.extend_from_slice(format!("content-length: {len}\r\n").as_bytes());
    }
    head.extend_from_slice(b"connection: close\r\n\r\n");
    head.into_boxed_slice()
}

/// Serves one `GET /events` straight on the socket: the router answers it as usual, then the head
/// is written once and each frame of the body as it comes, with no per-connection buffers beyond
/// the stream's own state (hyper keeps an 8 KiB read and an 8 KiB write buffer per connection for
/// its whole life: most of an idle subscriber's memory). The body is delimited by closing the
/// connection (`Connection: close`), valid in HTTP/1.0 and 1.1, and what an endless stream needs.
/// The client closing its side, or sending anything more, ends the stream; a write that makes no
/// progress for `write_timeout` closes the connection.
async fn stream_events(
    mut stream: TcpStream,
    service: &Service,
    // Boxed, and the router's future and the response head too: a future keeps room for its
    // arguments and for every local held across an await, so these would otherwise size the
    // connection's task for the whole life of the stream (they are needed only until the head).
    request: Box<Request<Body>>,
    write_timeout: Duration,
    metrics: &Metrics,
) {
    use hyper::service::Service as _;
    let Ok(response) = Box::pin(service.call(*request)).await;
    let (parts, body) = response.into_parts();
    let head = response_head(parts, &body);
    let (mut rd, mut wr) = stream.split();
    if !write_within(&mut wr, &head, write_timeout, metrics).await {
        return;
    }
    drop(head);
    let mut frames = body.into_data_stream();
    let mut scratch = [0u8; 16];
    // Frames taken in one wake-up, written with one `writev`; kept across wake-ups so that a
    // busy stream allocates it once (an idle one never does).
    let mut batch: Vec<Bytes> = Vec::new();
    loop {
        tokio::select! {
            frame = frames.next() => match frame {
                Some(Ok(bytes)) => {
                    batch.push(bytes);
                    // Whatever else is ready now (frames queued while this task waited for its
                    // turn) goes into the same write: one syscall per wake-up, not per frame.
                    let mut ended = false;
                    while batch.len() < MAX_WRITE_BATCH {
                        match frames.next().now_or_never() {
                            Some(Some(Ok(bytes))) => batch.push(bytes),
                            Some(Some(Err(_)) | None) => {
                                ended = true;
                                break;
                            }
                            None => break,
                        }
                    }
                    batch.retain(|b| !b.is_empty());
                    let ok = write_all_within(&mut wr, &batch, write_timeout, metrics).await;
                    batch.clear();
                    if !ok {
                        return;
                    }
                    if ended {
                        break;
                    }
                }
                Some(Err(_)) | None => break,
            },
            // The client closed (or reset) the connection, or sent more than one request.
            _ = rd.read(&mut scratch) => return,
        }
    }
    let _ = tokio::time::timeout(write_timeout, wr.shutdown()).await;
}

/// Most frames gathered into one vectored write (16 `IoSlice`s on the stack; a batch of SSE
/// frames is a few KiB, well within one socket send).
const MAX_WRITE_BATCH: usize = 16;

/// Writes all of `frames` with vectored writes (one syscall when the socket takes it all); false
/// when the socket failed or the client stopped reading (no progress for `timeout`).
async fn write_all_within(
    wr: &mut (impl AsyncWrite + Unpin),
    frames: &[Bytes],
    timeout: Duration,
    metrics: &Metrics,
) -> bool {
    let (mut idx, mut offset) = (0, 0);
    while idx < frames.len() {
        let mut slices = [io::IoSlice::new(&[]); MAX_WRITE_BATCH];
        let pending = &frames[idx..frames.len().min(idx + MAX_WRITE_BATCH)];
        for (slice, (i, frame)) in slices.iter_mut().zip(pending.iter().enumerate()) {
            *slice = io::IoSlice::new(if i == 0 { &frame[offset..] } else { frame });
        }
        let mut written = match tokio::time::timeout(
            timeout,
            wr.write_vectored(&slices[..pending.len()]),
        )
        .await
        {
            Ok(Ok(0)) | Ok(Err(_)) => return false,
            Ok(Ok(n)) => n,
            Err(_) => {
                Metrics::inc(&metrics.slow_clients_closed);
                tracing::debug!("closing a stream whose client stopped reading");
                return false;
            }
        };
        while written > 0 {
            let left = frames[idx].len() - offset;
            if written >= left {
                written -= left;
                idx += 1;
                offset = 0;
            } else {
                offset += written;
                written = 0;
            }
        }
    }
    true
}

/// Writes all of `bytes`; false when the socket failed or the client stopped reading.
async fn write_within(
    wr: &mut (impl AsyncWrite + Unpin),
    bytes: &[u8],
    timeout: Duration,
    metrics: &Metrics,
) -> bool {
    match tokio::time::timeout(timeout, wr.write_all(bytes)).await {
        Ok(Ok(())) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            Metrics::inc(&metrics.slow_clients_closed);
            tracing::debug!("closing a stream whose client stopped reading");
            false
        }
    }
}

/// An IO that first replays bytes already read from `inner`.
struct Rewind<T> {
    prefix: Bytes,
    inner: T,
}

impl<T: AsyncRead + Unpin> AsyncRead for Rewind<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if !self.prefix.is_empty() {
            let n = self.prefix.len().min(buf.remaining());
            let chunk = self.prefix.split_to(n);
            buf.put_slice(&chunk);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for Rewind<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

/// A socket that fails a write that made no progress for `timeout`: a client that stops reading
/// fills its TCP window, hyper's writes then stay pending, and this turns that into an error that
/// closes the connection (and frees its memory) instead of holding it forever.
struct StallGuard<T = TcpStream> {
    inner: T,
    timeout: Duration,
    /// Armed while a write is pending; boxed so that an idle connection does not carry a timer.
    deadline: Option<Pin<Box<Sleep>>>,
    metrics: Arc<Metrics>,
}

impl<T> StallGuard<T> {
    fn new(inner: T, timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            timeout,
            deadline: None,
            metrics,
        }
    }

    fn check<R>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<R>>,
    ) -> Poll<io::Result<R>> {
        if result.is_ready() {
            self.deadline = None;
            return result;
        }
        let timeout = self.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(deadline.as_mut().poll(cx));
        Metrics::inc(&self.metrics.slow_clients_closed);
        tracing::debug!("closing a connection whose client stopped reading");
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client stopped reading",
        )))
    }
}

impl<T: AsyncRead + Unpin> AsyncRead for StallGuard<T> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<T: AsyncWrite + Unpin> AsyncWrite for StallGuard<T> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parsed(raw: &[u8]) -> &'static str {
        match parse_events_request(raw) {
            Parsed::Events(_) => "events",
            Parsed::Partial => "partial",
            Parsed::Other => "other",
        }
    }

    #[test]
    fn only_complete_bodyless_event_requests_are_taken() {
        let ok = b"GET /events?topic=a HTTP/1.1\r\nHost: x\r\nLast-Event-ID: 1-2\r\n\r\n";
        assert_eq!(parsed(ok), "events");
        assert_eq!(parsed(b"GET /events HTTP/1.0\r\n\r\n"), "events");
        // Every strict prefix of a request is partial.
        for i in 0..ok.len() {
            assert_eq!(parsed(&ok[..i]), "partial", "{i}");
        }
        for other in [
            &b"GET /eventsx HTTP/1.1\r\n\r\n"[..],
            b"GET /events/x HTTP/1.1\r\n\r\n",
            b"HEAD /events HTTP/1.1\r\n\r\n",
            b"GET /events HTTP/1.1\r\n\r\nGET /healthz HTTP/1.1\r\n\r\n", // pipelined
            b"GET /events HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc",
            b"GET /events HTTP/1.1\r\nTransfer-Encoding: chunked\r\n\r\n",
            b"GET /events HTTP/1.1\r\nBad Header: x\r\n\r\n",
            b"GET /events HTTP/2.0\r\n\r\n",
        ] {
            assert_eq!(
                parsed(other),
                "other",
                "{:?}",
                String::from_utf8_lossy(other)
            );
        }
        let Parsed::Events(request) = parse_events_request(ok) else {
            unreachable!()
        };
        assert_eq!(request.uri(), "/events?topic=a");
        assert_eq!(request.headers()["last-event-id"], "1-2");
    }

    #[tokio::test]
    async fn vectored_writes_deliver_every_frame_in_order_through_partial_writes() {
        // A 7-byte pipe: every write is partial, so the slice and offset bookkeeping is exercised.
        let (mut wr, mut rd) = tokio::io::duplex(7);
        let frames: Vec<Bytes> = (0..40)
            .map(|i| Bytes::from(format!("id: {i}\ndata: {}\n\n", "x".repeat(i % 5))))
            .collect();
        let expected: Vec<u8> = frames.iter().flat_map(|f| f.iter().copied()).collect();
        let reader = tokio::spawn(async move {
            let mut got = Vec::new();
            rd.read_to_end(&mut got).await.unwrap();
            got
        });
        let metrics = Metrics::default();
        for chunk in frames.chunks(MAX_WRITE_BATCH + 3) {
            // More frames than one call's slices: the rest goes in the next round.
            assert!(write_all_within(&mut wr, chunk, Duration::from_secs(30), &metrics).await);
        }
        drop(wr);
        assert_eq!(reader.await.unwrap(), expected);
    }

    #[tokio::test]
    async fn a_vectored_write_that_makes_no_progress_times_out() {
        let (mut wr, _rd) = tokio::io::duplex(4); // nobody reads
        let metrics = Metrics::default();
        let frames = [Bytes::from_static(b"data: more than four bytes\n\n")];
        assert!(!write_all_within(&mut wr, &frames, Duration::from_millis(50), &metrics).await);
        assert_eq!(
            metrics
                .slow_clients_closed
                .load(std::sync::atomic::Ordering::Relaxed),
            1
        );
    }

    #[tokio::test]
    async fn rewind_replays_the_prefix_first() {
        let mut io = Rewind {
            prefix: Bytes::from_static(b"hello "),
            inner: &b"world"[..],
        };
        let mut out = String::new();
        io.read_to_string(&mut out).await.unwrap();
        assert_eq!(out, "hello world");
    }
}

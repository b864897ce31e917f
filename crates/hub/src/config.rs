//! The hub's settings, each with a documented default.

use std::path::PathBuf;
use std::time::Duration;

use crate::auth::Authorizer;
use crate::cors::CorsOrigins;
use crate::limits::PublishRate;

/// How a [`crate::Hub`] behaves. Build with [`HubConfig::default`] and change what you need.
#[derive(Clone, Debug)]
#[non_exhaustive]
pub struct HubConfig {
    /// A comment is sent on a stream that has sent nothing for this long (checked every half
    /// interval by one hub-wide timer), so that proxies and load balancers do not close it as
    /// idle. Default [`HubConfig::DEFAULT_HEARTBEAT`].
    pub heartbeat: Duration,
    /// The `retry:` (reconnection time) sent first on every stream. Default
    /// [`HubConfig::DEFAULT_RETRY`].
    pub retry: Duration,
    /// Most bytes of frames queued for one subscriber and not yet taken by its connection. Past
    /// it the subscriber is switched to catching up from the log: nothing is lost and its memory
    /// stays bounded. Default [`HubConfig::DEFAULT_MAX_UNSENT_BYTES`].
    pub max_unsent_bytes: usize,
    /// A connection whose writes make no progress for this long (the client stopped reading) is
    /// closed. Only enforced by [`crate::serve`]. Default [`HubConfig::DEFAULT_WRITE_TIMEOUT`].
    pub write_timeout: Duration,
    /// Largest accepted `POST /publish` body. Default [`HubConfig::DEFAULT_MAX_BODY_BYTES`].
    pub max_body_bytes: usize,
    /// Most topics (or patterns) in one `GET /events`. Default [`HubConfig::DEFAULT_MAX_TOPICS`].
    pub max_topics: usize,
    /// How long shutdown waits for connections to end before giving up on them. Default
    /// [`HubConfig::DEFAULT_DRAIN_TIMEOUT`].
    pub drain_timeout: Duration,
    /// On shutdown each stream gets `retry: <retry + random(0..shutdown_jitter)>` so that clients
    /// do not all reconnect in the same millisecond. Default [`HubConfig::DEFAULT_SHUTDOWN_JITTER`].
    pub shutdown_jitter: Duration,
    /// Most open connections [`crate::serve`] serves at once; past it, a new connection is
    /// answered 503 with `Retry-After` and closed. Default
    /// [`HubConfig::DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// Most open connections from one client address (IPv6: per /64), so that one address
    /// cannot take every [`HubConfig::max_connections`] slot; past it, a new connection from that
    /// address is answered 429 with `Retry-After` and closed. Only enforced by [`crate::serve`].
    /// Behind a reverse proxy every connection comes from the proxy: raise it to
    /// `max_connections` there. Default [`HubConfig::DEFAULT_MAX_CONNECTIONS_PER_CLIENT`].
    pub max_connections_per_client: usize,
    /// A new connection must send its first complete request head within this time, TLS
    /// handshake included (later requests on it: the same time from their first byte); past it
    /// the connection is closed. Only enforced by [`crate::serve`]. Default
    /// [`HubConfig::DEFAULT_HEADER_READ_TIMEOUT`].
    pub header_read_timeout: Duration,
    /// A request body (`POST /publish`) must arrive whole within this time of its headers; past
    /// it the request is answered 408 and the connection closed. Enforced by the router. Default
    /// [`HubConfig::DEFAULT_BODY_READ_TIMEOUT`].
    pub body_read_timeout: Duration,
    /// A connection with no request in flight for this long is closed: HTTP/1.1 keep-alive
    /// between requests, HTTP/2 with no open stream (PING and SETTINGS frames do not count), a
    /// GOAWAY first on HTTP/2. An open SSE stream is a request in flight. Only enforced by
    /// [`crate::serve`]. Default [`HubConfig::DEFAULT_IDLE_TIMEOUT`].
    pub idle_timeout: Duration,
    /// Serve this directory at `/` instead of the demo page.
    pub static_dir: Option<PathBuf>,
    /// Serve files of [`HubConfig::static_dir`] reached through a symlink that points outside
    /// it. Default false: such a request is answered 404, so a stray link cannot publish the
    /// rest of the file system.
    pub static_follow_symlinks: bool,
    /// Token verification. `None`: the hub is anonymous (anyone may publish and subscribe, and
    /// `private` events reach no one).
    pub auth: Option<Authorizer>,
    /// With [`HubConfig::auth`] set, subscribers without a token still get public events
    /// (a token that does not verify is refused all the same). Default false.
    pub allow_anonymous_subscribers: bool,
    /// Which other origins browsers may use the hub from. Default same-origin only.
    pub cors: CorsOrigins,
    /// Most open `GET /events` streams per client address (IPv6: per /64) before 429; 0 for
    /// no cap. Only enforced with the client address that [`crate::serve`] provides. Default
    /// [`HubConfig::DEFAULT_MAX_STREAMS_PER_CLIENT`].
    pub max_streams_per_client: usize,
    /// Publishes per token subject (or client address without one) before 429. Default `None`:
    /// no rate limit.
    pub publish_rate: Option<PublishRate>,
    /// Serve TLS (ALPN `h2` and `http/1.1`) instead of plain HTTP/1.1 and h2c. Only used by
    /// [`crate::serve`]. Default none.
    pub tls: Option<crate::TlsConfig>,
    /// Send a snapshot of the hub's metrics to topic `herald/metrics` (what `GET /dashboard`
    /// shows) this often; `None` turns it off. Default
    /// [`HubConfig::DEFAULT_METRICS_INTERVAL`].
    pub metrics_interval: Option<Duration>,
}

impl HubConfig {
    /// 15 s: below the 30 to 60 s idle timeouts of common proxies.
    pub const DEFAULT_HEARTBEAT: Duration = Duration::from_secs(15);
    /// 3 s, like browsers' default: quick to recover, slow enough not to hammer a restarting hub.
    pub const DEFAULT_RETRY: Duration = Duration::from_secs(3);
    /// 64 KiB: hundreds of typical events of burst, small enough for 10,000 subscribers.
    pub const DEFAULT_MAX_UNSENT_BYTES: usize = 64 * 1024;
    /// 30 s: a phone that loses signal for a moment keeps its stream; a dead reader is freed.
    pub const DEFAULT_WRITE_TIMEOUT: Duration = Duration::from_secs(30);
    /// 1 MiB: far above an event's size, small enough to refuse memory-exhausting bodies.
    pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;
    /// 32 topics per stream: enough for real pages, bounded matching work per event.
    pub const DEFAULT_MAX_TOPICS: usize = 32;
    /// 10 s: streams end at once on shutdown; this only bounds stuck connections.
    pub const DEFAULT_DRAIN_TIMEOUT: Duration = Duration::from_secs(10);
    /// 50,000: five times the 10,000 subscribers one machine is sized for; the file descriptor
    /// limit usually binds first.
    pub const DEFAULT_MAX_CONNECTIONS: usize = 50_000;
    /// 2,000 connections per address: an address's 1,000 streams
    /// ([`HubConfig::DEFAULT_MAX_STREAMS_PER_CLIENT`]) on HTTP/1.1 with room for its publishes,
    /// while 25 addresses are needed to fill the default 50,000 slots.
    pub const DEFAULT_MAX_CONNECTIONS_PER_CLIENT: usize = 2_000;
    /// 30 s: a phone on a bad network sends a request head in well under a second; a client
    /// that drips its headers (slowloris) holds a slot for at most this long.
    pub const DEFAULT_HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// 30 s: a whole 1 MiB body ([`HubConfig::DEFAULT_MAX_BODY_BYTES`]) at 35 KB/s, slower than
    /// any real publisher; a body that stalls frees its slot after that.
    pub const DEFAULT_BODY_READ_TIMEOUT: Duration = Duration::from_secs(30);
    /// 65 s: a little above the 60 s idle timeout of common load balancers (AWS ALB, nginx's
    /// `keepalive_timeout`), so that the hub is not the side closing a connection that a
    /// balancer is about to reuse; an idle connection (or an HTTP/2 one that only pings) is
    /// freed after it.
    pub const DEFAULT_IDLE_TIMEOUT: Duration = Duration::from_secs(65);
    /// 1,000 streams per address: a browser opens a handful, a server-side consumer a few
    /// hundred; the fan-out benchmark's 10,000 subscribers spread over 50 loopback addresses
    /// stay at 200 each.
    pub const DEFAULT_MAX_STREAMS_PER_CLIENT: usize = 1_000;
    /// 5 s of spread: 10,000 clients reconnect at about 2,000 per second.
    pub const DEFAULT_SHUTDOWN_JITTER: Duration = Duration::from_secs(5);
    /// 1 s: charts that move smoothly, for the cost of one small event a second (not logged).
    pub const DEFAULT_METRICS_INTERVAL: Duration = Duration::from_secs(1);
}

impl Default for HubConfig {
    fn default() -> Self {
        Self {
            heartbeat: Self::DEFAULT_HEARTBEAT,
            retry: Self::DEFAULT_RETRY,
            max_unsent_bytes: Self::DEFAULT_MAX_UNSENT_BYTES,
            write_timeout: Self::DEFAULT_WRITE_TIMEOUT,
            max_body_bytes: Self::DEFAULT_MAX_BODY_BYTES,
            max_topics: Self::DEFAULT_MAX_TOPICS,
            drain_timeout: Self::DEFAULT_DRAIN_TIMEOUT,
            shutdown_jitter: Self::DEFAULT_SHUTDOWN_JITTER,
            max_connections: Self::DEFAULT_MAX_CONNECTIONS,
            max_connections_per_client: Self::DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
            header_read_timeout: Self::DEFAULT_HEADER_READ_TIMEOUT,
            body_read_timeout: Self::DEFAULT_BODY_READ_TIMEOUT,
            idle_timeout: Self::DEFAULT_IDLE_TIMEOUT,
            static_dir: None,
            static_follow_symlinks: false,
            auth: None,
            allow_anonymous_subscribers: false,
            cors: CorsOrigins::SameOrigin,
            max_streams_per_client: Self::DEFAULT_MAX_STREAMS_PER_CLIENT,
            publish_rate: None,
            tls: None,
            metrics_interval: Some(Self::DEFAULT_METRICS_INTERVAL),
        }
    }
}

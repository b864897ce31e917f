//! `herald serve`: run the hub on one machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use herald_hub::auth::{Authorizer, JwtAlgorithm};
use herald_hub::log::redis::RedisTimeouts;
use herald_hub::log::{EmbeddedLog, Log, MemoryLog, NewEvent, RedisLog, Retention};
use herald_hub::{CorsOrigins, Hub, HubConfig, PublishRate, TlsConfig};

use crate::config::Rule;
use crate::range;

// The ranges of the numeric flags (see `range.rs`): each bound says why a value past it is a
// mistake rather than a setting.

/// 10 ms: the shortest heartbeat, write timeout or idle wait worth a timer; tests use 200 ms.
const MIN_TIMER: Duration = Duration::from_millis(10);
/// 1 h: a heartbeat rarer than this no longer keeps any proxy's idle connection open.
const MAX_HEARTBEAT: Duration = Duration::from_secs(3600);
/// 1 day: a client told to wait longer before reconnecting has in effect been told never to.
const MAX_RETRY: Duration = Duration::from_secs(86_400);
/// 1 day: a socket that makes no progress for a day is dead, not slow.
const MAX_WRITE_TIMEOUT: Duration = Duration::from_secs(86_400);
/// 1 h: shutdown that waits longer is a hung shutdown.
const MAX_DRAIN_TIMEOUT: Duration = Duration::from_secs(3600);
/// 1 s: retention ages are checked against whole-second clocks, and a shorter one keeps nothing.
const MIN_RETENTION_AGE: Duration = Duration::from_secs(1);
/// 3650 days: ten years; past it say 0s (no age limit) instead of a number that overflows dates.
const MAX_RETENTION_AGE: Duration = Duration::from_secs(3650 * 86_400);
/// 1 KiB: a subscriber allowed fewer unsent bytes than one small event would never be live.
const MIN_UNSENT_BYTES: usize = 1024;
/// 1 GiB: per subscriber; 10,000 subscribers at that would be 10 TB of queue.
const MAX_UNSENT_BYTES: usize = 1 << 30;
/// 256 bytes: room for the JSON of a topic and a short datum; 0 would refuse every publish.
const MIN_BODY_BYTES: usize = 256;
/// 8 MiB: herald-client's default event limit; a larger event would be dropped by subscribers.
const MAX_BODY_BYTES: usize = herald_wire::Parser::DEFAULT_MAX_EVENT_SIZE;
/// 1,024 topics per stream: bounded matching work per event; 0 would refuse every stream.
const MAX_TOPICS: usize = 1024;
/// 1,000,000: above any file descriptor limit; 0 would refuse every connection.
const MAX_CONNECTIONS: usize = 1_000_000;
/// The most open streams per client address: as many as connections.
const MAX_STREAMS_PER_CLIENT: usize = MAX_CONNECTIONS;
/// 0.001 per second (one every 17 minutes): a slower rate is a ban, and tiny rates once made
/// the wait before the next publish overflow (`--publish-rate 1e-20` panicked).
const MIN_PUBLISH_RATE: f64 = 0.001;
/// 1,000,000 per second: far above what one hub can store; say 0 for no limit.
const MAX_PUBLISH_RATE: f64 = 1_000_000.0;
/// 1,000,000 publishes in one burst: any more is no limit; say 0 for no rate.
const MAX_PUBLISH_BURST: u32 = 1_000_000;

/// Which event store backs the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Store {
    /// Durable, under --data-dir: an acknowledged publish survives a crash.
    Embedded,
    /// In memory: nothing survives a restart (tests, demos).
    Memory,
    /// A Redis Stream at --redis-url, shared by every hub pointed at it (see docs/scaling.md).
    Redis,
}

/// Format of the log lines on stderr.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum LogFormat {
    /// For people: one line per record.
    Text,
    /// For machines: one JSON object per line.
    Json,
}

/// The rules between the flags of `herald serve`, checked after parsing by
/// [`config::check_rules`](crate::config::check_rules) (not clap's `requires` and
/// `conflicts_with`, which do not see config file values): argument ids.
pub(crate) const RULES: &[Rule] = &[
    Rule::RequiresIfEq("store", "redis", "redis_url"),
    Rule::ConflictsWith("jwt_secret", "jwt_public_key"),
    // An HS256 --jwt-secret has no other algorithm.
    Rule::Requires("jwt_alg", "jwt_public_key"),
    Rule::Requires("publish_burst", "publish_rate"),
    Rule::Requires("static_follow_symlinks", "static_dir"),
    Rule::Requires("tls_cert", "tls_key"),
    Rule::Requires("tls_key", "tls_cert"),
];

// The headings of `herald serve --help`, one per concern, so that a reader looking for the TLS or
// the retention flags finds them together instead of in one list of forty.
const STORE: &str = "Store";
const AUTH: &str = "Authentication and browsers";
const LIMITS: &str = "Limits";
const TIMEOUTS: &str = "Timeouts";
const TLS: &str = "TLS";
const PAGES: &str = "Pages";
const OBSERVABILITY: &str = "Observability";

/// Arguments of `herald serve`. Every long flag is also a config file key and a `HERALD_*`
/// environment variable (see `config.rs`): flag > environment > config file > default.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Read settings from this TOML file: its keys are the long flags (`heartbeat = "15s"`).
    #[arg(long, value_name = "FILE")]
    config: Option<PathBuf>,
    /// Address to listen on. Non-loopback addresses need a JWT key or --allow-anonymous.
    #[arg(long, default_value = "127.0.0.1:3000", env = "HERALD_ADDR")]
    addr: SocketAddr,
    /// Directory of the embedded store (events.redb, and the herald-data-dir marker that makes a
    /// missing or empty events.redb an error, not a new start: move the whole directory away to
    /// start fresh).
    #[arg(help_heading = STORE, long, default_value = "./herald-data", env = "HERALD_DATA_DIR")]
    data_dir: PathBuf,
    /// Event store.
    #[arg(help_heading = STORE, long, value_enum, default_value_t = Store::Embedded)]
    store: Store,
    /// Redis of --store redis, e.g. redis://127.0.0.1:6379 or redis://:password@host:6379/0.
    #[arg(help_heading = STORE, long, env = "HERALD_REDIS_URL")]
    redis_url: Option<String>,
    /// Prefix of every Redis key, so that several deployments can share one Redis.
    #[arg(help_heading = STORE, long, default_value = herald_hub::log::redis::DEFAULT_PREFIX, env = "HERALD_REDIS_PREFIX",
          value_parser = parse_redis_prefix)]
    redis_prefix: String,
    /// How long one Redis command may take before it counts as failed (--store redis).
    #[arg(help_heading = STORE, long, default_value = "5s", env = "HERALD_REDIS_TIMEOUT",
          value_parser = range::duration(MIN_TIMER, MAX_REDIS_TIMEOUT))]
    redis_timeout: Duration,
    /// How long a publish keeps trying when Redis's answer was lost (--store redis), so that it
    /// is answered 200 with the stored id instead of an unknown outcome; every publish is
    /// answered within this plus --redis-timeout.
    #[arg(help_heading = STORE, long, default_value = "10s", env = "HERALD_REDIS_PUBLISH_TIMEOUT",
          value_parser = range::duration(Duration::ZERO, MAX_REDIS_TIMEOUT))]
    redis_publish_timeout: Duration,
    /// Timeouts and limits (boxed: they are many, and `Args` is a variant of the command enum).
    #[command(flatten)]
    tuning: Box<Tuning>,
    /// Publish the time every second to topic `demo/time` (event type `time`).
    #[arg(help_heading = PAGES, long)]
    demo: bool,
    /// Do not send the hub's metrics to topic herald/metrics every second (GET /dashboard then
    /// shows nothing).
    #[arg(help_heading = OBSERVABILITY, long)]
    no_metrics_topic: bool,
    /// Serve this directory at / instead of the demo page. A path that reaches outside it through
    /// a symlink is answered 404 (see --static-follow-symlinks).
    #[arg(help_heading = PAGES, long = "static", value_name = "DIR")]
    static_dir: Option<PathBuf>,
    /// With --static, also serve files reached through symlinks that point outside the directory.
    #[arg(help_heading = PAGES, long)]
    static_follow_symlinks: bool,
    /// Allow listening on a non-loopback address with no JWT key, although anyone can then
    /// publish and subscribe.
    #[arg(help_heading = AUTH, long)]
    allow_anonymous: bool,
    /// Authentication, CORS and per-client limits.
    #[command(flatten)]
    security: Box<Security>,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1 over ALPN) with this PEM certificate chain (needs
    /// --tls-key). Without it: plain HTTP/1.1 and HTTP/2 with prior knowledge (h2c).
    #[arg(help_heading = TLS, long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The PEM private key of --tls-cert.
    #[arg(help_heading = TLS, long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Log format on stderr (the level is set by HERALD_LOG, e.g. `info`, `herald_hub=debug`).
    #[arg(help_heading = OBSERVABILITY, long, value_enum, default_value_t = LogFormat::Text)]
    log_format: LogFormat,
}

/// Authentication, CORS and per-client limits of `herald serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Security {
    /// Verify tokens with this HS256 secret (at least 32 bytes). Prefer the environment
    /// variable: a flag shows in `ps`.
    #[arg(help_heading = AUTH, long, env = "HERALD_JWT_SECRET", hide_env_values = true)]
    jwt_secret: Option<String>,
    /// Verify tokens with this PEM public key (RSA: RS256, EC P-256: ES256, unless --jwt-alg).
    #[arg(help_heading = AUTH, long, value_name = "FILE")]
    jwt_public_key: Option<PathBuf>,
    /// The one algorithm accepted with --jwt-public-key (RS256, RS384, RS512, ES256, ES384).
    #[arg(help_heading = AUTH, long, value_name = "ALG")]
    jwt_alg: Option<String>,
    /// With a JWT key, let subscribers without a token receive public events.
    #[arg(help_heading = AUTH, long)]
    allow_anonymous_subscribers: bool,
    /// Let browsers on this origin use the hub (repeatable, e.g. https://app.example.com); `*`
    /// alone allows any origin, without cookies.
    #[arg(help_heading = AUTH, long = "cors-origin", value_name = "ORIGIN")]
    cors_origins: Vec<String>,
    /// Most open streams per client address (IPv6: per /64); 0 for no cap.
    #[arg(help_heading = LIMITS, long, default_value_t = HubConfig::DEFAULT_MAX_STREAMS_PER_CLIENT,
          value_parser = range::int_or_zero(1, MAX_STREAMS_PER_CLIENT))]
    max_streams_per_client: usize,
    /// Publishes per second per token subject (or client address), from 0.001 to 1000000; 0 for
    /// no limit.
    #[arg(help_heading = LIMITS, long, default_value_t = 0.0,
          value_parser = range::float_or_zero(MIN_PUBLISH_RATE, MAX_PUBLISH_RATE))]
    publish_rate: f64,
    /// Publishes allowed in a burst with --publish-rate (default: twice the rate, at least 1).
    #[arg(help_heading = LIMITS, long, value_parser = range::int(1, MAX_PUBLISH_BURST))]
    publish_burst: Option<u32>,
}

impl Security {
    /// Whether a JWT key is configured.
    fn has_key(&self) -> bool {
        self.jwt_secret.is_some() || self.jwt_public_key.is_some()
    }

    /// Applies these settings to `config`, checking keys, origins and limits.
    fn apply(&self, config: &mut HubConfig) -> anyhow::Result<()> {
        config.auth = match (&self.jwt_secret, &self.jwt_public_key) {
            (Some(secret), _) => {
                Some(Authorizer::hs256(secret.as_bytes()).context("--jwt-secret")?)
            }
            (None, Some(path)) => {
                let pem = std::fs::read(path)
                    .with_context(|| format!("--jwt-public-key: reading {}", path.display()))?;
                let alg = match &self.jwt_alg {
                    Some(a) => Some(a.parse::<JwtAlgorithm>().context("--jwt-alg")?),
                    None => None,
                };
                Some(
                    Authorizer::from_public_key_pem(&pem, alg)
                        .with_context(|| format!("--jwt-public-key {}", path.display()))?,
                )
            }
            (None, None) => None,
        };
        anyhow::ensure!(
            !self.allow_anonymous_subscribers || config.auth.is_some(),
            "--allow-anonymous-subscribers needs --jwt-secret or --jwt-public-key (without a key every subscriber is anonymous anyway)"
        );
        config.allow_anonymous_subscribers = self.allow_anonymous_subscribers;
        config.cors = CorsOrigins::try_from_origins(&self.cors_origins).context("--cors-origin")?;
        config.max_streams_per_client = self.max_streams_per_client;
        // The rate is in range (see `MAX_PUBLISH_RATE`), so twice it fits a u32.
        config.publish_rate = (self.publish_rate > 0.0).then(|| PublishRate {
            per_second: self.publish_rate,
            burst: self
                .publish_burst
                .unwrap_or((self.publish_rate * 2.0).ceil().max(1.0) as u32),
        });
        Ok(())
    }
}

/// Timeouts and limits of `herald serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Tuning {
    /// Send a comment on a stream idle this long (e.g. 15s, 500ms, 2m).
    #[arg(help_heading = TIMEOUTS, long, default_value = "15s", value_parser = range::duration(MIN_TIMER, MAX_HEARTBEAT))]
    heartbeat: Duration,
    /// The reconnection time sent first on every stream (at most 1d).
    #[arg(help_heading = TIMEOUTS, long, default_value = "3s", value_parser = range::duration(Duration::ZERO, MAX_RETRY))]
    retry: Duration,
    /// Close a connection whose client has not read anything for this long.
    #[arg(help_heading = TIMEOUTS, long, default_value = "30s",
          value_parser = range::duration(MIN_TIMER, MAX_WRITE_TIMEOUT))]
    write_timeout: Duration,
    /// Most unsent bytes queued per subscriber before it catches up from the log instead.
    #[arg(help_heading = LIMITS, long, default_value_t = HubConfig::DEFAULT_MAX_UNSENT_BYTES,
          value_parser = range::int(MIN_UNSENT_BYTES, MAX_UNSENT_BYTES))]
    max_unsent_bytes: usize,
    /// Largest accepted publish body, in bytes.
    #[arg(help_heading = LIMITS, long, default_value_t = HubConfig::DEFAULT_MAX_BODY_BYTES,
          value_parser = range::int(MIN_BODY_BYTES, MAX_BODY_BYTES))]
    max_body_bytes: usize,
    /// Most topics per stream.
    #[arg(help_heading = LIMITS, long, default_value_t = HubConfig::DEFAULT_MAX_TOPICS,
          value_parser = range::int(1, MAX_TOPICS))]
    max_topics: usize,
    /// Most open connections at once (more are answered 503 with Retry-After).
    #[arg(help_heading = LIMITS, long, default_value_t = HubConfig::DEFAULT_MAX_CONNECTIONS,
          value_parser = range::int(1, MAX_CONNECTIONS))]
    max_connections: usize,
    /// Most open connections from one client address (IPv6: per /64); more are answered 429.
    /// Behind a reverse proxy every connection comes from the proxy: raise it there.
    #[arg(help_heading = LIMITS, long, default_value_t = HubConfig::DEFAULT_MAX_CONNECTIONS_PER_CLIENT,
          value_parser = range::int(1, MAX_CONNECTIONS))]
    max_connections_per_client: usize,
    /// Close a new connection that has not sent a complete request head (TLS handshake
    /// included) within this time.
    #[arg(help_heading = TIMEOUTS, long, default_value = "30s", value_parser = range::duration(MIN_TIMER, MAX_CONNECTION_TIMEOUT))]
    header_read_timeout: Duration,
    /// Answer 408 and close when a request body has not arrived whole within this time of its
    /// headers.
    #[arg(help_heading = TIMEOUTS, long, default_value = "30s", value_parser = range::duration(MIN_TIMER, MAX_CONNECTION_TIMEOUT))]
    body_read_timeout: Duration,
    /// Close a connection with no request in flight for this long (HTTP/1.1 keep-alive;
    /// HTTP/2 with no open stream, pings do not count).
    #[arg(help_heading = TIMEOUTS, long, default_value = "65s", value_parser = range::duration(MIN_TIMER, MAX_CONNECTION_TIMEOUT))]
    idle_timeout: Duration,
    /// On shutdown, wait at most this long for connections to end.
    #[arg(help_heading = TIMEOUTS, long, default_value = "10s",
          value_parser = range::duration(Duration::ZERO, MAX_DRAIN_TIMEOUT))]
    drain_timeout: Duration,
    /// Keep at most this many events (0: no count limit).
    #[arg(help_heading = STORE, long, default_value_t = Retention::DEFAULT_MAX_EVENTS,
          value_parser = range::int_or_zero(1, u64::MAX))]
    retention_events: u64,
    /// Keep events at most this long (0s: no age limit).
    #[arg(help_heading = STORE, long, default_value = "24h",
          value_parser = range::duration_or_zero(MIN_RETENTION_AGE, MAX_RETENTION_AGE))]
    retention_age: Duration,
}

/// The longest connection timeout accepted (header, body, idle): past an hour, a timeout that
/// exists to free slots from stalled clients no longer does.
const MAX_CONNECTION_TIMEOUT: Duration = Duration::from_secs(3600);
/// The longest Redis command and publish timeouts: a publisher waiting longer has given up.
const MAX_REDIS_TIMEOUT: Duration = Duration::from_secs(600);

fn parse_redis_prefix(s: &str) -> Result<String, String> {
    herald_hub::log::redis::check_prefix(s).map(|()| s.to_owned())
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_tracing(args.log_format);
    check_exposure(args.addr, args.allow_anonymous, args.security.has_key())?;
    if let Some(dir) = &args.static_dir {
        anyhow::ensure!(dir.is_dir(), "--static {}: not a directory", dir.display());
    }
    // Checked before anything starts, so that a bad key or origin stops start-up with its flag.
    let mut config = HubConfig::default();
    args.security.apply(&mut config)?;
    config.tls = match (&args.tls_cert, &args.tls_key) {
        (Some(cert), Some(key)) => Some(
            TlsConfig::from_pem_files(cert, key).context("loading the TLS certificate and key")?,
        ),
        (None, None) => None,
        // Refused by `RULES` before this point; kept so that no path can fall back to plain
        // HTTP when TLS was asked for.
        _ => anyhow::bail!("--tls-cert and --tls-key go together: give both, or neither"),
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args, config))?;
    Ok(ExitCode::SUCCESS)
}

/// A hub without a key is refused on a non-loopback address unless anonymity is asked for.
fn check_exposure(addr: SocketAddr, allow_anonymous: bool, has_key: bool) -> anyhow::Result<()> {
    if !addr.ip().is_loopback() && !allow_anonymous && !has_key {
        anyhow::bail!(
            "refusing to listen on {addr} without authentication: anyone could publish and subscribe. \
             Configure --jwt-secret or --jwt-public-key, use a loopback address, or pass --allow-anonymous"
        );
    }
    Ok(())
}

/// Logs go to stderr. Nothing logged carries a request's URI or headers, so an `access_token`
/// query parameter or an `Authorization` header never reaches the logs (tested).
fn init_tracing(format: LogFormat) {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
            .try_init(),
        LogFormat::Json => builder.json().with_ansi(false).try_init(),
    };
}

async fn open_store(args: &Args) -> anyhow::Result<Arc<dyn Log>> {
    let retention = Retention {
        max_events: (args.tuning.retention_events > 0).then_some(args.tuning.retention_events),
        max_age: (!args.tuning.retention_age.is_zero()).then_some(args.tuning.retention_age),
    };
    Ok(match args.store {
        Store::Memory => Arc::new(MemoryLog::new(retention)),
        Store::Embedded => {
            // Opening checks the whole file: blocking work, off the async workers.
            let dir = args.data_dir.clone();
            let log = tokio::task::spawn_blocking(move || EmbeddedLog::open(&dir, retention))
                .await
                .context("opening the embedded store")?
                .with_context(|| {
                    format!("opening the embedded store in {}", args.data_dir.display())
                })?;
            Arc::new(log)
        }
        Store::Redis => {
            let url = args.redis_url.as_deref().unwrap_or_default();
            let timeouts = RedisTimeouts {
                command: args.redis_timeout,
                publish: args.redis_publish_timeout,
            };
            let log = RedisLog::connect_with_timeouts(url, &args.redis_prefix, retention, timeouts)
                .await
                .context("connecting to the redis store (is --redis-url right and Redis up?)")?;
            Arc::new(log)
        }
    })
}

async fn serve(args: Args, mut config: HubConfig) -> anyhow::Result<()> {
    let log = open_store(&args).await?;
    config.heartbeat = args.tuning.heartbeat;
    config.retry = args.tuning.retry;
    config.write_timeout = args.tuning.write_timeout;
    config.max_unsent_bytes = args.tuning.max_unsent_bytes;
    config.max_body_bytes = args.tuning.max_body_bytes;
    config.max_topics = args.tuning.max_topics;
    config.drain_timeout = args.tuning.drain_timeout;
    config.max_connections = args.tuning.max_connections;
    config.max_connections_per_client = args.tuning.max_connections_per_client;
    config.header_read_timeout = args.tuning.header_read_timeout;
    config.body_read_timeout = args.tuning.body_read_timeout;
    config.idle_timeout = args.tuning.idle_timeout;
    config.static_dir = args.static_dir.clone();
    config.static_follow_symlinks = args.static_follow_symlinks;
    if args.no_metrics_topic {
        config.metrics_interval = None;
    }
    let scheme = if config.tls.is_some() {
        "https"
    } else {
        "http"
    };
    let hub = Hub::new(log, config);
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    let local = listener.local_addr().context("reading the bound address")?;
    let auth = config_auth_summary(hub.config());
    let pages = page_urls(
        &format!("{scheme}://{local}"),
        args.static_dir.is_some(),
        !args.no_metrics_topic,
    );
    tracing::info!(store = ?args.store, auth, "herald listening on {scheme}://{local} ({pages})");
    if args.demo {
        tokio::spawn(demo_clock(hub.clone()));
    }
    herald_hub::serve(listener, hub, herald_hub::shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("herald stopped");
    Ok(())
}

/// The pages a new user opens first, for the start-up line: what is at `/` and the dashboard
/// (unless --no-metrics-topic left it empty). The address itself stays first on the line, where
/// scripts read it.
fn page_urls(base: &str, static_dir: bool, dashboard: bool) -> String {
    let root = if static_dir {
        "your --static files"
    } else {
        "demo page"
    };
    let mut pages = format!("{root}: {base}/");
    if dashboard {
        pages.push_str(&format!(", dashboard: {base}/dashboard"));
    }
    pages
}

/// How the hub authenticates, for the start-up line (never the key itself).
fn config_auth_summary(config: &HubConfig) -> String {
    match &config.auth {
        Some(auth) if config.allow_anonymous_subscribers => {
            format!("JWT {}, anonymous subscribers allowed", auth.algorithm())
        }
        Some(auth) => format!("JWT {}", auth.algorithm()),
        None => "anonymous".into(),
    }
}

/// Publishes the time to `demo/time` every second, for the demo page.
async fn demo_clock(hub: Hub) {
    let mut ticker = tokio::time::interval(Duration::from_secs(1));
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        ticker.tick().await;
        let event = NewEvent {
            topic: "demo/time".into(),
            event_type: Some("time".into()),
            data: rfc3339_now(),
            retry: None,
            private: false,
            idempotency_key: None,
        };
        if let Err(err) = hub.publish(event).await {
            tracing::warn!(%err, "demo clock could not publish");
        }
    }
}

/// The current UTC time as RFC 3339 with seconds, e.g. `2026-11-22T22:15:03Z`.
fn rfc3339_now() -> String {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0);
    rfc3339(secs)
}

fn rfc3339(secs: u64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm), valid for every date after 1970.
    let days = (secs / 86_400) as i64;
    let rem = secs % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}Z",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exposure_needs_a_key_or_explicit_anonymity() {
        let public: SocketAddr = "0.0.0.0:3000".parse().unwrap();
        let local: SocketAddr = "127.0.0.1:3000".parse().unwrap();
        let v6_local: SocketAddr = "[::1]:3000".parse().unwrap();
        assert!(check_exposure(public, false, false).is_err());
        assert!(check_exposure(public, true, false).is_ok());
        assert!(check_exposure(public, false, true).is_ok());
        assert!(check_exposure(local, false, false).is_ok());
        assert!(check_exposure(v6_local, false, false).is_ok());
    }

    /// A typo in `RULES` would otherwise show only when the rule is checked.
    #[test]
    fn rules_name_arguments_of_serve() {
        let cmd = <Args as clap::Args>::augment_args(clap::Command::new("serve"));
        let is_arg = |id: &str| cmd.get_arguments().any(|arg| arg.get_id() == id);
        for rule in RULES {
            let ids = match *rule {
                Rule::Requires(a, b) | Rule::ConflictsWith(a, b) => [a, b],
                Rule::RequiresIfEq(a, _, b) => [a, b],
            };
            assert!(ids.iter().all(|id| is_arg(id)), "{rule:?}");
        }
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_386_903), "2026-11-22T22:35:03Z");
    }
}

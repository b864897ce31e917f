//! `herald serve`: run the hub on one machine.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use herald_hub::log::{EmbeddedLog, Log, MemoryLog, NewEvent, Retention};
use herald_hub::{Hub, HubConfig};

/// Which event store backs the hub.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Store {
    /// Durable, under --data-dir: an acknowledged publish survives a crash.
    Embedded,
    /// In memory: nothing survives a restart (tests, demos).
    Memory,
}

/// Arguments of `herald serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    /// Address to listen on. Non-loopback addresses need --allow-anonymous (no auth exists yet).
    #[arg(long, default_value = "127.0.0.1:3000", env = "HERALD_ADDR")]
    addr: SocketAddr,
    /// Directory of the embedded store.
    #[arg(long, default_value = "./herald-data", env = "HERALD_DATA_DIR")]
    data_dir: PathBuf,
    /// Event store.
    #[arg(long, value_enum, default_value_t = Store::Embedded)]
    store: Store,
    /// Timeouts and limits (boxed: they are many, and `Args` is a variant of the command enum).
    #[command(flatten)]
    tuning: Box<Tuning>,
    /// Publish the time every second to topic `demo/time` (event type `time`).
    #[arg(long)]
    demo: bool,
    /// Do not send the hub's metrics to topic herald/metrics every second (GET /dashboard then
    /// shows nothing).
    #[arg(long)]
    no_metrics_topic: bool,
    /// Serve this directory at / instead of the demo page.
    #[arg(long = "static", value_name = "DIR")]
    static_dir: Option<PathBuf>,
    /// Allow listening on a non-loopback address although anyone can then publish and subscribe.
    #[arg(long)]
    allow_anonymous: bool,
}

/// Timeouts and limits of `herald serve`.
#[derive(Debug, clap::Args)]
pub(crate) struct Tuning {
    /// Send a comment on a stream idle this long (e.g. 15s, 500ms, 2m).
    #[arg(long, default_value = "15s", value_parser = parse_positive_duration)]
    heartbeat: Duration,
    /// The reconnection time sent first on every stream.
    #[arg(long, default_value = "3s", value_parser = parse_duration)]
    retry: Duration,
    /// Close a connection whose client has not read anything for this long.
    #[arg(long, default_value = "30s", value_parser = parse_positive_duration)]
    write_timeout: Duration,
    /// Most unsent bytes queued per subscriber before it catches up from the log instead.
    #[arg(long, default_value_t = HubConfig::DEFAULT_MAX_UNSENT_BYTES)]
    max_unsent_bytes: usize,
    /// Largest accepted publish body, in bytes.
    #[arg(long, default_value_t = HubConfig::DEFAULT_MAX_BODY_BYTES)]
    max_body_bytes: usize,
    /// Most topics per stream.
    #[arg(long, default_value_t = HubConfig::DEFAULT_MAX_TOPICS)]
    max_topics: usize,
    /// Most open connections at once (more wait to be accepted).
    #[arg(long, default_value_t = HubConfig::DEFAULT_MAX_CONNECTIONS)]
    max_connections: usize,
    /// On shutdown, wait at most this long for connections to end.
    #[arg(long, default_value = "10s", value_parser = parse_duration)]
    drain_timeout: Duration,
    /// Keep at most this many events (0: no count limit).
    #[arg(long, default_value_t = Retention::DEFAULT_MAX_EVENTS)]
    retention_events: u64,
    /// Keep events at most this long (0s: no age limit).
    #[arg(long, default_value = "24h", value_parser = parse_duration)]
    retention_age: Duration,
}

/// Parses `15s`, `500ms`, `2m`, `1h`, or a bare number of seconds.
fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: u64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 15s, 500ms or 2m"))?;
    let ms = match unit {
        "ms" => Some(n),
        "" | "s" => n.checked_mul(1000),
        "m" => n.checked_mul(60_000),
        "h" => n.checked_mul(3_600_000),
        _ => return Err(format!("{s:?}: unit must be ms, s, m or h")),
    };
    ms.map(Duration::from_millis)
        .ok_or_else(|| format!("{s:?} is too long"))
}

/// Like [`parse_duration`], refusing zero (a zero heartbeat or write timeout makes no sense).
fn parse_positive_duration(s: &str) -> Result<Duration, String> {
    let d = parse_duration(s)?;
    if d.is_zero() {
        return Err("must be more than zero".into());
    }
    Ok(d)
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    init_tracing();
    if !args.addr.ip().is_loopback() && !args.allow_anonymous {
        anyhow::bail!(
            "refusing to listen on {} without authentication: anyone could publish and subscribe. \
             Use a loopback address, or pass --allow-anonymous",
            args.addr
        );
    }
    if let Some(dir) = &args.static_dir {
        anyhow::ensure!(dir.is_dir(), "--static {}: not a directory", dir.display());
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(serve(args))?;
    Ok(ExitCode::SUCCESS)
}

fn init_tracing() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("HERALD_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .try_init();
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
    })
}

async fn serve(args: Args) -> anyhow::Result<()> {
    let log = open_store(&args).await?;
    let mut config = HubConfig::default();
    config.heartbeat = args.tuning.heartbeat;
    config.retry = args.tuning.retry;
    config.write_timeout = args.tuning.write_timeout;
    config.max_unsent_bytes = args.tuning.max_unsent_bytes;
    config.max_body_bytes = args.tuning.max_body_bytes;
    config.max_topics = args.tuning.max_topics;
    config.drain_timeout = args.tuning.drain_timeout;
    config.max_connections = args.tuning.max_connections;
    config.static_dir = args.static_dir.clone();
    if args.no_metrics_topic {
        config.metrics_interval = None;
    }
    let hub = Hub::new(log, config);
    let listener = tokio::net::TcpListener::bind(args.addr)
        .await
        .with_context(|| format!("listening on {}", args.addr))?;
    let local = listener.local_addr().context("reading the bound address")?;
    tracing::info!(store = ?args.store, "herald listening on http://{local}");
    if args.demo {
        tokio::spawn(demo_clock(hub.clone()));
    }
    herald_hub::serve(listener, hub, herald_hub::shutdown_signal())
        .await
        .context("serving")?;
    tracing::info!("herald stopped");
    Ok(())
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
    fn durations() {
        assert_eq!(parse_duration("15s"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("15"), Ok(Duration::from_secs(15)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert_eq!(parse_duration("2m"), Ok(Duration::from_secs(120)));
        assert_eq!(parse_duration("24h"), Ok(Duration::from_secs(86_400)));
        for bad in ["", "s", "1x", "-1s", "1.5s", "99999999999999999999h"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_duration("0s"), Ok(Duration::ZERO));
        assert!(parse_positive_duration("0s").is_err());
        assert!(parse_positive_duration("0ms").is_err());
    }

    #[test]
    fn rfc3339_dates() {
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00Z");
        assert_eq!(rfc3339(951_782_400), "2000-02-29T00:00:00Z");
        assert_eq!(rfc3339(1_795_386_903), "2026-11-22T22:35:03Z");
    }
}

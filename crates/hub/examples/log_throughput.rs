//! Durable appends per second of the embedded event log, with 1, 16 and 128 concurrent
//! appenders, in a temporary directory (so on whatever disk holds `$TMPDIR`).
//!
//! ```text
//! cargo run --release -p herald-hub --example log_throughput [-- <seconds per run> [<data bytes>]]
//! ```
//!
//! Each run appends for a fixed time (default 3 s, at most 1,000,000 appends) and reports the
//! appends acknowledged per second and the append latency (p50, p99). Every acknowledged append is
//! fsynced: what changes with concurrency is how many appends share one commit (group commit).
//! The run then reopens the log and reports how long the open took (it checks the whole file).

use std::sync::Arc;
use std::time::{Duration, Instant};

use herald_hub::log::{EmbeddedLog, Log, NewEvent, Retention};

/// Bounds every run whatever the disk: no run appends more than this.
const MAX_APPENDS_PER_RUN: usize = 1_000_000;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let seconds: f64 = args.next().map_or(Ok(3.0), |s| s.parse())?;
    let data_bytes: usize = args.next().map_or(Ok(100), |s| s.parse())?;
    let run_for = Duration::from_secs_f64(seconds.clamp(0.1, 60.0));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!(
        "embedded log, {data_bytes}-byte events, {:.1} s per run, in {}",
        run_for.as_secs_f64(),
        std::env::temp_dir().display()
    );
    println!("appenders  appends/s  p50 ms  p99 ms  appends  reopen ms");
    for appenders in [1, 16, 128] {
        runtime.block_on(run(appenders, run_for, data_bytes))?;
    }
    Ok(())
}

async fn run(
    appenders: usize,
    run_for: Duration,
    data_bytes: usize,
) -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let retention = Retention {
        max_events: None,
        max_age: None,
    };
    let log = Arc::new(EmbeddedLog::open(dir.path(), retention)?);
    let data: Arc<str> = "x".repeat(data_bytes).into();
    let started = Instant::now();
    let deadline = started + run_for;
    let per_task = MAX_APPENDS_PER_RUN / appenders;
    let tasks: Vec<_> = (0..appenders)
        .map(|task| {
            let log = Arc::clone(&log);
            let data = Arc::clone(&data);
            tokio::spawn(async move {
                let mut latencies = Vec::new();
                for _ in 0..per_task {
                    if Instant::now() >= deadline {
                        break;
                    }
                    let event = NewEvent {
                        topic: format!("bench/{task}"),
                        event_type: None,
                        data: data.to_string(),
                        retry: None,
                        private: false,
                        idempotency_key: None,
                    };
                    let sent = Instant::now();
                    log.append(event).await?;
                    latencies.push(sent.elapsed());
                }
                Ok::<_, herald_hub::log::LogError>(latencies)
            })
        })
        .collect();
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let elapsed = started.elapsed();
    log.close().await?;
    let opened = Instant::now();
    let reopened = EmbeddedLog::open(dir.path(), retention)?;
    let reopen = opened.elapsed();
    reopened.close().await?;

    latencies.sort();
    let quantile = |q: f64| {
        let at = ((latencies.len() as f64 * q) as usize).min(latencies.len().saturating_sub(1));
        latencies.get(at).map_or(0.0, |d| d.as_secs_f64() * 1e3)
    };
    println!(
        "{appenders:>9}  {:>9.0}  {:>6.2}  {:>6.2}  {:>7}  {:>9.1}",
        latencies.len() as f64 / elapsed.as_secs_f64(),
        quantile(0.50),
        quantile(0.99),
        latencies.len(),
        reopen.as_secs_f64() * 1e3,
    );
    Ok(())
}

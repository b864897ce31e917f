//! `herald bench`: a load generator for any SSE server (herald, nchan, your own), loopback only.
//!
//! - `herald bench conns --url URL -n N`: opens N subscriptions, holds them, and reports how many
//!   held and the server's resident memory per connection (`--server-pid`).
//! - `herald bench fanout --sub-url URL --pub-url URL --subs N --rate R|max`: N subscribers on
//!   one topic and one publisher; reports delivery counts (loss, duplicates, order), throughput,
//!   publish-to-receive latency and the harness's own CPU time.
//!
//! `--url`, `--sub-url` and `--server-pid` are repeatable, for several hubs sharing one Redis:
//! the subscribers are split over the URLs in equal contiguous blocks ([`subs::url_of`]) and the
//! servers' figures are summed over every pid's process tree.
//!
//! Each subscriber is one tokio task on a raw socket with a minimal HTTP/1.1 reader
//! ([`http`]) feeding `herald_wire::Parser`. Connections are spread over source addresses
//! 127.0.0.1-50, and over child processes (`herald bench worker`, hidden) above
//! `--max-conns-per-process`, because a process here may hold at most 20,000 open files.
//! docs/benchmarks-howto.md explains every figure.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, bail};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde::Serialize;

mod http;
mod publisher;
mod subs;
mod sys;
mod worker;

use http::Target;
use publisher::{PubConfig, PubCounters, Rate};
use subs::{GroupReport, Progress, SubsConfig};
use worker::{Pool, finish_all, total_progress};

/// Most subscribers one run may open.
const MAX_CONNS: usize = 500_000;

/// Subscribers per process before the run spreads over child processes: the hard limit of
/// 20,000 open files, less room for the runtime, the publisher and standard streams.
const DEFAULT_CONNS_PER_PROCESS: usize = 18_000;

/// Longest `--secs` accepted (every loop of the tool is bounded in time).
const MAX_SECS: f64 = 3600.0;

/// Largest `--size` accepted: 1 MiB, herald's publish limit.
const MAX_SIZE: usize = 1024 * 1024;

/// The publish body herald expects: JSON with the topic and the data as a string.
const DEFAULT_BODY_TEMPLATE: &str = r#"{"topic":"bench","data":"{data}"}"#;

/// Event size limit of `conns` subscribers: idle streams carry only comments and the odd event.
const CONNS_MAX_EVENT_SIZE: usize = 64 * 1024;

/// How often the progress bar and the phase conditions are refreshed.
const TICK: Duration = Duration::from_millis(50);

/// Arguments of `herald bench`.
#[derive(Debug, clap::Args)]
pub(crate) struct Args {
    // Boxed: the flags of the three subcommands are large, the other commands' are not.
    #[command(subcommand)]
    command: Box<BenchCommand>,
}

#[derive(Debug, clap::Subcommand)]
enum BenchCommand {
    /// Open N subscriptions, hold them, report how many held and the server's memory per connection.
    Conns(ConnsArgs),
    /// N subscribers on one topic, one publisher: delivery counts, throughput and latency.
    Fanout(FanoutArgs),
    /// Runs a share of the subscribers for a parent `herald bench` (internal).
    #[command(hide = true)]
    Worker(worker::WorkerArgs),
}

/// Flags shared by both benchmarks.
#[derive(Debug, clap::Args)]
struct CommonArgs {
    /// Extra request header, `Name: value` (repeatable), e.g. `-H 'Authorization: Bearer ...'`
    /// (`-H`, as on `herald subscribe` and curl).
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE")]
    headers: Vec<String>,
    /// Print the report as JSON on stdout instead of the human summary.
    #[arg(long)]
    json: bool,
    /// How many connections may be opening at the same time.
    #[arg(long, default_value_t = 256, value_parser = clap::value_parser!(u32).range(1..=10_000))]
    connect_concurrency: u32,
    /// Subscribers per process; above it the run spreads over child processes.
    #[arg(long, default_value_t = DEFAULT_CONNS_PER_PROCESS, hide = true)]
    max_conns_per_process: usize,
    /// Longest wait for every subscriber to connect, in seconds.
    #[arg(long, default_value_t = 120.0, value_parser = parse_secs)]
    open_timeout: f64,
}

/// `herald bench conns`.
#[derive(Debug, clap::Args)]
struct ConnsArgs {
    /// Event stream URL, e.g. http://127.0.0.1:3000/events?topic=idle (loopback only).
    /// Repeatable: subscriber i of N goes to URL number i*URLS/N, so each URL gets an equal
    /// contiguous block (sizes differ by one at most).
    #[arg(long = "url", value_name = "URL", required = true)]
    urls: Vec<String>,
    /// Number of subscriptions.
    #[arg(short = 'n', long = "conns", value_parser = parse_count)]
    n: usize,
    /// How long to hold them once all are open, in seconds.
    #[arg(long, default_value_t = 10.0, value_parser = parse_secs)]
    secs: f64,
    /// The server's process id: its resident memory (with its children) is sampled before and
    /// while holding. Repeatable: the figures are summed over every process tree.
    #[arg(long = "server-pid", value_name = "PID")]
    server_pids: Vec<u32>,
    #[command(flatten)]
    common: CommonArgs,
}

/// `herald bench fanout`.
#[derive(Debug, clap::Args)]
struct FanoutArgs {
    /// Event stream URL of the topic, e.g. http://127.0.0.1:3000/events?topic=bench.
    /// Repeatable (hubs sharing one Redis): subscriber i of N goes to URL number i*URLS/N, so
    /// each URL gets an equal contiguous block (sizes differ by one at most).
    #[arg(long = "sub-url", value_name = "URL", required = true)]
    sub_urls: Vec<String>,
    /// Publish URL, e.g. http://127.0.0.1:3000/publish.
    #[arg(long)]
    pub_url: String,
    /// Publish body; `{data}` is replaced by the event data (ASCII letters, digits, spaces).
    /// Use `{data}` alone for servers that take the raw body (nchan).
    #[arg(long, default_value = DEFAULT_BODY_TEMPLATE)]
    body_template: String,
    /// Content-Type of the publish.
    #[arg(long, default_value = "application/json")]
    content_type: String,
    /// Number of subscribers.
    #[arg(long, value_parser = parse_count)]
    subs: usize,
    /// Events per second, or `max`: as fast as acknowledgements come back.
    #[arg(long, value_parser = parse_rate)]
    rate: Rate,
    /// How long to publish, in seconds.
    #[arg(long, default_value_t = 10.0, value_parser = parse_secs)]
    secs: f64,
    /// Size of each event's data in bytes (sequence number and timestamp, padded).
    #[arg(long, default_value_t = 64, value_parser = parse_size)]
    size: usize,
    /// Publishes in flight at most (one connection each).
    #[arg(long, default_value_t = 8, value_parser = clap::value_parser!(u32).range(1..=1024))]
    in_flight: u32,
    /// Publishes at most, whatever `--secs` says.
    #[arg(long, default_value_t = 10_000_000, value_parser = clap::value_parser!(u64).range(1..=1_000_000_000))]
    max_events: u64,
    /// After the last publish, how long to wait for stragglers, in seconds.
    #[arg(long, default_value_t = 5.0, value_parser = parse_secs)]
    drain_secs: f64,
    /// The server's process id: its CPU time (with its children) while publishing and draining,
    /// and its resident memory at the end, go in the report. Repeatable: the figures are summed
    /// over every process tree.
    #[arg(long = "server-pid", value_name = "PID")]
    server_pids: Vec<u32>,
    #[command(flatten)]
    common: CommonArgs,
}

fn parse_count(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a whole number"))?;
    if n == 0 {
        return Err("must be at least 1".to_owned());
    }
    if n > MAX_CONNS {
        return Err(format!("at most {MAX_CONNS}"));
    }
    Ok(n)
}

fn parse_secs(s: &str) -> Result<f64, String> {
    let v: f64 = s
        .parse()
        .map_err(|_| format!("`{s}` is not a number of seconds"))?;
    if !(v > 0.0 && v <= MAX_SECS) {
        return Err(format!("must be above 0 and at most {MAX_SECS}"));
    }
    Ok(v)
}

fn parse_size(s: &str) -> Result<usize, String> {
    let n: usize = s
        .parse()
        .map_err(|_| format!("`{s}` is not a size in bytes"))?;
    if n > MAX_SIZE {
        return Err(format!("at most {MAX_SIZE} bytes"));
    }
    Ok(n)
}

fn parse_rate(s: &str) -> Result<Rate, String> {
    if s.eq_ignore_ascii_case("max") {
        return Ok(Rate::Max);
    }
    match s.parse::<f64>() {
        Ok(r) if r > 0.0 && r <= 1_000_000.0 => Ok(Rate::PerSec(r)),
        _ => Err(format!(
            "`{s}` is not a rate: give events per second (above 0, at most 1000000) or `max`"
        )),
    }
}

fn check_headers(headers: &[String]) -> anyhow::Result<()> {
    for h in headers {
        let Some((name, _)) = h.split_once(':') else {
            bail!("--header `{h}`: expected `Name: value`");
        };
        if name.is_empty() || !name.bytes().all(|b| b.is_ascii_graphic()) {
            bail!("--header `{h}`: bad header name");
        }
        if h.bytes().any(|b| b == b'\r' || b == b'\n' || b == 0) {
            bail!("--header: CR, LF and NUL are not allowed in a header");
        }
    }
    Ok(())
}

fn check_pids(pids: &[u32]) -> anyhow::Result<()> {
    match pids.iter().find(|&&pid| sys::rss_tree_bytes(pid).is_none()) {
        Some(pid) => bail!("--server-pid {pid}: no such process"),
        None => Ok(()),
    }
}

/// Parses every URL given to the repeatable `flag`; the error names the URL at fault and, when
/// there are several, which one it is.
fn parse_targets(flag: &str, urls: &[String]) -> anyhow::Result<Vec<Target>> {
    urls.iter()
        .enumerate()
        .map(|(i, url)| {
            Target::parse(url).with_context(|| {
                if urls.len() == 1 {
                    flag.to_owned()
                } else {
                    format!("{flag} number {} of {}", i + 1, urls.len())
                }
            })
        })
        .collect()
}

/// An error message and how often it happened.
#[derive(Debug, Serialize)]
struct ErrorCount {
    message: String,
    count: u64,
}

fn error_counts(errors: Vec<(String, u64)>) -> Vec<ErrorCount> {
    errors
        .into_iter()
        .map(|(message, count)| ErrorCount { message, count })
        .collect()
}

/// Runs `herald bench`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    match *args.command {
        BenchCommand::Conns(a) => conns(a),
        BenchCommand::Fanout(a) => fanout(a),
        BenchCommand::Worker(a) => worker::run(a),
    }
}

/// The runtime of a bench process: all cores (the harness must not be the bottleneck).
fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("start the async runtime")
}

fn progress_bar(json: bool) -> ProgressBar {
    // Progress goes to stderr and only to a terminal: scripts and --json see none of it.
    let target = if !json && std::io::stderr().is_terminal() {
        ProgressDrawTarget::stderr()
    } else {
        ProgressDrawTarget::hidden()
    };
    let bar = ProgressBar::with_draw_target(None, target);
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {msg}")
            .unwrap_or_else(|_| ProgressStyle::default_spinner()),
    );
    bar
}

/// Waits until `done(progress)` holds or `limit` passes, refreshing the bar; returns the last
/// counters and whether `done` held.
async fn wait_for(
    pools: &[Pool],
    bar: &ProgressBar,
    limit: Duration,
    done: impl Fn(&Progress) -> bool,
    message: impl Fn(&Progress) -> String,
) -> (Progress, bool) {
    let deadline = tokio::time::Instant::now() + limit;
    loop {
        let p = total_progress(pools);
        bar.set_message(message(&p));
        bar.tick();
        if done(&p) {
            return (p, true);
        }
        if tokio::time::Instant::now() >= deadline {
            return (p, false);
        }
        tokio::time::sleep(TICK).await;
    }
}

/// The memory of one `--server-pid` (with its children) in a `conns` report.
#[derive(Debug, Serialize)]
struct ConnsServer {
    pid: u32,
    rss_before_bytes: Option<u64>,
    rss_holding_bytes: Option<u64>,
}

/// The report of `herald bench conns`. `url` and `server_pid` are the first URL and the first
/// `--server-pid` (reports of one server read the same as before); the `server_rss_*` figures
/// are sums over every `--server-pid`, `servers` has them one by one.
#[derive(Debug, Serialize)]
struct ConnsReport {
    url: String,
    urls: Vec<String>,
    requested: u64,
    opened: u64,
    failed: u64,
    held: u64,
    closed_early: u64,
    open_secs: f64,
    hold_secs: f64,
    server_pid: Option<u32>,
    server_rss_before_bytes: Option<u64>,
    server_rss_holding_bytes: Option<u64>,
    server_rss_peak_bytes: Option<u64>,
    server_bytes_per_conn: Option<f64>,
    servers: Vec<ConnsServer>,
    harness_rss_bytes: Option<u64>,
    harness_cpu_secs: f64,
    processes: usize,
    errors: Vec<ErrorCount>,
}

fn conns(args: ConnsArgs) -> anyhow::Result<ExitCode> {
    let targets = parse_targets("--url", &args.urls)?;
    check_headers(&args.common.headers)?;
    let pids = &args.server_pids;
    check_pids(pids)?;
    sys::raise_open_files_limit();
    let cpu0 = sys::cpu_seconds();
    let report = runtime()?.block_on(async {
        let bar = progress_bar(args.common.json);
        let n = args.n as u64;
        let rss_before = sys::rss_trees_bytes(pids);
        let rss_before_each: Vec<Option<u64>> =
            pids.iter().map(|&p| sys::rss_tree_bytes(p)).collect();
        let started = std::time::Instant::now();
        let hold = Duration::from_secs_f64(args.secs);
        let open_limit = Duration::from_secs_f64(args.common.open_timeout);
        let pools = Pool::start_all(
            SubsConfig {
                targets,
                headers: args.common.headers.clone(),
                count: args.n,
                first_index: 0,
                total: args.n,
                connect_concurrency: args.common.connect_concurrency as usize,
                max_event_size: CONNS_MAX_EVENT_SIZE,
            },
            &args.urls,
            args.common.max_conns_per_process.max(1),
            open_limit + hold + Duration::from_secs(60),
        )?;
        let processes = pools.len();
        wait_for(
            &pools,
            &bar,
            open_limit,
            |p| p.opened + p.failed >= n,
            |p| format!("opening {}/{n} ({} failed)", p.opened, p.failed),
        )
        .await;
        let open_secs = started.elapsed().as_secs_f64();
        // Hold, sampling the server's memory once a second; the last sample is the figure.
        let hold_start = tokio::time::Instant::now();
        let mut rss_holding = None;
        let mut rss_holding_each = vec![None; pids.len()];
        let mut rss_peak: Option<u64> = None;
        loop {
            let left = hold.saturating_sub(hold_start.elapsed());
            wait_for(
                &pools,
                &bar,
                left.min(Duration::from_secs(1)),
                |_| false,
                |p| {
                    format!(
                        "holding {} connections ({} closed), {:.0} s left",
                        p.opened - p.closed.min(p.opened),
                        p.closed,
                        hold.saturating_sub(hold_start.elapsed()).as_secs_f64()
                    )
                },
            )
            .await;
            if !pids.is_empty() {
                rss_holding = sys::rss_trees_bytes(pids);
                rss_holding_each = pids.iter().map(|&p| sys::rss_tree_bytes(p)).collect();
                rss_peak = rss_peak.max(rss_holding);
            }
            if hold_start.elapsed() >= hold {
                break;
            }
        }
        let harness_rss = sys::rss_tree_bytes(std::process::id());
        bar.set_message("closing");
        let report: GroupReport = finish_all(pools, &[]).await?;
        bar.finish_and_clear();
        let per_conn = match (rss_before, rss_holding) {
            (Some(b), Some(h)) if report.held > 0 => {
                Some((h as f64 - b as f64) / report.held as f64)
            }
            _ => None,
        };
        anyhow::Ok(ConnsReport {
            url: args.urls[0].clone(),
            urls: args.urls.clone(),
            requested: n,
            opened: report.opened,
            failed: report.failed,
            held: report.held,
            closed_early: report.opened - report.held,
            open_secs,
            hold_secs: args.secs,
            server_pid: pids.first().copied(),
            server_rss_before_bytes: rss_before,
            server_rss_holding_bytes: rss_holding,
            server_rss_peak_bytes: rss_peak,
            server_bytes_per_conn: per_conn,
            servers: pids
                .iter()
                .zip(rss_before_each.into_iter().zip(rss_holding_each))
                .map(|(&pid, (before, holding))| ConnsServer {
                    pid,
                    rss_before_bytes: before,
                    rss_holding_bytes: holding,
                })
                .collect(),
            harness_rss_bytes: harness_rss,
            harness_cpu_secs: 0.0,
            processes,
            errors: error_counts(report.errors),
        })
    })?;
    let report = ConnsReport {
        harness_cpu_secs: sys::cpu_seconds() - cpu0,
        ..report
    };
    if args.common.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_conns(&report);
    }
    Ok(if report.opened == 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    })
}

fn print_conns(r: &ConnsReport) {
    println!(
        "herald bench conns: {} subscriptions to {}",
        r.requested,
        r.urls.join(" ")
    );
    println!(
        "  opened        {} in {:.1} s ({} failed), {} processes",
        r.opened, r.open_secs, r.failed, r.processes
    );
    println!(
        "  held          {} for {:.1} s ({} closed early)",
        r.held, r.hold_secs, r.closed_early
    );
    match (r.server_rss_before_bytes, r.server_rss_holding_bytes) {
        (Some(b), Some(h)) => {
            println!(
                "  server RSS    {:.1} MiB before, {:.1} MiB holding{}",
                mib(b),
                mib(h),
                summed_over(r.servers.len())
            );
            if let Some(per) = r.server_bytes_per_conn {
                println!("  per conn      {:.0} bytes ({:.2} KiB)", per, per / 1024.0);
            }
        }
        _ => println!("  server RSS    not measured (give --server-pid)"),
    }
    if let Some(h) = r.harness_rss_bytes {
        println!("  harness RSS   {:.1} MiB", mib(h));
    }
    println!("  harness CPU   {:.2} s", r.harness_cpu_secs);
    print_errors(&r.errors);
}

/// Says that a server figure is a sum, when it is.
fn summed_over(servers: usize) -> String {
    if servers > 1 {
        format!(" (sum over {servers} servers)")
    } else {
        String::new()
    }
}

fn mib(b: u64) -> f64 {
    b as f64 / (1024.0 * 1024.0)
}

fn print_errors(errors: &[ErrorCount]) {
    for e in errors {
        println!("  error         {} x {}", e.count, e.message);
    }
}

/// Percentiles of a latency histogram, in milliseconds.
#[derive(Debug, Default, Serialize)]
struct Latency {
    samples: u64,
    p50: f64,
    p90: f64,
    p99: f64,
    p999: f64,
    max: f64,
    mean: f64,
}

impl Latency {
    fn of(h: &hdrhistogram::Histogram<u64>) -> Self {
        if h.is_empty() {
            return Self::default();
        }
        let ms = |us: u64| us as f64 / 1000.0;
        Self {
            samples: h.len(),
            p50: ms(h.value_at_quantile(0.50)),
            p90: ms(h.value_at_quantile(0.90)),
            p99: ms(h.value_at_quantile(0.99)),
            p999: ms(h.value_at_quantile(0.999)),
            max: ms(h.max()),
            mean: h.mean() / 1000.0,
        }
    }
}

/// The figures of one `--server-pid` (with its children) in a `fanout` report.
#[derive(Debug, Serialize)]
struct FanoutServer {
    pid: u32,
    cpu_secs: Option<f64>,
    rss_bytes: Option<u64>,
}

/// The report of `herald bench fanout`. `sub_url` is the first of `sub_urls` (reports of one
/// server read the same as before); `server_cpu_secs` and `server_rss_bytes` are sums over every
/// `--server-pid`, `servers` has them one by one.
#[derive(Debug, Serialize)]
struct FanoutReport {
    sub_url: String,
    sub_urls: Vec<String>,
    pub_url: String,
    subs: u64,
    subs_connected: u64,
    subs_failed: u64,
    subs_held: u64,
    size: usize,
    rate: Option<f64>,
    secs: f64,
    in_flight: u32,
    published: u64,
    publish_errors: u64,
    late_publishes: u64,
    publishes_per_sec: f64,
    delivered: u64,
    expected: u64,
    loss: u64,
    duplicates: u64,
    out_of_order: u64,
    order_violations: u64,
    delivered_unacked: u64,
    foreign_events: u64,
    oversized_events: u64,
    deliveries_per_sec: f64,
    drained: bool,
    latency_ms: Latency,
    ack_latency_ms: Latency,
    server_cpu_secs: Option<f64>,
    server_rss_bytes: Option<u64>,
    servers: Vec<FanoutServer>,
    harness_cpu_secs: f64,
    processes: usize,
    errors: Vec<ErrorCount>,
}

fn fanout(args: FanoutArgs) -> anyhow::Result<ExitCode> {
    let sub_targets = parse_targets("--sub-url", &args.sub_urls)?;
    let pub_target = Target::parse(&args.pub_url).context("--pub-url")?;
    check_headers(&args.common.headers)?;
    let pids = &args.server_pids;
    check_pids(pids)?;
    let (prefix, suffix) = match args.body_template.split_once("{data}") {
        Some((p, s)) if !s.contains("{data}") => (p.to_owned(), s.to_owned()),
        _ => bail!("--body-template must contain `{{data}}` exactly once"),
    };
    if args.content_type.bytes().any(|b| b.is_ascii_control()) {
        bail!("--content-type: control characters are not allowed");
    }
    sys::raise_open_files_limit();
    let cpu0 = sys::cpu_seconds();
    let json = args.common.json;
    let report = runtime()?.block_on(async {
        let bar = progress_bar(json);
        let n = args.subs as u64;
        let duration = Duration::from_secs_f64(args.secs);
        let drain = Duration::from_secs_f64(args.drain_secs);
        let open_limit = Duration::from_secs_f64(args.common.open_timeout);
        // An event is at most the data plus its `data:` framing; leave room for servers that add
        // fields of their own.
        let max_event_size = args.size * 2 + 64 * 1024;
        let pools = Pool::start_all(
            SubsConfig {
                targets: sub_targets,
                headers: args.common.headers.clone(),
                count: args.subs,
                first_index: 0,
                total: args.subs,
                connect_concurrency: args.common.connect_concurrency as usize,
                max_event_size,
            },
            &args.sub_urls,
            args.common.max_conns_per_process.max(1),
            open_limit + duration + drain + Duration::from_secs(60),
        )?;
        let processes = pools.len();
        // Publishing starts only once every subscriber has its 200 (or has failed).
        let (opened, _) = wait_for(
            &pools,
            &bar,
            open_limit,
            |p| p.opened + p.failed >= n,
            |p| format!("connecting {}/{n} ({} failed)", p.opened, p.failed),
        )
        .await;
        if opened.opened == 0 {
            let report = finish_all(pools, &[]).await?;
            bar.finish_and_clear();
            let errors: Vec<String> = report
                .errors
                .iter()
                .map(|(m, c)| format!("{c} x {m}"))
                .collect();
            bail!(
                "no subscriber could connect to {}: {}",
                args.sub_urls.join(" "),
                errors.join("; ")
            );
        }
        let counters = Arc::new(PubCounters::default());
        let server_cpu0 = sys::cpu_trees_seconds(pids);
        let server_cpu0_each: Vec<Option<f64>> =
            pids.iter().map(|&p| sys::cpu_tree_seconds(p)).collect();
        let publish_start = sys::mono_ns();
        let publishing = tokio::spawn(publisher::run(
            PubConfig {
                target: pub_target,
                headers: args.common.headers.clone(),
                body_prefix: prefix,
                body_suffix: suffix,
                content_type: args.content_type.clone(),
                size: args.size,
                rate: args.rate,
                duration,
                in_flight: args.in_flight as usize,
                max_events: args.max_events,
            },
            Arc::clone(&counters),
        ));
        let subs_now = opened.opened;
        let progress_msg = |p: &Progress| {
            format!(
                "published {} ({} errors), received {} of {}",
                counters.acked.load(Ordering::Relaxed),
                counters.errors.load(Ordering::Relaxed),
                p.unique,
                counters.acked.load(Ordering::Relaxed) * subs_now
            )
        };
        // The publisher stops by itself at the deadline; the extra margin covers its last acks.
        let _ = wait_for(
            &pools,
            &bar,
            duration,
            |_| publishing.is_finished(),
            &progress_msg,
        )
        .await;
        let outcome = publishing.await.context("the publisher task failed")?;
        let expected = outcome.acked * subs_now;
        let (_, drained) = wait_for(
            &pools,
            &bar,
            drain,
            |p| p.unique >= expected,
            |p| format!("draining: received {} of {expected}", p.unique),
        )
        .await;
        let server_cpu = sys::cpu_trees_seconds(pids);
        let server_rss = sys::rss_trees_bytes(pids);
        let servers: Vec<FanoutServer> = pids
            .iter()
            .zip(server_cpu0_each)
            .map(|(&pid, cpu0)| FanoutServer {
                pid,
                cpu_secs: sys::cpu_tree_seconds(pid).zip(cpu0).map(|(b, a)| b - a),
                rss_bytes: sys::rss_tree_bytes(pid),
            })
            .collect();
        bar.set_message("closing");
        let report = finish_all(pools, &outcome.not_acked).await?;
        bar.finish_and_clear();
        let delivered = report.delivered;
        let window = report.last_delivery_ns.saturating_sub(publish_start);
        let deliveries_per_sec = if window > 0 {
            delivered as f64 / (window as f64 / 1e9)
        } else {
            0.0
        };
        let mut ack = subs::new_histogram();
        for &(v, c) in &outcome.ack_latency_us {
            ack.saturating_record_n(v, c);
        }
        let mut errors = outcome.error_kinds.clone();
        errors.extend(report.errors.iter().cloned());
        anyhow::Ok(FanoutReport {
            sub_url: args.sub_urls[0].clone(),
            sub_urls: args.sub_urls.clone(),
            pub_url: args.pub_url.clone(),
            subs: n,
            subs_connected: report.opened,
            subs_failed: report.failed,
            subs_held: report.held,
            size: args.size,
            rate: match args.rate {
                Rate::PerSec(r) => Some(r),
                Rate::Max => None,
            },
            secs: args.secs,
            in_flight: args.in_flight,
            published: outcome.acked,
            publish_errors: outcome.errors,
            late_publishes: counters.late.load(Ordering::Relaxed),
            publishes_per_sec: outcome.acked as f64 / outcome.elapsed.as_secs_f64().max(1e-9),
            delivered,
            expected: outcome.acked * report.opened,
            loss: (outcome.acked * report.opened).saturating_sub(delivered),
            duplicates: report.duplicates,
            out_of_order: report.out_of_order,
            order_violations: report.order_violations,
            delivered_unacked: report.delivered_unacked,
            foreign_events: report.foreign,
            oversized_events: report.too_large,
            deliveries_per_sec,
            drained,
            latency_ms: Latency::of(&report.histogram()),
            ack_latency_ms: Latency::of(&ack),
            server_cpu_secs: server_cpu.zip(server_cpu0).map(|(b, a)| b - a),
            server_rss_bytes: server_rss,
            servers,
            harness_cpu_secs: 0.0,
            processes,
            errors: error_counts(errors),
        })
    })?;
    let report = FanoutReport {
        harness_cpu_secs: sys::cpu_seconds() - cpu0,
        ..report
    };
    if json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        print_fanout(&report);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_fanout(r: &FanoutReport) {
    let rate = r
        .rate
        .map_or_else(|| "max".to_owned(), |v| format!("{v}/s"));
    println!(
        "herald bench fanout: {} subscribers, {}-byte events, rate {rate}, {} s",
        r.subs, r.size, r.secs
    );
    println!(
        "  subscribers   {} connected, {} failed, {} held to the end ({} processes)",
        r.subs_connected, r.subs_failed, r.subs_held, r.processes
    );
    println!(
        "  published     {} ({} errors), {:.1}/s, {} in flight at most",
        r.published, r.publish_errors, r.publishes_per_sec, r.in_flight
    );
    println!(
        "  delivered     {} of {} expected: loss {}, duplicates {}, out of order {} ({} reordered by the server){}",
        r.delivered,
        r.expected,
        r.loss,
        r.duplicates,
        r.out_of_order,
        r.order_violations,
        if r.drained { "" } else { " (drain timed out)" }
    );
    if r.delivered_unacked + r.foreign_events + r.oversized_events > 0 {
        println!(
            "  also          {} deliveries of unacknowledged publishes, {} foreign events, {} oversized",
            r.delivered_unacked, r.foreign_events, r.oversized_events
        );
    }
    if r.late_publishes > 0 {
        println!(
            "  behind        {} publishes went out over {} ms late: the server did not keep up with the rate",
            r.late_publishes,
            publisher::LATE.as_millis()
        );
    }
    println!("  throughput    {:.0} deliveries/s", r.deliveries_per_sec);
    let l = &r.latency_ms;
    println!(
        "  latency       p50 {:.3} ms, p90 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        l.p50, l.p90, l.p99, l.max
    );
    let a = &r.ack_latency_ms;
    println!(
        "  publish ack   p50 {:.3} ms, p99 {:.3} ms, max {:.3} ms",
        a.p50, a.p99, a.max
    );
    if let Some(cpu) = r.server_cpu_secs {
        println!(
            "  server        {:.2} s CPU while publishing and draining{}{}",
            cpu,
            r.server_rss_bytes
                .map(|b| format!(", {:.1} MiB RSS at the end", mib(b)))
                .unwrap_or_default(),
            summed_over(r.servers.len())
        );
    }
    println!("  harness CPU   {:.2} s", r.harness_cpu_secs);
    print_errors(&r.errors);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flag_values_are_validated() {
        assert_eq!(parse_rate("max"), Ok(Rate::Max));
        assert_eq!(parse_rate("100"), Ok(Rate::PerSec(100.0)));
        for bad in ["0", "-1", "abc", "NaN", "inf", "1e9"] {
            assert!(parse_rate(bad).is_err(), "{bad}");
        }
        assert_eq!(parse_count("3"), Ok(3));
        assert!(parse_count("0").is_err());
        assert!(parse_count("-3").is_err());
        assert!(parse_count("600000").is_err());
        assert!(parse_secs("0").is_err());
        assert!(parse_secs("NaN").is_err());
        assert_eq!(parse_secs("2.5"), Ok(2.5));
        assert!(parse_size("2000000").is_err());
        assert!(check_headers(&["Authorization: Bearer x".into()]).is_ok());
        assert!(check_headers(&["no colon".into()]).is_err());
        assert!(check_headers(&["X: a\r\nInjected: 1".into()]).is_err());
        assert!(check_headers(&[": empty name".into()]).is_err());
    }

    #[test]
    fn a_bad_url_among_several_is_named() {
        let good = "http://127.0.0.1:3000/events".to_owned();
        let bad = "http://10.0.0.1:3000/events".to_owned();
        assert_eq!(
            parse_targets("--url", std::slice::from_ref(&good))
                .unwrap()
                .len(),
            1
        );
        let two = parse_targets("--url", &[good.clone(), good.clone()]).unwrap();
        assert_eq!(two.len(), 2);
        let e = format!(
            "{:#}",
            parse_targets("--sub-url", &[good, bad]).unwrap_err()
        );
        assert!(e.starts_with("--sub-url number 2 of 2: "), "{e}");
        assert!(e.contains("`http://10.0.0.1:3000/events`"), "{e}");
        assert!(e.contains("not loopback"), "{e}");
        let e = format!(
            "{:#}",
            parse_targets("--url", &["nope".to_owned()]).unwrap_err()
        );
        assert!(e.starts_with("--url: "), "{e}");
    }
}

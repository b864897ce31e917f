//! Spreading subscribers over processes: a process here may hold at most 20,000 open files (a hard
//! limit), so a run with more subscribers re-executes `herald bench worker` (hidden) once per
//! share and merges the children's reports.
//!
//! The protocol is JSON lines. The child writes `{"progress": Progress}` every
//! [`PROGRESS_EVERY`] and `{"done": GroupReport}` at the end; the parent writes one line
//! `{"not_acked": [...]}` to the child's stdin to stop it (end of stdin stops it too, so a child
//! never outlives its parent for long).

use std::process::{ExitCode, Stdio};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::process::{Child, ChildStdin, Command};
use tokio::sync::oneshot;

use super::http::Target;
use super::subs::{GroupReport, LocalPool, Progress, SubsConfig};

/// How often a child reports its counters.
const PROGRESS_EVERY: Duration = Duration::from_millis(200);

/// How long the parent waits for a stopped child's report.
const REPORT_TIMEOUT: Duration = Duration::from_secs(60);

/// Arguments of the hidden `herald bench worker`.
#[derive(Debug, clap::Args)]
pub(crate) struct WorkerArgs {
    /// Event stream URLs of the whole run (repeatable), in the parent's order.
    #[arg(long = "url", required = true)]
    urls: Vec<String>,
    /// Number of subscribers in this process.
    #[arg(long)]
    count: usize,
    /// Index of the first subscriber across all processes.
    #[arg(long)]
    first_index: usize,
    /// Number of subscribers across all processes (spreads them over the URLs).
    #[arg(long)]
    total: usize,
    /// Extra request header.
    #[arg(long = "header")]
    headers: Vec<String>,
    /// Concurrent connection attempts.
    #[arg(long)]
    connect_concurrency: usize,
    /// Parser size limit of one event.
    #[arg(long)]
    max_event_size: usize,
    /// Hard cap on the life of this process, in seconds.
    #[arg(long)]
    deadline_secs: u64,
}

#[derive(Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum ChildLine {
    Progress(Progress),
    Done(GroupReport),
}

#[derive(Serialize, Deserialize)]
struct StopLine {
    not_acked: Vec<u64>,
}

/// Runs the child side.
pub(crate) fn run(args: WorkerArgs) -> anyhow::Result<ExitCode> {
    super::sys::raise_open_files_limit();
    let targets = args
        .urls
        .iter()
        .map(|u| Target::parse(u))
        .collect::<anyhow::Result<Vec<_>>>()?;
    super::runtime()?.block_on(async move {
        let pool = LocalPool::start(SubsConfig {
            targets,
            headers: args.headers,
            count: args.count,
            first_index: args.first_index,
            total: args.total,
            connect_concurrency: args.connect_concurrency,
            max_event_size: args.max_event_size,
        });
        let mut stdout = tokio::io::stdout();
        let mut stdin = BufReader::new(tokio::io::stdin()).lines();
        let deadline = tokio::time::sleep(Duration::from_secs(args.deadline_secs));
        tokio::pin!(deadline);
        let mut tick = tokio::time::interval(PROGRESS_EVERY);
        let not_acked = loop {
            tokio::select! {
                _ = tick.tick() => {
                    let line = serde_json::to_string(&ChildLine::Progress(pool.progress()))?;
                    stdout.write_all(format!("{line}\n").as_bytes()).await?;
                    stdout.flush().await?;
                }
                line = stdin.next_line() => {
                    break match line {
                        Ok(Some(l)) => serde_json::from_str::<StopLine>(&l)
                            .map(|s| s.not_acked)
                            .unwrap_or_default(),
                        _ => Vec::new(),
                    };
                }
                () = &mut deadline => break Vec::new(),
            }
        };
        let report = pool.finish(&not_acked).await;
        let line = serde_json::to_string(&ChildLine::Done(report))?;
        stdout.write_all(format!("{line}\n").as_bytes()).await?;
        stdout.flush().await?;
        Ok(ExitCode::SUCCESS)
    })
}

/// Subscribers running in a child process.
pub(crate) struct ChildPool {
    child: Child,
    stdin: ChildStdin,
    progress: Arc<Mutex<Progress>>,
    done: oneshot::Receiver<GroupReport>,
}

impl ChildPool {
    /// Starts a child running `config.count` subscribers; `urls` are the text of
    /// `config.targets`.
    pub(crate) fn start(
        config: &SubsConfig,
        urls: &[String],
        deadline: Duration,
    ) -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("find the herald executable")?;
        let mut cmd = Command::new(exe);
        cmd.args(["bench", "worker"]);
        for url in urls {
            cmd.arg("--url").arg(url);
        }
        cmd.arg("--count")
            .arg(config.count.to_string())
            .arg("--first-index")
            .arg(config.first_index.to_string())
            .arg("--total")
            .arg(config.total.to_string())
            .arg("--connect-concurrency")
            .arg(config.connect_concurrency.to_string())
            .arg("--max-event-size")
            .arg(config.max_event_size.to_string())
            .arg("--deadline-secs")
            .arg(deadline.as_secs().max(1).to_string());
        for h in &config.headers {
            cmd.arg("--header").arg(h);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .kill_on_drop(true);
        let mut child = cmd.spawn().context("start a bench worker process")?;
        let stdin = child.stdin.take().context("worker stdin")?;
        let stdout = child.stdout.take().context("worker stdout")?;
        let progress = Arc::new(Mutex::new(Progress::default()));
        let (tx, done) = oneshot::channel();
        let shared = Arc::clone(&progress);
        tokio::spawn(async move {
            let mut lines = BufReader::new(stdout).lines();
            // Ends when the child closes stdout (it exits) or sends its report.
            while let Ok(Some(line)) = lines.next_line().await {
                match serde_json::from_str::<ChildLine>(&line) {
                    Ok(ChildLine::Progress(p)) => {
                        *shared.lock().unwrap_or_else(PoisonError::into_inner) = p;
                    }
                    Ok(ChildLine::Done(report)) => {
                        let _ = tx.send(report);
                        break;
                    }
                    Err(_) => {}
                }
            }
        });
        Ok(Self {
            child,
            stdin,
            progress,
            done,
        })
    }

    /// The child's last reported counters.
    pub(crate) fn progress(&self) -> Progress {
        *self.progress.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Stops the child and returns its report.
    pub(crate) async fn finish(mut self, not_acked: &[u64]) -> anyhow::Result<GroupReport> {
        let line = serde_json::to_string(&StopLine {
            not_acked: not_acked.to_vec(),
        })?;
        // A child that already exited has closed its stdin; its report (or its absence) says more.
        let _ = self.stdin.write_all(format!("{line}\n").as_bytes()).await;
        let _ = self.stdin.flush().await;
        drop(self.stdin);
        let report = tokio::time::timeout(REPORT_TIMEOUT, self.done)
            .await
            .context("a bench worker did not report in time")?
            .context("a bench worker exited without a report")?;
        let _ = tokio::time::timeout(REPORT_TIMEOUT, self.child.wait()).await;
        Ok(report)
    }
}

/// A group of subscribers, here or in a child process.
pub(crate) enum Pool {
    /// Tasks of this process.
    Local(LocalPool),
    /// A child process.
    Child(Box<ChildPool>),
}

impl Pool {
    /// Starts `config.count` subscribers, in this process when there are at most `per_process`,
    /// else in `ceil(count / per_process)` child processes of equal share. `urls` are the text
    /// of `config.targets`; every child gets them all and picks per subscriber, so a child's
    /// share may straddle two URLs.
    pub(crate) fn start_all(
        config: SubsConfig,
        urls: &[String],
        per_process: usize,
        deadline: Duration,
    ) -> anyhow::Result<Vec<Pool>> {
        let total = config.count;
        if total <= per_process {
            return Ok(vec![Pool::Local(LocalPool::start(config))]);
        }
        let children = total.div_ceil(per_process);
        let mut pools = Vec::with_capacity(children);
        let mut first = 0;
        for c in 0..children {
            // Equal shares; the first `total % children` children take one more.
            let count = total / children + usize::from(c < total % children);
            let share = SubsConfig {
                targets: config.targets.clone(),
                headers: config.headers.clone(),
                count,
                first_index: first,
                total: config.total,
                connect_concurrency: config.connect_concurrency.div_ceil(children).max(1),
                max_event_size: config.max_event_size,
            };
            pools.push(Pool::Child(Box::new(ChildPool::start(
                &share, urls, deadline,
            )?)));
            first += count;
        }
        Ok(pools)
    }

    /// The live counters.
    pub(crate) fn progress(&self) -> Progress {
        match self {
            Pool::Local(p) => p.progress(),
            Pool::Child(p) => p.progress(),
        }
    }

    /// Stops the subscribers and reports.
    pub(crate) async fn finish(self, not_acked: &[u64]) -> anyhow::Result<GroupReport> {
        match self {
            Pool::Local(p) => Ok(p.finish(not_acked).await),
            Pool::Child(p) => p.finish(not_acked).await,
        }
    }
}

/// The sum of the counters of `pools`.
pub(crate) fn total_progress(pools: &[Pool]) -> Progress {
    pools
        .iter()
        .map(Pool::progress)
        .fold(Progress::default(), |a, p| Progress {
            opened: a.opened + p.opened,
            failed: a.failed + p.failed,
            closed: a.closed + p.closed,
            received: a.received + p.received,
            unique: a.unique + p.unique,
        })
}

/// Stops every pool concurrently (each waits for its own subscribers) and merges their reports.
pub(crate) async fn finish_all(pools: Vec<Pool>, not_acked: &[u64]) -> anyhow::Result<GroupReport> {
    let mut report = GroupReport::default();
    for r in futures_util::future::join_all(pools.into_iter().map(|p| p.finish(not_acked))).await {
        report.merge(r?);
    }
    Ok(report)
}

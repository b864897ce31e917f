//! `herald health [BASE]`: asks a hub's `GET /healthz` and exits 0 when it answers 200, so a
//! container's HEALTHCHECK or a supervisor's probe needs no curl in the image.
//!
//! Exit codes: 0 healthy (the hub's JSON answer is on stdout); 1 unhealthy (the hub answered
//! another status, its body on stderr) or unreachable within the timeout; 2 bad usage.

use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;

/// The longest a probe waits by default: a healthy hub answers `/healthz` in milliseconds, and a
/// probe that hangs is worse than one that fails (Docker's own default timeout is 30 s).
const DEFAULT_HEALTH_TIMEOUT: Duration = Duration::from_secs(5);

/// The most of an answer printed: `/healthz` answers a few hundred bytes.
const MAX_ANSWER: usize = 64 * 1024;

/// Arguments of `herald health`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Examples:
  herald health
  herald health http://127.0.0.1:8080 --timeout 2s")]
pub(crate) struct Args {
    /// The hub's base URL; `/healthz` is appended.
    #[arg(
        value_name = "BASE",
        env = "HERALD_URL",
        default_value = "http://127.0.0.1:3000"
    )]
    url: String,

    /// How long to wait for the answer, e.g. `500ms`, `2s` [default: 5s].
    #[arg(long, value_name = "DURATION", value_parser = crate::duration::parse)]
    timeout: Option<Duration>,
}

/// Runs `herald health`.
pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let url = format!("{}/healthz", args.url.trim_end_matches('/'));
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the runtime")?;
    runtime.block_on(async {
        let client = reqwest::Client::builder()
            .timeout(args.timeout.unwrap_or(DEFAULT_HEALTH_TIMEOUT))
            .build()
            .context("building the HTTP client")?;
        let response = client
            .get(&url)
            .send()
            .await
            .with_context(|| format!("asking {url}"))?;
        let status = response.status();
        let body = response.bytes().await.context("reading the answer")?;
        let text = String::from_utf8_lossy(&body[..body.len().min(MAX_ANSWER)]);
        if status.is_success() {
            println!("{}", text.trim_end());
            Ok(ExitCode::SUCCESS)
        } else {
            eprintln!("herald: {url} answered {status}: {}", text.trim_end());
            Ok(ExitCode::FAILURE)
        }
    })
}

//! `herald publish`: POST one event to a hub's `/publish` and print the id it was given.
//!
//! Exit codes: 0 published (the id is on stdout); 1 the hub refused (its error on stderr) or
//! could not be reached; 2 bad usage.

use std::io::{IsTerminal as _, Read as _};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context as _, bail};

/// How long a publish may take before it is abandoned: the hub answers once the event is
/// durable, which is milliseconds; 30 s leaves room for a struggling disk without hanging a
/// script forever.
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(30);

/// The most of an answer read: 64 KiB, far above a hub's JSON answer.
const MAX_ANSWER: usize = 64 * 1024;

/// The most of a non-JSON error body printed: enough to recognise an HTML error page.
const MAX_ERROR_BODY: usize = 500;

/// Arguments of `herald publish`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
The data comes from --data, --data-file, or else stdin; from a file or stdin one final line \
ending is removed (so `echo hi | herald publish ...` sends `hi`).")]
pub(crate) struct Args {
    /// The hub's base URL (where `herald serve` listens by default); `/publish` is added. A URL
    /// that already ends in `/publish` is taken as the base URL it names, with a note.
    #[arg(
        long,
        value_name = "BASE",
        value_parser = parse_base,
        default_value = DEFAULT_URL,
        env = "HERALD_URL"
    )]
    url: String,

    /// The topic to publish to.
    #[arg(long, value_name = "TOPIC")]
    topic: String,

    /// The event type (`event:` field; subscribers see `message` without it).
    #[arg(long = "event", value_name = "TYPE", value_parser = parse_type)]
    event_type: Option<String>,

    /// An idempotency key: publishing again with the same key does not store the event twice.
    #[arg(long, value_name = "KEY", value_parser = parse_id)]
    id: Option<String>,

    /// A reconnection time for subscribers, in milliseconds (`retry:` field), at most 86400000
    /// (24 h): browsers treat a longer delay as 0, so the hub refuses more.
    #[arg(long, value_name = "MS", value_parser = crate::range::int(0, herald_hub::MAX_RETRY_MS))]
    retry: Option<u64>,

    /// Deliver only to subscribers whose token covers the topic.
    #[arg(long)]
    private: bool,

    /// The event's data.
    #[arg(long, value_name = "TEXT", conflicts_with = "data_file")]
    data: Option<String>,

    /// Read the event's data from this file (UTF-8).
    #[arg(long, value_name = "FILE")]
    data_file: Option<PathBuf>,

    /// A JWT sent as `Authorization: Bearer` (or set HERALD_TOKEN, which keeps it out of the
    /// shell history).
    #[arg(long, value_name = "JWT", env = "HERALD_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// Trust the certificates in this PEM file instead of the system's, as `curl --cacert`
    /// (for a hub with a private CA or a self-signed certificate).
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,

    /// Accept any TLS certificate, as `curl --insecure` (development only: anyone in the middle
    /// can read the event and the token).
    #[arg(short = 'k', long)]
    insecure: bool,
}

/// The hub `herald serve` starts by default (its `--addr`), so that publish and serve work
/// together with no flags.
const DEFAULT_URL: &str = "http://127.0.0.1:3000";

/// The base URL of `raw`, and whether a `/publish` was taken off it: a user who pastes the
/// endpoint itself (as curl needs it) means the hub it belongs to, and no other route of the hub
/// ends in `/publish`, so taking it off cannot pick the wrong hub.
fn base_url(raw: &str) -> (&str, bool) {
    let trimmed = raw.trim_end_matches('/');
    match trimmed.strip_suffix("/publish") {
        Some(base) => (base, true),
        None => (trimmed, false),
    }
}

fn parse_base(raw: &str) -> Result<String, String> {
    let url = reqwest::Url::parse(raw).map_err(|e| format!("not a URL ({e})"))?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err("expected an http:// or https:// URL".to_owned());
    }
    Ok(raw.to_owned())
}

fn parse_type(raw: &str) -> Result<String, String> {
    herald_wire::check_type(raw).map_err(|e| e.to_string())?;
    Ok(raw.to_owned())
}

fn parse_id(raw: &str) -> Result<String, String> {
    herald_wire::check_id(raw).map_err(|e| e.to_string())?;
    Ok(raw.to_owned())
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let data = match (&args.data, &args.data_file) {
        (Some(data), _) => data.clone(),
        (None, Some(path)) => {
            let bytes =
                std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
            let text = String::from_utf8(bytes)
                .with_context(|| format!("{} is not UTF-8 text", path.display()))?;
            strip_line_end(text)
        }
        (None, None) => {
            if std::io::stdin().is_terminal() {
                eprintln!("herald: reading the data from stdin (end it with Ctrl-D)");
            }
            let mut bytes = Vec::new();
            std::io::stdin()
                .read_to_end(&mut bytes)
                .context("reading the data from stdin")?;
            let text = String::from_utf8(bytes).context("the data on stdin is not UTF-8 text")?;
            strip_line_end(text)
        }
    };
    let body = request_body(&args, data);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    let id = runtime.block_on(publish(&args, body))?;
    println!("{id}");
    Ok(ExitCode::SUCCESS)
}

/// Removes one final LF or CRLF.
fn strip_line_end(mut text: String) -> String {
    if text.ends_with('\n') {
        text.pop();
        if text.ends_with('\r') {
            text.pop();
        }
    }
    text
}

/// The JSON body of DESIGN.md, with only the fields given.
fn request_body(args: &Args, data: String) -> serde_json::Value {
    let mut body = serde_json::Map::new();
    body.insert("topic".into(), args.topic.clone().into());
    body.insert("data".into(), data.into());
    if let Some(event_type) = &args.event_type {
        body.insert("event".into(), event_type.clone().into());
    }
    if let Some(id) = &args.id {
        body.insert("id".into(), id.clone().into());
    }
    if let Some(retry) = args.retry {
        body.insert("retry".into(), retry.into());
    }
    if args.private {
        body.insert("private".into(), true.into());
    }
    body.into()
}

async fn publish(args: &Args, body: serde_json::Value) -> anyhow::Result<String> {
    let (base, stripped) = base_url(&args.url);
    if stripped {
        eprintln!(
            "herald: note: --url is the hub's base URL; publishing to {}/publish",
            herald_wire::redact_url(base)
        );
    }
    let url = format!("{base}/publish");
    let mut client = reqwest::Client::builder()
        .timeout(PUBLISH_TIMEOUT)
        .tls_danger_accept_invalid_certs(args.insecure);
    if let Some(path) = &args.cacert {
        let pem =
            std::fs::read(path).with_context(|| format!("reading --cacert {}", path.display()))?;
        let certs = reqwest::Certificate::from_pem_bundle(&pem)
            .with_context(|| format!("--cacert {}: not PEM certificates", path.display()))?;
        if certs.is_empty() {
            bail!("--cacert {}: no `BEGIN CERTIFICATE` block", path.display());
        }
        client = client.tls_certs_only(certs);
    }
    let client = client.build().context("building the HTTP client")?;
    let mut request = client
        .post(&url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body.to_string());
    if let Some(token) = &args.token {
        request = request.bearer_auth(token);
    }
    let response = request
        .send()
        .await
        .with_context(|| format!("publishing to {}", herald_wire::redact_url(&url)))?;
    let status = response.status();
    let text = read_answer(response)
        .await
        .with_context(|| format!("reading the answer of {}", herald_wire::redact_url(&url)))?;
    let json: Option<serde_json::Value> = serde_json::from_str(&text).ok();
    if !status.is_success() {
        let message = match json.as_ref().and_then(|j| j.get("error")) {
            Some(serde_json::Value::String(error)) => error.clone(),
            Some(other) => other.to_string(),
            None if text.trim().is_empty() => "(no message)".to_owned(),
            None => truncate(text.trim(), MAX_ERROR_BODY),
        };
        bail!("the hub refused the event: HTTP {status}: {message}");
    }
    match json.as_ref().and_then(|j| j.get("id")) {
        Some(serde_json::Value::String(id)) => Ok(id.clone()),
        Some(id @ serde_json::Value::Number(_)) => Ok(id.to_string()),
        _ => bail!(
            "the hub answered HTTP {status} without an id: {}",
            truncate(text.trim(), MAX_ERROR_BODY)
        ),
    }
}

/// The answer's body, at most [`MAX_ANSWER`] bytes of it: a hub's answer is a line of JSON, and
/// whatever else answers must not fill the memory.
async fn read_answer(mut response: reqwest::Response) -> reqwest::Result<String> {
    let mut body = Vec::new();
    while let Some(chunk) = response.chunk().await? {
        let room = MAX_ANSWER - body.len();
        body.extend_from_slice(&chunk[..chunk.len().min(room)]);
        if body.len() == MAX_ANSWER {
            break;
        }
    }
    Ok(String::from_utf8_lossy(&body).into_owned())
}

/// At most `max` bytes of `text`, cut on a character boundary.
fn truncate(text: &str, max: usize) -> String {
    if text.len() <= max {
        return text.to_owned();
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}...", &text[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_final_line_end_is_removed() {
        assert_eq!(strip_line_end("a\n".into()), "a");
        assert_eq!(strip_line_end("a\r\n".into()), "a");
        assert_eq!(strip_line_end("a\n\n".into()), "a\n");
        assert_eq!(strip_line_end("a\r".into()), "a\r");
        assert_eq!(strip_line_end(String::new()), "");
    }

    #[test]
    fn a_trailing_publish_is_taken_off_the_base_url() {
        assert_eq!(base_url("http://h:1"), ("http://h:1", false));
        assert_eq!(base_url("http://h:1/"), ("http://h:1", false));
        assert_eq!(base_url("http://h:1/publish"), ("http://h:1", true));
        assert_eq!(
            base_url("http://h:1/hub/publish/"),
            ("http://h:1/hub", true)
        );
        assert_eq!(
            base_url("http://h:1/publisher"),
            ("http://h:1/publisher", false)
        );
    }

    #[test]
    fn truncation_respects_characters() {
        assert_eq!(truncate("ééé", 3), "é...");
        assert_eq!(truncate("abc", 3), "abc");
    }
}

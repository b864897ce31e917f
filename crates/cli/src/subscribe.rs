//! `herald subscribe URL`: curl for SSE. Prints the events of a stream as they arrive and
//! reconnects as a browser's EventSource does (see herald-client).
//!
//! Exit codes: 0 when `--count` events were printed, the server answered 204, or stdout was
//! closed (broken pipe); 1 on a fatal failure (non-200, wrong content type, retries exhausted),
//! with the reason on stderr; 2 on bad usage.

use std::io::{self, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context as _;
use futures_util::StreamExt;
use herald_client::{Event, EventSource, MessageEvent, RetryPolicy};
use herald_wire::{redact_text, redact_url};

/// Arguments of `herald subscribe`.
#[derive(Debug, clap::Args)]
#[command(after_help = "\
Output: by default each event is printed as the stream form that carries it (`event:` unless \
the type is `message`, `id:` when there is a last event id, one `data:` per line of data), \
followed by a blank line. With --json, each event is one line: \
{\"type\":\"...\",\"data\":\"...\",\"id\":\"...\"} where id is the last event id (\"\" when none).
Lost connections and reconnections are reported on stderr (--quiet silences them); the command \
reconnects unless the error is final: any 4xx (the hub's reason is printed), a refused TLS \
certificate, an https:// URL to a plain-HTTP port or an http:// URL to a TLS port exit 1 at once.
With --fallback-url, the first connection goes to URL and every reconnection to the next URL of \
the list (URL, each --fallback-url in order, then URL again), with the same Last-Event-ID; \
--max-retries counts failed attempts across the whole list. A final error (e.g. 401, 404) is not \
failed over: the other hubs would answer the same.")]
pub(crate) struct Args {
    /// The SSE endpoint, e.g. `http://127.0.0.1:8080/events?topic=chat`.
    url: String,

    /// Another URL serving the same stream, e.g. another hub on the same Redis store
    /// (repeatable): each reconnection moves to the next URL of the list, cyclically.
    #[arg(long = "fallback-url", value_name = "URL")]
    fallback_urls: Vec<String>,

    /// A header sent with every request, as `Name: value` (repeatable), e.g.
    /// `-H 'Authorization: Bearer eyJ...'`.
    #[arg(short = 'H', long = "header", value_name = "NAME: VALUE", value_parser = parse_header)]
    headers: Vec<(String, String)>,

    /// A JWT sent as `Authorization: Bearer` with every request (or set HERALD_TOKEN, which keeps
    /// it out of the shell history and `ps`). Never printed.
    #[arg(long, value_name = "JWT", env = "HERALD_TOKEN", hide_env_values = true)]
    token: Option<String>,

    /// Resume after this event id (sent as `Last-Event-ID` on the first request).
    #[arg(long, value_name = "ID")]
    last_event_id: Option<String>,

    /// Exit 0 after printing this many events.
    #[arg(long, value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    count: Option<u64>,

    /// Print each event as one line of JSON.
    #[arg(long)]
    json: bool,

    /// Give up (exit 1) after this many failed reconnection attempts in a row, across all the
    /// URLs (default: never).
    #[arg(long, value_name = "N")]
    max_retries: Option<u32>,

    /// Treat the connection as lost when nothing (not even a heartbeat) arrives for this many
    /// seconds (decimals allowed).
    #[arg(long, value_name = "SECS", value_parser = parse_seconds)]
    idle_timeout: Option<Duration>,

    /// Retry HTTP 5xx and 429 answers (honouring Retry-After) instead of exiting.
    #[arg(long)]
    retry_server_errors: bool,

    /// Trust the certificates in this PEM file instead of the system's, as `curl --cacert`
    /// (for a hub with a private CA or a self-signed certificate).
    #[arg(long, value_name = "FILE")]
    cacert: Option<PathBuf>,

    /// Accept any TLS certificate, as `curl --insecure` (development only: anyone in the middle
    /// can read the stream).
    #[arg(short = 'k', long)]
    insecure: bool,

    /// Do not report lost connections and reconnections on stderr (fatal errors still are).
    #[arg(short, long)]
    quiet: bool,
}

/// `Name: value` into a checked header pair (clap reports the error as bad usage).
fn parse_header(raw: &str) -> Result<(String, String), String> {
    let (name, value) = raw
        .split_once(':')
        .ok_or_else(|| "expected `Name: value` (no colon found)".to_owned())?;
    let name = name.trim();
    let value = value.trim();
    reqwest::header::HeaderName::from_bytes(name.as_bytes())
        .map_err(|_| format!("`{name}` is not a valid header name"))?;
    reqwest::header::HeaderValue::from_str(value)
        .map_err(|_| format!("the value of `{name}` is not a valid header value"))?;
    Ok((name.to_owned(), value.to_owned()))
}

/// 10 ms: a shorter idle timeout would call every connection lost before its first byte.
const MIN_IDLE_SECS: f64 = 0.01;
/// One day: past it, a silent connection is dead whatever the server's heartbeat.
const MAX_IDLE_SECS: f64 = 86_400.0;

/// Seconds from [`MIN_IDLE_SECS`] to [`MAX_IDLE_SECS`], decimals allowed.
fn parse_seconds(raw: &str) -> Result<Duration, String> {
    let seconds = crate::range::float(MIN_IDLE_SECS, MAX_IDLE_SECS)(raw)?;
    Ok(Duration::from_secs_f64(seconds))
}

pub(crate) fn run(args: Args) -> anyhow::Result<ExitCode> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(subscribe(args))
}

async fn subscribe(args: Args) -> anyhow::Result<ExitCode> {
    let has_authorization = args
        .headers
        .iter()
        .any(|(name, _)| name.eq_ignore_ascii_case("authorization"));
    if let Some(token) = &args.token {
        // Checked here, not by clap, whose error would quote the value: the token is a secret.
        if has_authorization {
            eprintln!(
                "herald: --token (or $HERALD_TOKEN) and -H 'Authorization: ...' both set the \
                 Authorization header: give one of them"
            );
            return Ok(ExitCode::from(crate::USAGE_ERROR));
        }
        if token.is_empty() || reqwest::header::HeaderValue::from_str(token).is_err() {
            eprintln!(
                "herald: --token (or $HERALD_TOKEN): not a token that a header can carry (empty, \
                 or with a line break or control character)"
            );
            return Ok(ExitCode::from(crate::USAGE_ERROR));
        }
    }
    let mut policy = RetryPolicy::new().retry_server_errors(args.retry_server_errors);
    if let Some(max) = args.max_retries {
        policy = policy.max_retries(max);
    }
    let mut builder = EventSource::builder(&args.url).retry_policy(policy);
    for url in &args.fallback_urls {
        builder = builder.fallback_url(url);
    }
    for (name, value) in args.headers {
        builder = builder.header(name, value);
    }
    if let Some(token) = args.token {
        builder = builder.header("Authorization", format!("Bearer {token}"));
    }
    if let Some(id) = args.last_event_id {
        builder = builder.last_event_id(id);
    }
    if let Some(idle) = args.idle_timeout {
        builder = builder.idle_timeout(idle);
    }
    if let Some(path) = &args.cacert {
        let pem =
            std::fs::read(path).with_context(|| format!("reading --cacert {}", path.display()))?;
        builder = builder.root_certificates_pem(pem);
    }
    builder = builder.danger_accept_invalid_certs(args.insecure);
    let mut source = builder.build()?;

    let stdout = io::stdout();
    let mut printed = 0u64;
    let mut opened = false;
    while let Some(item) = source.next().await {
        match item {
            Ok(Event::Message(event)) => {
                let mut out = stdout.lock();
                let written = if args.json {
                    write_json(&mut out, &event)
                } else {
                    write_human(&mut out, &event)
                };
                match written.and_then(|()| out.flush()) {
                    Ok(()) => {}
                    // The reader went away (`| head`): that is how a pipeline ends, not an error.
                    Err(e) if e.kind() == io::ErrorKind::BrokenPipe => {
                        return Ok(ExitCode::SUCCESS);
                    }
                    Err(e) => return Err(e).context("writing to stdout"),
                }
                printed += 1;
                if args.count.is_some_and(|count| printed >= count) {
                    return Ok(ExitCode::SUCCESS);
                }
            }
            Ok(Event::Open) => {
                // A reconnection is news for the user (stderr), not for the pipeline (stdout).
                if opened && !args.quiet {
                    eprintln!("herald: reconnected");
                }
                opened = true;
            }
            Ok(_) => {}
            Err(error) if error.is_fatal() => {
                let mut urls = redact_url(&args.url);
                if !args.fallback_urls.is_empty() {
                    let others: Vec<String> =
                        args.fallback_urls.iter().map(|u| redact_url(u)).collect();
                    urls = format!("{urls} (or {})", others.join(", "));
                }
                let hint = hint(&error);
                let error = anyhow::Error::new(error).context(format!("subscribing to {urls}"));
                let Some(hint) = hint else {
                    return Err(error);
                };
                // Printed here rather than by main, so that the hint comes after the error.
                eprintln!("herald: {}", redact_text(&format!("{error:#}")));
                eprintln!("hint: {hint}");
                return Ok(ExitCode::FAILURE);
            }
            Err(_) if args.quiet => {}
            Err(error) => eprintln!("herald: {} (reconnecting)", redact_text(&chain(&error))),
        }
    }
    // The server ended the stream for good (204).
    Ok(ExitCode::SUCCESS)
}

/// What to do about a fatal error, when the flags of this command can fix it.
fn hint(error: &herald_client::Error) -> Option<&'static str> {
    if error.is_certificate() {
        return Some(
            "the hub's certificate is not trusted: give its CA with --cacert FILE, or --insecure \
             for a development hub",
        );
    }
    match error.status() {
        Some(401) => {
            Some("the hub wants a token: --token JWT or HERALD_TOKEN (see `herald token`)")
        }
        Some(403) => Some("the token does not cover these topics (see its `sub` claim)"),
        _ => None,
    }
}

/// An error and its causes on one line, as `anyhow` would print them.
fn chain(error: &dyn std::error::Error) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// `{"type":"...","data":"...","id":"..."}` and a newline.
fn write_json(out: &mut impl Write, event: &MessageEvent) -> io::Result<()> {
    let string = |s: &str| serde_json::to_string(s).map_err(io::Error::other);
    writeln!(
        out,
        "{{\"type\":{},\"data\":{},\"id\":{}}}",
        string(&event.event_type)?,
        string(&event.data)?,
        string(&event.last_event_id)?
    )
}

/// The stream form of the event (see the command's help), then a blank line.
fn write_human(out: &mut impl Write, event: &MessageEvent) -> io::Result<()> {
    if event.event_type != "message" {
        writeln!(out, "event: {}", event.event_type)?;
    }
    if !event.last_event_id.is_empty() {
        writeln!(out, "id: {}", event.last_event_id)?;
    }
    for line in event.data.split('\n') {
        writeln!(out, "data: {line}")?;
    }
    writeln!(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(event_type: &str, data: &str, id: &str) -> MessageEvent {
        MessageEvent {
            event_type: event_type.to_owned(),
            data: data.to_owned(),
            last_event_id: id.to_owned(),
        }
    }

    #[test]
    fn json_is_one_line_with_everything_escaped() {
        let mut out = Vec::new();
        write_json(&mut out, &event("t\"y", "a\nb\u{0}\u{e9}", "")).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "{\"type\":\"t\\\"y\",\"data\":\"a\\nb\\u0000\u{e9}\",\"id\":\"\"}\n"
        );
    }

    #[test]
    fn human_form_is_the_stream_form() {
        let mut out = Vec::new();
        write_human(&mut out, &event("message", "a\n\nb", "")).unwrap();
        write_human(&mut out, &event("greet", "", "7")).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            "data: a\ndata: \ndata: b\n\nevent: greet\nid: 7\ndata: \n\n"
        );
    }

    #[test]
    fn headers_need_a_colon_a_valid_name_and_a_valid_value() {
        assert_eq!(
            parse_header("Authorization:  Bearer x "),
            Ok(("Authorization".to_owned(), "Bearer x".to_owned()))
        );
        assert_eq!(
            parse_header("X-Empty:"),
            Ok(("X-Empty".to_owned(), String::new()))
        );
        assert_eq!(parse_header("X-A: b:c").unwrap().1, "b:c");
        assert!(parse_header("no colon").is_err());
        assert!(parse_header(": value").is_err());
        assert!(parse_header("bad name: v").is_err());
        assert!(parse_header("X-A: a\u{1}b").is_err());
    }

    #[test]
    fn seconds_are_positive_numbers() {
        assert_eq!(parse_seconds("1.5"), Ok(Duration::from_millis(1500)));
        for bad in ["0", "-1", "x", "NaN", "inf", "1e300", "1e-20", "86401"] {
            assert!(parse_seconds(bad).is_err(), "{bad}");
        }
    }
}

//! `herald subscribe` as a real process against the scripted SSE server, and against the real
//! `herald serve` (with TLS: the test certificate of tests/fixtures/tls) for what a hub answers.

mod hub_support;

use std::process::{Output, Stdio};
use std::time::Duration;

use herald_testkit::{Response, ScriptedServer, free_port};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// Safety net for a loaded machine; never reached when things work.
const LIMIT: Duration = Duration::from_secs(60);

fn herald() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .env_remove("HERALD_TOKEN")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    command
}

async fn subscribe(args: &[&str]) -> Output {
    let output = herald().arg("subscribe").args(args).output();
    tokio::time::timeout(LIMIT, output)
        .await
        .expect("herald subscribe exits")
        .expect("herald runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

#[tokio::test]
async fn json_lines_follow_the_spec_across_reconnections() {
    let server = ScriptedServer::start([
        Response::sse()
            .chunk(&b"\xEF\xBB"[..]) // a BOM split across reads, stripped at stream start only
            .chunk(&b"\xBFretry: 10\n"[..])
            .chunk("\u{feff}data: a BOM mid-stream makes an unknown field\n\n")
            .split(
                b"event: greet\r\nid: 1\r\ndata: hello\r\ndata: \"world\"\r\n\r\n",
                &[3, 14, 15, 30],
            )
            .chunk(": heartbeat\n\ndata: tab\there\n\ndata: half"),
        Response::sse()
            .chunk(&b"data: no id on a new stream\n\nid: 2\ndata:\\u00e9 \xC3\xA9\n\n"[..]),
    ])
    .await;
    // --quiet: stderr stays empty across the reconnections (they are reported without it).
    let output = subscribe(&["--json", "--quiet", &server.url("/events?topic=a")]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        text(&output.stdout),
        concat!(
            r#"{"type":"greet","data":"hello\n\"world\"","id":"1"}"#,
            "\n",
            r#"{"type":"message","data":"tab\there","id":"1"}"#,
            "\n",
            // The source's last event id survives the reconnection (only an `id:` changes it).
            r#"{"type":"message","data":"no id on a new stream","id":"1"}"#,
            "\n",
            r#"{"type":"message","data":"\\u00e9 é","id":"2"}"#,
            "\n",
        )
    );
    assert_eq!(text(&output.stderr), "");
    let requests = server.wait_for_requests(3).await;
    assert_eq!(requests[0].target, "/events?topic=a");
    assert_eq!(requests[0].header("accept"), Some("text/event-stream"));
    assert_eq!(requests[0].header("cache-control"), Some("no-cache"));
    assert_eq!(requests[1].header("last-event-id"), Some("1"));
    assert_eq!(requests[2].header("last-event-id"), Some("2"));
}

/// The spec's parsing rules, one stream each, as `--json` prints them: (stream, lines printed).
const SPEC_CASES: &[(&[u8], &[&str])] = &[
    // The first stream sets a short reconnection time for all the others.
    (
        b"retry: 1\ndata: first\n\n",
        &[r#"{"type":"message","data":"first","id":""}"#],
    ),
    (
        b"data: a\r\rdata: b\r\n\r\n",
        &[
            r#"{"type":"message","data":"a","id":""}"#,
            r#"{"type":"message","data":"b","id":""}"#,
        ],
    ),
    (
        b"data\n\ndata:\n\n",
        &[
            r#"{"type":"message","data":"","id":""}"#,
            r#"{"type":"message","data":"","id":""}"#,
        ],
    ),
    (
        b"data: a\ndata:b\ndata:  c\n\n",
        &[r#"{"type":"message","data":"a\nb\n c","id":""}"#],
    ),
    (
        b"event: e\ndata: x\n\nevent\ndata: y\n\n",
        &[
            r#"{"type":"e","data":"x","id":""}"#,
            r#"{"type":"message","data":"y","id":""}"#,
        ],
    ),
    (
        b"id: 1\x002\ndata: NUL in id: ignored\n\n",
        &[r#"{"type":"message","data":"NUL in id: ignored","id":""}"#],
    ),
    (
        b"id: 5\n\ndata: after an id-only block\n\n",
        &[r#"{"type":"message","data":"after an id-only block","id":"5"}"#],
    ),
    (
        b":comment\n\n: another\nretry: soon\nDATA: case matters\nfoo: bar\n\n",
        &[],
    ),
    (
        b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a second BOM is not stripped\n\n",
        &[],
    ),
    (
        b"\xEF\xBB\xBFdata: one BOM is\n\n",
        // From here on the last event id is the 5 above: it persists across reconnections.
        &[r#"{"type":"message","data":"one BOM is","id":"5"}"#],
    ),
    (
        b"data: \xF0\x9F\x92\xA9 \xF0\x9F\n\n",
        &[r#"{"type":"message","data":"💩 �","id":"5"}"#],
    ),
    (b"data: never ends\n", &[]),
];

#[tokio::test]
async fn json_output_follows_every_parsing_rule_of_the_spec() {
    // Each stream written a byte at a time, so every rule also meets every split.
    let script = SPEC_CASES
        .iter()
        .map(|(stream, _)| Response::sse().pieces(stream, 1));
    let server = ScriptedServer::start(script).await;
    let output = subscribe(&["--json", &server.url("/")]).await;
    assert!(output.status.success(), "{output:?}");
    let printed = text(&output.stdout);
    let expected: Vec<&str> = SPEC_CASES
        .iter()
        .flat_map(|(_, lines)| lines.iter().copied())
        .collect();
    assert_eq!(printed.lines().collect::<Vec<_>>(), expected);
    assert_eq!(server.connections().len(), SPEC_CASES.len() + 1);
}

#[tokio::test]
async fn human_output_is_the_stream_form() {
    let server = ScriptedServer::start([
        Response::sse().chunk("event: greet\nid: 7\ndata: a\ndata: b\n\ndata: plain\n\n")
    ])
    .await;
    let output = subscribe(&[&server.url("/")]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        text(&output.stdout),
        "event: greet\nid: 7\ndata: a\ndata: b\n\nid: 7\ndata: plain\n\n"
    );
}

#[tokio::test]
async fn headers_and_last_event_id_are_sent_on_every_connection() {
    let server = ScriptedServer::start([
        Response::sse().chunk("retry: 10\n: nothing yet\n"),
        Response::sse().chunk("retry: 10\n"),
    ])
    .await;
    let output = subscribe(&[
        "-H",
        "Authorization: Bearer abc.def",
        "--header",
        "X-Trace:  t1 ",
        "--last-event-id",
        "99",
        &server.url("/"),
    ])
    .await;
    assert!(output.status.success(), "{output:?}");
    let requests = server.wait_for_requests(3).await;
    for request in &requests {
        assert_eq!(request.header("authorization"), Some("Bearer abc.def"));
        assert_eq!(request.header("x-trace"), Some("t1"));
        assert_eq!(request.header("last-event-id"), Some("99"));
    }
}

#[tokio::test]
async fn count_exits_after_n_events_and_hangs_up() {
    let server = ScriptedServer::start([Response::sse()
        .chunk("data: 1\n\ndata: 2\n\n")
        .chunk("data: 3\n\n")
        .hold()])
    .await;
    let output = subscribe(&["--json", "--count", "2", &server.url("/")]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(text(&output.stdout).lines().count(), 2);
    server.wait_for(|c| c[0].ended_at.is_some()).await;
}

#[tokio::test]
async fn a_204_exits_0() {
    let server = ScriptedServer::start([Response::status(204)]).await;
    let output = subscribe(&[&server.url("/")]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(output.stdout, b"");
}

#[tokio::test]
async fn fatal_answers_exit_1_with_the_reason() {
    let cases = [
        (Response::status(500), "HTTP 500 Internal Server Error"),
        (Response::status(404), "HTTP 404 Not Found"),
        (
            Response::status(200)
                .header("Content-Type", "text/html")
                .chunk("<html>"),
            "content type `text/html`, not `text/event-stream`",
        ),
    ];
    for (response, reason) in cases {
        let server = ScriptedServer::start([response]).await;
        let url = server.url("/events");
        let output = subscribe(&[&url]).await;
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        let stderr = text(&output.stderr);
        assert!(stderr.starts_with("herald: subscribing to "), "{stderr}");
        assert!(stderr.contains(&url) && stderr.contains(reason), "{stderr}");
        assert_eq!(server.connections().len(), 1, "no retry");
    }
}

#[tokio::test]
async fn server_errors_are_retried_on_request() {
    let server = ScriptedServer::start([
        Response::status(503).header("Retry-After", "0"),
        Response::sse().chunk("data: back\n\n"),
    ])
    .await;
    // The first retry waits twice the default reconnection time at most (6 s), jittered.
    let output = subscribe(&["--retry-server-errors", "--json", &server.url("/")]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        text(&output.stdout),
        "{\"type\":\"message\",\"data\":\"back\",\"id\":\"\"}\n"
    );
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("HTTP 503 Service Unavailable (reconnecting)"),
        "{stderr}"
    );
}

#[tokio::test]
async fn a_refused_connection_exits_1_when_retries_are_exhausted() {
    let url = format!("http://127.0.0.1:{}/", free_port());
    let output = subscribe(&["--max-retries", "0", &url]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("connection failed"), "{stderr}");
    assert!(!stderr.contains("reconnecting"), "no retry: {stderr}");
}

#[tokio::test]
async fn the_idle_timeout_reconnects_a_silent_stream() {
    let server = ScriptedServer::start([
        Response::sse()
            .chunk("retry: 10\nid: 1\ndata: a\n\n")
            .hold(),
        Response::sse().chunk("data: b\n\n"),
    ])
    .await;
    let output = subscribe(&["--json", "--idle-timeout", "1", &server.url("/")]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(text(&output.stdout).lines().count(), 2);
    assert!(text(&output.stderr).contains("idle timeout"), "{output:?}");
    assert_eq!(server.requests()[1].header("last-event-id"), Some("1"));
}

#[tokio::test]
async fn fallback_urls_take_each_reconnection_in_turn_with_the_last_event_id() {
    let refused = format!("http://127.0.0.1:{}/events", free_port());
    let a = ScriptedServer::start([Response::sse().chunk("retry: 10\nid: 5\ndata: a\n\n")]).await;
    let b = ScriptedServer::start([Response::sse().chunk("id: 6\ndata: b\n\n")]).await;
    // A serves, the refused URL fails, B serves, then A's script is used up: 204, exit 0.
    let output = subscribe(&[
        "--json",
        "--fallback-url",
        &refused,
        "--fallback-url",
        &b.url("/events"),
        &a.url("/events"),
    ])
    .await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        text(&output.stdout),
        concat!(
            r#"{"type":"message","data":"a","id":"5"}"#,
            "\n",
            r#"{"type":"message","data":"b","id":"6"}"#,
            "\n",
        )
    );
    let stderr = text(&output.stderr);
    assert!(stderr.contains("connection failed"), "{stderr}");
    assert_eq!(
        b.wait_for_requests(1).await[0].header("last-event-id"),
        Some("5")
    );
    assert_eq!(
        a.wait_for_requests(2).await[1].header("last-event-id"),
        Some("6")
    );
}

#[tokio::test]
async fn a_bad_fallback_url_is_a_clear_failure() {
    let output = subscribe(&["--fallback-url", "ftp://hub-b/", "http://127.0.0.1:1/"]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains("invalid event source configuration") && stderr.contains("ftp://hub-b/"),
        "{stderr}"
    );
}

#[tokio::test]
async fn bad_usage_exits_2() {
    let cases: [&[&str]; 6] = [
        &["-H", "no colon here", "http://127.0.0.1:1/"],
        &["-H", "bad name: v", "http://127.0.0.1:1/"],
        &["-H", "X-A: a\u{1}b", "http://127.0.0.1:1/"],
        &["--count", "0", "http://127.0.0.1:1/"],
        &["--idle-timeout", "-1", "http://127.0.0.1:1/"],
        &[],
    ];
    for args in cases {
        let output = subscribe(args).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
        assert!(text(&output.stderr).contains("error"), "{output:?}");
    }
}

#[tokio::test]
async fn an_unusable_url_is_a_clear_failure() {
    for url in ["not a url", "ftp://127.0.0.1/"] {
        let output = subscribe(&[url]).await;
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        assert!(text(&output.stderr).contains("invalid event source configuration"));
    }
}

#[tokio::test]
async fn a_closed_stdout_exits_quietly() {
    let mut response = Response::sse().chunk("data: first\n\n");
    // Bounded: at most 500 more events, 10 ms apart; the process must quit at the first write
    // after the reader went away.
    for n in 0..500 {
        response = response
            .pause(Duration::from_millis(10))
            .chunk(format!("data: {n}\n\n"));
    }
    let server = ScriptedServer::start([response.hold()]).await;
    let mut child = herald()
        .args(["subscribe", "--json", &server.url("/")])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let first = tokio::time::timeout(LIMIT, lines.next_line())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(
        first.as_deref(),
        Some(r#"{"type":"message","data":"first","id":""}"#)
    );
    drop(lines); // closes the read end of the pipe
    let output = tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(text(&output.stderr), "");
}

/// Issue 13: docs/http-api.md documented `herald subscribe --token`, which did not exist, and
/// `subscribe` did not read `HERALD_TOKEN`. Both now send `Authorization: Bearer`, on every
/// connection, and the token is never printed.
#[tokio::test]
async fn subscribe_sends_token_from_flag_and_herald_token_and_never_prints_it() {
    const TOKEN: &str = "eyJhbGciOiJIUzI1NiJ9.c2VjcmV0.s3cr3t-signature";
    for from_env in [false, true] {
        let server = ScriptedServer::start([
            Response::sse().chunk("retry: 10\nid: 1\ndata: a\n\n"),
            Response::status(401),
        ])
        .await;
        let url = server.url("/events?topic=t");
        let mut command = herald();
        command.arg("subscribe").arg("--json");
        if from_env {
            command.env("HERALD_TOKEN", TOKEN);
        } else {
            command.args(["--token", TOKEN]);
        }
        let output = tokio::time::timeout(LIMIT, command.arg(&url).output())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        let requests = server.wait_for_requests(2).await;
        for request in &requests {
            assert_eq!(
                request.header("authorization"),
                Some(format!("Bearer {TOKEN}").as_str()),
                "from_env {from_env}"
            );
        }
        let printed = format!("{}{}", text(&output.stdout), text(&output.stderr));
        assert!(printed.contains("401"), "{printed}");
        assert!(
            !printed.contains("s3cr3t"),
            "the token was printed: {printed}"
        );
    }
    // A token a header cannot carry, or a token and an Authorization header: bad usage, and
    // the message does not quote the token.
    for args in [
        &["--token", "s3cr3t\u{1}x", "http://127.0.0.1:1/"][..],
        &[
            "--token",
            "s3cr3t",
            "-H",
            "Authorization: Basic x",
            "http://127.0.0.1:1/",
        ][..],
    ] {
        let output = subscribe(args).await;
        assert_eq!(output.status.code(), Some(2), "{output:?}");
        let stderr = text(&output.stderr);
        assert!(
            stderr.contains("--token") && !stderr.contains("s3cr3t"),
            "{stderr}"
        );
    }
}

/// Issue 13: after a reconnection a keep-alive or an id-less event made `herald subscribe`
/// forget its place, so the next drop resumed from nowhere.
#[tokio::test]
async fn subscribe_resumes_from_its_last_id_after_keepalives_on_a_reconnected_stream() {
    let server = ScriptedServer::start([
        Response::sse().chunk("retry: 10\nid: 7\ndata: a\n\n"),
        Response::sse().chunk(":\n\n:\n\ndata: b\n\n"),
        Response::sse().chunk(":\n\ndata: c\n\n"),
    ])
    .await;
    let output = subscribe(&["--json", "--count", "3", &server.url("/")]).await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(
        text(&output.stdout),
        "{\"type\":\"message\",\"data\":\"a\",\"id\":\"7\"}\n\
         {\"type\":\"message\",\"data\":\"b\",\"id\":\"7\"}\n\
         {\"type\":\"message\",\"data\":\"c\",\"id\":\"7\"}\n"
    );
    let ids: Vec<_> = server
        .requests()
        .iter()
        .map(|r| r.header("last-event-id").map(str::to_owned))
        .collect();
    let seven = Some("7".to_owned());
    assert_eq!(ids, [None, seven.clone(), seven]);
}

/// Issue 13: a URL's credentials (userinfo password, `access_token`) were printed whole in
/// errors; they are redacted.
#[tokio::test]
async fn subscribe_errors_redact_url_credentials() {
    let port = free_port();
    let url = format!("http://user:pa55word@127.0.0.1:{port}/events?topic=t&access_token=t0k3n");
    let output = subscribe(&["--max-retries", "0", &url]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(&format!("user:***@127.0.0.1:{port}")),
        "{stderr}"
    );
    assert!(stderr.contains("access_token=***"), "{stderr}");
    assert!(
        !stderr.contains("pa55word") && !stderr.contains("t0k3n"),
        "{stderr}"
    );
}

#[tokio::test]
async fn reconnections_are_reported_on_stderr_unless_quiet() {
    for quiet in [false, true] {
        let server = ScriptedServer::start([
            Response::sse().chunk("retry: 10\ndata: a\n\n"),
            Response::sse().chunk("data: b\n\n"),
        ])
        .await;
        let url = server.url("/events?topic=a");
        let mut args = vec!["--count", "2"];
        if quiet {
            args.push("-q");
        }
        args.push(&url);
        let output = subscribe(&args).await;
        assert!(output.status.success(), "{output:?}");
        assert_eq!(text(&output.stdout), "data: a\n\ndata: b\n\n");
        let expected = if quiet { "" } else { "herald: reconnected\n" };
        assert_eq!(text(&output.stderr), expected);
    }
}

#[tokio::test]
async fn a_stream_without_a_topic_prints_the_hubs_reason_and_exits_at_once() {
    let hub = hub_support::Hub::start(&["--store", "memory"]);
    let url = format!("http://{}/events", hub.addr);
    // --max-retries: on a build that retried, the test fails on the message instead of hanging.
    let output = subscribe(&["--max-retries", "2", &url]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(
        stderr.contains(
            r#"HTTP 400 Bad Request: missing "topic": name at least one topic, e.g. /events?topic=chat"#
        ),
        "{stderr}"
    );
    assert!(!stderr.contains("reconnecting"), "{stderr}");
}

fn tls_fixture(name: &str) -> String {
    std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
        .display()
        .to_string()
}

fn tls_hub() -> hub_support::Hub {
    let (cert, key) = (tls_fixture("cert.pem"), tls_fixture("key.pem"));
    hub_support::Hub::start(&["--store", "memory", "--tls-cert", &cert, "--tls-key", &key])
}

/// Runs `herald subscribe --count 1 <args> URL` on a TLS hub and publishes to it with
/// `herald publish <args>` until the subscriber has printed one event; returns its stdout.
async fn tls_round_trip(hub: &hub_support::Hub, tls_args: &[&str]) -> String {
    let port = hub.addr.port();
    let child = herald()
        .arg("subscribe")
        .args(["--count", "1", "--json"])
        .args(tls_args)
        .arg(format!("https://localhost:{port}/events?topic=tls"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let waiting = tokio::spawn(child.wait_with_output());
    // The subscriber connects at its own pace: publish until it has one event (bounded).
    for _ in 0..200 {
        let published = herald()
            .arg("publish")
            .args(tls_args)
            .args(["--url", &format!("https://localhost:{port}")])
            .args(["--topic", "tls", "--data", "over tls"])
            .output()
            .await
            .unwrap();
        assert!(published.status.success(), "{published:?}");
        if waiting.is_finished() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let output = tokio::time::timeout(LIMIT, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    text(&output.stdout)
}

#[tokio::test]
async fn subscribe_and_publish_reach_a_tls_hub_with_cacert_or_insecure() {
    let hub = tls_hub();
    let cacert = tls_fixture("cert.pem");
    for tls_args in [&["--cacert", cacert.as_str()][..], &["--insecure"][..]] {
        let stdout = tls_round_trip(&hub, tls_args).await;
        assert!(
            stdout.contains(r#""data":"over tls""#),
            "{tls_args:?}: {stdout}"
        );
    }
}

#[tokio::test]
async fn an_untrusted_certificate_is_fatal_with_a_hint() {
    let hub = tls_hub();
    let url = format!("https://localhost:{}/events?topic=a", hub.addr.port());
    let output = subscribe(&["--max-retries", "2", &url]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("certificate is not trusted"), "{stderr}");
    assert!(stderr.contains("--cacert FILE"), "{stderr}");
    assert!(!stderr.contains("reconnecting"), "{stderr}");
}

#[tokio::test]
async fn plain_http_to_a_tls_port_is_fatal_and_says_https() {
    let hub = tls_hub();
    let url = format!("http://127.0.0.1:{}/events?topic=a", hub.addr.port());
    let output = subscribe(&["--max-retries", "2", &url]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("use an https:// URL"), "{stderr}");
    assert!(!stderr.contains("reconnecting"), "{stderr}");
}

#[tokio::test]
async fn https_to_a_plain_port_is_fatal_and_says_so() {
    let hub = hub_support::Hub::start(&["--store", "memory"]);
    let url = format!("https://{}/events?topic=a", hub.addr);
    let output = subscribe(&["--max-retries", "2", &url]).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("does not speak TLS"), "{stderr}");
    assert!(!stderr.contains("reconnecting"), "{stderr}");
}

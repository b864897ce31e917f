//! `herald publish` as a real process against a recording server that answers as DESIGN.md says.

use std::process::{Output, Stdio};
use std::time::Duration;

use herald_testkit::{Response, ScriptedServer, free_port};
use tokio::io::AsyncWriteExt;
use tokio::process::Command;

/// Safety net for a loaded machine; never reached when things work.
const LIMIT: Duration = Duration::from_secs(60);

async fn publish(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .arg("publish")
        .args(args)
        .env_remove("HERALD_TOKEN")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("herald runs");
    if let Some(input) = stdin {
        let mut pipe = child.stdin.take().unwrap();
        pipe.write_all(input).await.unwrap();
    }
    tokio::time::timeout(LIMIT, child.wait_with_output())
        .await
        .expect("herald publish exits")
        .expect("herald runs")
}

fn text(bytes: &[u8]) -> String {
    String::from_utf8(bytes.to_vec()).expect("UTF-8 output")
}

fn json(bytes: &[u8]) -> serde_json::Value {
    serde_json::from_slice(bytes).expect("a JSON body")
}

#[tokio::test]
async fn posts_every_field_given_with_the_token_and_prints_the_id() {
    let server = ScriptedServer::start([Response::json(200, r#"{"id":"1700000000000-3"}"#)]).await;
    let base = server.url("/hub/");
    let output = publish(
        &[
            "--url",
            &base,
            "--topic",
            "chat/room-1",
            "--event",
            "greeting",
            "--id",
            "key-1",
            "--retry",
            "2500",
            "--private",
            "--data",
            "hello\nworld",
            "--token",
            "abc.def.ghi",
        ],
        None,
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(text(&output.stdout), "1700000000000-3\n");
    let request = &server.wait_for_requests(1).await[0];
    assert_eq!(request.method, "POST");
    assert_eq!(request.target, "/hub/publish");
    assert_eq!(request.header("content-type"), Some("application/json"));
    assert_eq!(request.header("authorization"), Some("Bearer abc.def.ghi"));
    assert_eq!(
        json(&request.body),
        serde_json::json!({
            "topic": "chat/room-1", "data": "hello\nworld", "event": "greeting",
            "id": "key-1", "retry": 2500, "private": true
        })
    );
}

#[tokio::test]
async fn only_the_fields_given_are_sent_and_the_token_may_come_from_the_environment() {
    let server = ScriptedServer::start([Response::json(200, r#"{"id":42}"#)]).await;
    let output = {
        let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
        command
            .args([
                "publish",
                "--url",
                &server.url(""),
                "--topic",
                "t",
                "--data",
                "",
            ])
            .env("HERALD_TOKEN", "from-env")
            .stdin(Stdio::null())
            .kill_on_drop(true);
        tokio::time::timeout(LIMIT, command.output())
            .await
            .unwrap()
            .unwrap()
    };
    assert!(output.status.success(), "{output:?}");
    assert_eq!(text(&output.stdout), "42\n");
    let request = &server.wait_for_requests(1).await[0];
    assert_eq!(request.target, "/publish");
    assert_eq!(request.header("authorization"), Some("Bearer from-env"));
    assert_eq!(
        json(&request.body),
        serde_json::json!({"topic": "t", "data": ""})
    );
}

#[tokio::test]
async fn data_comes_from_stdin_or_a_file_without_its_final_line_end() {
    let server = ScriptedServer::start([
        Response::json(200, r#"{"id":"1"}"#),
        Response::json(200, r#"{"id":"2"}"#),
    ])
    .await;
    let base = server.url("");
    let output = publish(
        &["--url", &base, "--topic", "t"],
        Some(b"line 1\nline 2\r\n"),
    )
    .await;
    assert!(output.status.success(), "{output:?}");

    let dir = std::env::temp_dir().join(format!("herald-publish-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("data.json");
    std::fs::write(&file, "{\"a\": 1}\n\n").unwrap();
    let output = publish(
        &[
            "--url",
            &base,
            "--topic",
            "t",
            "--data-file",
            file.to_str().unwrap(),
        ],
        None,
    )
    .await;
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(output.status.success(), "{output:?}");

    let requests = server.wait_for_requests(2).await;
    assert_eq!(json(&requests[0].body)["data"], "line 1\nline 2");
    assert_eq!(json(&requests[1].body)["data"], "{\"a\": 1}\n");
}

#[tokio::test]
async fn a_refusal_prints_the_hubs_error_and_exits_1() {
    let cases = [
        (
            Response::json(400, r#"{"error":"missing topic"}"#),
            "HTTP 400 Bad Request: missing topic",
        ),
        (
            Response::json(403, r#"{"error":"token may not publish to t"}"#),
            "token may not publish to t",
        ),
        (
            Response::status(502)
                .header("Content-Type", "text/html")
                .chunk("<h1>Bad gateway</h1>"),
            "HTTP 502 Bad Gateway: <h1>Bad gateway</h1>",
        ),
        (
            Response::status(500),
            "HTTP 500 Internal Server Error: (no message)",
        ),
        (Response::json(200, r#"{"ok":true}"#), "without an id"),
        (Response::json(200, "not json"), "without an id: not json"),
        (Response::json(200, r#"{"id":null}"#), "without an id"),
        // A flood instead of an answer: read up to a limit, shown truncated.
        (
            Response::status(500).pieces(&vec![b'x'; 4 << 20], 64 << 10),
            "xxx...",
        ),
    ];
    for (response, message) in cases {
        let server = ScriptedServer::start([response]).await;
        let output = publish(
            &["--url", &server.url(""), "--topic", "t", "--data", "x"],
            None,
        )
        .await;
        assert_eq!(output.status.code(), Some(1), "{output:?}");
        assert_eq!(output.stdout, b"");
        let stderr = text(&output.stderr);
        assert!(
            stderr.starts_with("herald: ") && stderr.contains(message),
            "{stderr}"
        );
    }
}

#[tokio::test]
async fn an_unreachable_hub_exits_1() {
    let base = format!("http://127.0.0.1:{}", free_port());
    let output = publish(&["--url", &base, "--topic", "t", "--data", "x"], None).await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(text(&output.stderr).contains("publishing to"), "{output:?}");
}

#[tokio::test]
async fn bad_usage_exits_2_before_sending_anything() {
    let server = ScriptedServer::start([]).await;
    let base = server.url("");
    let cases: [&[&str]; 7] = [
        &["--url", "127.0.0.1:8080", "--topic", "t", "--data", "x"],
        &["--url", "ftp://127.0.0.1/", "--topic", "t", "--data", "x"],
        &[
            "--url", &base, "--topic", "t", "--data", "x", "--event", "a\nb",
        ],
        &[
            "--url", &base, "--topic", "t", "--data", "x", "--id", "a\rb",
        ],
        &[
            "--url",
            &base,
            "--topic",
            "t",
            "--data",
            "x",
            "--data-file",
            "f",
        ],
        &["--url", &base, "--data", "x"],
        &[
            "--url", &base, "--topic", "t", "--data", "x", "--retry", "soon",
        ],
    ];
    for args in cases {
        let output = publish(args, None).await;
        assert_eq!(output.status.code(), Some(2), "{args:?}: {output:?}");
    }
    assert!(server.connections().is_empty());
}

#[tokio::test]
async fn data_that_is_not_utf8_is_refused() {
    let server = ScriptedServer::start([]).await;
    let output = publish(
        &["--url", &server.url(""), "--topic", "t"],
        Some(b"\xff\xfe"),
    )
    .await;
    assert_eq!(output.status.code(), Some(1), "{output:?}");
    assert!(text(&output.stderr).contains("not UTF-8"), "{output:?}");
    assert!(server.connections().is_empty());
}

#[tokio::test]
async fn a_url_ending_in_publish_is_taken_as_the_base_url_with_a_note() {
    let server = ScriptedServer::start([Response::json(200, r#"{"id":"1-0"}"#)]).await;
    let output = publish(
        &[
            "--url",
            &server.url("/publish"),
            "--topic",
            "t",
            "--data",
            "x",
        ],
        None,
    )
    .await;
    assert!(output.status.success(), "{output:?}");
    assert_eq!(text(&output.stdout), "1-0\n");
    let stderr = text(&output.stderr);
    assert!(stderr.contains("--url is the hub's base URL"), "{stderr}");
    let requests = server.wait_for_requests(1).await;
    assert_eq!(requests[0].target, "/publish");
}

#[tokio::test]
async fn the_url_defaults_to_herald_url_then_the_local_hub() {
    let server = ScriptedServer::start([Response::json(200, r#"{"id":"2-0"}"#)]).await;
    let mut command = Command::new(env!("CARGO_BIN_EXE_herald"));
    command
        .args(["publish", "--topic", "t", "--data", "x"])
        .env_remove("HERALD_TOKEN")
        .env("HERALD_URL", server.url(""))
        .stdin(Stdio::null())
        .kill_on_drop(true);
    let output = tokio::time::timeout(LIMIT, command.output())
        .await
        .unwrap()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    assert_eq!(text(&output.stdout), "2-0\n");
    // Without either, the hub `herald serve` starts by default (not contacted here: port 3000
    // may be anyone's on a shared machine).
    let help = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["publish", "--help"])
        .output()
        .unwrap();
    let help = text(&help.stdout);
    assert!(help.contains("[default: http://127.0.0.1:3000]"), "{help}");
    assert!(help.contains("HERALD_URL"), "{help}");
}

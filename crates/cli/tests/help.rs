//! Issue 18, item 3: the help and the errors a new user meets in the first hour teach the next
//! step. Each test runs the real `herald` binary: `--help` shows examples and grouped flags, the
//! same short flags work on every command, and each refusal (no signing key, a config key typo, a
//! data dir in use, a bad pattern) names what to do instead.

mod hub_support;

use std::io::{BufRead as _, BufReader};
use std::process::{Command, Output, Stdio};
use std::time::Instant;

use hub_support::{Hub, TIMEOUT, error_of};

fn herald(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .env_remove("HERALD_JWT_SECRET")
        .env_remove("HERALD_CONFIG")
        .env_remove("HERALD_TOKEN")
        .stdin(Stdio::null())
        .output()
        .expect("run herald")
}

fn stdout_of(args: &[&str]) -> String {
    let out = herald(args);
    assert!(out.status.success(), "{args:?}: {out:?}");
    String::from_utf8(out.stdout).unwrap()
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn help_shows_examples_for_every_command() {
    let top = stdout_of(&["--help"]);
    for line in [
        "Examples:",
        "herald serve --demo",
        "herald subscribe 'http://127.0.0.1:3000/events?topic=chat/demo'",
        "herald publish --url http://127.0.0.1:3000 --topic chat/demo --data hello",
        "herald token --publish 'chat/**' --subscribe 'chat/**'",
    ] {
        assert!(top.contains(line), "herald --help lacks {line:?}:\n{top}");
    }
    for (command, example) in [
        ("serve", "herald serve --demo"),
        (
            "publish",
            "herald publish --url http://127.0.0.1:3000 --topic",
        ),
        (
            "subscribe",
            "herald subscribe 'http://127.0.0.1:3000/events?topic=",
        ),
        ("token", "herald token --publish"),
        ("bench", "herald bench conns --url"),
    ] {
        // `-h` and `--help` alike, and the command's own notes are kept before the examples.
        for flag in ["-h", "--help"] {
            let help = stdout_of(&[command, flag]);
            assert!(
                help.contains("Examples:") && help.contains(example),
                "herald {command} {flag} lacks {example:?}:\n{help}"
            );
        }
    }
    let publish = stdout_of(&["publish", "--help"]);
    assert!(
        publish.find("The data comes from") < publish.find("Examples:"),
        "{publish}"
    );
}

#[test]
fn serve_help_groups_its_flags_under_headings() {
    let help = stdout_of(&["serve", "--help"]);
    // Each heading, with one of its flags listed after it and before the next heading.
    let groups = [
        ("Store:", "--data-dir"),
        ("Authentication and browsers:", "--jwt-secret"),
        ("Limits:", "--max-connections"),
        ("Timeouts:", "--heartbeat"),
        ("TLS:", "--tls-cert"),
        ("Pages:", "--static"),
        ("Observability:", "--log-format"),
    ];
    let heading_at = |h: &str| {
        help.lines()
            .position(|l| l == h)
            .unwrap_or_else(|| panic!("no heading {h:?}:\n{help}"))
    };
    let lines: Vec<&str> = help.lines().collect();
    for (heading, flag) in groups {
        let start = heading_at(heading);
        let end = lines[start + 1..]
            .iter()
            .position(|l| l.ends_with(':') && !l.starts_with(' '))
            .map_or(lines.len(), |i| start + 1 + i);
        assert!(
            lines[start..end]
                .iter()
                .any(|l| l.trim_start().starts_with(flag)),
            "{flag} is not under {heading:?}:\n{help}"
        );
    }
}

#[test]
fn bench_takes_short_h_for_headers_as_subscribe_does() {
    for command in [
        &["subscribe"][..],
        &["bench", "conns"][..],
        &["bench", "fanout"][..],
    ] {
        let mut args = command.to_vec();
        args.push("--help");
        let help = stdout_of(&args);
        assert!(
            help.contains("-H, --header <NAME: VALUE>"),
            "herald {command:?} has no -H:\n{help}"
        );
    }
    // Parsed too: a malformed header is refused as usage, not as an unknown `-H`.
    let out = herald(&[
        "bench",
        "conns",
        "--url",
        "http://127.0.0.1:9/events?topic=a",
        "-n",
        "1",
        "-H",
        "no colon",
        "--open-timeout",
        "1",
    ]);
    assert!(
        !stderr(&out).contains("unexpected argument '-H'"),
        "{out:?}"
    );
}

#[test]
fn token_without_a_secret_names_both_ways_to_give_one() {
    let out = herald(&["token", "--subscribe", "chat/**"]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    assert!(out.stdout.is_empty(), "{out:?}");
    let err = stderr(&out);
    for needed in [
        "HERALD_JWT_SECRET",
        "--jwt-secret",
        "--secret",
        "--private-key",
        "--jwt-public-key",
    ] {
        assert!(err.contains(needed), "lacks {needed}: {err}");
    }
    // A short secret from the environment names the variable, not only the flag.
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["token", "--subscribe", "chat/**"])
        .env("HERALD_JWT_SECRET", "short")
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(stderr(&out).contains("HERALD_JWT_SECRET"), "{out:?}");
}

#[test]
fn config_key_typo_suggests_the_flag() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("herald.toml");
    std::fs::write(&path, "heartbeat = \"15s\"\ndata_dir = \"/tmp/x\"\n").unwrap();
    let out = herald(&["serve", "--config", path.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("line 2: unknown key `data_dir` (did you mean `data-dir`?)"),
        "{err}"
    );
    std::fs::write(&path, "hearbeat = \"15s\"\n").unwrap();
    let err = stderr(&herald(&["serve", "--config", path.to_str().unwrap()]));
    assert!(err.contains("(did you mean `heartbeat`?)"), "{err}");
}

#[test]
fn flag_typo_suggests_the_flag() {
    // clap's suggestion, kept on through our two-step parse with config and environment.
    for (args, near) in [
        (&["serve", "--hearbeat", "1s"][..], "--heartbeat"),
        (&["token", "--subscirbe", "a"][..], "--subscribe"),
        (&["subscribe", "--jsn", "http://x/"][..], "--json"),
    ] {
        let out = herald(args);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = stderr(&out);
        assert!(
            err.contains(&format!("a similar argument exists: '{near}'")),
            "{err}"
        );
    }
}

#[test]
fn startup_line_shows_the_demo_page_and_dashboard_urls() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--store", "memory", "--addr", "127.0.0.1:0"])
        .env("HERALD_LOG", "info")
        .env_remove("HERALD_JWT_SECRET")
        .env_remove("HERALD_CONFIG")
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let stderr = child.stderr.take().unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut line = String::new();
    for l in BufReader::new(stderr).lines() {
        let l = l.unwrap();
        if l.contains("listening on") || Instant::now() > deadline {
            line = l;
            break;
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    let base = line
        .split_once("listening on ")
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no listening line: {line:?}"))
        .to_owned();
    assert!(base.starts_with("http://127.0.0.1:"), "{line}");
    assert!(line.contains(&format!("demo page: {base}/")), "{line}");
    assert!(
        line.contains(&format!("dashboard: {base}/dashboard")),
        "{line}"
    );
}

#[test]
fn second_hub_on_one_data_dir_says_another_hub_is_running() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let data = data.to_str().unwrap();
    let _first = Hub::start(&["--data-dir", data]);
    let out = herald(&["serve", "--addr", "127.0.0.1:0", "--data-dir", data]);
    assert_eq!(out.status.code(), Some(1), "{out:?}");
    let err = stderr(&out);
    assert!(err.contains(data), "{err}");
    assert!(
        err.contains("another herald is probably running on this --data-dir"),
        "{err}"
    );
}

#[test]
fn pattern_errors_name_the_rule_broken() {
    let hub = Hub::start(&["--store", "memory"]);
    for (pattern, rule) in [
        ("ch*t", "a wildcard is a whole segment"),
        ("**/a", "'**' may only be the last segment"),
        ("a//b", "empty segment"),
        ("a%20b", "may only contain"),
    ] {
        let (status, body) = hub.request("GET", &format!("/events?topic={pattern}"), &[], b"");
        assert_eq!(status, 400, "{pattern}: {body}");
        let reason = error_of(&body);
        assert!(reason.contains(rule), "{pattern}: {reason}");
    }
    let (status, body) = hub.publish_json(r#"{"topic":"chat/*","data":"x"}"#);
    assert_eq!(status, 400, "{body}");
    assert!(
        error_of(&body).contains("wildcards ('*', '**') are for subscribing"),
        "{body}"
    );
    // The CLI says it too, with the flag and the pattern.
    let out = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["token", "--subscribe", "chat/**/typing"])
        .env("HERALD_JWT_SECRET", "a".repeat(32))
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.contains("--subscribe \"chat/**/typing\": '**' may only be the last segment"),
        "{err}"
    );
}

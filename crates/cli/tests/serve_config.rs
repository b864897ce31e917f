//! `herald serve` settings from flags, `HERALD_*` environment variables and a `--config` TOML
//! file, on the real process: the precedence (flag > environment > file > default), bad files
//! and values stopping start-up with the key and file named, and `--log-format json`.

mod hub_support;

use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use hub_support::{Hub, TIMEOUT};

/// The `retry:` a fresh stream of `hub` starts with: the effective `--retry`.
fn first_retry(hub: &Hub) -> u64 {
    let mut sub = hub.subscribe("topic=t", None);
    sub.wait_bytes("retry: 3000\n".len()); // every value here has 4 digits
    let raw = String::from_utf8_lossy(&sub.raw).into_owned();
    let line = raw.lines().next().unwrap();
    line.strip_prefix("retry: ")
        .unwrap_or_else(|| panic!("{raw:?}"))
        .parse()
        .unwrap()
}

fn config_file(text: &str) -> tempfile::NamedTempFile {
    let mut file = tempfile::Builder::new().suffix(".toml").tempfile().unwrap();
    std::io::Write::write_all(&mut file, text.as_bytes()).unwrap();
    file
}

#[test]
fn flag_beats_environment_beats_file_beats_default() {
    let file = config_file("retry = \"1111ms\"\nstore = \"memory\"\n");
    let path = file.path().to_str().unwrap();
    let memory = ["--store", "memory"];
    assert_eq!(first_retry(&Hub::start(&memory)), 3000, "default");
    assert_eq!(first_retry(&Hub::start(&["--config", path])), 1111, "file");
    // HERALD_CONFIG names the file as --config does.
    let hub = Hub::start_with_env(&[], &[("HERALD_CONFIG", path)]);
    assert_eq!(first_retry(&hub), 1111, "file from HERALD_CONFIG");
    let env = [("HERALD_CONFIG", path), ("HERALD_RETRY", "2222ms")];
    assert_eq!(first_retry(&Hub::start_with_env(&[], &env)), 2222, "env");
    let hub = Hub::start_with_env(&["--retry", "3333ms"], &env);
    assert_eq!(first_retry(&hub), 3333, "flag");
}

/// A switch reads its environment variable as a boolean.
#[test]
fn switches_from_the_environment_and_the_file() {
    // --demo publishes the time to demo/time every second.
    let file = config_file("demo = true\n");
    let hub = Hub::start(&[
        "--store",
        "memory",
        "--config",
        file.path().to_str().unwrap(),
    ]);
    let mut sub = hub.subscribe("topic=demo/time", None);
    assert_eq!(sub.next().unwrap().event_type, "time");
    let hub = Hub::start_with_env(&["--store", "memory"], &[("HERALD_DEMO", "yes")]);
    let mut sub = hub.subscribe("topic=demo/time", None);
    assert_eq!(sub.next().unwrap().event_type, "time");
}

/// Runs `herald serve` expecting it to stop at start-up; returns (exit code, stderr).
fn failed_start(args: &[&str], env: &[(&str, &str)]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--store", "memory", "--addr", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("herald started with {args:?} {env:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    (out.status.code().unwrap(), stderr)
}

#[test]
fn bad_files_and_values_stop_start_up_naming_key_file_and_line() {
    let cases = [
        ("retry = \"1s\"\nbogus = 1\n", "line 2: unknown key `bogus`"),
        ("heartbeat = \"fast\"\n", "line 1: `heartbeat` = \"fast\""),
        ("heartbeat = \"0s\"\n", "must be from 10ms to 1h"),
        ("addr = \"nowhere\"\n", "`addr` = \"nowhere\""),
        ("max-topics = \"many\"\n", "`max-topics` = \"many\""),
        ("max-topics = -1\n", "`max-topics` = \"-1\""),
        ("demo = \"yes\"\n", "`demo`: expected a boolean"),
        ("retry = [\"1s\"]\n", "`retry`: takes one value"),
        ("store = \"disk\"\n", "possible values: embedded, memory"),
        ("log-format = \"xml\"\n", "`log-format` = \"xml\""),
        ("[serve]\nretry = \"1s\"\n", "line 1: unknown key `serve`"),
        ("retry = \"1s\nheartbeat = 3\n", "not valid TOML"),
    ];
    for (text, expected) in cases {
        let file = config_file(text);
        let path = file.path().to_str().unwrap();
        let (code, stderr) = failed_start(&["--config", path], &[]);
        assert_eq!(code, 2, "{text:?}: {stderr}");
        assert!(
            stderr.contains(&format!("config file {path}")) && stderr.contains(expected),
            "{text:?}: expected {expected:?} in {stderr}"
        );
    }
}

/// The hub crate's test keys.
const FIXTURES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../hub/tests/fixtures");
const SECRET: &str = "0123456789abcdef0123456789abcdef";

/// Flags after `herald serve` of one case.
type Flags<'a> = &'a [&'a str];
/// Environment variables of one case.
type Env<'a> = &'a [(&'a str, &'a str)];

/// Rules between flags (`jwt-secret` excludes `jwt-public-key`, `jwt-alg` needs
/// `jwt-public-key`, ...) apply to file values too, alone or with flags and environment variables.
#[test]
fn rules_between_flags_apply_to_the_file() {
    let rsa = format!("{FIXTURES}/rsa_public.pem");
    let secret_and_key = format!("jwt-secret = {SECRET:?}\njwt-public-key = {rsa:?}\n");
    let key = format!("jwt-public-key = {rsa:?}\n");
    let cases: [(&str, Flags<'_>, Env<'_>, &str); 6] = [
        (
            &secret_and_key,
            &[],
            &[],
            "`jwt-secret` (line 1) cannot be used with `jwt-public-key` (line 2): give one of them",
        ),
        (
            &key,
            &["--jwt-secret", SECRET],
            &[],
            "--jwt-secret cannot be used with `jwt-public-key` (line 1)",
        ),
        (
            &key,
            &[],
            &[("HERALD_JWT_SECRET", SECRET)],
            "$HERALD_JWT_SECRET cannot be used with `jwt-public-key` (line 1)",
        ),
        (
            "jwt-alg = \"ES256\"\n",
            &[],
            &[],
            "`jwt-alg` (line 1) needs `jwt-public-key`",
        ),
        (
            "publish-burst = 5\n",
            &[],
            &[],
            "`publish-burst` (line 1) needs `publish-rate`",
        ),
        (
            "heartbeat = \"5s\"\ntls-cert = \"cert.pem\"\n",
            &[],
            &[],
            "`tls-cert` (line 2) needs `tls-key`",
        ),
    ];
    for (text, flags, env, expected) in cases {
        let file = config_file(text);
        let path = file.path().to_str().unwrap();
        let args = [&["--config", path][..], flags].concat();
        let (code, stderr) = failed_start(&args, env);
        assert_eq!(code, 2, "{text:?} {flags:?} {env:?}: {stderr}");
        assert!(
            stderr.contains(&format!("herald: config file {path}: {expected}")),
            "{text:?} {flags:?} {env:?}: expected {expected:?} in {stderr}"
        );
    }
}

/// The same rules, broken by flags or environment variables alone, name them as given.
#[test]
fn rules_between_flags_apply_to_the_environment() {
    let rsa = format!("{FIXTURES}/rsa_public.pem");
    let cases: [(Flags<'_>, Env<'_>, &str); 3] = [
        (
            &[],
            &[("HERALD_JWT_ALG", "ES256")],
            "herald: $HERALD_JWT_ALG needs $HERALD_JWT_PUBLIC_KEY",
        ),
        (
            &["--jwt-public-key", &rsa],
            &[("HERALD_JWT_SECRET", SECRET)],
            "herald: $HERALD_JWT_SECRET cannot be used with --jwt-public-key",
        ),
        (
            &["--jwt-secret", SECRET, "--jwt-alg", "RS256"],
            &[],
            "herald: --jwt-alg needs --jwt-public-key",
        ),
    ];
    for (flags, env, expected) in cases {
        let (code, stderr) = failed_start(flags, env);
        assert_eq!(code, 2, "{flags:?} {env:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{flags:?} {env:?}: expected {expected:?} in {stderr}"
        );
        assert!(!stderr.contains(SECRET), "the secret in {stderr}");
    }
}

/// A file value meets a rule as a flag does: these start (clap alone refused the first two, as
/// it saw the file's value as a default).
#[test]
fn valid_combinations_with_the_file_start() {
    let rsa = format!("{FIXTURES}/rsa_public.pem");
    let key = format!("jwt-public-key = {rsa:?}\n");
    let key_and_alg = format!("{key}jwt-alg = \"RS256\"\n");
    let cases: [(&str, Flags<'_>, Env<'_>); 5] = [
        (&key, &["--jwt-alg", "RS256"], &[]),
        ("publish-rate = 10\n", &["--publish-burst", "5"], &[]),
        (&key, &[], &[("HERALD_JWT_ALG", "RS256")]),
        (&key_and_alg, &[], &[]),
        ("publish-rate = 10\npublish-burst = 5\n", &[], &[]),
    ];
    for (text, flags, env) in cases {
        let file = config_file(text);
        let path = file.path().to_str().unwrap();
        let args = [&["--store", "memory", "--config", path][..], flags].concat();
        drop(Hub::start_with_env(&args, env));
    }
}

#[test]
fn a_missing_config_file_stops_start_up() {
    let (code, stderr) = failed_start(&["--config", "/nonexistent/herald.toml"], &[]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("config file /nonexistent/herald.toml: cannot be read"),
        "{stderr}"
    );
    let env = [("HERALD_CONFIG", "/nonexistent/env.toml")];
    let (code, stderr) = failed_start(&[], &env);
    assert_eq!(code, 2, "{stderr}");
    assert!(stderr.contains("/nonexistent/env.toml"), "{stderr}");
}

#[test]
fn bad_environment_values_stop_start_up() {
    for (var, value) in [
        ("HERALD_HEARTBEAT", "fast"),
        ("HERALD_MAX_TOPICS", "many"),
        ("HERALD_DEMO", "perhaps"),
        ("HERALD_LOG_FORMAT", "xml"),
    ] {
        let (code, stderr) = failed_start(&[], &[(var, value)]);
        assert_eq!(code, 2, "{var}={value}: {stderr}");
        assert!(stderr.contains(value), "{var}={value}: {stderr}");
        assert!(
            stderr.contains(&format!("from ${var}")),
            "{var}={value}: {stderr}"
        );
    }
}

/// With `--log-format json` every log line is one JSON object, and an `access_token` query
/// parameter never reaches the log, even at trace level.
#[test]
fn json_logs_are_one_object_per_line_without_tokens() {
    const SECRET: &str = "s3cr3t-t0ken-value";
    let mut hub = Hub::start_with_env(
        &["--store", "memory", "--log-format", "json"],
        &[("HERALD_LOG", "trace")],
    );
    let mut sub = hub.subscribe(&format!("topic=t&access_token={SECRET}"), None);
    hub.publish("t", "hello");
    assert_eq!(sub.next().unwrap().data, "hello");
    // Through hyper too (not the direct SSE path): a second request on one connection.
    let (status, _) = hub.request(
        "GET",
        &format!("/healthz?access_token={SECRET}"),
        &[("Authorization", &format!("Bearer {SECRET}"))],
        b"",
    );
    assert_eq!(status, 200);
    drop(sub);
    hub.signal("TERM");
    assert!(
        hub.wait_exit(TIMEOUT)
            .expect("herald did not exit")
            .success()
    );
    let lines: Vec<String> = hub.log.try_iter().collect();
    assert!(
        lines.iter().any(|l| l.contains("herald stopped")),
        "{lines:?}"
    );
    for line in &lines {
        let value: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|err| panic!("{err}: {line}"));
        assert!(value.is_object(), "{line}");
        assert!(value.get("level").is_some(), "{line}");
        assert!(!line.contains(SECRET), "token in the log: {line}");
    }
}

/// Issue 13: `--publish-rate 1e-20` started and then panicked on the second publish, and
/// `--max-connections 0` started and refused everything. Every numeric flag is range-checked at
/// start-up, as a flag, an environment variable or a config file key: exit 2, and the message
/// names the setting, the value and the range.
#[test]
fn out_of_range_numbers_stop_start_up_naming_flag_value_and_range() {
    let flags: &[(&[&str], &str)] = &[
        (&["--max-connections", "0"], "'0' for '--max-connections"),
        (&["--publish-rate", "1e-20"], "'1e-20' for '--publish-rate"),
        (&["--publish-rate", "NaN"], "'NaN' for '--publish-rate"),
        (&["--publish-rate", "inf"], "'inf' for '--publish-rate"),
        (&["--publish-rate=-1"], "'-1' for '--publish-rate"),
        (
            &["--publish-rate", "5", "--publish-burst", "0"],
            "'0' for '--publish-burst",
        ),
        (&["--max-topics", "0"], "'0' for '--max-topics"),
        (&["--max-body-bytes", "0"], "'0' for '--max-body-bytes"),
        (&["--max-unsent-bytes", "0"], "'0' for '--max-unsent-bytes"),
        (
            &["--max-body-bytes", "99999999999999999999"],
            "'99999999999999999999'",
        ),
        (&["--heartbeat", "0s"], "'0s' for '--heartbeat"),
        (&["--heartbeat", "9999d"], "'9999d' for '--heartbeat"),
        (&["--write-timeout", "0ms"], "'0ms' for '--write-timeout"),
        (&["--retry", "400d"], "'400d' for '--retry"),
        (
            &["--retention-age", "99999d"],
            "'99999d' for '--retention-age",
        ),
    ];
    for (args, names) in flags {
        let (code, stderr) = failed_start(args, &[]);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(
            stderr.contains(names) && stderr.contains("must be"),
            "{args:?}: expected {names:?} and the range in {stderr}"
        );
    }
    let (code, stderr) = failed_start(&[], &[("HERALD_MAX_CONNECTIONS", "0")]);
    assert_eq!(code, 2, "{stderr}");
    assert!(
        stderr.contains("must be from 1 to 1000000")
            && stderr.contains("the value comes from $HERALD_MAX_CONNECTIONS"),
        "{stderr}"
    );
    for (text, expected) in [
        ("max-connections = 0\n", "`max-connections` = \"0\""),
        ("publish-rate = 1e-20\n", "`publish-rate` = \"1e-20\""),
        ("heartbeat = \"9999d\"\n", "`heartbeat` = \"9999d\""),
    ] {
        let file = config_file(text);
        let path = file.path().to_str().unwrap();
        let (code, stderr) = failed_start(&["--config", path], &[]);
        assert_eq!(code, 2, "{text:?}: {stderr}");
        assert!(
            stderr.contains(&format!("config file {path}, line 1: {expected}"))
                && stderr.contains("must be"),
            "{text:?}: {stderr}"
        );
    }
}

/// The other commands' numbers: out of range is bad usage (exit 2) naming the flag.
#[test]
fn out_of_range_numbers_of_publish_subscribe_and_token_are_bad_usage() {
    let secret = ["--secret", SECRET];
    let cases: &[(&[&str], &str)] = &[
        (
            &["token", secret[0], secret[1], "--ttl", "3651d"],
            "'3651d' for '--ttl",
        ),
        (
            &["token", secret[0], secret[1], "--ttl", "0s"],
            "'0s' for '--ttl",
        ),
        (
            &[
                "publish",
                "--url",
                "http://127.0.0.1:1",
                "--topic",
                "t",
                "--data",
                "x",
                "--retry",
                "18446744073709551615",
            ],
            "for '--retry",
        ),
        (
            &[
                "subscribe",
                "--idle-timeout",
                "1e-20",
                "http://127.0.0.1:1/",
            ],
            "for '--idle-timeout",
        ),
        (
            &["subscribe", "--idle-timeout", "NaN", "http://127.0.0.1:1/"],
            "for '--idle-timeout",
        ),
    ];
    for (args, names) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args(*args)
            .env_remove("HERALD_TOKEN")
            .env_remove("HERALD_JWT_SECRET")
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(
            stderr.contains(names) && stderr.contains("must be"),
            "{args:?}: {stderr}"
        );
    }
}

/// Issue 13: a `--redis-url` with a password was printed whole in the start-up error when Redis
/// was unreachable.
#[test]
fn redis_url_password_never_appears_in_stderr_when_redis_is_unreachable() {
    let port = herald_testkit::free_port();
    for url in [
        format!("redis://:hunter2pw@127.0.0.1:{port}/0"),
        format!("redis://default:hunter2pw@127.0.0.1:{port}"),
        // Too malformed for the redis client to parse: still redacted.
        "redis://:hunter2pw@[::1".to_owned(),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args([
                "serve",
                "--addr",
                "127.0.0.1:0",
                "--store",
                "redis",
                "--redis-url",
                &url,
            ])
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{url}: {stderr}");
        assert!(stderr.contains("redis"), "{stderr}");
        assert!(stderr.contains(":***@"), "{stderr}");
        assert!(
            !stderr.contains("hunter2pw"),
            "the password was printed: {stderr}"
        );
    }
}

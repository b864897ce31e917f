//! Every command line of the ```` ```sh ```` blocks in README.md and docs/*.md is run, as written,
//! against a real hub (issue 18: a new user following the docs met commands that could not run).
//!
//! `herald` is the binary under test (on `PATH`), `cargo run --release --` means it too, and
//! `127.0.0.1:3000` is the test hub's address. A block's commands run in order in one scratch
//! directory, each with the block's earlier `export`s, so a block that makes a certificate and then
//! serves with it runs as a user would run it. A `herald serve` line must start (its port becomes
//! a free one); a stream (`curl -N`, `herald subscribe`) must be open on the hub; every other
//! command must exit 0, and where the doc shows the output in `# ...` comments after it, each shown
//! line must appear in the output (digits stand for any digits; a line with `...` is not compared).
//! The commands that cannot run in a test are in [`SKIP`], each with its reason.

mod docs_support;
mod hub_support;

use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use docs_support::{docs, shell_blocks};
use hub_support::{Hub, TIMEOUT};

/// The commands not run, by how they start, each with the reason.
const SKIP: &[(&str, &str)] = &[
    (
        "scripts/test",
        "runs every suite, this one included (8 minutes)",
    ),
    ("cargo install", "installs into the user's ~/.cargo/bin"),
    (
        "install -m",
        "installs into /usr/local/bin and /etc/systemd (dist.rs checks the unit)",
    ),
    (
        "herald completions bash > /usr/",
        "writes into /usr/share (dist.rs sources the completions)",
    ),
    (
        "herald man > /usr/",
        "writes into /usr/share (dist.rs renders the man pages)",
    ),
    ("systemctl", "starts a system service"),
    (
        "docker build",
        "no container engine runs on the test machine",
    ),
    (
        "cargo build --release",
        "a release build (minutes); the test runs the binary under test",
    ),
    ("cargo bench", "a benchmark of several minutes"),
    (
        "bench/",
        "benchmark scripts of minutes, with nchan, Node or Redis",
    ),
    (
        "RATE=20 bench/",
        "a benchmark script of minutes, with Redis",
    ),
    (
        "HUBS=2 SUBS=2000 RATE=5 SECS=3 bench/",
        "starts Redis and several hubs",
    ),
    (
        "herald serve --store memory &",
        "the hub of the benchmark guide; the test starts its own",
    ),
    (
        "herald bench",
        "thousands of connections for 10 s; bench.rs runs it with small numbers",
    ),
    (
        "herald serve --store redis",
        "needs a Redis server (hub_redis.rs starts one)",
    ),
    (
        "herald serve --addr 127.0.0.1:0 --store redis",
        "needs a Redis server and a PORT",
    ),
    (
        "herald subscribe --fallback-url",
        "hub-a/b/c are placeholder hosts",
    ),
];

/// A secret for the commands that read `HERALD_JWT_SECRET` (the docs export their own too).
const TEST_SECRET: &str = "docs-commands-test-secret-docs-commands-test-secret";

/// What became of one command.
enum Outcome {
    Ran,
    Skipped(&'static str),
}

struct Runner {
    hub: Hub,
    bin_dir: tempfile::TempDir,
}

impl Runner {
    fn new() -> Runner {
        let hub = Hub::start(&["--demo", "--store", "memory"]);
        let bin_dir = tempfile::tempdir().unwrap();
        std::os::unix::fs::symlink(env!("CARGO_BIN_EXE_herald"), bin_dir.path().join("herald"))
            .unwrap();
        Runner { hub, bin_dir }
    }

    /// `command` as it runs here: the binary under test, the test hub's address.
    fn rewrite(&self, command: &str) -> String {
        command
            .replace("cargo run --release --", "herald")
            .replace("127.0.0.1:3000", &self.hub.addr.to_string())
    }

    fn bash(&self, script: &str, dir: &Path) -> Command {
        let mut command = Command::new("bash");
        let path = format!(
            "{}:{}",
            self.bin_dir.path().display(),
            std::env::var("PATH").unwrap_or_default()
        );
        command
            .args(["-euo", "pipefail", "-c", script])
            .current_dir(dir)
            .env("PATH", path)
            .env("HERALD_JWT_SECRET", TEST_SECRET)
            .env_remove("HERALD_TOKEN")
            .env_remove("HERALD_URL")
            .stdin(Stdio::null());
        command
    }

    /// Runs one command (after the block's earlier `exports`) in `dir`; `shown` is the output the
    /// doc shows for it.
    fn run(&self, exports: &str, command: &str, shown: &[String], dir: &Path) -> Outcome {
        if let Some((_, reason)) = SKIP.iter().find(|(start, _)| command.starts_with(start)) {
            return Outcome::Skipped(reason);
        }
        let line = self.rewrite(command);
        if line.starts_with("herald serve") {
            self.serve(exports, &line, dir);
        } else if line.starts_with("curl -N") || line.starts_with("herald subscribe") {
            self.stream(exports, &line, dir);
        } else {
            let out = self
                .bash(&format!("{exports}{line}"), dir)
                .output()
                .unwrap();
            let stdout = String::from_utf8_lossy(&out.stdout);
            assert!(
                out.status.success(),
                "`{line}` failed ({}):\n{stdout}\n{}",
                out.status,
                String::from_utf8_lossy(&out.stderr)
            );
            let got: Vec<String> = stdout.lines().map(shape).collect();
            for want in shown {
                assert!(
                    got.contains(&shape(want)),
                    "`{line}` printed\n{stdout}\nnot the shown line {want:?}"
                );
            }
        }
        Outcome::Ran
    }

    /// A `herald serve` line must start: it reports where it listens (on a free port here).
    fn serve(&self, exports: &str, line: &str, dir: &Path) {
        let line = with_free_port(line);
        let mut child = self
            .bash(&format!("{exports}exec {line}"), dir)
            .env("HERALD_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let (tx, rx) = mpsc::channel();
        let stderr = child.stderr.take().unwrap();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines().map_while(Result::ok) {
                let _ = tx.send(line);
            }
        });
        let mut log = Vec::new();
        let deadline = Instant::now() + TIMEOUT;
        let started = loop {
            match rx.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
                Ok(l) if l.contains("listening on ") => break true,
                Ok(l) => log.push(l),
                Err(_) => break false,
            }
        };
        let _ = child.kill();
        let _ = child.wait();
        assert!(started, "`{line}` did not start:\n{}", log.join("\n"));
    }

    /// A stream must open on the hub (its subscriptions gauge goes up) and stay open.
    fn stream(&self, exports: &str, line: &str, dir: &Path) {
        let before = self.hub.metric("herald_subscriptions");
        let mut child = self
            .bash(&format!("{exports}exec {line}"), dir)
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        let deadline = Instant::now() + TIMEOUT;
        let opened = loop {
            if self.hub.metric("herald_subscriptions") > before {
                break true;
            }
            if child.try_wait().unwrap().is_some() || Instant::now() > deadline {
                break false;
            }
            std::thread::sleep(Duration::from_millis(20));
        };
        let still_running = child.try_wait().unwrap().is_none();
        let _ = child.kill();
        let status = child.wait().unwrap();
        let mut err = String::new();
        child
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut err)
            .unwrap();
        assert!(
            opened && still_running,
            "`{line}` did not keep a stream open ({status}):\n{err}"
        );
        // The hub counts the stream as gone before the next command looks.
        self.hub
            .wait_metric("herald_subscriptions", |n| n <= before);
    }
}

/// `--addr` as `127.0.0.1:0`: the docs' ports may be taken (the test hub's among them), and a
/// test listens on loopback only.
fn with_free_port(line: &str) -> String {
    let mut words: Vec<String> = line.split(' ').map(str::to_owned).collect();
    let mut given = false;
    for i in 1..words.len() {
        if words[i - 1] == "--addr" {
            words[i] = "127.0.0.1:0".to_owned();
            given = true;
        }
    }
    let line = words.join(" ");
    if given {
        line
    } else {
        line.replacen("herald serve", "herald serve --addr 127.0.0.1:0", 1)
    }
}

/// A line with each run of digits as one `0`, so ids and times compare by shape.
fn shape(line: &str) -> String {
    let mut out = String::new();
    for c in line.trim().chars() {
        if c.is_ascii_digit() {
            if !out.ends_with('0') {
                out.push('0');
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// The `# ...` comment lines right after a command in its block's text, as the output it shows.
/// Comment lines that lead straight into the next command are that command's explanation, not
/// output: shown output ends at a blank line or at the end of the block.
fn shown_after(text: &str, line: usize) -> Vec<String> {
    let mut lines = text.lines().skip(line);
    // Past the command's own continuation lines.
    let mut current = text.lines().nth(line - 1).unwrap_or_default();
    while current.ends_with('\\') {
        current = lines.next().unwrap_or_default();
    }
    let mut comments = Vec::new();
    for l in lines {
        if let Some(comment) = l.strip_prefix('#') {
            comments.push(comment.strip_prefix(' ').unwrap_or(comment));
        } else if l.trim().is_empty() || l.trim_start().starts_with("```") {
            break;
        } else {
            return Vec::new();
        }
    }
    comments
        .into_iter()
        .filter(|l| !l.contains("...") && !l.trim().is_empty())
        .map(str::to_owned)
        .collect()
}

#[test]
fn every_command_line_in_the_readme_and_docs_runs_as_written() {
    let runner = Runner::new();
    let (mut ran, mut skipped) = (0, Vec::new());
    for file in docs() {
        let text = std::fs::read_to_string(&file).unwrap();
        let name = file.file_name().unwrap().to_string_lossy().into_owned();
        for block in shell_blocks(&text) {
            let dir = tempfile::tempdir().unwrap();
            let mut exports = String::new();
            for command in block {
                let shown = shown_after(&text, command.line);
                let (line, text) = (command.line, &command.text);
                eprintln!("{name}:{line}: {text}");
                match runner.run(&exports, text, &shown, dir.path()) {
                    Outcome::Ran => ran += 1,
                    Outcome::Skipped(why) => skipped.push(format!("{name}:{line}: {why}")),
                }
                if text.starts_with("export ") {
                    exports.push_str(&runner.rewrite(text));
                    exports.push('\n');
                }
            }
        }
    }
    eprintln!("skipped:\n{}", skipped.join("\n"));
    assert!(
        ran > 25,
        "the docs' command lines were not found ({ran} ran)"
    );
}

#[test]
fn shown_output_and_shapes_are_read_from_the_comments_after_a_command() {
    let text = "```sh\ncurl -X POST u \\\n  -d x\n# {\"id\":\"1-0\"}\n# a ... b\n\ncurl v\n```\n";
    let blocks = shell_blocks(text);
    assert_eq!(blocks.len(), 1);
    let lines: Vec<(usize, &str)> = blocks[0]
        .iter()
        .map(|c| (c.line, c.text.as_str()))
        .collect();
    assert_eq!(lines, [(2, "curl -X POST u    -d x"), (7, "curl v")]);
    assert_eq!(shown_after(text, 2), ["{\"id\":\"1-0\"}"]);
    // A comment leading into the next command explains it; it is not output.
    let text =
        "```sh\nopenssl req x\n# a secret\nexport S=1\ncurl -i u\n# HTTP/1.1 400\n#\n# {}\n```\n";
    assert_eq!(shown_after(text, 2), Vec::<String>::new());
    assert_eq!(shown_after(text, 5), ["HTTP/1.1 400", "{}"]);
    assert_eq!(
        shape("{\"id\":\"1763840000871-0\"}"),
        shape("{\"id\":\"1-0\"}")
    );
    assert_eq!(
        with_free_port("herald serve --addr 0.0.0.0:3443 --x"),
        "herald serve --addr 127.0.0.1:0 --x"
    );
    assert_eq!(
        with_free_port("herald serve --demo  # on 3000"),
        "herald serve --addr 127.0.0.1:0 --demo  # on 3000"
    );
}

/// The lines of the plain ```` ``` ```` block that follows `after` (a line of `text`).
fn block_after(text: &str, after: &str) -> Vec<String> {
    let mut lines = text.lines().skip_while(|l| !l.contains(after));
    // The end of the command's own block, then the start of the next.
    for _ in 0..2 {
        lines
            .find(|l| l.trim_start().starts_with("```"))
            .expect("no block after the command");
    }
    lines
        .take_while(|l| l.trim() != "```")
        .map(str::to_owned)
        .collect()
}

/// Issue 18: docs/http-api.md's sample stream had a blank line after `retry:` and after the `:`
/// heartbeat, which the hub does not send. The sample must be the hub's own lines: its `retry:`
/// line, a `time` event, a `chat` event and the heartbeat after it, in the hub's bytes.
#[test]
fn sample_stream_in_http_api_md_has_the_lines_the_hub_sends() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("docs/http-api.md")).unwrap();
    let doc = block_after(
        &text,
        "curl -N 'http://127.0.0.1:3000/events?topic=demo/time&topic=chat/*'",
    );

    let hub = Hub::start(&["--demo", "--store", "memory", "--heartbeat", "200ms"]);
    let mut stream = std::net::TcpStream::connect(hub.addr).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    std::io::Write::write_all(
        &mut stream,
        b"GET /events?topic=demo/time&topic=chat/* HTTP/1.0\r\nhost: x\r\n\r\n",
    )
    .unwrap();
    let mut got = Vec::new();
    hub_support::read_until(&mut stream, &mut got, "event: time");
    hub.publish_json(
        r#"{"topic":"chat/demo","event":"chat","data":{"name":"ann","text":"hello"}}"#,
    );
    hub_support::read_until(&mut stream, &mut got, "event: chat");
    let at = got.windows(11).position(|w| w == b"event: chat").unwrap();
    let mut buf = [0u8; 4096];
    // A heartbeat after the chat event and at least one byte after it, so a blank line after
    // the heartbeat would be seen.
    let heartbeat_and_more = |got: &[u8]| {
        let after = String::from_utf8_lossy(&got[at..]).into_owned();
        after.find("\n:\n").is_some_and(|i| after.len() > i + 3)
    };
    while !heartbeat_and_more(&got) {
        let n = stream.read(&mut buf).unwrap();
        assert!(n > 0, "closed: {}", String::from_utf8_lossy(&got));
        got.extend_from_slice(&buf[..n]);
    }
    // HTTP/1.0: the body is the stream's bytes as sent, no chunk framing.
    let raw = String::from_utf8_lossy(&got).into_owned();
    let body = &raw[raw.find("\r\n\r\n").unwrap() + 4..];
    let lines: Vec<&str> = body.split('\n').collect();
    // An event: the `id:` line before `event: {kind}` to the blank line after it.
    let event = |kind: &str| -> Vec<&str> {
        let at = lines
            .iter()
            .position(|l| *l == format!("event: {kind}"))
            .unwrap();
        let end = at + lines[at..].iter().position(|l| l.is_empty()).unwrap();
        lines[at - 1..=end].to_vec()
    };
    // The hub's lines in the sample's order, with any blank line the hub sends after `retry:` or
    // after the heartbeat (it sends none; the old sample showed one).
    let mut want = vec![lines[0]];
    if lines[1].is_empty() {
        want.push("");
    }
    want.extend(event("time"));
    let chat = event("chat");
    let after_chat = lines.iter().position(|l| *l == "event: chat").unwrap() + chat.len() - 1;
    want.extend(chat);
    let beat = after_chat + lines[after_chat..].iter().position(|l| *l == ":").unwrap();
    want.push(":");
    if lines[beat + 1].is_empty() && beat + 2 < lines.len() {
        want.push("");
    }
    let want: Vec<String> = want.into_iter().map(shape).collect();
    let doc: Vec<String> = doc.iter().map(|l| shape(l)).collect();
    assert_eq!(doc, want, "the hub sent:\n{body}");
}

/// Issue 18: the README's token (`--subscribe '*'`) covered only one-segment topics, so the
/// README's own `chat/...` events never reached its holder. The README's token command, run as
/// written, must give a token that may subscribe to and publish on every topic the README
/// publishes to.
#[test]
fn readme_token_covers_the_topics_the_readme_publishes_to() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let text = std::fs::read_to_string(root.join("README.md")).unwrap();
    let commands: Vec<String> = shell_blocks(&text)
        .into_iter()
        .flatten()
        .map(|c| c.text.replace("cargo run --release --", "herald"))
        .collect();
    let token_line = commands
        .iter()
        .find(|c| c.starts_with("herald token"))
        .expect("the README has a token command");
    // Each topic once: the hub fans out after it acknowledges, so a second pass over the same
    // topic could see the first pass's last event arrive on its new stream.
    let topics: std::collections::BTreeSet<String> = commands
        .iter()
        .filter_map(|c| {
            let at = c
                .find("--topic ")
                .map(|i| i + "--topic ".len())
                .or_else(|| c.find(r#""topic":""#).map(|i| i + r#""topic":""#.len()))?;
            Some(c[at..].split(['"', ' ']).next().unwrap().to_owned())
        })
        .collect();
    assert!(!topics.is_empty(), "no publish found in the README");

    let runner = Runner::new();
    let dir = tempfile::tempdir().unwrap();
    let out = runner.bash(token_line, dir.path()).output().unwrap();
    assert!(out.status.success(), "`{token_line}`: {out:?}");
    let token = String::from_utf8(out.stdout).unwrap().trim().to_owned();
    let hub = Hub::start_with_env(
        &["--store", "memory"],
        &[("HERALD_JWT_SECRET", TEST_SECRET)],
    );
    let bearer = format!("Bearer {token}");
    for topic in &topics {
        let mut sub = hub_support::Sub::open_with(
            hub.addr,
            &format!("topic={topic}"),
            None,
            &[("Authorization", &bearer)],
        );
        assert_eq!(sub.status(), 200, "the README's token may not read {topic}");
        let (status, body) = hub.request(
            "POST",
            "/publish",
            &[
                ("content-type", "application/json"),
                ("authorization", &bearer),
            ],
            format!(r#"{{"topic":"{topic}","data":"hi","private":true}}"#).as_bytes(),
        );
        assert_eq!(
            status, 200,
            "the README's token may not publish to {topic}: {body}"
        );
        // A public event after it: if the private one is not delivered, this one comes first
        // (and the test fails at once instead of waiting through heartbeats).
        let (status, body) = hub.request(
            "POST",
            "/publish",
            &[
                ("content-type", "application/json"),
                ("authorization", &bearer),
            ],
            format!(r#"{{"topic":"{topic}","data":"after"}}"#).as_bytes(),
        );
        assert_eq!(status, 200, "{body}");
        assert_eq!(
            sub.take(1)[0].data,
            "hi",
            "the README's token does not receive private events on {topic}"
        );
    }
}

//! Shared helpers for the `hub_*` integration tests: start the real `herald serve` on a free port,
//! speak plain HTTP to it, and read its SSE streams with `herald_wire::Parser`.

#![allow(dead_code, unreachable_pub)] // each test file uses a different part

use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use herald_wire::{MessageEvent, Parser};

/// Safety-net timeout for anything that should happen promptly (generous: loaded 2-core machine).
pub const TIMEOUT: Duration = Duration::from_secs(20);

/// A running `herald serve` process, killed on drop.
pub struct Hub {
    pub child: Child,
    pub addr: SocketAddr,
    /// The process's stderr lines after the "listening" line.
    pub log: mpsc::Receiver<String>,
}

impl Hub {
    /// Starts `herald serve --addr 127.0.0.1:0 <args>` and waits for its listening line.
    pub fn start(args: &[&str]) -> Hub {
        Self::start_with_env(args, &[])
    }

    /// [`Hub::start`] with these environment variables set.
    pub fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Hub {
        Self::start_at_with_env("127.0.0.1:0", args, env)
    }

    /// [`Hub::start`] on a given address (a restart test needs the same port twice).
    pub fn start_at(addr: &str, args: &[&str]) -> Hub {
        Self::start_at_with_env(addr, args, &[])
    }

    /// [`Hub::start`] with at most `nofile` open file descriptors (`prlimit`, which then runs
    /// herald in its own process: the pid is herald's).
    pub fn start_with_fd_limit(nofile: u64, args: &[&str]) -> Hub {
        let mut command = Command::new("prlimit");
        command
            .arg(format!("--nofile={nofile}:{nofile}"))
            .arg(env!("CARGO_BIN_EXE_herald"));
        Self::spawn(command, "127.0.0.1:0", args, &[])
    }

    fn start_at_with_env(addr: &str, args: &[&str], env: &[(&str, &str)]) -> Hub {
        Self::spawn(Command::new(env!("CARGO_BIN_EXE_herald")), addr, args, env)
    }

    fn spawn(mut command: Command, addr: &str, args: &[&str], env: &[(&str, &str)]) -> Hub {
        let mut child = command
            .arg("serve")
            .args(["--addr", addr])
            .args(args)
            .env("HERALD_LOG", "info")
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn herald");
        let stderr = child.stderr.take().expect("stderr");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stderr).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let line = match rx.recv_timeout(left) {
                Ok(line) => line,
                Err(_) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    panic!("herald did not report its address");
                }
            };
            // `listening on http://ADDR` or `https://ADDR`, in a text or a JSON log line.
            let rest = line
                .split_once("listening on ")
                .and_then(|(_, rest)| rest.split_once("://"));
            if let Some((_, rest)) = rest {
                let addr: String = rest
                    .chars()
                    .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | ':' | '[' | ']'))
                    .collect();
                let addr = addr.parse().unwrap();
                return Hub {
                    child,
                    addr,
                    log: rx,
                };
            }
        }
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Sends a raw HTTP/1.1 request (with `Connection: close`) and returns status and body.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String) {
        let (status, _, body) = self.request_full(method, path, headers, body);
        (status, body)
    }

    /// Like [`Hub::request`], with the response head too.
    pub fn request_full(
        &self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: &[u8],
    ) -> (u16, String, String) {
        let mut s = connect(self.addr);
        let mut req = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nContent-Length: {}\r\n",
            self.addr,
            body.len()
        )
        .into_bytes();
        for (k, v) in headers {
            req.extend_from_slice(format!("{k}: {v}\r\n").as_bytes());
        }
        req.extend_from_slice(b"\r\n");
        req.extend_from_slice(body);
        s.write_all(&req).expect("write request");
        let mut raw = Vec::new();
        s.read_to_end(&mut raw).expect("read response");
        let text = String::from_utf8_lossy(&raw).into_owned();
        let (head, body) = text.split_once("\r\n\r\n").expect("response head");
        let status = head[9..12].parse().expect("status");
        let body = if head
            .to_ascii_lowercase()
            .contains("transfer-encoding: chunked")
        {
            dechunk(body)
        } else {
            body.to_string()
        };
        (status, head.to_string(), body)
    }

    /// Publishes a JSON body; returns status and body.
    pub fn publish_json(&self, json: &str) -> (u16, String) {
        self.request(
            "POST",
            "/publish",
            &[("Content-Type", "application/json")],
            json.as_bytes(),
        )
    }

    /// Publishes `data` (a JSON string literal is built) to `topic` and returns the assigned id.
    pub fn publish(&self, topic: &str, data: &str) -> String {
        let body = serde_json::json!({ "topic": topic, "data": data }).to_string();
        let (status, body) = self.publish_json(&body);
        assert_eq!(status, 200, "{body}");
        id_of(&body)
    }

    /// Opens `GET /events?<query>` and reads the response head.
    pub fn subscribe(&self, query: &str, last_event_id: Option<&str>) -> Sub {
        Sub::open(self.addr, query, last_event_id)
    }

    /// A metric's current value.
    pub fn metric(&self, name: &str) -> u64 {
        let (status, body) = self.request("GET", "/metrics", &[], b"");
        assert_eq!(status, 200);
        body.lines()
            .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
            .unwrap_or_else(|| panic!("no metric {name} in {body}"))
    }

    /// Polls a metric until `ok` holds (the safety-net timeout fails the test).
    pub fn wait_metric(&self, name: &str, ok: impl Fn(u64) -> bool) -> u64 {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let v = self.metric(name);
            if ok(v) {
                return v;
            }
            assert!(Instant::now() < deadline, "metric {name} stuck at {v}");
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// The process's resident memory in KiB (Linux).
    pub fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.pid())).unwrap();
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .expect("VmRSS")
    }

    /// Sends a signal with `kill(1)`.
    pub fn signal(&self, sig: &str) {
        let ok = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .expect("kill")
            .success();
        assert!(ok);
    }

    /// Waits for the process to exit, at most `timeout`.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return Some(status);
            }
            if Instant::now() > deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Hub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s.set_write_timeout(Some(TIMEOUT)).unwrap();
    s
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 {
            break;
        }
        out.push_str(&rest[..n]);
        body = &rest[n + 2..];
    }
    out
}

/// The `id` of a publish answer.
pub fn id_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON answer");
    v["id"].as_str().expect("id").to_string()
}

/// The `error` of an error answer.
pub fn error_of(body: &str) -> String {
    let v: serde_json::Value = serde_json::from_str(body).expect("JSON error body");
    v["error"].as_str().expect("error field").to_string()
}

/// One SSE stream read over a raw socket (HTTP/1.0, so the body is not chunked).
pub struct Sub {
    stream: TcpStream,
    pub head: String,
    pub parser: Parser,
    events: VecDeque<MessageEvent>,
    /// Every body byte received, for byte-exact checks.
    pub raw: Vec<u8>,
    pub eof: bool,
}

impl Sub {
    pub fn open(addr: SocketAddr, query: &str, last_event_id: Option<&str>) -> Sub {
        Sub::open_with(addr, query, last_event_id, &[])
    }

    /// Like [`Sub::open`], with extra request headers (e.g. `Authorization`).
    pub fn open_with(
        addr: SocketAddr,
        query: &str,
        last_event_id: Option<&str>,
        headers: &[(&str, &str)],
    ) -> Sub {
        let mut stream = connect(addr);
        let mut req = format!("GET /events?{query} HTTP/1.0\r\nHost: {addr}\r\n");
        if let Some(id) = last_event_id {
            req.push_str(&format!("Last-Event-ID: {id}\r\n"));
        }
        for (k, v) in headers {
            req.push_str(&format!("{k}: {v}\r\n"));
        }
        req.push_str("\r\n");
        stream.write_all(req.as_bytes()).expect("write");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            let n = stream.read(&mut byte).expect("read head");
            assert!(n == 1, "connection closed in the response head: {head:?}");
            head.push(byte[0]);
        }
        Sub {
            stream,
            head: String::from_utf8(head).unwrap(),
            parser: Parser::new().with_last_event_id(last_event_id.unwrap_or_default()),
            events: VecDeque::new(),
            raw: Vec::new(),
            eof: false,
        }
    }

    pub fn status(&self) -> u16 {
        self.head[9..12].parse().unwrap()
    }

    fn fill(&mut self) -> bool {
        let mut buf = [0u8; 16 * 1024];
        match self.stream.read(&mut buf) {
            Ok(0) => {
                self.eof = true;
                self.parser.finish();
                false
            }
            Ok(n) => {
                self.raw.extend_from_slice(&buf[..n]);
                self.parser.feed(&buf[..n]);
                while let Some(ev) = self.parser.next_event() {
                    self.events.push_back(ev.expect("valid SSE"));
                }
                true
            }
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => {
                self.eof = true;
                false
            }
            Err(e) => panic!("reading the stream: {e}"),
        }
    }

    /// The next event (panics after the safety-net timeout); `None` at the end of the stream.
    pub fn next(&mut self) -> Option<MessageEvent> {
        loop {
            if let Some(ev) = self.events.pop_front() {
                return Some(ev);
            }
            if self.eof || !self.fill() {
                return None;
            }
        }
    }

    /// The next `n` events.
    /// The next `n` events as `(id, data)` pairs, the shape most assertions compare.
    pub fn take_ids_and_data(&mut self, n: usize) -> Vec<(String, String)> {
        self.take(n)
            .into_iter()
            .map(|e| (e.last_event_id, e.data))
            .collect()
    }

    pub fn take(&mut self, n: usize) -> Vec<MessageEvent> {
        (0..n)
            .map(|i| {
                self.next()
                    .unwrap_or_else(|| panic!("stream ended after {i} of {n} events"))
            })
            .collect()
    }

    /// Reads until the hub ends the stream; returns the events received meanwhile.
    pub fn read_to_end(&mut self) -> Vec<MessageEvent> {
        let mut out = Vec::new();
        while let Some(ev) = self.next() {
            out.push(ev);
        }
        out
    }

    /// Waits until `n` body bytes were received (e.g. the first `retry:` frame).
    pub fn wait_bytes(&mut self, n: usize) {
        while self.raw.len() < n {
            assert!(self.fill(), "stream ended early");
        }
    }

    pub fn set_read_timeout(&self, t: Duration) {
        self.stream.set_read_timeout(Some(t)).unwrap();
    }
}

/// Publishing from other threads without owning the process.
pub struct Client(pub SocketAddr);

/// Reads from `stream` into `got` until the bytes read so far contain `needle` (the stream's read
/// timeout is the safety net); panics if the peer closes first.
pub fn read_until(stream: &mut TcpStream, got: &mut Vec<u8>, needle: &str) {
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(got).contains(needle) {
        let n = stream.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(got)
        );
        got.extend_from_slice(&buf[..n]);
    }
}

/// Publishes `per_thread` events of about `payload_len` bytes to `topic` from each of `threads`
/// threads at once, and returns when every publish was acknowledged.
pub fn publish_concurrently(
    addr: SocketAddr,
    topic: &str,
    threads: usize,
    per_thread: usize,
    payload_len: usize,
) {
    let payload = "x".repeat(payload_len);
    std::thread::scope(|scope| {
        for t in 0..threads {
            let payload = &payload;
            scope.spawn(move || {
                let client = Client(addr);
                for i in 0..per_thread {
                    client.publish(topic, &format!("{t}-{i} {payload}"));
                }
            });
        }
    });
}

impl Client {
    /// Publishes `data` to `topic` and returns the assigned id.
    pub fn publish(&self, topic: &str, data: &str) -> String {
        let body = serde_json::json!({ "topic": topic, "data": data }).to_string();
        let mut s = connect(self.0);
        write!(
            s,
            "POST /publish HTTP/1.1\r\nHost: x\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )
        .expect("write");
        let mut answer = String::new();
        s.read_to_string(&mut answer).expect("read");
        assert!(answer.starts_with("HTTP/1.1 200"), "{answer}");
        id_of(answer.split("\r\n\r\n").nth(1).expect("body"))
    }
}

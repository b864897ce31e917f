//! A real headless Chromium for the browser tests, driven over WebDriver by a small client on
//! `std::net::TcpStream` and `serde_json`.
//!
//! Why not `fantoccini`: it brings hyper-util's client, a cookie jar, `webdriver` and its own
//! (`tokio`-bound) session machinery for what is here a dozen blocking JSON requests to a
//! loopback chromedriver; the tests stay synchronous like the other `hub_*` tests and the
//! dependency tree does not grow.
//!
//! [`Browser::launch`] starts `chromedriver` on a free port in a process group of its own, opens a
//! session (Chromium with a fresh profile directory) and, on drop, ends the session and kills the
//! whole group, so no Chromium outlives a failed test.

#![allow(dead_code, unreachable_pub)] // each test uses a different part

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt as _;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

/// How long a condition in the page may take (generous: a loaded 2-core machine).
pub const PAGE_TIMEOUT: Duration = Duration::from_secs(30);

/// The W3C WebDriver key of an element reference.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Chromium as root in a container: no sandbox, no GPU, no /dev/shm; and none of the background
/// traffic (component updates, sync, field trials) that makes it slow on a closed network.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--disable-features=Translate,MediaRouter,OptimizationHints",
    // A background window must not have its timers throttled: the tests use two windows.
    "--disable-background-timer-throttling",
    "--disable-renderer-backgrounding",
    "--disable-backgrounding-occluded-windows",
    "--window-size=1280,1000",
];

/// A chromedriver process and one WebDriver session in it.
pub struct Browser {
    driver: Child,
    addr: SocketAddr,
    session: String,
    _profile: tempfile::TempDir,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free port")
        .port()
}

/// One HTTP/1.1 request to chromedriver; the JSON answer (its `value`), or the WebDriver error.
fn call(addr: SocketAddr, method: &str, path: &str, body: Option<&Value>) -> Result<Value, String> {
    let mut s =
        TcpStream::connect_timeout(&addr, Duration::from_secs(5)).map_err(|e| e.to_string())?;
    // Starting a session (a whole Chromium) on a loaded machine takes a while.
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let body = body.map(|b| b.to_string()).unwrap_or_default();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        body.len()
    )
    .map_err(|e| e.to_string())?;
    // chromedriver keeps the connection open whatever `Connection` says: read by Content-Length.
    let mut raw = Vec::new();
    let mut chunk = [0u8; 64 * 1024];
    let (head_len, body_len, chunked) = loop {
        let n = s
            .read(&mut chunk)
            .map_err(|e| format!("{method} {path}: {e}"))?;
        if n == 0 {
            return Err(format!(
                "{method} {path}: connection closed in the response head"
            ));
        }
        raw.extend_from_slice(&chunk[..n]);
        if let Some(end) = raw.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&raw[..end]).to_ascii_lowercase();
            let length = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse::<usize>().ok());
            break (end + 4, length, head.contains("transfer-encoding: chunked"));
        }
    };
    loop {
        let done = match body_len {
            Some(len) => raw.len() >= head_len + len,
            None => chunked && raw.ends_with(b"0\r\n\r\n"),
        };
        if done {
            break;
        }
        let n = s
            .read(&mut chunk)
            .map_err(|e| format!("{method} {path}: {e}"))?;
        if n == 0 {
            break; // closed: what came is the body
        }
        raw.extend_from_slice(&chunk[..n]);
    }
    let head = String::from_utf8_lossy(&raw[..head_len]).into_owned();
    let body = String::from_utf8_lossy(&raw[head_len..]).into_owned();
    let body = if chunked { dechunk(&body) } else { body };
    let v: Value = serde_json::from_str(&body).map_err(|e| format!("{e}: {body}"))?;
    let status: u16 = head.get(9..12).and_then(|s| s.parse().ok()).unwrap_or(0);
    if status != 200 {
        return Err(format!("{method} {path}: {status} {}", v["value"]));
    }
    Ok(v["value"].clone())
}

fn dechunk(mut body: &str) -> String {
    let mut out = String::new();
    while let Some((size, rest)) = body.split_once("\r\n") {
        let n = usize::from_str_radix(size.trim(), 16).unwrap_or(0);
        if n == 0 || rest.len() < n {
            break;
        }
        out.push_str(&rest[..n]);
        body = rest[n..].trim_start_matches("\r\n");
    }
    out
}

impl Browser {
    /// Starts chromedriver and a headless Chromium session.
    pub fn launch() -> Browser {
        let port = free_port();
        let profile = tempfile::tempdir().expect("profile dir");
        let mut driver = Command::new("chromedriver")
            .arg(format!("--port={port}"))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            // Its own group: drop kills chromedriver and every Chromium process it started.
            .process_group(0)
            .spawn()
            .expect("chromedriver (Debian package chromium-driver; scripts/test installs it)");
        let addr: SocketAddr = ([127, 0, 0, 1], port).into();
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            if call(addr, "GET", "/status", None).is_ok_and(|v| v["ready"] == true) {
                break;
            }
            if Instant::now() > deadline || driver.try_wait().ok().flatten().is_some() {
                let _ = driver.kill();
                let _ = driver.wait();
                panic!("chromedriver did not become ready on port {port}");
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|a| a.to_string()).collect();
        args.push(format!("--user-data-dir={}", profile.path().display()));
        let caps = json!({ "capabilities": { "alwaysMatch": {
            "browserName": "chrome",
            "goog:chromeOptions": { "binary": chromium_binary(), "args": args },
        }}});
        let mut browser = Browser {
            driver,
            addr,
            session: String::new(),
            _profile: profile,
        };
        let v = call(addr, "POST", "/session", Some(&caps)).expect("a Chromium session");
        browser.session = v["sessionId"].as_str().expect("sessionId").to_string();
        browser
    }

    fn cmd(&self, method: &str, path: &str, body: Option<Value>) -> Value {
        let path = format!("/session/{}{path}", self.session);
        call(self.addr, method, &path, body.as_ref()).unwrap_or_else(|e| panic!("{e}"))
    }

    /// Opens `url` in the current window.
    pub fn goto(&self, url: &str) {
        self.cmd("POST", "/url", Some(json!({ "url": url })));
    }

    /// Runs `script` (a function body; `arguments` holds `args`) and returns its value.
    pub fn js(&self, script: &str, args: &[Value]) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            Some(json!({ "script": script, "args": args })),
        )
    }

    /// Polls `script` until it returns something truthy (not null, false, 0 or ""), and returns
    /// it; panics with `what` and the page's status after [`PAGE_TIMEOUT`].
    pub fn wait_for(&self, what: &str, script: &str) -> Value {
        let deadline = Instant::now() + PAGE_TIMEOUT;
        loop {
            let v = self.js(script, &[]);
            let truthy = match &v {
                Value::Null | Value::Bool(false) => false,
                Value::Number(n) => n.as_f64() != Some(0.0),
                Value::String(s) => !s.is_empty(),
                _ => true,
            };
            if truthy {
                return v;
            }
            if Instant::now() > deadline {
                let status = self.js(
                    "const s = document.getElementById('status'); return s ? s.textContent + ' / ' + (document.getElementById('status-detail') || {}).textContent : document.title;",
                    &[],
                );
                panic!("timed out waiting for {what} (page: {status}, last value {v})");
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The text of the element `css` (panics if there is none).
    pub fn text(&self, css: &str) -> String {
        let v = self.js(
            "const e = document.querySelector(arguments[0]); return e ? e.textContent : null;",
            &[json!(css)],
        );
        v.as_str()
            .unwrap_or_else(|| panic!("no element {css}"))
            .to_string()
    }

    fn element(&self, css: &str) -> String {
        let v = self.cmd(
            "POST",
            "/element",
            Some(json!({ "using": "css selector", "value": css })),
        );
        v[ELEMENT_KEY]
            .as_str()
            .unwrap_or_else(|| panic!("no element {css}: {v}"))
            .to_string()
    }

    /// Clicks the element `css` as a user would (WebDriver element click).
    pub fn click(&self, css: &str) {
        let id = self.element(css);
        self.cmd("POST", &format!("/element/{id}/click"), Some(json!({})));
    }

    /// Clears the input `css` and types `text` into it, key by key.
    pub fn type_into(&self, css: &str, text: &str) {
        let id = self.element(css);
        self.cmd("POST", &format!("/element/{id}/clear"), Some(json!({})));
        self.cmd(
            "POST",
            &format!("/element/{id}/value"),
            Some(json!({ "text": text })),
        );
    }

    /// The handle of the current window.
    pub fn window(&self) -> String {
        self.cmd("GET", "/window", None)
            .as_str()
            .expect("handle")
            .to_string()
    }

    /// Opens a new window, switches to it and returns its handle.
    pub fn new_window(&self) -> String {
        let v = self.cmd("POST", "/window/new", Some(json!({ "type": "window" })));
        let handle = v["handle"].as_str().expect("handle").to_string();
        self.switch_to(&handle);
        handle
    }

    /// Makes `handle` the current window.
    pub fn switch_to(&self, handle: &str) {
        self.cmd("POST", "/window", Some(json!({ "handle": handle })));
    }

    /// Saves a PNG of the current window as `target/browser-artifacts/<name>.png` and returns
    /// its path.
    pub fn screenshot(&self, name: &str) -> PathBuf {
        let b64 = self.cmd("GET", "/screenshot", None);
        let png = base64_decode(b64.as_str().expect("base64 PNG"));
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        let dir = artifacts_dir();
        std::fs::create_dir_all(&dir).expect("artifacts dir");
        let path = dir.join(format!("{name}.png"));
        std::fs::write(&path, png).expect("write screenshot");
        path
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        if !self.session.is_empty() {
            let _ = call(
                self.addr,
                "DELETE",
                &format!("/session/{}", self.session),
                None,
            );
        }
        // The group id is chromedriver's pid (process_group(0)); Chromium is in it too.
        let _ = Command::new("kill")
            .args(["-KILL", "--", &format!("-{}", self.driver.id())])
            .stderr(Stdio::null())
            .status();
        let _ = self.driver.kill();
        let _ = self.driver.wait();
    }
}

/// Debian's Chromium binary (the `chromium` package), or `$CHROMIUM` when set.
fn chromium_binary() -> String {
    std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into())
}

/// `target/browser-artifacts` of this workspace (or of `$CARGO_TARGET_DIR`).
pub fn artifacts_dir() -> PathBuf {
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../target"));
    target.join("browser-artifacts")
}

/// Standard base64 (the screenshot encoding), ignoring padding and whitespace.
fn base64_decode(text: &str) -> Vec<u8> {
    let value = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(text.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for v in text.bytes().filter_map(value) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
fn base64_round_trip() {
    assert_eq!(base64_decode("aGVyYWxk"), b"herald");
    assert_eq!(base64_decode("aGVyYWw="), b"heral");
    assert_eq!(base64_decode("aGVy\nYQ=="), b"hera");
}

//! The HTTP layer of the real `herald serve` against clients that are strict, hostile or unlucky:
//! every response valid HTTP/1.1 (checked with httparse and with Node's `http`), and connections
//! that never finish a request (stalled bodies, idle HTTP/1.1 and h2c connections, slowloris, one
//! address taking every slot, no file descriptors left) bounded by the hub's timeouts and caps.

mod hub_support;

use std::io::{ErrorKind, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, TcpStream};
use std::process::Command;
use std::time::{Duration, Instant};

use hub_support::{Hub, Sub, TIMEOUT, error_of};
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::json;

const SECRET: &str = "test-secret-0123456789abcdef-0123456789";

fn token(exp: u64) -> String {
    let claims = json!({"herald": {"publish": ["**"], "subscribe": ["**"]}, "exp": exp});
    let key = EncodingKey::from_secret(SECRET.as_bytes()).unwrap();
    jsonwebtoken::encode(&Header::new(Algorithm::HS256), &claims, &key).unwrap()
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect_timeout(&addr, TIMEOUT).expect("connect");
    s.set_read_timeout(Some(TIMEOUT)).unwrap();
    s
}

/// A connection to `addr` from the source address `from` (another loopback address is another
/// client to the hub).
fn connect_from(from: Ipv4Addr, addr: SocketAddr) -> TcpStream {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let stream = runtime
        .block_on(async {
            let socket = tokio::net::TcpSocket::new_v4()?;
            socket.bind(SocketAddr::new(from.into(), 0))?;
            socket.connect(addr).await
        })
        .expect("connect from another loopback address")
        .into_std()
        .unwrap();
    stream.set_nonblocking(false).unwrap();
    stream.set_read_timeout(Some(TIMEOUT)).unwrap();
    stream
}

/// Sends `GET <path>` over HTTP/1.1 on a fresh connection and returns the raw response: up to
/// the end for a refusal (its connection closes), the head for a stream.
fn raw_get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    let mut s = connect(addr);
    let mut req = format!("GET {path} HTTP/1.1\r\nHost: {addr}\r\n");
    for (k, v) in headers {
        req.push_str(&format!("{k}: {v}\r\n"));
    }
    req.push_str("\r\n");
    s.write_all(req.as_bytes()).unwrap();
    let mut raw = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        let n = s.read(&mut buf).expect("read the response");
        raw.extend_from_slice(&buf[..n]);
        if n == 0 || raw.starts_with(b"HTTP/1.1 200") && raw.windows(4).any(|w| w == b"\r\n\r\n") {
            return raw;
        }
    }
}

/// Parses `raw` as a strict HTTP/1.1 client would: a valid head with at most one
/// `Content-Length`, not with `Transfer-Encoding`, and a body of exactly that length. Returns the
/// status and the body.
fn strict_parse(raw: &[u8]) -> (u16, Vec<u8>) {
    let text = String::from_utf8_lossy(raw).into_owned();
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut response = httparse::Response::new(&mut headers);
    let len = match response.parse(raw) {
        Ok(httparse::Status::Complete(len)) => len,
        other => panic!("not a complete HTTP/1.1 response head ({other:?}): {text}"),
    };
    let lengths: Vec<&[u8]> = response
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| h.value)
        .collect();
    assert!(
        lengths.len() <= 1,
        "content-length {} times: {text}",
        lengths.len()
    );
    let chunked = response
        .headers
        .iter()
        .any(|h| h.name.eq_ignore_ascii_case("transfer-encoding"));
    assert!(
        !chunked || lengths.is_empty(),
        "both content-length and transfer-encoding: {text}"
    );
    let status = response.code.expect("status");
    let body = raw[len..].to_vec();
    if let Some(length) = lengths.first() {
        let length: usize = std::str::from_utf8(length).unwrap().parse().unwrap();
        assert_eq!(body.len(), length, "body length: {text}");
    }
    (status, body)
}

/// One request of the direct SSE path and the status it must get.
struct Case {
    what: &'static str,
    path: String,
    headers: Vec<(&'static str, String)>,
    status: u16,
    /// Part of the error message (refusals).
    reason: &'static str,
}

/// Every status the direct `GET /events` path sends, on two hubs: an anonymous one, and one with
/// a key and `--max-streams-per-client 1` (whose one stream `holder` keeps open).
fn direct_path_cases() -> (Hub, Hub, Sub, Vec<(SocketAddr, Case)>) {
    let open = Hub::start(&["--store", "memory", "--max-topics", "2"]);
    let keyed = Hub::start(&[
        "--store",
        "memory",
        "--jwt-secret",
        SECRET,
        "--max-streams-per-client",
        "1",
    ]);
    let now = jsonwebtoken::get_current_timestamp();
    let good = format!("Bearer {}", token(now + 600));
    let holder = Sub::open_with(keyed.addr, "topic=a", None, &[("Authorization", &good)]);
    assert_eq!(holder.status(), 200, "{}", holder.head);
    let case = |what, path: &str, headers: Vec<(&'static str, String)>, status, reason| Case {
        what,
        path: path.into(),
        headers,
        status,
        reason,
    };
    let cases = vec![
        (
            open.addr,
            case("stream", "/events?topic=a", vec![], 200, ""),
        ),
        (
            open.addr,
            case("bad topic", "/events?topic=a%0Ab", vec![], 400, "topic"),
        ),
        (open.addr, case("no topic", "/events", vec![], 400, "topic")),
        (
            open.addr,
            case(
                "too many topics",
                "/events?topic=a&topic=b&topic=c",
                vec![],
                400,
                "topics",
            ),
        ),
        (
            open.addr,
            case(
                "bad Last-Event-ID",
                "/events?topic=a",
                vec![("Last-Event-ID", "x".into())],
                400,
                "Last-Event-ID",
            ),
        ),
        (
            keyed.addr,
            case("no token", "/events?topic=a", vec![], 401, "missing token"),
        ),
        (
            keyed.addr,
            case(
                "expired token",
                "/events?topic=a",
                vec![("Authorization", format!("Bearer {}", token(now - 600)))],
                401,
                "token expired",
            ),
        ),
        (
            keyed.addr,
            case(
                "second stream",
                "/events?topic=a",
                vec![("Authorization", good.clone())],
                429,
                "too many open streams",
            ),
        ),
    ];
    (open, keyed, holder, cases)
}

/// Refusals of `GET /events` on the direct path carried `content-length` twice, which strict
/// parsers refuse before reading the status: every response there has at most one, matching the
/// body.
#[test]
fn refused_stream_has_one_content_length() {
    let (_open, _keyed, _holder, cases) = direct_path_cases();
    for (addr, case) in &cases {
        let headers: Vec<(&str, &str)> = case.headers.iter().map(|(k, v)| (*k, &v[..])).collect();
        let raw = raw_get(*addr, &case.path, &headers);
        let (status, body) = strict_parse(&raw);
        assert_eq!(status, case.status, "{}", case.what);
        if status != 200 {
            let body = String::from_utf8(body).unwrap();
            assert!(
                error_of(&body).contains(case.reason),
                "{}: {body}",
                case.what
            );
        }
    }
}

/// Node's `http` (what `fetch` and the npm `eventsource` package build on) failed every refusal
/// of `GET /events` with a parse error, so a page never saw "token expired": it sees the status
/// and the reason of each.
#[test]
fn node_sees_the_status_and_reason_of_every_stream_refusal() {
    let (_open, _keyed, _holder, cases) = direct_path_cases();
    let requests: Vec<_> = cases
        .iter()
        .map(|(addr, case)| {
            json!({
                "url": format!("http://{addr}{}", case.path),
                "headers": case.headers.iter().cloned().collect::<std::collections::HashMap<_, _>>(),
            })
        })
        .collect();
    // Sequential, one connection each; a 200 stream is dropped once its head is in.
    let script = r#"
        const http = require('http');
        const requests = JSON.parse(process.argv[1]);
        (async () => {
          for (const r of requests) {
            const line = await new Promise((resolve) => {
              const req = http.get(r.url, { headers: r.headers, agent: false }, (res) => {
                if (res.statusCode === 200) {
                  resolve({ status: 200, type: res.headers['content-type'] });
                  res.destroy();
                  return;
                }
                let body = '';
                res.setEncoding('utf8');
                res.on('data', (c) => { body += c; });
                res.on('end', () => resolve({ status: res.statusCode, body }));
                res.on('error', (e) => resolve({ error: String(e) }));
              });
              req.on('error', (e) => resolve({ error: String(e) }));
            });
            console.log(JSON.stringify(line));
          }
        })();
    "#;
    let out = match Command::new("node")
        .args(["-e", script, &serde_json::to_string(&requests).unwrap()])
        .output()
    {
        Ok(out) => out,
        Err(e) if e.kind() == ErrorKind::NotFound => panic!(
            "this test needs Node.js (`node` on PATH, 18 or later): its `http` parser is the \
             strict client that failed on the duplicate content-length. Install it \
             (`apt-get install nodejs`; scripts/test does)"
        ),
        Err(e) => panic!("running node: {e}"),
    };
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "node failed: {stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let lines: Vec<serde_json::Value> = stdout
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), cases.len(), "{stdout}");
    for ((_, case), line) in cases.iter().zip(&lines) {
        assert_eq!(line["status"], case.status, "{}: {line}", case.what);
        if case.status == 200 {
            assert_eq!(line["type"], "text/event-stream", "{line}");
        } else {
            let body = line["body"].as_str().unwrap();
            assert!(
                error_of(body).contains(case.reason),
                "{}: {line}",
                case.what
            );
        }
    }
}

/// Reads from `s` until the peer closes (EOF or reset); returns what was read.
fn read_until_closed(s: &mut TcpStream) -> Vec<u8> {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return got,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => return got,
            Err(e) => panic!(
                "still open (read: {e}); got {:?}",
                String::from_utf8_lossy(&got)
            ),
        }
    }
}

/// `Expect: 100-continue` with a `Content-Length` over the body limit got `100 Continue` (and the
/// client then sent the whole body for nothing): it gets 413 at once.
#[test]
fn expect_continue_over_the_body_limit_gets_413_not_100() {
    let hub = Hub::start(&["--store", "memory", "--max-body-bytes", "1000"]);
    let mut s = connect(hub.addr);
    s.write_all(
        b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 5000\r\nExpect: 100-continue\r\n\r\n",
    )
    .unwrap();
    let raw = read_until_closed(&mut s);
    let (status, body) = strict_parse(&raw);
    assert_eq!(status, 413, "{}", String::from_utf8_lossy(&raw));
    let body = String::from_utf8(body).unwrap();
    assert!(error_of(&body).contains("larger than 1000 bytes"), "{body}");
    // Within the limit, the client is told to go on, and the publish is stored.
    let mut s = connect(hub.addr);
    let event = br#"{"topic":"t","data":"x"}"#;
    write!(
        s,
        "POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
         Content-Length: {}\r\nExpect: 100-continue\r\nConnection: close\r\n\r\n",
        event.len()
    )
    .unwrap();
    let mut got = Vec::new();
    hub_support::read_until(&mut s, &mut got, "\r\n\r\n");
    assert!(got.starts_with(b"HTTP/1.1 100 Continue"), "{got:?}");
    s.write_all(event).unwrap();
    let rest = read_until_closed(&mut s);
    assert!(
        String::from_utf8_lossy(&rest).contains("200 OK"),
        "{rest:?}"
    );
    assert_eq!(hub.metric("herald_published_total"), 1);
}

/// A publish whose body stalled after its headers held its connection (and slot) forever: it is
/// answered 408 and closed once `--body-read-timeout` has passed.
#[test]
fn stalled_publish_body_is_closed_after_the_body_timeout() {
    let hub = Hub::start(&["--store", "memory", "--body-read-timeout", "500ms"]);
    let mut s = connect(hub.addr);
    let start = Instant::now();
    s.write_all(
        b"POST /publish HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n\
          Content-Length: 100\r\n\r\n{\"topic\":\"t\"",
    )
    .unwrap();
    let raw = read_until_closed(&mut s);
    assert!(start.elapsed() >= Duration::from_millis(500));
    let (status, body) = strict_parse(&raw);
    assert_eq!(status, 408, "{}", String::from_utf8_lossy(&raw));
    let body = String::from_utf8(body).unwrap();
    assert!(
        error_of(&body).contains("did not arrive within 500 ms"),
        "{body}"
    );
    assert_eq!(hub.metric("herald_published_total"), 0);
}

/// The HTTP/2 connection preface and an empty SETTINGS frame.
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n\0\0\0\x04\0\0\0\0\0";
/// A SETTINGS acknowledgement.
const H2_SETTINGS_ACK: &[u8] = b"\0\0\0\x04\x01\0\0\0\0";
/// A PING frame (8 bytes of opaque data).
const H2_PING: &[u8] = b"\0\0\x08\x06\0\0\0\0\0pingping";

/// Frame types from the hub until it closes the connection, while pinging every 100 ms.
fn h2_frames_until_closed(s: &mut TcpStream) -> Vec<u8> {
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let deadline = Instant::now() + TIMEOUT;
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        assert!(
            Instant::now() < deadline,
            "the idle h2c connection stayed open"
        );
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break,
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                // Only pings: a connection that is alive, with nothing to ask.
                if s.write_all(H2_PING).is_err() {
                    break;
                }
            }
            Err(e) => panic!("{e}"),
        }
    }
    let mut types = Vec::new();
    let mut rest = &got[..];
    while rest.len() >= 9 {
        let len = usize::from(rest[0]) << 16 | usize::from(rest[1]) << 8 | usize::from(rest[2]);
        types.push(rest[3]);
        rest = &rest[(9 + len).min(rest.len())..];
    }
    types
}

/// An h2c connection that sent the preface and then only PINGs stayed open forever: it is closed
/// after the idle timeout (here set by `HERALD_IDLE_TIMEOUT`, as an operator's unit file would).
#[test]
fn h2c_connection_that_only_pings_is_closed_after_the_idle_timeout() {
    let hub = Hub::start_with_env(&["--store", "memory"], &[("HERALD_IDLE_TIMEOUT", "1s")]);
    let mut s = connect(hub.addr);
    let start = Instant::now();
    s.write_all(H2_PREFACE).unwrap();
    s.write_all(H2_SETTINGS_ACK).unwrap();
    let types = h2_frames_until_closed(&mut s);
    assert!(start.elapsed() >= Duration::from_secs(1));
    // The hub's SETTINGS and PING acknowledgements came: it was speaking HTTP/2 all along.
    assert!(types.contains(&0x4) && types.contains(&0x6), "{types:?}");
}

/// After its last response, an h2c connection with no open stream is told GOAWAY and closed
/// after `--idle-timeout`, pings or not.
#[test]
fn h2c_connection_without_open_streams_gets_goaway_after_the_idle_timeout() {
    let hub = Hub::start(&["--store", "memory", "--idle-timeout", "1s"]);
    let mut s = connect(hub.addr);
    s.write_all(H2_PREFACE).unwrap();
    s.write_all(H2_SETTINGS_ACK).unwrap();
    // HEADERS (END_STREAM | END_HEADERS) on stream 1, HPACK static table: GET, http, /healthz
    // as a literal path.
    let mut block = vec![0x82, 0x86, 0x04, 8];
    block.extend_from_slice(b"/healthz");
    let mut frame = vec![0, 0, block.len() as u8, 0x1, 0x5, 0, 0, 0, 1];
    frame.extend_from_slice(&block);
    s.write_all(&frame).unwrap();
    let types = h2_frames_until_closed(&mut s);
    // HEADERS of the answer, then GOAWAY (then the connection closes).
    let headers = types.iter().position(|&t| t == 0x1);
    let goaway = types.iter().position(|&t| t == 0x7);
    assert!(headers.is_some() && goaway > headers, "{types:?}");
}

/// An HTTP/1.1 keep-alive connection with no request is closed after `--idle-timeout`; an open
/// stream on such a connection is not idle.
#[test]
fn keep_alive_connection_is_closed_after_the_idle_timeout_but_not_its_stream() {
    let hub = Hub::start(&[
        "--store",
        "memory",
        "--idle-timeout",
        "1s",
        "--heartbeat",
        "300ms",
    ]);
    let request = format!("GET /healthz HTTP/1.1\r\nHost: {}\r\n\r\n", hub.addr);
    let mut s = connect(hub.addr);
    s.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    hub_support::read_until(&mut s, &mut got, r#"{"status":"ok"}"#);
    let start = Instant::now();
    let rest = read_until_closed(&mut s);
    assert!(start.elapsed() >= Duration::from_secs(1));
    assert!(rest.is_empty(), "{rest:?}");
    // A stream as the second request of a keep-alive connection (served by hyper) outlives the
    // idle timeout: heartbeats keep coming for three times its length.
    let mut s = connect(hub.addr);
    s.write_all(request.as_bytes()).unwrap();
    let mut got = Vec::new();
    hub_support::read_until(&mut s, &mut got, r#"{"status":"ok"}"#);
    write!(s, "GET /events?topic=a HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let start = Instant::now();
    let mut got = Vec::new();
    let mut buf = [0u8; 1024];
    while start.elapsed() < Duration::from_secs(3) {
        let n = s.read(&mut buf).expect("the stream stays open");
        assert!(n > 0, "the stream was closed as idle");
        got.extend_from_slice(&buf[..n]);
    }
    assert!(String::from_utf8_lossy(&got).contains("text/event-stream"));
}

/// 20 idle h2c connections from one address filled `--max-connections 20`, and every other
/// client got 503: one address gets at most `--max-connections-per-client`, and another client
/// is still served.
#[test]
fn idle_h2c_connections_from_one_address_do_not_lock_out_another_client() {
    let hub = Hub::start(&[
        "--store",
        "memory",
        "--max-connections",
        "20",
        "--max-connections-per-client",
        "5",
    ]);
    let mut held = Vec::new();
    let mut refused = 0;
    for _ in 0..20 {
        let mut s = connect(hub.addr);
        s.write_all(H2_PREFACE).unwrap();
        held.push(s);
    }
    for s in &mut held {
        s.set_read_timeout(Some(Duration::from_millis(1500)))
            .unwrap();
        let mut buf = [0u8; 512];
        match s.read(&mut buf) {
            Ok(n) if buf[..n].starts_with(b"HTTP/1.1 429") => {
                assert!(String::from_utf8_lossy(&buf[..n]).contains("at most 5"));
                refused += 1;
            }
            // The hub's SETTINGS frame: served, and idle.
            Ok(n) => assert!(n >= 9 && buf[3] == 0x4, "{:?}", &buf[..n]),
            Err(e) => panic!("neither served nor refused: {e}"),
        }
    }
    assert_eq!(refused, 15);
    let other = Ipv4Addr::new(127, 0, 0, 2);
    let mut s = connect_from(other, hub.addr);
    s.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (status, _) = strict_parse(&read_until_closed(&mut s));
    assert_eq!(status, 200);
}

/// Slowloris on `/events`: a head dripped into the direct path and then handed to hyper got a
/// header timeout in each (two stacked): the whole head is bounded by one
/// `--header-read-timeout` from the accept.
#[test]
fn slowloris_on_events_is_closed_at_one_header_timeout() {
    let hub = Hub::start(&["--store", "memory", "--header-read-timeout", "2s"]);
    let mut s = connect(hub.addr);
    let start = Instant::now();
    s.write_all(b"GET /events?topic=a HTTP/1.1\r\nHost: x\r\n")
        .unwrap();
    // 64 headers over 1.3 s (read by the direct path), then a 65th: more than the direct path
    // takes, so the head goes on to hyper, which allows 100; then one byte every 100 ms.
    for i in 0..65 {
        write!(s, "X-Drip-{i}: 1\r\n").unwrap();
        std::thread::sleep(Duration::from_millis(20));
    }
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut buf = [0u8; 1024];
    s.write_all(b"X-Slow: ").unwrap();
    let closed_at = loop {
        assert!(start.elapsed() < TIMEOUT, "the slow head was never closed");
        match s.read(&mut buf) {
            Ok(0) => break start.elapsed(),
            Err(e) if e.kind() == ErrorKind::ConnectionReset => break start.elapsed(),
            // hyper's 408, if it answers before closing.
            Ok(_) => {}
            Err(_) => {
                if s.write_all(b"a").is_err() {
                    break start.elapsed();
                }
            }
        }
    };
    assert!(closed_at >= Duration::from_secs(2), "{closed_at:?}");
    // Two stacked timeouts would close it at 1.3 + 2 s at the earliest.
    assert!(closed_at < Duration::from_millis(3200), "{closed_at:?}");
}

/// CPU time (user + system) of process `pid`, in clock ticks.
fn cpu_ticks(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap();
    // Fields after the command name (which may hold spaces), from field 3 on.
    let rest = &stat[stat.rfind(')').unwrap() + 2..];
    let fields: Vec<&str> = rest.split(' ').collect();
    fields[11].parse::<u64>().unwrap() + fields[12].parse::<u64>().unwrap()
}

/// Out of file descriptors, the hub failed `accept` in a loop, logging each failure, and
/// `/healthz` timed out: while `accept` fails it backs off (little CPU, one log line per burst),
/// and it answers again once descriptors are free.
#[test]
fn fd_starved_hub_backs_off_and_answers_healthz_once_fds_free_up() {
    if Command::new("prlimit").arg("--version").output().is_err() {
        panic!("this test needs `prlimit` (util-linux) to start the hub with few file descriptors");
    }
    let hub = Hub::start_with_fd_limit(48, &["--store", "memory", "--no-metrics-topic"]);
    // More connections than descriptors: the hub takes some, then `accept` fails (the rest wait
    // in the listen backlog).
    let mut idle: Vec<TcpStream> = (0..80).map(|_| connect(hub.addr)).collect();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let line = hub
            .log
            .recv_timeout(deadline.saturating_duration_since(Instant::now()))
            .expect("the hub never ran out of descriptors");
        if line.contains("accept failed") {
            break;
        }
    }
    let (ticks, start) = (cpu_ticks(hub.pid()), Instant::now());
    std::thread::sleep(Duration::from_secs(2));
    let used = cpu_ticks(hub.pid()) - ticks;
    let wall_ticks = start.elapsed().as_millis() as u64 / 10;
    // A spinning accept loop takes a whole core (~200 ticks in 2 s); backing off, almost none.
    assert!(
        used * 10 < wall_ticks,
        "{used} ticks of CPU in {wall_ticks}"
    );
    let repeated: Vec<String> = hub
        .log
        .try_iter()
        .filter(|l| l.contains("accept failed"))
        .collect();
    assert!(repeated.is_empty(), "logged again: {repeated:?}");
    idle.clear();
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let (status, _) = hub.request("GET", "/healthz", &[], b"");
        if status == 200 {
            break;
        }
        assert!(Instant::now() < deadline, "never answered again");
    }
}

/// A zero or absurd timeout or cap stops start-up with a message naming the flag (zero would
/// close or refuse every connection; past an hour a timeout no longer frees anything).
#[test]
fn connection_bounds_out_of_range_stop_start_up() {
    for (flag, value, says) in [
        ("--idle-timeout", "0s", "must be from 10ms to 1h"),
        ("--header-read-timeout", "0ms", "must be from 10ms to 1h"),
        ("--body-read-timeout", "2h", "must be from 10ms to 1h"),
        (
            "--max-connections-per-client",
            "0",
            "must be from 1 to 1000000",
        ),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_herald"))
            .args([
                "serve",
                "--store",
                "memory",
                "--addr",
                "127.0.0.1:0",
                flag,
                value,
            ])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{flag} {value} started");
        assert!(
            stderr.contains(flag) && stderr.contains(says),
            "{flag}: {stderr}"
        );
    }
}

//! `herald bench` against tiny SSE servers written here on real sockets: a faithful one (every
//! count must be exact), one that drops and duplicates events on purpose (the report must say
//! exactly how many), and broken ones (the report must say what went wrong); and real hubs for
//! the spread of one run over several servers.

mod hub_support;

use std::process::{Output, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use hub_support::{Hub, TIMEOUT};

/// Safety net for every run of the binary: far above what the runs need on a loaded machine.
const RUN_TIMEOUT: Duration = Duration::from_secs(60);

#[derive(Clone, Copy, Debug, PartialEq)]
enum Framing {
    Chunked,
    Close,
}

#[derive(Clone, Copy, Debug, PartialEq)]
enum Misbehave {
    None,
    /// Drops delivery (event i, subscriber j) when (7i + j) % 10 == 0; sends it twice when
    /// (7i + j) % 10 == 5.
    DropAndDuplicate,
    /// Holds every even-numbered event back and sends it after the next one.
    SwapPairs,
}

#[derive(Default)]
struct Stats {
    published: AtomicU64,
    dropped: AtomicU64,
    duplicated: AtomicU64,
    swapped: AtomicU64,
    held: Mutex<Option<Vec<u8>>>,
}

struct Server {
    url: String,
    stats: Arc<Stats>,
}

/// Starts an SSE server on 127.0.0.1 port 0: `GET /events` streams, `POST /publish` fans the
/// event out (the `data` of a JSON body, or the raw body), `GET /missing` answers 404.
async fn start_server(framing: Framing, misbehave: Misbehave) -> Server {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}", listener.local_addr().expect("addr"));
    let stats = Arc::new(Stats::default());
    let subs: Arc<Mutex<Vec<mpsc::UnboundedSender<Vec<u8>>>>> = Arc::default();
    let s = Arc::clone(&stats);
    tokio::spawn(async move {
        loop {
            let Ok((stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(connection(
                stream,
                framing,
                misbehave,
                Arc::clone(&subs),
                Arc::clone(&s),
            ));
        }
    });
    Server { url, stats }
}

/// Reads one request head: method, path, Content-Length, and whether it carries
/// `Authorization: Bearer secret`.
async fn read_head(
    stream: &mut TcpStream,
    buf: &mut Vec<u8>,
) -> Option<(String, String, usize, bool)> {
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_string();
            buf.drain(..end + 4);
            let mut first = head.lines().next()?.split(' ');
            let method = first.next()?.to_owned();
            let path = first.next()?.to_owned();
            let len = head
                .lines()
                .find_map(|l| {
                    let (n, v) = l.split_once(':')?;
                    n.eq_ignore_ascii_case("content-length")
                        .then(|| v.trim().parse().ok())?
                })
                .unwrap_or(0);
            let authorized = head
                .lines()
                .any(|l| l.eq_ignore_ascii_case("authorization: bearer secret"));
            return Some((method, path, len, authorized));
        }
        let mut chunk = [0u8; 4096];
        let n = stream.read(&mut chunk).await.ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

async fn connection(
    mut stream: TcpStream,
    framing: Framing,
    misbehave: Misbehave,
    subs: Arc<Mutex<Vec<mpsc::UnboundedSender<Vec<u8>>>>>,
    stats: Arc<Stats>,
) {
    let mut buf = Vec::new();
    while let Some((method, path, len, authorized)) = read_head(&mut stream, &mut buf).await {
        if path.starts_with("/private") && !authorized {
            let resp = "HTTP/1.1 401 Unauthorized\r\nContent-Length: 0\r\n\r\n";
            if stream.write_all(resp.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        let path = path.trim_start_matches("/private").to_owned();
        if method == "GET" && path.starts_with("/events") {
            let (tx, mut rx) = mpsc::unbounded_channel();
            // Registered before the 200 goes out: a client that has its 200 gets every event.
            subs.lock().expect("lock").push(tx);
            let head = match framing {
                Framing::Chunked => {
                    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
                }
                Framing::Close => {
                    "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream; charset=utf-8\r\nConnection: close\r\n\r\n"
                }
            };
            if stream.write_all(head.as_bytes()).await.is_err() {
                return;
            }
            // A retry, a comment and an event that is not the harness's: none may be miscounted.
            let mut first = b"retry: 1000\n\n: hello\n\ndata: welcome\n\n".to_vec();
            loop {
                let frame = match framing {
                    Framing::Chunked => {
                        let mut f = format!("{:x}\r\n", first.len()).into_bytes();
                        f.extend_from_slice(&first);
                        f.extend_from_slice(b"\r\n");
                        f
                    }
                    Framing::Close => first,
                };
                if stream.write_all(&frame).await.is_err() {
                    return;
                }
                match rx.recv().await {
                    Some(next) => first = next,
                    None => return,
                }
            }
        }
        if method == "POST" && path == "/publish" {
            while buf.len() < len {
                let mut chunk = [0u8; 4096];
                match stream.read(&mut chunk).await {
                    Ok(0) | Err(_) => return,
                    Ok(n) => buf.extend_from_slice(&chunk[..n]),
                }
            }
            let body: Vec<u8> = buf.drain(..len).collect();
            let data = match serde_json::from_slice::<Value>(&body) {
                Ok(v) => v["data"].as_str().unwrap_or_default().to_owned(),
                Err(_) => String::from_utf8_lossy(&body).to_string(),
            };
            let frame = format!("id: 1\ndata: {data}\n\n").into_bytes();
            let i = stats.published.fetch_add(1, Ordering::SeqCst);
            if misbehave == Misbehave::SwapPairs {
                let mut held = stats.held.lock().expect("lock");
                let frames = match held.take() {
                    None if i.is_multiple_of(2) => {
                        *held = Some(frame);
                        vec![]
                    }
                    None => vec![frame],
                    Some(earlier) => {
                        stats.swapped.fetch_add(1, Ordering::SeqCst);
                        vec![frame, earlier]
                    }
                };
                for f in frames {
                    for sub in subs.lock().expect("lock").iter() {
                        let _ = sub.send(f.clone());
                    }
                }
            } else {
                let subs = subs.lock().expect("lock");
                for (j, sub) in subs.iter().enumerate() {
                    let pick = (7 * i + j as u64) % 10;
                    if misbehave == Misbehave::DropAndDuplicate && pick == 0 {
                        stats.dropped.fetch_add(1, Ordering::SeqCst);
                        continue;
                    }
                    let _ = sub.send(frame.clone());
                    if misbehave == Misbehave::DropAndDuplicate && pick == 5 {
                        stats.duplicated.fetch_add(1, Ordering::SeqCst);
                        let _ = sub.send(frame.clone());
                    }
                }
            }
            let ack = format!("{{\"id\":\"{i}\"}}");
            let resp = format!(
                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{ack}",
                ack.len()
            );
            if stream.write_all(resp.as_bytes()).await.is_err() {
                return;
            }
            continue;
        }
        let resp = "HTTP/1.1 404 Not Found\r\nContent-Length: 9\r\n\r\nnot found";
        if stream.write_all(resp.as_bytes()).await.is_err() {
            return;
        }
    }
}

async fn herald(args: &[&str]) -> Output {
    let child = tokio::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(args)
        .kill_on_drop(true)
        .output();
    tokio::time::timeout(RUN_TIMEOUT, child)
        .await
        .expect("herald bench finished in time")
        .expect("herald ran")
}

/// `herald bench fanout --sub-url SUB --pub-url PUB ARGS...`
async fn fanout(sub: &str, publ: &str, args: &[&str]) -> Output {
    let mut all = vec!["bench", "fanout", "--sub-url", sub, "--pub-url", publ];
    all.extend_from_slice(args);
    herald(&all).await
}

fn report(out: &Output) -> Value {
    assert!(
        out.status.success(),
        "status {:?}\nstdout: {}\nstderr: {}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).expect("JSON report on stdout")
}

fn n(v: &Value, key: &str) -> u64 {
    v[key]
        .as_u64()
        .unwrap_or_else(|| panic!("`{key}` is a count in {v:#}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_counts_every_delivery_of_a_faithful_server_exactly() {
    let pid = std::process::id().to_string();
    let server = start_server(Framing::Chunked, Misbehave::None).await;
    let sub = format!("{}/events?topic=bench", server.url);
    let publ = format!("{}/publish", server.url);
    let out = fanout(
        &sub,
        &publ,
        &[
            "--subs",
            "20",
            "--rate",
            "100",
            "--secs",
            "2",
            "--size",
            "200",
            "--drain-secs",
            "30",
            "--server-pid",
            &pid,
            "--json",
        ],
    )
    .await;
    let r = report(&out);
    let published = server.stats.published.load(Ordering::SeqCst);
    assert!(published >= 10, "{r:#}");
    // The server is this test process: it worked, and it has memory.
    assert!(r["server_cpu_secs"].as_f64().expect("server CPU") > 0.0);
    assert!(n(&r, "server_rss_bytes") > 0);
    assert_eq!(n(&r, "published"), published);
    assert_eq!(n(&r, "publish_errors"), 0);
    assert!(n(&r, "late_publishes") <= published);
    assert_eq!(n(&r, "subs_connected"), 20);
    assert_eq!(n(&r, "subs_held"), 20);
    assert_eq!(n(&r, "expected"), published * 20);
    assert_eq!(n(&r, "delivered"), published * 20);
    assert_eq!(n(&r, "loss"), 0);
    assert_eq!(n(&r, "duplicates"), 0);
    assert_eq!(n(&r, "order_violations"), 0);
    // The server's own `data: welcome` event, once per subscriber, is not the harness's.
    assert_eq!(n(&r, "foreign_events"), 20);
    assert_eq!(r["drained"], true);
    assert_eq!(n(&r["latency_ms"], "samples"), published * 20);
    assert_eq!(n(&r["ack_latency_ms"], "samples"), published);
    assert!(r["latency_ms"]["p99"].as_f64().expect("p99") > 0.0);
    assert!(r["deliveries_per_sec"].as_f64().expect("rate") > 0.0);
    assert!(r["harness_cpu_secs"].as_f64().expect("cpu") > 0.0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_over_child_processes_with_a_raw_body_and_close_delimited_streams() {
    let server = start_server(Framing::Close, Misbehave::None).await;
    let sub = format!("{}/events", server.url);
    let publ = format!("{}/publish", server.url);
    let out = fanout(
        &sub,
        &publ,
        &[
            "--body-template",
            "{data}",
            "--content-type",
            "text/plain",
            "--subs",
            "25",
            "--rate",
            "max",
            "--max-events",
            "300",
            "--secs",
            "2",
            "--max-conns-per-process",
            "10",
            "--drain-secs",
            "30",
            "--json",
        ],
    )
    .await;
    let r = report(&out);
    assert_eq!(n(&r, "processes"), 3);
    let published = server.stats.published.load(Ordering::SeqCst);
    assert_eq!(n(&r, "published"), published);
    assert!(published > 0 && published <= 300, "{r:#}");
    assert_eq!(n(&r, "subs_connected"), 25);
    assert_eq!(n(&r, "delivered"), published * 25);
    assert_eq!(n(&r, "loss"), 0);
    assert_eq!(n(&r, "duplicates"), 0);
    assert_eq!(n(&r["latency_ms"], "samples"), published * 25);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_reports_exactly_what_a_lossy_duplicating_server_did() {
    // The drain cannot end early here (the lost events never come), so it runs its full 5 s:
    // ample for the duplicates still in flight from a server on the same machine.
    let server = start_server(Framing::Chunked, Misbehave::DropAndDuplicate).await;
    let sub = format!("{}/events?topic=bench", server.url);
    let publ = format!("{}/publish", server.url);
    let out = fanout(
        &sub,
        &publ,
        &[
            "--subs",
            "10",
            "--rate",
            "200",
            "--secs",
            "2",
            "--drain-secs",
            "5",
            "--in-flight",
            "1",
            "--json",
        ],
    )
    .await;
    let r = report(&out);
    let published = server.stats.published.load(Ordering::SeqCst);
    let dropped = server.stats.dropped.load(Ordering::SeqCst);
    let duplicated = server.stats.duplicated.load(Ordering::SeqCst);
    assert!(dropped > 0 && duplicated > 0);
    assert_eq!(n(&r, "published"), published);
    assert_eq!(n(&r, "expected"), published * 10);
    assert_eq!(n(&r, "loss"), dropped, "{r:#}");
    assert_eq!(n(&r, "delivered"), published * 10 - dropped);
    assert_eq!(n(&r, "duplicates"), duplicated);
    // One publish in flight and one ordered channel per subscriber: nothing arrives late.
    assert_eq!(n(&r, "out_of_order"), 0);
    assert_eq!(n(&r, "order_violations"), 0);
    assert_eq!(r["drained"], false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_tells_a_reordering_server_from_racing_publishes() {
    let server = start_server(Framing::Chunked, Misbehave::SwapPairs).await;
    let sub = format!("{}/events", server.url);
    let publ = format!("{}/publish", server.url);
    let out = fanout(
        &sub,
        &publ,
        &[
            "--subs",
            "5",
            "--rate",
            "100",
            "--secs",
            "2",
            "--drain-secs",
            "5",
            "--in-flight",
            "1",
            "--json",
        ],
    )
    .await;
    let r = report(&out);
    let published = server.stats.published.load(Ordering::SeqCst);
    let swapped = server.stats.swapped.load(Ordering::SeqCst);
    // An even count of publishes leaves nothing held back; an odd one holds the last event.
    let held = u64::from(server.stats.held.lock().expect("lock").is_some());
    assert!(swapped > 0);
    assert_eq!(n(&r, "published"), published);
    assert_eq!(n(&r, "out_of_order"), swapped * 5, "{r:#}");
    // One publish in flight: each held event was acknowledged before the next was sent.
    assert_eq!(n(&r, "order_violations"), swapped * 5);
    assert_eq!(n(&r, "loss"), held * 5);
    assert_eq!(n(&r, "duplicates"), 0);

    // Publishes racing each other (8 in flight) may arrive out of sequence, but a server that
    // keeps its own order commits no violation.
    let server = start_server(Framing::Chunked, Misbehave::None).await;
    let sub = format!("{}/events", server.url);
    let publ = format!("{}/publish", server.url);
    let out = fanout(
        &sub,
        &publ,
        &[
            "--subs",
            "5",
            "--rate",
            "max",
            "--max-events",
            "2000",
            "--secs",
            "2",
            "--drain-secs",
            "30",
            "--json",
        ],
    )
    .await;
    let r = report(&out);
    assert_eq!(n(&r, "loss"), 0);
    assert_eq!(n(&r, "order_violations"), 0, "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conns_holds_every_connection_and_measures_server_memory() {
    let server = start_server(Framing::Chunked, Misbehave::None).await;
    let url = format!("{}/events?topic=idle", server.url);
    let pid = std::process::id().to_string();
    let out = herald(&[
        "bench",
        "conns",
        "--url",
        &url,
        "-n",
        "40",
        "--secs",
        "1",
        "--server-pid",
        &pid,
        "--json",
    ])
    .await;
    let r = report(&out);
    assert_eq!(n(&r, "requested"), 40);
    assert_eq!(n(&r, "opened"), 40);
    assert_eq!(n(&r, "held"), 40);
    assert_eq!(n(&r, "failed"), 0);
    assert_eq!(n(&r, "closed_early"), 0);
    assert_eq!(n(&r, "processes"), 1);
    assert!(n(&r, "server_rss_before_bytes") > 0);
    assert!(n(&r, "server_rss_holding_bytes") > 0);
    assert!(r["server_bytes_per_conn"].is_f64(), "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conns_spreads_over_child_processes() {
    let server = start_server(Framing::Close, Misbehave::None).await;
    let url = format!("{}/events", server.url);
    let out = herald(&[
        "bench",
        "conns",
        "--url",
        &url,
        "-n",
        "30",
        "--secs",
        "1",
        "--max-conns-per-process",
        "8",
        "--json",
    ])
    .await;
    let r = report(&out);
    assert_eq!(n(&r, "processes"), 4);
    assert_eq!((n(&r, "opened"), n(&r, "held")), (30, 30));
    assert!(r["server_bytes_per_conn"].is_null());
}

/// Two real hubs and one `--url` and `--server-pid` for each: while the run holds its
/// subscribers, each hub has its contiguous block of them, and the report has both servers.
/// Child processes of three subscribers each make one child's share straddle the two hubs.
#[test]
fn conns_spreads_subscribers_over_several_hubs() {
    let hubs = [
        Hub::start(&["--store", "memory"]),
        Hub::start(&["--store", "memory"]),
    ];
    let urls: Vec<String> = hubs
        .iter()
        .map(|h| format!("http://{}/events?topic=idle", h.addr))
        .collect();
    let pids: Vec<String> = hubs.iter().map(|h| h.pid().to_string()).collect();
    let run = std::process::Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["bench", "conns", "-n", "7", "--secs", "3", "--json"])
        .args(["--max-conns-per-process", "3"])
        .args(["--url", &urls[0], "--url", &urls[1]])
        .args(["--server-pid", &pids[0], "--server-pid", &pids[1]])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn herald bench");
    // 7 over two URLs: subscribers 0-3 on the first hub, 4-6 on the second. Both counts at
    // once add up to all 7, so neither can be on its way to more.
    let deadline = std::time::Instant::now() + TIMEOUT;
    let split = loop {
        let split = hubs.each_ref().map(|h| h.metric("herald_subscriptions"));
        if split == [4, 3] || std::time::Instant::now() > deadline {
            break split;
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let out = run.wait_with_output().expect("herald bench ran");
    assert_eq!(split, [4, 3], "{}", String::from_utf8_lossy(&out.stderr));
    let r = report(&out);
    assert_eq!((n(&r, "opened"), n(&r, "held")), (7, 7));
    assert_eq!(n(&r, "processes"), 3);
    assert_eq!(r["urls"], serde_json::json!(urls));
    assert_eq!(r["url"], urls[0].as_str());
    assert_eq!(r["server_pid"], hubs[0].pid());
    let servers = r["servers"].as_array().expect("servers");
    assert_eq!(servers.len(), 2, "{r:#}");
    for (s, hub) in servers.iter().zip(&hubs) {
        assert_eq!(s["pid"], hub.pid());
        assert!(n(s, "rss_holding_bytes") > 0, "{r:#}");
    }
    // The sum covers both hubs: more than either alone.
    let most = servers.iter().map(|s| n(s, "rss_holding_bytes")).max();
    assert!(Some(n(&r, "server_rss_holding_bytes")) > most, "{r:#}");
    assert!(r["server_bytes_per_conn"].is_f64(), "{r:#}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fanout_over_several_urls_counts_every_delivery() {
    // Two URLs of the same server: every subscriber gets every event, wherever it subscribed.
    let server = start_server(Framing::Chunked, Misbehave::None).await;
    let a = format!("{}/events?topic=a", server.url);
    let b = format!("{}/events?topic=b", server.url);
    let publ = format!("{}/publish", server.url);
    let out = fanout(
        &a,
        &publ,
        &[
            "--sub-url",
            &b,
            "--subs",
            "9",
            "--max-conns-per-process",
            "4",
            "--rate",
            "50",
            "--secs",
            "1",
            "--drain-secs",
            "30",
            "--json",
        ],
    )
    .await;
    let r = report(&out);
    let published = server.stats.published.load(Ordering::SeqCst);
    assert!(published > 0);
    assert_eq!(r["sub_url"], a.as_str());
    assert_eq!(r["sub_urls"], serde_json::json!([a, b]));
    assert_eq!(n(&r, "subs_connected"), 9);
    assert_eq!(n(&r, "delivered"), published * 9);
    assert_eq!(n(&r, "loss"), 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn conns_reports_refused_subscriptions_and_fails() {
    let server = start_server(Framing::Chunked, Misbehave::None).await;
    let url = format!("{}/missing", server.url);
    let out = herald(&[
        "bench", "conns", "--url", &url, "-n", "5", "--secs", "1", "--json",
    ])
    .await;
    assert!(!out.status.success());
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON report even on failure");
    assert_eq!((n(&r, "opened"), n(&r, "failed")), (0, 5));
    assert_eq!(r["errors"][0]["message"], "status 404 (expected 200)");
    assert_eq!(r["errors"][0]["count"], 5);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn headers_reach_the_server_on_subscriptions_and_publishes() {
    let server = start_server(Framing::Chunked, Misbehave::None).await;
    let sub = format!("{}/private/events", server.url);
    let publ = format!("{}/private/publish", server.url);
    let out = herald(&[
        "bench", "conns", "--url", &sub, "-n", "3", "--secs", "1", "--json",
    ])
    .await;
    assert!(!out.status.success());
    let r: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
    assert_eq!(r["errors"][0]["message"], "status 401 (expected 200)");

    let out = fanout(
        &sub,
        &publ,
        &[
            "--header",
            "Authorization: Bearer secret",
            "--subs",
            "3",
            "--rate",
            "50",
            "--secs",
            "1",
            "--drain-secs",
            "30",
            "--json",
        ],
    )
    .await;
    let r = report(&out);
    let published = server.stats.published.load(Ordering::SeqCst);
    assert!(published > 0);
    assert_eq!(n(&r, "publish_errors"), 0);
    assert_eq!(n(&r, "delivered"), published * 3);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn refused_publishes_are_errors_not_deliveries() {
    let server = start_server(Framing::Chunked, Misbehave::None).await;
    let sub = format!("{}/events", server.url);
    let publ = format!("{}/nowhere", server.url);
    let out = fanout(
        &sub,
        &publ,
        &[
            "--subs",
            "2",
            "--rate",
            "20",
            "--secs",
            "1",
            "--drain-secs",
            "1",
            "--json",
        ],
    )
    .await;
    let r = report(&out);
    assert_eq!(n(&r, "published"), 0);
    assert!(n(&r, "publish_errors") > 0);
    assert_eq!(
        (n(&r, "expected"), n(&r, "delivered"), n(&r, "loss")),
        (0, 0, 0)
    );
    assert_eq!(r["errors"][0]["message"], "publish status 404");
    assert_eq!(r["errors"][0]["count"], r["publish_errors"]);
}

/// A server that speaks something else, or sends an endless head, or a wrong content type.
async fn start_hostile_server(reply: &'static [u8], endless: bool) -> String {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let url = format!("http://{}/events", listener.local_addr().expect("addr"));
    tokio::spawn(async move {
        loop {
            let Ok((mut stream, _)) = listener.accept().await else {
                return;
            };
            tokio::spawn(async move {
                let mut req = [0u8; 1024];
                let _ = stream.read(&mut req).await;
                let _ = stream.write_all(reply).await;
                // Bounded: the client gives up after 16 KiB of head.
                for _ in 0..100 {
                    if !endless || stream.write_all(&[b'a'; 1024]).await.is_err() {
                        break;
                    }
                }
            });
        }
    });
    url
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_servers_are_reported_not_trusted() {
    let cases: [(&'static [u8], bool, &str); 4] = [
        (b"SSH-2.0-OpenSSH_9\r\n\r\n", false, "not an HTTP/1.x response"),
        (b"HTTP/1.1 200 OK\r\nX-Long: ", true, "response head over 16384 bytes"),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n<html>",
            false,
            "Content-Type `text/html` (expected text/event-stream)",
        ),
        (
            b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nzz\r\n",
            false,
            "stream broken: bad chunk size",
        ),
    ];
    for (reply, endless, expected) in cases {
        let url = start_hostile_server(reply, endless).await;
        let out = herald(&[
            "bench", "conns", "--url", &url, "-n", "2", "--secs", "1", "--json",
        ])
        .await;
        let r: Value = serde_json::from_slice(&out.stdout).expect("JSON report");
        let errors = r["errors"].to_string();
        assert!(errors.contains(expected), "{expected}: {r:#}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_flags_get_clear_errors() {
    let ok = "http://127.0.0.1:9/events";
    let cases: [(&[&str], &str); 8] = [
        (&["--subs", "0", "--rate", "10"], "must be at least 1"),
        (&["--subs", "5", "--rate", "fast"], "is not a rate"),
        (&["--subs", "5", "--rate", "0"], "is not a rate"),
        (
            &["--subs", "5", "--rate", "10", "--secs", "0"],
            "must be above 0",
        ),
        (
            &[
                "--subs",
                "5",
                "--rate",
                "10",
                "--sub-url",
                "http://10.1.2.3/events",
            ],
            "not loopback",
        ),
        (
            &[
                "--subs",
                "5",
                "--rate",
                "10",
                "--pub-url",
                "https://127.0.0.1/publish",
            ],
            "unsupported scheme",
        ),
        (
            &["--subs", "5", "--rate", "10", "--body-template", "{}"],
            "{data}",
        ),
        (
            &["--subs", "5", "--rate", "10", "--header", "X: a\rb"],
            "CR, LF",
        ),
    ];
    for (extra, expected) in cases {
        let mut args = vec!["bench", "fanout"];
        // Later flags win in clap only for repeatable ones, so give the URLs once.
        if !extra.contains(&"--sub-url") {
            args.extend(["--sub-url", ok]);
        }
        if !extra.contains(&"--pub-url") {
            args.extend(["--pub-url", ok]);
        }
        args.extend(extra);
        let out = herald(&args).await;
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{extra:?}");
        assert!(stderr.contains(expected), "{extra:?}: {stderr}");
    }
    let out = herald(&["bench", "conns", "--url", "http://example.com/", "-n", "1"]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("not loopback"));
    let out = herald(&["bench", "conns", "--url", ok, "-n", "0"]).await;
    assert!(String::from_utf8_lossy(&out.stderr).contains("must be at least 1"));
    // A bad URL or pid after a good one is named, and nothing runs.
    let out = herald(&[
        "bench",
        "conns",
        "--url",
        ok,
        "--url",
        "http://example.com/events",
        "-n",
        "2",
    ])
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--url number 2 of 2: `http://example.com/events`"),
        "{stderr}"
    );
    let me = std::process::id().to_string();
    let out = fanout(
        ok,
        ok,
        &[
            "--subs",
            "2",
            "--rate",
            "10",
            "--server-pid",
            &me,
            "--server-pid",
            "4294967295",
        ],
    )
    .await;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(
        stderr.contains("--server-pid 4294967295: no such process"),
        "{stderr}"
    );
    // Nothing listens on port 9: a clear error, not a report of zeros.
    let out = fanout(ok, ok, &["--subs", "2", "--rate", "10"]).await;
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("no subscriber could connect"), "{stderr}");
}

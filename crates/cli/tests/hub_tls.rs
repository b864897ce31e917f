//! TLS and HTTP/2 on the real `herald serve`: 50 SSE streams multiplexed over one TLS connection,
//! h2c with prior knowledge, HTTP/1.1 over TLS, graceful shutdown of h2 streams, plain HTTP on
//! the TLS port, and bad certificate files.
//!
//! The certificate is a checked-in, test-only self-signed one for `localhost` valid until 2126
//! (tests/fixtures/tls/README.md).

mod hub_support;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use futures_util::StreamExt as _;
use hub_support::{Hub, TIMEOUT};
use reqwest::{Client, Version};

/// How many SSE streams share the one connection (browsers allow 6 connections per domain).
const STREAMS: usize = 50;

fn fixture(name: &str) -> String {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/tls")
        .join(name)
        .display()
        .to_string()
}

fn tls_hub(extra: &[&str]) -> Hub {
    let (cert, key) = (fixture("cert.pem"), fixture("key.pem"));
    let mut args = vec!["--store", "memory", "--tls-cert", &cert, "--tls-key", &key];
    args.extend_from_slice(extra);
    Hub::start(&args)
}

/// A client that trusts only the test certificate and reaches `localhost` at the hub.
fn tls_client(hub: &Hub) -> reqwest::ClientBuilder {
    let cert = std::fs::read(fixture("cert.pem")).unwrap();
    Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(&cert).unwrap()])
        .resolve("localhost", hub.addr)
        .timeout(TIMEOUT * 3)
}

fn https(hub: &Hub, path: &str) -> String {
    format!("https://localhost:{}{path}", hub.addr.port())
}

async fn publish(client: &Client, url: String, topic: &str, data: &str) {
    let response = client
        .post(url)
        .header("content-type", "application/json")
        .body(format!(r#"{{"topic": "{topic}", "data": "{data}"}}"#))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
}

/// Opens an SSE stream and checks its head.
async fn open_stream(client: &Client, url: String, version: Version) -> reqwest::Response {
    let response = client.get(url).send().await.unwrap();
    assert_eq!(response.status(), 200);
    assert_eq!(response.version(), version);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    if version == Version::HTTP_2 {
        // Connection-specific headers are forbidden in HTTP/2 (RFC 9113, 8.2.2).
        assert!(response.headers().get("connection").is_none());
    }
    response
}

/// Reads a stream until `needle` appears; returns everything read.
async fn read_until(response: reqwest::Response, needle: &str) -> String {
    let mut body = response.bytes_stream();
    let mut got = String::new();
    let found = tokio::time::timeout(TIMEOUT, async {
        while let Some(chunk) = body.next().await {
            got.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            if got.contains(needle) {
                return true;
            }
        }
        false
    })
    .await;
    assert_eq!(found, Ok(true), "{needle:?} not in {got:?}");
    got
}

async fn metric(client: &Client, url: String, name: &str) -> u64 {
    let body = client.get(url).send().await.unwrap().text().await.unwrap();
    body.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {body}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_sse_streams_share_one_tls_connection() {
    let hub = tls_hub(&[]);
    // ALPN offers h2 only: every request must share the one HTTP/2 connection.
    let client = tls_client(&hub).http2_prior_knowledge().build().unwrap();
    let health = client.get(https(&hub, "/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
    assert_eq!(health.version(), Version::HTTP_2);
    let mut streams = Vec::new();
    for _ in 0..STREAMS {
        streams.push(open_stream(&client, https(&hub, "/events?topic=tls"), Version::HTTP_2).await);
    }
    // All 50 streams open, and the hub holds one connection.
    assert_eq!(
        metric(&client, https(&hub, "/metrics"), "herald_connections").await,
        1
    );
    publish(&client, https(&hub, "/publish"), "tls", "over-h2").await;
    let reads = streams
        .into_iter()
        .map(|s| read_until(s, "data: over-h2\n"));
    let bodies = futures_util::future::join_all(reads).await;
    assert_eq!(bodies.len(), STREAMS);
    for body in bodies {
        assert!(body.starts_with("retry: "), "{body:?}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn h2c_with_prior_knowledge() {
    let hub = Hub::start(&["--store", "memory"]);
    let client = Client::builder()
        .http2_prior_knowledge()
        .timeout(TIMEOUT * 3)
        .build()
        .unwrap();
    let base = format!("http://{}", hub.addr);
    let a = open_stream(&client, format!("{base}/events?topic=c"), Version::HTTP_2).await;
    let b = open_stream(&client, format!("{base}/events?topic=c"), Version::HTTP_2).await;
    assert_eq!(
        metric(&client, format!("{base}/metrics"), "herald_connections").await,
        1
    );
    publish(&client, format!("{base}/publish"), "c", "h2c").await;
    read_until(a, "data: h2c\n").await;
    read_until(b, "data: h2c\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http1_over_tls() {
    let hub = tls_hub(&[]);
    let client = tls_client(&hub).http1_only().build().unwrap();
    let stream = open_stream(&client, https(&hub, "/events?topic=h1"), Version::HTTP_11).await;
    publish(&client, https(&hub, "/publish"), "h1", "over-tls").await;
    read_until(stream, "data: over-tls\n").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_ends_h2_streams_with_retry() {
    let mut hub = tls_hub(&["--retry", "1000ms", "--drain-timeout", "10s"]);
    let client = tls_client(&hub).http2_prior_knowledge().build().unwrap();
    let mut streams = Vec::new();
    for _ in 0..10 {
        streams.push(open_stream(&client, https(&hub, "/events?topic=s"), Version::HTTP_2).await);
    }
    publish(&client, https(&hub, "/publish"), "s", "before").await;
    let mut opened = Vec::new();
    for stream in streams {
        let mut body = stream.bytes_stream();
        let mut got = String::new();
        while !got.contains("data: before\n") {
            let chunk = tokio::time::timeout(TIMEOUT, body.next()).await.unwrap();
            got.push_str(&String::from_utf8_lossy(&chunk.unwrap().unwrap()));
        }
        opened.push((body, got));
    }
    hub.signal("TERM");
    for (mut body, mut got) in opened {
        // The stream ends cleanly (END_STREAM, not a reset), its last line a jittered retry.
        let ended = tokio::time::timeout(TIMEOUT, async {
            while let Some(chunk) = body.next().await {
                got.push_str(&String::from_utf8_lossy(&chunk.unwrap()));
            }
        })
        .await;
        assert!(ended.is_ok(), "stream still open after shutdown: {got:?}");
        let last = got.trim_end_matches('\n').rsplit('\n').next().unwrap();
        let ms: u64 = last.strip_prefix("retry: ").unwrap().parse().unwrap();
        assert!((1000..6000).contains(&ms), "{ms}");
    }
    let status = tokio::task::spawn_blocking(move || {
        let status = hub.wait_exit(TIMEOUT);
        let log: Vec<String> = hub.log.try_iter().collect();
        (status, log)
    })
    .await
    .unwrap();
    let (status, log) = status;
    assert!(status.expect("herald did not exit").success());
    // Had an h2 connection hung, shutdown would have waited out the drain timeout and said so.
    assert!(
        !log.iter()
            .any(|l| l.contains("still open after the drain timeout")),
        "{log:?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plain_http_on_the_tls_port_is_refused_and_the_hub_goes_on() {
    let hub = tls_hub(&[]);
    let addr = hub.addr;
    let answer = tokio::task::spawn_blocking(move || {
        let mut plain = TcpStream::connect_timeout(&addr, TIMEOUT).unwrap();
        plain.set_read_timeout(Some(TIMEOUT)).unwrap();
        plain
            .write_all(b"GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .unwrap();
        let mut answer = Vec::new();
        // Ends (EOF or reset) rather than hanging until the read timeout.
        let started = std::time::Instant::now();
        let _ = plain.read_to_end(&mut answer);
        assert!(
            started.elapsed() < TIMEOUT,
            "the hub kept the connection open"
        );
        answer
    })
    .await
    .unwrap();
    assert!(!answer.starts_with(b"HTTP/"), "{answer:?}");
    let client = tls_client(&hub).build().unwrap();
    let health = client.get(https(&hub, "/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

/// `herald serve` with these arguments, which must fail to start; returns (exit code, stderr).
fn failed_start(args: &[&str]) -> (i32, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_herald"))
        .args(["serve", "--store", "memory", "--addr", "127.0.0.1:0"])
        .args(args)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + TIMEOUT;
    while child.try_wait().unwrap().is_none() {
        if std::time::Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("herald started with {args:?}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status.code().unwrap(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn bad_certificate_files_stop_start_up_with_the_file_named() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.pem");
    std::fs::write(&garbage, "not a certificate\n").unwrap();
    let garbage = garbage.display().to_string();
    let (cert, key, other) = (
        fixture("cert.pem"),
        fixture("key.pem"),
        fixture("other-key.pem"),
    );
    let cases: [(&[&str], &str, &str); 4] = [
        (
            &["--tls-cert", "/nonexistent/cert.pem", "--tls-key", &key],
            "/nonexistent/cert.pem",
            "No such file",
        ),
        (
            &["--tls-cert", &garbage, "--tls-key", &key],
            "garbage.pem",
            "no certificate",
        ),
        (
            &["--tls-cert", &cert, "--tls-key", &garbage],
            "garbage.pem",
            "not a PEM private key",
        ),
        (
            &["--tls-cert", &cert, "--tls-key", &other],
            "other-key.pem",
            "does not fit",
        ),
    ];
    for (args, file, problem) in cases {
        let (code, stderr) = failed_start(args);
        assert_eq!(code, 1, "{args:?}: {stderr}");
        assert!(
            stderr.contains(file) && stderr.contains(problem),
            "{args:?}: {stderr}"
        );
    }
    // One without the other is bad usage, refused before any file is read.
    for (args, problem) in [
        (["--tls-cert", cert.as_str()], "--tls-cert needs --tls-key"),
        (["--tls-key", key.as_str()], "--tls-key needs --tls-cert"),
    ] {
        let (code, stderr) = failed_start(&args);
        assert_eq!(code, 2, "{args:?}: {stderr}");
        assert!(stderr.contains(problem), "{args:?}: {stderr}");
    }
}

/// A TLS client that stops reading its socket is closed after the write timeout (the stall guard
/// sits under TLS) and counted; the hub goes on serving others.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_tls_client_is_closed() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    use tokio_rustls::rustls;

    let hub = tls_hub(&[
        "--write-timeout",
        "1s",
        "--max-unsent-bytes",
        "16384",
        "--retention-events",
        "200",
    ]);
    let mut roots = rustls::RootCertStore::empty();
    let pem = std::fs::read(fixture("cert.pem")).unwrap();
    let der = rustls::pki_types::pem::PemObject::from_pem_slice(&pem).unwrap();
    roots.add(der).unwrap();
    let config = rustls::ClientConfig::builder()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let connector = tokio_rustls::TlsConnector::from(std::sync::Arc::new(config));
    let tcp = tokio::net::TcpStream::connect(hub.addr).await.unwrap();
    let name = rustls::pki_types::ServerName::try_from("localhost").unwrap();
    let mut stalled = connector.connect(name, tcp).await.unwrap();
    stalled
        .write_all(b"GET /events?topic=feed HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .await
        .unwrap();
    let mut head = [0u8; 64];
    let n = stalled.read(&mut head).await.unwrap();
    assert!(head[..n].starts_with(b"HTTP/1.1 200"), "{:?}", &head[..n]);
    // From here on the client reads nothing: the hub's writes fill the TCP window and stall.

    let client = tls_client(&hub).build().unwrap();
    let payload = "y".repeat(32 * 1024);
    for i in 0..300 {
        // ~10 MB: far more than the stalled socket's buffers hold.
        publish(
            &client,
            https(&hub, "/publish"),
            "feed",
            &format!("{i} {payload}"),
        )
        .await;
    }
    let deadline = std::time::Instant::now() + TIMEOUT;
    loop {
        let closed = metric(
            &client,
            https(&hub, "/metrics"),
            "herald_slow_clients_closed_total",
        )
        .await;
        if closed == 1 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "stalled TLS client not closed"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    drop(stalled);
    let health = client.get(https(&hub, "/healthz")).send().await.unwrap();
    assert_eq!(health.status(), 200);
}

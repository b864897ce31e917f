//! The hub as a library: its router nested in someone else's axum app, served by axum itself.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::Arc;
use std::time::Duration;

use herald_hub::log::{MemoryLog, NewEvent, Retention};
use herald_hub::{Hub, HubConfig};

fn read_until(stream: &mut TcpStream, needle: &str) -> String {
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !String::from_utf8_lossy(&got).contains(needle) {
        let n = stream.read(&mut buf).expect("read");
        assert!(
            n > 0,
            "closed before {needle:?}: {}",
            String::from_utf8_lossy(&got)
        );
        got.extend_from_slice(&buf[..n]);
    }
    String::from_utf8(got).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nested_router_streams_and_publishes() {
    let hub = Hub::new(
        Arc::new(MemoryLog::new(Retention::default())),
        HubConfig::default(),
    );
    let app = axum::Router::new()
        .route("/mine", axum::routing::get(|| async { "my app" }))
        .nest("/hub", hub.router());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, app).await });

    let mut sub = tokio::task::spawn_blocking(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
        s.write_all(b"GET /hub/events?topic=app/* HTTP/1.0\r\n\r\n")
            .unwrap();
        let head = read_until(&mut s, "retry: 3000\n");
        assert!(head.starts_with("HTTP/1.0 200 OK\r\n"), "{head}");
        s
    })
    .await
    .unwrap();
    // Subscribed (the head is sent after registration): publish through the library API...
    let appended = hub
        .publish(NewEvent {
            topic: "app/orders".into(),
            event_type: Some("order".into()),
            data: "{\"n\":1}".into(),
            retry: None,
            private: false,
            idempotency_key: None,
        })
        .await
        .unwrap();
    // ...and refuse what HTTP refuses.
    let bad = hub
        .publish(NewEvent {
            topic: "app/*".into(),
            event_type: None,
            data: String::new(),
            retry: None,
            private: false,
            idempotency_key: None,
        })
        .await
        .unwrap_err();
    assert_eq!(bad.status(), 400);
    let expected = format!("id: {}\nevent: order\ndata: {{\"n\":1}}\n\n", appended.id);
    let got = tokio::task::spawn_blocking(move || {
        let got = read_until(&mut sub, &expected);
        (got, expected)
    })
    .await
    .unwrap();
    assert!(got.0.ends_with(&got.1), "{}", got.0);

    let (mine, missing) = tokio::task::spawn_blocking(move || {
        let get = |path: &str| {
            let mut s = TcpStream::connect(addr).unwrap();
            s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
            write!(s, "GET {path} HTTP/1.0\r\n\r\n").unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).unwrap();
            out
        };
        (get("/mine"), get("/hub/nope"))
    })
    .await
    .unwrap();
    assert!(mine.ends_with("my app"), "{mine}");
    assert!(missing.starts_with("HTTP/1.0 404"), "{missing}");
    assert!(
        missing.ends_with(r#"{"error":"no such route"}"#),
        "{missing}"
    );
}

//! Graceful shutdown of the real `herald serve`: SIGTERM (and SIGINT) end every open stream with a
//! jittered `retry:` and the process exits promptly, even with streams open.

mod hub_support;

use hub_support::{Hub, TIMEOUT};

fn shutdown_ends_streams(signal: &str) {
    let mut hub = Hub::start(&["--store", "memory", "--retry", "1000ms"]);
    let mut subs: Vec<_> = (0..5).map(|_| hub.subscribe("topic=t", None)).collect();
    let id = hub.publish("t", "before");
    for sub in &mut subs {
        assert_eq!(sub.next().unwrap().last_event_id, id);
    }
    hub.signal(signal);
    for sub in &mut subs {
        assert!(sub.read_to_end().is_empty());
        assert!(sub.eof);
        let raw = String::from_utf8_lossy(&sub.raw).into_owned();
        // The last line is the `retry:` (no blank line after it: see herald_wire::encode_retry).
        let last = raw
            .strip_suffix('\n')
            .unwrap_or(&raw)
            .rsplit('\n')
            .next()
            .unwrap();
        let ms: u64 = last
            .strip_prefix("retry: ")
            .unwrap_or_else(|| panic!("stream did not end with a retry: {raw:?}"))
            .parse()
            .unwrap();
        // The configured retry plus up to 5 s of jitter.
        assert!((1000..6000).contains(&ms), "{ms}");
        assert_eq!(sub.parser.reconnection_time(), Some(ms));
    }
    let status = hub.wait_exit(TIMEOUT).expect("herald did not exit");
    assert!(status.success(), "{status:?}");
}

#[test]
fn sigterm_ends_streams_with_retry_and_exits() {
    shutdown_ends_streams("TERM");
}

#[test]
fn sigint_ends_streams_with_retry_and_exits() {
    shutdown_ends_streams("INT");
}

/// The retry values are spread, so that reconnections are too.
#[test]
fn shutdown_retry_is_jittered() {
    let hub = Hub::start(&["--store", "memory"]);
    let mut subs: Vec<_> = (0..20).map(|_| hub.subscribe("topic=t", None)).collect();
    hub.signal("TERM");
    let mut values: Vec<u64> = subs
        .iter_mut()
        .map(|sub| {
            sub.read_to_end();
            sub.parser.reconnection_time().unwrap()
        })
        .collect();
    values.sort();
    values.dedup();
    assert!(
        values.len() > 1,
        "every stream got the same retry: {values:?}"
    );
}

/// A connection in the middle of nothing (idle keep-alive, or a request head never finished)
/// does not hold the shutdown past the drain timeout.
#[test]
fn idle_connections_do_not_hang_shutdown() {
    use std::io::Write;
    let mut hub = Hub::start(&["--store", "memory", "--drain-timeout", "2s"]);
    let mut half = std::net::TcpStream::connect(hub.addr).unwrap();
    half.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .unwrap(); // never finished
    let _idle = std::net::TcpStream::connect(hub.addr).unwrap();
    hub.wait_metric("herald_connections", |n| n >= 2);
    hub.signal("TERM");
    let status = hub.wait_exit(TIMEOUT).expect("herald did not exit");
    assert!(status.success(), "{status:?}");
}

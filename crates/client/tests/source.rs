//! herald-client against a scripted server on a real socket: the spec's parsing, reconnection and
//! failure rules, each asserted on what the client yields and on what the server received.

use std::time::Duration;

use futures_util::StreamExt;
use herald_client::{Error, Event, EventSource, ReadyState, RetryPolicy};
use herald_testkit::{End, Framing, Response, ScriptedServer, free_port};

/// Safety net for real-time tests on a loaded machine; never reached when things work.
const LIMIT: Duration = Duration::from_secs(30);

/// A reconnection time short enough for real-time tests.
fn quick() -> RetryPolicy {
    RetryPolicy::new()
        .reconnection_time(Duration::from_millis(1))
        .jitter(false)
}

/// One item as a short line, so whole runs compare at once.
fn show(item: &Result<Event, Error>) -> String {
    match item {
        Ok(Event::Open) => "open".to_owned(),
        Ok(Event::Message(m)) => format!("{}|{}|{}", m.event_type, m.data, m.last_event_id),
        Ok(other) => format!("{other:?}"),
        Err(e) if e.is_fatal() => format!("FATAL {e}"),
        Err(e) => format!("error {e}"),
    }
}

/// Every item until the stream ends.
async fn run(source: EventSource) -> Vec<String> {
    let items = source.map(|item| show(&item)).collect::<Vec<_>>();
    tokio::time::timeout(LIMIT, items)
        .await
        .expect("the stream ends")
}

#[test]
fn an_event_source_can_move_between_tasks() {
    fn send_unpin<T: Send + Unpin + 'static>() {}
    send_unpin::<EventSource>();
    send_unpin::<herald_client::CloseHandle>();
    send_unpin::<Error>();
}

fn source(server: &ScriptedServer) -> herald_client::EventSourceBuilder {
    EventSource::builder(server.url("/events")).retry_policy(quick())
}

#[tokio::test]
async fn sends_accept_cache_control_and_custom_headers_on_every_connection() {
    let server = ScriptedServer::start([
        Response::sse().chunk("id: 1\ndata: a\n\n"),
        Response::sse().chunk("data: b\n\n"),
    ])
    .await;
    let es = source(&server)
        .header("Authorization", "Bearer t0k3n")
        .header("X-Multi", "1")
        .header("X-Multi", "2")
        .build()
        .unwrap();
    let items = run(es).await;
    assert_eq!(items, ["open", "message|a|1", "open", "message|b|1"]);
    let requests = server.wait_for_requests(3).await;
    for request in &requests {
        assert_eq!(request.method, "GET");
        assert_eq!(request.target, "/events");
        assert_eq!(request.header("accept"), Some("text/event-stream"));
        assert_eq!(request.header("cache-control"), Some("no-cache"));
        assert_eq!(request.header("authorization"), Some("Bearer t0k3n"));
        assert_eq!(request.header_all("x-multi"), ["1", "2"]);
    }
    assert_eq!(requests[0].header("last-event-id"), None);
    assert_eq!(requests[1].header("last-event-id"), Some("1"));
    // The second stream's event had no id: the source's last event id is unchanged.
    assert_eq!(requests[2].header("last-event-id"), Some("1"));
}

#[tokio::test]
async fn initial_last_event_id_is_sent_until_the_server_replaces_it() {
    let server = ScriptedServer::start([
        Response::sse().chunk(": a comment, no blank line\n"),
        Response::sse().chunk("id: 42\ndata: x\n\n"),
        Response::sse().chunk("id: 43\n\n"), // an id-only block still moves the last id
    ])
    .await;
    let es = source(&server).last_event_id("41").build().unwrap();
    let items = run(es).await;
    assert_eq!(items, ["open", "open", "message|x|42", "open"]);
    let ids: Vec<_> = server
        .wait_for_requests(4)
        .await
        .iter()
        .map(|r| r.header("last-event-id").map(str::to_owned))
        .collect();
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(ids, [some("41"), some("41"), some("42"), some("43")]);
}

/// Issue 13: after a reconnection the first blank line before an `id:` (a `:\n\n` keep-alive, a
/// lone `retry:` block, an id-less event) set the last event id to "", so the next drop resumed
/// from nowhere. As in Chromium, Firefox and npm `eventsource`, the last event id is the source's
/// and survives reconnections: only an `id` field changes it.
#[tokio::test]
async fn client_keeps_its_place_across_reconnects_with_keepalives_and_id_less_events() {
    let server = ScriptedServer::start([
        Response::sse().chunk("retry: 1\n\n:\n\nid: 1\ndata: a\n\n"),
        Response::sse().chunk(":\n\n"),
        Response::sse().chunk(":\n\ndata: no id\n\n:\n\n"),
        Response::sse()
            .chunk("retry: 1\n\n")
            .chunk(":\n\nid: 2\ndata: b\n\n:\n\n"),
        Response::sse().chunk(":\n\nevent: t\ndata: c\n\n"),
        // A cut event's id is dropped with it.
        Response::sse().chunk("id: 3\ndata: cut"),
        Response::sse().chunk(":\n\n"),
    ])
    .await;
    let items = run(source(&server).last_event_id("0").build().unwrap()).await;
    assert_eq!(
        items,
        [
            "open",
            "message|a|1",
            "open",
            "open",
            "message|no id|1",
            "open",
            "message|b|2",
            "open",
            "t|c|2",
            "open",
            "open",
        ]
    );
    let ids: Vec<_> = server
        .wait_for_requests(8)
        .await
        .iter()
        .map(|r| r.header("last-event-id").map(str::to_owned))
        .collect();
    let some = |s: &str| Some(s.to_owned());
    assert_eq!(
        ids,
        [
            some("0"),
            some("1"),
            some("1"),
            some("1"),
            some("2"),
            some("2"),
            some("2"),
            some("2")
        ]
    );
}

#[tokio::test]
async fn an_empty_id_clears_the_last_event_id_and_it_is_not_sent_again() {
    let server = ScriptedServer::start([
        Response::sse().chunk("id: 7\ndata: a\n\nid\ndata: b\n\n"),
        Response::sse().chunk("id: 8\ndata: c\n\nid:\n\n"),
    ])
    .await;
    let items = run(source(&server).build().unwrap()).await;
    assert_eq!(
        items,
        ["open", "message|a|7", "message|b|", "open", "message|c|8"]
    );
    let requests = server.wait_for_requests(3).await;
    assert_eq!(requests[1].header("last-event-id"), None);
    assert_eq!(requests[2].header("last-event-id"), None);
}

#[tokio::test]
async fn an_id_a_header_cannot_carry_is_not_sent() {
    let server = ScriptedServer::start([
        Response::sse().chunk("id: caf\u{e9}\ndata: a\n\n"),
        Response::sse().chunk("id: a\x01b\ndata: b\n\n"),
    ])
    .await;
    let items = run(source(&server).build().unwrap()).await;
    assert_eq!(
        items,
        ["open", "message|a|caf\u{e9}", "open", "message|b|a\x01b"]
    );
    let requests = server.wait_for_requests(3).await;
    // Non-ASCII travels as its UTF-8 bytes; the testkit reads the head lossily as UTF-8.
    assert_eq!(requests[1].header("last-event-id"), Some("caf\u{e9}"));
    assert_eq!(requests[2].header("last-event-id"), None);
}

/// Every rule of the spec's parser in one stream: BOM, CR/LF/CRLF, comments, fields without a
/// colon or space, multi-line data, `event`, `id` with NUL, bad `retry`, empty data, the
/// unterminated last event.
const FIXTURE: &[u8] = b"\xEF\xBB\xBFdata: one\r\n\r\n: comment\rdata:two\rdata\r\r\
event: custom\nid: 5\ndata:  three \n\n\
id: x\x00y\ndata: nul id ignored\n\n\
retry: 12x\nunknown: field\ndata\n\n\
event: only-type\n\n\
data: caf\xC3\xA9 \xFF\r\n\r\n\
data: never dispatched";

/// What the first connection yields; a later one starts from last event id 5 instead.
const EXPECTED: [&str; 7] = [
    "open",
    "message|one|",
    "message|two\n|",
    "custom| three |5",
    "message|nul id ignored|5",
    "message||5", // `data` alone: one empty line of data, so an event with empty data
    "message|caf\u{e9} \u{fffd}|5",
];

#[tokio::test]
async fn every_rule_of_the_parser_survives_every_split_of_the_stream() {
    // One connection per split point, plus one written a byte at a time.
    let mut script: Vec<Response> = (1..FIXTURE.len())
        .map(|cut| Response::sse().split(FIXTURE, &[cut]))
        .collect();
    script.push(Response::sse().pieces(FIXTURE, 1));
    script.push(
        Response::sse()
            .framing(Framing::CloseDelimited)
            .pieces(FIXTURE, 7),
    );
    let connections = script.len();
    let server = ScriptedServer::start(script).await;
    let items = run(source(&server).build().unwrap()).await;

    assert_eq!(items.len(), connections * EXPECTED.len(), "{items:?}");
    let resumed: Vec<String> = EXPECTED
        .iter()
        .map(|e| e.replace("one|", "one|5").replace("two\n|", "two\n|5"))
        .collect();
    for (connection, seen) in items.chunks(EXPECTED.len()).enumerate() {
        let expected: Vec<&str> = match connection {
            0 => EXPECTED.to_vec(),
            _ => resumed.iter().map(String::as_str).collect(),
        };
        assert_eq!(
            seen,
            expected,
            "connection {connection} (split at byte {})",
            connection + 1
        );
    }
    let requests = server.wait_for_requests(connections + 1).await;
    assert!(
        requests[1..connections]
            .iter()
            .all(|r| r.header("last-event-id") == Some("5"))
    );
}

#[tokio::test]
async fn a_204_ends_the_stream_for_good_without_an_error() {
    let server = ScriptedServer::start([Response::status(204)]).await;
    let es = source(&server).build().unwrap();
    let handle = es.close_handle();
    assert_eq!(run(es).await, Vec::<String>::new());
    assert_eq!(handle.ready_state(), ReadyState::Closed);
    assert_eq!(server.connections().len(), 1);
}

#[tokio::test]
async fn statuses_other_than_200_fail_the_connection_and_stop() {
    for status in [201, 304, 400, 401, 404, 429, 500, 503] {
        let server = ScriptedServer::start([Response::status(status)]).await;
        let mut es = source(&server).build().unwrap();
        let error = es.next().await.expect("an item").expect_err("an error");
        assert!(error.is_status() && error.is_fatal(), "{status}: {error}");
        assert_eq!(error.status(), Some(status));
        assert!(es.next().await.is_none(), "{status}: ends after the error");
        assert_eq!(es.ready_state(), ReadyState::Closed);
        assert_eq!(server.connections().len(), 1, "{status}: no retry");
    }
}

#[tokio::test]
async fn a_content_type_other_than_event_stream_fails_and_stops() {
    let cases = [
        (Some("text/plain"), Some("text/plain")),
        (
            Some("application/json; charset=utf-8"),
            Some("application/json; charset=utf-8"),
        ),
        (Some("text/event-streamx"), Some("text/event-streamx")),
        (None, None),
    ];
    for (content_type, reported) in cases {
        let mut response = Response::status(200).chunk("data: not for you\n\n");
        if let Some(value) = content_type {
            response = response.header("Content-Type", value);
        }
        let server = ScriptedServer::start([response]).await;
        let items: Vec<_> = source(&server).build().unwrap().collect().await;
        assert_eq!(items.len(), 1, "{content_type:?}");
        let error = items[0].as_ref().expect_err("an error");
        assert!(error.is_content_type() && error.is_fatal());
        assert_eq!(error.content_type(), reported);
        assert!(error.to_string().contains("text/event-stream"), "{error}");
    }
}

#[tokio::test]
async fn content_type_parameters_and_case_are_accepted() {
    let server = ScriptedServer::start([Response::status(200)
        .header("Content-Type", "Text/Event-Stream; charset=UTF-8")
        .chunk("data: ok\n\n")])
    .await;
    assert_eq!(
        run(source(&server).build().unwrap()).await,
        ["open", "message|ok|"]
    );
}

#[tokio::test]
async fn redirects_are_followed_with_the_same_headers() {
    let server = ScriptedServer::start([
        Response::status(307).header("Location", "/moved?x=1"),
        Response::sse().chunk("data: here\n\n"),
    ])
    .await;
    let es = source(&server).header("X-Token", "t").build().unwrap();
    assert_eq!(run(es).await, ["open", "message|here|"]);
    let requests = server.wait_for_requests(2).await;
    assert_eq!(requests[1].target, "/moved?x=1");
    assert_eq!(requests[1].header("accept"), Some("text/event-stream"));
    assert_eq!(requests[1].header("x-token"), Some("t"));
}

#[tokio::test]
async fn an_unterminated_event_is_dropped_at_the_end_of_each_stream() {
    let server = ScriptedServer::start([
        Response::sse().chunk("data: whole\n\ndata: half"),
        Response::sse()
            .framing(Framing::CloseDelimited)
            .chunk("data: cut\r"),
        Response::sse().chunk("\ndata: next\n\n"),
    ])
    .await;
    let items = run(source(&server).build().unwrap()).await;
    // The third stream starts fresh: its leading LF is a blank line, not the end of a CRLF.
    assert_eq!(
        items,
        ["open", "message|whole|", "open", "open", "message|next|"]
    );
}

#[tokio::test]
async fn a_broken_stream_is_an_error_then_a_reconnection_with_the_last_id() {
    let server = ScriptedServer::start([
        Response::sse()
            .chunk("id: 3\ndata: a\n\ndata: lost")
            .end(End::Abort),
        Response::sse().chunk("data: b\n\n"),
    ])
    .await;
    let items = run(source(&server).build().unwrap()).await;
    assert_eq!(items.len(), 5, "{items:?}");
    assert_eq!(items[..2], ["open", "message|a|3"]);
    assert!(items[2].starts_with("error the stream broke"), "{items:?}");
    assert_eq!(items[3..], ["open", "message|b|3"]);
    let requests = server.wait_for_requests(2).await;
    assert_eq!(requests[1].header("last-event-id"), Some("3"));
}

#[tokio::test]
async fn a_refused_connection_is_retried_then_given_up_with_max_retries() {
    let url = format!("http://127.0.0.1:{}/events", free_port());
    let es = EventSource::builder(url)
        .retry_policy(quick().max_retries(2))
        .build()
        .unwrap();
    let items: Vec<_> = tokio::time::timeout(LIMIT, es.collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(items.len(), 3, "the first failure and two retries");
    for (i, item) in items.iter().enumerate() {
        let error = item.as_ref().expect_err("errors only");
        assert!(error.is_connect(), "{error:?}");
        assert_eq!(error.is_fatal(), i == 2);
    }
}

#[tokio::test]
async fn malformed_http_is_a_connection_failure_and_is_retried() {
    let sse_head = "HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n";
    let server = ScriptedServer::start([
        Response::raw().chunk("HTTP/1.1 2000 Huge\r\n\r\n"),
        Response::sse().header("X-Big", "v".repeat(1024 * 1024)), // a head over hyper's limit
        // A broken chunked body after a good event: the stream breaks, and is reconnected.
        Response::raw().chunk(format!(
            "{sse_head}Transfer-Encoding: chunked\r\n\r\n9\r\ndata: a\n\n\r\nZZ\r\n"
        )),
        // A body longer than its Content-Length: the extra bytes are not part of the stream.
        Response::raw().chunk(format!(
            "{sse_head}Content-Length: 9\r\n\r\ndata: b\n\ndata: smuggled\n\n"
        )),
    ])
    .await;
    let items = run(source(&server).build().unwrap()).await;
    assert_eq!(items.len(), 7, "{items:?}");
    assert!(
        items[..2]
            .iter()
            .all(|i| i.starts_with("error connection failed")),
        "{items:?}"
    );
    assert_eq!(items[2..4], ["open", "message|a|"]);
    assert!(items[4].starts_with("error the stream broke"), "{items:?}");
    assert_eq!(items[5..], ["open", "message|b|"]);
}

#[tokio::test]
async fn an_answer_that_is_not_http_at_all_is_fatal_with_the_tls_hint() {
    // What a TLS port (or any non-HTTP service) answers to plain HTTP: retrying cannot help.
    let server = ScriptedServer::start([
        Response::raw().chunk("SSH-2.0-OpenSSH_9.6\r\n"),
        Response::sse().chunk("data: never\n\n"),
    ])
    .await;
    let items = run(source(&server).build().unwrap()).await;
    assert_eq!(
        items,
        ["FATAL the server did not answer in HTTP (a TLS port? then use an https:// URL)"]
    );
}

#[tokio::test]
async fn oversized_events_are_reported_and_skipped() {
    let big = format!("data: {}\n\n", "x".repeat(100));
    let endless = "y".repeat(300); // a line that never ends, in pieces
    let server = ScriptedServer::start([
        Response::sse()
            .chunk("data: small\n\n")
            .chunk(big)
            .chunk("data: after\n\n"),
        Response::sse()
            .pieces(endless.as_bytes(), 16)
            .chunk("\n\ndata: recovered\n\n"),
    ])
    .await;
    let es = source(&server).max_event_size(64).build().unwrap();
    let items = run(es).await;
    let too_large = "error event larger than the limit of 64 bytes was dropped";
    assert_eq!(
        items,
        [
            "open",
            "message|small|",
            too_large,
            "message|after|",
            "open",
            too_large,
            "message|recovered|"
        ]
    );
}

#[tokio::test]
async fn the_idle_timeout_treats_a_silent_connection_as_lost() {
    let server = ScriptedServer::start([
        Response::sse().chunk("id: 1\ndata: a\n\n").hold(),
        Response::sse()
            .chunk(":\n")
            .pause(Duration::from_millis(600))
            .chunk(":\n")
            .pause(Duration::from_millis(600))
            .chunk("data: b\n\n"),
    ])
    .await;
    // 1.2 s of stream in all, never more than 0.6 s without a byte.
    let es = source(&server)
        .idle_timeout(Duration::from_millis(1000))
        .build()
        .unwrap();
    let items = run(es).await;
    assert_eq!(items.len(), 5, "{items:?}");
    assert_eq!(items[..2], ["open", "message|a|1"]);
    assert!(items[2].starts_with("error no data for 1s"), "{items:?}");
    // Heartbeats (comments) keep the second connection alive past the timeout.
    assert_eq!(items[3..], ["open", "message|b|1"]);
    let connections = server
        .wait_for(|c| c.len() == 3 && c[0].ended_at.is_some())
        .await;
    assert_eq!(connections[1].request.header("last-event-id"), Some("1"));
}

#[tokio::test]
async fn the_idle_timeout_also_covers_a_server_that_never_answers() {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}/", listener.local_addr().unwrap());
    let es = EventSource::builder(url)
        .idle_timeout(Duration::from_millis(200))
        .retry_policy(quick().max_retries(0))
        .build()
        .unwrap();
    let items: Vec<_> = tokio::time::timeout(LIMIT, es.collect::<Vec<_>>())
        .await
        .unwrap();
    assert_eq!(items.len(), 1);
    let error = items[0].as_ref().expect_err("an error");
    assert!(error.is_timeout() && error.is_fatal(), "{error}");
    drop(listener);
}

#[tokio::test]
async fn close_from_another_task_stops_at_once_and_drops_the_connection() {
    let server = ScriptedServer::start([Response::sse().chunk("data: a\n\n").hold()]).await;
    let mut es = source(&server).build().unwrap();
    let handle = es.close_handle();
    assert_eq!(show(&es.next().await.unwrap()), "open");
    assert_eq!(show(&es.next().await.unwrap()), "message|a|");
    assert_eq!(es.ready_state(), ReadyState::Open);
    let reader = tokio::spawn(async move { es.next().await.map(|item| show(&item)) });
    handle.close();
    let after_close = tokio::time::timeout(LIMIT, reader).await.unwrap().unwrap();
    assert_eq!(after_close, None);
    assert_eq!(handle.ready_state(), ReadyState::Closed);
    // The server sees the client go away.
    server.wait_for(|c| c[0].ended_at.is_some()).await;
}

#[tokio::test]
async fn close_during_a_reconnect_delay_ends_without_waiting() {
    let server = ScriptedServer::start([Response::sse().chunk("data: a\n\n")]).await;
    let mut es = EventSource::builder(server.url("/"))
        .retry_policy(RetryPolicy::new().reconnection_time(Duration::from_secs(3600)))
        .build()
        .unwrap();
    assert_eq!(show(&es.next().await.unwrap()), "open");
    assert_eq!(show(&es.next().await.unwrap()), "message|a|");
    let handle = es.close_handle();
    let reader = tokio::spawn(async move { es.next().await.is_none() });
    server.wait_for(|c| c[0].ended_at.is_some()).await;
    handle.close();
    assert!(tokio::time::timeout(LIMIT, reader).await.unwrap().unwrap());
    assert_eq!(server.connections().len(), 1);
}

// ---- reconnection delays, under paused time -------------------------------------------------

/// The gaps between the end of each connection and the start of the next.
fn gaps(server: &ScriptedServer) -> Vec<Duration> {
    let connections = server.connections();
    connections
        .windows(2)
        .map(|pair| pair[1].received_at - pair[0].ended_at.expect("ended"))
        .collect()
}

/// Whether `gap` is `expected`, give or take the few ms the scripted server itself waits.
fn about(gap: Duration, expected: Duration) -> bool {
    gap >= expected && gap <= expected + Duration::from_millis(50)
}

#[tokio::test(start_paused = true)]
async fn waits_the_default_reconnection_time_then_the_servers_retry() {
    let server = ScriptedServer::start([
        Response::sse().chunk("data: a\n\n"),
        Response::sse().chunk("retry: 7000\n\n"), // a block with no data still sets it
        Response::sse().chunk("retry: 250\ndata: b\n\n"),
        Response::sse().chunk("retry: nope\n\n"), // ignored: 250 stays
    ])
    .await;
    let es = EventSource::builder(server.url("/")).build().unwrap();
    let items: Vec<_> = es.map(|i| show(&i)).collect().await;
    assert_eq!(
        items,
        ["open", "message|a|", "open", "open", "message|b|", "open"]
    );
    let gaps = gaps(&server);
    let want = [
        RetryPolicy::DEFAULT_RECONNECTION_TIME,
        Duration::from_millis(7000),
        Duration::from_millis(250),
        Duration::from_millis(250),
    ];
    assert_eq!(gaps.len(), 4);
    for (gap, want) in gaps.iter().zip(want) {
        assert!(
            about(*gap, want),
            "gap {gap:?}, want {want:?}; all {gaps:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn repeated_failures_back_off_exponentially_and_an_open_stream_resets_it() {
    let s = Duration::from_secs(1);
    let server = ScriptedServer::start([
        Response::status(503),
        Response::status(500),
        Response::status(429),
        Response::sse().chunk("data: up\n\n"),
        Response::status(502),
        Response::status(503).header("Retry-After", "20"),
    ])
    .await;
    let policy = RetryPolicy::new()
        .reconnection_time(s)
        .max_delay(6 * s)
        .jitter(false)
        .retry_server_errors(true);
    let es = EventSource::builder(server.url("/"))
        .retry_policy(policy)
        .build()
        .unwrap();
    let items: Vec<_> = es.map(|i| show(&i)).collect().await;
    assert_eq!(items.len(), 7, "{items:?}");
    assert!(
        items[..3]
            .iter()
            .all(|i| i.starts_with("error server answered HTTP"))
    );
    assert_eq!(items[3..5], ["open", "message|up|"]);
    let gaps = gaps(&server);
    // 2s, 4s, capped at 6s; after the open stream: the plain reconnection time, then 2s again,
    // then the server's Retry-After of 20s over the backoff.
    let want = [2, 4, 6, 1, 2, 20].map(|n| n * s);
    assert_eq!(gaps.len(), want.len(), "{gaps:?}");
    for (gap, want) in gaps.iter().zip(want) {
        assert!(
            about(*gap, want),
            "gap {gap:?}, want {want:?}; all {gaps:?}"
        );
    }
}

#[tokio::test(start_paused = true)]
async fn jittered_backoff_stays_between_half_and_all_of_the_doubled_delay() {
    let s = Duration::from_secs(1);
    let server = ScriptedServer::start((0..5).map(|_| Response::status(503))).await;
    let policy = RetryPolicy::new()
        .reconnection_time(s)
        .max_delay(60 * s)
        .retry_server_errors(true)
        .max_retries(4);
    let es = EventSource::builder(server.url("/"))
        .retry_policy(policy)
        .build()
        .unwrap();
    let items: Vec<_> = es.collect().await;
    assert_eq!(items.len(), 5);
    assert!(items[4].as_ref().unwrap_err().is_fatal());
    for (n, gap) in gaps(&server).into_iter().enumerate() {
        let ceiling = s * 2u32.pow(n as u32 + 1);
        assert!(
            gap >= ceiling / 2 && gap <= ceiling + Duration::from_millis(50),
            "{n}: {gap:?}"
        );
    }
}

// ---- failover over fallback URLs --------------------------------------------------------------

#[tokio::test]
async fn a_refused_first_url_fails_over_to_the_fallback() {
    let refused = format!("http://127.0.0.1:{}/events", free_port());
    let b = ScriptedServer::start([Response::sse().chunk("id: 1\ndata: from b\n\n")]).await;
    let es = EventSource::builder(&refused)
        .fallback_url(b.url("/events"))
        .retry_policy(quick())
        .build()
        .unwrap();
    let items = run(es).await;
    // A refused, B serves, A refused again (the list wraps), B's script is used up: 204.
    assert_eq!(items.len(), 4, "{items:?}");
    assert!(items[0].starts_with("error connection failed"), "{items:?}");
    assert_eq!(items[1..3], ["open", "message|from b|1"]);
    assert!(items[3].starts_with("error connection failed"), "{items:?}");
    let requests = b.wait_for_requests(2).await;
    assert_eq!(requests[0].header("last-event-id"), None);
    assert_eq!(requests[1].header("last-event-id"), Some("1"));
}

#[tokio::test]
async fn each_reconnection_moves_to_the_next_url_with_the_last_event_id_and_wraps_around() {
    let a = ScriptedServer::start([
        Response::sse().chunk("id: 1\ndata: a1\n\n"),
        Response::sse().chunk("id: 4\ndata: a2\n\n"),
    ])
    .await;
    let b = ScriptedServer::start([Response::sse()
        .chunk("id: 2\ndata: b1\n\ndata: lost")
        .end(End::Abort)])
    .await;
    let c = ScriptedServer::start([Response::sse().chunk("id: 3\ndata: c1\n\n")]).await;
    let es = EventSource::builder(a.url("/events?topic=t"))
        .fallback_url(b.url("/b?topic=t"))
        .fallback_url(c.url("/c?topic=t"))
        .retry_policy(quick())
        .build()
        .unwrap();
    let items = run(es).await;
    // A ends, B breaks, C ends, back to A, then B's script is used up: 204 ends the source.
    assert_eq!(items.len(), 9, "{items:?}");
    assert_eq!(items[..4], ["open", "message|a1|1", "open", "message|b1|2"]);
    assert!(items[4].starts_with("error the stream broke"), "{items:?}");
    assert_eq!(items[5..], ["open", "message|c1|3", "open", "message|a2|4"]);

    let id = |r: &herald_testkit::Request| r.header("last-event-id").map(str::to_owned);
    let some = |s: &str| Some(s.to_owned());
    let on_a = a.wait_for_requests(2).await;
    let on_b = b.wait_for_requests(2).await;
    let on_c = c.wait_for_requests(1).await;
    assert_eq!(on_a.iter().map(id).collect::<Vec<_>>(), [None, some("3")]);
    assert_eq!(
        on_b.iter().map(id).collect::<Vec<_>>(),
        [some("1"), some("4")]
    );
    assert_eq!(on_c.iter().map(id).collect::<Vec<_>>(), [some("2")]);
    assert_eq!(on_b[0].target, "/b?topic=t");
    assert_eq!(on_c[0].target, "/c?topic=t");
}

#[tokio::test]
async fn a_redirect_within_one_attempt_is_not_a_move() {
    let a = ScriptedServer::start([
        Response::status(307).header("Location", "/moved"),
        Response::sse().chunk("id: 9\ndata: moved\n\n"),
    ])
    .await;
    let b = ScriptedServer::start([Response::status(204)]).await;
    let es = EventSource::builder(a.url("/events"))
        .fallback_url(b.url("/events"))
        .retry_policy(quick())
        .build()
        .unwrap();
    assert_eq!(run(es).await, ["open", "message|moved|9"]);
    assert_eq!(a.wait_for_requests(2).await[1].target, "/moved");
    // The reconnection after the stream on A ends is the first move.
    let on_b = b.wait_for_requests(1).await;
    assert_eq!(on_b[0].header("last-event-id"), Some("9"));
    assert_eq!(a.connections().len(), 2);
}

#[tokio::test]
async fn a_fatal_answer_does_not_fail_over() {
    let cases = [
        Response::status(401),
        Response::status(404),
        Response::status(503), // fatal unless retry_server_errors
        Response::status(200)
            .header("Content-Type", "text/html")
            .chunk("<html>"),
    ];
    for response in cases {
        let a = ScriptedServer::start([response]).await;
        let b = ScriptedServer::start([Response::sse().chunk("data: b\n\n")]).await;
        let es = EventSource::builder(a.url("/"))
            .fallback_url(b.url("/"))
            .retry_policy(quick())
            .build()
            .unwrap();
        let items = run(es).await;
        assert_eq!(items.len(), 1, "{items:?}");
        assert!(items[0].starts_with("FATAL"), "{items:?}");
        assert_eq!(b.connections().len(), 0, "{items:?}: no failover");
    }
}

#[test]
fn a_bad_fallback_url_is_a_builder_error_that_names_it() {
    for bad in ["not a url", "ftp://hub-b/events", "hub-b:8080/events"] {
        let error = EventSource::builder("http://127.0.0.1:1/events")
            .fallback_url("http://127.0.0.1:2/events")
            .fallback_url(bad)
            .build()
            .expect_err("refused");
        assert!(error.is_builder() && error.is_fatal(), "{error}");
        assert!(error.to_string().contains(&format!("`{bad}`")), "{error}");
    }
}

#[tokio::test(start_paused = true)]
async fn backoff_and_max_retries_count_failed_attempts_across_the_whole_list() {
    let s = Duration::from_secs(1);
    let a = ScriptedServer::start((0..3).map(|_| Response::status(503))).await;
    let b = ScriptedServer::start((0..3).map(|_| Response::status(503))).await;
    let policy = RetryPolicy::new()
        .reconnection_time(s)
        .max_delay(60 * s)
        .jitter(false)
        .retry_server_errors(true)
        .max_retries(3);
    let es = EventSource::builder(a.url("/"))
        .fallback_url(b.url("/"))
        .retry_policy(policy)
        .build()
        .unwrap();
    let items: Vec<_> = es.collect().await;
    // The first attempt and 3 retries in all, alternating A, B, A, B; not 3 retries per URL.
    assert_eq!(items.len(), 4);
    for (n, item) in items.iter().enumerate() {
        let error = item.as_ref().expect_err("errors only");
        assert_eq!(error.status(), Some(503));
        assert_eq!(error.is_fatal(), n == 3, "{n}: {error}");
    }
    let mut connections: Vec<_> = a
        .connections()
        .into_iter()
        .map(|c| ('a', c))
        .chain(b.connections().into_iter().map(|c| ('b', c)))
        .collect();
    connections.sort_by_key(|(_, c)| c.received_at);
    let order: String = connections.iter().map(|(server, _)| *server).collect();
    assert_eq!(order, "abab");
    // One backoff over the list: 2 s, 4 s, 8 s, whichever hub the attempt went to.
    let gaps: Vec<_> = connections
        .windows(2)
        .map(|pair| pair[1].1.received_at - pair[0].1.ended_at.expect("ended"))
        .collect();
    let want = [2, 4, 8].map(|n| n * s);
    assert_eq!(gaps.len(), want.len(), "{gaps:?}");
    for (gap, want) in gaps.iter().zip(want) {
        assert!(
            about(*gap, want),
            "gap {gap:?}, want {want:?}; all {gaps:?}"
        );
    }
}

//! Property tests: what must hold for every input, not only the hand-picked ones.
//!
//! - encode then parse gives back every event (data line ends arrive as LF);
//! - parsing gives the same events, last event id and reconnection time however the bytes are
//!   split into chunks, including with a size limit that drops events.

use herald_wire::{Event, MessageEvent, ParseError, Parser};
use proptest::prelude::*;

/// Text that may hold every kind of line end and some non-ASCII.
fn text() -> impl Strategy<Value = String> {
    prop::collection::vec(
        prop_oneof![
            4 => any::<char>().prop_map(String::from),
            2 => Just("\n".to_string()),
            2 => Just("\r".to_string()),
            2 => Just("\r\n".to_string()),
            1 => Just(" ".to_string()),
            1 => Just(":".to_string()),
            1 => Just("data: ".to_string()),
        ],
        0..12,
    )
    .prop_map(|parts| parts.concat())
}

/// Text without CR and LF (and without NUL when `nul_ok` is false).
fn single_line(nul_ok: bool) -> impl Strategy<Value = String> {
    text().prop_map(move |t| {
        t.chars()
            .filter(|&c| c != '\r' && c != '\n' && (nul_ok || c != '\0'))
            .collect()
    })
}

fn event() -> impl Strategy<Value = Event> {
    (
        text(),
        prop::option::of(single_line(true)),
        prop::option::of(single_line(false)),
        prop::option::of(any::<u64>()),
    )
        .prop_map(|(data, event_type, id, retry)| {
            let mut event = Event::new(data);
            if let Some(t) = event_type {
                event = event.with_type(t).expect("no line break");
            }
            if let Some(id) = id {
                event = event.with_id(id).expect("no line break, no NUL");
            }
            if let Some(retry) = retry {
                event = event.with_retry(retry);
            }
            event
        })
}

fn normalize_line_ends(s: &str) -> String {
    s.replace("\r\n", "\n").replace('\r', "\n")
}

/// Everything a parser run produces: events and errors in order, then the persistent state.
#[derive(Debug, PartialEq)]
struct Outcome {
    items: Vec<Result<MessageEvent, ParseError>>,
    last_event_id: String,
    reconnection_time: Option<u64>,
}

fn run(mut parser: Parser, chunks: &[&[u8]]) -> Outcome {
    let mut items = Vec::new();
    for chunk in chunks {
        parser.feed(chunk);
        while let Some(item) = parser.next_event() {
            items.push(item);
        }
    }
    Outcome {
        items,
        last_event_id: parser.last_event_id().to_string(),
        reconnection_time: parser.reconnection_time(),
    }
}

/// Cuts `bytes` at the given points (taken modulo the length, sorted).
fn split<'a>(bytes: &'a [u8], cuts: &[usize]) -> Vec<&'a [u8]> {
    let mut cuts: Vec<usize> = cuts.iter().map(|c| c % (bytes.len() + 1)).collect();
    cuts.sort_unstable();
    let mut chunks = Vec::new();
    let mut start = 0;
    for cut in cuts {
        chunks.push(&bytes[start..cut]);
        start = cut;
    }
    chunks.push(&bytes[start..]);
    chunks
}

/// Streams that look like SSE, with every awkward piece the parser must handle.
fn sse_bytes() -> impl Strategy<Value = Vec<u8>> {
    prop::collection::vec(
        prop_oneof![
            Just(b"data".to_vec()),
            Just(b"data:".to_vec()),
            Just(b"data: ".to_vec()),
            Just(b"event: ".to_vec()),
            Just(b"id: ".to_vec()),
            Just(b"id\n".to_vec()),
            Just(b"retry: ".to_vec()),
            Just(b": comment".to_vec()),
            Just(b"\n".to_vec()),
            Just(b"\r".to_vec()),
            Just(b"\r\n".to_vec()),
            Just(b"\n\n".to_vec()),
            Just(b"\xEF\xBB\xBF".to_vec()),
            Just(b"\0".to_vec()),
            Just("é😀".as_bytes().to_vec()),
            Just(b"\xF0\x9F".to_vec()),
            Just(b"\xFF".to_vec()),
            Just(b"12".to_vec()),
            any::<u8>().prop_map(|b| vec![b]),
            "[a-z ]{0,6}".prop_map(String::into_bytes),
        ],
        0..40,
    )
    .prop_map(|parts| parts.concat())
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn encode_then_parse_gives_the_event_back(events in prop::collection::vec(event(), 1..6)) {
        let mut stream = Vec::new();
        for event in &events {
            stream.extend_from_slice(&event.encode());
        }
        let outcome = run(Parser::new(), &[&stream]);
        prop_assert_eq!(outcome.items.len(), events.len());

        let mut last_id = String::new();
        let mut retry = None;
        for (event, parsed) in events.iter().zip(&outcome.items) {
            let parsed = parsed.as_ref().expect("no error");
            if let Some(id) = event.id() {
                last_id = id.to_string();
            }
            retry = event.retry().or(retry);
            let expected_type = match event.event_type() {
                None | Some("") => "message",
                Some(t) => t,
            };
            prop_assert_eq!(&parsed.event_type, expected_type);
            prop_assert_eq!(&parsed.data, &normalize_line_ends(event.data()));
            prop_assert_eq!(&parsed.last_event_id, &last_id);
        }
        prop_assert_eq!(outcome.last_event_id, last_id);
        prop_assert_eq!(outcome.reconnection_time, retry);
    }

    #[test]
    fn chunking_changes_nothing(bytes in sse_bytes(), cuts in prop::collection::vec(any::<usize>(), 0..8)) {
        let whole = run(Parser::new(), &[&bytes]);
        let chunked = run(Parser::new(), &split(&bytes, &cuts));
        prop_assert_eq!(&chunked, &whole);
        let bytewise: Vec<&[u8]> = bytes.chunks(1).collect();
        prop_assert_eq!(run(Parser::new(), &bytewise), whole);
    }

    #[test]
    fn chunking_changes_nothing_with_a_size_limit(
        bytes in sse_bytes(),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
        limit in 1usize..24,
    ) {
        let parser = || Parser::new().with_max_event_size(limit);
        let whole = run(parser(), &[&bytes]);
        prop_assert_eq!(run(parser(), &split(&bytes, &cuts)), whole);
    }

    #[test]
    fn encoded_events_survive_any_chunking(
        events in prop::collection::vec(event(), 1..4),
        cuts in prop::collection::vec(any::<usize>(), 0..8),
    ) {
        let mut stream = Vec::new();
        for event in &events {
            stream.extend_from_slice(&event.encode());
        }
        let whole = run(Parser::new(), &[&stream]);
        prop_assert_eq!(whole.items.len(), events.len());
        prop_assert_eq!(run(Parser::new(), &split(&stream, &cuts)), whole);
    }
}

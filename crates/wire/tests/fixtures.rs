//! The same stream in LF, CR and CRLF line ends, cut at every byte index, gives the same events.

use herald_wire::Parser;

const FIXTURES: [(&str, &[u8]); 3] = [
    ("lf", include_bytes!("fixtures/stream.lf")),
    ("cr", include_bytes!("fixtures/stream.cr")),
    ("crlf", include_bytes!("fixtures/stream.crlf")),
];

fn parse(chunks: &[&[u8]]) -> (Vec<(String, String, String)>, String, Option<u64>) {
    let mut parser = Parser::new();
    let mut events = Vec::new();
    for chunk in chunks {
        parser.feed(chunk);
        while let Some(event) = parser.next_event() {
            let e = event.expect("well formed");
            events.push((e.event_type, e.data, e.last_event_id));
        }
    }
    parser.finish();
    (
        events,
        parser.last_event_id().to_string(),
        parser.reconnection_time(),
    )
}

#[test]
fn every_line_end_style_and_every_split_gives_the_same_events() {
    let expected = (
        vec![
            ("message".into(), "first".into(), "".into()),
            ("update".into(), "line one\nline two".into(), "1".into()),
            ("message".into(), "".into(), "2".into()),
        ],
        "2".to_string(),
        Some(3000),
    );
    for (name, bytes) in FIXTURES {
        assert_eq!(parse(&[bytes]), expected, "{name} whole");
        for i in 0..=bytes.len() {
            assert_eq!(
                parse(&[&bytes[..i], &bytes[i..]]),
                expected,
                "{name} split at {i}"
            );
        }
    }
}

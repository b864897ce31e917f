//! Differential fuzzing of the parser: whatever the bytes, feeding them whole, in the chunks the
//! fuzzer picks, and with a small size limit must never panic, and whole vs chunked must agree.
#![no_main]

use herald_wire::{MessageEvent, ParseError, Parser};
use libfuzzer_sys::fuzz_target;

type Outcome = (Vec<Result<MessageEvent, ParseError>>, String, Option<u64>);

fn run(mut parser: Parser, chunks: &[&[u8]]) -> Outcome {
    let mut items = Vec::new();
    for chunk in chunks {
        parser.feed(chunk);
        while let Some(item) = parser.next_event() {
            items.push(item);
        }
    }
    parser.finish();
    (
        items,
        parser.last_event_id().to_owned(),
        parser.reconnection_time(),
    )
}

fuzz_target!(|input: &[u8]| {
    // The first byte picks the chunk size and the size limit; the rest is the stream.
    let Some((&knob, bytes)) = input.split_first() else {
        return;
    };
    let chunk = usize::from(knob % 16) + 1;
    let chunks: Vec<&[u8]> = bytes.chunks(chunk).collect();

    let whole = run(Parser::new(), &[bytes]);
    assert_eq!(run(Parser::new(), &chunks), whole);

    let limit = usize::from(knob) + 1;
    let limited = || Parser::new().with_max_event_size(limit);
    assert_eq!(run(limited(), &chunks), run(limited(), &[bytes]));
});

//! The incremental `text/event-stream` parser of the WHATWG HTML standard, section "Server-sent
//! events" (parsing an event stream, interpreting an event stream).
//!
//! Feed it bytes as they arrive, in chunks split anywhere, and pull the dispatched events:
//!
//! ```
//! use herald_wire::Parser;
//!
//! let mut parser = Parser::new();
//! parser.feed(b"event: greet\r\nid: 1\r\ndata: hel");
//! assert!(parser.next_event().is_none()); // the event is not complete yet
//! parser.feed(b"lo\r");
//! parser.feed(b"\n\r\n");
//! let event = parser.next_event().unwrap()?;
//! assert_eq!((event.event_type.as_str(), event.data.as_str()), ("greet", "hello"));
//! assert_eq!(parser.last_event_id(), "1");
//! # Ok::<(), herald_wire::ParseError>(())
//! ```
//!
//! # What it does, rule by rule
//!
//! | rule | how |
//! |---|---|
//! | UTF-8, U+FFFD for invalid sequences | lines are cut on bytes (CR and LF never occur inside a UTF-8 sequence), then each value is decoded; a sequence split across chunks is whole again before decoding |
//! | a BOM only at stream start | stripped once, even when it arrives split across chunks |
//! | CR, LF and CRLF line ends | a CR at the end of a chunk remembers that a following LF belongs to it |
//! | fields | `name: value` (one leading space stripped), `name` alone (empty value), `:comment` ignored, unknown names ignored |
//! | `retry` | only when every character is an ASCII digit; sets [`Parser::reconnection_time`] |
//! | `id` | ignored when it contains NUL; otherwise sets the last event id buffer, which dispatch copies to [`Parser::last_event_id`] even when no event is dispatched |
//! | dispatch | a blank line; empty data dispatches nothing; the final LF of the data is removed; the type defaults to `message` |
//! | end of stream | [`Parser::finish`] discards the unterminated event |
//!
//! # Limits
//!
//! An event (its data and type so far plus the line being read) may hold at most
//! [`Parser::max_event_size`] bytes. A longer one is reported once as
//! [`ParseError::EventTooLarge`]; the parser then drops the rest of that event up to its blank line,
//! holding none of it in memory, and goes on with the next event.
//!
//! # Where the spec and browsers differ
//!
//! Read to the letter, the spec gives each stream its own last event id buffer, initialized to the
//! empty string, so after a reconnection the first blank line before an `id:` (a `:\n\n`
//! keep-alive, a lone `retry: 3000\n\n`, an event without an id) clears the last event id, and
//! the next reconnection cannot resume. Chromium, Firefox and the npm `eventsource` package all
//! keep the event source's last event id across reconnections instead, and so does this parser:
//! a new stream's buffer starts from the current last event id ([`Parser::finish`],
//! [`Parser::with_last_event_id`]), so only an `id` field changes it (an empty `id:` clears it),
//! and each event's [`MessageEvent::last_event_id`] is the source's.

use bytes::{Buf, BytesMut};
use std::fmt;

use crate::scan::find_line_end;

/// The UTF-8 byte order mark, stripped once at the start of a stream.
const BOM: &[u8] = b"\xEF\xBB\xBF";

/// An event dispatched by the [`Parser`], as a browser's `MessageEvent` would carry it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MessageEvent {
    /// The event type: the last `event:` field of the event, or `message` when none or empty.
    pub event_type: String,
    /// The `data:` lines of the event joined with LF.
    pub data: String,
    /// The last event id at dispatch time (the empty string when none).
    pub last_event_id: String,
}

/// What the parser reports as an error. Everything the spec says to ignore (bad `retry`, NUL in
/// `id`, unknown fields, invalid UTF-8) is not an error.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum ParseError {
    /// An event grew past the size limit; it is dropped, and parsing goes on with the next one.
    EventTooLarge {
        /// The limit in bytes that was exceeded.
        limit: usize,
    },
}

impl fmt::Display for ParseError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::EventTooLarge { limit } => {
                write!(
                    f,
                    "event larger than the limit of {limit} bytes was dropped"
                )
            }
        }
    }
}

impl std::error::Error for ParseError {}

/// An incremental, allocation-light `text/event-stream` parser (see the [module docs](self)).
///
/// It owns the protocol state that outlives one connection: the last event id and the
/// reconnection time. Call [`Parser::finish`] when a connection ends, and keep the parser for the
/// next connection.
#[derive(Debug)]
pub struct Parser {
    /// Bytes fed but not yet consumed: at most one partial line once events are pulled.
    input: BytesMut,
    /// How far `input` was already searched for a line end, so no byte is scanned twice.
    scanned: usize,
    /// The previous line ended with CR: a LF at the start of the next input completes a CRLF.
    after_cr: bool,
    /// Whether the stream is still at its start, where a BOM is dropped.
    at_stream_start: bool,
    /// Dropping an oversized event up to its blank line.
    discard: Option<Discard>,
    state: EventState,
    max_event_size: usize,
}

/// Where the parser is inside an event it drops.
#[derive(Debug, Clone, Copy)]
struct Discard {
    /// At the start of a line: a line end here is the blank line that ends the event.
    at_line_start: bool,
}

/// The buffers of the spec's "interpreting an event stream", plus the persistent state.
#[derive(Debug, Default)]
struct EventState {
    data: Vec<u8>,
    event_type: Vec<u8>,
    last_event_id_buffer: String,
    last_event_id: String,
    reconnection_time: Option<u64>,
}

impl Default for Parser {
    fn default() -> Self {
        Self::new()
    }
}

impl Parser {
    /// The default [`Parser::max_event_size`]: 8 MiB, far above any sane event (herald's hub
    /// accepts 1 MiB), low enough that a hostile endless line cannot exhaust memory.
    pub const DEFAULT_MAX_EVENT_SIZE: usize = 8 * 1024 * 1024;

    /// A parser at the start of a stream, with no last event id.
    pub fn new() -> Self {
        Self {
            input: BytesMut::new(),
            scanned: 0,
            after_cr: false,
            at_stream_start: true,
            discard: None,
            state: EventState::default(),
            max_event_size: Self::DEFAULT_MAX_EVENT_SIZE,
        }
    }

    /// Sets the size limit of one event in bytes (see [the module docs](self#limits)).
    pub fn with_max_event_size(mut self, limit: usize) -> Self {
        self.max_event_size = limit;
        self
    }

    /// Starts from a known last event id, e.g. one saved before a restart.
    pub fn with_last_event_id(mut self, id: impl Into<String>) -> Self {
        self.state.last_event_id = id.into();
        // The buffer too: an event before the stream's first `id:` carries this id.
        self.state
            .last_event_id_buffer
            .clone_from(&self.state.last_event_id);
        self
    }

    /// The size limit of one event in bytes.
    pub fn max_event_size(&self) -> usize {
        self.max_event_size
    }

    /// The last event id: the value to send as `Last-Event-ID` when reconnecting (when not empty).
    pub fn last_event_id(&self) -> &str {
        &self.state.last_event_id
    }

    /// The reconnection time in milliseconds from the last valid `retry:` field, if any.
    pub fn reconnection_time(&self) -> Option<u64> {
        self.state.reconnection_time
    }

    /// Appends bytes of the stream. Pull the events with [`Parser::next_event`] until it returns
    /// `None` before feeding more, so that at most one partial line stays buffered.
    pub fn feed(&mut self, chunk: &[u8]) {
        self.input.extend_from_slice(chunk);
    }

    /// The next dispatched event, an error for an event that exceeded the limit, or `None` when
    /// the bytes fed so far hold no complete event.
    pub fn next_event(&mut self) -> Option<Result<MessageEvent, ParseError>> {
        loop {
            if self.after_cr {
                match self.input.first() {
                    None => return None,
                    Some(b'\n') => self.input.advance(1),
                    Some(_) => {}
                }
                self.after_cr = false;
            }
            if self.at_stream_start {
                let n = self.input.len().min(BOM.len());
                if self.input[..n] != BOM[..n] {
                    self.at_stream_start = false;
                } else if n == BOM.len() {
                    self.input.advance(BOM.len());
                    self.at_stream_start = false;
                } else {
                    return None; // maybe a BOM split across chunks: wait for more
                }
            }

            let Some(end) = find_line_end(&self.input[self.scanned..]).map(|i| i + self.scanned)
            else {
                self.scanned = self.input.len();
                if let Some(discard) = &mut self.discard {
                    // Keep nothing of a line being dropped.
                    if !self.input.is_empty() {
                        discard.at_line_start = false;
                        self.input.clear();
                        self.scanned = 0;
                    }
                    return None;
                }
                if self.state.pending_len() + self.input.len() > self.max_event_size {
                    self.input.clear();
                    self.scanned = 0;
                    return Some(Err(self.start_discard(false)));
                }
                return None;
            };

            self.after_cr = self.input[end] == b'\r';
            self.scanned = 0;
            let line = &self.input[..end];

            let dispatched = if let Some(discard) = &mut self.discard {
                if end == 0 && discard.at_line_start {
                    self.discard = None; // the blank line that ends the dropped event
                } else {
                    discard.at_line_start = true;
                }
                None
            } else if self.state.pending_len() + line.len() > self.max_event_size {
                self.input.advance(end + 1);
                return Some(Err(self.start_discard(true)));
            } else {
                self.state.process_line(line)
            };
            self.input.advance(end + 1);
            if let Some(event) = dispatched {
                return Some(Ok(event));
            }
        }
    }

    /// Ends the stream: the unterminated event, if any, is discarded (its `id:` too), as the spec
    /// requires. The last event id and reconnection time are kept for the next stream, whose
    /// last event id buffer starts from the last event id, as browsers do (see
    /// [the module docs](self#where-the-spec-and-browsers-differ)).
    pub fn finish(&mut self) {
        self.input.clear();
        self.scanned = 0;
        self.after_cr = false;
        self.at_stream_start = true;
        self.discard = None;
        self.state.data.clear();
        self.state.event_type.clear();
        self.state
            .last_event_id_buffer
            .clone_from(&self.state.last_event_id);
    }

    fn start_discard(&mut self, at_line_start: bool) -> ParseError {
        self.state.data.clear();
        self.state.event_type.clear();
        self.discard = Some(Discard { at_line_start });
        ParseError::EventTooLarge {
            limit: self.max_event_size,
        }
    }
}

impl EventState {
    /// Bytes held for the event being read.
    fn pending_len(&self) -> usize {
        self.data.len() + self.event_type.len()
    }

    fn process_line(&mut self, line: &[u8]) -> Option<MessageEvent> {
        let (name, value) = match line.iter().position(|&b| b == b':') {
            None if line.is_empty() => return self.dispatch(),
            Some(0) => return None, // a comment
            None => (line, &b""[..]),
            Some(colon) => {
                let value = &line[colon + 1..];
                (&line[..colon], value.strip_prefix(b" ").unwrap_or(value))
            }
        };
        match name {
            b"data" => {
                self.data.extend_from_slice(value);
                self.data.push(b'\n');
            }
            b"event" => {
                self.event_type.clear();
                self.event_type.extend_from_slice(value);
            }
            b"id" if !value.contains(&0) => {
                self.last_event_id_buffer.clear();
                self.last_event_id_buffer
                    .push_str(&String::from_utf8_lossy(value));
            }
            b"retry" if !value.is_empty() && value.iter().all(u8::is_ascii_digit) => {
                // The spec's integer has no bound; a value past u64 means "practically never".
                let millis = value.iter().fold(0u64, |n, &d| {
                    n.saturating_mul(10).saturating_add(u64::from(d - b'0'))
                });
                self.reconnection_time = Some(millis);
            }
            _ => {} // unknown field, id with NUL, retry with a non-digit: ignored
        }
        None
    }

    fn dispatch(&mut self) -> Option<MessageEvent> {
        if self.last_event_id != self.last_event_id_buffer {
            self.last_event_id.clone_from(&self.last_event_id_buffer);
        }
        if self.data.is_empty() {
            self.event_type.clear();
            return None;
        }
        self.data.pop(); // the LF after the last data line
        let data = into_string(std::mem::take(&mut self.data));
        let event_type = if self.event_type.is_empty() {
            String::from("message")
        } else {
            String::from_utf8_lossy(&self.event_type).into_owned()
        };
        self.event_type.clear();
        Some(MessageEvent {
            event_type,
            data,
            last_event_id: self.last_event_id.clone(),
        })
    }
}

/// Decodes UTF-8, replacing each invalid sequence with U+FFFD as the WHATWG Encoding standard does
/// (Rust's lossy decoding follows the same maximal-subpart rule); no copy when the bytes are valid.
fn into_string(bytes: Vec<u8>) -> String {
    String::from_utf8(bytes)
        .unwrap_or_else(|invalid| String::from_utf8_lossy(invalid.as_bytes()).into_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Feeds `input` whole and returns every event as (type, data, last id).
    fn parse(input: &[u8]) -> Vec<(String, String, String)> {
        parse_with(Parser::new(), &[input])
    }

    fn parse_with(mut parser: Parser, chunks: &[&[u8]]) -> Vec<(String, String, String)> {
        let mut out = Vec::new();
        for chunk in chunks {
            parser.feed(chunk);
            while let Some(event) = parser.next_event() {
                let e = event.expect("no error");
                out.push((e.event_type, e.data, e.last_event_id));
            }
        }
        out
    }

    fn ev(t: &str, d: &str, id: &str) -> (String, String, String) {
        (t.into(), d.into(), id.into())
    }

    /// Every way to cut `input` in two and in three pieces gives the same events.
    fn assert_split_invariant(input: &[u8]) {
        let whole = parse(input);
        for i in 0..=input.len() {
            assert_eq!(
                parse_with(Parser::new(), &[&input[..i], &input[i..]]),
                whole,
                "split at {i}"
            );
            for j in i..=input.len() {
                assert_eq!(
                    parse_with(Parser::new(), &[&input[..i], &input[i..j], &input[j..]]),
                    whole,
                    "split at {i} and {j}"
                );
            }
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(parse_with(Parser::new(), &bytes), whole, "byte by byte");
    }

    #[test]
    fn simple_event() {
        assert_eq!(parse(b"data: hello\n\n"), vec![ev("message", "hello", "")]);
    }

    #[test]
    fn line_ends_lf_cr_crlf_and_mixed() {
        let expected = vec![ev("t", "a\nb", "1")];
        for input in [
            &b"event: t\nid: 1\ndata: a\ndata: b\n\n"[..],
            b"event: t\rid: 1\rdata: a\rdata: b\r\r",
            b"event: t\r\nid: 1\r\ndata: a\r\ndata: b\r\n\r\n",
            b"event: t\r\nid: 1\rdata: a\ndata: b\r\n\r",
        ] {
            assert_eq!(
                parse(input),
                expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
            assert_split_invariant(input);
        }
    }

    #[test]
    fn cr_then_lf_in_next_chunk_is_one_line_end() {
        let got = parse_with(
            Parser::new(),
            &[b"data: a\r", b"\n", b"\r", b"\ndata: b\n\n"],
        );
        assert_eq!(got, vec![ev("message", "a", ""), ev("message", "b", "")]);
    }

    #[test]
    fn cr_cr_is_two_line_ends() {
        assert_eq!(parse(b"data: a\r\r"), vec![ev("message", "a", "")]);
    }

    #[test]
    fn only_one_leading_space_is_stripped() {
        assert_eq!(parse(b"data:  two\n\n"), vec![ev("message", " two", "")]);
        assert_eq!(parse(b"data:none\n\n"), vec![ev("message", "none", "")]);
        assert_eq!(parse(b"data:\ttab\n\n"), vec![ev("message", "\ttab", "")]);
    }

    #[test]
    fn field_without_colon_has_empty_value() {
        // `data` alone appends an empty line; two of them give "\n".
        assert_eq!(parse(b"data\ndata\n\n"), vec![ev("message", "\n", "")]);
        // `event` alone resets the type to the default.
        assert_eq!(
            parse(b"event: x\nevent\ndata: d\n\n"),
            vec![ev("message", "d", "")]
        );
    }

    #[test]
    fn value_may_hold_colons() {
        assert_eq!(
            parse(b"data: a:b: c\n\n"),
            vec![ev("message", "a:b: c", "")]
        );
    }

    #[test]
    fn comments_are_ignored_and_not_fields() {
        assert_eq!(
            parse(b": comment\n:\ndata: x\n: data: y\n\n"),
            vec![ev("message", "x", "")]
        );
        // A comment alone followed by a blank line dispatches nothing.
        assert_eq!(parse(b": keep-alive\n\n"), vec![]);
    }

    #[test]
    fn unknown_fields_and_case_are_ignored() {
        assert_eq!(
            parse(b"foo: bar\nData: no\nDATA: no\ndata : no\ndata: yes\n\n"),
            vec![ev("message", "yes", "")]
        );
    }

    #[test]
    fn empty_data_dispatches_nothing_but_resets_type() {
        assert_eq!(
            parse(b"event: a\n\ndata: x\n\n"),
            vec![ev("message", "x", "")]
        );
    }

    #[test]
    fn empty_data_line_dispatches_empty_string() {
        assert_eq!(parse(b"data:\n\n"), vec![ev("message", "", "")]);
        assert_eq!(parse(b"data\n\n"), vec![ev("message", "", "")]);
    }

    #[test]
    fn only_the_final_lf_is_removed() {
        assert_eq!(
            parse(b"data: a\ndata:\ndata:\n\n"),
            vec![ev("message", "a\n\n", "")]
        );
    }

    #[test]
    fn empty_event_type_means_message() {
        assert_eq!(parse(b"event:\ndata: x\n\n"), vec![ev("message", "x", "")]);
        assert_eq!(parse(b"event: \ndata: x\n\n"), vec![ev("message", "x", "")]);
    }

    #[test]
    fn type_is_reset_after_dispatch() {
        assert_eq!(
            parse(b"event: a\ndata: 1\n\ndata: 2\n\n"),
            vec![ev("a", "1", ""), ev("message", "2", "")]
        );
    }

    #[test]
    fn last_event_id_persists_and_can_be_cleared() {
        assert_eq!(
            parse(
                b"id: 1\ndata: a\n\ndata: b\n\nid\ndata: c\n\nid: 2\ndata: d\n\nid:\ndata: e\n\n"
            ),
            vec![
                ev("message", "a", "1"),
                ev("message", "b", "1"),
                ev("message", "c", ""),
                ev("message", "d", "2"),
                ev("message", "e", ""),
            ]
        );
    }

    #[test]
    fn id_with_nul_is_ignored() {
        assert_eq!(
            parse(b"id: 1\ndata: a\n\nid: 2\x003\ndata: b\n\n"),
            vec![ev("message", "a", "1"), ev("message", "b", "1")]
        );
    }

    #[test]
    fn id_without_data_still_sets_last_event_id() {
        let mut parser = Parser::new();
        parser.feed(b"id: 7\n\n");
        assert!(parser.next_event().is_none());
        assert_eq!(parser.last_event_id(), "7");
    }

    #[test]
    fn id_is_committed_only_at_dispatch() {
        let mut parser = Parser::new();
        parser.feed(b"id: 7\ndata: x\n");
        assert!(parser.next_event().is_none());
        assert_eq!(parser.last_event_id(), "");
        parser.finish(); // the unterminated event is discarded, and so is its id
        assert_eq!(parser.last_event_id(), "");
    }

    #[test]
    fn retry_accepts_only_ascii_digits() {
        let cases: [(&[u8], Option<u64>); 9] = [
            (b"retry: 1500\n", Some(1500)),
            (b"retry:0\n", Some(0)),
            (b"retry: 15a\n", None),
            (b"retry: -1\n", None),
            (b"retry: 1.5\n", None),
            (b"retry:\n", None),
            (b"retry\n", None),
            (b"retry:  15\n", None), // the second space is part of the value
            (b"retry: \xd9\xa1\n", None), // ARABIC-INDIC DIGIT ONE is not ASCII
        ];
        for (input, expected) in cases {
            let mut parser = Parser::new();
            parser.feed(input);
            assert!(parser.next_event().is_none());
            assert_eq!(
                parser.reconnection_time(),
                expected,
                "{:?}",
                String::from_utf8_lossy(input)
            );
        }
    }

    #[test]
    fn retry_applies_without_dispatch_and_saturates() {
        let mut parser = Parser::new();
        parser.feed(b"retry: 99999999999999999999999\n\n");
        assert!(parser.next_event().is_none());
        assert_eq!(parser.reconnection_time(), Some(u64::MAX));
        parser.feed(b"retry: 12\nretry: x\n\n");
        assert!(parser.next_event().is_none());
        assert_eq!(parser.reconnection_time(), Some(12));
    }

    #[test]
    fn bom_is_stripped_once_at_stream_start() {
        assert_eq!(
            parse(b"\xEF\xBB\xBFdata: a\n\n"),
            vec![ev("message", "a", "")]
        );
        // A second BOM is part of the first line: the field name is then not "data".
        assert_eq!(parse(b"\xEF\xBB\xBF\xEF\xBB\xBFdata: a\n\n"), vec![]);
        // A BOM later in the stream is ordinary data.
        assert_eq!(
            parse(b"data: a\n\n\xEF\xBB\xBFdata: b\n\n"),
            vec![ev("message", "a", "")]
        );
        assert_split_invariant(b"\xEF\xBB\xBFdata: a\n\n");
    }

    #[test]
    fn bom_allowed_again_after_finish() {
        let mut parser = Parser::new();
        parser.feed(b"\xEF\xBB\xBFdata: a\n\n");
        assert!(parser.next_event().unwrap().is_ok());
        parser.finish();
        parser.feed(b"\xEF\xBB\xBFdata: b\n\n");
        assert_eq!(parser.next_event().unwrap().unwrap().data, "b");
    }

    #[test]
    fn partial_bom_is_not_stripped() {
        // EF BB followed by something else: invalid UTF-8, replaced, and the line is no field.
        assert_eq!(parse(b"\xEF\xBBdata: a\n\n"), vec![]);
        assert_eq!(
            parse(b"\xEF\xBB\ndata: a\n\n"),
            vec![ev("message", "a", "")]
        );
    }

    #[test]
    fn invalid_utf8_becomes_replacement_characters() {
        assert_eq!(
            parse(b"data: a\xFFb\xC3\n\n"),
            vec![ev("message", "a\u{FFFD}b\u{FFFD}", "")]
        );
        // Maximal subparts: a truncated 3-byte sequence is one U+FFFD.
        assert_eq!(
            parse(b"data: \xE2\x82x\n\n"),
            vec![ev("message", "\u{FFFD}x", "")]
        );
        assert_eq!(
            parse(b"event: \xFF\nid: \xFE\ndata: x\n\n"),
            vec![ev("\u{FFFD}", "x", "\u{FFFD}")]
        );
    }

    #[test]
    fn utf8_split_across_chunks_is_decoded_whole() {
        let input = "data: é€😀\n\n".as_bytes();
        assert_eq!(parse(input), vec![ev("message", "é€😀", "")]);
        assert_split_invariant(input);
    }

    #[test]
    fn unterminated_event_is_discarded_at_end_of_stream() {
        let mut parser = Parser::new();
        parser.feed(b"data: a\n\ndata: b\n");
        assert_eq!(parser.next_event().unwrap().unwrap().data, "a");
        assert!(parser.next_event().is_none());
        parser.finish();
        parser.feed(b"data: c\n\n");
        assert_eq!(parser.next_event().unwrap().unwrap().data, "c");
    }

    #[test]
    fn last_event_id_survives_reconnections_until_an_id_field_changes_it() {
        let mut parser = Parser::new();
        parser.feed(b"id: 5\ndata: a\n\n");
        assert_eq!(parser.next_event().unwrap().unwrap().last_event_id, "5");
        // A stream cut after an `id:` whose event never ended: that id is dropped with it.
        parser.feed(b"id: 6\ndata: lost\n");
        assert!(parser.next_event().is_none());
        parser.finish();
        assert_eq!(parser.last_event_id(), "5", "kept for the reconnection");
        // Keep-alives, a lone retry block and an id-less event change nothing.
        parser.feed(b":\n\nretry: 10\n\ndata: b\n\n");
        assert_eq!(parser.next_event().unwrap().unwrap().last_event_id, "5");
        assert_eq!(parser.last_event_id(), "5");
        parser.finish();
        parser.feed(b":\n\n");
        assert!(parser.next_event().is_none());
        assert_eq!(parser.last_event_id(), "5");
        // Only an `id` field does; an empty one clears it, across a reconnection too.
        parser.feed(b"id: 7\n\n");
        assert!(parser.next_event().is_none());
        parser.finish();
        parser.feed(b"data: c\n\nid:\n\n");
        assert_eq!(parser.next_event().unwrap().unwrap().last_event_id, "7");
        assert!(parser.next_event().is_none());
        assert_eq!(parser.last_event_id(), "");
        parser.finish();
        parser.feed(b"data: d\n\n");
        assert_eq!(parser.next_event().unwrap().unwrap().last_event_id, "");
    }

    #[test]
    fn initial_last_event_id() {
        let mut parser = Parser::new().with_last_event_id("42");
        assert_eq!(parser.last_event_id(), "42");
        parser.feed(b":\n\ndata: x\n\n");
        assert_eq!(parser.next_event().unwrap().unwrap().last_event_id, "42");
        assert_eq!(parser.last_event_id(), "42");
    }

    #[test]
    fn endless_line_is_an_error_not_unbounded_memory() {
        let mut parser = Parser::new().with_max_event_size(64);
        parser.feed(b"data: ");
        assert!(parser.next_event().is_none());
        let mut errors = 0;
        for _ in 0..1000 {
            parser.feed(&[b'x'; 100]);
            while let Some(result) = parser.next_event() {
                assert_eq!(result, Err(ParseError::EventTooLarge { limit: 64 }));
                errors += 1;
            }
            assert!(parser.input.len() <= 100, "holds at most one chunk");
        }
        assert_eq!(errors, 1, "reported once");
        // The rest of the dropped event, then a good one.
        parser.feed(b"xx\ndata: more of the bad event\n\ndata: good\n\n");
        assert_eq!(parser.next_event().unwrap().unwrap().data, "good");
        assert!(parser.next_event().is_none());
    }

    #[test]
    fn too_many_data_lines_is_an_error_and_the_next_event_survives() {
        let mut input = Vec::new();
        for _ in 0..10 {
            input.extend_from_slice(b"data: 0123456789\n");
        }
        input.extend_from_slice(b"\ndata: next\n\n");
        let mut parser = Parser::new().with_max_event_size(50);
        parser.feed(&input);
        assert_eq!(
            parser.next_event(),
            Some(Err(ParseError::EventTooLarge { limit: 50 }))
        );
        assert_eq!(parser.next_event().unwrap().unwrap().data, "next");
        assert!(parser.next_event().is_none());
    }

    #[test]
    fn event_at_the_limit_is_accepted() {
        let mut parser = Parser::new().with_max_event_size(10);
        parser.feed(b"data:12345\n\n"); // the line is exactly 10 bytes
        assert_eq!(parser.next_event().unwrap().unwrap().data, "12345");
    }

    #[test]
    fn split_invariance_of_a_rich_stream() {
        assert_split_invariant(
            b"\xEF\xBB\xBF: hi\r\nevent: a\r\nid: 1\rdata: x\xC3\xA9\ndata\r\n\r\nretry: 5\n\ndata: z\r\r",
        );
    }
}

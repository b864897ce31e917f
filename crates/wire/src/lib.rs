//! The Server-Sent Events wire format: build and encode events, and parse a `text/event-stream`
//! incrementally, following the WHATWG HTML standard ("Server-sent events") to the letter.
//!
//! No I/O and no async: bytes in, events out. The hub encodes with [`Event`]; the client parses
//! with [`Parser`].
//!
//! ```
//! use herald_wire::{Event, Parser};
//!
//! let bytes = Event::new("hello\nworld").with_type("greeting")?.with_id("1")?.encode();
//!
//! let mut parser = Parser::new();
//! parser.feed(&bytes);
//! let event = parser.next_event().expect("one event").expect("well formed");
//! assert_eq!(event.event_type, "greeting");
//! assert_eq!(event.data, "hello\nworld");
//! assert_eq!(event.last_event_id, "1");
//! # Ok::<(), herald_wire::EncodeError>(())
//! ```
//!
//! Also [`redact_url`] and [`redact_text`]: the one redaction of credentials in URLs that the hub,
//! the client and the CLI apply before a URL goes into a log line or an error message.
//!
//! Limits: the parser holds at most [`Parser::max_event_size`] bytes of one event; data line ends
//! are normalised to LF on the way through (the format cannot carry a bare CR in data).

mod event;
mod parser;
mod redact;
mod scan;

pub use event::{EncodeError, Event, check_id, check_type, encode_comment, encode_retry};
pub use parser::{MessageEvent, ParseError, Parser};
pub use redact::{SECRET_QUERY_KEYS, redact_text, redact_url};

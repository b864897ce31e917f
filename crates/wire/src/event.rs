//! Building events and encoding them to `text/event-stream` bytes.
//!
//! An [`Event`] is checked when it is built, so that encoding cannot fail and can never produce a
//! stream that a spec parser reads differently from what was meant:
//!
//! - data is split at every line end (LF, CR or CRLF) into several `data:` lines, because a raw
//!   line end inside a field would end the field early;
//! - an event type or id containing CR or LF is refused ([`EncodeError`]), since it would start a
//!   new field (a field injection);
//! - an id containing NUL is refused, since a spec parser ignores such an id and the receiver would
//!   silently keep the previous one.

use bytes::{BufMut, Bytes, BytesMut};
use std::fmt;

use crate::scan::find_line_end;

/// One server-sent event, ready to encode.
///
/// ```
/// use herald_wire::Event;
///
/// let event = Event::new("line one\nline two").with_type("chat")?.with_id("42")?;
/// assert_eq!(
///     &event.encode()[..],
///     b"id: 42\nevent: chat\ndata: line one\ndata: line two\n\n"
/// );
/// # Ok::<(), herald_wire::EncodeError>(())
/// ```
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Event {
    event_type: Option<String>,
    data: String,
    id: Option<String>,
    retry: Option<u64>,
}

/// Why an [`Event`] could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum EncodeError {
    /// The event type contains CR or LF, which would inject a new field.
    TypeHasLineBreak,
    /// The id contains CR or LF, which would inject a new field.
    IdHasLineBreak,
    /// The id contains NUL; a spec parser ignores such an id.
    IdHasNul,
}

impl fmt::Display for EncodeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::TypeHasLineBreak => "event type must not contain CR or LF",
            Self::IdHasLineBreak => "event id must not contain CR or LF",
            Self::IdHasNul => "event id must not contain NUL",
        })
    }
}

impl std::error::Error for EncodeError {}

impl Event {
    /// An event of the default type (`message`) carrying `data`.
    ///
    /// Data may hold any text, line ends included: each line becomes its own `data:` line, and a
    /// receiver gets the lines back joined with LF (CR and CRLF line ends arrive as LF).
    pub fn new(data: impl Into<String>) -> Self {
        Self {
            data: data.into(),
            ..Self::default()
        }
    }

    /// Sets the event type (the `event:` field), refusing CR and LF.
    pub fn with_type(mut self, event_type: impl Into<String>) -> Result<Self, EncodeError> {
        let event_type = event_type.into();
        check_type(&event_type)?;
        self.event_type = Some(event_type);
        Ok(self)
    }

    /// Sets the event id (the `id:` field), refusing CR, LF and NUL.
    ///
    /// An empty id is allowed: it resets the receiver's last event id.
    pub fn with_id(mut self, id: impl Into<String>) -> Result<Self, EncodeError> {
        let id = id.into();
        check_id(&id)?;
        self.id = Some(id);
        Ok(self)
    }

    /// Sets the reconnection time in milliseconds (the `retry:` field).
    pub fn with_retry(mut self, millis: u64) -> Self {
        self.retry = Some(millis);
        self
    }

    /// The event type, if one was set.
    pub fn event_type(&self) -> Option<&str> {
        self.event_type.as_deref()
    }

    /// The data.
    pub fn data(&self) -> &str {
        &self.data
    }

    /// The id, if one was set.
    pub fn id(&self) -> Option<&str> {
        self.id.as_deref()
    }

    /// The reconnection time in milliseconds, if one was set.
    pub fn retry(&self) -> Option<u64> {
        self.retry
    }

    /// The exact number of bytes [`Event::encode`] produces.
    pub fn encoded_len(&self) -> usize {
        let mut len = 1; // the blank line that dispatches
        if let Some(id) = &self.id {
            len += b"id: \n".len() + id.len();
        }
        if let Some(t) = &self.event_type {
            len += b"event: \n".len() + t.len();
        }
        if let Some(retry) = self.retry {
            len += b"retry: \n".len() + decimal_len(retry);
        }
        for line in Lines::new(self.data.as_bytes()) {
            len += b"data: \n".len() + line.len();
        }
        len
    }

    /// Encodes the event into its `text/event-stream` bytes, ending with the blank line that
    /// dispatches it.
    pub fn encode(&self) -> Bytes {
        let mut buf = BytesMut::with_capacity(self.encoded_len());
        self.write(&mut buf);
        buf.freeze()
    }

    /// Appends the event's `text/event-stream` bytes to `buf`.
    pub fn encode_to(&self, buf: &mut BytesMut) {
        buf.reserve(self.encoded_len());
        self.write(buf);
    }

    fn write(&self, buf: &mut BytesMut) {
        if let Some(id) = &self.id {
            put_field(buf, b"id: ", id.as_bytes());
        }
        if let Some(t) = &self.event_type {
            put_field(buf, b"event: ", t.as_bytes());
        }
        if let Some(retry) = self.retry {
            put_retry(buf, retry);
        }
        // Always at least one data line: an event with an empty data buffer is not dispatched.
        for line in Lines::new(self.data.as_bytes()) {
            put_field(buf, b"data: ", line);
        }
        buf.put_u8(b'\n');
    }
}

/// Encodes a comment: each line of `text` becomes a line starting with `:`, which every parser
/// ignores. Useful as a heartbeat that keeps proxies from closing an idle stream.
///
/// ```
/// assert_eq!(&herald_wire::encode_comment("keep-alive")[..], b": keep-alive\n");
/// ```
pub fn encode_comment(text: &str) -> Bytes {
    let mut buf = BytesMut::with_capacity(text.len() + 3);
    for line in Lines::new(text.as_bytes()) {
        put_field(&mut buf, b": ", line);
    }
    buf.freeze()
}

/// Encodes a lone `retry:` field that sets the receiver's reconnection time.
///
/// It ends with no blank line on purpose: the field takes effect as soon as the line is read, and a
/// blank line would dispatch, which copies the stream's last event id buffer to the last event id.
/// Read to the letter, the spec starts that buffer empty on each stream, so a parser that follows
/// the letter (unlike browsers and [`crate::Parser`]) and resumed with `Last-Event-ID` would
/// forget its position. The same holds for heartbeats: send a comment line ([`encode_comment`]),
/// not a comment and a blank line.
///
/// ```
/// assert_eq!(&herald_wire::encode_retry(2500)[..], b"retry: 2500\n");
/// ```
pub fn encode_retry(millis: u64) -> Bytes {
    let mut buf = BytesMut::with_capacity(b"retry: \n".len() + decimal_len(millis));
    put_retry(&mut buf, millis);
    buf.freeze()
}

/// Refuses an event type that would inject a field.
pub fn check_type(event_type: &str) -> Result<(), EncodeError> {
    if event_type.bytes().any(|b| b == b'\r' || b == b'\n') {
        return Err(EncodeError::TypeHasLineBreak);
    }
    Ok(())
}

/// Refuses an id that would inject a field or that a parser would ignore.
pub fn check_id(id: &str) -> Result<(), EncodeError> {
    for b in id.bytes() {
        match b {
            b'\r' | b'\n' => return Err(EncodeError::IdHasLineBreak),
            0 => return Err(EncodeError::IdHasNul),
            _ => {}
        }
    }
    Ok(())
}

fn put_field(buf: &mut BytesMut, name: &[u8], value: &[u8]) {
    buf.put_slice(name);
    buf.put_slice(value);
    buf.put_u8(b'\n');
}

fn put_retry(buf: &mut BytesMut, millis: u64) {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = millis;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    put_field(buf, b"retry: ", &digits[at..]);
}

fn decimal_len(mut n: u64) -> usize {
    let mut len = 1;
    while n >= 10 {
        n /= 10;
        len += 1;
    }
    len
}

/// The lines of a text split at LF, CR and CRLF. An empty text is one empty line, and a text ending
/// in a line end has an empty last line, so that joining the lines with LF gives the text back
/// (with its line ends made LF).
struct Lines<'a> {
    rest: Option<&'a [u8]>,
}

impl<'a> Lines<'a> {
    fn new(text: &'a [u8]) -> Self {
        Self { rest: Some(text) }
    }
}

impl<'a> Iterator for Lines<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        let rest = self.rest?;
        match find_line_end(rest) {
            None => {
                self.rest = None;
                Some(rest)
            }
            Some(end) => {
                let skip = if rest[end] == b'\r' && rest.get(end + 1) == Some(&b'\n') {
                    2
                } else {
                    1
                };
                self.rest = Some(&rest[end + skip..]);
                Some(&rest[..end])
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encoded(event: &Event) -> String {
        let bytes = event.encode();
        assert_eq!(bytes.len(), event.encoded_len(), "encoded_len is exact");
        String::from_utf8(bytes.to_vec()).unwrap()
    }

    #[test]
    fn plain_data() {
        assert_eq!(encoded(&Event::new("hello")), "data: hello\n\n");
    }

    #[test]
    fn empty_data_still_dispatches() {
        assert_eq!(encoded(&Event::new("")), "data: \n\n");
    }

    #[test]
    fn every_line_end_kind_becomes_a_data_line() {
        assert_eq!(
            encoded(&Event::new("a\nb\rc\r\nd")),
            "data: a\ndata: b\ndata: c\ndata: d\n\n"
        );
    }

    #[test]
    fn trailing_and_consecutive_line_ends_keep_empty_lines() {
        assert_eq!(encoded(&Event::new("a\n\n")), "data: a\ndata: \ndata: \n\n");
        assert_eq!(encoded(&Event::new("\r\r\n")), "data: \ndata: \ndata: \n\n");
    }

    #[test]
    fn leading_space_survives_because_one_space_is_always_written() {
        assert_eq!(encoded(&Event::new(" x")), "data:  x\n\n");
    }

    #[test]
    fn all_fields_in_order() {
        let event = Event::new("d")
            .with_type("t")
            .unwrap()
            .with_id("7")
            .unwrap()
            .with_retry(1500);
        assert_eq!(encoded(&event), "id: 7\nevent: t\nretry: 1500\ndata: d\n\n");
        assert_eq!(event.event_type(), Some("t"));
        assert_eq!(event.id(), Some("7"));
        assert_eq!(event.retry(), Some(1500));
        assert_eq!(event.data(), "d");
    }

    #[test]
    fn empty_id_is_allowed_and_written() {
        assert_eq!(
            encoded(&Event::new("x").with_id("").unwrap()),
            "id: \ndata: x\n\n"
        );
    }

    #[test]
    fn type_with_line_break_is_refused() {
        for bad in ["a\nb", "a\rb", "\r\n", "x\n"] {
            assert_eq!(
                Event::new("x").with_type(bad),
                Err(EncodeError::TypeHasLineBreak)
            );
        }
    }

    #[test]
    fn id_with_line_break_or_nul_is_refused() {
        assert_eq!(
            Event::new("x").with_id("1\n2"),
            Err(EncodeError::IdHasLineBreak)
        );
        assert_eq!(
            Event::new("x").with_id("1\r"),
            Err(EncodeError::IdHasLineBreak)
        );
        assert_eq!(Event::new("x").with_id("1\0"), Err(EncodeError::IdHasNul));
    }

    #[test]
    fn nul_in_type_and_data_is_fine() {
        assert_eq!(
            encoded(&Event::new("a\0b").with_type("t\0").unwrap()),
            "event: t\0\ndata: a\0b\n\n"
        );
    }

    #[test]
    fn retry_extremes() {
        assert_eq!(&encode_retry(0)[..], b"retry: 0\n");
        assert_eq!(
            &encode_retry(u64::MAX)[..],
            b"retry: 18446744073709551615\n"
        );
        let event = Event::new("").with_retry(u64::MAX);
        assert_eq!(event.encode().len(), event.encoded_len());
    }

    #[test]
    fn multi_line_comment() {
        assert_eq!(&encode_comment("a\r\nb")[..], b": a\n: b\n");
        assert_eq!(&encode_comment("")[..], b": \n");
    }

    #[test]
    fn encode_to_appends() {
        let mut buf = BytesMut::from(&b"x"[..]);
        Event::new("y").encode_to(&mut buf);
        assert_eq!(&buf[..], b"xdata: y\n\n");
    }
}

//! The on-disk form of a stored event (the value under its id in the embedded store): compact,
//! hand-written, and versioned by its first byte so that a later herald can still read it.
//!
//! Version 1:
//!
//! | field    | bytes                                   | present when     |
//! |----------|-----------------------------------------|------------------|
//! | version  | `1`                                     | always           |
//! | flags    | bit 0 private, 1 type, 2 retry, 3 key   | always           |
//! | retry    | LEB128 varint                           | flag bit 2       |
//! | topic    | varint length, UTF-8                    | always           |
//! | type     | varint length, UTF-8                    | flag bit 1       |
//! | key      | varint length, UTF-8 (idempotency key)  | flag bit 3       |
//! | data     | UTF-8, the rest of the record           | always           |
//!
//! The idempotency key is kept with the event so that retention can forget the key with it.
//! Records come from disk: decoding checks every length and every string, and fails with a
//! [`CorruptRecord`] rather than panicking.

use super::EventId;
use super::StoredEvent;

/// The version byte this herald writes.
const VERSION: u8 = 1;

const PRIVATE: u8 = 1 << 0;
const HAS_TYPE: u8 = 1 << 1;
const HAS_RETRY: u8 = 1 << 2;
const HAS_KEY: u8 = 1 << 3;
const KNOWN_FLAGS: u8 = PRIVATE | HAS_TYPE | HAS_RETRY | HAS_KEY;

/// A record that is not a valid version-1 event.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("corrupt event record: {0}")]
pub(crate) struct CorruptRecord(&'static str);

/// The fields of a stored event, borrowed, for encoding.
pub(crate) struct Record<'a> {
    pub(crate) topic: &'a str,
    pub(crate) event_type: Option<&'a str>,
    pub(crate) data: &'a str,
    pub(crate) retry: Option<u64>,
    pub(crate) private: bool,
    pub(crate) key: Option<&'a str>,
}

impl Record<'_> {
    /// The record's bytes.
    pub(crate) fn encode(&self) -> Vec<u8> {
        let strings = self.topic.len()
            + self.event_type.map_or(0, str::len)
            + self.key.map_or(0, str::len)
            + self.data.len();
        // Two header bytes, at most four varints of ten bytes each.
        let mut out = Vec::with_capacity(2 + 40 + strings);
        let mut flags = 0;
        if self.private {
            flags |= PRIVATE;
        }
        if self.event_type.is_some() {
            flags |= HAS_TYPE;
        }
        if self.retry.is_some() {
            flags |= HAS_RETRY;
        }
        if self.key.is_some() {
            flags |= HAS_KEY;
        }
        out.push(VERSION);
        out.push(flags);
        if let Some(retry) = self.retry {
            put_varint(&mut out, retry);
        }
        put_str(&mut out, self.topic);
        if let Some(event_type) = self.event_type {
            put_str(&mut out, event_type);
        }
        if let Some(key) = self.key {
            put_str(&mut out, key);
        }
        out.extend_from_slice(self.data.as_bytes());
        out
    }
}

/// A decoded record: the event, and its idempotency key if it had one.
#[derive(Debug, PartialEq, Eq)]
pub(crate) struct Decoded {
    pub(crate) event: StoredEvent,
    pub(crate) key: Option<String>,
}

/// Decodes the record stored under `id`.
pub(crate) fn decode(id: EventId, bytes: &[u8]) -> Result<Decoded, CorruptRecord> {
    let mut input = Reader(bytes);
    let version = input.byte()?;
    if version != VERSION {
        return Err(CorruptRecord("unknown version"));
    }
    let flags = input.byte()?;
    if flags & !KNOWN_FLAGS != 0 {
        return Err(CorruptRecord("unknown flags"));
    }
    let retry = if flags & HAS_RETRY != 0 {
        Some(input.varint()?)
    } else {
        None
    };
    let topic = input.string()?;
    let event_type = if flags & HAS_TYPE != 0 {
        Some(input.string()?)
    } else {
        None
    };
    let key = if flags & HAS_KEY != 0 {
        Some(input.string()?)
    } else {
        None
    };
    let data = String::from_utf8(input.0.to_vec()).map_err(|_| CorruptRecord("data not UTF-8"))?;
    Ok(Decoded {
        event: StoredEvent {
            id,
            topic,
            event_type,
            data,
            retry,
            private: flags & PRIVATE != 0,
        },
        key,
    })
}

/// Only the topic and idempotency key of a record, if it has a key: what retention needs to
/// forget the key with its event, without copying the data.
pub(crate) fn decode_key(bytes: &[u8]) -> Result<Option<(String, String)>, CorruptRecord> {
    let mut input = Reader(bytes);
    if input.byte()? != VERSION {
        return Err(CorruptRecord("unknown version"));
    }
    let flags = input.byte()?;
    if flags & HAS_KEY == 0 {
        return Ok(None);
    }
    if flags & HAS_RETRY != 0 {
        input.varint()?;
    }
    let topic = input.string()?;
    if flags & HAS_TYPE != 0 {
        input.bytes()?;
    }
    Ok(Some((topic, input.string()?)))
}

fn put_varint(out: &mut Vec<u8>, mut value: u64) {
    while value >= 0x80 {
        // Truncation intended: the low seven bits, with the continuation bit set.
        out.push((value as u8 & 0x7f) | 0x80);
        value >>= 7;
    }
    out.push(value as u8);
}

fn put_str(out: &mut Vec<u8>, s: &str) {
    put_varint(out, s.len() as u64);
    out.extend_from_slice(s.as_bytes());
}

/// A cursor over a record's bytes.
struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn byte(&mut self) -> Result<u8, CorruptRecord> {
        let (&first, rest) = self.0.split_first().ok_or(CorruptRecord("truncated"))?;
        self.0 = rest;
        Ok(first)
    }

    fn varint(&mut self) -> Result<u64, CorruptRecord> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = self.byte()?;
            let bits = u64::from(byte & 0x7f);
            if shift == 63 && bits > 1 {
                return Err(CorruptRecord("varint overflows u64"));
            }
            value |= bits << shift;
            if byte & 0x80 == 0 {
                return Ok(value);
            }
        }
        Err(CorruptRecord("varint too long"))
    }

    fn bytes(&mut self) -> Result<&'a [u8], CorruptRecord> {
        let len = usize::try_from(self.varint()?).map_err(|_| CorruptRecord("length too large"))?;
        if len > self.0.len() {
            return Err(CorruptRecord("length past the end"));
        }
        let (field, rest) = self.0.split_at(len);
        self.0 = rest;
        Ok(field)
    }

    fn string(&mut self) -> Result<String, CorruptRecord> {
        let bytes = self.bytes()?;
        String::from_utf8(bytes.to_vec()).map_err(|_| CorruptRecord("string not UTF-8"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ID: EventId = EventId::new(1_700_000_000_000, 7);

    fn full() -> Record<'static> {
        Record {
            topic: "chat/ünï",
            event_type: Some("update"),
            data: "line 1\nline 2\0",
            retry: Some(3000),
            private: true,
            key: Some("req-1"),
        }
    }

    #[test]
    fn round_trips_every_field_combination() {
        for bits in 0..16u8 {
            let record = Record {
                topic: "t",
                event_type: (bits & 1 != 0).then_some(""),
                data: "",
                retry: (bits & 2 != 0).then_some(u64::MAX),
                private: bits & 4 != 0,
                key: (bits & 8 != 0).then_some("k"),
            };
            let bytes = record.encode();
            let decoded = decode(ID, &bytes).unwrap();
            assert_eq!(decoded.event.event_type.as_deref(), record.event_type);
            assert_eq!(decoded.event.retry, record.retry);
            assert_eq!(decoded.event.private, record.private);
            assert_eq!(decoded.key.as_deref(), record.key);
            let topic_key = decode_key(&bytes).unwrap();
            assert_eq!(
                topic_key,
                record.key.map(|k| ("t".to_owned(), k.to_owned()))
            );
        }
    }

    #[test]
    fn encodes_byte_exact() {
        let bytes = full().encode();
        let mut expected = vec![1, 0b1111, 0xb8, 0x17, 10];
        expected.extend_from_slice("chat/ünï".as_bytes());
        expected.push(6);
        expected.extend_from_slice(b"update");
        expected.push(5);
        expected.extend_from_slice(b"req-1");
        expected.extend_from_slice(b"line 1\nline 2\0");
        assert_eq!(bytes, expected);
        let decoded = decode(ID, &bytes).unwrap();
        assert_eq!(
            decoded.event,
            StoredEvent {
                id: ID,
                topic: "chat/ünï".into(),
                event_type: Some("update".into()),
                data: "line 1\nline 2\0".into(),
                retry: Some(3000),
                private: true,
            }
        );
    }

    #[test]
    fn varints_round_trip_at_the_edges() {
        for value in [
            0,
            1,
            127,
            128,
            16_383,
            16_384,
            u64::from(u32::MAX),
            u64::MAX - 1,
            u64::MAX,
        ] {
            let mut out = Vec::new();
            put_varint(&mut out, value);
            assert_eq!(Reader(&out).varint(), Ok(value), "{value}");
        }
        // Eleven bytes, or a tenth byte with more than the one bit left: not a u64.
        let too_long = [0xff; 11];
        assert!(Reader(&too_long).varint().is_err());
        let overflow = [0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x02];
        assert!(Reader(&overflow).varint().is_err());
    }

    #[test]
    fn refuses_malformed_records() {
        let good = full().encode();
        let cases: [(&str, Vec<u8>); 6] = [
            ("empty", vec![]),
            ("unknown version", [&[2u8][..], &good[1..]].concat()),
            ("unknown flags", [&[1u8, 0x10][..], &good[2..]].concat()),
            ("length past the end", vec![1, 0, 5, b'a']),
            ("topic not UTF-8", vec![1, 0, 1, 0xff]),
            ("data not UTF-8", vec![1, 0, 0, 0xc3]),
        ];
        for (what, bytes) in cases {
            assert!(decode(ID, &bytes).is_err(), "{what}");
        }
    }

    #[test]
    fn truncated_or_flipped_records_never_panic() {
        let good = full().encode();
        // Cut inside the header or a length-prefixed field: always an error (the data is the
        // rest of the record, so only cuts inside it can still decode).
        let data_start = good.len() - full().data.len();
        for cut in 0..data_start {
            assert!(decode(ID, &good[..cut]).is_err(), "cut at {cut}");
            assert!(decode_key(&good[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..good.len() {
            for bit in 0..8 {
                let mut bad = good.clone();
                bad[at] ^= 1 << bit;
                // Flipped bits may still decode; then both decoders must agree on the key.
                if let Ok(decoded) = decode(ID, &bad) {
                    let expected = decoded.key.map(|k| (decoded.event.topic, k));
                    assert_eq!(decode_key(&bad), Ok(expected), "bit {bit} of byte {at}");
                }
            }
        }
    }
}

//! `application/x-www-form-urlencoded` decoding (bodies and query strings), strict about what the
//! hub must refuse: a bad `%` escape or a value that is not UTF-8 is an error, never replaced.

/// Why a form or query string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum FormError {
    #[error("malformed percent-escape in form or query string")]
    BadEscape,
    #[error("form or query string is not valid UTF-8")]
    NotUtf8,
}

fn hex(b: u8) -> Option<u8> {
    match b {
        b'0'..=b'9' => Some(b - b'0'),
        b'a'..=b'f' => Some(b - b'a' + 10),
        b'A'..=b'F' => Some(b - b'A' + 10),
        _ => None,
    }
}

fn decode(part: &[u8]) -> Result<String, FormError> {
    let mut out = Vec::with_capacity(part.len());
    let mut i = 0;
    while i < part.len() {
        match part[i] {
            b'+' => out.push(b' '),
            b'%' => {
                let hi = part.get(i + 1).copied().and_then(hex);
                let lo = part.get(i + 2).copied().and_then(hex);
                let (Some(hi), Some(lo)) = (hi, lo) else {
                    return Err(FormError::BadEscape);
                };
                out.push(hi << 4 | lo);
                i += 2;
            }
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8(out).map_err(|_| FormError::NotUtf8)
}

/// The name/value pairs of a form body or query string, in order (empty pieces skipped).
pub(crate) fn parse(input: &[u8]) -> Result<Vec<(String, String)>, FormError> {
    input
        .split(|&b| b == b'&')
        .filter(|piece| !piece.is_empty())
        .map(|piece| {
            let (name, value) = match piece.iter().position(|&b| b == b'=') {
                Some(eq) => (&piece[..eq], &piece[eq + 1..]),
                None => (piece, &b""[..]),
            };
            Ok((decode(name)?, decode(value)?))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pairs(v: &[(&str, &str)]) -> Vec<(String, String)> {
        v.iter()
            .map(|(a, b)| (a.to_string(), b.to_string()))
            .collect()
    }

    #[test]
    fn decodes_pairs() {
        assert_eq!(
            parse(b"topic=chat%2Flobby&data=hello+world&&flag&topic=a").unwrap(),
            pairs(&[
                ("topic", "chat/lobby"),
                ("data", "hello world"),
                ("flag", ""),
                ("topic", "a")
            ])
        );
        assert_eq!(parse(b"").unwrap(), pairs(&[]));
        assert_eq!(parse(b"a=%C3%A9").unwrap(), pairs(&[("a", "é")]));
        assert_eq!(parse(b"a=1=2").unwrap(), pairs(&[("a", "1=2")]));
    }

    #[test]
    fn refuses_bad_escapes_and_invalid_utf8() {
        for bad in [&b"a=%"[..], b"a=%4", b"a=%zz", b"%g0=1"] {
            assert_eq!(parse(bad), Err(FormError::BadEscape), "{bad:?}");
        }
        for bad in [&b"a=%FF"[..], b"a=\xff", b"\xc3=1", b"a=%C3"] {
            assert_eq!(parse(bad), Err(FormError::NotUtf8), "{bad:?}");
        }
    }
}

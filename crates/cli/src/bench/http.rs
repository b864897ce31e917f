//! A deliberately small HTTP/1.1 client for the load generator: loopback targets only, a
//! hand-written request, a response head reader and an incremental body decoder (chunked,
//! content-length or close-delimited).
//!
//! Why not hyper: each of 10,000+ subscribers must cost as little memory as possible in the
//! harness, so that the harness measures the server rather than itself. A subscriber here is one
//! task, one socket and the SSE parser; reads go through a stack buffer that is not held across
//! an await.

use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};

use anyhow::{Context, bail};
use tokio::io::AsyncWriteExt;
use tokio::net::{TcpSocket, TcpStream};

/// Largest response head (status line and headers) accepted: far above what any SSE server
/// sends, small enough that a hostile server cannot grow the harness.
pub(crate) const MAX_HEAD_SIZE: usize = 16 * 1024;

/// Largest chunk-size line (hex digits plus extensions) accepted in a chunked body.
const MAX_CHUNK_LINE: usize = 4096;

/// Largest trailer section accepted after the last chunk.
const MAX_TRAILER_SIZE: usize = 16 * 1024;

/// The source addresses connections are spread over (127.0.0.1 to 127.0.0.50), so that more
/// connections than one address has ephemeral ports can be opened to one server port.
const SOURCE_ADDRESSES: u8 = 50;

/// A loopback HTTP URL, resolved once.
#[derive(Clone, Debug)]
pub(crate) struct Target {
    /// The server's socket address (always loopback).
    pub(crate) addr: SocketAddr,
    /// The `Host` header value, as written in the URL.
    pub(crate) host: String,
    /// Path and query, e.g. `/events?topic=bench`.
    pub(crate) path: String,
}

impl Target {
    /// Parses `http://HOST[:PORT][/PATH]` where HOST is `localhost`, an IPv4 address in
    /// 127.0.0.0/8 or `[::1]`. Anything else is refused: the tool is a load generator and must
    /// never be pointed at somebody else's machine by mistake.
    pub(crate) fn parse(url: &str) -> anyhow::Result<Self> {
        let rest = match url.split_once("://") {
            Some((scheme, rest)) if scheme.eq_ignore_ascii_case("http") => rest,
            Some((scheme, _)) => bail!(
                "unsupported scheme `{scheme}` in `{url}`: only http:// (loopback) is supported"
            ),
            None => bail!("`{url}` is not a URL: expected http://127.0.0.1:PORT/PATH"),
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(i) if rest.as_bytes()[i] == b'/' => (&rest[..i], rest[i..].to_owned()),
            Some(i) => (&rest[..i], format!("/{}", &rest[i..])),
            None => (rest, "/".to_owned()),
        };
        if authority.contains('@') {
            bail!("`{url}`: credentials in the URL are not supported (use --header)");
        }
        if path.bytes().any(|b| b.is_ascii_control() || b == b' ') {
            bail!("`{url}`: the path contains spaces or control characters");
        }
        let (host, port) = split_host_port(authority).with_context(|| format!("`{url}`"))?;
        let ip: IpAddr = if host.eq_ignore_ascii_case("localhost") {
            IpAddr::V4(Ipv4Addr::LOCALHOST)
        } else {
            let literal = host.trim_start_matches('[').trim_end_matches(']');
            literal.parse().map_err(|_| {
                anyhow::anyhow!(
                    "`{url}`: host `{host}` is not loopback; herald bench only targets \
                     127.0.0.0/8, ::1 or localhost"
                )
            })?
        };
        if !ip.is_loopback() {
            bail!(
                "`{url}`: host `{host}` is not loopback; herald bench only targets 127.0.0.0/8, \
                 ::1 or localhost"
            );
        }
        Ok(Self {
            addr: SocketAddr::new(ip, port),
            host: authority.to_owned(),
            path,
        })
    }
}

fn split_host_port(authority: &str) -> anyhow::Result<(&str, u16)> {
    if authority.is_empty() {
        bail!("no host");
    }
    // `[::1]:8080`, `[::1]`, `host:8080`, `host`.
    let (host, port) = if let Some(end) = authority.find(']') {
        let (host, after) = authority.split_at(end + 1);
        match after.strip_prefix(':') {
            Some(port) => (host, Some(port)),
            None if after.is_empty() => (host, None),
            None => bail!("bad authority `{authority}`"),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    let port = match port {
        Some(p) => p
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .with_context(|| format!("bad port `{p}`"))?,
        None => 80,
    };
    Ok((host, port))
}

/// Opens a TCP connection to `target`; connection number `index` is bound to source address
/// 127.0.0.(1 + index % 50) first when the target is IPv4, so that each source address has its
/// own ephemeral port range.
pub(crate) async fn connect(target: &Target, index: usize) -> io::Result<TcpStream> {
    let stream = match target.addr {
        SocketAddr::V4(_) => {
            let socket = TcpSocket::new_v4()?;
            // `index % 50` is below 50, so the cast cannot truncate.
            let last = 1 + (index % usize::from(SOURCE_ADDRESSES)) as u8;
            socket.bind(SocketAddr::new(Ipv4Addr::new(127, 0, 0, last).into(), 0))?;
            socket.connect(target.addr).await?
        }
        SocketAddr::V6(_) => TcpStream::connect(target.addr).await?,
    };
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// Writes a `GET` request for an event stream.
pub(crate) async fn send_get(
    stream: &mut TcpStream,
    target: &Target,
    headers: &[String],
) -> io::Result<()> {
    let mut req = format!(
        "GET {} HTTP/1.1\r\nHost: {}\r\nAccept: text/event-stream\r\nCache-Control: no-cache\r\n",
        target.path, target.host
    );
    for h in headers {
        req.push_str(h);
        req.push_str("\r\n");
    }
    req.push_str("\r\n");
    stream.write_all(req.as_bytes()).await
}

/// The head of a response, once its blank line has arrived.
#[derive(Debug)]
pub(crate) struct ResponseHead {
    /// The status code.
    pub(crate) status: u16,
    /// The value of `Content-Type`, when present.
    pub(crate) content_type: Option<String>,
    /// How the body is delimited.
    pub(crate) body: BodyKind,
    /// Whether the server asked to close the connection after this response.
    pub(crate) close: bool,
}

/// How a response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum BodyKind {
    /// `Transfer-Encoding: chunked`.
    Chunked,
    /// `Content-Length: n`.
    Length(u64),
    /// Neither: the body runs until the server closes the connection.
    Close,
}

/// Finds the end of the head in `buf` (the index just past its blank line), if it is complete.
pub(crate) fn head_end(buf: &[u8]) -> Option<usize> {
    let mut i = 0;
    while let Some(off) = buf[i..].iter().position(|&b| b == b'\n') {
        let nl = i + off;
        // A blank line is LF right after LF, or after CRLF.
        if nl >= 1 && buf[nl - 1] == b'\n' {
            return Some(nl + 1);
        }
        if nl >= 2 && buf[nl - 1] == b'\r' && buf[nl - 2] == b'\n' {
            return Some(nl + 1);
        }
        i = nl + 1;
    }
    None
}

/// Parses a complete head (as delimited by [`head_end`]).
pub(crate) fn parse_head(head: &[u8]) -> Result<ResponseHead, String> {
    let text = std::str::from_utf8(head).map_err(|_| "response head is not UTF-8".to_owned())?;
    let mut lines = text.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
    let status_line = lines.next().unwrap_or_default();
    let mut parts = status_line.splitn(3, ' ');
    let version = parts.next().unwrap_or_default();
    if !version.starts_with("HTTP/1.") {
        return Err(format!(
            "not an HTTP/1.x response: `{}`",
            truncate(status_line)
        ));
    }
    let status = parts
        .next()
        .and_then(|s| s.parse::<u16>().ok())
        .filter(|s| (100..=999).contains(s))
        .ok_or_else(|| format!("bad status line `{}`", truncate(status_line)))?;
    let mut content_type = None;
    let mut chunked = false;
    let mut length = None;
    let mut close = version == "HTTP/1.0";
    for line in lines {
        if line.is_empty() {
            break;
        }
        let Some((name, value)) = line.split_once(':') else {
            return Err(format!("bad header line `{}`", truncate(line)));
        };
        let value = value.trim();
        if name.eq_ignore_ascii_case("content-type") {
            content_type = Some(value.to_owned());
        } else if name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value
                .rsplit(',')
                .next()
                .is_some_and(|v| v.trim().eq_ignore_ascii_case("chunked"));
        } else if name.eq_ignore_ascii_case("content-length") {
            let n = value
                .parse::<u64>()
                .map_err(|_| format!("bad Content-Length `{}`", truncate(value)))?;
            if length.is_some_and(|l| l != n) {
                return Err("conflicting Content-Length headers".to_owned());
            }
            length = Some(n);
        } else if name.eq_ignore_ascii_case("connection") {
            close = value
                .split(',')
                .any(|v| v.trim().eq_ignore_ascii_case("close"));
        }
    }
    // RFC 9112 6.3: chunked wins over Content-Length.
    let body = match (chunked, length) {
        (true, _) => BodyKind::Chunked,
        (false, Some(n)) => BodyKind::Length(n),
        (false, None) => BodyKind::Close,
    };
    Ok(ResponseHead {
        status,
        content_type,
        body,
        close,
    })
}

fn truncate(s: &str) -> &str {
    match s.char_indices().nth(80) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// Incremental decoder of a response body: feed it what the socket gives, it hands the body's
/// bytes to a callback without copying them.
///
/// | state | on input | next |
/// |---|---|---|
/// | `Size` | hex digit | `Size` |
/// | `Size` | `;`, space, tab | `Ext` |
/// | `Size`, `Ext` | LF | `Data(n)`, or `Trailer` when n is 0 |
/// | `Data(n)` | n bytes | `DataEnd` |
/// | `DataEnd` | CRLF or LF | `Size` |
/// | `Trailer` | blank line | `Done` |
#[derive(Debug)]
pub(crate) struct BodyDecoder {
    state: State,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Size { value: u64, digits: u8, len: usize },
    Ext { value: u64, len: usize },
    Data(u64),
    DataEnd { saw_cr: bool },
    Trailer { line: usize, total: usize },
    Length(u64),
    Close,
    Done,
}

/// A malformed body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct BodyError(pub(crate) &'static str);

impl std::fmt::Display for BodyError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.0)
    }
}

impl BodyDecoder {
    /// A decoder for a body delimited as `kind`.
    pub(crate) fn new(kind: BodyKind) -> Self {
        let state = match kind {
            BodyKind::Chunked => State::Size {
                value: 0,
                digits: 0,
                len: 0,
            },
            BodyKind::Length(0) => State::Done,
            BodyKind::Length(n) => State::Length(n),
            BodyKind::Close => State::Close,
        };
        Self { state }
    }

    /// Whether the body is complete (the server may not send any more of it).
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Whether the end of the connection is a legitimate end of this body.
    pub(crate) fn ends_at_close(&self) -> bool {
        matches!(self.state, State::Close | State::Done)
    }

    /// Decodes `input`, handing each run of body bytes to `out`. Bytes after the end of the body
    /// are ignored (a pipelined next response is never expected here).
    pub(crate) fn decode(
        &mut self,
        mut input: &[u8],
        out: &mut impl FnMut(&[u8]),
    ) -> Result<(), BodyError> {
        while !input.is_empty() {
            match self.state {
                State::Close => {
                    out(input);
                    return Ok(());
                }
                State::Done => return Ok(()),
                State::Length(rem) | State::Data(rem) => {
                    // `take` is at most `input.len()`, so the cast back cannot truncate.
                    let take = rem.min(input.len() as u64) as usize;
                    out(&input[..take]);
                    input = &input[take..];
                    let rem = rem - take as u64;
                    self.state = match (self.state, rem) {
                        (State::Length(_), 0) => State::Done,
                        (State::Length(_), r) => State::Length(r),
                        (_, 0) => State::DataEnd { saw_cr: false },
                        (_, r) => State::Data(r),
                    };
                }
                State::Size { value, digits, len } => {
                    let b = input[0];
                    input = &input[1..];
                    if len >= MAX_CHUNK_LINE {
                        return Err(BodyError("chunk size line too long"));
                    }
                    self.state = match b {
                        b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                            if digits >= 15 {
                                return Err(BodyError("chunk size too large"));
                            }
                            // The byte is a hex digit, so `to_digit` succeeds.
                            let d = u64::from(char::from(b).to_digit(16).unwrap_or(0));
                            State::Size {
                                value: value * 16 + d,
                                digits: digits + 1,
                                len: len + 1,
                            }
                        }
                        b';' | b' ' | b'\t' | b'\r' | b'\n' if digits == 0 => {
                            return Err(BodyError("chunk size missing"));
                        }
                        b';' | b' ' | b'\t' | b'\r' => State::Ext {
                            value,
                            len: len + 1,
                        },
                        b'\n' => Self::after_size(value),
                        _ => return Err(BodyError("bad chunk size")),
                    };
                }
                State::Ext { value, len } => {
                    let b = input[0];
                    input = &input[1..];
                    if len >= MAX_CHUNK_LINE {
                        return Err(BodyError("chunk size line too long"));
                    }
                    self.state = match b {
                        b'\n' => Self::after_size(value),
                        _ => State::Ext {
                            value,
                            len: len + 1,
                        },
                    };
                }
                State::DataEnd { saw_cr } => {
                    let b = input[0];
                    input = &input[1..];
                    self.state = match (b, saw_cr) {
                        (b'\r', false) => State::DataEnd { saw_cr: true },
                        (b'\n', _) => State::Size {
                            value: 0,
                            digits: 0,
                            len: 0,
                        },
                        _ => return Err(BodyError("chunk data not followed by CRLF")),
                    };
                }
                State::Trailer { line, total } => {
                    let b = input[0];
                    input = &input[1..];
                    if total >= MAX_TRAILER_SIZE {
                        return Err(BodyError("trailers too large"));
                    }
                    self.state = match b {
                        b'\n' if line == 0 => State::Done,
                        b'\n' => State::Trailer {
                            line: 0,
                            total: total + 1,
                        },
                        b'\r' => State::Trailer {
                            line,
                            total: total + 1,
                        },
                        _ => State::Trailer {
                            line: line + 1,
                            total: total + 1,
                        },
                    };
                }
            }
        }
        Ok(())
    }

    fn after_size(value: u64) -> State {
        if value == 0 {
            State::Trailer { line: 0, total: 0 }
        } else {
            State::Data(value)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(
        kind: BodyKind,
        input: &[u8],
        split: usize,
    ) -> (Result<(), BodyError>, Vec<u8>, bool) {
        let mut d = BodyDecoder::new(kind);
        let mut out = Vec::new();
        let (a, b) = input.split_at(split);
        let mut r = d.decode(a, &mut |s| out.extend_from_slice(s));
        if r.is_ok() {
            r = d.decode(b, &mut |s| out.extend_from_slice(s));
        }
        (r, out, d.is_done())
    }

    #[test]
    fn chunked_body_decodes_identically_at_every_split() {
        let input = b"5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\nX-Trailer: 1\r\n\r\nGARBAGE";
        for split in 0..=input.len() {
            let (r, out, done) = decode_all(BodyKind::Chunked, input, split);
            assert_eq!(r, Ok(()), "split {split}");
            assert_eq!(out, b"hello, world", "split {split}");
            assert!(done, "split {split}");
        }
    }

    #[test]
    fn chunked_accepts_bare_lf_and_uppercase_hex() {
        let (r, out, done) = decode_all(BodyKind::Chunked, b"A\nabcdefghij\n0\n\n", 3);
        assert_eq!(r, Ok(()));
        assert_eq!(out, b"abcdefghij");
        assert!(done);
    }

    #[test]
    fn chunked_rejects_malformed_input() {
        for bad in [
            &b"zz\r\n"[..],
            b"\r\n",
            b"5\r\nhelloXX",
            b"1234567890abcdef0\r\n",
        ] {
            let (r, _, _) = decode_all(BodyKind::Chunked, bad, 0);
            assert!(r.is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
        let long_ext = [b"1;".as_slice(), &[b'x'; MAX_CHUNK_LINE + 1]].concat();
        assert_eq!(
            decode_all(BodyKind::Chunked, &long_ext, 0).0,
            Err(BodyError("chunk size line too long"))
        );
        let long_trailer = [b"0\r\n".as_slice(), &[b'x'; MAX_TRAILER_SIZE + 1]].concat();
        assert_eq!(
            decode_all(BodyKind::Chunked, &long_trailer, 0).0,
            Err(BodyError("trailers too large"))
        );
    }

    #[test]
    fn length_and_close_bodies() {
        let (r, out, done) = decode_all(BodyKind::Length(3), b"abcdef", 1);
        assert_eq!((r, out.as_slice(), done), (Ok(()), &b"abc"[..], true));
        let (r, out, done) = decode_all(BodyKind::Close, b"abcdef", 2);
        assert_eq!((r, out.as_slice(), done), (Ok(()), &b"abcdef"[..], false));
        assert!(BodyDecoder::new(BodyKind::Length(0)).is_done());
    }

    #[test]
    fn head_parsing() {
        let raw = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\nrest";
        let end = head_end(raw).expect("complete head");
        assert_eq!(&raw[end..], b"rest");
        let head = parse_head(&raw[..end]).expect("valid head");
        assert_eq!(head.status, 200);
        assert_eq!(head.content_type.as_deref(), Some("text/event-stream"));
        assert_eq!(head.body, BodyKind::Chunked);
        assert!(!head.close);

        let head = parse_head(b"HTTP/1.0 404 Not Found\nContent-Length: 3\n\n").expect("valid");
        assert_eq!(
            (head.status, head.body, head.close),
            (404, BodyKind::Length(3), true)
        );
        assert_eq!(head_end(b"HTTP/1.1 200 OK\r\nA: b\r\n"), None);
        assert_eq!(head_end(b"HTTP/1.1 200 OK\n\n"), Some(17));

        for bad in [
            &b"SSH-2.0-OpenSSH\r\n\r\n"[..],
            b"HTTP/1.1 abc OK\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nno colon\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: -1\r\n\r\n",
            b"HTTP/1.1 200 OK\r\nContent-Length: 1\r\nContent-Length: 2\r\n\r\n",
            b"HTTP/1.1 200 \xff\r\n\r\n",
        ] {
            assert!(
                parse_head(bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
    }

    #[test]
    fn targets_must_be_loopback_http() {
        let t = Target::parse("http://127.0.0.1:8080/events?topic=a").expect("valid");
        assert_eq!(t.addr, "127.0.0.1:8080".parse().expect("addr"));
        assert_eq!(
            (t.host.as_str(), t.path.as_str()),
            ("127.0.0.1:8080", "/events?topic=a")
        );
        let t = Target::parse("http://localhost?x=1").expect("valid");
        assert_eq!((t.addr.port(), t.path.as_str()), (80, "/?x=1"));
        let t = Target::parse("http://[::1]:9/").expect("valid");
        assert!(t.addr.is_ipv6());
        let t = Target::parse("http://127.3.2.1:9").expect("valid");
        assert_eq!(t.path, "/");

        for bad in [
            "http://10.0.0.1:80/",
            "http://example.com/",
            "https://127.0.0.1/",
            "127.0.0.1:80",
            "http://127.0.0.1:0/",
            "http://127.0.0.1:99999/",
            "http://user@127.0.0.1/",
            "http://[::2]:80/",
            "http:///path",
            "http://127.0.0.1/a b",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
        let err = Target::parse("http://192.168.1.1:3000/events").expect_err("refused");
        assert!(err.to_string().contains("not loopback"), "{err}");
    }
}

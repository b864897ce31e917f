//! Test support for herald's suites: a scripted HTTP/1.1 server on a real socket that answers
//! each connection with a crafted byte stream, and records what each client sent.
//!
//! ```
//! use herald_testkit::{Response, ScriptedServer};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() {
//! let server = ScriptedServer::start([
//!     Response::sse().chunk("data: hel").chunk("lo\n\n"),     // first connection
//!     Response::status(503).header("Retry-After", "1"),      // second connection
//! ])
//! .await;
//! let url = server.url("/events");
//! // ... point a client at `url`, then:
//! // let requests = server.wait_for_requests(2).await;
//! // assert_eq!(requests[1].header("last-event-id"), Some("7"));
//! # drop(url); }
//! ```
//!
//! The server speaks just enough HTTP/1.1 by hand to control every byte: each connection takes
//! the next [`Response`] of the script, and once the script is used up every connection gets a
//! `204 No Content` (which makes an EventSource stop). Every response carries
//! `Connection: close`, so one connection serves one request.

pub mod netns;
pub mod redis;

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::time::Instant;

/// The largest request head the server reads: 64 KiB, above any header set a test sends.
pub const MAX_HEAD: usize = 64 * 1024;

/// The largest request body the server records: 1 MiB, herald's publish limit.
pub const MAX_BODY: usize = 1024 * 1024;

/// The pause between two written pieces of a response, so that the client's reads really end
/// where the script splits (loopback would otherwise coalesce them). Correctness of a test never
/// depends on it.
pub const SPLIT_PAUSE: Duration = Duration::from_millis(2);

/// How long [`ScriptedServer::wait_for`] waits before failing the test: generous, for a loaded
/// machine. It is a safety net, not a synchronisation.
pub const WAIT_LIMIT: Duration = Duration::from_secs(30);

/// A free TCP port on 127.0.0.1 (bound, read, released). Another process may take it before you
/// do; prefer binding port 0 yourself when you can pass a listener.
pub fn free_port() -> u16 {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).expect("bind 127.0.0.1:0");
    listener.local_addr().expect("local address").port()
}

/// How a response body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// `Transfer-Encoding: chunked`; each piece of the script is one chunk.
    Chunked,
    /// No length: the body ends when the server closes the connection.
    CloseDelimited,
    /// `Content-Length` of all the pieces.
    Length,
}

/// What the server does once the pieces of a response are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum End {
    /// End the body properly (last chunk when chunked) and close.
    Close,
    /// Write nothing more and keep the connection open until the client goes away (a stall).
    Hold,
    /// Close the socket without ending the body (a broken stream when chunked or sized).
    Abort,
}

#[derive(Clone, Debug)]
enum Step {
    Send(Bytes),
    Pause(Duration),
}

/// The answer to one connection: status, headers, then the body written piece by piece.
#[derive(Clone, Debug)]
pub struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    framing: Framing,
    steps: Vec<Step>,
    end: End,
    /// Write the pieces as they are, with no status line or headers of the server's own.
    raw: bool,
}

impl Response {
    /// `200` with `Content-Type: text/event-stream`, chunked, no body yet.
    pub fn sse() -> Self {
        Self::status(200).header("Content-Type", "text/event-stream")
    }

    /// A response with this status, no headers (but `Connection: close`) and an empty body.
    pub fn status(status: u16) -> Self {
        Self {
            status,
            headers: Vec::new(),
            framing: Framing::Chunked,
            steps: Vec::new(),
            end: End::Close,
            raw: false,
        }
    }

    /// A response written entirely by the script, head included (for malformed HTTP): only the
    /// pieces are sent, as they are, then the connection is closed (or held).
    pub fn raw() -> Self {
        Self {
            raw: true,
            ..Self::status(200).framing(Framing::CloseDelimited)
        }
    }

    /// A JSON answer with a `Content-Length`.
    pub fn json(status: u16, body: impl Into<String>) -> Self {
        Self::status(status)
            .header("Content-Type", "application/json")
            .framing(Framing::Length)
            .chunk(body.into())
    }

    /// Adds a header.
    pub fn header(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Sets the body framing (default: chunked).
    pub fn framing(mut self, framing: Framing) -> Self {
        self.framing = framing;
        self
    }

    /// Appends a piece of body, written (and flushed) on its own.
    pub fn chunk(mut self, bytes: impl Into<Bytes>) -> Self {
        self.steps.push(Step::Send(bytes.into()));
        self
    }

    /// Appends `bytes` cut at each of `cuts` (offsets, ascending) into pieces.
    pub fn split(mut self, bytes: &[u8], cuts: &[usize]) -> Self {
        let mut start = 0;
        for &cut in cuts.iter().chain([bytes.len()].iter()) {
            if cut > start {
                self = self.chunk(Bytes::copy_from_slice(&bytes[start..cut]));
                start = cut;
            }
        }
        self
    }

    /// Appends `bytes` as pieces of `size` bytes each.
    pub fn pieces(self, bytes: &[u8], size: usize) -> Self {
        let cuts: Vec<usize> = (size.max(1)..bytes.len()).step_by(size.max(1)).collect();
        self.split(bytes, &cuts)
    }

    /// Waits this long before the next piece.
    pub fn pause(mut self, delay: Duration) -> Self {
        self.steps.push(Step::Pause(delay));
        self
    }

    /// What to do after the last piece (default: [`End::Close`]).
    pub fn end(mut self, end: End) -> Self {
        self.end = end;
        self
    }

    /// Stall after the pieces (see [`End::Hold`]).
    pub fn hold(self) -> Self {
        self.end(End::Hold)
    }
}

/// What one client sent.
#[derive(Clone, Debug)]
pub struct Request {
    /// `GET`, `POST`...
    pub method: String,
    /// The request target, e.g. `/events?topic=a`.
    pub target: String,
    /// The headers in order, names lowercased.
    pub headers: Vec<(String, String)>,
    /// The body (by `Content-Length`; empty without).
    pub body: Vec<u8>,
}

impl Request {
    /// The first value of a header (name case-insensitive).
    pub fn header(&self, name: &str) -> Option<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
    }

    /// Every value of a header (name case-insensitive).
    pub fn header_all(&self, name: &str) -> Vec<&str> {
        let name = name.to_ascii_lowercase();
        self.headers
            .iter()
            .filter(|(n, _)| *n == name)
            .map(|(_, v)| v.as_str())
            .collect()
    }
}

/// One connection the server served.
#[derive(Clone, Debug)]
pub struct Connection {
    /// What the client sent.
    pub request: Request,
    /// When the request head had arrived (Tokio's clock, so paused time applies).
    pub received_at: Instant,
    /// When the server finished with the connection: closed it, or, for [`End::Hold`], saw the
    /// client go away. `None` while it is open.
    pub ended_at: Option<Instant>,
}

/// A scripted server on 127.0.0.1, port 0, serving until dropped.
#[derive(Debug)]
pub struct ScriptedServer {
    addr: SocketAddr,
    log: watch::Sender<Vec<Connection>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for ScriptedServer {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl ScriptedServer {
    /// Binds 127.0.0.1:0 and serves `script`, one response per connection, in order.
    pub async fn start(script: impl IntoIterator<Item = Response>) -> Self {
        let listener = TcpListener::bind(("127.0.0.1", 0))
            .await
            .expect("bind 127.0.0.1:0");
        let addr = listener.local_addr().expect("local address");
        let script = Arc::new(Mutex::new(script.into_iter().collect::<VecDeque<_>>()));
        let (log, _) = watch::channel(Vec::new());
        let task = tokio::spawn(serve(listener, script, log.clone()));
        Self { addr, log, task }
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `http://127.0.0.1:PORT` followed by `path`.
    pub fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    /// The connections served so far.
    pub fn connections(&self) -> Vec<Connection> {
        self.log.borrow().clone()
    }

    /// The requests received so far.
    pub fn requests(&self) -> Vec<Request> {
        self.log
            .borrow()
            .iter()
            .map(|c| c.request.clone())
            .collect()
    }

    /// Waits until `done` holds for the connections (panics after [`WAIT_LIMIT`]).
    pub async fn wait_for(&self, mut done: impl FnMut(&[Connection]) -> bool) -> Vec<Connection> {
        let mut log = self.log.subscribe();
        let waited = tokio::time::timeout(WAIT_LIMIT, log.wait_for(|c| done(c))).await;
        match waited {
            Ok(Ok(connections)) => connections.clone(),
            _ => panic!(
                "scripted server: condition not met within {WAIT_LIMIT:?}; connections: {:#?}",
                self.connections()
            ),
        }
    }

    /// Waits for `n` requests and returns them.
    pub async fn wait_for_requests(&self, n: usize) -> Vec<Request> {
        let connections = self.wait_for(|c| c.len() >= n).await;
        connections.into_iter().map(|c| c.request).collect()
    }
}

async fn serve(
    listener: TcpListener,
    script: Arc<Mutex<VecDeque<Response>>>,
    log: watch::Sender<Vec<Connection>>,
) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let script = script.clone();
        let log = log.clone();
        tokio::spawn(async move {
            // Errors end this connection only: a client hanging up early is a legitimate test.
            let _ = handle(stream, &script, &log).await;
        });
    }
}

async fn handle(
    mut stream: TcpStream,
    script: &Mutex<VecDeque<Response>>,
    log: &watch::Sender<Vec<Connection>>,
) -> std::io::Result<()> {
    stream.set_nodelay(true)?;
    let Some(request) = read_request(&mut stream).await? else {
        return Ok(());
    };
    let response = script
        .lock()
        .expect("script lock")
        .pop_front()
        .unwrap_or_else(|| Response::status(204));
    let index = {
        let mut index = 0;
        log.send_modify(|connections| {
            index = connections.len();
            connections.push(Connection {
                request,
                received_at: Instant::now(),
                ended_at: None,
            });
        });
        index
    };
    let result = respond(&mut stream, &response).await;
    log.send_modify(|connections| connections[index].ended_at = Some(Instant::now()));
    result
}

/// Reads one request head and its `Content-Length` body. `None` when the client sent nothing.
async fn read_request(stream: &mut TcpStream) -> std::io::Result<Option<Request>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    let head_end = loop {
        if let Some(at) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break at;
        }
        if buf.len() > MAX_HEAD {
            return Err(std::io::Error::other("request head too large"));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Ok(None);
        }
        buf.extend_from_slice(&chunk[..n]);
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let mut lines = head.split("\r\n");
    let mut start = lines.next().unwrap_or_default().split(' ');
    let method = start.next().unwrap_or_default().to_owned();
    let target = start.next().unwrap_or_default().to_owned();
    let headers: Vec<(String, String)> = lines
        .filter_map(|line| line.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_owned()))
        .collect();
    let length = headers
        .iter()
        .find(|(n, _)| n == "content-length")
        .and_then(|(_, v)| v.parse::<usize>().ok())
        .unwrap_or(0)
        .min(MAX_BODY);
    let mut body = buf.split_off(head_end + 4);
    while body.len() < length {
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        body.extend_from_slice(&chunk[..n]);
    }
    body.truncate(length);
    Ok(Some(Request {
        method,
        target,
        headers,
        body,
    }))
}

async fn respond(stream: &mut TcpStream, response: &Response) -> std::io::Result<()> {
    let mut head = format!(
        "HTTP/1.1 {} {}\r\n",
        response.status,
        reason(response.status)
    );
    for (name, value) in &response.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    let body_len: usize = response
        .steps
        .iter()
        .map(|s| match s {
            Step::Send(b) => b.len(),
            Step::Pause(_) => 0,
        })
        .sum();
    let bodiless = !response.raw && (response.status == 204 || response.status == 304);
    match response.framing {
        _ if bodiless => {}
        Framing::Chunked => head.push_str("Transfer-Encoding: chunked\r\n"),
        Framing::Length => head.push_str(&format!("Content-Length: {body_len}\r\n")),
        Framing::CloseDelimited => {}
    }
    head.push_str("Connection: close\r\n\r\n");
    if !response.raw {
        stream.write_all(head.as_bytes()).await?;
        stream.flush().await?;
    }

    let mut first = true;
    for step in &response.steps {
        match step {
            Step::Pause(delay) => tokio::time::sleep(*delay).await,
            Step::Send(bytes) if bodiless => {
                let _ = bytes; // a 204 has no body whatever the script says
            }
            Step::Send(bytes) => {
                if !first {
                    tokio::time::sleep(SPLIT_PAUSE).await;
                }
                first = false;
                if response.framing == Framing::Chunked {
                    if bytes.is_empty() {
                        continue; // an empty chunk would end the body
                    }
                    stream
                        .write_all(format!("{:x}\r\n", bytes.len()).as_bytes())
                        .await?;
                    stream.write_all(bytes).await?;
                    stream.write_all(b"\r\n").await?;
                } else {
                    stream.write_all(bytes).await?;
                }
                stream.flush().await?;
            }
        }
    }
    match response.end {
        End::Close => {
            if response.framing == Framing::Chunked && !bodiless {
                stream.write_all(b"0\r\n\r\n").await?;
            }
            stream.shutdown().await?;
        }
        End::Abort => {}
        End::Hold => {
            // Read until the client goes away; whatever it sends is ignored.
            let mut sink = [0u8; 1024];
            while stream.read(&mut sink).await? > 0 {}
        }
    }
    Ok(())
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        204 => "No Content",
        301 => "Moved Permanently",
        302 => "Found",
        307 => "Temporary Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        413 => "Payload Too Large",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    async fn raw_exchange(server: &ScriptedServer, request: &str) -> String {
        let mut stream = TcpStream::connect(server.addr()).await.unwrap();
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await.unwrap();
        String::from_utf8(out).unwrap()
    }

    #[tokio::test]
    async fn serves_the_script_in_order_then_204_and_records_requests() {
        let server = ScriptedServer::start([
            Response::sse().chunk("data: a\n\n").chunk("data: b\n\n"),
            Response::json(400, r#"{"error":"no"}"#),
        ])
        .await;
        let first = raw_exchange(&server, "GET /e HTTP/1.1\r\nX-A: 1\r\n\r\n").await;
        assert!(first.starts_with("HTTP/1.1 200 OK\r\n"), "{first}");
        assert!(first.ends_with("\r\n\r\n9\r\ndata: a\n\n\r\n9\r\ndata: b\n\n\r\n0\r\n\r\n"));
        let body = "{\"x\":1}";
        let second = raw_exchange(
            &server,
            &format!(
                "POST /publish HTTP/1.1\r\nContent-Length: {}\r\n\r\n{body}",
                body.len()
            ),
        )
        .await;
        assert!(second.contains("Content-Length: 14\r\n"), "{second}");
        assert!(second.ends_with("\r\n\r\n{\"error\":\"no\"}"));
        let third = raw_exchange(&server, "GET / HTTP/1.1\r\n\r\n").await;
        assert!(third.starts_with("HTTP/1.1 204 No Content\r\n"));

        let requests = server.wait_for_requests(3).await;
        assert_eq!(requests[0].header("X-a"), Some("1"));
        assert_eq!(requests[1].method, "POST");
        assert_eq!(requests[1].body, body.as_bytes());
        assert_eq!(requests[2].target, "/");
        let done = server
            .wait_for(|c| c.iter().all(|c| c.ended_at.is_some()))
            .await;
        assert_eq!(done.len(), 3);
    }

    #[tokio::test]
    async fn close_delimited_and_split_bodies() {
        let server = ScriptedServer::start([Response::sse()
            .framing(Framing::CloseDelimited)
            .split(b"abcdef", &[1, 3])])
        .await;
        let out = raw_exchange(&server, "GET / HTTP/1.1\r\n\r\n").await;
        assert!(out.ends_with("Connection: close\r\n\r\nabcdef"), "{out}");
    }

    #[tokio::test]
    async fn a_client_that_sends_garbage_or_nothing_does_not_stop_the_server() {
        let server = ScriptedServer::start([Response::sse()]).await;
        drop(TcpStream::connect(server.addr()).await.unwrap());
        let mut huge = TcpStream::connect(server.addr()).await.unwrap();
        let _ = huge.write_all(&vec![b'x'; MAX_HEAD + 10]).await;
        drop(huge);
        let out = raw_exchange(&server, "GET / HTTP/1.1\r\n\r\n").await;
        assert!(out.starts_with("HTTP/1.1 200 OK"), "{out}");
    }

    #[tokio::test]
    async fn raw_responses_are_written_as_they_are() {
        let server =
            ScriptedServer::start([Response::raw().chunk("HTTP/1.1 200 OK\r\nX: y")]).await;
        let out = raw_exchange(&server, "GET / HTTP/1.1\r\n\r\n").await;
        assert_eq!(out, "HTTP/1.1 200 OK\r\nX: y");
    }

    #[test]
    fn pieces_cover_the_input() {
        let r = Response::sse().pieces(b"abcdefg", 3);
        let got: Vec<Bytes> = r
            .steps
            .iter()
            .map(|s| match s {
                Step::Send(b) => b.clone(),
                Step::Pause(_) => unreachable!(),
            })
            .collect();
        assert_eq!(got, [&b"abc"[..], b"def", b"g"]);
        assert_ne!(free_port(), 0);
    }
}

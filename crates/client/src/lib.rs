//! An async EventSource client: the WHATWG processing model of Server-Sent Events for Rust.
//!
//! [`EventSource`] connects to an SSE endpoint over HTTP (reqwest), parses the stream with
//! [`herald_wire::Parser`], and yields [`Event::Open`], [`Event::Message`] and [`Error`] items as a
//! [`Stream`](futures_util::Stream). Like a browser's `EventSource` it reconnects after a lost
//! connection or a clean end of stream, waits the reconnection time (updated by `retry:`), and
//! sends `Last-Event-ID`; unlike a browser it sends any headers you give it (e.g.
//! `Authorization`), backs off exponentially on repeated failures ([`RetryPolicy`]), can detect a
//! silent connection ([`EventSourceBuilder::idle_timeout`]), can retry 5xx/429 answers, and
//! can fail over between several hubs that serve the same stream
//! ([`EventSourceBuilder::fallback_url`]).
//!
//! ```no_run
//! use futures_util::StreamExt;
//! use herald_client::{Event, EventSource, RetryPolicy};
//!
//! # async fn run() -> Result<(), herald_client::Error> {
//! let mut source = EventSource::builder("http://127.0.0.1:8080/events?topic=chat")
//!     .header("Authorization", "Bearer eyJ...")
//!     .retry_policy(RetryPolicy::new().max_retries(5))
//!     .build()?;
//! while let Some(item) = source.next().await {
//!     match item {
//!         Ok(Event::Open) => eprintln!("connected"),
//!         Ok(Event::Message(event)) => println!("{}: {}", event.event_type, event.data),
//!         Ok(_) => {}
//!         Err(error) if error.is_fatal() => return Err(error),
//!         Err(error) => eprintln!("reconnecting: {error}"),
//!     }
//! }
//! # Ok(())
//! # }
//! ```
//!
//! # The rules, as the spec gives them
//!
//! | the server | the client |
//! |---|---|
//! | answers 200 with `text/event-stream` (parameters allowed) | yields [`Event::Open`], then the events |
//! | ends the body, or the connection breaks | waits the reconnection time, reconnects with `Last-Event-ID` |
//! | answers 204 | the stream ends, no error, no reconnection |
//! | answers another status, or another content type | a fatal [`Error`] (with the reason of a JSON or text body: [`Error::message`]), then the stream ends (5xx/429 are retried if [`RetryPolicy::retry_server_errors`]) |
//! | its certificate is not trusted, or it does not speak TLS where the URL says it does (or the other way round) | a fatal [`Error::is_tls`] error: retrying cannot help ([`EventSourceBuilder::root_certificates_pem`] and [`EventSourceBuilder::danger_accept_invalid_certs`] are `curl --cacert` and `--insecure`) |
//! | redirects | followed (up to 10) |
//! | cannot be reached | a non-fatal [`Error`], then exponential backoff with jitter |
//!
//! [`EventSource::close`] (or a [`CloseHandle`] from another task) stops everything at once.
//!
//! # Failover over several URLs
//!
//! Herald hubs that share one Redis store serve the same stream with the same, global event ids,
//! so a subscriber may resume on any of them. Give the others with
//! [`EventSourceBuilder::fallback_url`]: the first connection goes to the main URL, and **every
//! reconnection** (whatever the table above reconnects on) goes to the next URL of the list,
//! wrapping around, with the same `Last-Event-ID`. The delays and
//! [`RetryPolicy::max_retries`] count failed attempts in a row across the whole list, not per
//! URL. A fatal answer ends the source at once: the other hubs would answer the same.
//!
//! ```no_run
//! # fn build() -> Result<herald_client::EventSource, herald_client::Error> {
//! let source = herald_client::EventSource::builder("http://hub-a:8080/events?topic=chat")
//!     .fallback_url("http://hub-b:8080/events?topic=chat")
//!     .fallback_url("http://hub-c:8080/events?topic=chat")
//!     .build()?;
//! # Ok(source) }
//! ```
//!
//! # Differences from a browser's EventSource
//!
//! - A browser fires `error` before every reconnection, also after a clean end of stream; here a
//!   clean end is silent and the next [`Event::Open`] marks the reconnection.
//! - Repeated failures back off exponentially (browsers retry at the reconnection time forever).
//! - Events of every type come through the one stream; filter on `event_type`.
//! - Limits: an event may hold at most [`EventSourceBuilder::max_event_size`] bytes; HTTP/1.1
//!   only; `https` needs the `rustls` feature (on by default).

mod error;
mod retry;
mod source;

pub use error::Error;
pub use herald_wire::MessageEvent;
pub use retry::RetryPolicy;
pub use source::{CloseHandle, Event, EventSource, EventSourceBuilder, ReadyState};

/// Compiles the README's example as a doc test, so that it cannot rot.
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeDoctests;

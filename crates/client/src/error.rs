//! The one public error type of the client: opaque, with predicates, so that it can grow.

use std::fmt;
use std::time::Duration;

/// Why a connection failed, why a configuration was refused, or which event was dropped.
///
/// The error is opaque: ask it what happened with the predicates ([`Error::is_status`],
/// [`Error::is_timeout`], ...). [`Error::is_fatal`] says whether the [`EventSource`] stops after
/// it (the stream then ends) or reconnects.
///
/// [`EventSource`]: crate::EventSource
pub struct Error {
    kind: Kind,
    fatal: bool,
}

/// What went wrong. Private so that variants can be added without breaking users.
#[derive(Debug)]
pub(crate) enum Kind {
    /// The builder was given something unusable (bad URL, bad header).
    Builder(String),
    /// The request could not be sent or its response head not received (refused, reset, DNS...).
    Connect(reqwest::Error),
    /// TLS could not be agreed on: a certificate not trusted, or one side not speaking TLS.
    /// Retrying cannot help, so the source stops (see [`TlsProblem`]).
    Tls(TlsProblem, reqwest::Error),
    /// The response body failed while streaming.
    Body(reqwest::Error),
    /// No byte arrived for this long.
    IdleTimeout(Duration),
    /// The server answered with a status other than 200 (and 204).
    Status {
        status: reqwest::StatusCode,
        retry_after: Option<Duration>,
        /// The reason the server gave in its body (a herald hub's JSON `error`), made printable.
        message: Option<String>,
    },
    /// The server answered 200 with a content type other than `text/event-stream`.
    ContentType(Option<String>),
    /// An event grew past the size limit and was dropped.
    EventTooLarge(herald_wire::ParseError),
}

/// Which TLS failure a [`Kind::Tls`] error is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum TlsProblem {
    /// The server's certificate was refused (unknown issuer, expired, wrong name, ...).
    Certificate,
    /// An `https://` URL, but the server answered in plain text: it does not speak TLS there.
    NotTls,
    /// An `http://` URL, but what came back was not HTTP: most likely a TLS port (a TLS server
    /// answers plain text with a TLS alert).
    PlainToTls,
}

impl Error {
    pub(crate) fn new(kind: Kind) -> Self {
        Self { kind, fatal: false }
    }

    pub(crate) fn builder(message: impl Into<String>) -> Self {
        Self {
            kind: Kind::Builder(message.into()),
            fatal: true,
        }
    }

    pub(crate) fn into_fatal(mut self) -> Self {
        self.fatal = true;
        self
    }

    /// Whether the event source stops after this error: the stream ends after it. A non-fatal
    /// error is followed by a reconnection (or, for [`Error::is_event_too_large`], by the next
    /// event).
    pub fn is_fatal(&self) -> bool {
        self.fatal
    }

    /// Whether the builder refused its configuration (a bad URL or header).
    pub fn is_builder(&self) -> bool {
        matches!(self.kind, Kind::Builder(_))
    }

    /// Whether the connection could not be made or its response head never came (refused,
    /// reset, name resolution, redirect loop).
    pub fn is_connect(&self) -> bool {
        matches!(self.kind, Kind::Connect(_))
    }

    /// Whether TLS could not be agreed on: the server's certificate was not trusted, an `https://`
    /// URL reached a server without TLS, or an `http://` URL reached a TLS port. Always fatal:
    /// the next attempt would fail the same way.
    pub fn is_tls(&self) -> bool {
        matches!(self.kind, Kind::Tls(..))
    }

    /// Whether the server's TLS certificate was refused (not trusted, expired, another name).
    pub fn is_certificate(&self) -> bool {
        matches!(self.kind, Kind::Tls(TlsProblem::Certificate, _))
    }

    /// The reason the server gave in the body of an [`Error::is_status`] answer: the `error`
    /// field of a JSON body (what a herald hub sends), else the first line of a text body; at
    /// most [`Error::MAX_MESSAGE_CHARS`] characters, control characters replaced, so it is safe
    /// to print on a terminal.
    pub fn message(&self) -> Option<&str> {
        match &self.kind {
            Kind::Status { message, .. } => message.as_deref(),
            _ => None,
        }
    }

    /// The longest reason kept from an error body: 300 characters, a sentence or two; longer
    /// bodies are HTML pages or worse, not reasons.
    pub const MAX_MESSAGE_CHARS: usize = 300;

    /// Whether an open stream broke while its body was being read.
    pub fn is_body(&self) -> bool {
        matches!(self.kind, Kind::Body(_))
    }

    /// Whether the idle timeout fired: no byte arrived for that long.
    pub fn is_timeout(&self) -> bool {
        matches!(self.kind, Kind::IdleTimeout(_))
    }

    /// Whether the server answered with a status other than 200 and 204.
    pub fn is_status(&self) -> bool {
        matches!(self.kind, Kind::Status { .. })
    }

    /// The HTTP status the server answered with, for [`Error::is_status`] errors.
    pub fn status(&self) -> Option<u16> {
        match &self.kind {
            Kind::Status { status, .. } => Some(status.as_u16()),
            _ => None,
        }
    }

    /// The delay the server asked for in `Retry-After`, for [`Error::is_status`] errors.
    pub fn retry_after(&self) -> Option<Duration> {
        match &self.kind {
            Kind::Status { retry_after, .. } => *retry_after,
            _ => None,
        }
    }

    /// Whether the server answered 200 with a content type other than `text/event-stream`.
    pub fn is_content_type(&self) -> bool {
        matches!(self.kind, Kind::ContentType(_))
    }

    /// The content type the server answered with, for [`Error::is_content_type`] errors (`None`
    /// when there was no `Content-Type` or it was not text).
    pub fn content_type(&self) -> Option<&str> {
        match &self.kind {
            Kind::ContentType(content_type) => content_type.as_deref(),
            _ => None,
        }
    }

    /// Whether an event larger than the limit was dropped (the stream goes on).
    pub fn is_event_too_large(&self) -> bool {
        matches!(self.kind, Kind::EventTooLarge(_))
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Error")
            .field("kind", &self.kind)
            .field("fatal", &self.fatal)
            .finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.kind {
            Kind::Builder(message) => write!(f, "invalid event source configuration: {message}"),
            Kind::Connect(_) => f.write_str("connection failed"),
            Kind::Tls(TlsProblem::Certificate, _) => {
                f.write_str("the server's TLS certificate is not trusted")
            }
            Kind::Tls(TlsProblem::NotTls, _) => f.write_str(
                "the server does not speak TLS on this port (an https:// URL for an http:// server?)",
            ),
            Kind::Tls(TlsProblem::PlainToTls, _) => f.write_str(
                "the server did not answer in HTTP (a TLS port? then use an https:// URL)",
            ),
            Kind::Body(_) => f.write_str("the stream broke"),
            Kind::IdleTimeout(after) => {
                write!(
                    f,
                    "no data for {after:?} (idle timeout): connection considered lost"
                )
            }
            Kind::Status {
                status,
                message: Some(message),
                ..
            } => write!(f, "server answered HTTP {status}: {message}"),
            Kind::Status { status, .. } => write!(f, "server answered HTTP {status}"),
            Kind::ContentType(Some(content_type)) => write!(
                f,
                "server answered with content type `{content_type}`, not `text/event-stream`"
            ),
            Kind::ContentType(None) => {
                f.write_str("server answered without a `text/event-stream` content type")
            }
            Kind::EventTooLarge(error) => error.fmt(f),
        }
    }
}

impl std::error::Error for Error {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match &self.kind {
            Kind::Connect(error) | Kind::Body(error) | Kind::Tls(_, error) => Some(error),
            // The others say all in their own message; a source would print it twice.
            _ => None,
        }
    }
}

//! Cross-origin access (CORS) with tower-http's [`CorsLayer`].
//!
//! | setting                     | what browsers on other origins may do                        |
//! |-----------------------------|--------------------------------------------------------------|
//! | [`CorsOrigins::SameOrigin`] | nothing: no CORS headers are sent (the default)              |
//! | [`CorsOrigins::List`]       | those origins, with credentials (cookies, `withCredentials`) |
//! | [`CorsOrigins::Any`]        | any origin, without credentials (`*`)                        |
//!
//! Allowed request headers: `Content-Type`, `Authorization` and `Last-Event-ID`, so that a
//! publish preflight (`OPTIONS /publish`) and a resuming stream pass.

use std::time::Duration;

use axum::http::header::{AUTHORIZATION, CONTENT_TYPE, HeaderName, HeaderValue};
use axum::http::{Method, Uri};
use tower_http::cors::{AllowOrigin, CorsLayer};

/// How long a browser may cache a preflight answer: 10 minutes, so that a changed allow-list
/// takes effect soon.
pub const CORS_MAX_AGE: Duration = Duration::from_secs(600);

/// Which other origins may use the hub from a browser.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub enum CorsOrigins {
    /// Same origin only: no CORS headers.
    #[default]
    SameOrigin,
    /// Any origin (`*`), without credentials.
    Any,
    /// These origins (e.g. `https://app.example.com`), with credentials.
    List(Vec<HeaderValue>),
}

/// Why an origin was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid CORS origin {origin:?}: {why} (expected scheme://host[:port], e.g. https://app.example.com, or * alone)"
)]
pub struct CorsError {
    origin: String,
    why: &'static str,
}

impl CorsOrigins {
    /// Builds the setting from origins as given on the command line: none is same-origin, `*`
    /// alone is any origin, otherwise each must be `scheme://host[:port]`.
    pub fn try_from_origins<S: AsRef<str>>(origins: &[S]) -> Result<Self, CorsError> {
        let err = |origin: &str, why| CorsError {
            origin: origin.to_owned(),
            why,
        };
        if origins.is_empty() {
            return Ok(Self::SameOrigin);
        }
        if origins.iter().any(|o| o.as_ref() == "*") {
            if origins.len() > 1 {
                return Err(err("*", "\"*\" cannot be combined with other origins"));
            }
            return Ok(Self::Any);
        }
        let mut list = Vec::with_capacity(origins.len());
        for origin in origins {
            let origin = origin.as_ref();
            let uri: Uri = origin.parse().map_err(|_| err(origin, "not a URL"))?;
            let (Some(scheme), Some(_)) = (uri.scheme_str(), uri.authority()) else {
                return Err(err(origin, "needs a scheme and a host"));
            };
            if !matches!(scheme, "http" | "https") {
                return Err(err(origin, "scheme must be http or https"));
            }
            // An Origin header is scheme://host[:port] exactly: a path or slash never matches.
            if origin.trim_end_matches('/').len() != origin.len()
                || uri.path_and_query().is_some_and(|p| p.as_str() != "/")
                || origin.contains('@')
            {
                return Err(err(origin, "an origin has no path, query or user"));
            }
            let value = HeaderValue::from_str(origin).map_err(|_| err(origin, "not a header"))?;
            list.push(value);
        }
        Ok(Self::List(list))
    }

    /// The layer for this setting; `None` for same-origin.
    pub(crate) fn layer(&self) -> Option<CorsLayer> {
        let base = || {
            CorsLayer::new()
                .allow_methods([Method::GET, Method::POST])
                .allow_headers([
                    CONTENT_TYPE,
                    AUTHORIZATION,
                    HeaderName::from_static("last-event-id"),
                ])
                .max_age(CORS_MAX_AGE)
        };
        match self {
            Self::SameOrigin => None,
            Self::Any => Some(base().allow_origin(AllowOrigin::any())),
            Self::List(origins) => Some(
                base()
                    .allow_origin(AllowOrigin::list(origins.iter().cloned()))
                    .allow_credentials(true),
            ),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked() {
        assert_eq!(
            CorsOrigins::try_from_origins::<&str>(&[]),
            Ok(CorsOrigins::SameOrigin)
        );
        assert_eq!(CorsOrigins::try_from_origins(&["*"]), Ok(CorsOrigins::Any));
        assert_eq!(
            CorsOrigins::try_from_origins(&["https://a.example", "http://localhost:8080"]),
            Ok(CorsOrigins::List(vec![
                HeaderValue::from_static("https://a.example"),
                HeaderValue::from_static("http://localhost:8080"),
            ]))
        );
        for bad in [
            &["*", "https://a.example"][..],
            &["a.example"],
            &["ftp://a.example"],
            &["https://a.example/"],
            &["https://a.example/app"],
            &["https://a.example?x"],
            &["https://u@a.example"],
            &[""],
        ] {
            assert!(CorsOrigins::try_from_origins(bad).is_err(), "{bad:?}");
        }
    }
}

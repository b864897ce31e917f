//! The herald hub: topics, a durable log, lossless resume and fan-out over Server-Sent Events,
//! as an axum [`Router`] you can mount in your own app or run with [`serve`].
//!
//! - [`Hub`] owns a [`log::Log`] store and the live fan-out; [`Hub::router`] gives its HTTP API
//!   (`GET /events`, `POST /publish`, `GET /healthz`, `GET /metrics`, `GET /`, `GET /dashboard`).
//! - [`METRICS_TOPIC`] is the hub's system topic: a metrics snapshot every second, not logged.
//! - [`serve`] runs a hub on a listener you bind, until a shutdown future you pass resolves; it
//!   ends every open stream with a jittered `retry:`, drains, and closes the log.
//! - [`topic`] defines topic names and subscription patterns (`chat/*`, `chat/**`).
//!
//! ```no_run
//! use std::sync::Arc;
//! use herald_hub::{Hub, HubConfig, log::Log};
//!
//! # async fn example(store: Arc<dyn Log>) -> std::io::Result<()> {
//! let hub = Hub::new(store, HubConfig::default());
//! // Mount it in your own axum app...
//! let app = axum::Router::new().nest("/hub", hub.router());
//! # let _ = app;
//! // ...or serve it on its own, until Ctrl-C.
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:3000").await?;
//! herald_hub::serve(listener, hub, async { let _ = tokio::signal::ctrl_c().await; }).await
//! # }
//! ```
//!
//! - [`auth`] verifies JWTs (HS256, RS256, ES256...) set in [`HubConfig::auth`]: who may
//!   publish where, who may subscribe, and who gets `private` events.
//!
//! Limits: a slow client is only closed by [`serve`] (which owns the
//! sockets), while a router mounted elsewhere still bounds its memory and catches it up from
//! the log. So are the connection bounds (header and idle timeouts, connections per address);
//! the publish body's deadline and its early 413 belong to the router, wherever it is mounted.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::extract::rejection::BytesRejection;
use axum::extract::{ConnectInfo, RawQuery};
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Extension, Router};
use bytes::Bytes;

pub mod auth;
mod body;
mod broker;
mod config;
mod cors;
mod error;
mod files;
mod form;
mod limits;
pub mod log;
mod metrics;
mod publish;
mod server;
mod sse;
mod system;
pub mod topic;

pub use config::HubConfig;
pub use cors::{CORS_MAX_AGE, CorsError, CorsOrigins};
pub use error::{ApiError, STORE_RETRY_AFTER_SECS};
pub use limits::{MAX_RATE_ENTRIES, PublishRate};
pub use metrics::Metrics;
/// The publish body parser, for fuzz/ only (feature `fuzzing`): not a stable API.
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub use publish::fuzzing;
pub use publish::{
    MAX_DATA_DEPTH, MAX_EVENT_TYPE_LEN, MAX_IDEMPOTENCY_KEY_LEN, MAX_RETRY_MS, RESERVED_TYPE_PREFIX,
};
pub use server::{TlsConfig, TlsError, serve};
pub use sse::{CATCH_UP_BATCH, RESET_EVENT_TYPE, TOKEN_EXPIRING_EVENT_TYPE};
pub use system::{
    MAX_METRICS_HISTORY, MAX_METRICS_TOPICS, METRICS_EVENT_TYPE, METRICS_TOPIC,
    RESERVED_TOPIC_PREFIX,
};

use crate::broker::Broker;
use crate::log::{Appended, Log, NewEvent};

/// The demo page, embedded at build time.
const INDEX_HTML: &str = include_str!("../../../web/index.html");
/// The live dashboard page, embedded at build time.
const DASHBOARD_HTML: &str = include_str!("../../../web/dashboard.html");

/// What every handler and stream of one hub shares.
struct Shared {
    log: Arc<dyn Log>,
    broker: Arc<Broker>,
    metrics: Arc<Metrics>,
    config: HubConfig,
    /// Open streams per client address.
    streams: limits::StreamCounter,
    /// Publish buckets, when a rate is set.
    publish_rate: Option<limits::RateLimiter>,
    /// The last snapshots sent to the system topic, for `GET /dashboard/samples`.
    metrics_history: system::History,
}

/// A running hub: a log store plus the live fan-out. Cheap to clone (all clones are one hub).
#[derive(Clone)]
pub struct Hub {
    shared: Arc<Shared>,
}

impl std::fmt::Debug for Hub {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Hub")
            .field("config", &self.shared.config)
            .finish_non_exhaustive()
    }
}

impl Hub {
    /// A hub over `log`. Starts the fan-out task, so it must be called inside a Tokio runtime.
    pub fn new(log: Arc<dyn Log>, config: HubConfig) -> Self {
        let broker = Arc::new(Broker::new(config.max_unsent_bytes));
        // Take the tail now, so that every event appended after `new` returns is fanned out.
        let tail = log.tail();
        tokio::spawn(broker::run(broker.clone(), tail, config.heartbeat));
        let shared = Arc::new(Shared {
            log,
            broker,
            metrics: Arc::new(Metrics::default()),
            streams: limits::StreamCounter::new(config.max_streams_per_client),
            publish_rate: config.publish_rate.map(limits::RateLimiter::new),
            config,
            metrics_history: system::History::default(),
        });
        if let Some(period) = shared.config.metrics_interval.filter(|p| !p.is_zero()) {
            tokio::spawn(system::run(Arc::downgrade(&shared), period));
        }
        Self { shared }
    }

    /// The hub's HTTP API as an axum router, ready to serve or to nest in your own app.
    pub fn router(&self) -> Router {
        let router = Router::new()
            .route("/events", get(sse::events))
            .route(
                "/publish",
                post(publish_handler).layer(axum::middleware::from_fn_with_state(
                    self.shared.clone(),
                    body::read_within_limits,
                )),
            )
            .route("/healthz", get(healthz))
            .route("/metrics", get(metrics_handler))
            .route("/dashboard", get(dashboard))
            .route("/dashboard/samples", get(dashboard_samples));
        let router = match &self.shared.config.static_dir {
            Some(dir) => {
                files::with_static_dir(router, dir, self.shared.config.static_follow_symlinks)
            }
            None => router.route("/", get(index)).fallback(not_found),
        };
        let router = router
            .method_not_allowed_fallback(method_not_allowed)
            .layer(DefaultBodyLimit::max(self.shared.config.max_body_bytes));
        // Outermost, so that refusals (401, 429...) carry CORS headers too and a page can read them.
        let router = match self.shared.config.cors.layer() {
            Some(cors) => router.layer(cors),
            None => router,
        };
        router.with_state(self.shared.clone())
    }

    /// Publishes an event (checked by the same rules as `POST /publish`) and answers once it is
    /// durable. No token is checked: the calling code is trusted.
    pub async fn publish(&self, mut event: NewEvent) -> Result<Appended, ApiError> {
        publish::validate(&mut event)?;
        let appended = append(&self.shared, event).await?;
        if !appended.duplicate {
            Metrics::inc(&self.shared.metrics.published);
        }
        Ok(appended)
    }

    /// The hub's counters.
    pub fn metrics(&self) -> &Metrics {
        &self.shared.metrics
    }

    /// The hub's settings.
    pub fn config(&self) -> &HubConfig {
        &self.shared.config
    }

    /// Ends every open stream (each gets a jittered `retry:` first) and every later one, and stops
    /// the fan-out. The log stays open: see [`Hub::close_log`].
    pub fn close_streams(&self) {
        let c = &self.shared.config;
        self.shared.broker.close(
            c.retry.as_millis() as u64,
            c.shutdown_jitter.as_millis() as u64,
        );
    }

    /// Makes everything durable and releases the store (after [`Hub::close_streams`]).
    pub async fn close_log(&self) -> Result<(), log::LogError> {
        self.shared.log.close().await
    }
}

/// The client address [`serve`] puts in each request's extensions.
type Peer = Option<Extension<ConnectInfo<SocketAddr>>>;

async fn publish_handler(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
    peer: Peer,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    // Who, then how often, then what: a refused token never gets its body parsed.
    let grant = match &shared.config.auth {
        Some(auth) => {
            let query_token = sse::query_token(query.as_deref())?;
            Some(auth.publisher(&headers, query_token.as_deref())?)
        }
        None => None,
    };
    if let Some(limiter) = &shared.publish_rate {
        let who = match (grant.as_ref().and_then(|g| g.subject()), &peer) {
            (Some(sub), _) => Some(limits::Publisher::Subject(sub.into())),
            (None, Some(Extension(ConnectInfo(addr)))) => {
                Some(limits::Publisher::Address(limits::client_key(addr.ip())))
            }
            (None, None) => None,
        };
        if let Some(who) = who {
            limiter.check(who, std::time::Instant::now())?;
        }
    }
    let body = body.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::payload_too_large(shared.config.max_body_bytes)
        } else {
            ApiError::new(rejection.status(), rejection.body_text())
        }
    })?;
    let event = publish::parse(&headers, &body)?;
    if let Some(grant) = &grant
        && !grant.may_publish(&event.topic)
    {
        return Err(ApiError::forbidden(format!(
            "this token may not publish to {:?}",
            event.topic
        )));
    }
    let appended = append(&shared, event).await?;
    if !appended.duplicate {
        Metrics::inc(&shared.metrics.published);
    }
    let body = serde_json::json!({ "id": appended.id.to_string() }).to_string();
    Ok(([(header::CONTENT_TYPE, "application/json")], body).into_response())
}

/// Appends to the log, counting a failure in `herald_store_errors_total`.
async fn append(shared: &Shared, event: NewEvent) -> Result<Appended, log::LogError> {
    let appended = shared.log.append(event).await;
    if appended.is_err() {
        Metrics::inc(&shared.metrics.store_errors);
    }
    appended
}

/// `200 {"status":"ok"}` while the store can take publishes; `503` naming the store and why
/// while it cannot (a full disk, Redis down), so that a load balancer or an orchestrator can
/// see it. The store answers from what it last saw: the probe never waits on a sick disk.
async fn healthz(State(shared): State<Arc<Shared>>) -> Response {
    let health = shared.log.health();
    let (status, body) = match &health.problem {
        None => (StatusCode::OK, serde_json::json!({ "status": "ok" })),
        Some(problem) => (
            StatusCode::SERVICE_UNAVAILABLE,
            serde_json::json!({
                "status": "failing",
                "store": health.store,
                "error": problem,
            }),
        ),
    };
    let mut response = (
        status,
        [(header::CONTENT_TYPE, "application/json")],
        body.to_string(),
    )
        .into_response();
    if status == StatusCode::SERVICE_UNAVAILABLE {
        response.headers_mut().insert(
            header::RETRY_AFTER,
            header::HeaderValue::from(error::STORE_RETRY_AFTER_SECS),
        );
    }
    response
}

async fn metrics_handler(State(shared): State<Arc<Shared>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        shared.metrics.render(),
    )
}

async fn index() -> Html<&'static str> {
    Html(INDEX_HTML)
}

async fn dashboard() -> Html<&'static str> {
    Html(DASHBOARD_HTML)
}

/// The recent snapshots of `herald/metrics`. They say what the live topic says (topic names,
/// counts), so they need the same right as subscribing to it: on a hub with a key, a valid token
/// (or `allow_anonymous_subscribers`).
async fn dashboard_samples(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    if let Some(auth) = &shared.config.auth {
        let query_token = sse::query_token(query.as_deref())?;
        auth.subscriber(
            &headers,
            query_token.as_deref(),
            shared.config.allow_anonymous_subscribers,
        )?;
    }
    Ok((
        [
            (header::CONTENT_TYPE, "application/json"),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        shared.metrics_history.to_json(),
    )
        .into_response())
}

async fn not_found() -> ApiError {
    ApiError::not_found()
}

async fn method_not_allowed() -> ApiError {
    ApiError::method_not_allowed()
}

/// Resolves when the process receives SIGINT or SIGTERM (SIGINT only off Unix).
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
}

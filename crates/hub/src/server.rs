//! [`serve`]: a hub on a listener, with bounded per-connection buffers, a write-stall timeout
//! and a graceful shutdown that open SSE streams cannot hang.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, watch};
use tokio::time::Sleep;

use crate::Hub;
use crate::metrics::Metrics;

/// Cap of hyper's per-connection buffers, hence of a request head (request line and headers):
/// room for a long topic list and cookies, while hyper still starts every connection at its 8 KiB
/// minimum. A publish body is not held whole here: it is read up to its own limit.
const MAX_CONNECTION_BUF: usize = 16 * 1024;
/// A client must send its request head within this time.
const HEADER_READ_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves `hub` on `listener` until `shutdown` resolves, then: stops accepting, ends every open
/// stream with a jittered `retry:`, waits up to [`crate::HubConfig::drain_timeout`] for
/// connections to finish, and closes the log.
pub async fn serve(
    listener: TcpListener,
    hub: Hub,
    shutdown: impl Future<Output = ()>,
) -> io::Result<()> {
    let router = hub.router();
    let metrics = hub.shared.metrics.clone();
    let write_timeout = hub.config().write_timeout;
    let drain_timeout = hub.config().drain_timeout;
    // Every connection holds a receiver: `closed()` on the sender resolves once all are gone.
    let (signal, watcher) = watch::channel(false);
    // A permit per connection (mini-redis style): at the cap, stop accepting until one ends.
    let permits = Arc::new(Semaphore::new(hub.config().max_connections));
    tokio::pin!(shutdown);
    loop {
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => match permit {
                Ok(permit) => permit,
                Err(_) => break, // unreachable: the semaphore is never closed
            },
            () = &mut shutdown => break,
        };
        let (stream, _peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(conn) => conn,
                Err(err) => {
                    // Out of file descriptors and the like: wait a little instead of spinning.
                    tracing::warn!(%err, "accept failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
        };
        let _ = stream.set_nodelay(true);
        let io = TokioIo::new(StallGuard::new(stream, write_timeout, metrics.clone()));
        let service = TowerToHyperService::new(router.clone());
        let mut watcher = watcher.clone();
        let metrics = metrics.clone();
        tokio::spawn(async move {
            Metrics::inc(&metrics.connections);
            let mut builder = http1::Builder::new();
            builder
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_READ_TIMEOUT)
                .max_buf_size(MAX_CONNECTION_BUF);
            let conn = builder.serve_connection(io, service);
            tokio::pin!(conn);
            tokio::select! {
                result = conn.as_mut() => {
                    if let Err(err) = result {
                        tracing::debug!(%err, "connection ended with an error");
                    }
                }
                () = async { let _ = watcher.wait_for(|stop| *stop).await; } => {
                    // Finish the response in flight (streams were just told to end), then close.
                    conn.as_mut().graceful_shutdown();
                    let _ = conn.await;
                }
            }
            Metrics::dec(&metrics.connections);
            drop((watcher, permit));
        });
    }
    drop(listener);
    tracing::info!("shutting down: ending streams and draining connections");
    hub.close_streams();
    let _ = signal.send(true);
    drop(watcher);
    if tokio::time::timeout(drain_timeout, signal.closed())
        .await
        .is_err()
    {
        tracing::warn!(
            ?drain_timeout,
            "connections still open after the drain timeout"
        );
    }
    hub.close_log()
        .await
        .map_err(|err| io::Error::other(err.to_string()))
}

/// A socket that fails a write that made no progress for `timeout`: a client that stops reading
/// fills its TCP window, hyper's writes then stay pending, and this turns that into an error that
/// closes the connection (and frees its memory) instead of holding it forever.
struct StallGuard {
    inner: TcpStream,
    timeout: Duration,
    /// Armed while a write is pending; boxed so that an idle connection does not carry a timer.
    deadline: Option<Pin<Box<Sleep>>>,
    metrics: Arc<Metrics>,
}

impl StallGuard {
    fn new(inner: TcpStream, timeout: Duration, metrics: Arc<Metrics>) -> Self {
        Self {
            inner,
            timeout,
            deadline: None,
            metrics,
        }
    }

    fn check<T>(
        &mut self,
        cx: &mut Context<'_>,
        result: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if result.is_ready() {
            self.deadline = None;
            return result;
        }
        let timeout = self.timeout;
        let deadline = self
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(timeout)));
        ready!(deadline.as_mut().poll(cx));
        Metrics::inc(&self.metrics.slow_clients_closed);
        tracing::debug!("closing a connection whose client stopped reading");
        Poll::Ready(Err(io::Error::new(
            io::ErrorKind::TimedOut,
            "client stopped reading",
        )))
    }
}

impl AsyncRead for StallGuard {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl AsyncWrite for StallGuard {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.check(cx, result)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let result = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.check(cx, result)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let result = Pin::new(&mut self.inner).poll_flush(cx);
        self.check(cx, result)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

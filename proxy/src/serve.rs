//! [`run`]: the proxy from start to stop (resume interrupted attempts, reconciliation, the
//! listeners, a graceful stop). Below it, the HTTP/1.1 accept loop, ours rather than `axum::serve`, for one reason: a client must
//! send its request headers within `header_read_timeout`, or the connection is closed. A
//! public endpoint otherwise lets a slow client (one byte a minute, "slowloris") hold a
//! connection and a task forever. Once the headers are in, nothing is timed: an event stream
//! stays open as long as the agent watches.
//!
//! Each connection shares the router (an `Arc` clone), and a stop signal ends the loop, lets
//! requests in flight finish for up to [`DRAIN`], then closes what is left. The proxy's own
//! event streams, which never end by themselves, end as the stop begins ([`run_until`]); the
//! widget reconnects and replays from its `Last-Event-ID`.
//! Connections run in a [`JoinSet`], so "closes" is true: a stopped server (in-process, as in
//! the tests and the e2e stack) leaves no connection task behind holding the app's state.

use std::future::Future;
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::net::TcpListener;
use tokio::task::JoinSet;

use crate::app::{app, ops_app};
use crate::config::Config;
use crate::reconcile;
use crate::state::{AppState, StartError};

/// How long a stop waits for requests in flight.
pub const DRAIN: Duration = Duration::from_secs(10);

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    shutdown: impl Future<Output = ()>,
) {
    serve_draining(listener, router, header_read_timeout, DRAIN, shutdown).await;
}

/// [`serve`], waiting at most `drain` for connections after `shutdown`.
async fn serve_draining(
    listener: TcpListener,
    router: Router,
    header_read_timeout: Duration,
    drain: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut connections = JoinSet::new();
    let graceful = GracefulShutdown::new();
    let mut builder = http1::Builder::new();
    // hyper's default write strategy stays: body chunks are queued for `writev`, not copied.
    // Copying them into the connection's one buffer saves the queue's allocation on each
    // event stream (about 0.4 KB: 4 MB of peak memory at 10,000 streams, 2026-11-29), but
    // that buffer keeps the capacity of the largest body its connection ever wrote, and an
    // `EventSource` may reuse a connection that just fetched the widget's 64 KB file chunks.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(header_read_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    loop {
        let stream = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, _peer)) => stream,
                Err(e) => {
                    // Out of file descriptors and the like: wait a moment rather than spin.
                    tracing::warn!(error = %e, "accepting a connection failed");
                    tokio::time::sleep(Duration::from_millis(50)).await;
                    continue;
                }
            },
            () = &mut shutdown => break,
            // Reap finished connections, so the set holds only open ones.
            Some(_) = connections.join_next(), if !connections.is_empty() => continue,
        };
        let _ = stream.set_nodelay(true);
        let connection = builder.serve_connection(
            TokioIo::new(stream),
            TowerToHyperService::new(router.clone()),
        );
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(e) = connection.await {
                // A header timeout, a reset, a malformed request: the client's business.
                tracing::debug!(error = %e, "connection ended with an error");
            }
        });
    }
    drop(listener);
    if tokio::time::timeout(drain, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::info!(
            open = connections.len(),
            "closing the connections still open after the drain (event streams)"
        );
    }
    connections.shutdown().await;
}

/// Serves until Ctrl-C or SIGTERM: resumes interrupted attempts, starts reconciliation.
pub async fn run(listener: TcpListener, config: Config) -> Result<(), StartError> {
    run_until(listener, config, shutdown_signal()).await
}

/// [`run`], stopping gracefully when `shutdown` completes.
pub async fn run_until(
    listener: TcpListener,
    config: Config,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> Result<(), StartError> {
    let state = AppState::new(config).await?;
    let interrupted = reconcile::adopt_orphans(&state, i64::MAX).await?;
    if interrupted > 0 {
        tracing::warn!(
            count = interrupted,
            "attempts interrupted by the last stop are now unknown; reconciling"
        );
    }
    let reconciler = reconcile::spawn(state.clone());
    let ledger_watch = reconcile::watch_ledger(state.clone());
    let trimmer = crate::memory::spawn_trim();
    let ops = match state.config.ops_listen {
        Some(address) => {
            let ops_listener = TcpListener::bind(address).await?;
            tracing::info!(address = %ops_listener.local_addr()?, "operations routes listening");
            let app = ops_app(state.clone());
            let timeout = state.config.header_read_timeout;
            Some(tokio::spawn(serve(
                ops_listener,
                app,
                timeout,
                std::future::pending(),
            )))
        }
        None => None,
    };
    tracing::info!(address = %listener.local_addr()?, project = %state.config.project, "proxy listening");
    // Stopping ends the event streams first: requests in flight then drain in moments.
    let live = state.live.clone();
    let shutdown = async move {
        shutdown.await;
        live.close_all();
    };
    // Each connection shares the router; see `serve` for the header read timeout.
    serve(
        listener,
        app(state.clone()),
        state.config.header_read_timeout,
        shutdown,
    )
    .await;
    reconciler.abort();
    ledger_watch.abort();
    trimmer.abort();
    if let Some(ops) = ops {
        ops.abort();
    }
    state.ledger.close().await;
    Ok(())
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = terminate => {},
    }
    tracing::info!("shutting down");
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::body::{Body, Bytes};
    use axum::routing::get;
    use futures_util::{stream, StreamExt};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpStream;
    use tokio::sync::oneshot;

    /// `/slow` answers after 300 ms; `/stream` sends one chunk and never ends.
    fn router() -> Router {
        Router::new()
            .route(
                "/slow",
                get(|| async {
                    tokio::time::sleep(Duration::from_millis(300)).await;
                    "done"
                }),
            )
            .route(
                "/stream",
                get(|| async {
                    let first = stream::once(async {
                        Ok::<_, std::convert::Infallible>(Bytes::from_static(b"hello"))
                    });
                    Body::from_stream(first.chain(stream::pending()))
                }),
            )
    }

    async fn send(addr: std::net::SocketAddr, path: &str) -> TcpStream {
        let mut socket = TcpStream::connect(addr).await.unwrap();
        socket
            .write_all(format!("GET {path} HTTP/1.1\r\nHost: x\r\n\r\n").as_bytes())
            .await
            .unwrap();
        socket
    }

    #[tokio::test]
    async fn a_stop_finishes_requests_in_flight_and_closes_endless_streams_at_the_deadline() {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let (stop, stopped) = oneshot::channel::<()>();
        let drain = Duration::from_millis(800);
        let server = tokio::spawn(serve_draining(
            listener,
            router(),
            Duration::from_secs(5),
            drain,
            async {
                let _ = stopped.await;
            },
        ));
        let mut endless = send(addr, "/stream").await;
        let mut head = [0u8; 256];
        let n = endless.read(&mut head).await.unwrap();
        assert!(String::from_utf8_lossy(&head[..n]).starts_with("HTTP/1.1 200"));
        let mut slow = send(addr, "/slow").await;
        tokio::time::sleep(Duration::from_millis(50)).await;

        let started = std::time::Instant::now();
        stop.send(()).unwrap();
        // The request in flight is answered in full, then its connection closes.
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(3), slow.read_to_string(&mut answer))
            .await
            .expect("the slow request's connection closed after its answer")
            .unwrap();
        assert!(
            answer.starts_with("HTTP/1.1 200") && answer.ends_with("done"),
            "{answer}"
        );
        // No new connections once stopping.
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(TcpStream::connect(addr).await.is_err());
        // The endless stream holds the stop no longer than the drain, and is then closed.
        tokio::time::timeout(Duration::from_secs(3), server)
            .await
            .expect("the server stopped")
            .unwrap();
        let waited = started.elapsed();
        assert!(
            waited >= drain,
            "stopped after {waited:?}, before the drain ended"
        );
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(1), endless.read_to_end(&mut rest))
            .await
            .expect("the stream's connection is closed, not left to a detached task")
            .unwrap();
    }
}

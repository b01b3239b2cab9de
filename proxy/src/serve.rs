//! [`run`]: the proxy from start to stop (resume interrupted attempts, reconciliation, the
//! listeners, a graceful stop). Below it, the HTTP/1.1 accept loop, ours rather than
//! `axum::serve`, for what a public endpoint must bound ([`Limits`]):
//! - a client must send its request headers within `header_read_timeout_ms`, or the connection
//!   is closed (and its body within as long again, see `app::body_in_time`);
//! - a response the client takes nothing of for [`STALLED_WRITE`] ends its connection;
//! - at most `max_connections` are open at once; more wait in the listen backlog.
//!
//! Without them a slow client (one byte a minute, "slowloris", or a reader that never reads)
//! holds a connection, a task and a file descriptor forever, and enough of them leave the
//! ledger and Smart Glocal's client without descriptors. An event stream that the agent
//! watches is none of these: it stays open, and its keep-alives are taken.
//!
//! Each connection shares the router (an `Arc` clone), and a stop signal ends the loop, lets
//! requests in flight finish for up to [`DRAIN`], then closes what is left. The proxy's own
//! event streams, which never end by themselves, end as the stop begins ([`run_until`]); the
//! widget reconnects and replays from its `Last-Event-ID`.
//! Connections run in a [`JoinSet`], so "closes" is true: a stopped server (in-process, as in
//! the tests and the e2e stack) leaves no connection task behind holding the app's state.

use std::future::Future;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use hyper_util::server::graceful::GracefulShutdown;
use hyper_util::service::TowerToHyperService;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Sleep;

use crate::app::{app, ops_app};
use crate::config::Config;
use crate::reconcile;
use crate::state::{AppState, StartError};

/// How long a stop waits for requests in flight.
pub const DRAIN: Duration = Duration::from_secs(10);

/// How long a response may wait on a client that takes none of it before the connection is
/// closed. An event stream sends a keep-alive every 15 s, which a watching browser takes.
pub const STALLED_WRITE: Duration = Duration::from_secs(60);

/// Connections the operations listener (`ops_listen`) serves at once.
const OPS_CONNECTIONS: usize = 64;

/// File descriptors kept for everything but connections: the ledger's files and connections,
/// Smart Glocal's client, the listeners (a quarter of the limit where that is less).
const RESERVED_DESCRIPTORS: u64 = 256;

/// What a client may hold of the server (see the module's documentation).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub stalled_write: Duration,
    pub max_connections: usize,
}

impl Limits {
    /// The configured limits, `max_connections` within what the open-file limit allows.
    pub fn of(config: &Config) -> Self {
        let descriptors = raise_open_file_limit();
        let reserved = RESERVED_DESCRIPTORS.min(descriptors / 4);
        let fit = usize::try_from(descriptors.saturating_sub(reserved))
            .unwrap_or(usize::MAX)
            .max(1);
        if fit < config.max_connections {
            tracing::warn!(
                max_connections = config.max_connections,
                open_file_limit = descriptors,
                serving = fit,
                "the open-file limit allows fewer connections than max_connections"
            );
        }
        Limits {
            header_read_timeout: config.header_read_timeout,
            stalled_write: STALLED_WRITE,
            max_connections: config.max_connections.min(fit),
        }
    }
}

/// The open-file soft limit, raised to the hard one first (each connection is a descriptor,
/// and the soft limit's usual 1,024 is far below what 10,000 event streams need). A hard limit
/// of "unlimited" (macOS) is not a value the soft one may take: the raise goes to 65,536.
#[cfg(unix)]
#[allow(clippy::useless_conversion, clippy::unnecessary_fallible_conversions)]
fn raise_open_file_limit() -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the kernel to fill, then to read.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
            return u64::MAX;
        }
        let most = if limit.rlim_max == libc::RLIM_INFINITY {
            65_536
        } else {
            limit.rlim_max
        };
        if limit.rlim_cur < most {
            let raised = libc::rlimit {
                rlim_cur: most,
                rlim_max: limit.rlim_max,
            };
            if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                limit = raised;
            }
        }
    }
    u64::try_from(limit.rlim_cur).unwrap_or(u64::MAX)
}

/// No descriptor limit to read or raise here: `max_connections` as configured.
/// (`rlim_t` is `u64` on Linux and macOS, `i64` on FreeBSD, 32 bits on some targets.)
#[cfg(not(unix))]
fn raise_open_file_limit() -> u64 {
    u64::MAX
}

/// Serves `router` on `listener` until `shutdown` completes.
pub async fn serve(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    shutdown: impl Future<Output = ()>,
) {
    serve_draining(listener, router, limits, DRAIN, shutdown).await;
}

/// [`serve`], waiting at most `drain` for connections after `shutdown`.
async fn serve_draining(
    listener: TcpListener,
    router: Router,
    limits: Limits,
    drain: Duration,
    shutdown: impl Future<Output = ()>,
) {
    let mut connections = JoinSet::new();
    let graceful = GracefulShutdown::new();
    let open = Arc::new(Semaphore::new(limits.max_connections));
    let mut builder = http1::Builder::new();
    // hyper's default write strategy stays: body chunks are queued for `writev`, not copied.
    // Copying them into the connection's one buffer saves the queue's allocation on each
    // event stream (about 0.4 KB: 4 MB of peak memory at 10,000 streams, 2026-11-29), but
    // that buffer keeps the capacity of the largest body its connection ever wrote, and an
    // `EventSource` may reuse a connection that just fetched the widget's 64 KB file chunks.
    builder
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    let mut shutdown = std::pin::pin!(shutdown);
    // Said once each time the limit is reached, not at every connection while it is.
    let mut said_at_limit = false;
    loop {
        // A place for one more connection first: at `max_connections`, new ones wait in the
        // kernel's backlog until one ends.
        let permit = match open.clone().try_acquire_owned() {
            Ok(permit) => {
                said_at_limit &= open.available_permits() < limits.max_connections / 10;
                permit
            }
            Err(_) => {
                if !said_at_limit {
                    tracing::warn!(
                        limit = limits.max_connections,
                        address = ?listener.local_addr().ok(),
                        "connections at this listener's limit (max_connections; 64 on ops_listen): new ones wait until one closes"
                    );
                    said_at_limit = true;
                }
                tokio::select! {
                    permit = open.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
                    () = &mut shutdown => break,
                    Some(_) = connections.join_next(), if !connections.is_empty() => continue,
                }
            }
        };
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
            TokioIo::new(Stalls::new(stream, limits.stalled_write)),
            TowerToHyperService::new(router.clone()),
        );
        let connection = graceful.watch(connection);
        connections.spawn(async move {
            if let Err(e) = connection.await {
                // A header timeout, a stalled reader, a reset, a malformed request: the
                // client's business.
                tracing::debug!(error = %e, "connection ended with an error");
            }
            drop(permit);
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

/// A connection's socket whose writes fail once the client has taken nothing for `limit`:
/// hyper then closes the connection. Each write that makes progress starts the clock again,
/// so a slow reader is served, and only one that stopped reading is cut off.
struct Stalls<S> {
    inner: S,
    limit: Duration,
    /// Running since the first write that found the client's window full.
    stalled: Option<Pin<Box<Sleep>>>,
}

impl<S> Stalls<S> {
    fn new(inner: S, limit: Duration) -> Self {
        Stalls {
            inner,
            limit,
            stalled: None,
        }
    }

    fn guard<T>(
        &mut self,
        cx: &mut Context<'_>,
        write: Poll<io::Result<T>>,
    ) -> Poll<io::Result<T>> {
        if write.is_ready() {
            self.stalled = None;
            return write;
        }
        let limit = self.limit;
        let clock = self
            .stalled
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match clock.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Err(io::Error::new(
                io::ErrorKind::TimedOut,
                "the client took nothing of the response",
            ))),
            Poll::Pending => Poll::Pending,
        }
    }
}

impl<S: AsyncRead + Unpin> AsyncRead for Stalls<S> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<S: AsyncWrite + Unpin> AsyncWrite for Stalls<S> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        let write = Pin::new(&mut self.inner).poll_write(cx, buf);
        self.guard(cx, write)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        let write = Pin::new(&mut self.inner).poll_write_vectored(cx, bufs);
        self.guard(cx, write)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        let flush = Pin::new(&mut self.inner).poll_flush(cx);
        self.guard(cx, flush)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
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
    let limits = Limits::of(&config);
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
            let ops_listener = TcpListener::bind(address).await.map_err(|e| {
                std::io::Error::new(
                    e.kind(),
                    format!("cannot listen on `ops_listen` = {address}: {e}"),
                )
            })?;
            tracing::info!(address = %ops_listener.local_addr()?, "operations routes listening");
            let app = ops_app(state.clone());
            // A load balancer's probes and Prometheus: a few connections, never the public's.
            let ops_limits = Limits {
                max_connections: OPS_CONNECTIONS,
                ..limits
            };
            Some(tokio::spawn(serve(
                ops_listener,
                app,
                ops_limits,
                std::future::pending(),
            )))
        }
        None => None,
    };
    // Which ledger and which Smart Glocal: a ledger path relative to the working directory
    // (the default's) is a different ledger from another directory, so it is said whole.
    let ledger = state.config.database.describe_whole();
    tracing::info!(
        address = %listener.local_addr()?,
        project = %state.config.project,
        %ledger,
        upstream = %crate::config::without_credentials(&state.config.upstream_url),
        "proxy listening"
    );
    // Stopping ends the event streams first: requests in flight then drain in moments.
    // Refunds still waiting for their payment's lock give up (nothing of theirs was sent).
    let (live, stopping) = (state.live.clone(), state.stopping.clone());
    let stop_began = Arc::new(std::sync::OnceLock::new());
    let shutdown = {
        let stop_began = stop_began.clone();
        async move {
            shutdown.await;
            let _ = stop_began.set(tokio::time::Instant::now());
            stopping.cancel();
            live.close_all();
        }
    };
    // Each connection shares the router; see the module's documentation for the limits.
    serve(listener, app(state.clone()), limits, shutdown).await;
    let stop_began = stop_began
        .get()
        .copied()
        .unwrap_or_else(tokio::time::Instant::now);
    finish_refunds(&state, stop_began).await;
    reconciler.abort();
    ledger_watch.abort();
    trimmer.abort();
    if let Some(ops) = ops {
        ops.abort();
    }
    // Bounded: on PostgreSQL closing waits for every connection in use, a refund's lock
    // connection included, which the wait above has already given up on.
    if tokio::time::timeout(Duration::from_secs(5), state.ledger.close())
        .await
        .is_err()
    {
        tracing::warn!("the ledger's connections did not close within 5 s; stopping without them");
    }
    Ok(())
}

/// Waits for the refunds under way, which run in tasks of their own and outlive their
/// connections (an agent may have closed the tab; the drain cut the rest): one stopped between
/// its call to Smart Glocal and the record of the answer would leave its attempt in doubt, and
/// its payment's amount held, until the next start reconciled it. Each holds its payment's
/// lock at most [`payment_lock_wait`](crate::config::payment_lock_wait) (two calls, 5 s more),
/// so the stop waits at most that long from when it began, the drain included; past it the
/// rest are left to the next start.
async fn finish_refunds(state: &AppState, stop_began: tokio::time::Instant) {
    state.refunds.close();
    if state.refunds.is_empty() {
        return;
    }
    let running = state.refunds.len();
    tracing::info!(running, "stopping: waiting for the refunds under way");
    let limit = crate::config::payment_lock_wait(state.config.upstream_timeout);
    if tokio::time::timeout_at(stop_began + limit, state.refunds.wait())
        .await
        .is_err()
    {
        tracing::error!(
            running = state.refunds.len(),
            waited_secs = limit.as_secs(),
            "stopping with refunds still under way: their attempts stay pending, and the next start asks Smart Glocal about them"
        );
    }
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
            .route(
                "/endless",
                get(|| async {
                    let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
                    Body::from_stream(stream::repeat_with(move || {
                        Ok::<_, std::convert::Infallible>(chunk.clone())
                    }))
                }),
            )
    }

    /// A reader that stops reading is cut off once it has taken nothing for `stalled_write`;
    /// one that reads slowly is not.
    #[tokio::test]
    async fn a_client_that_takes_nothing_of_a_response_is_disconnected() {
        // Small socket buffers on both sides: what the kernels hold for a reader is far less
        // than the slow one reads, so cut off, it would find the end within its loop.
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_send_buffer_size(16 * 1024).unwrap();
        socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
        let listener = socket.listen(64).unwrap();
        let addr = listener.local_addr().unwrap();
        let limits = Limits {
            stalled_write: Duration::from_secs(1),
            ..limits()
        };
        tokio::spawn(serve(listener, router(), limits, std::future::pending()));
        let socket = tokio::net::TcpSocket::new_v4().unwrap();
        socket.set_recv_buffer_size(16 * 1024).unwrap();
        let mut slow = socket.connect(addr).await.unwrap();
        slow.write_all(b"GET /endless HTTP/1.1\r\nHost: x\r\n\r\n")
            .await
            .unwrap();
        let mut stopped = send(addr, "/endless").await;
        // The slow reader takes what has come every 50 ms for 3 s: never stalled a second.
        let mut buffer = vec![0u8; 64 * 1024];
        let mut taken = 0;
        for _ in 0..60 {
            tokio::time::sleep(Duration::from_millis(50)).await;
            let n = slow.read(&mut buffer).await.unwrap();
            assert!(n > 0, "the slow reader is still served after {taken} bytes");
            taken += n;
        }
        // The one that stopped reading finds, after what the kernel buffered, the end.
        let mut rest = Vec::new();
        tokio::time::timeout(Duration::from_secs(5), stopped.read_to_end(&mut rest))
            .await
            .expect("the stalled connection was closed")
            .ok();
    }

    /// At `max_connections`, one more connection waits until one closes, then is served.
    #[tokio::test]
    async fn connections_beyond_the_limit_wait_for_one_to_close() {
        let addr = serving(Limits {
            max_connections: 2,
            ..limits()
        })
        .await;
        let started = std::time::Instant::now();
        // Two answers of 300 ms each, their connections closed after them.
        let mut open = Vec::new();
        for _ in 0..3 {
            let mut socket = TcpStream::connect(addr).await.unwrap();
            socket
                .write_all(b"GET /slow HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                .await
                .unwrap();
            open.push(socket);
        }
        let mut third = open.pop().unwrap();
        let mut answer = String::new();
        tokio::time::timeout(Duration::from_secs(5), third.read_to_string(&mut answer))
            .await
            .expect("the third is served once one of the first two closed")
            .unwrap();
        assert!(answer.ends_with("done"), "{answer}");
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(550),
            "the third waited for a place, then its own 300 ms: {waited:?}"
        );
    }

    fn limits() -> Limits {
        Limits {
            header_read_timeout: Duration::from_secs(5),
            stalled_write: Duration::from_secs(60),
            max_connections: 100,
        }
    }

    /// Serves `router()` with `limits` until the test ends; its address.
    async fn serving(limits: Limits) -> std::net::SocketAddr {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(serve(listener, router(), limits, std::future::pending()));
        addr
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
        let server = tokio::spawn(serve_draining(listener, router(), limits(), drain, async {
            let _ = stopped.await;
        }));
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

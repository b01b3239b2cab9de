//! The servers under test, each in its own process so its memory can be read and its CPU is
//! not the load generator's: the proxy exactly as `proxy serve` runs (its own CLI, its own
//! logging), and a bare axum server that only answers 200, as the ingest baseline (and holds
//! event streams open with nothing in them, as the fan-out's memory baseline).
//!
//! Both are this binary started again with a first argument of `serve` or `bare-serve`
//! (see [`child_main`]). A child exits when its stdin closes, and is started through the
//! shared launcher (the kernel kills it with the bench), so it never outlives the bench, even
//! when the bench is killed.

use std::net::SocketAddr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::StatusCode;
use axum::routing::post;
use axum::Router;

/// The route both the proxy and the bare baseline answer webhooks on.
pub const WEBHOOK_PATH: &str = "/webhooks/smart-glocal";
/// The bare server's event stream: one comment line, then held open with nothing sent.
pub const BARE_EVENTS_PATH: &str = "/bare/events";
/// The bare server's live streams: `GET` subscribes (a comment line, then every frame
/// published); `POST` publishes its body, as it is, to every one of them.
pub const BARE_LIVE_PATH: &str = "/bare/live";

/// If this process was started as a server child, runs it and returns its exit code.
pub fn child_main() -> Option<std::process::ExitCode> {
    let mode = std::env::args().nth(1)?;
    if !matches!(mode.as_str(), "serve" | "bare-serve" | "floor-serve") {
        return None;
    }
    exit_when_stdin_closes();
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    Some(runtime.block_on(async move {
        match mode.as_str() {
            // `bench serve …` parses as `proxy serve …`: the proxy's own command line.
            "serve" => proxy::cli::main().await,
            "floor-serve" => crate::floor::floor_serve().await,
            _ => bare_serve().await,
        }
    }))
}

fn exit_when_stdin_closes() {
    std::thread::spawn(|| {
        let mut sink = Vec::new();
        let _ = std::io::Read::read_to_end(&mut std::io::stdin(), &mut sink);
        std::process::exit(0);
    });
}

/// The baseline: the same routes, no verification, no storage; and, for the fan-out, a
/// broadcast of frames to held-open streams with nothing else around it.
async fn bare_serve() -> std::process::ExitCode {
    let Some(addr) = std::env::args()
        .nth(2)
        .and_then(|a| a.parse::<SocketAddr>().ok())
    else {
        eprintln!("usage: bench bare-serve 127.0.0.1:<port>");
        return std::process::ExitCode::from(2);
    };
    let app = Router::new()
        .route(
            WEBHOOK_PATH,
            post(|_body: axum::body::Bytes| async { StatusCode::OK }),
        )
        .route(
            BARE_EVENTS_PATH,
            axum::routing::get(|| async {
                let first = futures_util::stream::once(async {
                    Ok::<_, std::convert::Infallible>(axum::body::Bytes::from_static(b":\n\n"))
                });
                (
                    [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
                    axum::body::Body::from_stream(futures_util::StreamExt::chain(
                        first,
                        futures_util::stream::pending(),
                    )),
                )
            }),
        )
        .route(
            BARE_LIVE_PATH,
            axum::routing::get(bare_live).post(
                |axum::extract::State(live): axum::extract::State<Live>, frame: Bytes| async move {
                    let _ = live.send(frame);
                    StatusCode::OK
                },
            ),
        )
        .with_state(tokio::sync::broadcast::channel::<Bytes>(64).0);
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .expect("bind the bare server");
    serve(listener, app).await;
    std::process::ExitCode::SUCCESS
}

type Live = tokio::sync::broadcast::Sender<Bytes>;

/// One live stream of the bare server: each frame published is written as it is.
async fn bare_live(
    axum::extract::State(live): axum::extract::State<Live>,
) -> impl axum::response::IntoResponse {
    use tokio::sync::broadcast::error::RecvError;
    let first = futures_util::stream::once(async { Bytes::from_static(b":\n\n") });
    let frames = futures_util::stream::unfold(live.subscribe(), |mut frames| async move {
        loop {
            match frames.recv().await {
                Ok(frame) => return Some((frame, frames)),
                Err(RecvError::Lagged(_)) => {}
                Err(RecvError::Closed) => return None,
            }
        }
    });
    (
        [(axum::http::header::CONTENT_TYPE, "text/event-stream")],
        axum::body::Body::from_stream(futures_util::StreamExt::map(
            futures_util::StreamExt::chain(first, frames),
            Ok::<_, std::convert::Infallible>,
        )),
    )
}

/// Serves `app` with the proxy's own HTTP/1.1 accept loop and settings (`proxy::serve`),
/// so a baseline differs from the proxy only in what its handlers do.
pub async fn serve(listener: tokio::net::TcpListener, app: Router) {
    let limits = proxy::serve::Limits {
        header_read_timeout: Duration::from_secs(10),
        stalled_write: proxy::serve::STALLED_WRITE,
        max_connections: 16_384,
    };
    proxy::serve::serve(listener, app, limits, std::future::pending()).await;
}

/// A server child process on `127.0.0.1`.
pub struct Server {
    pub url: String,
    process: testkit::ServerProcess,
}

impl Server {
    /// The proxy, configured by `PROXY_*` variables (`env`), listening on a free port; its log
    /// goes to `log`. Returns once `/readyz` answers 200.
    pub async fn proxy(env: &[(&str, String)], log: &Path) -> Result<Server, String> {
        let addr = testkit::free_addr()?;
        let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
        command.arg("serve").arg("--listen").arg(addr.to_string());
        // Only what we set: a PROXY_* variable of the caller's shell must not leak in.
        for (name, _) in std::env::vars() {
            if name.starts_with("PROXY_") {
                command.env_remove(name);
            }
        }
        for (name, value) in env {
            command.env(name, value);
        }
        Server::start(command, addr, log, "/readyz", testkit::Ready::Success).await
    }

    /// The bare axum baseline on a free port.
    pub async fn bare(log: &Path) -> Result<Server, String> {
        let addr = testkit::free_addr()?;
        let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
        command.arg("bare-serve").arg(addr.to_string());
        Server::start(command, addr, log, "/", testkit::Ready::Answer).await
    }

    /// The storage floor ([`crate::floor`]) on a free port, its SQLite file at `database`.
    pub async fn floor(log: &Path, database: &Path) -> Result<Server, String> {
        Server::floor_writing(log, database, &[]).await
    }

    /// The storage floor writing, per webhook, the rows the proxy's ledger keeps for it
    /// (`ledger-rows` in [`crate::floor`]).
    pub async fn floor_with_ledger_rows(log: &Path, database: &Path) -> Result<Server, String> {
        Server::floor_writing(log, database, &["ledger-rows"]).await
    }

    async fn floor_writing(log: &Path, database: &Path, args: &[&str]) -> Result<Server, String> {
        let addr = testkit::free_addr()?;
        let mut command = Command::new(std::env::current_exe().map_err(|e| e.to_string())?);
        command
            .arg("floor-serve")
            .arg(addr.to_string())
            .arg(database)
            .args(args);
        Server::start(
            command,
            addr,
            log,
            crate::floor::LOOKUP_PATH,
            testkit::Ready::Success,
        )
        .await
    }

    async fn start(
        mut command: Command,
        addr: SocketAddr,
        log: &Path,
        probe: &str,
        ready: testkit::Ready,
    ) -> Result<Server, String> {
        let log = std::fs::File::create(log).map_err(|e| format!("{}: {e}", log.display()))?;
        command
            .stdin(Stdio::piped())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log);
        let process =
            testkit::ServerProcess::start(command, addr, probe, ready, Duration::from_secs(15))
                .await
                .map_err(|e| format!("a server child: {e}"))?;
        Ok(Server {
            url: process.url.clone(),
            process,
        })
    }

    pub fn pid(&self) -> u32 {
        self.process.pid()
    }

    /// Resident memory now (`VmRSS`) and at its peak (`VmHWM`), bytes.
    pub fn memory(&self) -> Option<(u64, u64)> {
        memory_of(self.pid())
    }

    /// CPU time used so far (see [`cpu_of`]); zero if it cannot be read.
    pub fn cpu(&self) -> Duration {
        cpu_of(self.pid()).unwrap_or_default()
    }

    /// Context switches so far (see [`switches_of`]).
    pub fn switches(&self) -> Switches {
        switches_of(self.pid())
    }
}

/// Context switches of a process's threads: `voluntary` when a thread went to sleep (it
/// waited for a lock, a channel, a socket, the disk: each hand-off to another thread is one),
/// `preempted` when the scheduler took the core away.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Switches {
    pub voluntary: u64,
    pub preempted: u64,
}

impl Switches {
    pub fn since(self, earlier: Switches) -> Switches {
        Switches {
            voluntary: self.voluntary.saturating_sub(earlier.voluntary),
            preempted: self.preempted.saturating_sub(earlier.preempted),
        }
    }

    pub fn add(&mut self, more: Switches) {
        self.voluntary += more.voluntary;
        self.preempted += more.preempted;
    }
}

/// Context switches of process `pid`, summed over its live threads (`/proc/<pid>/task/*/status`;
/// a thread that has exited takes its count with it). Zero if none can be read.
pub fn switches_of(pid: u32) -> Switches {
    let mut total = Switches::default();
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return total;
    };
    for task in tasks.flatten() {
        if let Ok(status) = std::fs::read_to_string(task.path().join("status")) {
            total.add(switches_in(&status));
        }
    }
    total
}

fn switches_in(status: &str) -> Switches {
    Switches {
        voluntary: status_count(status, "voluntary_ctxt_switches").unwrap_or(0),
        preempted: status_count(status, "nonvoluntary_ctxt_switches").unwrap_or(0),
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // Closing stdin makes the child exit; the process then stops it (SIGTERM, SIGKILL).
        drop(self.process.child_mut().stdin.take());
    }
}

/// Resident memory now (`VmRSS`) and at its peak (`VmHWM`) of process `pid`, bytes.
pub fn memory_of(pid: u32) -> Option<(u64, u64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    Some((
        status_count(&status, "VmRSS")? * 1024,
        status_count(&status, "VmHWM")? * 1024,
    ))
}

/// CPU time process `pid` has used so far (user + system, all threads), from
/// `/proc/<pid>/stat`, at the kernel's clock-tick resolution (normally 10 ms).
pub fn cpu_of(pid: u32) -> Option<Duration> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    cpu_from_stat(&stat)
}

fn cpu_from_stat(stat: &str) -> Option<Duration> {
    // The command name (field 2) may hold spaces; the fields after its `)` are plain.
    let rest = &stat[stat.rfind(')')? + 1..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // Fields 14 and 15 of the whole line (utime, stime) are 12 and 13 after the name.
    let ticks: u64 = fields.get(11)?.parse::<u64>().ok()? + fields.get(12)?.parse::<u64>().ok()?;
    // SAFETY: sysconf only reads a configuration value.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    let per_second = u64::try_from(per_second).ok().filter(|&n| n > 0)?;
    Some(Duration::from_micros(ticks * 1_000_000 / per_second))
}

/// The number after `field:` in a `/proc` status file (kB for the `Vm…` fields).
fn status_count(status: &str, field: &str) -> Option<u64> {
    let line = status.lines().find(|l| {
        l.strip_prefix(field)
            .is_some_and(|rest| rest.starts_with(':'))
    })?;
    line.split_whitespace().nth(1)?.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_time_is_read_after_the_command_name() {
        let stat = "42 (bench serve) S 1 42 42 0 -1 4194560 100 0 0 0 250 50 0 0 20 0 4 0";
        let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as u64;
        assert_eq!(
            cpu_from_stat(stat),
            Some(Duration::from_micros(300 * 1_000_000 / ticks))
        );
    }

    #[test]
    fn voluntary_and_preempted_switches_are_told_apart() {
        let status = "Name:\ttokio-rt-worker\nvoluntary_ctxt_switches:\t6323\n\
                      nonvoluntary_ctxt_switches:\t3225\n";
        assert_eq!(
            switches_in(status),
            Switches {
                voluntary: 6323,
                preempted: 3225
            }
        );
    }

    #[test]
    fn a_live_process_has_switched_at_least_once() {
        let pid = std::process::id();
        std::thread::sleep(Duration::from_millis(5));
        assert!(switches_of(pid).voluntary > 0);
        assert_eq!(switches_of(u32::MAX), Switches::default());
    }

    #[test]
    fn memory_fields_are_read_in_kilobytes() {
        let status = "Name:\tproxy\nVmHWM:\t   40960 kB\nVmRSS:\t   20480 kB\n";
        assert_eq!(status_count(status, "VmRSS"), Some(20480));
        assert_eq!(status_count(status, "VmHWM"), Some(40960));
        assert_eq!(status_count(status, "VmSwap"), None);
    }
}

//! Tooling the proxy tests, the end-to-end suite, the benches and the demo share; a
//! development crate, never part of a shipped binary.
//!
//! - [`wait_ready`]: "wait until it answers", once: polls a URL until the server is ready,
//!   so nothing races a server's start-up (the proxy runs its migrations before it serves).
//!   [`wait_ready_unless`] is the same loop that also gives up as soon as the caller says so
//!   (a child exited, a signal came); [`wait_ready_blocking`] runs it for synchronous code
//!   (the demo's `cargo xtask demo`) on a runtime of its own.
//!
//! - [`process`]: a server in a child process on a free loopback port, ready when returned,
//!   stopped when dropped; built on `launcher` (children that die with their parent).
//!
//! - [`postgres`]: a throwaway PostgreSQL cluster started from the server binaries (no
//!   container, no system service) on a free loopback port, with a database per test
//!   ([`postgres::Cluster::fresh_database`]), one process-wide cluster for a suite
//!   ([`postgres::shared`]), and a way to take the server down and back up mid-test;
//!   stopped and removed when dropped, or by its watchdog when the test process is killed.
//!
//! - [`widget_size`]: the widget's files in `dist/`, raw, gzip and brotli: one measurement
//!   for `cargo xtask widget`'s budget and the bench's report.

pub mod postgres;
pub mod process;
pub mod widget_size;

pub use process::{free_addr, ServerProcess};

use std::time::{Duration, Instant};

/// What counts as ready.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ready {
    /// A 2xx answer (`/readyz`, `/healthz`, the sandbox's `/_sandbox/faults`).
    Success,
    /// Any HTTP answer: the server accepts and answers, whatever it says.
    Answer,
}

/// How often [`wait_ready`] asks.
const POLL: Duration = Duration::from_millis(20);

/// Why a wait ended with the server not ready.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NotReady<T> {
    /// Time ran out; says what the last answer (or connection error) was.
    TimedOut(String),
    /// The caller's `interrupt` returned this.
    Interrupted(T),
}

/// Asks `GET url` until the answer is [`Ready`], for at most `within`; the error says what the
/// last answer (or connection error) was.
pub async fn wait_ready(url: &str, ready: Ready, within: Duration) -> Result<(), String> {
    wait_ready_unless(url, ready, within, || None::<std::convert::Infallible>)
        .await
        .map_err(|e| match e {
            NotReady::TimedOut(why) => why,
            NotReady::Interrupted(never) => match never {},
        })
}

/// [`wait_ready`], asking `interrupt` before every request: the wait ends with
/// [`NotReady::Interrupted`] as soon as it returns something.
pub async fn wait_ready_unless<T>(
    url: &str,
    ready: Ready,
    within: Duration,
    mut interrupt: impl FnMut() -> Option<T>,
) -> Result<(), NotReady<T>> {
    let client = reqwest::Client::new();
    let started = Instant::now();
    loop {
        if let Some(reason) = interrupt() {
            return Err(NotReady::Interrupted(reason));
        }
        let answer = client.get(url).timeout(Duration::from_secs(1)).send().await;
        let last = match answer {
            Ok(r) if ready == Ready::Answer || r.status().is_success() => return Ok(()),
            Ok(r) => format!("still answers {}", r.status()),
            Err(e) => format!("never answered: {e}"),
        };
        if started.elapsed() >= within {
            return Err(NotReady::TimedOut(format!("{url} {last} after {within:?}")));
        }
        tokio::time::sleep(POLL).await;
    }
}

/// [`wait_ready_unless`] for synchronous code, on a single-threaded runtime made for the wait.
/// Must not be called from inside a tokio runtime (use the async one there). A runtime the OS
/// will not give (no threads or file descriptors left) ends the wait as
/// [`NotReady::TimedOut`], with that reason.
pub fn wait_ready_blocking<T>(
    url: &str,
    ready: Ready,
    within: Duration,
    interrupt: impl FnMut() -> Option<T>,
) -> Result<(), NotReady<T>> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| NotReady::TimedOut(format!("no runtime to wait for {url}: {e}")))?;
    runtime.block_on(wait_ready_unless(url, ready, within, interrupt))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    /// A server on a free port answering every request with `status`, after `delay`.
    async fn server(status: &'static str, delay: Duration) -> String {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/readyz", listener.local_addr().unwrap());
        tokio::spawn(async move {
            tokio::time::sleep(delay).await;
            loop {
                let (mut socket, _) = listener.accept().await.unwrap();
                tokio::spawn(async move {
                    let mut head = [0u8; 1024];
                    let _ = socket.read(&mut head).await;
                    let answer = format!(
                        "HTTP/1.1 {status}\r\ncontent-length: 0\r\nconnection: close\r\n\r\n"
                    );
                    let _ = socket.write_all(answer.as_bytes()).await;
                });
            }
        });
        url
    }

    #[tokio::test]
    async fn waits_for_a_server_that_starts_answering_late() {
        let url = server("200 OK", Duration::from_millis(300)).await;
        let started = Instant::now();
        wait_ready(&url, Ready::Success, Duration::from_secs(5))
            .await
            .unwrap();
        assert!(started.elapsed() >= Duration::from_millis(250));
    }

    #[tokio::test]
    async fn a_server_that_is_not_ready_fails_with_its_last_answer() {
        let url = server("503 Service Unavailable", Duration::ZERO).await;
        let error = wait_ready(&url, Ready::Success, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(error.contains("503"), "{error}");
        wait_ready(&url, Ready::Answer, Duration::from_millis(200))
            .await
            .unwrap();
    }

    #[tokio::test]
    async fn an_interrupt_ends_the_wait_at_once_with_its_reason() {
        let url = server("503 Service Unavailable", Duration::ZERO).await;
        let mut asked = 0;
        let started = Instant::now();
        let result = wait_ready_unless(&url, Ready::Success, Duration::from_secs(30), || {
            asked += 1;
            (asked == 3).then_some("child exited")
        })
        .await;
        assert_eq!(result, Err(NotReady::Interrupted("child exited")));
        assert!(started.elapsed() < Duration::from_secs(5));
    }

    #[test]
    fn the_blocking_wait_answers_like_the_async_one() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        std::thread::spawn(move || {
            use std::io::{Read, Write};
            for mut stream in listener.incoming().flatten() {
                let _ = stream.read(&mut [0u8; 1024]);
                let _ = stream.write_all(
                    b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
                );
            }
        });
        let url = format!("http://{addr}/readyz");
        wait_ready_blocking(&url, Ready::Success, Duration::from_secs(5), || None::<()>).unwrap();
        let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let nobody = format!("http://{}/readyz", closed.local_addr().unwrap());
        drop(closed);
        match wait_ready_blocking(&nobody, Ready::Answer, Duration::from_millis(100), || {
            None::<()>
        }) {
            Err(NotReady::TimedOut(why)) => assert!(why.contains("never answered"), "{why}"),
            other => panic!("{other:?}"),
        }
    }

    #[tokio::test]
    async fn nothing_listening_fails_in_time() {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/readyz", listener.local_addr().unwrap());
        drop(listener);
        let error = wait_ready(&url, Ready::Success, Duration::from_millis(200))
            .await
            .unwrap_err();
        assert!(error.contains("never answered"), "{error}");
    }
}

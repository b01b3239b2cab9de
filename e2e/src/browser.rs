//! Headless Chromium behind chromedriver on a free loopback port, and a WebDriver session to it.
//!
//! No TLS anywhere: fantoccini talks to chromedriver through a plain `hyper_util` connector,
//! so the suite needs no OpenSSL (see `docs/TOOLCHAIN.md`).

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use fantoccini::{Client, ClientBuilder};
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{json, Value};
use tempfile::TempDir;

use crate::BoxError;

/// Where Debian installs them (`apt-get install chromium chromium-driver`).
pub const CHROMIUM: &str = "/usr/bin/chromium";
pub const CHROMEDRIVER: &str = "/usr/bin/chromedriver";

/// Flags that work as root in a container without network: without the background-networking
/// ones Chromium floods the closed network with connection attempts.
const CHROMIUM_FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-extensions",
    "--window-size=1920,1080",
    "--lang=en-US",
];

/// A running chromedriver, one Chromium it started, and the WebDriver session to it.
///
/// Dropping it ends the session (Chromium exits), stops chromedriver and deletes the profile.
pub struct Browser {
    pub client: Client,
    driver: DriverProcess,
}

impl Browser {
    /// Starts chromedriver on a free port and opens a session with a fresh profile.
    pub async fn start() -> Result<Self, BoxError> {
        for program in [CHROMIUM, CHROMEDRIVER] {
            if !Path::new(program).exists() {
                return Err(format!(
                    "{program} is missing: run `cargo xtask setup --browser` \
                     (Debian packages chromium and chromium-driver)"
                )
                .into());
            }
        }
        let driver = DriverProcess::start()?;
        let capabilities = json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": CHROMIUM,
                "args": CHROMIUM_FLAGS
                    .iter()
                    .map(|f| f.to_string())
                    .chain([format!("--user-data-dir={}", driver.profile.path().display())])
                    .collect::<Vec<_>>(),
            },
            // Keeps the page's console for the failure artifacts (read through `/se/log`).
            "goog:loggingPrefs": { "browser": "ALL" },
        });
        let Value::Object(capabilities) = capabilities else {
            unreachable!("an object literal")
        };
        let client = ClientBuilder::new(HttpConnector::new())
            .capabilities(capabilities)
            .connect(&driver.url())
            .await
            .map_err(|e| format!("chromedriver at {} refused a session: {e}", driver.url()))?;
        let session_id = client.session_id().await?.unwrap_or_default();
        let mut browser = Self { client, driver };
        browser.driver.session_id = Some(session_id);
        Ok(browser)
    }

    /// The WebDriver session's id, for chromedriver's own endpoints.
    pub fn session_id(&self) -> &str {
        self.driver.session_id.as_deref().unwrap_or_default()
    }

    /// chromedriver's base URL, `http://127.0.0.1:<port>`.
    pub fn driver_url(&self) -> String {
        self.driver.url()
    }

    /// Hands the processes over so they can be stopped outside of a destructor (the shared
    /// browser lives in a `static`, which Rust never drops).
    pub(crate) fn into_parts(self) -> (Client, DriverProcess) {
        (self.client, self.driver)
    }
}

/// The browser console since the last call: chromedriver's `goog:loggingPrefs` buffer, read
/// (and emptied) through its `/se/log` endpoint, one line per entry.
pub async fn console_log(driver_url: &str, session_id: &str) -> Result<Vec<String>, BoxError> {
    let response = reqwest::Client::new()
        .post(format!("{driver_url}/session/{session_id}/se/log"))
        .json(&json!({ "type": "browser" }))
        .timeout(Duration::from_secs(5))
        .send()
        .await?;
    let body: Value = response.json().await?;
    let entries = body["value"].as_array().cloned().unwrap_or_default();
    Ok(entries
        .iter()
        .map(|entry| {
            format!(
                "{} {:<7} {}",
                entry["timestamp"].as_i64().unwrap_or_default(),
                entry["level"].as_str().unwrap_or("?"),
                entry["message"].as_str().unwrap_or_default()
            )
        })
        .collect())
}

/// The chromedriver child process and the Chromium profile folder it uses.
pub(crate) struct DriverProcess {
    child: Child,
    addr: SocketAddr,
    profile: TempDir,
    session_id: Option<String>,
}

impl DriverProcess {
    fn start() -> Result<Self, BoxError> {
        let profile = tempfile::Builder::new().prefix("e2e-chromium-").tempdir()?;
        // Another process can take the port between our probe and chromedriver's bind: retry.
        let mut last_error = String::new();
        for _ in 0..3 {
            let addr = free_port()?;
            let mut command = Command::new(CHROMEDRIVER);
            command
                .arg(format!("--port={}", addr.port()))
                .arg("--allowed-ips=127.0.0.1")
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null());
            // Through the launcher: chromedriver dies with the test binary even when that is
            // killed (its `Drop` below only runs on a normal exit).
            let mut child = launcher::spawn(command)
                .map_err(|e| format!("cannot start {CHROMEDRIVER}: {e}"))?;
            match wait_until_listening(addr, &mut child, Duration::from_secs(10)) {
                Ok(()) => {
                    return Ok(Self {
                        child,
                        addr,
                        profile,
                        session_id: None,
                    })
                }
                Err(e) => {
                    let _ = child.kill();
                    let _ = child.wait();
                    last_error = e;
                }
            }
        }
        Err(format!("chromedriver did not start: {last_error}").into())
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

/// Ends the session with a blocking request (this also runs at process exit, where no async
/// runtime is left), so Chromium quits; then stops chromedriver. The profile folder goes with
/// the `TempDir` field.
impl Drop for DriverProcess {
    fn drop(&mut self) {
        if let Some(id) = self.session_id.take() {
            let _ = blocking_delete(self.addr, &format!("/session/{id}"));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn free_port() -> std::io::Result<SocketAddr> {
    let port = launcher::ports::free_ports(1)?.pop();
    port.map(launcher::ports::loopback)
        .ok_or_else(|| std::io::Error::other("no free port"))
}

fn wait_until_listening(
    addr: SocketAddr,
    child: &mut Child,
    limit: Duration,
) -> Result<(), String> {
    let start = Instant::now();
    while start.elapsed() < limit {
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("chromedriver exited with {status}"));
        }
        if TcpStream::connect_timeout(&addr, Duration::from_millis(100)).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!("nothing listened on {addr} after {limit:?}"))
}

/// `DELETE <path>` with std only: closing a session must work without a runtime.
fn blocking_delete(addr: SocketAddr, path: &str) -> std::io::Result<()> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    write!(
        stream,
        "DELETE {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    // chromedriver answers once Chromium has quit; it may keep the connection open after, so
    // the first bytes of the answer are enough.
    let mut answer = [0u8; 512];
    let _ = stream.read(&mut answer);
    Ok(())
}

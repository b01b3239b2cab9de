//! A server in a child process on a loopback port: started through `launcher` (the kernel
//! kills it with this process, however this process ends), returned once it answers
//! ([`ServerProcess::start`]; or at once by [`ServerProcess::spawn`], for a caller that starts
//! several and then waits for each), and stopped (SIGTERM, then SIGKILL after a grace period)
//! when dropped.

use std::io;
use std::net::SocketAddr;
use std::process::{Child, Command, ExitStatus};
use std::time::Duration;

use crate::{wait_ready_unless, NotReady, Ready};

/// How long a dropped server gets between SIGTERM and SIGKILL.
const DROP_GRACE: Duration = Duration::from_secs(2);

/// A running server child.
pub struct ServerProcess {
    /// `http://127.0.0.1:<port>`, no trailing slash.
    pub url: String,
    pub addr: SocketAddr,
    child: Child,
}

/// A loopback address nobody listens on now (the child binds it a moment later; see
/// `launcher::ports::free_ports`).
pub fn free_addr() -> Result<SocketAddr, String> {
    let port = launcher::ports::free_ports(1)
        .map_err(|e| format!("no free port: {e}"))?
        .pop()
        .ok_or("no free port")?;
    Ok(launcher::ports::loopback(port))
}

impl ServerProcess {
    /// Starts `command` (which must make the server listen on `addr`) and waits until
    /// `GET <probe>` is [`Ready`], for at most `within`. If it is not, the child is stopped
    /// and the error says why (its exit status as soon as it dies).
    pub async fn start(
        command: Command,
        addr: SocketAddr,
        probe: &str,
        ready: Ready,
        within: Duration,
    ) -> Result<ServerProcess, String> {
        let program = command.get_program().to_string_lossy().into_owned();
        let mut server = ServerProcess::spawn(command, addr)?;
        let url = server.url(probe);
        match wait_ready_unless(&url, ready, within, || server.exited()).await {
            Ok(()) => Ok(server),
            Err(NotReady::Interrupted(status)) => Err(format!(
                "{program} exited ({status}) before it was ready at {url}"
            )),
            Err(NotReady::TimedOut(e)) => Err(format!("{program} did not become ready: {e}")),
        }
    }

    /// Starts `command` (which must make the server listen on `addr`) and returns at once,
    /// without waiting for it to answer: the caller waits ([`crate::wait_ready_unless`]).
    pub fn spawn(command: Command, addr: SocketAddr) -> Result<ServerProcess, String> {
        let program = command.get_program().to_string_lossy().into_owned();
        let child = launcher::spawn(command).map_err(|e| format!("cannot start {program}: {e}"))?;
        Ok(ServerProcess {
            url: format!("http://{addr}"),
            addr,
            child,
        })
    }

    /// Its exit status if it has exited (reaped), `None` while it runs.
    pub fn exited(&mut self) -> Option<ExitStatus> {
        self.child.try_wait().ok().flatten()
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// The child itself (its stdin, say).
    pub fn child_mut(&mut self) -> &mut Child {
        &mut self.child
    }

    /// `kill -9`: no chance to finish anything; reaped, so its port is free on return.
    pub fn kill_hard(&mut self) -> io::Result<ExitStatus> {
        self.child.kill()?;
        self.child.wait()
    }

    /// SIGTERM, then SIGKILL if it still runs after `grace`; its exit status.
    pub fn stop(&mut self, grace: Duration) -> io::Result<ExitStatus> {
        launcher::stop_all(&mut [&mut self.child], grace)
            .pop()
            .unwrap_or_else(|| Err(io::Error::other("no status")))
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.stop(DROP_GRACE);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_child_that_dies_before_it_answers_is_reported_with_its_status() {
        let addr = free_addr().unwrap();
        let mut command = Command::new("sh");
        command.args(["-c", "exit 3"]);
        let error = ServerProcess::start(
            command,
            addr,
            "/",
            Ready::Answer,
            Duration::from_millis(500),
        )
        .await
        .err()
        .expect("nothing answers");
        assert!(error.contains("exited") && error.contains('3'), "{error}");
    }

    #[tokio::test]
    async fn a_server_child_is_ready_then_stopped_and_its_port_freed_on_drop() {
        let addr = free_addr().unwrap();
        // A one-line HTTP server: python3 is on every machine this project builds on.
        let mut command = Command::new("python3");
        command.args([
            "-m",
            "http.server",
            "--bind",
            "127.0.0.1",
            &addr.port().to_string(),
        ]);
        command.stdout(std::process::Stdio::null());
        command.stderr(std::process::Stdio::null());
        let server =
            ServerProcess::start(command, addr, "/", Ready::Success, Duration::from_secs(10))
                .await
                .unwrap();
        let pid = server.pid();
        drop(server);
        assert!(launcher::ports::is_free(addr), "port still held after drop");
        assert!(
            !std::path::Path::new(&format!("/proc/{pid}")).exists(),
            "the child still runs"
        );
    }
}

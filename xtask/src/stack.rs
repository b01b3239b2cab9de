//! `cargo xtask demo`: the sandbox and the proxies on loopback, the widget served by the proxy.

use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command};
use std::time::{Duration, Instant};

use crate::setup::{self, root};
use crate::{stage, widget, Result};

pub const SANDBOX: &str = "127.0.0.1:7070";
pub const PROXY: &str = "127.0.0.1:8080";
pub const PROXY_FULL_ONLY: &str = "127.0.0.1:8081";

/// Children are killed when the demo stops, whichever way it stops.
struct Processes(Vec<(&'static str, Child)>);

impl Drop for Processes {
    fn drop(&mut self) {
        for (_, child) in &mut self.0 {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

pub fn demo() -> Result {
    stage("setup", || setup::run(false))?;
    stage("widget release build", || {
        widget::build_release().map(|_| ())
    })?;
    stage("sandbox and proxy build", || {
        setup::cargo(&["build", "--locked", "-p", "sandbox", "-p", "proxy"], &[])
    })?;

    let bin = root().join("target/debug");
    let mut processes = Processes(Vec::new());
    let start = |name: &'static str, args: &[&str]| -> Result<(&'static str, Child)> {
        let child = Command::new(bin.join(name))
            .args(args)
            .current_dir(root())
            .spawn()
            .map_err(|e| format!("cannot start {name}: {e}"))?;
        Ok((name, child))
    };
    processes.0.push(start("sandbox", &[])?);
    processes
        .0
        .push(start("proxy", &["serve", "--config", "demo/proxy.toml"])?);
    processes.0.push(start(
        "proxy",
        &["serve", "--config", "demo/proxy-full-only.toml"],
    )?);
    for addr in [SANDBOX, PROXY, PROXY_FULL_ONLY] {
        wait_for(addr, &mut processes)?;
    }

    println!();
    println!("  Demo merchant admin page:  http://{PROXY}/");
    println!("  (Smart Glocal sandbox on http://{SANDBOX}, second project's proxy on http://{PROXY_FULL_ONLY})");
    println!("  Press Ctrl-C to stop.");
    println!();

    loop {
        for (name, child) in &mut processes.0 {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("{name} exited: {status}"));
            }
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn wait_for(addr: &str, processes: &mut Processes) -> Result {
    let addr: SocketAddr = addr.parse().unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(());
        }
        for (name, child) in &mut processes.0 {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!("{name} exited before listening: {status}"));
            }
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    Err(format!("nothing listens on {addr} after 30 s"))
}

//! `cargo xtask demo` owns its processes: the real xtask binary starts the real sandbox and
//! proxies on free ports (`launcher::ports::free_ports`: never the demo's defaults, so a
//! running demo is not disturbed), then is ended by SIGTERM, SIGHUP or SIGKILL; no child may survive it and every
//! port must be free again. A taken port must stop the demo before anything starts.
//!
//! Every wait has a deadline, and a failing test kills what it started.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use launcher::ports::{self, loopback};

/// The sandbox and proxy binaries the demo starts, built once per test run (a no-op when
/// `cargo test` of the workspace built them already).
fn build_services() {
    static BUILT: OnceLock<Result<(), String>> = OnceLock::new();
    let result = BUILT.get_or_init(|| {
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap();
        let mut command = Command::new(cargo);
        command
            .args(["build", "--locked", "-p", "sandbox", "-p", "proxy"])
            .current_dir(root);
        // What cargo set for this test (`CARGO_MANIFEST_DIR=…/xtask`, …) would reach ring's
        // build script, which watches it, and rebuild half the tree on every run.
        for (name, _) in std::env::vars_os() {
            let name = name.to_string_lossy();
            if [
                "CARGO_MANIFEST_",
                "CARGO_PKG_",
                "CARGO_CRATE_",
                "CARGO_BIN_",
                "CARGO_PRIMARY_",
            ]
            .iter()
            .any(|prefix| name.starts_with(prefix))
                || name == "CARGO_TARGET_TMPDIR"
            {
                command.env_remove(name.as_ref());
            }
        }
        let mut child = launcher::spawn(command).map_err(|e| e.to_string())?;
        // A cold build of the proxy on a loaded machine takes minutes; never wait forever.
        let status = wait(&mut child, Duration::from_secs(1200))
            .ok_or("`cargo build -p sandbox -p proxy` took over 20 minutes")?;
        status
            .success()
            .then_some(())
            .ok_or_else(|| format!("`cargo build -p sandbox -p proxy` failed: {status}"))
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

fn wait(child: &mut Child, limit: Duration) -> Option<std::process::ExitStatus> {
    let started = Instant::now();
    while started.elapsed() < limit {
        if let Some(status) = child.try_wait().expect("try_wait on our child") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    None
}

/// A process as `/proc/<pid>/stat` shows it: enough to tell it from a later one with its pid.
#[derive(Debug, Clone, PartialEq)]
struct Proc {
    pid: u32,
    name: String,
    state: char,
    parent: u32,
    start_time: u64,
}

fn proc_stat(pid: u32) -> Option<Proc> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // `pid (comm) state ppid …`: comm may hold spaces and parentheses, so split at the last ')'.
    let (head, rest) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1.to_owned();
    let fields: Vec<&str> = rest.split_whitespace().collect();
    Some(Proc {
        pid,
        name,
        state: fields.first()?.chars().next()?,
        parent: fields.get(1)?.parse().ok()?,
        // Field 22 of stat(5); the fields after comm start at field 3.
        start_time: fields.get(19)?.parse().ok()?,
    })
}

fn children_of(parent: u32) -> Vec<Proc> {
    std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter_map(proc_stat)
        .filter(|p| p.parent == parent)
        .collect()
}

/// Still running: the same process (same start time) and not a zombie waiting to be reaped.
fn alive(process: &Proc) -> bool {
    proc_stat(process.pid)
        .is_some_and(|now| now.start_time == process.start_time && now.state != 'Z')
}

/// A demo started by the test, with its output. Dropping it kills whatever is left of it.
struct Demo {
    xtask: Child,
    output: mpsc::Receiver<String>,
    seen: Vec<String>,
    children: Vec<Proc>,
    ports: Vec<u16>,
    _data: tempfile::TempDir,
}

impl Demo {
    fn start(ports: &[u16], build: bool) -> Demo {
        Demo::start_with(ports, build, &[])
    }

    fn start_with(ports: &[u16], build: bool, extra: &[&str]) -> Demo {
        let data = tempfile::Builder::new()
            .prefix("xtask-demo-test-")
            .tempdir()
            .unwrap();
        let list = ports
            .iter()
            .map(u16::to_string)
            .collect::<Vec<_>>()
            .join(",");
        let mut command = Command::new(env!("CARGO_BIN_EXE_xtask"));
        command.args(["demo", "--ports", &list, "--data-dir"]);
        command.arg(data.path().join("ledgers"));
        if !build {
            command.arg("--no-build");
        }
        command.args(extra);
        command
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Through the launcher too: should this test binary die, the xtask (and so its
        // children) die with it.
        let mut xtask = launcher::spawn(command).expect("start the xtask binary");
        let (sender, output) = mpsc::channel();
        let stdout = xtask.stdout.take().unwrap();
        let stderr = xtask.stderr.take().unwrap();
        for stream in [
            Box::new(stdout) as Box<dyn std::io::Read + Send>,
            Box::new(stderr),
        ] {
            let sender = sender.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(stream).lines().map_while(|l| l.ok()) {
                    if sender.send(line).is_err() {
                        break;
                    }
                }
            });
        }
        Demo {
            xtask,
            output,
            seen: Vec::new(),
            children: Vec::new(),
            ports: ports.to_vec(),
            _data: data,
        }
    }

    /// Waits for a line containing `text` (or finds it among those already read); the whole
    /// output so far in the panic otherwise.
    fn wait_for_line(&mut self, text: &str, limit: Duration) {
        if self.seen.iter().any(|l| l.contains(text)) {
            return;
        }
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            match self.output.recv_timeout(Duration::from_millis(100)) {
                Ok(line) => {
                    let found = line.contains(text);
                    self.seen.push(line);
                    if found {
                        return;
                    }
                }
                Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => break,
            }
        }
        panic!(
            "no line with {text:?} within {limit:?}; the demo said:\n{}",
            self.seen.join("\n")
        );
    }

    fn drain(&mut self) {
        while let Ok(line) = self.output.try_recv() {
            self.seen.push(line);
        }
    }

    fn signal(&self, signal: libc::c_int) {
        // SAFETY: kill(2) on our own child, not yet reaped.
        let result = unsafe { libc::kill(self.xtask.id() as libc::pid_t, signal) };
        assert_eq!(result, 0, "kill({}, {signal})", self.xtask.id());
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        // Only when a test failed midway is anything left: ours, by pid and start time.
        for child in &self.children {
            if alive(child) {
                // SAFETY: kill(2) on a process we checked is still the one the demo started.
                unsafe {
                    libc::kill(child.pid as libc::pid_t, libc::SIGKILL);
                }
            }
        }
        let _ = self.xtask.kill();
        let _ = self.xtask.wait();
    }
}

/// Starts the demo on free ports, ends the xtask with `signal`, and checks that nothing of it
/// is left.
fn the_demo_leaves_nothing_behind(signal: libc::c_int) {
    build_services();
    let ports = ports::free_ports(3).unwrap();
    let mut demo = Demo::start(&ports, false);
    demo.wait_for_line("Demo merchant admin page:", Duration::from_secs(120));
    demo.wait_for_line("Press Ctrl-C to stop.", Duration::from_secs(5));

    // The banner promises that everything answers: every port is held by one of its children.
    let xtask_pid = demo.xtask.id();
    demo.children = children_of(xtask_pid);
    let names: Vec<&str> = demo.children.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(demo.children.len(), 3, "the demo's children: {names:?}");
    for port in &ports {
        let holder = ports::holder(*port).unwrap_or_else(|| panic!("nobody holds port {port}"));
        assert!(
            demo.children.iter().any(|c| c.pid == holder.pid),
            "port {port} is held by {holder:?}, not by a child of the demo ({names:?})"
        );
    }

    demo.signal(signal);
    let status = wait(&mut demo.xtask, Duration::from_secs(30))
        .expect("the xtask did not exit within 30 s of the signal");
    demo.drain();
    if signal == libc::SIGKILL {
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(libc::SIGKILL));
    } else {
        // Caught: the children are stopped in order before the xtask exits.
        assert!(
            status.success(),
            "{status}; the demo said:\n{}",
            demo.seen.join("\n")
        );
        // The reader thread may still be passing the last line on after the exit.
        demo.wait_for_line("ports free", Duration::from_secs(5));
    }

    // SIGKILL cannot be caught: the kernel's death signal ends the children, a moment later.
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let survivors: Vec<&Proc> = demo.children.iter().filter(|c| alive(c)).collect();
        let taken: Vec<u16> = demo
            .ports
            .iter()
            .copied()
            .filter(|p| !ports::is_free(loopback(*p)))
            .collect();
        if survivors.is_empty() && taken.is_empty() {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "10 s after the xtask ended: survivors {survivors:?}, ports still taken {taken:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sigterm_to_the_demo_stops_every_child_and_frees_every_port() {
    the_demo_leaves_nothing_behind(libc::SIGTERM);
}

#[test]
fn sighup_to_the_demo_stops_every_child_and_frees_every_port() {
    the_demo_leaves_nothing_behind(libc::SIGHUP);
}

#[test]
fn sigkill_of_the_demo_takes_every_child_with_it_and_frees_every_port() {
    the_demo_leaves_nothing_behind(libc::SIGKILL);
}

/// The postmaster of the throwaway PostgreSQL the process `owner` started, from the cluster
/// folder it owns (`testkit::postgres`: `cluster-*/owner.pid`, `data/postmaster.pid`).
fn postmaster_of(owner: u32) -> Option<u32> {
    let base = std::env::temp_dir().join("sg-refund-pg");
    std::fs::read_dir(base).ok()?.flatten().find_map(|entry| {
        let dir = entry.path();
        let owned = std::fs::read_to_string(dir.join("owner.pid")).ok()?;
        if owned.trim() != owner.to_string() {
            return None;
        }
        let pid = std::fs::read_to_string(dir.join("data/postmaster.pid")).ok()?;
        pid.lines().next()?.trim().parse().ok()
    })
}

#[test]
fn two_replicas_run_on_a_throwaway_postgres_that_stops_with_the_demo() {
    build_services();
    // Free ports whose proxy port + 2 (the second replica's) is free too.
    let ports = (0..20)
        .map(|_| ports::free_ports(3).unwrap())
        .find(|p| p[1] < u16::MAX - 2 && ports::is_free(loopback(p[1] + 2)))
        .expect("three free ports and the proxy's + 2");
    let replica = ports[1] + 2;
    let mut demo = Demo::start_with(&ports, false, &["--replicas", "2"]);
    demo.wait_for_line("Press Ctrl-C to stop.", Duration::from_secs(120));
    demo.drain();
    let banner = demo.seen.join("\n");
    assert!(
        banner.contains(&format!("127.0.0.1:{replica}, so every live update")),
        "{banner}"
    );

    let xtask_pid = demo.xtask.id();
    demo.children = children_of(xtask_pid);
    let names: Vec<&str> = demo.children.iter().map(|c| c.name.as_str()).collect();
    // The sandbox, three proxies, and the cluster's watchdog (`sh`, see testkit::postgres).
    let mut sorted = names.clone();
    sorted.sort_unstable();
    assert_eq!(
        sorted,
        ["proxy", "proxy", "proxy", "sandbox", "sh"],
        "{names:?}"
    );
    for port in ports.iter().chain([&replica]) {
        let holder = ports::holder(*port).unwrap_or_else(|| panic!("nobody holds port {port}"));
        assert!(
            demo.children.iter().any(|c| c.pid == holder.pid),
            "port {port} is held by {holder:?}, not by a child of the demo ({names:?})"
        );
    }
    let postmaster = postmaster_of(xtask_pid).expect("the demo's PostgreSQL runs");
    let postmaster = proc_stat(postmaster).expect("the postmaster is alive");

    demo.signal(libc::SIGTERM);
    let status = wait(&mut demo.xtask, Duration::from_secs(30)).expect("the xtask exits");
    assert!(status.success(), "{status}");
    let deadline = Instant::now() + Duration::from_secs(10);
    while alive(&postmaster) || demo.children.iter().any(alive) {
        assert!(
            Instant::now() < deadline,
            "PostgreSQL or a proxy outlived the demo by 10 s"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        postmaster_of(xtask_pid).is_none(),
        "the cluster's folder is gone"
    );
}

#[test]
fn a_taken_port_is_named_and_nothing_starts() {
    // Held by this test process, so the message must name our pid.
    let squatter = std::net::TcpListener::bind(loopback(0)).unwrap();
    let taken = squatter.local_addr().unwrap().port();
    let free = ports::free_ports(2).unwrap();
    let ports = [free[0], taken, free[1]];
    // With the build on: the check must come before the setup and the builds, too.
    let mut demo = Demo::start(&ports, true);
    let status = wait(&mut demo.xtask, Duration::from_secs(60))
        .expect("the xtask did not give up within 60 s");
    // The reader threads end with the pipes; give them a moment to hand over the last lines.
    let deadline = Instant::now() + Duration::from_secs(5);
    while let Ok(line) = demo
        .output
        .recv_timeout(deadline.saturating_duration_since(Instant::now()))
    {
        demo.seen.push(line);
    }
    let said = demo.seen.join("\n");
    assert!(!status.success(), "{status}: {said}");
    assert!(
        said.contains(&format!("port {taken} (the demo-project proxy) is taken")),
        "{said}"
    );
    assert!(
        said.contains(&format!("pid {}", std::process::id())),
        "{said}"
    );
    assert!(said.contains("cargo xtask demo --ports "), "{said}");
    assert!(
        !said.contains("==> setup") && !said.contains("Demo merchant admin page"),
        "something started: {said}"
    );
    assert!(
        !demo._data.path().join("ledgers").exists(),
        "a ledger was created"
    );
    for port in free {
        assert!(ports::is_free(loopback(port)), "port {port} was taken");
    }
}

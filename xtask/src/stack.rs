//! `cargo xtask demo`: the sandbox and the proxies on loopback, the widget served by the proxy.
//!
//! The demo owns its processes: every port is checked before anything starts (a taken one is
//! named with the process holding it), the children die with this process however it ends
//! (see `launcher`), and the URL is printed only once every service answers its health check.
//! Starting a service and waiting for its health check are testkit's (`ServerProcess`,
//! `wait_ready_blocking`), the same code the tests and the benches start servers with.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command};
use std::time::Duration;

use launcher::ports::{self, loopback};
use launcher::signals;
use testkit::{NotReady, Ready, ServerProcess};

use crate::setup::{self, root};
use crate::{stage, widget, Result};

/// The ports of a plain `cargo xtask demo`, the ones `demo/*.toml` and `index.html` name.
pub const DEFAULT_PORTS: Ports = Ports {
    sandbox: 7070,
    proxy: 8080,
    full_only: 8081,
};

/// How long a service may take from its start to a healthy answer (the proxies run their
/// ledger migrations first).
const HEALTH_TIMEOUT: Duration = Duration::from_secs(60);
/// How long a child gets to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(5);

/// Where the three services listen, all on 127.0.0.1.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    pub sandbox: u16,
    pub proxy: u16,
    pub full_only: u16,
}

impl Ports {
    fn named(&self) -> [(&'static str, u16); 3] {
        [
            ("the sandbox", self.sandbox),
            ("the demo-project proxy", self.proxy),
            ("the demo-full-only proxy", self.full_only),
        ]
    }

    fn parse(text: &str) -> Result<Self> {
        let parsed: Vec<u16> = text
            .split(',')
            .map(|p| {
                p.trim()
                    .parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| format!("`{}` is not a port (1-65535)", p.trim()))
            })
            .collect::<Result<_>>()?;
        let [sandbox, proxy, full_only] = parsed[..] else {
            return Err(format!(
                "three ports are wanted, SANDBOX,PROXY,PROXY_FULL_ONLY (e.g. 9070,9080,9081), got `{text}`"
            ));
        };
        if sandbox == proxy || proxy == full_only || sandbox == full_only {
            return Err(format!("the three ports must differ, got `{text}`"));
        }
        Ok(Self {
            sandbox,
            proxy,
            full_only,
        })
    }
}

/// `cargo xtask demo`'s command line.
#[derive(Debug, Clone, clap::Parser)]
#[command(name = "cargo xtask demo", bin_name = "cargo xtask demo")]
pub struct DemoArgs {
    /// Listen on these loopback ports instead of 7070,8080,8081 (e.g. 9070,9080,9081).
    #[arg(long, value_name = "SANDBOX,PROXY,PROXY_FULL_ONLY", value_parser = Ports::parse)]
    ports: Option<Ports>,
    /// Start from an empty ledger (the sandbox always starts from its seed).
    #[arg(long)]
    reset: bool,
    /// Skip setup and builds: start the sandbox and proxies already built.
    #[arg(long)]
    no_build: bool,
    /// Keep the ledgers in DIR (default .data/, or .data/ports-S-P-F/ with --ports).
    #[arg(long, value_name = "DIR")]
    data_dir: Option<PathBuf>,
    /// Run the demo-project proxy as this many replicas on one PostgreSQL ledger (1 or 2).
    /// With 2: a throwaway PostgreSQL, the second replica on the proxy's port + 2 (8082), and
    /// the sandbox's webhooks sent to it, so the page (on the first) shows updates that reached
    /// the other replica.
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u8).range(1..=2))]
    replicas: u8,
}

/// What `cargo xtask demo …` was asked to do, the defaults filled in.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    pub ports: Ports,
    pub reset: bool,
    pub build: bool,
    pub data_dir: PathBuf,
    /// 1: SQLite, as always; 2: two replicas on a throwaway PostgreSQL.
    pub replicas: u8,
}

impl Options {
    /// The second replica's port, with `--replicas 2`: the proxy's + 2 (8082).
    pub fn second_replica(&self) -> Option<u16> {
        (self.replicas > 1).then(|| self.ports.proxy.saturating_add(2))
    }
}

impl From<DemoArgs> for Options {
    fn from(args: DemoArgs) -> Self {
        let ports = args.ports.unwrap_or(DEFAULT_PORTS);
        // A relative folder is the caller's: the proxies run from the repository's root, so
        // it is made absolute here, once, for them and for `--reset` alike.
        let given = args
            .data_dir
            .map(|dir| std::path::absolute(&dir).unwrap_or(dir));
        let data_dir = given.unwrap_or_else(|| {
            let data = root().join(".data");
            if ports == DEFAULT_PORTS {
                data
            } else {
                // Two demos on different ports never share (or reset) each other's ledger.
                data.join(format!(
                    "ports-{}-{}-{}",
                    ports.sandbox, ports.proxy, ports.full_only
                ))
            }
        });
        Self {
            ports,
            reset: args.reset,
            build: !args.no_build,
            data_dir,
            replicas: args.replicas,
        }
    }
}

/// The demo's children. Dropping it stops them (SIGTERM, then SIGKILL), on every way out of
/// [`demo`] that unwinds; the kernel's death signal covers the ways that do not.
struct Processes(Vec<(&'static str, ServerProcess)>);

impl Processes {
    fn stop(&mut self) {
        let mut children: Vec<&mut Child> = self.0.iter_mut().map(|(_, s)| s.child_mut()).collect();
        launcher::stop_all(&mut children, STOP_GRACE);
    }

    /// The first child that has exited, with its status.
    fn exited(&mut self) -> Option<String> {
        self.0.iter_mut().find_map(|(name, server)| {
            server
                .exited()
                .map(|status| format!("{name} exited: {status}"))
        })
    }
}

impl Drop for Processes {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Why the wait for a health check ended early.
enum Interrupt {
    /// A termination signal came.
    Signal(i32),
    /// A child exited (which one, and how).
    Exited(String),
}

pub fn demo(args: DemoArgs) -> Result {
    let options = Options::from(args);
    let ports = options.ports;
    // Before the setup and the builds: a taken port is known in a second, not after minutes.
    check_ports(&ports)?;
    check_replica_port(&options)?;
    if options.build {
        // PostgreSQL's server only for the replicas: the plain demo keeps its ledgers in SQLite.
        stage("setup", || setup::run(false, options.replicas > 1))?;
        stage("widget release build", || {
            widget::build_release().map(|_| ())
        })?;
        stage("sandbox and proxy build", || {
            setup::cargo(&["build", "--locked", "-p", "sandbox", "-p", "proxy"], &[])
        })?;
        // Again: something may have taken a port while we were building.
        check_ports(&ports)?;
        check_replica_port(&options)?;
    }
    if !root().join("dist/index.html").is_file() {
        println!("xtask: dist/ has no built widget (run `cargo xtask demo` without --no-build)");
    }

    let ledgers = [
        options.data_dir.join("proxy.sqlite"),
        options.data_dir.join("proxy-full-only.sqlite"),
    ];
    if options.reset {
        for ledger in &ledgers {
            remove_ledger(ledger)?;
        }
    }
    let ledger_kept = ledgers.iter().any(|l| l.exists());
    // With replicas, the demo-project ledger is a throwaway PostgreSQL, stopped (and deleted)
    // when the demo ends, however it ends.
    let postgres = match options.second_replica() {
        None => None,
        Some(_) => Some(stage("throwaway PostgreSQL for the replicas", || {
            let cluster = testkit::postgres::Cluster::start()
                .map_err(|e| format!("cannot start PostgreSQL: {e}"))?;
            let url = cluster
                .create_database("refunds")
                .map_err(|e| format!("cannot create the demo database: {e}"))?;
            Ok((cluster, url))
        })?),
    };
    let project_ledger = match &postgres {
        Some((_, url)) => url.clone(),
        None => ledgers[0].display().to_string(),
    };

    // From here on a signal stops the children in order instead of ending us outright.
    signals::catch_termination().map_err(|e| format!("cannot catch SIGTERM: {e}"))?;
    let mut processes = Processes(Vec::new());
    let bin = target_dir().join("debug");
    // All three start at once; their health checks are waited for below, in this order.
    processes.0.push((
        "sandbox",
        start(&bin, "sandbox", &sandbox_args(&options), ports.sandbox)?,
    ));
    processes.0.push((
        "demo-project proxy",
        start(
            &bin,
            "proxy",
            &proxy_args(&options, "demo/proxy.toml", ports.proxy, &project_ledger),
            ports.proxy,
        )?,
    ));
    processes.0.push((
        "demo-full-only proxy",
        start(
            &bin,
            "proxy",
            &proxy_args(
                &options,
                "demo/proxy-full-only.toml",
                ports.full_only,
                &ledgers[1].display().to_string(),
            ),
            ports.full_only,
        )?,
    ));
    let mut probes = vec!["/_sandbox/faults", "/readyz", "/readyz"];
    if let Some(port) = options.second_replica() {
        processes.0.push((
            "demo-project proxy, replica 2",
            start(
                &bin,
                "proxy",
                &proxy_args(&options, "demo/proxy.toml", port, &project_ledger),
                port,
            )?,
        ));
        probes.push("/readyz");
    }

    for (index, probe) in probes.into_iter().enumerate() {
        let url = processes.0[index].1.url(probe);
        let waited = testkit::wait_ready_blocking(&url, Ready::Success, HEALTH_TIMEOUT, || {
            match signals::received() {
                Some(signal) => Some(Interrupt::Signal(signal)),
                None => processes.exited().map(Interrupt::Exited),
            }
        });
        match waited {
            Ok(()) => {}
            Err(NotReady::Interrupted(Interrupt::Signal(signal))) => {
                processes.stop();
                return stopped_by(signal);
            }
            Err(NotReady::Interrupted(Interrupt::Exited(exited))) => {
                return Err(format!("{exited} before it answered its health check"));
            }
            Err(NotReady::TimedOut(last)) => return Err(format!("not healthy: {last}")),
        }
        // A healthy answer from someone else (who took the port after our check) is no demo.
        let (name, server) = &processes.0[index];
        let port = server.addr.port();
        if let Some(holder) = ports::holder(port).filter(|h| h.pid != server.pid()) {
            return Err(format!(
                "port {port} answers, but from pid {} ({}), not from the demo's {name}",
                holder.pid, holder.command
            ));
        }
    }

    print_banner(&options, ledger_kept);
    // Kept until the demo ends: dropping it stops PostgreSQL.
    let _postgres = postgres;

    loop {
        if let Some(signal) = signals::received() {
            processes.stop();
            return stopped_by(signal);
        }
        if let Some(exited) = processes.exited() {
            return Err(exited);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// An orderly stop asked for by a signal is a success: Ctrl-C is how the demo is meant to end.
fn stopped_by(signal: i32) -> Result {
    println!(
        "xtask: {}: the sandbox and both proxies are stopped, their ports free",
        signals::name(signal)
    );
    Ok(())
}

/// Every port the demo needs is free, or an error naming each taken one, who holds it and
/// what to do about it.
pub fn check_ports(ports: &Ports) -> Result {
    let taken: Vec<String> = ports
        .named()
        .iter()
        .filter(|(_, port)| !ports::is_free(loopback(*port)))
        .map(|(service, port)| {
            let holder = match ports::holder(*port) {
                Some(h) => format!("held by pid {} ({})", h.pid, h.command),
                None => format!(
                    "held by a process this user cannot see (`ss -ltnp 'sport = :{port}'` as root names it)"
                ),
            };
            format!("  port {port} ({service}) is taken: {holder}")
        })
        .collect();
    if taken.is_empty() {
        return Ok(());
    }
    let suggestion = suggest_ports(ports)
        .map(|p| format!("{},{},{}", p.sandbox, p.proxy, p.full_only))
        .unwrap_or_else(|| "9070,9080,9081".into());
    let (them, that) = if taken.len() == 1 {
        ("it", "that process")
    } else {
        ("them", "those processes")
    };
    Err(format!(
        "cannot start the demo, nothing was started:\n{}\n\
         Free {them} (stop {that}, e.g. `kill <pid>`; an earlier demo shows as `sandbox` and \
         `proxy`), or run on other ports: cargo xtask demo --ports {suggestion}",
        taken.join("\n")
    ))
}

/// The first of 9070,9080,9081 / 10070,10080,10081 / … that is free right now.
fn suggest_ports(current: &Ports) -> Option<Ports> {
    (9..=13u16)
        .map(|thousands| Ports {
            sandbox: thousands * 1000 + 70,
            proxy: thousands * 1000 + 80,
            full_only: thousands * 1000 + 81,
        })
        .filter(|p| p != current)
        .find(|p| {
            p.named()
                .iter()
                .all(|(_, port)| ports::is_free(loopback(*port)))
        })
}

fn target_dir() -> PathBuf {
    match std::env::var_os("CARGO_TARGET_DIR") {
        Some(dir) => root().join(dir),
        None => root().join("target"),
    }
}

/// `bin/program args…`, listening on `port`, not yet waited for.
fn start(bin: &Path, program: &str, args: &[String], port: u16) -> Result<ServerProcess> {
    let mut command = Command::new(bin.join(program));
    command.current_dir(root());
    // Only the settings we pass: a PROXY_* or SANDBOX_* variable of the caller's shell (a key,
    // a database) must not reach the demo.
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        if name.starts_with("PROXY_") || name.starts_with("SANDBOX_") {
            command.env_remove(name.as_ref());
        }
    }
    // The ledger by the environment, which only we may read, not in the arguments, which `ps`
    // shows every local user: a PostgreSQL URL holds its password.
    let mut args = args.to_vec();
    if let Some(at) = args.iter().position(|arg| arg == "--database") {
        let ledger = args.drain(at..(at + 2).min(args.len())).nth(1);
        command.env("PROXY_DATABASE", ledger.unwrap_or_default());
    }
    command.args(args);
    ServerProcess::spawn(command, loopback(port))
}

fn url(port: u16) -> String {
    format!("http://127.0.0.1:{port}")
}

/// The second replica's port is free (with `--replicas 2`).
fn check_replica_port(options: &Options) -> Result {
    let p = &options.ports;
    match options.second_replica() {
        // `+ 2` on the proxy's port may land on one of the three given (or, at 65535, on
        // itself): each would find the other's port taken, and say so less clearly.
        Some(port) if port == p.proxy || port == p.sandbox || port == p.full_only => Err(format!(
            "cannot start the demo, nothing was started: the second replica's port is the proxy's + 2, {port}, which --ports gives another \
             server; choose ports where proxy + 2 is free"
        )),
        Some(port) if !ports::is_free(loopback(port)) => Err(format!(
            "cannot start the demo, nothing was started: port {port} (the second replica) is \
             taken; free it or choose other ports with --ports"
        )),
        _ => Ok(()),
    }
}

fn sandbox_args(options: &Options) -> Vec<String> {
    let ports = &options.ports;
    // With replicas, Smart Glocal's webhooks reach the replica the page is not served by.
    let webhooks = options.second_replica().unwrap_or(ports.proxy);
    vec![
        "--listen".into(),
        loopback(ports.sandbox).to_string(),
        "--webhook-url".into(),
        format!("{}/webhooks/smart-glocal", url(webhooks)),
        "--project-webhook-url".into(),
        format!(
            "demo-full-only={}/webhooks/smart-glocal",
            url(ports.full_only)
        ),
    ]
}

/// `proxy serve` with its demo config file, the ports and the ledger overridden by flags.
fn proxy_args(options: &Options, config: &str, port: u16, ledger: &str) -> Vec<String> {
    let ports = &options.ports;
    // The demo page is served by the demo-project proxy and calls both proxies, so each one
    // allows every origin, as 127.0.0.1 and as localhost.
    let origins = [ports.proxy, ports.full_only]
        .into_iter()
        .chain(options.second_replica())
        .collect::<Vec<_>>()
        .iter()
        .flat_map(|p| [url(*p), format!("http://localhost:{p}")])
        .collect::<Vec<_>>()
        .join(",");
    // What the demo page it serves may call (its CSP's `connect-src`): the sandbox (the
    // payments table) and the other proxies, on these ports. The config files name the
    // default ones, which a page on other ports would be refused.
    let connect_src = [ports.sandbox, ports.proxy, ports.full_only]
        .into_iter()
        .chain(options.second_replica())
        .map(url)
        .collect::<Vec<_>>()
        .join(",");
    vec![
        "serve".into(),
        "--config".into(),
        config.into(),
        "--listen".into(),
        loopback(port).to_string(),
        "--upstream-url".into(),
        url(ports.sandbox),
        "--allowed-origins".into(),
        origins,
        "--connect-src".into(),
        connect_src,
        "--database".into(),
        ledger.into(),
    ]
}

/// Deletes a SQLite ledger and its side files; a missing one is fine.
fn remove_ledger(ledger: &Path) -> Result {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut path = ledger.as_os_str().to_owned();
        path.push(suffix);
        match std::fs::remove_file(&path) {
            Ok(()) => {}
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
            Err(e) => return Err(format!("--reset: cannot delete {}: {e}", ledger.display())),
        }
    }
    Ok(())
}

/// The page to open: the default ports need no query; others are passed to the demo page,
/// which otherwise looks for the sandbox on 7070 and the second proxy on 8081.
pub fn page_url(ports: &Ports) -> String {
    if *ports == DEFAULT_PORTS {
        return format!("{}/", url(ports.proxy));
    }
    format!(
        "{}/?sandbox={}&proxy_full_only={}",
        url(ports.proxy),
        encode(&url(ports.sandbox)),
        encode(&url(ports.full_only))
    )
}

fn encode(value: &str) -> String {
    value
        .bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn print_banner(options: &Options, ledger_kept: bool) {
    let ports = &options.ports;
    let data = options
        .data_dir
        .strip_prefix(root())
        .unwrap_or(&options.data_dir)
        .display()
        .to_string();
    let ledger = if options.reset {
        format!("emptied by --reset ({data}/)")
    } else if ledger_kept {
        format!(
            "kept from the last run ({data}/); `cargo xtask demo --reset` starts with an empty one"
        )
    } else {
        format!("new and empty ({data}/)")
    };
    println!();
    println!("  Demo merchant admin page:  {}", page_url(ports));
    println!(
        "  (Smart Glocal sandbox on {}, second project's proxy on {})",
        url(ports.sandbox),
        url(ports.full_only)
    );
    println!("  Ledger: {ledger}");
    if let Some(port) = options.second_replica() {
        println!(
            "  Replicas: the demo-project proxy runs twice, on {} and {}, sharing one ledger in a \
             throwaway PostgreSQL (gone when the demo stops); Smart Glocal's webhooks go to {}, so \
             every live update on the page crossed from one replica to the other.",
            url(ports.proxy),
            url(port),
            url(port)
        );
    }
    println!("  Sandbox: fresh from its seed (it keeps nothing between runs)");
    println!("  Press Ctrl-C to stop.");
    println!();
    // The banner is what a script (and the xtask's tests) waits for: do not leave it buffered.
    let _ = std::io::stdout().flush();
}

#[cfg(test)]
mod tests {
    use super::*;

    use clap::error::ErrorKind;
    use clap::Parser;

    fn parse(list: &[&str]) -> std::result::Result<Options, clap::Error> {
        DemoArgs::try_parse_from(std::iter::once("demo").chain(list.iter().copied()))
            .map(Options::from)
    }

    #[test]
    fn no_arguments_mean_the_default_ports_the_default_ledger_and_a_build() {
        let options = parse(&[]).unwrap();
        assert_eq!(options.ports, DEFAULT_PORTS);
        assert!(options.build && !options.reset);
        assert_eq!(options.data_dir, root().join(".data"));
        assert_eq!(page_url(&options.ports), "http://127.0.0.1:8080/");
        let options = parse(&["--no-build", "--data-dir", "/tmp/d"]).unwrap();
        assert!(!options.build);
        assert_eq!(options.data_dir, Path::new("/tmp/d"));
        // Relative to where the command was run, whatever folder the proxies run in.
        let options = parse(&["--data-dir", "d"]).unwrap();
        assert_eq!(options.data_dir, std::env::current_dir().unwrap().join("d"));
    }

    #[test]
    fn other_ports_get_their_own_ledger_folder_and_a_page_url_that_names_them() {
        for list in [
            &["--ports", "9070,9080,9081", "--reset"][..],
            &["--reset", "--ports=9070,9080,9081"][..],
        ] {
            let options = parse(list).unwrap();
            assert_eq!(
                options.ports,
                Ports {
                    sandbox: 9070,
                    proxy: 9080,
                    full_only: 9081
                }
            );
            assert!(options.reset);
            assert_eq!(
                options.data_dir,
                root().join(".data").join("ports-9070-9080-9081")
            );
        }
        assert_eq!(
            page_url(&Ports::parse("9070,9080,9081").unwrap()),
            "http://127.0.0.1:9080/?sandbox=http%3A%2F%2F127.0.0.1%3A9070\
             &proxy_full_only=http%3A%2F%2F127.0.0.1%3A9081"
        );
    }

    #[test]
    fn bad_port_lists_and_unknown_flags_are_refused_with_what_is_wanted() {
        for (list, kind, expected) in [
            (
                &["--ports", "9070,9080"][..],
                ErrorKind::ValueValidation,
                "three ports",
            ),
            (
                &["--ports", "9070,9080,0"][..],
                ErrorKind::ValueValidation,
                "not a port",
            ),
            (
                &["--ports", "9070,x,9081"][..],
                ErrorKind::ValueValidation,
                "not a port",
            ),
            (
                &["--ports", "9070,9080,9080"][..],
                ErrorKind::ValueValidation,
                "must differ",
            ),
            (&["--ports"][..], ErrorKind::InvalidValue, "--ports"),
            (
                &["--port", "1,2,3"][..],
                ErrorKind::UnknownArgument,
                "--port",
            ),
            (&["--reset=yes"][..], ErrorKind::TooManyValues, "--reset"),
        ] {
            let error = parse(list).unwrap_err();
            let message = error.to_string();
            assert_eq!(error.kind(), kind, "{list:?}: {message}");
            assert!(message.contains(expected), "{list:?}: {message}");
        }
    }

    #[test]
    fn a_taken_port_is_named_with_its_holder_and_the_way_out() {
        let listener = std::net::TcpListener::bind(loopback(0)).unwrap();
        let taken = listener.local_addr().unwrap().port();
        let free = ports::free_ports(2).unwrap();
        let ports = Ports {
            sandbox: free[0],
            proxy: taken,
            full_only: free[1],
        };
        let error = check_ports(&ports).unwrap_err();
        assert!(
            error.contains(&format!("port {taken} (the demo-project proxy) is taken")),
            "{error}"
        );
        assert!(
            error.contains(&format!("pid {}", std::process::id())),
            "{error}"
        );
        assert!(error.contains("Free it (stop that process"), "{error}");
        assert!(error.contains("cargo xtask demo --ports "), "{error}");
        assert!(!error.contains(&format!("port {}", free[0])), "{error}");
        drop(listener);
        check_ports(&ports).unwrap();
    }

    #[test]
    fn the_suggested_ports_follow_the_defaults_pattern_and_avoid_the_current_ones() {
        let suggested = suggest_ports(&DEFAULT_PORTS).expect("some free set of ports");
        assert_eq!(suggested.sandbox % 1000, 70);
        assert_eq!(suggested.proxy, suggested.sandbox + 10);
        assert_eq!(suggested.full_only, suggested.sandbox + 11);
        let next = suggest_ports(&suggested).expect("some free set of ports");
        assert_ne!(next, suggested);
    }

    #[test]
    fn proxies_get_the_chosen_ports_both_origins_and_their_own_ledger() {
        let options = parse(&["--ports", "9070,9080,9081"]).unwrap();
        let ports = options.ports;
        let args = proxy_args(&options, "demo/proxy.toml", ports.proxy, "/tmp/l.sqlite");
        let joined = args.join(" ");
        assert!(joined.contains("--listen 127.0.0.1:9080"), "{joined}");
        assert!(
            joined.contains("--upstream-url http://127.0.0.1:9070"),
            "{joined}"
        );
        assert!(joined.contains("http://localhost:9081"), "{joined}");
        // The page it serves may call the sandbox and the other proxy on these ports.
        assert!(
            joined.contains(
                "--connect-src http://127.0.0.1:9070,http://127.0.0.1:9080,http://127.0.0.1:9081"
            ),
            "{joined}"
        );
        assert!(!joined.contains("9082"), "one replica: {joined}");
        assert!(joined.contains("--database /tmp/l.sqlite"), "{joined}");
        let sandbox = sandbox_args(&options).join(" ");
        assert!(
            sandbox.contains("--webhook-url http://127.0.0.1:9080/webhooks/smart-glocal"),
            "{sandbox}"
        );
        assert!(
            sandbox.contains("demo-full-only=http://127.0.0.1:9081/webhooks/smart-glocal"),
            "{sandbox}"
        );
    }

    #[test]
    fn two_replicas_add_a_proxy_two_ports_up_that_gets_the_webhooks() {
        assert_eq!(parse(&[]).unwrap().second_replica(), None);
        let options = parse(&["--replicas", "2"]).unwrap();
        assert_eq!(options.second_replica(), Some(8082));
        let sandbox = sandbox_args(&options).join(" ");
        assert!(
            sandbox.contains("--webhook-url http://127.0.0.1:8082/webhooks/smart-glocal"),
            "webhooks go to the replica the page is not on: {sandbox}"
        );
        let args = proxy_args(&options, "demo/proxy.toml", 8082, "postgres://x@h/db").join(" ");
        assert!(args.contains("--listen 127.0.0.1:8082"), "{args}");
        assert!(args.contains("--database postgres://x@h/db"), "{args}");
        assert!(
            args.contains("http://127.0.0.1:8082"),
            "its own origin: {args}"
        );
        for bad in ["0", "3", "two"] {
            assert!(parse(&["--replicas", bad]).is_err(), "--replicas {bad}");
        }
        // The proxy's + 2 landing on a port another server was given: refused before anything
        // starts, naming the clash.
        for ports in ["19080,19078,19079", "19080,65535,19079"] {
            let options = parse(&["--replicas", "2", "--ports", ports]).unwrap();
            let refused = check_replica_port(&options).unwrap_err();
            assert!(refused.contains("proxy's + 2"), "{ports}: {refused}");
        }
    }
}

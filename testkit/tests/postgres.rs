//! The throwaway PostgreSQL cluster against real server binaries: databases, a server taken
//! down and brought back, and nothing left behind, whether the cluster is dropped or its
//! process is killed.

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use testkit::postgres::{self, Cluster, Options};

/// Set in the child process of [`a_killed_owner_leaves_no_server_and_no_directory`].
const CHILD_ENV: &str = "TESTKIT_PG_CHILD";

/// Polls `done` until it holds, for at most `within`.
fn eventually(within: Duration, mut done: impl FnMut() -> bool) -> bool {
    let started = Instant::now();
    while started.elapsed() < within {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    done()
}

fn port_is_free(port: u16) -> bool {
    launcher::ports::is_free(launcher::ports::loopback(port))
}

#[test]
fn databases_answer_the_server_goes_down_and_back_and_drop_leaves_nothing() {
    let cluster = Cluster::start_with(Options::for_tests()).unwrap();
    let port = cluster.port();
    let dir = cluster.dir().to_path_buf();

    let one = cluster.create_database("one").unwrap();
    assert!(one.starts_with("postgres://postgres:"), "{one}");
    assert!(one.ends_with(&format!("@127.0.0.1:{port}/one")), "{one}");
    let two = cluster.fresh_database().unwrap();
    assert_ne!(one, two);
    let two_name = two.rsplit('/').next().unwrap();
    assert_eq!(cluster.psql("one", "select 1").unwrap().trim(), "1");
    // Two databases, not two names for one: a table in one is not in the other.
    cluster
        .psql("one", "create table t (x int); insert into t values (7)")
        .unwrap();
    assert_eq!(cluster.psql("one", "select x from t").unwrap().trim(), "7");
    assert!(cluster.psql(two_name, "select x from t").is_err());
    assert!(cluster.create_database("one").is_err(), "created twice");

    // `psql <url>` as a client would use it.
    let psql = |url: &str| {
        Command::new(postgres::server_bindir().unwrap().join("psql"))
            .args(["-XAtqw", "-d", url, "-c", "select 41 + 1"])
            .env("PGCONNECT_TIMEOUT", "3")
            .output()
            .unwrap()
    };
    let answer = psql(&one);
    assert!(answer.status.success(), "{answer:?}");
    assert_eq!(String::from_utf8_lossy(&answer.stdout).trim(), "42");
    // Loopback is every local user's: without the cluster's password, no way in.
    for stranger in [
        format!("postgres://postgres@127.0.0.1:{port}/one"),
        format!("postgres://postgres:guess@127.0.0.1:{port}/one"),
    ] {
        let refused = psql(&stranger);
        assert!(!refused.status.success(), "{stranger} let in");
        assert!(
            String::from_utf8_lossy(&refused.stderr).contains("password"),
            "{refused:?}"
        );
    }

    cluster.stop_server().unwrap();
    assert!(!psql(&one).status.success(), "answers while stopped");
    assert!(port_is_free(port), "port held while stopped");
    cluster.start_server().unwrap();
    assert!(psql(&one).status.success(), "no answer after the restart");
    assert_eq!(cluster.psql("one", "select x from t").unwrap().trim(), "7");

    drop(cluster);
    assert!(!dir.exists(), "{} left behind", dir.display());
    assert!(port_is_free(port), "port {port} still held after drop");
}

#[test]
fn the_shared_cluster_is_one_for_the_process() {
    let a = postgres::shared().unwrap();
    let b = postgres::shared().unwrap();
    assert!(std::ptr::eq(a, b));
    let url = a.fresh_database().unwrap();
    let name = url.rsplit('/').next().unwrap();
    assert_eq!(
        a.psql(name, "select current_database()").unwrap().trim(),
        name
    );
}

/// A stale cluster directory (its owner is dead) is removed by the next start; one owned by
/// another user than our clusters' is left alone (the base directory is anyone's to write
/// in, and a planted `postmaster.pid` could name anybody's server).
#[test]
fn a_start_sweeps_the_clusters_of_dead_owners() {
    let mut gone = Command::new("true").spawn().unwrap();
    gone.wait().unwrap();
    let base = std::env::temp_dir().join("sg-refund-pg");
    std::fs::create_dir_all(&base).unwrap();
    let stale = base.join(format!("cluster-stale-{}", gone.id()));
    let planted = base.join(format!("cluster-planted-{}", gone.id()));
    for dir in [&stale, &planted] {
        std::fs::create_dir_all(dir.join("data")).unwrap();
        std::fs::write(dir.join("owner.pid"), gone.id().to_string()).unwrap();
    }
    // As root our clusters belong to the `postgres` user; the planted one stays root's. As
    // anyone else, the planted one is another user's only where root is at hand to make it so.
    let root =
        std::fs::metadata("/proc/self").is_ok_and(|m| std::os::unix::fs::MetadataExt::uid(&m) == 0);
    if root {
        let chown = Command::new("chown")
            .arg("-R")
            .arg("postgres:")
            .arg(&stale)
            .status();
        assert!(chown.unwrap().success());
    }
    let cluster = Cluster::start_with(Options::for_tests()).unwrap();
    assert!(!stale.exists(), "{} not swept", stale.display());
    assert!(cluster.dir().exists(), "our own cluster swept");
    if root {
        assert!(
            planted.exists(),
            "another user's {} swept",
            planted.display()
        );
    }
    let _ = std::fs::remove_dir_all(&planted);
}

/// A child test process holding a cluster: the process, its cluster's directory and port.
fn child_with_a_cluster() -> (Child, PathBuf, u16) {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_holds_a_cluster_until_killed",
            "--nocapture",
        ])
        .env(CHILD_ENV, "1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (dir, port) = BufReader::new(stdout)
        .lines()
        .map_while(Result::ok)
        .find_map(|line| {
            let rest = line.strip_prefix("cluster ")?;
            let (dir, port) = rest.rsplit_once(' ')?;
            Some((PathBuf::from(dir), port.parse::<u16>().ok()?))
        })
        .expect("the child reports its cluster");
    assert!(dir.join("data").is_dir());
    assert!(!port_is_free(port), "the child's server does not listen");
    (child, dir, port)
}

/// The pid of the watchdog of the cluster in `dir`, found in /proc by its command line.
fn watchdog_of(dir: &Path) -> Option<i32> {
    let dir = dir.to_str()?;
    std::fs::read_dir("/proc")
        .ok()?
        .flatten()
        .find_map(|entry| {
            let pid: i32 = entry.file_name().to_str()?.parse().ok()?;
            let cmdline = std::fs::read(entry.path().join("cmdline")).ok()?;
            let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
            let ours = args.contains(&b"sg-refund-pg-watchdog".as_slice())
                && args.contains(&dir.as_bytes());
            ours.then_some(pid)
        })
}

/// The test process is killed (SIGKILL: no `Drop`, no exit handler): the watchdog stops its
/// server and removes its directory.
#[test]
fn a_killed_owner_leaves_no_server_and_no_directory() {
    let (mut child, dir, port) = child_with_a_cluster();
    child.kill().unwrap();
    child.wait().unwrap();
    assert!(
        eventually(Duration::from_secs(20), || !dir.exists()
            && port_is_free(port)),
        "after the owner was killed: directory {} exists: {}, port {port} free: {}",
        dir.display(),
        dir.exists(),
        port_is_free(port)
    );
}

/// The owner and its watchdog are both killed: the next start stops the server and removes
/// the directory.
#[test]
fn a_start_stops_a_cluster_whose_owner_and_watchdog_are_dead() {
    let (mut child, dir, port) = child_with_a_cluster();
    let watchdog = watchdog_of(&dir).expect("the cluster has a watchdog");
    // SAFETY: kill(2) on the watchdog the child started, found a moment ago.
    assert_eq!(unsafe { libc::kill(watchdog, libc::SIGKILL) }, 0);
    child.kill().unwrap();
    child.wait().unwrap();
    let _ours = Cluster::start_with(Options::for_tests()).unwrap();
    assert!(!dir.exists(), "{} not swept", dir.display());
    assert!(
        port_is_free(port),
        "the dead owner's server still listens on {port}"
    );
}

/// Not a test on its own: the child of [`a_killed_owner_leaves_no_server_and_no_directory`].
#[test]
fn child_holds_a_cluster_until_killed() {
    if std::env::var_os(CHILD_ENV).is_none() {
        return;
    }
    let cluster = Cluster::start_with(Options::for_tests()).unwrap();
    println!("cluster {} {}", display(cluster.dir()), cluster.port());
    std::thread::sleep(Duration::from_secs(60));
}

fn display(path: &Path) -> String {
    path.display().to_string()
}

//! A throwaway PostgreSQL cluster the project starts itself, for the tests and the demo:
//! `initdb` into a temporary directory, `pg_ctl start` on a free loopback port, a password
//! made for the cluster for `postgres@127.0.0.1` (trust only on its Unix socket, in a
//! directory only its user may enter), everything stopped and removed when the
//! [`Cluster`] is dropped.
//!
//! Why not a container or the machine's PostgreSQL service: neither is there on every machine
//! the tests run on (no Docker in CI sandboxes, no systemd in containers), a shared service
//! carries state from one run to the next, and a test that takes PostgreSQL down
//! ([`Cluster::stop_server`]) must not take anybody else's down. Only the server binaries are
//! needed (Debian's `postgresql` package, installed by `cargo xtask setup`); they are looked
//! for in `$PG_BINDIR`, then the highest version under `/usr/lib/postgresql/*/bin`, then
//! `pg_config --bindir`.
//!
//! Root: `initdb` and `postgres` refuse to run as root, and the tests run as root in CI. So
//! when the effective uid is 0 the server tools (`initdb`, `pg_ctl`) run as the `postgres`
//! system user (`runuser -u postgres --`, or `setpriv` where `runuser` is missing) and the
//! cluster's directory is handed to that user; the client tools (`createdb`, `psql`) run as
//! whoever we are. As any other user, everything runs as that user.
//!
//! Cleanup when `Drop` never runs (a killed test process, or the process-wide [`shared`]
//! cluster, a `static` that is never dropped): every cluster lives under one base directory
//! (`$TMPDIR/sg-refund-pg/`) with its owner's pid beside it, and has a watchdog, a small
//! shell in its own process group holding the read end of a pipe only this process writes
//! to. When this process ends, however it ends, the pipe closes and the watchdog stops the
//! server (`pg_ctl stop -m immediate`) and removes the directory. Should the watchdog be gone
//! too, the next [`Cluster::start`] does the same for every cluster whose owner is dead.

use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Output, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::Duration;

/// Overrides where the server binaries (`initdb`, `pg_ctl`) are looked for.
pub const BINDIR_ENV: &str = "PG_BINDIR";
/// Where Debian's `postgresql-NN` packages put them, one `NN/bin` per major version.
const DEBIAN_ROOT: &str = "/usr/lib/postgresql";
/// The system user the server runs as when we are root (Debian's package creates it).
const CLUSTER_USER: &str = "postgres";
/// The cluster's superuser, the user every URL names.
const SUPERUSER: &str = "postgres";
/// Beside each cluster's data: the pid of the process that started it.
const OWNER_FILE: &str = "owner.pid";
/// Every cluster's directory is named `cluster-…` under the base directory.
const DIR_PREFIX: &str = "cluster-";
/// A cluster directory with no owner file yet is only stale once it is this old: its owner
/// may be between creating the directory and writing the file.
const UNOWNED_GRACE: Duration = Duration::from_secs(60);
/// Seconds `pg_ctl` waits for a start or stop.
const PG_CTL_WAIT_SECS: &str = "30";
/// Another process may take the free port between our choice and the server's bind.
const PORT_ATTEMPTS: usize = 3;

/// How the cluster runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Options {
    /// Off for tests: nothing is flushed to disk (`fsync`, `synchronous_commit` and
    /// `full_page_writes` off, `initdb --no-sync`); a crash of the machine loses the
    /// cluster, which a test cluster does not mind. On for the demo.
    pub fsync: bool,
    /// The proxies' pools and a test's own connections, all on one cluster.
    pub max_connections: u32,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            fsync: true,
            max_connections: 200,
        }
    }
}

impl Options {
    /// The defaults with `fsync` off.
    pub fn for_tests() -> Self {
        Options {
            fsync: false,
            ..Options::default()
        }
    }
}

/// A running PostgreSQL cluster on `127.0.0.1:<port>`, stopped and removed when dropped.
pub struct Cluster {
    tools: Tools,
    port: u16,
    /// The superuser's password, made for this cluster: the server listens on loopback, where
    /// any local user could otherwise connect as its superuser (and run programs as its user).
    password: String,
    /// Dropped after [`Drop::drop`] has stopped the server: removes the directory.
    dir: tempfile::TempDir,
    watchdog: Option<Watchdog>,
}

impl Cluster {
    /// A new cluster with the default [`Options`] (fsync on), ready when returned.
    pub fn start() -> io::Result<Cluster> {
        Cluster::start_with(Options::default())
    }

    /// A new cluster run with `options`, ready when returned.
    pub fn start_with(options: Options) -> io::Result<Cluster> {
        let tools = Tools::find()?;
        let base = base_dir()?;
        sweep_stale(&base, &tools);
        let dir = tempfile::Builder::new()
            .prefix(DIR_PREFIX)
            .tempdir_in(&base)
            .map_err(|e| {
                context(
                    e,
                    format!("cannot create a directory in {}", base.display()),
                )
            })?;
        std::fs::write(dir.path().join(OWNER_FILE), std::process::id().to_string())?;
        std::fs::create_dir(dir.path().join("sock"))?;
        let password = random_password()?;
        write_private(&dir.path().join(PASSWORD_FILE), &password)?;
        tools.hand_over(dir.path())?;
        let mut cluster = Cluster {
            tools,
            port: 0,
            password,
            dir,
            watchdog: None,
        };
        cluster.watchdog = Some(Watchdog::spawn(&cluster)?);
        cluster.init(options)?;
        cluster.first_start()?;
        Ok(cluster)
    }

    /// `postgres://postgres:<password>@127.0.0.1:<port>/<database>`, with the cluster's own
    /// password.
    pub fn url(&self, database: &str) -> String {
        self.address(&format!("{SUPERUSER}:{}", self.password), database)
    }

    /// `postgres://<user>@127.0.0.1:<port>/<database>`, `user` with its password or without.
    fn address(&self, user: &str, database: &str) -> String {
        format!("postgres://{user}@127.0.0.1:{}/{database}", self.port)
    }

    pub fn port(&self) -> u16 {
        self.port
    }

    /// The cluster's directory: `data/`, `log`, `sock/` (the Unix socket).
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// Creates database `name` (`createdb`) and returns its URL.
    pub fn create_database(&self, name: &str) -> io::Result<String> {
        let mut createdb = self.tools.client("createdb");
        createdb.env("PGPASSWORD", &self.password);
        createdb.args([
            "-h",
            "127.0.0.1",
            "-p",
            &self.port.to_string(),
            "-U",
            SUPERUSER,
        ]);
        createdb.args(["--", name]);
        run(createdb, &format!("createdb {name}"))?;
        Ok(self.url(name))
    }

    /// A new database with a name no other test (in this process or another) uses; its URL.
    pub fn fresh_database(&self) -> io::Result<String> {
        static NEXT: AtomicU32 = AtomicU32::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        self.create_database(&format!("test_{}_{n}", std::process::id()))
    }

    /// Runs `sql` in `database` with `psql` and returns what it prints, unaligned and
    /// tuples only (`select 1` gives `"1\n"`). Any SQL error is an error.
    pub fn psql(&self, database: &str, sql: &str) -> io::Result<String> {
        let mut psql = self.tools.client("psql");
        // The password by the environment, not in the arguments, which `ps` shows anyone.
        psql.env("PGPASSWORD", &self.password);
        psql.args(["-X", "-A", "-t", "-q", "-v", "ON_ERROR_STOP=1", "-d"]);
        psql.args([&self.address(SUPERUSER, database), "-c", sql]);
        let output = run(psql, &format!("psql -c {sql:?}"))?;
        Ok(String::from_utf8_lossy(&output.stdout).into_owned())
    }

    /// Takes the server down (`pg_ctl stop -m fast`: sessions are ended, nothing is lost);
    /// returns once it has exited. [`Cluster::start_server`] brings it back. On the
    /// [`shared`] cluster this takes every other test's database down too.
    pub fn stop_server(&self) -> io::Result<()> {
        self.pg_ctl_stop("fast")
    }

    /// Starts the server again after [`Cluster::stop_server`]: same data, same port; ready
    /// when it returns.
    pub fn start_server(&self) -> io::Result<()> {
        self.pg_ctl_start(self.port)
    }

    fn init(&self, options: Options) -> io::Result<()> {
        let mut initdb = self.tools.server("initdb", self.dir());
        // A password over TCP (loopback is every local user's); the Unix socket, in a
        // directory only we may enter, trusts.
        initdb.args(["-D", "data", "-U", SUPERUSER, "-E", "UTF8"]);
        initdb.args(["--auth-host=scram-sha-256", "--auth-local=trust"]);
        initdb.arg(format!("--pwfile={PASSWORD_FILE}"));
        // Its "next steps" text is captured by `run` and dropped (`--no-instructions` would
        // say the same, but only from PostgreSQL 14 on).
        initdb.arg("--locale=C");
        if !options.fsync {
            initdb.arg("--no-sync");
        }
        run(initdb, "initdb")?;
        std::fs::remove_file(self.dir().join(PASSWORD_FILE))?;
        // Appended: postgresql.conf's last setting of a name wins. Root appends to a file the
        // postgres user owns, which keeps it owned by that user.
        let mut conf = std::fs::OpenOptions::new()
            .append(true)
            .open(self.dir().join("data/postgresql.conf"))?;
        conf.write_all(settings(options, &self.dir().join("sock")).as_bytes())
    }

    /// Starts on a free port, trying another if someone took the chosen one meanwhile.
    fn first_start(&mut self) -> io::Result<()> {
        let mut last = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = crate::free_addr().map_err(io::Error::other)?.port();
            match self.pg_ctl_start(port) {
                Ok(()) => {
                    self.port = port;
                    return Ok(());
                }
                Err(e) if e.to_string().contains("already in use") => last = Some(e),
                Err(e) => return Err(e),
            }
        }
        Err(last.unwrap_or_else(|| io::Error::other("no port to start PostgreSQL on")))
    }

    fn pg_ctl_start(&self, port: u16) -> io::Result<()> {
        let mut pg_ctl = self.tools.server("pg_ctl", self.dir());
        pg_ctl.args([
            "start",
            "-D",
            "data",
            "-l",
            "log",
            "-w",
            "-t",
            PG_CTL_WAIT_SECS,
        ]);
        pg_ctl.args(["-o", &format!("-p {port}")]);
        run(pg_ctl, &format!("pg_ctl start on port {port}")).map_err(|e| {
            let log = std::fs::read_to_string(self.dir().join("log")).unwrap_or_default();
            let lines: Vec<&str> = log.lines().collect();
            let tail = lines[lines.len().saturating_sub(5)..].join(" | ");
            io::Error::new(e.kind(), format!("{e}; the server log ends with: {tail}"))
        })?;
        Ok(())
    }

    fn pg_ctl_stop(&self, mode: &str) -> io::Result<()> {
        let mut pg_ctl = self.tools.server("pg_ctl", self.dir());
        pg_ctl.args([
            "stop",
            "-D",
            "data",
            "-m",
            mode,
            "-w",
            "-t",
            PG_CTL_WAIT_SECS,
        ]);
        run(pg_ctl, &format!("pg_ctl stop -m {mode}")).map(|_| ())
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        // Immediate: nothing of a throwaway cluster needs to reach the disk. Fails harmlessly
        // when the server is already down.
        let _ = self.pg_ctl_stop("immediate");
        if let Some(watchdog) = self.watchdog.take() {
            watchdog.dismiss();
        }
        // `self.dir` is removed next, when the field drops.
    }
}

/// One cluster per test process, started on first use ([`Options::for_tests`]); each test
/// takes a [`Cluster::fresh_database`] of its own. Never dropped (it is a `static`): its
/// watchdog stops and removes it when the process exits. A failed start is reported to
/// every caller, without a second attempt.
pub fn shared() -> io::Result<&'static Cluster> {
    static SHARED: OnceLock<Result<Cluster, String>> = OnceLock::new();
    SHARED
        .get_or_init(|| Cluster::start_with(Options::for_tests()).map_err(|e| e.to_string()))
        .as_ref()
        .map_err(|e| io::Error::other(format!("the shared PostgreSQL cluster: {e}")))
}

/// The server settings appended to `postgresql.conf` (the port is given at each start).
fn settings(options: Options, socket_dir: &Path) -> String {
    let socket_dir = socket_dir.display().to_string().replace('\'', "''");
    let mut settings = format!(
        "\n# testkit::postgres\nlisten_addresses = '127.0.0.1'\n\
         unix_socket_directories = '{socket_dir}'\nmax_connections = {}\n",
        options.max_connections
    );
    if !options.fsync {
        settings.push_str("fsync = off\nsynchronous_commit = off\nfull_page_writes = off\n");
    }
    settings
}

/// Where the server binaries are, and who runs them.
struct Tools {
    bindir: PathBuf,
    /// `runuser -u postgres --` when we are root, empty otherwise.
    run_as: Vec<String>,
}

impl Tools {
    fn find() -> io::Result<Tools> {
        let bindir = server_bindir()?;
        let run_as = if is_root() {
            run_as_cluster_user()?
        } else {
            Vec::new()
        };
        Ok(Tools { bindir, run_as })
    }

    /// A server tool (`initdb`, `pg_ctl`), run as the cluster's user from the cluster's
    /// directory (the postgres user may not be allowed into our working directory).
    fn server(&self, tool: &str, dir: &Path) -> Command {
        let program = self.bindir.join(tool);
        let mut command = match self.run_as.split_first() {
            Some((runner, args)) => {
                let mut command = Command::new(runner);
                command.args(args).arg(program);
                command
            }
            None => Command::new(program),
        };
        command.current_dir(dir);
        forget_pg_env(&mut command);
        command
    }

    /// A client tool (`createdb`, `psql`), run as whoever we are.
    fn client(&self, tool: &str) -> Command {
        let mut command = Command::new(self.bindir.join(tool));
        forget_pg_env(&mut command);
        command.env("PGCONNECT_TIMEOUT", "5");
        command
    }

    /// Gives `dir` (and what is in it) to the user the server runs as.
    fn hand_over(&self, dir: &Path) -> io::Result<()> {
        if self.run_as.is_empty() {
            return Ok(());
        }
        let mut chown = Command::new("chown");
        chown.args(["-R", &format!("{CLUSTER_USER}:")]).arg(dir);
        run(chown, &format!("chown to the {CLUSTER_USER} user")).map(|_| ())
    }
}

/// Where `initdb` reads the superuser's password from, in the cluster's directory; removed
/// once it has.
const PASSWORD_FILE: &str = "password";

/// 32 hex digits from the kernel's random source.
fn random_password() -> io::Result<String> {
    use std::io::Read;
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(hex::encode(bytes))
}

/// `text` in a new file only its owner may read.
fn write_private(path: &Path, text: &str) -> io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)?
        .write_all(text.as_bytes())
}

/// `PGDATA`, `PGPORT`, `PGHOST`… set for some other cluster must not redirect ours.
fn forget_pg_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("PG") {
            command.env_remove(name);
        }
    }
}

/// The directory with `initdb` and `pg_ctl`: `$PG_BINDIR`, else the highest version under
/// `/usr/lib/postgresql/*/bin`, else `pg_config --bindir` (which on Debian may name the
/// client-only directory, hence last).
pub fn server_bindir() -> io::Result<PathBuf> {
    if let Some(dir) = std::env::var_os(BINDIR_ENV) {
        let dir = PathBuf::from(dir);
        if dir.join("initdb").is_file() {
            return Ok(dir);
        }
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!("{BINDIR_ENV}={} has no initdb", dir.display()),
        ));
    }
    highest_bindir(Path::new(DEBIAN_ROOT))
        .or_else(pg_config_bindir)
        .ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::NotFound,
                format!(
                    "PostgreSQL server binaries (initdb) not found in {DEBIAN_ROOT}/*/bin nor \
                     `pg_config --bindir`: run `cargo xtask setup` (installs Debian's \
                     postgresql package), or set {BINDIR_ENV}"
                ),
            )
        })
}

/// The `<root>/<version>/bin` with an `initdb` whose version is highest (`15` above `9.6`).
fn highest_bindir(root: &Path) -> Option<PathBuf> {
    std::fs::read_dir(root)
        .ok()?
        .flatten()
        .filter_map(|entry| {
            let version = version_key(&entry.file_name().to_string_lossy())?;
            let bin = entry.path().join("bin");
            bin.join("initdb").is_file().then_some((version, bin))
        })
        .max_by(|a, b| a.0.cmp(&b.0))
        .map(|(_, bin)| bin)
}

/// `"15"` → `[15]`, `"9.6"` → `[9, 6]`; `None` for a name that is not a version.
fn version_key(name: &str) -> Option<Vec<u32>> {
    name.split('.').map(|part| part.parse().ok()).collect()
}

fn pg_config_bindir() -> Option<PathBuf> {
    let output = Command::new("pg_config").arg("--bindir").output().ok()?;
    let dir = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    (output.status.success() && dir.join("initdb").is_file()).then_some(dir)
}

fn is_root() -> bool {
    // SAFETY: geteuid cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() == 0 }
}

/// The prefix that runs a program as the cluster's user: `runuser` (util-linux, on every
/// Debian), else `setpriv`, which needs no PAM.
fn run_as_cluster_user() -> io::Result<Vec<String>> {
    let exists = Command::new("id")
        .arg(CLUSTER_USER)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !exists {
        return Err(io::Error::new(
            io::ErrorKind::NotFound,
            format!(
                "running as root, and initdb refuses root: no `{CLUSTER_USER}` user to run it as \
                 (Debian's postgresql package creates it: `cargo xtask setup`)"
            ),
        ));
    }
    let found = |name: &str| {
        ["/usr/sbin", "/sbin", "/usr/bin", "/bin"]
            .iter()
            .map(|dir| Path::new(dir).join(name))
            .find(|path| path.is_file())
            .map(|path| path.display().to_string())
    };
    if let Some(runuser) = found("runuser") {
        return Ok(vec![runuser, "-u".into(), CLUSTER_USER.into(), "--".into()]);
    }
    if let Some(setpriv) = found("setpriv") {
        return Ok(vec![
            setpriv,
            format!("--reuid={CLUSTER_USER}"),
            format!("--regid={CLUSTER_USER}"),
            "--init-groups".into(),
        ]);
    }
    Err(io::Error::new(
        io::ErrorKind::NotFound,
        format!("running as root: neither runuser nor setpriv to run initdb as `{CLUSTER_USER}`"),
    ))
}

/// `$TMPDIR/sg-refund-pg`, made on first use. Sticky and writable by all, like /tmp: a
/// non-root user's clusters go beside root's, and the postgres user can reach its own.
fn base_dir() -> io::Result<PathBuf> {
    use std::os::unix::fs::PermissionsExt;

    const MODE: u32 = 0o1777;
    let base = std::env::temp_dir().join("sg-refund-pg");
    std::fs::create_dir_all(&base)
        .map_err(|e| context(e, format!("cannot create {}", base.display())))?;
    let mode = std::fs::metadata(&base)?.permissions().mode() & 0o7777;
    if mode != MODE {
        // Only its owner may; anyone else uses it as it is.
        let _ = std::fs::set_permissions(&base, std::fs::Permissions::from_mode(MODE));
    }
    Ok(base)
}

/// Stops and removes every cluster under `base` whose owner process is dead (its watchdog
/// died with it, or was killed). Best effort: a cluster that cannot be removed (another
/// user's) stays.
fn sweep_stale(base: &Path, tools: &Tools) {
    let Ok(entries) = std::fs::read_dir(base) else {
        return;
    };
    let owner = cluster_owner(tools);
    for entry in entries.flatten() {
        let dir = entry.path();
        // A directory of ours: named so, and owned by the user our clusters' are. The base is
        // anyone's to write in: another user's planted `cluster-*` (with a `postmaster.pid`
        // naming someone else's server) must not have us stop anything.
        let named = entry.file_name().to_string_lossy().starts_with(DIR_PREFIX);
        let owned = std::fs::symlink_metadata(&dir)
            .is_ok_and(|m| m.is_dir() && Some(std::os::unix::fs::MetadataExt::uid(&m)) == owner);
        if !named || !owned || !is_stale(&dir) {
            continue;
        }
        if dir.join("data/postmaster.pid").exists() {
            let mut pg_ctl = tools.server("pg_ctl", &dir);
            pg_ctl.args(["stop", "-D", "data", "-m", "immediate", "-w"]);
            let _ = run(pg_ctl, "pg_ctl stop");
        }
        let _ = std::fs::remove_dir_all(&dir);
    }
}

/// The uid our clusters' directories belong to: ours, or the `postgres` user's when we are
/// root (they are handed over to it).
fn cluster_owner(tools: &Tools) -> Option<u32> {
    if tools.run_as.is_empty() {
        // SAFETY: geteuid cannot fail and touches no memory of ours.
        return Some(unsafe { libc::geteuid() });
    }
    let name = std::ffi::CString::new(CLUSTER_USER).ok()?;
    // SAFETY: `name` is a valid C string; the entry getpwnam returns is read at once, before
    // any other call that could reuse its storage.
    let entry = unsafe { libc::getpwnam(name.as_ptr()) };
    // SAFETY: non-null, it points to a valid `passwd`.
    (!entry.is_null()).then(|| unsafe { (*entry).pw_uid })
}

fn is_stale(dir: &Path) -> bool {
    let owner = std::fs::read_to_string(dir.join(OWNER_FILE))
        .ok()
        .and_then(|pid| pid.trim().parse::<libc::pid_t>().ok());
    match owner {
        // 0 and below name process groups to kill(2), not a process: not an owner we wrote.
        Some(pid) if pid <= 0 => true,
        Some(pid) => !is_alive(pid),
        None => std::fs::metadata(dir)
            .and_then(|m| m.modified())
            .is_ok_and(|made| made.elapsed().is_ok_and(|age| age > UNOWNED_GRACE)),
    }
}

fn is_alive(pid: libc::pid_t) -> bool {
    // SAFETY: signal 0 only asks whether the process exists; nothing is sent.
    let answer = unsafe { libc::kill(pid, 0) };
    answer == 0 || io::Error::last_os_error().raw_os_error() == Some(libc::EPERM)
}

/// A shell that outlives this process by as long as it takes to stop its cluster: it waits
/// on a pipe only we write to; a line means "dropped, nothing to do", end of file (this
/// process has exited, whatever ended it) means stop the server and remove the directory.
///
/// Not started through `launcher` (whose children die with us, before they could clean up),
/// and in a process group of its own, so a Ctrl-C aimed at the test run does not reach it.
struct Watchdog {
    child: Child,
    pipe: ChildStdin,
}

const WATCHDOG_SCRIPT: &str = r#"dir=$1; shift
read -r _ && exit 0
"$@" >/dev/null 2>&1
rm -rf -- "$dir""#;

impl Watchdog {
    fn spawn(cluster: &Cluster) -> io::Result<Watchdog> {
        use std::os::unix::process::CommandExt;

        let stop = cluster.tools.server("pg_ctl", cluster.dir());
        let mut command = Command::new("sh");
        command
            .args(["-c", WATCHDOG_SCRIPT, "sg-refund-pg-watchdog"])
            .arg(cluster.dir())
            .arg(stop.get_program())
            .args(stop.get_args())
            .args(["stop", "-D"])
            .arg(cluster.dir().join("data"))
            .args(["-m", "immediate", "-w"])
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .process_group(0);
        forget_pg_env(&mut command);
        let mut child = command
            .spawn()
            .map_err(|e| context(e, "cannot start the cluster's watchdog (sh)".into()))?;
        let pipe = child
            .stdin
            .take()
            .ok_or_else(|| io::Error::other("the watchdog has no stdin"))?;
        Ok(Watchdog { child, pipe })
    }

    /// The cluster was stopped and is being removed: the watchdog exits without a thing to do.
    fn dismiss(mut self) {
        let _ = self.pipe.write_all(b"dropped\n");
        drop(self.pipe);
        let _ = self.child.wait();
    }
}

/// Runs `command` to the end through `launcher` (so it dies with us), its output captured;
/// a failure says what failed, with its status and what it printed.
fn run(mut command: Command, what: &str) -> io::Result<Output> {
    command
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let program = command.get_program().to_string_lossy().into_owned();
    let output = launcher::spawn(command)
        .and_then(|child| child.wait_with_output())
        .map_err(|e| context(e, format!("{what}: cannot run {program}")))?;
    if output.status.success() {
        return Ok(output);
    }
    let printed = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stderr),
        String::from_utf8_lossy(&output.stdout)
    );
    Err(io::Error::other(format!(
        "{what} failed ({}): {}",
        output.status,
        printed.trim()
    )))
}

fn context(e: io::Error, what: String) -> io::Error {
    io::Error::new(e.kind(), format!("{what}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_highest_version_with_an_initdb_is_chosen() {
        let root = tempfile::tempdir().unwrap();
        for (version, initdb) in [("9.6", true), ("15", true), ("16", false), ("x", true)] {
            let bin = root.path().join(version).join("bin");
            std::fs::create_dir_all(&bin).unwrap();
            if initdb {
                std::fs::write(bin.join("initdb"), "").unwrap();
            }
        }
        assert_eq!(
            highest_bindir(root.path()),
            Some(root.path().join("15/bin"))
        );
        assert_eq!(highest_bindir(&root.path().join("nothing")), None);
    }

    #[test]
    fn settings_quote_the_socket_dir_and_turn_fsync_off_for_tests() {
        let test = settings(Options::for_tests(), Path::new("/tmp/it's"));
        assert!(
            test.contains("unix_socket_directories = '/tmp/it''s'"),
            "{test}"
        );
        assert!(test.contains("fsync = off") && test.contains("max_connections = 200"));
        assert!(!settings(Options::default(), Path::new("/tmp")).contains("fsync"));
    }
}

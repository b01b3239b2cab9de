//! Installs what the build and the tests need, each at its pinned version, skipping what is
//! already there. Only the package registries are reached: crates.io, npm, Debian.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{stage, Result};

/// trunk 0.22 needs a newer rustc than these machines have (see docs/TOOLCHAIN.md).
pub const TRUNK_VERSION: &str = "0.21.14";
/// Debian's wasm-opt (108) silently breaks the build; npm's binaryen 132 works.
pub const BINARYEN_VERSION: &str = "132.0.0";
/// The accessibility audit the end-to-end suite injects into the page.
pub const AXE_CORE_VERSION: &str = "4.14.1";
/// Minifies the widget's JavaScript (trunk's own minifier fails on wasm-bindgen's glue).
pub const TERSER_VERSION: &str = "5.51.4";

pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .unwrap()
        .to_path_buf()
}

pub fn tools_dir() -> PathBuf {
    root().join(".tools")
}

/// Cargo's home: `CARGO_HOME`, else `~/.cargo`.
pub fn cargo_home() -> PathBuf {
    std::env::var("CARGO_HOME")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_else(|_| "/root".into())).join(".cargo")
        })
}

/// PATH with cargo's bin folder and the project-local npm tools first.
pub fn path_env() -> String {
    let npm_bin = tools_dir().join("node_modules/.bin");
    format!(
        "{}:{}:{}",
        npm_bin.display(),
        cargo_home().join("bin").display(),
        std::env::var("PATH").unwrap_or_default()
    )
}

/// Runs a command from the workspace root with our PATH, failing on a non-zero exit.
pub fn run_cmd(program: &str, args: &[&str], envs: &[(&str, &str)]) -> Result {
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(root())
        .env("PATH", path_env())
        .envs(envs.iter().copied());
    forget_cargo_run_env(&mut command);
    // Through the launcher, so a build or test run does not go on after the xtask is killed.
    let status = launcher::spawn(command)
        .and_then(|mut child| child.wait())
        .map_err(|e| format!("cannot start `{program}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{program} {}` failed: {status}", args.join(" ")))
    }
}

/// Drops what `cargo run` set for the xtask itself (`CARGO_MANIFEST_DIR=…/xtask`, `CARGO_PKG_*`):
/// passed on to a nested cargo, it reaches build scripts that watch it (ring's does), and
/// every crate above them is rebuilt each time the xtask and a plain `cargo build` alternate.
pub fn forget_cargo_run_env(command: &mut Command) {
    for (name, _) in std::env::vars_os() {
        let name = name.to_string_lossy();
        let set_for_the_xtask = [
            "CARGO_MANIFEST_",
            "CARGO_PKG_",
            "CARGO_CRATE_",
            "CARGO_BIN_",
        ]
        .iter()
        .any(|prefix| name.starts_with(prefix))
            || name == "CARGO_PRIMARY_PACKAGE";
        if set_for_the_xtask {
            command.env_remove(name.as_ref());
        }
    }
}

pub fn cargo(args: &[&str], envs: &[(&str, &str)]) -> Result {
    run_cmd(
        &std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()),
        args,
        envs,
    )
}

/// What `program --version` prints, or `None` when it is not installed.
fn version_of(program: &str) -> Option<String> {
    let output = Command::new(program)
        .arg("--version")
        .env("PATH", path_env())
        .output()
        .ok()?;
    output
        .status
        .success()
        .then(|| String::from_utf8_lossy(&output.stdout).into_owned())
}

fn on_path(program: &str) -> bool {
    Command::new("sh")
        .args(["-c", &format!("command -v {program}")])
        .env("PATH", path_env())
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

/// The `wasm-bindgen` version in Cargo.lock: the CLI must match it exactly, or trunk tries to
/// download one.
///
/// Read with `cargo-lock` (the lockfile's own format, parsed as TOML, no process started)
/// rather than `cargo_metadata`, which runs `cargo metadata` and resolves the whole
/// dependency graph to answer what one line of the lockfile already says.
pub fn wasm_bindgen_version() -> Result<String> {
    let path = root().join("Cargo.lock");
    let lock = cargo_lock::Lockfile::load(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    wasm_bindgen_in(&lock)
}

fn wasm_bindgen_in(lock: &cargo_lock::Lockfile) -> Result<String> {
    let versions: Vec<String> = lock
        .packages
        .iter()
        .filter(|p| p.name.as_str() == "wasm-bindgen")
        .map(|p| p.version.to_string())
        .collect();
    match &versions[..] {
        [version] => Ok(version.clone()),
        [] => Err("wasm-bindgen is not in Cargo.lock".into()),
        // One CLI cannot match two libraries: the widget's must be the only one.
        several => Err(format!(
            "Cargo.lock has several wasm-bindgen versions ({}); the CLI can match only one",
            several.join(", ")
        )),
    }
}

/// Installs what is missing: the widget's toolchain always; PostgreSQL's server where
/// `postgres` (the tests, the demo's replicas); Chromium and the browser tests' tools where
/// `browser`.
pub fn run(browser: bool, postgres: bool) -> Result {
    stage("wasm32 target", || {
        ensure_rustup("target", "wasm32-unknown-unknown")
    })?;
    // The widget's release build compiles std for size (`widget::BUILD_STD_ENV`) instead of
    // linking the precompiled one.
    stage("Rust standard library source (rust-src)", || {
        ensure_rustup("component", "rust-src")
    })?;
    stage("trunk", || {
        // Without `update_check`: trunk asks crates.io for news on every build otherwise.
        ensure_cargo_tool(
            "trunk",
            "trunk",
            TRUNK_VERSION,
            &["--locked", "--no-default-features", "--features", "rustls"],
        )
    })?;
    stage("wasm-bindgen-cli", || {
        let version = wasm_bindgen_version()?;
        // `--locked` fails here on a crate the registry does not have yet (docs/TOOLCHAIN.md).
        ensure_cargo_tool("wasm-bindgen", "wasm-bindgen-cli", &version, &[])
    })?;
    stage("wasm-opt (npm binaryen)", ensure_binaryen)?;
    stage("terser (npm)", ensure_terser)?;
    stage(
        "host examples: React, Vue, esbuild, TypeScript (npm ci)",
        ensure_host_examples,
    )?;
    if postgres {
        stage("PostgreSQL server (Debian)", ensure_postgres)?;
    }
    if browser {
        stage(
            "Chromium, chromedriver and openssl (Debian)",
            ensure_debian_packages,
        )?;
        stage("axe-core (npm)", ensure_axe_core)?;
    }
    // trunk builds offline (Trunk.toml), so every crate must be in the local registry first:
    // ours, and those of the standard library the widget's release build compiles.
    stage("cargo fetch", || cargo(&["fetch", "--locked"], &[]))?;
    stage("cargo fetch (the standard library's crates)", || {
        cargo(
            &["fetch", "--locked", "--target", "wasm32-unknown-unknown"],
            &crate::widget::BUILD_STD_ENV,
        )
    })
}

/// A rustup `target` or `component`, added unless installed.
fn ensure_rustup(kind: &str, name: &str) -> Result {
    let output = Command::new("rustup")
        .args([kind, "list", "--installed"])
        .output()
        .map_err(|e| format!("rustup: {e}"))?;
    // Components are listed with their host (`rust-src`, `rustc-x86_64-unknown-linux-gnu`).
    if String::from_utf8_lossy(&output.stdout)
        .lines()
        .any(|line| line == name || line.starts_with(&format!("{name}-")))
    {
        println!("    already installed");
        return Ok(());
    }
    run_cmd("rustup", &[kind, "add", name], &[])
}

/// Tools are built for build speed, not run speed: trunk's own release profile (fat LTO, one
/// codegen unit) costs a fresh 2-core machine most of the install time for nothing we notice.
const FAST_INSTALL_PROFILE: [(&str, &str); 3] = [
    ("CARGO_PROFILE_RELEASE_LTO", "false"),
    ("CARGO_PROFILE_RELEASE_CODEGEN_UNITS", "16"),
    ("CARGO_PROFILE_RELEASE_OPT_LEVEL", "1"),
];

/// Finds dependencies a crate declares and never uses (`cargo xtask unused-deps`, CI).
pub const CARGO_MACHETE_VERSION: &str = "0.9.2";

/// Installs cargo-machete (pinned) where missing, then lists unused dependencies: an error
/// if there are any. A dependency it cannot see being used (one reached only through a
/// macro, say) is named in that crate's `[package.metadata.cargo-machete] ignored`, with
/// the reason beside it.
pub fn unused_dependencies() -> Result {
    stage("cargo-machete", || {
        ensure_cargo_tool(
            "cargo-machete",
            "cargo-machete",
            CARGO_MACHETE_VERSION,
            &["--locked"],
        )
    })?;
    stage("unused dependencies (cargo machete)", || {
        run_cmd(
            "cargo-machete",
            &[root().to_str().ok_or("root is not UTF-8")?],
            &[],
        )
    })
}

fn ensure_cargo_tool(program: &str, krate: &str, version: &str, extra: &[&str]) -> Result {
    if version_of(program).is_some_and(|v| v.split_whitespace().any(|w| w == version)) {
        println!("    {program} {version} already installed");
        return Ok(());
    }
    let mut args = vec!["install", krate, "--version", version, "--force"];
    args.extend_from_slice(extra);
    cargo(&args, &FAST_INSTALL_PROFILE)
}

fn ensure_binaryen() -> Result {
    let wasm_opt = tools_dir().join("node_modules/.bin/wasm-opt");
    let wanted = format!("version {}", BINARYEN_VERSION.split('.').next().unwrap());
    if Path::new(&wasm_opt).exists()
        && version_of(wasm_opt.to_str().unwrap()).is_some_and(|v| v.contains(&wanted))
    {
        println!("    wasm-opt {wanted} already installed");
        return Ok(());
    }
    npm_install(&format!("binaryen@{BINARYEN_VERSION}"))
}

fn ensure_terser() -> Result {
    let manifest = tools_dir().join("node_modules/terser/package.json");
    let installed = std::fs::read_to_string(&manifest).unwrap_or_default();
    // Its command too: an npm stopped after writing the package but before linking `.bin`
    // left a manifest that says installed and a minifier nobody can run.
    let linked = tools_dir().join("node_modules/.bin/terser").exists();
    if linked && installed.contains(&format!("\"version\": \"{TERSER_VERSION}\"")) {
        println!("    terser {TERSER_VERSION} already installed");
        return Ok(());
    }
    npm_install(&format!("terser@{TERSER_VERSION}"))
}

fn ensure_axe_core() -> Result {
    let manifest = tools_dir().join("node_modules/axe-core/package.json");
    let installed = std::fs::read_to_string(&manifest).unwrap_or_default();
    if installed.contains(&format!("\"version\": \"{AXE_CORE_VERSION}\"")) {
        println!("    axe-core {AXE_CORE_VERSION} already installed");
        return Ok(());
    }
    npm_install(&format!("axe-core@{AXE_CORE_VERSION}"))
}

/// Where the host examples live: their `package.json` and lockfile pin React, Vue, esbuild
/// and TypeScript (the `.d.ts` check).
pub fn examples_dir() -> PathBuf {
    root().join("examples")
}

/// `npm ci` in `examples/` unless the installed tree was made from today's lockfile (a copy of
/// it is kept beside `node_modules`' own record).
fn ensure_host_examples() -> Result {
    let dir = examples_dir();
    let lock = std::fs::read(dir.join("package-lock.json")).map_err(|e| e.to_string())?;
    let stamp = dir.join("node_modules/.installed-from-lock.json");
    if std::fs::read(&stamp).is_ok_and(|installed| installed == lock) {
        println!("    already installed from examples/package-lock.json");
        return Ok(());
    }
    if !on_path("npm") {
        apt_install(&["nodejs", "npm"])?;
    }
    run_cmd(
        "npm",
        &[
            "ci",
            "--no-audit",
            "--no-fund",
            "--prefix",
            dir.to_str().ok_or("examples/ is not UTF-8")?,
        ],
        &[],
    )?;
    std::fs::write(&stamp, lock).map_err(|e| e.to_string())
}

/// Installs an exact npm package version into the project-local `.tools/` folder.
fn npm_install(package: &str) -> Result {
    if !on_path("npm") {
        apt_install(&["nodejs", "npm"])?;
    }
    let prefix = tools_dir();
    std::fs::create_dir_all(&prefix).map_err(|e| e.to_string())?;
    run_cmd(
        "npm",
        &[
            "install",
            "--no-audit",
            "--no-fund",
            "--save-exact",
            "--prefix",
            prefix.to_str().unwrap(),
            package,
        ],
        &[],
    )
}

fn ensure_debian_packages() -> Result {
    let mut missing = Vec::new();
    for (program, package) in [
        ("chromium", "chromium"),
        ("chromedriver", "chromium-driver"),
        ("openssl", "openssl"),
    ] {
        if !on_path(program) {
            missing.push(package);
        }
    }
    if missing.is_empty() {
        println!("    already installed");
        return Ok(());
    }
    apt_install(&missing)
}

/// The server binaries the tests' throwaway clusters run (`testkit::postgres`): looked for
/// where the tests look (`$PG_BINDIR`, `/usr/lib/postgresql/*/bin`, `pg_config --bindir`),
/// since the client package alone (`psql`, `pg_config`) has no `initdb`.
fn ensure_postgres() -> Result {
    if let Ok(bindir) = testkit::postgres::server_bindir() {
        println!("    already installed ({})", bindir.display());
        return Ok(());
    }
    apt_install(&["postgresql"])?;
    testkit::postgres::server_bindir()
        .map(|_| ())
        .map_err(|e| format!("postgresql installed, yet: {e}"))
}

/// `apt-get install` of `packages`: as root, or through `sudo` for anyone else.
fn apt_install(packages: &[&str]) -> Result {
    let root = Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|out| String::from_utf8_lossy(&out.stdout).trim() == "0");
    let sudo = !root;
    if sudo && !on_path("sudo") {
        return Err(format!(
            "installing Debian packages ({}) needs root: run this as root, or where `sudo` \
             works, or install them yourself",
            packages.join(", ")
        ));
    }
    let apt = |args: &[&str], envs: &[(&str, &str)]| {
        if sudo {
            // `sudo` drops the environment: the settings go on apt-get's command line.
            let settings: Vec<String> = envs.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let mut line = vec!["env"];
            line.extend(settings.iter().map(String::as_str));
            line.push("apt-get");
            line.extend_from_slice(args);
            run_cmd("sudo", &line, &[])
        } else {
            run_cmd("apt-get", args, envs)
        }
    };
    apt(&["update", "-q"], &[])?;
    let mut args = vec!["install", "-y", "-q"];
    args.extend_from_slice(packages);
    apt(&args, &[("DEBIAN_FRONTEND", "noninteractive")])
}

#[cfg(test)]
mod tests {
    use super::*;

    fn lock(packages: &str) -> cargo_lock::Lockfile {
        format!("version = 4\n{packages}").parse().unwrap()
    }

    #[test]
    fn the_wasm_bindgen_version_is_read_from_the_lockfile() {
        let one = lock(
            "[[package]]\nname = \"wasm-bindgen-macro\"\nversion = \"0.2.1\"\n\n\
             [[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\n",
        );
        assert_eq!(wasm_bindgen_in(&one).unwrap(), "0.2.130");
        let none = lock("[[package]]\nname = \"serde\"\nversion = \"1.0.0\"\n");
        assert!(wasm_bindgen_in(&none)
            .unwrap_err()
            .contains("not in Cargo.lock"));
        let two = lock(
            "[[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.129\"\n\n\
             [[package]]\nname = \"wasm-bindgen\"\nversion = \"0.2.130\"\n",
        );
        assert!(wasm_bindgen_in(&two).unwrap_err().contains("several"));
        // And the workspace's own lockfile names the version the widget pins.
        assert!(wasm_bindgen_version().is_ok());
    }
}

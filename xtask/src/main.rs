//! `cargo xtask <command>`: the project's own setup, demo, test and bench commands.
//!
//! Everything a fresh machine needs is installed from here (never from someone's shell
//! history), and skipped when the pinned version is already present. The command line is
//! clap's ([`Cli`]); `cargo xtask --help` lists the commands, `cargo xtask demo --help` the
//! demo's options.

mod setup;
mod stack;
mod widget;

use std::process::ExitCode;
use std::time::Instant;

use clap::{Parser, Subcommand};

/// `cargo xtask <command>`: setup, demo, tests and benchmarks of this workspace.
#[derive(Debug, Parser)]
#[command(
    name = "cargo xtask",
    bin_name = "cargo xtask",
    arg_required_else_help = true
)]
struct Cli {
    #[command(subcommand)]
    command: Task,
}

#[derive(Debug, Subcommand)]
enum Task {
    /// Install what is missing, build the widget, start sandbox + proxies, print the URL
    /// (`demo --help` for its options).
    Demo(stack::DemoArgs),
    /// Install what is missing (with Chromium), then run every test.
    Test,
    /// Run the benchmarks and write BENCHMARKS.md.
    Bench {
        /// Skip the widget (no build, no browser): its rows in BENCHMARKS.md stay as they are.
        #[arg(long)]
        no_widget: bool,
        /// Shortened long sections (10 s sustained load, 1,000 streams); writes nothing.
        #[arg(long)]
        smoke: bool,
    },
    /// Randomized input on the parsers (proxy/tests/fuzz.rs), the targets one after another.
    Fuzz {
        /// Seconds shared among all fuzz targets.
        #[arg(long, value_name = "N", default_value_t = 60)]
        seconds: u64,
    },
    /// Install the pinned wasm toolchain (trunk, wasm-bindgen-cli, wasm-opt, terser) and the
    /// PostgreSQL server binaries the tests' throwaway clusters run.
    Setup {
        /// Also Chromium, chromedriver, openssl and axe-core (what the browser tests need).
        #[arg(long)]
        browser: bool,
    },
    /// Build the widget in release and check its size budget.
    Widget,
    /// Fail if a crate declares a dependency it does not use (cargo machete).
    UnusedDeps,
}

fn main() -> ExitCode {
    // A bad argument: clap's message and usage on stderr, exit code 2 (`--help`: 0).
    let cli = Cli::parse();
    let result = match cli.command {
        Task::Setup { browser } => setup::run(browser, true),
        Task::Widget => setup::run(false, false).and_then(|_| widget::build_release().map(|_| ())),
        Task::Demo(args) => stack::demo(args),
        Task::Test => test(),
        Task::Bench { no_widget, smoke } => bench(no_widget, smoke),
        Task::Fuzz { seconds } => fuzz(seconds),
        Task::UnusedDeps => setup::unused_dependencies(),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("xtask: {message}");
            ExitCode::FAILURE
        }
    }
}

pub type Result<T = ()> = std::result::Result<T, String>;

/// Runs one named stage and prints how long it took, so CI logs show where time goes.
pub fn stage<T>(name: &str, f: impl FnOnce() -> Result<T>) -> Result<T> {
    println!("==> {name}");
    let started = Instant::now();
    let result = f();
    let outcome = if result.is_ok() { "done" } else { "FAILED" };
    println!(
        "<== {name}: {outcome} in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    result
}

/// Every test: native workspace tests (the browser end-to-end suite included), the proxy's
/// API suite once more on PostgreSQL, then the widget's `wasm-bindgen-test` suite in headless
/// Chromium.
fn test() -> Result {
    stage("setup", || setup::run(true, true))?;
    stage("widget release build", || {
        widget::build_release().map(|_| ())
    })?;
    stage(
        "embedding types: tsc --noEmit over examples/typecheck",
        widget::check_types,
    )?;
    stage(
        "native tests (cargo test: every crate but the wasm widget; tests/replicas on a throwaway PostgreSQL)",
        || setup::cargo(&["test", "--locked"], &[]),
    )?;
    stage(
        "the proxy's API suite again, every ledger in PostgreSQL (PROXY_TEST_DATABASE=postgres)",
        || {
            setup::cargo(
                &["test", "--locked", "-p", "proxy", "--test", "api"],
                &[("PROXY_TEST_DATABASE", "postgres")],
            )
        },
    )?;
    stage(
        "widget tests in headless Chromium (wasm-bindgen-test)",
        || {
            setup::cargo(
                &[
                    "test",
                    "--locked",
                    "-p",
                    "frontend",
                    "--target",
                    "wasm32-unknown-unknown",
                ],
                &[],
            )
        },
    )?;
    Ok(())
}

/// The fuzz targets of `proxy/tests/fuzz.rs` (webhook verify + parse, refund request, money,
/// tokens), one after another, sharing `--seconds N`; each prints its case count.
fn fuzz(seconds: u64) -> Result {
    let seconds = seconds.to_string();
    stage(&format!("fuzz targets, {seconds} s in total"), || {
        setup::cargo(
            &[
                "test",
                "--locked",
                "-p",
                "proxy",
                "--test",
                "fuzz",
                "--",
                "--test-threads=1",
                "--nocapture",
            ],
            &[("FUZZ_SECONDS", &seconds)],
        )
    })
}

fn bench(no_widget: bool, smoke: bool) -> Result {
    if !no_widget {
        stage("setup", || setup::run(true, true))?;
        stage("widget release build", || {
            widget::build_release().map(|_| ())
        })?;
    }
    let mut args = vec!["run", "--profile", "bench", "--locked", "-p", "bench", "--"];
    if no_widget {
        args.push("--keep-widget-rows");
    }
    if smoke {
        args.push("--smoke");
    }
    stage("benchmarks", || setup::cargo(&args, &[]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::error::ErrorKind;

    fn parse(args: &[&str]) -> std::result::Result<Task, clap::Error> {
        Cli::try_parse_from(std::iter::once("cargo xtask").chain(args.iter().copied()))
            .map(|cli| cli.command)
    }

    #[test]
    fn every_command_of_the_readme_and_ci_parses() {
        assert!(matches!(
            parse(&["setup"]),
            Ok(Task::Setup { browser: false })
        ));
        assert!(matches!(
            parse(&["setup", "--browser"]),
            Ok(Task::Setup { browser: true })
        ));
        assert!(matches!(parse(&["demo"]), Ok(Task::Demo(_))));
        assert!(matches!(parse(&["test"]), Ok(Task::Test)));
        assert!(matches!(
            parse(&["bench"]),
            Ok(Task::Bench {
                no_widget: false,
                smoke: false
            })
        ));
        assert!(matches!(
            parse(&["bench", "--no-widget", "--smoke"]),
            Ok(Task::Bench {
                no_widget: true,
                smoke: true
            })
        ));
        assert!(matches!(parse(&["widget"]), Ok(Task::Widget)));
        assert!(matches!(parse(&["unused-deps"]), Ok(Task::UnusedDeps)));
        assert!(matches!(parse(&["fuzz"]), Ok(Task::Fuzz { seconds: 60 })));
        assert!(matches!(
            parse(&["fuzz", "--seconds", "600"]),
            Ok(Task::Fuzz { seconds: 600 })
        ));
    }

    #[test]
    fn bad_arguments_are_clap_errors() {
        let kind = |args: &[&str]| parse(args).unwrap_err().kind();
        assert_eq!(
            kind(&[]),
            ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand
        );
        assert_eq!(kind(&["deploy"]), ErrorKind::InvalidSubcommand);
        assert_eq!(
            kind(&["fuzz", "--seconds", "x"]),
            ErrorKind::ValueValidation
        );
        assert_eq!(kind(&["fuzz", "--seconds"]), ErrorKind::InvalidValue);
        assert_eq!(kind(&["test", "--browser"]), ErrorKind::UnknownArgument);
    }

    #[test]
    fn the_command_line_definition_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}

//! `cargo xtask <command>`: the project's own setup, demo, test and bench commands.
//!
//! Everything a fresh machine needs is installed from here (never from someone's shell
//! history), and skipped when the pinned version is already present.

mod setup;
mod stack;
mod widget;

use std::process::ExitCode;
use std::time::Instant;

const USAGE: &str = "\
usage: cargo xtask <command>

  demo         install what is missing, build the widget, start sandbox + proxies, print the URL
               (--ports S,P,F for other ports, --reset for an empty ledger; `demo --help` for more)
  test         install what is missing (with Chromium), then run every test
  bench        run the benchmarks and write BENCHMARKS.md
  fuzz         randomized input for --seconds N in total (default 60) on the parsers
  setup        install the wasm toolchain (add --browser for Chromium and chromedriver)
  widget       build the widget in release and check its size budget
  unused-deps  fail if a crate declares a dependency it does not use (cargo machete)
";

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("setup") => setup::run(args.iter().any(|a| a == "--browser")),
        Some("widget") => setup::run(false).and_then(|_| widget::build_release().map(|_| ())),
        Some("demo") => stack::demo(&args[1..]),
        Some("test") => test(),
        Some("bench") => bench(),
        Some("fuzz") => fuzz(&args[1..]),
        Some("unused-deps") => setup::unused_dependencies(),
        _ => {
            eprint!("{USAGE}");
            return ExitCode::from(2);
        }
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

/// Every test: native workspace tests (the browser end-to-end suite included), then the
/// widget's `wasm-bindgen-test` suite in headless Chromium.
fn test() -> Result {
    stage("setup", || setup::run(true))?;
    stage("widget release build", || {
        widget::build_release().map(|_| ())
    })?;
    stage(
        "native tests (cargo test: every crate but the wasm widget)",
        || setup::cargo(&["test", "--locked"], &[]),
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
fn fuzz(args: &[String]) -> Result {
    let seconds: u64 = match args {
        [] => 60,
        [flag, n] if flag == "--seconds" => n
            .parse()
            .map_err(|_| format!("--seconds takes a number of seconds, not `{n}`"))?,
        _ => return Err("usage: cargo xtask fuzz [--seconds N]".into()),
    };
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

fn bench() -> Result {
    stage("setup", || setup::run(true))?;
    stage("widget release build", || {
        widget::build_release().map(|_| ())
    })?;
    stage("benchmarks", || {
        setup::cargo(
            &["run", "--profile", "bench", "--locked", "-p", "bench"],
            &[],
        )
    })
}

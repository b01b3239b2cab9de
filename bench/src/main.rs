//! `cargo xtask bench`: runs every benchmark, prints the table, writes `BENCHMARKS.md`.
//!
//! Started again as `bench serve …` or `bench bare-serve …`, it is one of the servers under
//! test instead (see `bench::servers`).

use std::process::ExitCode;
use std::time::Instant;

use bench::machine::Machine;
use bench::report::Report;
use bench::{fanout, ingest, overhead, servers, signing_cost, weight, workspace_root};

fn main() -> ExitCode {
    if let Some(code) = servers::child_main() {
        return code;
    }
    let started = Instant::now();
    let machine = Machine::detect();
    let mut notes = Vec::new();
    let mut rows = weight::rows(&workspace_root().join("dist"));
    stage("signing", || rows.extend(signing_cost::measure()));
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let at = Instant::now();
        rows.extend(overhead::measure(&mut notes).await);
        eprintln!(
            "bench: proxy overhead in {:.1} s",
            at.elapsed().as_secs_f64()
        );
        let at = Instant::now();
        rows.extend(ingest::measure(&mut notes).await);
        eprintln!(
            "bench: webhook ingest in {:.1} s",
            at.elapsed().as_secs_f64()
        );
        let at = Instant::now();
        rows.extend(fanout::measure(&mut notes).await);
        eprintln!("bench: live fan-out in {:.1} s", at.elapsed().as_secs_f64());
    });
    drop(runtime);
    notes.push(format!(
        "The whole run took {:.0} s.",
        started.elapsed().as_secs_f64()
    ));
    let report = Report {
        machine,
        rows,
        notes,
    };
    let text = report.markdown();
    println!("{text}");
    let path = workspace_root().join("BENCHMARKS.md");
    if let Err(e) = std::fs::write(&path, &text) {
        eprintln!("bench: cannot write {}: {e}", path.display());
        return ExitCode::FAILURE;
    }
    println!("written to {}", path.display());
    ExitCode::SUCCESS
}

fn stage(name: &str, f: impl FnOnce()) {
    let at = Instant::now();
    f();
    eprintln!("bench: {name} in {:.1} s", at.elapsed().as_secs_f64());
}

//! `cargo xtask bench`: runs every benchmark, prints the table, writes `BENCHMARKS.md`.
//!
//! Started again as `bench serve …` or `bench bare-serve …`, it is one of the servers under
//! test instead (see `bench::servers`).

use std::process::ExitCode;
use std::time::Instant;

use bench::machine::Machine;
use bench::report::Report;
use bench::{fanout, ingest, overhead, servers, signing_cost, start, weight, workspace_root};

fn main() -> ExitCode {
    if let Some(code) = servers::child_main() {
        return code;
    }
    // `bench ingest fanout …` runs only those sections (and writes no BENCHMARKS.md).
    let only: Vec<String> = std::env::args().skip(1).collect();
    let wanted = |name: &str| only.is_empty() || only.iter().any(|o| o == name);
    let started = Instant::now();
    let machine = Machine::detect();
    let mut notes = Vec::new();
    let mut rows = Vec::new();
    if wanted("weight") {
        rows.extend(weight::rows(&workspace_root().join("dist")));
    }
    if wanted("signing") {
        stage("signing", || rows.extend(signing_cost::measure()));
    }
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        let at = Instant::now();
        if wanted("start") {
            rows.extend(start::measure(&mut notes).await);
        }
        eprintln!("bench: widget start in {:.1} s", at.elapsed().as_secs_f64());
        let at = Instant::now();
        if wanted("overhead") {
            rows.extend(overhead::measure(&mut notes).await);
        }
        eprintln!(
            "bench: proxy overhead in {:.1} s",
            at.elapsed().as_secs_f64()
        );
        let at = Instant::now();
        if wanted("ingest") {
            rows.extend(ingest::measure(&mut notes).await);
        }
        eprintln!(
            "bench: webhook ingest in {:.1} s",
            at.elapsed().as_secs_f64()
        );
        let at = Instant::now();
        if wanted("fanout") {
            rows.extend(fanout::measure(&mut notes).await);
        }
        eprintln!("bench: live fan-out in {:.1} s", at.elapsed().as_secs_f64());
    });
    drop(runtime);
    // Measured in the order that keeps the machine quiet; shown in the order.
    rows.sort_by_key(|row| row.section);
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
    if !only.is_empty() {
        return ExitCode::SUCCESS;
    }
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

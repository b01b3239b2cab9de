//! `cargo xtask bench`: runs every benchmark, prints the table, writes `BENCHMARKS.md`.
//!
//! Started again as `bench serve …` or `bench bare-serve …`, it is one of the servers under
//! test instead (see `bench::servers`).

use std::future::Future;
use std::process::ExitCode;
use std::time::Instant;

use bench::machine::Machine;
use bench::report::{Report, Row};
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
        notes.push(
            "Widget weight: the profile of the wasm by crate, every cut tried with its saving \
             (gloo-net's cost among them) and why 100 KB is not reached are in \
             `docs/WIDGET-SIZE.md`."
                .to_owned(),
        );
    }
    if wanted("signing") {
        stage("signing", || rows.extend(signing_cost::measure()));
    }
    let runtime = tokio::runtime::Runtime::new().expect("a tokio runtime");
    runtime.block_on(async {
        // Each future is only polled (so only runs) when its section is wanted.
        rows.extend(section("widget start", wanted("start"), start::measure(&mut notes)).await);
        rows.extend(
            section(
                "proxy overhead",
                wanted("overhead"),
                overhead::measure(&mut notes),
            )
            .await,
        );
        rows.extend(
            section(
                "webhook ingest",
                wanted("ingest"),
                ingest::measure(&mut notes),
            )
            .await,
        );
        rows.extend(
            section(
                "live fan-out",
                wanted("fanout"),
                fanout::measure(&mut notes),
            )
            .await,
        );
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

/// An async section: measured and timed when wanted, skipped (never polled) otherwise.
async fn section(name: &str, wanted: bool, measure: impl Future<Output = Vec<Row>>) -> Vec<Row> {
    if !wanted {
        return Vec::new();
    }
    let at = Instant::now();
    let rows = measure.await;
    eprintln!("bench: {name} in {:.1} s", at.elapsed().as_secs_f64());
    rows
}

fn stage(name: &str, f: impl FnOnce()) {
    let at = Instant::now();
    f();
    eprintln!("bench: {name} in {:.1} s", at.elapsed().as_secs_f64());
}

//! `cargo xtask bench`: runs every benchmark, prints the table, writes `BENCHMARKS.md`.

use bench::machine::Machine;
use bench::report::Report;
use bench::{signing_cost, weight, workspace_root};

fn main() {
    let machine = Machine::detect();
    let mut rows = Vec::new();
    let notes = Vec::new();
    rows.extend(weight::rows(&workspace_root().join("dist")));
    rows.extend(signing_cost::measure());
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
        std::process::exit(1);
    }
    println!("written to {}", path.display());
}

//! `cargo xtask bench`: runs every benchmark, prints the table, writes `BENCHMARKS.md`.
//!
//! Started again as `bench serve …` or `bench bare-serve …`, it is one of the servers under
//! test instead (see `bench::servers`).

use std::future::Future;
use std::process::ExitCode;
use std::time::Instant;

use bench::machine::Machine;
use bench::report::{Report, Row, Verdict};
use bench::{
    fanout, ingest, overhead, postgres, servers, signing_cost, start, sustained, weight,
    workspace_root,
};

fn main() -> ExitCode {
    if let Some(code) = servers::child_main() {
        return code;
    }
    // `bench ingest fanout …` runs only those sections (and writes no BENCHMARKS.md).
    // `--smoke`: the long sections shortened (a 10 s sustained run, 1,000 streams), nothing
    // written. `--keep-widget-rows`: no widget section (nothing built, no browser); the widget
    // rows and notes of the current BENCHMARKS.md are kept as they are.
    let args: Vec<String> = std::env::args().skip(1).collect();
    let smoke = args.iter().any(|a| a == "--smoke");
    let keep_widget = args.iter().any(|a| a == "--keep-widget-rows");
    let only: Vec<String> = args.into_iter().filter(|a| !a.starts_with("--")).collect();
    let wanted = |name: &str| {
        let widget = matches!(name, "weight" | "start");
        (only.is_empty() && !(keep_widget && widget)) || only.iter().any(|o| o == name)
    };
    let write = only.is_empty() && !smoke;
    raise_open_file_limit();
    let started = Instant::now();
    let machine = Machine::detect();
    let mut notes = Vec::new();
    let mut rows = Vec::new();
    if keep_widget && write {
        let (kept_rows, kept_notes) = kept_widget_rows();
        rows.extend(kept_rows);
        notes.extend(kept_notes);
    }
    if wanted("weight") {
        rows.extend(weight::rows(&workspace_root().join("dist")));
        rows.extend(weight::profile_rows(&workspace_root()));
        notes.push(
            "Widget weight: the gzip and brotli figures are the sizes of the compressed \
             copies `cargo xtask widget` writes beside each file and the proxy sends (gzip by \
             zopfli, brotli at quality 11); until 2026-11-30 the proxy sent the files \
             uncompressed, and the gzip figure was zlib's at level 9 (141.4 KB in all, \
             zopfli's 133.7 KB for the same files). The rows \"wasm by crate\" are this build's largest contributors, \
             function bodies grouped by the first crate each function's name names, and all \
             data segments as one row, read from the wasm `wasm-bindgen` leaves before \
             `wasm-opt`. Before, in issue 13's profile of the build it was filed against: \
             leptos, tachys and reactive_graph about 31 % of the code bytes, read-only data \
             13 %, the widget 11 %, `core`'s formatting 10 %, `shared`, `alloc` and \
             `serde_json` 5 % each. The top 15 before the cuts (twiggy 0.8 on the wasm before \
             `wasm-opt`, 411 KB of code and data, 2026-11-29, the widget then 160.1 KB gzip): \
             tachys 77.3 KB (19.2 %), frontend 53.6 KB (13.3 %), read-only data 51.3 KB \
             (12.8 %), reactive_graph 46.3 KB (11.5 %), core 43.9 KB (10.9 %), shared \
             20.7 KB (5.1 %), alloc 18.7 KB (4.6 %), serde_json 18.4 KB (4.6 %), js_sys \
             9.9 KB (2.5 %), unnamed 9.4 KB (2.4 %), serde_core 8.9 KB (2.2 %), js 7.2 KB \
             (1.8 %), dlmalloc 6.8 KB (1.7 %), wasm_bindgen 5.2 KB (1.3 %), leptos 4.8 KB \
             (1.2 %). gloo-net, measured against the same base (each variant built once, the \
             same day): +2.3 KB gzip for HTTP through `gloo_net::http`, +3.7 KB for HTTP and \
             the event stream (its `eventsource` feature), over issue 13's 3 KB, so the \
             widget keeps `web_sys`'s `fetch` and `EventSource`. Every cut tried with its \
             saving, the round-11 and round-12 profiles by crate, and why 100 KB is not \
             reached are in `docs/WIDGET-SIZE.md`."
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
                fanout::measure(if smoke { fanout::SMOKE } else { fanout::FULL }, &mut notes),
            )
            .await,
        );
        rows.extend(
            section(
                "PostgreSQL ledger",
                wanted("postgres") && !smoke,
                postgres::measure(&mut notes),
            )
            .await,
        );
        rows.extend(
            section(
                "sustained load",
                wanted("sustained"),
                sustained::measure(
                    if smoke {
                        sustained::SMOKE
                    } else {
                        sustained::FULL
                    },
                    &mut notes,
                ),
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
    if !write {
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

/// The open-file soft limit raised to the hard limit: 10,000 event streams are 10,000 sockets
/// here and 10,000 in the proxy child, which inherits the limit.
fn raise_open_file_limit() {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the kernel to fill, then to read.
    unsafe {
        if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) == 0 && limit.rlim_cur < limit.rlim_max
        {
            limit.rlim_cur = limit.rlim_max;
            if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                eprintln!("bench: cannot raise the open-file limit");
            }
        }
    }
}

/// The widget rows and notes of the current `BENCHMARKS.md`, for a run that does not build
/// the widget.
fn kept_widget_rows() -> (Vec<Row>, Vec<String>) {
    let text = std::fs::read_to_string(workspace_root().join("BENCHMARKS.md")).unwrap_or_default();
    let mut rows = Vec::new();
    let mut notes = Vec::new();
    for line in text.lines() {
        if let Some(note) = line.strip_prefix("- Widget") {
            let kept = " (kept from an earlier run: this one did not build the widget)";
            let note = format!("Widget{note}");
            notes.push(if note.ends_with(kept) {
                note
            } else {
                note + kept
            });
            continue;
        }
        let cells: Vec<&str> = line
            .trim()
            .trim_matches('|')
            .split(" | ")
            .map(str::trim)
            .collect();
        let section = match cells.first() {
            Some(&"1. widget weight") => "1. widget weight",
            Some(&"2. widget start") => "2. widget start",
            _ => continue,
        };
        if cells.len() != 6 {
            continue;
        }
        rows.push(Row {
            section,
            what: cells[1].into(),
            figure: cells[2].into(),
            baseline: cells[3].into(),
            goal: cells[4].into(),
            verdict: match cells[5] {
                "met" => Verdict::Met,
                "**missed**" => Verdict::Missed,
                "not measured" => Verdict::NotMeasured,
                _ => Verdict::NoGoal,
            },
        });
    }
    (rows, notes)
}

//! The one table: each figure beside its same-run baseline and the goal, with met /
//! missed; then the machine it ran on and the closing notes. Printed, and written to
//! `BENCHMARKS.md`.

use std::fmt::Write as _;
use std::time::Duration;

use crate::machine::Machine;

/// Whether a figure meets its goal. Informational only: nothing fails on it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    Met,
    Missed,
    /// The issue sets no goal for this figure.
    NoGoal,
    /// The figure could not be measured in this run (the row says why).
    NotMeasured,
}

impl Verdict {
    pub fn of(met: bool) -> Verdict {
        if met {
            Verdict::Met
        } else {
            Verdict::Missed
        }
    }

    fn label(self) -> &'static str {
        match self {
            Verdict::Met => "met",
            Verdict::Missed => "**missed**",
            Verdict::NoGoal => "",
            Verdict::NotMeasured => "not measured",
        }
    }
}

/// One line of the table.
#[derive(Debug, Clone)]
pub struct Row {
    /// Which of the measurements this is, e.g. `4. proxy overhead`.
    pub section: &'static str,
    pub what: String,
    pub figure: String,
    /// The same-run baseline the figure is relative to, if any.
    pub baseline: String,
    pub goal: String,
    pub verdict: Verdict,
}

impl Row {
    /// A figure with no goal and no baseline.
    pub fn plain(section: &'static str, what: impl Into<String>, figure: impl Into<String>) -> Row {
        Row {
            section,
            what: what.into(),
            figure: figure.into(),
            baseline: String::new(),
            goal: String::new(),
            verdict: Verdict::NoGoal,
        }
    }

    pub fn baseline(mut self, baseline: impl Into<String>) -> Row {
        self.baseline = baseline.into();
        self
    }

    pub fn goal(mut self, goal: impl Into<String>, met: bool) -> Row {
        self.goal = goal.into();
        self.verdict = Verdict::of(met);
        self
    }

    /// A row for a measurement that could not run, saying why, with the goal it would face.
    pub fn not_measured(
        section: &'static str,
        what: impl Into<String>,
        why: impl Into<String>,
        goal: &str,
    ) -> Row {
        Row {
            section,
            what: what.into(),
            figure: format!("— ({})", why.into()),
            baseline: String::new(),
            goal: goal.into(),
            verdict: Verdict::NotMeasured,
        }
    }
}

/// Everything `BENCHMARKS.md` says.
#[derive(Debug, Clone)]
pub struct Report {
    pub machine: Machine,
    pub rows: Vec<Row>,
    /// The closing note: method, and what dominates a missed goal.
    pub notes: Vec<String>,
}

impl Report {
    pub fn markdown(&self) -> String {
        let mut out = String::new();
        out.push_str("# Benchmarks\n\n");
        out.push_str(
            "Written by `cargo xtask bench`. Every timing is a median, or a ratio against a \
             baseline measured in the same run on the same machine; all load is bounded and \
             goes to 127.0.0.1 only. Goals are from issues 8 and 13 (the proxy's against a storage \
             floor measured in the same run); nothing fails on a timing.\n\n",
        );
        let _ = writeln!(out, "Machine: {}\n", self.machine.describe());
        out.push_str("| measurement | what | figure | baseline (same run) | goal | verdict |\n");
        out.push_str("|---|---|---|---|---|---|\n");
        for row in &self.rows {
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | {} | {} |",
                cell(row.section),
                cell(&row.what),
                cell(&row.figure),
                cell(&row.baseline),
                cell(&row.goal),
                row.verdict.label()
            );
        }
        if !self.notes.is_empty() {
            out.push_str("\n## Notes\n\n");
            for note in &self.notes {
                let _ = writeln!(out, "- {note}");
            }
        }
        out
    }
}

/// A table cell: a `|` would end it early.
fn cell(text: &str) -> String {
    text.replace('|', "\\|").replace('\n', " ")
}

/// `834 ns`, `12.4 µs`, `3.21 ms`, `1.50 s`.
pub fn duration(d: Duration) -> String {
    let nanos = d.as_nanos();
    if nanos < 1_000 {
        format!("{nanos} ns")
    } else if nanos < 1_000_000 {
        format!("{:.1} µs", nanos as f64 / 1e3)
    } else if nanos < 1_000_000_000 {
        format!("{:.2} ms", nanos as f64 / 1e6)
    } else {
        format!("{:.2} s", nanos as f64 / 1e9)
    }
}

/// A signed difference of durations (an added latency can come out negative in noise).
pub fn delta(from: Duration, to: Duration) -> String {
    if to >= from {
        format!("+{}", duration(to - from))
    } else {
        format!("−{}", duration(from - to))
    }
}

/// Bytes as KB (1024), one decimal, the way `cargo xtask widget` prints them.
pub fn kb(bytes: u64) -> String {
    format!("{:.1} KB", bytes as f64 / 1024.0)
}

/// Bytes as MB (1024²), one decimal.
pub fn mb(bytes: u64) -> String {
    format!("{:.1} MB", bytes as f64 / 1024.0 / 1024.0)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn machine() -> Machine {
        Machine {
            cpus: 2,
            model: "Test CPU".into(),
            memory: "1.0 GiB".into(),
            rustc: "rustc 1.0".into(),
            date: "2026-01-01 00:00 UTC".into(),
        }
    }

    #[test]
    fn the_table_shows_each_figure_with_its_goal_and_verdict() {
        let report = Report {
            machine: machine(),
            rows: vec![
                Row::plain("1. weight", "total gzip", "90.0 KB").goal("≤ 100 KB", true),
                Row::plain("2. start", "median", "120 ms").goal("≤ 100 ms", false),
                Row::not_measured("6. fan-out", "p99", "no proxy", "≤ 50 ms"),
            ],
            notes: vec!["start is dominated by wasm compile".into()],
        };

        let text = report.markdown();

        assert!(text.contains("| 1. weight | total gzip | 90.0 KB |  | ≤ 100 KB | met |"));
        assert!(text.contains("| **missed** |"));
        assert!(text.contains("not measured"));
        assert!(text.contains("2 CPUs (nproc), Test CPU, 1.0 GiB memory, rustc 1.0"));
        assert!(text.contains("- start is dominated by wasm compile"));
    }

    #[test]
    fn durations_pick_a_readable_unit() {
        assert_eq!(duration(Duration::from_nanos(834)), "834 ns");
        assert_eq!(duration(Duration::from_micros(12_400) / 1000), "12.4 µs");
        assert_eq!(duration(Duration::from_micros(3_210)), "3.21 ms");
        assert_eq!(
            delta(Duration::from_millis(2), Duration::from_millis(1)),
            "−1.00 ms"
        );
    }
}

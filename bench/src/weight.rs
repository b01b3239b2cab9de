//! The widget's weight: its `.wasm`, `.js` and `.css` files in `dist/`, raw, gzip and brotli,
//! measured by `testkit::widget_size` as `cargo xtask widget` measures them, so the two tables
//! agree byte for byte.

use std::path::Path;

use testkit::widget_size::{measure, total};

use crate::report::{kb, Row};
use crate::wasm_profile;

const SECTION: &str = "1. widget weight";
/// Issue 8's goal for what an embedding page transfers, gzip.
pub const GOAL_GZIP_BYTES: u64 = 100 * 1024;

/// One row per file, then the total against the goal. Without a built widget, one row that
/// says so.
pub fn rows(dist: &Path) -> Vec<Row> {
    let sizes = match measure(dist) {
        Ok(sizes) => sizes,
        Err(why) => {
            return vec![Row::not_measured(
                SECTION,
                "total transferred, gzip",
                why,
                "≤ 100 KB gzip",
            )]
        }
    };
    let mut rows: Vec<Row> = sizes
        .iter()
        .map(|f| {
            Row::plain(
                SECTION,
                format!("{} `{}`", kind(&f.name), f.name),
                weight(f.gzip, f.brotli, f.raw),
            )
        })
        .collect();
    let all = total(&sizes);
    rows.push(
        Row::plain(
            SECTION,
            "total transferred (wasm + js + css)",
            weight(all.gzip, all.brotli, all.raw),
        )
        .goal("≤ 100 KB gzip", all.gzip <= GOAL_GZIP_BYTES),
    );
    rows
}

/// How many of the wasm's largest contributors the table lists (issue 13: the top 15).
const PROFILE_TOP: usize = 15;

/// The wasm's largest contributors by crate (`wasm_profile`), one row each, largest first.
pub fn profile_rows(root: &Path) -> Vec<Row> {
    let (shares, total) = match wasm_profile::of_release_build(root) {
        Ok(profile) => profile,
        Err(why) => return vec![Row::not_measured(SECTION, "wasm by crate", why, "")],
    };
    shares
        .iter()
        .take(PROFILE_TOP)
        .enumerate()
        .map(|(i, share)| {
            let percent = share.bytes as f64 * 100.0 / total.max(1) as f64;
            let row = Row::plain(
                SECTION,
                format!("wasm by crate, #{}: {}", i + 1, share.group),
                format!("{} ({percent:.1} %)", kb(share.bytes)),
            );
            if i == 0 {
                row.baseline(format!("of {} code and data, before wasm-opt", kb(total)))
            } else {
                row
            }
        })
        .collect()
}

fn weight(gzip: u64, brotli: u64, raw: u64) -> String {
    format!("{} gzip, {} brotli ({} raw)", kb(gzip), kb(brotli), kb(raw))
}

/// What kind of widget file `name` is: `wasm`, `js` or `css`.
pub fn kind(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

//! The widget's weight: its `.wasm`, `.js` and `.css` files in `dist/`, raw, gzip and brotli.
//!
//! Counted the way `cargo xtask widget` counts them (gzip and brotli at their best levels, each
//! file on its own), so the two tables agree byte for byte.

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

use crate::report::{kb, Row};

const SECTION: &str = "1. widget weight";
/// Issue 8's goal for what an embedding page transfers, gzip.
pub const GOAL_GZIP_BYTES: u64 = 100 * 1024;

/// One built file's weight, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSize {
    pub name: String,
    pub raw: u64,
    pub gzip: u64,
    /// At brotli's best (quality 11), as a server that pre-compresses would send it.
    pub brotli: u64,
}

/// The widget's files in `dist`, sorted by name.
pub fn measure(dist: &Path) -> Result<Vec<FileSize>, String> {
    let entries = std::fs::read_dir(dist).map_err(|e| format!("{}: {e}", dist.display()))?;
    let mut sizes = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let is_widget = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("wasm" | "js" | "css")
        );
        if !is_widget || !path.is_file() {
            continue;
        }
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let name = path
            .file_name()
            .unwrap_or_default()
            .to_string_lossy()
            .into_owned();
        sizes.push(FileSize {
            name,
            raw: bytes.len() as u64,
            gzip: gzip_len(&bytes),
            brotli: brotli_len(&bytes),
        });
    }
    if !sizes.iter().any(|f| f.name.ends_with(".wasm")) {
        return Err(format!(
            "no .wasm in {}: build the widget first",
            dist.display()
        ));
    }
    sizes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(sizes)
}

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
    let gzip: u64 = sizes.iter().map(|f| f.gzip).sum();
    let brotli: u64 = sizes.iter().map(|f| f.brotli).sum();
    let raw: u64 = sizes.iter().map(|f| f.raw).sum();
    rows.push(
        Row::plain(
            SECTION,
            "total transferred (wasm + js + css)",
            weight(gzip, brotli, raw),
        )
        .goal("≤ 100 KB gzip", gzip <= GOAL_GZIP_BYTES),
    );
    rows
}

/// Bytes after gzip at the best level.
pub fn gzip_len(bytes: &[u8]) -> u64 {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::best());
    encoder
        .write_all(bytes)
        .expect("writing to a Vec cannot fail");
    encoder
        .finish()
        .expect("finishing into a Vec cannot fail")
        .len() as u64
}

/// Bytes after brotli at its best quality (11) and window (22 bits), as `brotli -q 11`.
pub fn brotli_len(bytes: &[u8]) -> u64 {
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params)
        .expect("compressing into a Vec cannot fail");
    out.len() as u64
}

fn weight(gzip: u64, brotli: u64, raw: u64) -> String {
    format!("{} gzip, {} brotli ({} raw)", kb(gzip), kb(brotli), kb(raw))
}

/// What kind of widget file `name` is: `wasm`, `js` or `css`.
pub fn kind(name: &str) -> &str {
    name.rsplit('.').next().unwrap_or(name)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wasm_js_and_css_count_and_gzip_shrinks_repetitive_text() {
        let dist = tempfile::tempdir().unwrap();
        std::fs::write(dist.path().join("w_bg.wasm"), vec![0u8; 4096]).unwrap();
        std::fs::write(dist.path().join("w.js"), "let a = 1;\n".repeat(200)).unwrap();
        std::fs::write(dist.path().join("index.html"), "<html></html>").unwrap();

        let sizes = measure(dist.path()).unwrap();

        let names: Vec<_> = sizes.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["w.js", "w_bg.wasm"]);
        assert_eq!(sizes[1].raw, 4096);
        assert!(sizes.iter().all(|f| f.gzip < f.raw && f.brotli < f.raw));
    }

    #[test]
    fn a_dist_without_wasm_is_an_error() {
        let dist = tempfile::tempdir().unwrap();
        assert!(measure(dist.path()).is_err());
    }
}

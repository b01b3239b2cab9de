//! The widget's weight: its `.wasm`, `.js` and `.css` files in `dist/` (what a host page
//! transfers), raw, gzip and brotli, each file on its own. One measurement for
//! `cargo xtask widget` (the budget) and the bench (BENCHMARKS.md), so the two agree byte for
//! byte.

use std::io::Write;
use std::path::Path;

use flate2::write::GzEncoder;
use flate2::Compression;

/// One built file's weight, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSize {
    pub name: String,
    pub raw: u64,
    /// At gzip's best level (9).
    pub gzip: u64,
    /// At brotli's best (quality 11), as a server that pre-compresses would send it.
    pub brotli: u64,
}

/// The widget's files in `dist`, sorted by name; an error when there is no `.wasm`.
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
            "no .wasm in {}: build the widget first (`cargo xtask widget`)",
            dist.display()
        ));
    }
    sizes.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(sizes)
}

/// All of `sizes` together: what a host page transfers.
pub fn total(sizes: &[FileSize]) -> FileSize {
    FileSize {
        name: "total".into(),
        raw: sizes.iter().map(|f| f.raw).sum(),
        gzip: sizes.iter().map(|f| f.gzip).sum(),
        brotli: sizes.iter().map(|f| f.brotli).sum(),
    }
}

/// Bytes after gzip at the best level.
fn gzip_len(bytes: &[u8]) -> u64 {
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
fn brotli_len(bytes: &[u8]) -> u64 {
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &brotli_params())
        .expect("compressing into a Vec cannot fail");
    out.len() as u64
}

fn brotli_params() -> brotli::enc::BrotliEncoderParams {
    brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_wasm_js_and_css_count_and_both_encoders_shrink_repetitive_text() {
        let dist = tempfile::tempdir().unwrap();
        std::fs::write(dist.path().join("w_bg.wasm"), vec![0u8; 4096]).unwrap();
        std::fs::write(dist.path().join("w.js"), "let a = 1;\n".repeat(200)).unwrap();
        std::fs::write(dist.path().join("index.html"), "<html></html>").unwrap();

        let sizes = measure(dist.path()).unwrap();

        let names: Vec<_> = sizes.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(names, ["w.js", "w_bg.wasm"]);
        assert_eq!(sizes[1].raw, 4096);
        assert!(sizes.iter().all(|f| f.gzip < f.raw && f.brotli < f.raw));
        let all = total(&sizes);
        assert_eq!(all.raw, sizes[0].raw + 4096);
        assert_eq!(all.gzip, sizes[0].gzip + sizes[1].gzip);
        assert_eq!(all.brotli, sizes[0].brotli + sizes[1].brotli);
    }

    #[test]
    fn a_dist_without_wasm_is_an_error() {
        let dist = tempfile::tempdir().unwrap();
        assert!(measure(dist.path()).is_err());
    }

    #[test]
    fn brotli_measures_what_a_decoder_gets_back() {
        let text = "refund ".repeat(2000);
        let size = brotli_len(text.as_bytes());
        assert!(size > 0 && size < 200, "{size}");
        let mut packed = Vec::new();
        brotli::BrotliCompress(&mut text.as_bytes(), &mut packed, &brotli_params()).unwrap();
        assert_eq!(packed.len() as u64, size);
        let mut unpacked = Vec::new();
        brotli::BrotliDecompress(&mut &packed[..], &mut unpacked).unwrap();
        assert_eq!(unpacked, text.as_bytes());
    }
}

//! The widget's weight: its `.wasm`, `.js` and `.css` files in `dist/` (what a host page
//! transfers), raw, gzip and brotli, each file on its own; and the compressed copies the proxy
//! sends (`precompress`). One place for both, so `cargo xtask widget` (the budget), the bench
//! (BENCHMARKS.md) and the proxy's answers agree byte for byte: the gzip and brotli sizes
//! measured are those of the files served.

use std::io::Read;
use std::path::{Path, PathBuf};

/// One built file's weight, in bytes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FileSize {
    pub name: String,
    pub raw: u64,
    /// Its `.gz` beside it: zopfli's gzip, what the proxy sends a client that accepts gzip.
    pub gzip: u64,
    /// Its `.br` beside it: brotli at its best (quality 11), what the proxy sends a client
    /// that accepts brotli (every current browser).
    pub brotli: u64,
}

/// The compressed copies of a file, beside it with the encoding's suffix.
const ENCODINGS: [(&str, Encoder, Decoder); 2] =
    [("gz", gzip, gunzip), ("br", brotli_best, unbrotli)];

type Encoder = fn(&[u8]) -> Vec<u8>;
type Decoder = fn(&[u8]) -> Option<Vec<u8>>;

/// The checksum list the proxy reads before it sends a copy (`proxy::static_files::CHECKSUMS`):
/// `sha256sum`'s format, one line for each file and each of its copies.
pub const CHECKSUMS: &str = ".compressed.sha256";

/// Writes `X.gz` and `X.br` beside every widget file `X` in `dist`, and the checksum list that
/// vouches for them: the proxy sends a copy to clients that accept its encoding while the
/// list's hashes are those of the copy and of `X`. Returns the files compressed.
pub fn precompress(dist: &Path) -> Result<Vec<PathBuf>, String> {
    let files = widget_files(dist)?;
    let mut checksums = String::new();
    for path in &files {
        let bytes = std::fs::read(path).map_err(|e| format!("{}: {e}", path.display()))?;
        checksums.push_str(&checksum_line(&bytes, &file_name(path)));
        for (suffix, encode, _) in ENCODINGS {
            let packed_path = sibling(path, suffix);
            let packed = encode(&bytes);
            std::fs::write(&packed_path, &packed)
                .map_err(|e| format!("{}: {e}", packed_path.display()))?;
            checksums.push_str(&checksum_line(&packed, &file_name(&packed_path)));
        }
    }
    let list = dist.join(CHECKSUMS);
    std::fs::write(&list, checksums).map_err(|e| format!("{}: {e}", list.display()))?;
    Ok(files)
}

/// One line of `sha256sum`'s output.
fn checksum_line(bytes: &[u8], name: &str) -> String {
    use sha2::Digest;
    format!("{}  {name}\n", hex::encode(sha2::Sha256::digest(bytes)))
}

/// The widget's files in `dist`, sorted by name, with the sizes of their compressed copies.
/// An error when there is no `.wasm`, when a copy is missing or no longer decodes to its file
/// (built again without `precompress`), or when the checksum list does not vouch for a file
/// and its copies (the proxy would send the file as it is): the sizes would not be what is
/// sent.
pub fn measure(dist: &Path) -> Result<Vec<FileSize>, String> {
    let files = widget_files(dist)?;
    let list_path = dist.join(CHECKSUMS);
    let list = std::fs::read_to_string(&list_path).map_err(|e| {
        format!(
            "{}: {e}; without it the proxy sends no copy (`cargo xtask widget` writes it)",
            list_path.display()
        )
    })?;
    let vouched = |bytes: &[u8], path: &Path| {
        if list.contains(&checksum_line(bytes, &file_name(path))) {
            Ok(())
        } else {
            Err(format!(
                "{} does not vouch for {}: the proxy would not send its copies; build the \
                 widget with `cargo xtask widget`",
                list_path.display(),
                path.display()
            ))
        }
    };
    let mut sizes = Vec::new();
    for path in files {
        let bytes = std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        let mut packed_len = [0u64; 2];
        for ((suffix, _, decode), len) in ENCODINGS.into_iter().zip(&mut packed_len) {
            let packed_path = sibling(&path, suffix);
            let packed = std::fs::read(&packed_path).map_err(|e| {
                format!(
                    "{}: {e}; compress the widget's files (`cargo xtask widget`)",
                    packed_path.display()
                )
            })?;
            if decode(&packed).as_deref() != Some(&bytes[..]) {
                return Err(format!(
                    "{} is not {} compressed: stale; build the widget with `cargo xtask widget`",
                    packed_path.display(),
                    path.display()
                ));
            }
            vouched(&packed, &packed_path)?;
            *len = packed.len() as u64;
        }
        vouched(&bytes, &path)?;
        sizes.push(FileSize {
            name: file_name(&path),
            raw: bytes.len() as u64,
            gzip: packed_len[0],
            brotli: packed_len[1],
        });
    }
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

/// `dist`'s `.wasm`, `.js` and `.css` files, sorted by name; an error without a `.wasm`.
fn widget_files(dist: &Path) -> Result<Vec<PathBuf>, String> {
    let entries = std::fs::read_dir(dist).map_err(|e| format!("{}: {e}", dist.display()))?;
    let mut files = Vec::new();
    for entry in entries {
        let path = entry.map_err(|e| e.to_string())?.path();
        let is_widget = matches!(
            path.extension().and_then(|e| e.to_str()),
            Some("wasm" | "js" | "css")
        );
        if is_widget && path.is_file() {
            files.push(path);
        }
    }
    if !files.iter().any(|p| file_name(p).ends_with(".wasm")) {
        return Err(format!(
            "no .wasm in {}: build the widget first (`cargo xtask widget`)",
            dist.display()
        ));
    }
    files.sort();
    Ok(files)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .unwrap_or_default()
        .to_string_lossy()
        .into_owned()
}

/// `X.suffix` beside `X`.
fn sibling(path: &Path, suffix: &str) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// gzip by zopfli, which searches harder than zlib's level 9 for the same format any browser
/// decodes: about 5 % smaller for the widget's wasm, for a second of build time.
fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut out = Vec::new();
    zopfli::compress(
        zopfli::Options::default(),
        zopfli::Format::Gzip,
        bytes,
        &mut out,
    )
    .expect("compressing into a Vec cannot fail");
    out
}

fn gunzip(packed: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(packed)
        .read_to_end(&mut out)
        .ok()?;
    Some(out)
}

/// Brotli at its best quality (11) and window (22 bits), as `brotli -q 11`.
fn brotli_best(bytes: &[u8]) -> Vec<u8> {
    let params = brotli::enc::BrotliEncoderParams {
        quality: 11,
        lgwin: 22,
        ..Default::default()
    };
    let mut out = Vec::new();
    brotli::BrotliCompress(&mut &bytes[..], &mut out, &params)
        .expect("compressing into a Vec cannot fail");
    out
}

fn unbrotli(packed: &[u8]) -> Option<Vec<u8>> {
    let mut out = Vec::new();
    brotli::BrotliDecompress(&mut &packed[..], &mut out).ok()?;
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn dist_with_widget() -> tempfile::TempDir {
        let dist = tempfile::tempdir().unwrap();
        std::fs::write(dist.path().join("w_bg.wasm"), vec![0u8; 4096]).unwrap();
        std::fs::write(dist.path().join("w.js"), "let a = 1;\n".repeat(200)).unwrap();
        std::fs::write(dist.path().join("index.html"), "<html></html>").unwrap();
        dist
    }

    #[test]
    fn the_sizes_are_those_of_the_compressed_copies_beside_each_widget_file() {
        let dist = dist_with_widget();
        let compressed = precompress(dist.path()).unwrap();
        assert_eq!(compressed.len(), 2, "the page is not part of the widget");
        let list = std::fs::read_to_string(dist.path().join(CHECKSUMS)).unwrap();
        let listed: Vec<&str> = list
            .lines()
            .map(|l| l.split_once("  ").unwrap().1)
            .collect();
        assert_eq!(
            listed,
            [
                "w.js",
                "w.js.gz",
                "w.js.br",
                "w_bg.wasm",
                "w_bg.wasm.gz",
                "w_bg.wasm.br"
            ]
        );

        let sizes = measure(dist.path()).unwrap();

        let names: Vec<_> = sizes.iter().map(|f| f.name.as_str()).collect();
        assert_eq!(
            names,
            ["w.js", "w_bg.wasm"],
            "the copies are not counted as files"
        );
        for size in &sizes {
            let file = dist.path().join(&size.name);
            let raw = std::fs::read(&file).unwrap();
            let gz = std::fs::read(sibling(&file, "gz")).unwrap();
            let br = std::fs::read(sibling(&file, "br")).unwrap();
            assert_eq!(size.raw, raw.len() as u64);
            assert_eq!(size.gzip, gz.len() as u64);
            assert_eq!(size.brotli, br.len() as u64);
            assert!(size.gzip < size.raw && size.brotli < size.raw, "{size:?}");
            assert_eq!(gunzip(&gz).unwrap(), raw);
            assert_eq!(unbrotli(&br).unwrap(), raw);
            for (bytes, name) in [
                (&raw, size.name.clone()),
                (&gz, format!("{}.gz", size.name)),
                (&br, format!("{}.br", size.name)),
            ] {
                assert!(
                    list.contains(&checksum_line(bytes, &name)),
                    "{name} in {list}"
                );
            }
        }
        let all = total(&sizes);
        assert_eq!(all.raw, sizes[0].raw + 4096);
        assert_eq!(all.gzip, sizes[0].gzip + sizes[1].gzip);
        assert_eq!(all.brotli, sizes[0].brotli + sizes[1].brotli);
    }

    #[test]
    fn a_copy_that_is_missing_or_of_other_bytes_is_an_error_not_a_size() {
        let dist = dist_with_widget();
        precompress(dist.path()).unwrap();
        // Built again, not compressed again.
        std::fs::write(dist.path().join("w.js"), "let b = 2;\n".repeat(200)).unwrap();
        let error = measure(dist.path()).unwrap_err();
        assert!(
            error.contains("w.js.gz") && error.contains("stale"),
            "{error}"
        );

        precompress(dist.path()).unwrap();
        assert!(measure(dist.path()).is_ok());
        std::fs::remove_file(dist.path().join("w_bg.wasm.br")).unwrap();
        let error = measure(dist.path()).unwrap_err();
        assert!(error.contains("w_bg.wasm.br"), "{error}");

        // The list the proxy reads before it sends a copy: missing, or not naming these bytes.
        precompress(dist.path()).unwrap();
        let list = dist.path().join(CHECKSUMS);
        let lines = std::fs::read_to_string(&list).unwrap();
        std::fs::write(&list, lines.replace("  w.js.br\n", "  w.js.br.old\n")).unwrap();
        let error = measure(dist.path()).unwrap_err();
        assert!(error.contains("w.js.br"), "{error}");
        std::fs::remove_file(&list).unwrap();
        let error = measure(dist.path()).unwrap_err();
        assert!(error.contains(CHECKSUMS), "{error}");
    }

    #[test]
    fn a_dist_without_wasm_is_an_error() {
        let dist = tempfile::tempdir().unwrap();
        assert!(measure(dist.path()).is_err());
        assert!(precompress(dist.path()).is_err());
    }

    #[test]
    fn zopfli_writes_a_smaller_gzip_than_zlib_at_its_best_level() {
        use std::io::Write;
        let text: String = (0..3000)
            .map(|i| format!("refund {} of {};", i % 97, i % 13))
            .collect();
        let mut zlib = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        zlib.write_all(text.as_bytes()).unwrap();
        let zlib = zlib.finish().unwrap();
        let packed = gzip(text.as_bytes());
        assert!(
            packed.len() < zlib.len(),
            "{} vs {}",
            packed.len(),
            zlib.len()
        );
        assert_eq!(gunzip(&packed).unwrap(), text.as_bytes());
    }
}

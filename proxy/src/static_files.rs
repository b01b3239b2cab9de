//! The widget's files (`serve_dir`), served so that nothing else in or near that folder can
//! leak: no dotfiles or dot-folders (`.env`, `.git/`), and no symlink that leads out of it.
//! (The configuration separately refuses a ledger, key or config file inside it.)
//!
//! A file's compressed copies beside it (`X.br`, `X.gz`, which `cargo xtask widget` writes)
//! are sent instead to a client that accepts their encoding: the widget's wasm is 329 KB as
//! built and about 110 KB as brotli. A copy is sent only while the folder's checksum list
//! (`.compressed.sha256`, written with the copies) vouches for both it and its file, so a
//! file built or copied again without its copies goes out as it is, never as other bytes.
//!
//! Every file is sent `Cache-Control: no-cache`: a browser may keep it, and asks whether it
//! changed before each use.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::Request;
use axum::http::{header, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tower::ServiceExt as _;
use tower_http::services::ServeDir;

use crate::error::ApiError;

/// The checksum list beside compressed copies: `sha256sum`'s format, one line per file and
/// per copy. A dotfile, so never served.
pub const CHECKSUMS: &str = ".compressed.sha256";

/// The copies `precompressed` looks for, by suffix.
const COPIES: [&str; 2] = ["br", "gz"];

/// `serve_dir` behind the checks; cheap to clone.
#[derive(Clone, Debug)]
pub struct StaticFiles(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// `serve_dir` with every symlink resolved: what every served file must lie inside.
    root: PathBuf,
    /// The files as they are.
    plain: ServeDir,
    /// The same, or a file's `.br` or `.gz` copy to a client that accepts that encoding.
    precompressed: ServeDir,
    /// Each file's copies as last checked, and the versions (size, time) of the files then:
    /// a file is hashed again only once one of them changes. At most one entry per file in
    /// the folder that has copies.
    checked: Mutex<HashMap<PathBuf, (Versions, Copies)>>,
}

impl StaticFiles {
    pub fn new(dir: &Path) -> Self {
        let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        Self(Arc::new(Inner {
            plain: ServeDir::new(&root),
            precompressed: ServeDir::new(&root).precompressed_br().precompressed_gzip(),
            root,
            checked: Mutex::default(),
        }))
    }

    /// Answers `request` with a file, or `not_found` for anything it may not serve.
    pub async fn serve(&self, request: Request) -> Response {
        let Some(file) = self.servable(request.uri().path()) else {
            return ApiError::NotFound.into_response();
        };
        let copies = self.copies(file).await;
        let files = match copies {
            Copies::Vouched => &self.0.precompressed,
            Copies::None | Copies::Unvouched => &self.0.plain,
        };
        match files.clone().oneshot(request).await {
            Ok(response) if response.status() == StatusCode::NOT_FOUND => {
                ApiError::NotFound.into_response()
            }
            Ok(mut response) => {
                let headers = response.headers_mut();
                if copies == Copies::Vouched {
                    // Caches between must keep the encodings apart.
                    headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
                }
                // The files keep their names from one build to the next, and the glue and the
                // wasm only work together: a browser that kept one from before a deploy (by
                // its own guess of freshness) would pair it with the other's new version. So
                // every use asks again; an unchanged file costs a 304 without a body.
                headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
                response.map(axum::body::Body::new)
            }
            Err(never) => match never {},
        }
    }

    /// The file a URL path names inside the folder, if it may be served: no segment (decoded,
    /// as the file service decodes it) starts with a dot, and the file, or the `index.html` a
    /// folder stands for, resolves inside the folder. (It may not exist: the file service
    /// answers 404 itself.)
    fn servable(&self, path: &str) -> Option<PathBuf> {
        let decoded = percent_decode(path)?;
        let segments: Vec<&str> = decoded.split('/').filter(|s| !s.is_empty()).collect();
        if segments
            .iter()
            .any(|s| s.starts_with('.') || s.contains('\\') || s.contains('\0'))
        {
            return None;
        }
        let target = segments.iter().fold(self.0.root.clone(), |p, s| p.join(s));
        let inside = |p: &Path| match std::fs::canonicalize(p) {
            Ok(real) => real.starts_with(&self.0.root),
            Err(_) => true,
        };
        if !inside(&target) {
            return None;
        }
        if target.is_dir() {
            let page = target.join("index.html");
            return inside(&page).then_some(page);
        }
        Some(target)
    }

    /// Whether `file`'s compressed copies may be sent: a few `stat`s, and the hashing only
    /// when the file, a copy or the checksum list changed since the last check.
    async fn copies(&self, file: PathBuf) -> Copies {
        let versions = Versions::of(&file);
        if !versions.has_copies() {
            return Copies::None;
        }
        let checked = self.0.checked.lock().expect("poisoned").get(&file).cloned();
        if let Some((seen, copies)) = checked {
            if seen == versions {
                return copies;
            }
        }
        let path = file.clone();
        let copies = tokio::task::spawn_blocking(move || Copies::check(&path))
            .await
            .unwrap_or(Copies::Unvouched);
        if copies == Copies::Unvouched {
            tracing::warn!(file = %file.display(), "compressed copies not vouched for by {CHECKSUMS}: the file is sent as it is (compress it again: `cargo xtask widget`)");
        }
        self.0
            .checked
            .lock()
            .expect("poisoned")
            .insert(file, (versions, copies));
        copies
    }
}

/// Whether a file has compressed copies the client may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Copies {
    None,
    /// The checksum list names the file and every copy there, with their bytes' hashes.
    Vouched,
    /// A copy the list does not vouch for, with the file as it is now: not sent.
    Unvouched,
}

impl Copies {
    fn check(file: &Path) -> Self {
        let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
            return Copies::Unvouched;
        };
        let Ok(list) = std::fs::read_to_string(dir.join(CHECKSUMS)) else {
            return Copies::Unvouched;
        };
        let listed: HashMap<&str, &str> = list
            .lines()
            .filter_map(|line| line.split_once("  "))
            .map(|(hash, name)| (name, hash))
            .collect();
        let name = name.to_string_lossy();
        let mut names = vec![name.to_string()];
        names.extend(
            COPIES
                .iter()
                .map(|suffix| format!("{name}.{suffix}"))
                .filter(|copy| dir.join(copy).is_file()),
        );
        let vouched = names.iter().all(|name| {
            let Ok(bytes) = std::fs::read(dir.join(name)) else {
                return false;
            };
            listed.get(name.as_str()) == Some(&hex::encode(Sha256::digest(&bytes)).as_str())
        });
        if vouched {
            Copies::Vouched
        } else {
            Copies::Unvouched
        }
    }
}

/// The size and modification time of a file, its copies and the checksum list (`None` where
/// one is missing): what a check of its copies depends on.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Versions(Vec<Option<(u64, SystemTime)>>);

impl Versions {
    fn of(file: &Path) -> Self {
        let version = |p: &Path| {
            let meta = std::fs::metadata(p).ok()?;
            Some((meta.len(), meta.modified().ok()?))
        };
        let mut versions = vec![version(file)];
        versions.extend(COPIES.iter().map(|suffix| {
            let mut copy = file.as_os_str().to_owned();
            copy.push(".");
            copy.push(suffix);
            version(Path::new(&copy))
        }));
        versions.push(file.parent().and_then(|dir| version(&dir.join(CHECKSUMS))));
        Self(versions)
    }

    /// Whether the file is there and has a compressed copy.
    fn has_copies(&self) -> bool {
        self.0[0].is_some() && self.0[1..=COPIES.len()].iter().any(Option::is_some)
    }
}

/// `%XX`-decoded UTF-8, or `None` if malformed (refused rather than guessed at).
fn percent_decode(path: &str) -> Option<String> {
    let bytes = path.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            let hex = std::str::from_utf8(bytes.get(i + 1..i + 3)?).ok()?;
            out.push(u8::from_str_radix(hex, 16).ok()?);
            i += 3;
        } else {
            out.push(bytes[i]);
            i += 1;
        }
    }
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn encoded_dots_are_decoded_before_the_check() {
        assert_eq!(percent_decode("/%2eenv").as_deref(), Some("/.env"));
        assert_eq!(percent_decode("/%zz"), None);
        let files = StaticFiles::new(Path::new("/nonexistent"));
        assert!(files.servable("/%2Egit/config").is_none());
        assert!(files.servable("/a/.hidden").is_none());
        assert!(files.servable("/sg-refund.js").is_some());
    }
}

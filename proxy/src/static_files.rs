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
//! Every file is sent `Cache-Control: no-cache` with an `ETag` of its bytes' hash: a browser
//! may keep it, and asks whether it changed before each use (a 304 while it has not).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::SystemTime;

use axum::extract::Request;
use axum::http::{header, HeaderMap, HeaderValue, Method, StatusCode};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};
use tower::ServiceExt as _;
use tower_http::services::ServeDir;

use crate::error::ApiError;

/// The checksum list beside compressed copies: `sha256sum`'s format, one line per file and
/// per copy. A dotfile, so never served.
pub const CHECKSUMS: &str = ".compressed.sha256";

/// The copies looked for, by suffix: those `precompressed` below sends (brotli, gzip).
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
    /// What is known of each file served, by its real path, and the versions (size, time) of
    /// the file, its copies and the list it was learnt from: a file is read and hashed again
    /// only once one of them changes. One entry per file of the folder.
    known: Mutex<HashMap<PathBuf, Known>>,
}

impl StaticFiles {
    pub fn new(dir: &Path) -> Self {
        let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        Self(Arc::new(Inner {
            plain: ServeDir::new(&root),
            precompressed: ServeDir::new(&root).precompressed_br().precompressed_gzip(),
            root,
            known: Mutex::default(),
        }))
    }

    /// Answers `request` with a file, or `not_found` for anything it may not serve.
    pub async fn serve(&self, mut request: Request) -> Response {
        // Files are only read: any other method names no route (the file service's own
        // answer would be a bare 405, without the error body every other refusal has).
        if !matches!(*request.method(), Method::GET | Method::HEAD) {
            return ApiError::NotFound.into_response();
        }
        let files = self.clone();
        let path = request.uri().path().to_owned();
        // The checks touch the file system: off the runtime's threads.
        let Ok(Some(known)) = tokio::task::spawn_blocking(move || files.look_up(&path)).await
        else {
            return ApiError::NotFound.into_response();
        };
        if let Some(known) = &known {
            if let Some(tags) = request.headers().get(header::IF_NONE_MATCH) {
                if known.matches(tags) {
                    let mut unchanged = StatusCode::NOT_MODIFIED.into_response();
                    known.describe(unchanged.headers_mut());
                    return unchanged;
                }
                // The tag decides: a date that says otherwise is not asked (RFC 9110, 13.2.2).
                request.headers_mut().remove(header::IF_MODIFIED_SINCE);
            }
        }
        let service = match known.as_ref().map(|k| k.copies) {
            Some(Copies::Vouched) => &self.0.precompressed,
            _ => &self.0.plain,
        };
        match service.clone().oneshot(request).await {
            Ok(response) if response.status() == StatusCode::NOT_FOUND => {
                ApiError::NotFound.into_response()
            }
            Ok(mut response) => {
                if let Some(known) = &known {
                    known.describe(response.headers_mut());
                }
                response.map(axum::body::Body::new)
            }
            Err(never) => match never {},
        }
    }

    /// `None` for a path that may not be served; `Some(None)` for one that may but names no
    /// file (the file service answers: 404, or a folder's redirect); else what is known of
    /// the file. Blocking.
    fn look_up(&self, path: &str) -> Option<Option<Known>> {
        let file = self.servable(path)?;
        let Ok(real) = std::fs::canonicalize(&file) else {
            return Some(None);
        };
        if !real.is_file() {
            return Some(None);
        }
        let versions = Versions::of(&real);
        let cached = self.0.known.lock().expect("poisoned").get(&real).cloned();
        if let Some(known) = cached.filter(|known| known.versions == versions) {
            return Some(Some(known));
        }
        let learnt = Known::learn(&self.0.root, &real, versions);
        if learnt.versions == Versions::of(&real) {
            self.0
                .known
                .lock()
                .expect("poisoned")
                .insert(real, learnt.clone());
            return Some(Some(learnt));
        }
        // Changed while it was read: sent as it is, without a tag, and learnt next time.
        Some(Some(Known {
            copies: Copies::Unvouched,
            etag: None,
            ..learnt
        }))
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
        if !self.inside(&target) {
            return None;
        }
        if target.is_dir() {
            let page = target.join("index.html");
            return self.inside(&page).then_some(page);
        }
        Some(target)
    }

    /// Whether `path` resolves inside the folder (a missing path does: nothing is served).
    fn inside(&self, path: &Path) -> bool {
        match std::fs::canonicalize(path) {
            Ok(real) => real.starts_with(&self.0.root),
            Err(_) => true,
        }
    }
}

/// What is known of one file: whether its copies may be sent, and its tag.
#[derive(Debug, Clone)]
struct Known {
    versions: Versions,
    copies: Copies,
    /// `W/"…"`, from the file's SHA-256: the same for each encoding of the same bytes.
    etag: Option<HeaderValue>,
}

impl Known {
    /// Reads and hashes `file`, and checks its copies against the list. Blocking.
    fn learn(root: &Path, file: &Path, versions: Versions) -> Self {
        let Ok(bytes) = std::fs::read(file) else {
            return Self {
                versions,
                copies: Copies::Unvouched,
                etag: None,
            };
        };
        let hash = hex::encode(Sha256::digest(&bytes));
        let etag = HeaderValue::from_str(&format!("W/\"{}\"", &hash[..32])).ok();
        let copies = Copies::check(root, file, &hash);
        if copies == Copies::Unvouched {
            tracing::warn!(file = %file.display(), "compressed copies not vouched for by {CHECKSUMS}: the file is sent as it is (compress it again: `cargo xtask widget`)");
        }
        Self {
            versions,
            copies,
            etag,
        }
    }

    /// Whether `If-None-Match` names this file's tag (compared weakly, as that header is).
    fn matches(&self, tags: &HeaderValue) -> bool {
        let (Some(etag), Ok(tags)) = (&self.etag, tags.to_str()) else {
            return false;
        };
        let opaque = |tag: &str| tag.trim().trim_start_matches("W/").to_owned();
        let ours = opaque(etag.to_str().unwrap_or_default());
        tags.split(',')
            .any(|tag| tag.trim() == "*" || opaque(tag) == ours)
    }

    /// The headers every answer with this file carries, a 304 included.
    fn describe(&self, headers: &mut HeaderMap) {
        // The file names stay the same from one build to the next, and the glue and the wasm
        // only work together: a browser that kept one from before a deploy (by its own guess
        // of freshness) would pair it with the other's new version. So every use asks again.
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-cache"));
        // Any file may have copies: caches between must keep the encodings apart.
        headers.append(header::VARY, HeaderValue::from_static("accept-encoding"));
        if let Some(etag) = &self.etag {
            headers.insert(header::ETAG, etag.clone());
        }
    }
}

/// Whether a file has compressed copies the client may be sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Copies {
    None,
    /// The checksum list names the file and every copy there, with their bytes' hashes.
    Vouched,
    /// A copy the list does not vouch for, one that is not a plain file inside the folder,
    /// or a file that changed while it was read: not sent.
    Unvouched,
}

impl Copies {
    /// `file`'s copies against the list beside it, `hash` being the file's. Blocking.
    fn check(root: &Path, file: &Path, hash: &str) -> Self {
        let (Some(dir), Some(name)) = (file.parent(), file.file_name()) else {
            return Copies::Unvouched;
        };
        let list = std::fs::read_to_string(dir.join(CHECKSUMS)).unwrap_or_default();
        let listed: HashMap<&str, &str> = list
            .lines()
            .filter_map(|line| line.split_once("  "))
            .map(|(hash, name)| (name, hash))
            .collect();
        let vouches = |name: &str, hash: &str| listed.get(name) == Some(&hash);
        let mut copies = Copies::None;
        for suffix in COPIES {
            let copy = copy_of(file, suffix);
            let Ok(meta) = std::fs::metadata(&copy) else {
                continue;
            };
            let inside = std::fs::canonicalize(&copy).is_ok_and(|real| real.starts_with(root));
            let vouched = meta.is_file()
                && inside
                && vouches(&name.to_string_lossy(), hash)
                && std::fs::read(&copy).is_ok_and(|bytes| {
                    let copy_name = format!("{}.{suffix}", name.to_string_lossy());
                    vouches(&copy_name, &hex::encode(Sha256::digest(&bytes)))
                });
            if !vouched {
                return Copies::Unvouched;
            }
            copies = Copies::Vouched;
        }
        copies
    }
}

/// `X.suffix` beside `X`.
fn copy_of(file: &Path, suffix: &str) -> PathBuf {
    let mut name = file.as_os_str().to_owned();
    name.push(".");
    name.push(suffix);
    PathBuf::from(name)
}

/// The size and modification time of a file, its copies and the checksum list (`None` where
/// one is missing): what is known of the file holds while these do.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Versions(Vec<Option<(u64, SystemTime)>>);

impl Versions {
    fn of(file: &Path) -> Self {
        let version = |p: &Path| {
            let meta = std::fs::metadata(p).ok()?;
            Some((meta.len(), meta.modified().ok()?))
        };
        let mut versions = vec![version(file)];
        versions.extend(COPIES.iter().map(|suffix| version(&copy_of(file, suffix))));
        versions.push(file.parent().and_then(|dir| version(&dir.join(CHECKSUMS))));
        Self(versions)
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

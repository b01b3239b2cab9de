//! The widget's files (`serve_dir`), served so that nothing else in or near that folder can
//! leak: no dotfiles or dot-folders (`.env`, `.git/`), and no symlink that leads out of it.
//! (The configuration separately refuses a ledger, key or config file inside it.)

use std::path::{Path, PathBuf};
use std::sync::Arc;

use axum::extract::Request;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use tower::ServiceExt as _;
use tower_http::services::ServeDir;

use crate::error::ApiError;

/// `serve_dir` behind the checks; cheap to clone.
#[derive(Clone, Debug)]
pub struct StaticFiles(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    /// `serve_dir` with every symlink resolved: what every served file must lie inside.
    root: PathBuf,
    files: ServeDir,
}

impl StaticFiles {
    pub fn new(dir: &Path) -> Self {
        let root = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_path_buf());
        Self(Arc::new(Inner {
            files: ServeDir::new(&root),
            root,
        }))
    }

    /// Answers `request` with a file, or `not_found` for anything it may not serve.
    pub async fn serve(&self, request: Request) -> Response {
        if !self.may_serve(request.uri().path()) {
            return ApiError::NotFound.into_response();
        }
        match self.0.files.clone().oneshot(request).await {
            Ok(response) if response.status() == StatusCode::NOT_FOUND => {
                ApiError::NotFound.into_response()
            }
            Ok(response) => response.map(axum::body::Body::new),
            Err(never) => match never {},
        }
    }

    /// Whether the URL path names something inside the folder that is not hidden: no
    /// segment (decoded, as the file service decodes it) starts with a dot, and the file, or
    /// the `index.html` a folder stands for, resolves inside the folder.
    fn may_serve(&self, path: &str) -> bool {
        let Some(decoded) = percent_decode(path) else {
            return false;
        };
        let segments: Vec<&str> = decoded.split('/').filter(|s| !s.is_empty()).collect();
        if segments
            .iter()
            .any(|s| s.starts_with('.') || s.contains('\\') || s.contains('\0'))
        {
            return false;
        }
        let target = segments.iter().fold(self.0.root.clone(), |p, s| p.join(s));
        let inside = |p: &Path| match std::fs::canonicalize(p) {
            Ok(real) => real.starts_with(&self.0.root),
            // Missing: the file service answers 404 itself.
            Err(_) => true,
        };
        inside(&target) && (!target.is_dir() || inside(&target.join("index.html")))
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
        assert!(!files.may_serve("/%2Egit/config"));
        assert!(!files.may_serve("/a/.hidden"));
        assert!(files.may_serve("/sg-refund.js"));
    }
}

//! Security headers, set in one place (tower-http's `SetResponseHeaderLayer`) on everything
//! the proxy answers: a CSP that lets the served pages run the wasm widget and nothing
//! else, `nosniff`, no referrer, who may frame the pages, and `no-store` on API answers. An
//! event stream keeps `nosniff` and `no-store` and leaves a document's out
//! ([`except_on_streams`]).
//!
//! The CSP allows scripts from this origin, WebAssembly compilation (`'wasm-unsafe-eval'`:
//! the widget is wasm), and the inline scripts and stylesheets of the served HTML files by
//! their SHA-256, read once at start: so an injected `<script>` or `<style>` applies nowhere,
//! and rebuilding `serve_dir` needs a restart. The widget's own stylesheet is a constructed
//! one, which no policy governs.

use std::path::Path;

use axum::http::{header, HeaderName, HeaderValue};
use axum::response::Response;
use axum::Router;
use base64::Engine as _;
use sha2::{Digest, Sha256};
use tower::ServiceBuilder;
use tower_http::set_header::SetResponseHeaderLayer;

use crate::config::Config;

/// The `Content-Security-Policy` of everything served (pages, files and API answers alike:
/// a JSON answer opened as a page runs nothing either).
pub fn content_security_policy(config: &Config) -> String {
    let mut script_src = vec!["'self'".to_owned(), "'wasm-unsafe-eval'".to_owned()];
    let mut style_src = vec!["'self'".to_owned()];
    if let Some(dir) = &config.serve_dir {
        script_src.extend(inline_hashes(dir, "script"));
        style_src.extend(inline_hashes(dir, "style"));
    }
    let mut connect_src = vec!["'self'".to_owned()];
    connect_src.extend(config.connect_src.iter().cloned());
    format!(
        "default-src 'none'; script-src {}; style-src {}; \
         img-src 'self' data:; font-src 'self'; connect-src {}; base-uri 'none'; \
         form-action 'none'; object-src 'none'; frame-ancestors {}",
        script_src.join(" "),
        style_src.join(" "),
        connect_src.join(" "),
        config.frame_ancestors
    )
}

/// `router` with the security headers on every answer but an event stream's (see
/// [`except_on_streams`]).
pub fn with_headers<S: Clone + Send + Sync + 'static>(
    router: Router<S>,
    config: &Config,
) -> Router<S> {
    let csp = HeaderValue::from_str(&content_security_policy(config))
        .unwrap_or_else(|_| HeaderValue::from_static("default-src 'none'; frame-ancestors 'none'"));
    let frame_options = (config.frame_ancestors == "'none'").then(|| {
        SetResponseHeaderLayer::overriding(
            HeaderName::from_static("x-frame-options"),
            except_on_streams(HeaderValue::from_static("DENY")),
        )
    });
    router.layer(
        ServiceBuilder::new()
            .layer(SetResponseHeaderLayer::overriding(
                header::CONTENT_SECURITY_POLICY,
                except_on_streams(csp),
            ))
            // Every answer not a file's (files say `no-cache` with their tag): the routes'
            // own say so already, and so do the refusals answered before or beside them
            // (404, 405, 403, 408, 413), which a cache could otherwise keep.
            .layer(SetResponseHeaderLayer::if_not_present(
                header::CACHE_CONTROL,
                HeaderValue::from_static("no-store"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::X_CONTENT_TYPE_OPTIONS,
                HeaderValue::from_static("nosniff"),
            ))
            .layer(SetResponseHeaderLayer::overriding(
                header::REFERRER_POLICY,
                except_on_streams(HeaderValue::from_static("no-referrer")),
            ))
            .option_layer(frame_options),
    )
}

/// The most headers an event stream's answer carries. hyper keeps each connection's response
/// header map for the connection's life (emptied, its room kept, for the next request's
/// headers), and a stream's connection lives for hours: a map of more than six grows to room
/// for twelve, 1.24 KB a stream where six take half that (heaptrack, 10,000 streams).
pub const STREAM_HEADERS_AT_MOST: usize = 6;

/// `value`, but nothing on an event stream: a content security policy, framing and referrer
/// rules are a document's and `EventSource` reads no header, so there they only take room
/// ([`STREAM_HEADERS_AT_MOST`]). An event stream keeps its type, `no-store`, `nosniff`, its
/// request id and CORS's `vary` and allowed origin.
pub fn except_on_streams(value: HeaderValue) -> impl Fn(&Response) -> Option<HeaderValue> + Clone {
    move |response: &Response| (!is_event_stream(response)).then(|| value.clone())
}

fn is_event_stream(response: &Response) -> bool {
    response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|kind| kind.as_bytes().starts_with(b"text/event-stream"))
}

/// `Cache-Control: no-store`, for the routes (API answers carry payment data and tokens);
/// the static files stay cacheable.
pub fn no_store() -> SetResponseHeaderLayer<HeaderValue> {
    SetResponseHeaderLayer::overriding(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
}

/// The `'sha256-…'` sources of the inline `<script>`s (`tag` `"script"`) or `<style>`s of the
/// HTML files at the top of `dir`.
pub fn inline_hashes(dir: &Path, tag: &str) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut hashes = Vec::new();
    for entry in entries.flatten() {
        let path = entry.path();
        if path.extension().and_then(|e| e.to_str()) != Some("html") {
            continue;
        }
        let Ok(html) = std::fs::read_to_string(&path) else {
            continue;
        };
        for text in inline(&html, tag) {
            let digest = Sha256::digest(text.as_bytes());
            hashes.push(format!(
                "'sha256-{}'",
                base64::engine::general_purpose::STANDARD.encode(digest)
            ));
        }
    }
    hashes.sort();
    hashes.dedup();
    hashes
}

/// The text of each `<tag>` element without `src`, exactly as the browser hashes it.
fn inline<'a>(html: &'a str, tag: &str) -> Vec<&'a str> {
    let (open, close) = (format!("<{tag}"), format!("</{tag}"));
    let mut texts = Vec::new();
    let mut rest = html;
    while let Some(start) = rest.find(&open) {
        let after = &rest[start..];
        let Some(tag_end) = after.find('>') else {
            break;
        };
        let attributes = &after[..tag_end];
        let body = &after[tag_end + 1..];
        let Some(end) = body.find(&close) else {
            break;
        };
        if !attributes.contains("src=") {
            texts.push(&body[..end]);
        }
        rest = &body[end..];
    }
    texts
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn inline_scripts_and_styles_are_found_and_linked_scripts_skipped() {
        let html = "<script type=\"module\" src=\"/a.js\"></script>\n<script type=\"module\">\nlet a = 1;\n</script><script>b()</script><style>p { x: y }</style>";
        assert_eq!(inline(html, "script"), vec!["\nlet a = 1;\n", "b()"]);
        assert_eq!(inline(html, "style"), vec!["p { x: y }"]);
    }
}

//! What a failed test leaves behind in `e2e/artifacts/<test name>/`: what the agent saw
//! (`screenshot.png`), what the page said (`console.log`), the DOM (`page.html`) and why it
//! failed (`failure.txt`). The folder is git-ignored; a passing run removes its old folder.

use std::path::{Path, PathBuf};

use crate::runner::Ctx;

/// `e2e/artifacts/`.
pub fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("artifacts")
}

/// `e2e/artifacts/<test name>/`, with the name made safe for a path.
pub fn dir_for(test_name: &str) -> PathBuf {
    let safe: String = test_name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .collect();
    root().join(safe)
}

pub fn clear(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
}

/// Saves everything it can; a piece that cannot be had (the browser is gone) is noted in
/// `failure.txt` instead of hiding the original failure. Returns the folder, for the message.
pub async fn save(ctx: &Ctx, dir: &Path, failure: &str) -> String {
    clear(dir);
    if let Err(e) = std::fs::create_dir_all(dir) {
        return format!("(none: cannot create {}: {e})", dir.display());
    }
    let mut notes = vec![failure.to_owned()];

    match ctx.client.screenshot().await {
        Ok(png) => write(dir, "screenshot.png", &png, &mut notes),
        Err(e) => notes.push(format!("no screenshot: {e}")),
    }
    match ctx.console_log().await {
        Ok(lines) => write(dir, "console.log", lines.join("\n").as_bytes(), &mut notes),
        Err(e) => notes.push(format!("no console log: {e}")),
    }
    match ctx.client.source().await {
        Ok(html) => write(dir, "page.html", html.as_bytes(), &mut notes),
        Err(e) => notes.push(format!("no page source: {e}")),
    }
    if let Ok(url) = ctx.client.current_url().await {
        notes.push(format!("url: {url}"));
    }
    let _ = std::fs::write(dir.join("failure.txt"), notes.join("\n\n"));
    dir.display().to_string()
}

fn write(dir: &Path, name: &str, bytes: &[u8], notes: &mut Vec<String>) {
    if let Err(e) = std::fs::write(dir.join(name), bytes) {
        notes.push(format!("cannot write {name}: {e}"));
    }
}

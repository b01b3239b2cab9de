//! Minifies `src/widget.css` into `OUT_DIR` for the widget to embed: the source keeps its
//! comments and layout, the wasm carries neither (every byte here counts against the size budget).

use std::path::Path;

fn main() {
    let source = "src/widget.css";
    println!("cargo:rerun-if-changed={source}");
    let css = std::fs::read_to_string(source).expect("src/widget.css is readable");
    let out =
        Path::new(&std::env::var("OUT_DIR").expect("cargo sets OUT_DIR")).join("widget.min.css");
    std::fs::write(out, minify(&css)).expect("OUT_DIR is writable");
}

/// Drops comments and collapses whitespace; spaces around `{ } ; , >` and after `:` in
/// declarations go too. Strings and `url()` are not used in the widget's CSS, so no quoting
/// rules are needed beyond keeping quoted font names intact (their inner spaces are kept).
fn minify(css: &str) -> String {
    let mut without_comments = String::with_capacity(css.len());
    let mut rest = css;
    while let Some(start) = rest.find("/*") {
        without_comments.push_str(&rest[..start]);
        rest = match rest[start..].find("*/") {
            Some(end) => &rest[start + end + 2..],
            None => "",
        };
    }
    without_comments.push_str(rest);

    let mut out = String::with_capacity(without_comments.len());
    let mut pending_space = false;
    let mut in_quotes = false;
    for c in without_comments.chars() {
        if c == '"' {
            in_quotes = !in_quotes;
        }
        if c.is_whitespace() && !in_quotes {
            pending_space = true;
            continue;
        }
        if pending_space {
            let last = out.chars().last();
            let tight = matches!(last, None | Some('{' | '}' | ';' | ',' | '>' | ':'))
                || matches!(c, '{' | '}' | ';' | ',' | '>');
            if !tight {
                out.push(' ');
            }
            pending_space = false;
        }
        out.push(c);
    }
    out.replace(";}", "}")
}

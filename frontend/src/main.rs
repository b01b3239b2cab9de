//! The widget's entry point: mounts into every `[data-sg-refund]` element on the page.

fn main() {
    frontend::boot();
}

//! `proxy serve | token | export`: see `proxy --help`.

#[tokio::main]
async fn main() -> std::process::ExitCode {
    proxy::cli::main().await
}

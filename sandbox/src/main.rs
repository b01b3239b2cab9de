//! `sandbox`: serves the Smart Glocal emulation. With no flags it is the demo's sandbox on
//! 127.0.0.1:7070, sending `demo-project` webhooks to the proxy on 8080 and `demo-full-only`
//! webhooks to the proxy on 8081.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use clap::Parser;
use sandbox::{SandboxConfig, DEMO_FULL_ONLY_PROJECT};
use signing::{Scheme, Secret, Signer, Verifier};

#[derive(Debug, Parser)]
#[command(
    version,
    about = "A local emulation of the Smart Glocal API (demo keys by default)"
)]
struct Cli {
    #[arg(long, env = "SANDBOX_LISTEN", default_value = "127.0.0.1:7070")]
    listen: SocketAddr,
    /// Where webhooks go (every project without its own address).
    #[arg(
        long,
        env = "SANDBOX_WEBHOOK_URL",
        default_value = "http://127.0.0.1:8080/webhooks/smart-glocal"
    )]
    webhook_url: String,
    /// A project's own webhook address, `PROJECT=URL`; repeatable.
    #[arg(
        long = "project-webhook-url",
        value_name = "PROJECT=URL",
        default_value = "demo-full-only=http://127.0.0.1:8081/webhooks/smart-glocal"
    )]
    project_webhook_urls: Vec<String>,
    #[arg(long, env = "SANDBOX_SCHEME", default_value = "rsa-sha256")]
    scheme: Scheme,
    /// The merchant's public key (PEM) for rsa-sha256; default: the demo key.
    #[arg(long, env = "SANDBOX_MERCHANT_PUBLIC_KEY")]
    merchant_public_key: Option<PathBuf>,
    /// The sandbox's private key (PEM) for rsa-sha256; default: the demo key.
    #[arg(long, env = "SANDBOX_PRIVATE_KEY")]
    sandbox_private_key: Option<PathBuf>,
    /// File holding the HMAC secret requests are signed with; default: the demo secret.
    #[arg(long, env = "SANDBOX_REQUEST_SECRET_FILE")]
    request_secret_file: Option<PathBuf>,
    /// File holding the HMAC secret webhooks are signed with; default: the demo secret.
    #[arg(long, env = "SANDBOX_WEBHOOK_SECRET_FILE")]
    webhook_secret_file: Option<PathBuf>,
    /// A seed file in the format of `sandbox/seed.json`; default: that file.
    #[arg(long, env = "SANDBOX_SEED")]
    seed: Option<PathBuf>,
    /// Milliseconds between a refund and its final status and webhook.
    #[arg(long, env = "SANDBOX_WEBHOOK_DELAY_MS", default_value_t = 1500)]
    webhook_delay_ms: u64,
}

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    tracing_subscriber::fmt()
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stdout()))
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "info,tower_http=info".into()),
        )
        .init();
    let cli = Cli::parse();
    let config = configure(&cli)?;
    let listener = tokio::net::TcpListener::bind(cli.listen)
        .await
        .map_err(|e| format!("cannot listen on {}: {e}", cli.listen))?;
    tracing::info!(
        addr = %listener.local_addr()?, scheme = %cli.scheme, webhook_url = cli.webhook_url,
        "Smart Glocal sandbox listening"
    );
    sandbox::run_until(listener, config, async {
        let _ = tokio::signal::ctrl_c().await;
        tracing::info!("Ctrl-C: stopping");
    })
    .await?;
    tracing::info!("stopped");
    Ok(())
}

fn configure(cli: &Cli) -> Result<SandboxConfig, Box<dyn std::error::Error>> {
    let read = |path: &PathBuf| Secret::from_file(path);
    let mut config = SandboxConfig::demo_scheme(cli.scheme);
    match cli.scheme {
        Scheme::RsaSha256 => {
            if let Some(path) = &cli.merchant_public_key {
                config.request_verifier = Verifier::rsa_from_pem(read(path)?.expose())?;
            }
            if let Some(path) = &cli.sandbox_private_key {
                config.webhook_signer = Signer::rsa_from_pem(read(path)?.expose())?;
            }
        }
        Scheme::HmacSha256 => {
            if let Some(path) = &cli.request_secret_file {
                config.request_verifier = Verifier::hmac(read(path)?)?;
            }
            if let Some(path) = &cli.webhook_secret_file {
                config.webhook_signer = Signer::hmac(read(path)?)?;
            }
        }
    }
    if let Some(path) = &cli.seed {
        config = config.with_seed_file(path)?;
    }
    config = config
        .with_webhook_url(&cli.webhook_url)
        .with_webhook_delay(Duration::from_millis(cli.webhook_delay_ms));
    for pair in &cli.project_webhook_urls {
        let (project, url) = pair
            .split_once('=')
            .ok_or_else(|| format!("--project-webhook-url wants PROJECT=URL, got `{pair}`"))?;
        // The default names the demo's second project; a replaced seed may not have it.
        match config.projects.get_mut(project) {
            Some(settings) => settings.webhook_url = Some(url.to_owned()),
            None if project == DEMO_FULL_ONLY_PROJECT => {}
            None => return Err(format!("--project-webhook-url: no project `{project}`").into()),
        }
    }
    Ok(config)
}

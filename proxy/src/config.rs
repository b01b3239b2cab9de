//! Configuration: one typed [`Config`], read from a TOML file, overridden by `PROXY_*`
//! environment variables, overridden by command-line flags.
//!
//! [`Settings`] is one layer (every field optional); layers merge field by field, then
//! [`Config::from_settings`] checks that everything needed is there and names what is not.
//! Secrets (`signing_key`, `webhook_key`, `agent_token_secret`) come inline or from a file
//! (`*_file`); they are [`Secret`]s, so no `Debug` or log line ever shows them.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::Args;
use serde::Deserialize;
use shared::api::Limit;
use signing::{Scheme, Secret, Signer, Verifier};

/// Where Smart Glocal's test server is; the live one is `https://proxy.smart-glocal.com`.
pub const DEFAULT_UPSTREAM: &str = "https://demo.smart-glocal.com";
pub const DEFAULT_LISTEN: &str = "127.0.0.1:8080";
pub const DEFAULT_DATABASE: &str = ".data/proxy.sqlite";

/// Explains how relative paths resolve; shown by `proxy --help`.
pub const PATHS_HELP: &str =
    "Relative paths written in the config file (keys, database, serve_dir) \
resolve against the PARENT of the directory holding the file (so `demo/proxy.toml` can say \
`demo/keys/…` and `.data/…`, meaning the repository root, from any working directory). \
Relative paths given by environment variables or flags resolve against the working directory.";

/// One layer of settings. The same names serve as TOML keys, `PROXY_<UPPER_NAME>` environment
/// variables and `--kebab-name` flags.
#[derive(Debug, Clone, Default, Deserialize, Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on [default: 127.0.0.1:8080].
    #[arg(long, env = "PROXY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Smart Glocal base URL [default: https://demo.smart-glocal.com].
    #[arg(long, env = "PROXY_UPSTREAM_URL")]
    pub upstream_url: Option<String>,
    /// Smart Glocal project id, sent as X-PARTNER-PROJECT (required).
    #[arg(long, env = "PROXY_PROJECT")]
    pub project: Option<String>,
    /// How requests are signed: rsa-sha256 or hmac-sha256 [default: rsa-sha256].
    #[arg(long, env = "PROXY_SIGNING_SCHEME")]
    pub signing_scheme: Option<Scheme>,
    /// The merchant's RSA private key (PEM, PKCS#8 or PKCS#1) or the HMAC secret, inline.
    #[arg(long, env = "PROXY_SIGNING_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub signing_key: Option<Secret>,
    /// File holding `signing_key`.
    #[arg(long, env = "PROXY_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// How webhooks are verified: rsa-sha256 or hmac-sha256 [default: rsa-sha256].
    #[arg(long, env = "PROXY_WEBHOOK_SCHEME")]
    pub webhook_scheme: Option<Scheme>,
    /// Smart Glocal's RSA public key (PEM) or the HMAC secret, inline.
    #[arg(long, env = "PROXY_WEBHOOK_KEY", hide_env_values = true, value_parser = parse_secret)]
    pub webhook_key: Option<Secret>,
    /// File holding `webhook_key`.
    #[arg(long, env = "PROXY_WEBHOOK_KEY_FILE")]
    pub webhook_key_file: Option<PathBuf>,
    /// HS256 secret of agent tokens (at least 16 bytes), inline.
    #[arg(long, env = "PROXY_AGENT_TOKEN_SECRET", hide_env_values = true, value_parser = parse_secret)]
    pub agent_token_secret: Option<Secret>,
    /// File holding `agent_token_secret`.
    #[arg(long, env = "PROXY_AGENT_TOKEN_SECRET_FILE")]
    pub agent_token_secret_file: Option<PathBuf>,
    /// Browser origins allowed to call the API (comma-separated in env and flags).
    #[arg(long, env = "PROXY_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// Timeout of each Smart Glocal call, milliseconds [default: 10000].
    #[arg(long, env = "PROXY_UPSTREAM_TIMEOUT_MS")]
    pub upstream_timeout_ms: Option<u64>,
    /// SQLite ledger file [default: .data/proxy.sqlite].
    #[arg(long, env = "PROXY_DATABASE")]
    pub database: Option<PathBuf>,
    /// Whether Smart Glocal enabled partial refunds for this merchant [default: false].
    #[arg(long, env = "PROXY_PARTIAL_REFUNDS")]
    pub partial_refunds: Option<bool>,
    /// The most an agent may refund at once when their token sets no `refund_max`: minor
    /// units of the payment's currency, or per currency as JSON (`{"usd":20000}`) [default:
    /// no limit].
    #[arg(long, env = "PROXY_REFUND_MAX", value_parser = parse_limit)]
    pub refund_max: Option<Limit>,
    /// The most an agent may refund per UTC day when their token sets no `refund_daily`
    /// (same form as `refund_max`) [default: no limit].
    #[arg(long, env = "PROXY_REFUND_DAILY", value_parser = parse_limit)]
    pub refund_daily: Option<Limit>,
    /// Enables `POST /demo/token` (never in production) [default: false].
    #[arg(long, env = "PROXY_DEMO_MODE")]
    pub demo_mode: Option<bool>,
    /// Directory served for every path that is not a route (the built widget).
    #[arg(long, env = "PROXY_SERVE_DIR")]
    pub serve_dir: Option<PathBuf>,
    /// Largest request body, bytes [default: 65536].
    #[arg(long, env = "PROXY_BODY_LIMIT_BYTES")]
    pub body_limit_bytes: Option<usize>,
    /// How often reconciliation looks for unresolved refunds, milliseconds [default: 5000].
    #[arg(long, env = "PROXY_RECONCILE_INTERVAL_MS")]
    pub reconcile_interval_ms: Option<u64>,
    /// Refunds `in_progress` longer than this are polled, seconds [default: 300].
    #[arg(long, env = "PROXY_RECONCILE_IN_PROGRESS_AFTER_SECS")]
    pub reconcile_in_progress_after_secs: Option<u64>,
    /// Polls of a refund still `in_progress` before reconciliation leaves it to its webhook
    /// [default: 10].
    #[arg(long, env = "PROXY_RECONCILE_MAX_POLLS")]
    pub reconcile_max_polls: Option<u32>,
    /// An `unknown` attempt is declared failed once `session/status` has shown no refund for
    /// it for this long, seconds [default: 120].
    #[arg(long, env = "PROXY_RECONCILE_FAIL_AFTER_SECS")]
    pub reconcile_fail_after_secs: Option<u64>,
    /// Log format: text or json [default: text].
    #[arg(long, env = "PROXY_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Who may frame the served pages: CSP `frame-ancestors` sources [default: 'none'].
    #[arg(long, env = "PROXY_FRAME_ANCESTORS")]
    pub frame_ancestors: Option<String>,
    /// Origins the served pages may call besides this one: CSP `connect-src` (comma-separated
    /// in env and flags).
    #[arg(long, env = "PROXY_CONNECT_SRC", value_delimiter = ',')]
    pub connect_src: Option<Vec<String>>,
    /// A separate address for `/healthz`, `/readyz` and `/metrics`, which then leave the
    /// public `listen` address [default: none, they are served on `listen`].
    #[arg(long, env = "PROXY_OPS_LISTEN")]
    pub ops_listen: Option<SocketAddr>,
    /// Requests a minute each agent may make on `/api/*` (0: no limit) [default: 120].
    #[arg(long, env = "PROXY_RATE_LIMIT_PER_MINUTE")]
    pub rate_limit_per_minute: Option<u32>,
    /// How long a client has to send a request's headers before the connection is closed,
    /// milliseconds [default: 10000].
    #[arg(long, env = "PROXY_HEADER_READ_TIMEOUT_MS")]
    pub header_read_timeout_ms: Option<u64>,
    /// Longest lifetime (`exp` − `iat`) of an accepted agent token, seconds [default: 3600].
    #[arg(long, env = "PROXY_MAX_TOKEN_TTL_SECS")]
    pub max_token_ttl_secs: Option<u64>,
    /// The file these settings were read from; set by [`Settings::from_file`], so that a
    /// config file inside `serve_dir` is refused.
    #[arg(skip)]
    #[serde(skip)]
    pub config_file: Option<PathBuf>,
}

/// `20000`, or `{"usd": 20000, "jpy": 30000}`.
pub(crate) fn parse_limit(text: &str) -> Result<Limit, String> {
    serde_json::from_str(text.trim()).map_err(|_| {
        format!("`{text}` is not a limit: minor units (20000) or per currency ({{\"usd\":20000}})")
    })
}

fn parse_secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::new(text))
}

/// A setting that is missing or wrong. Always names the setting, never shows a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing setting `{0}` (TOML key `{0}`, env PROXY_{upper}, flag --{kebab})", upper = .0.to_uppercase(), kebab = .0.replace('_', "-"))]
    Missing(&'static str),
    #[error("invalid setting `{name}`: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("cannot read the config file {path}: {reason}")]
    File { path: String, reason: String },
}

impl Settings {
    /// Reads a TOML file and resolves its relative paths (see [`PATHS_HELP`]).
    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        let mut settings: Settings = toml::from_str(&text).map_err(|e| ConfigError::File {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        // Absolute first, so `-c proxy.toml` from inside `demo/` still finds its parent.
        let absolute = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        let base = absolute
            .parent()
            .and_then(Path::parent)
            .map(Path::to_path_buf)
            .unwrap_or_default();
        let resolve = |p: &mut Option<PathBuf>| {
            if let Some(p) = p {
                if p.is_relative() {
                    *p = base.join(&*p);
                }
            }
        };
        resolve(&mut settings.signing_key_file);
        resolve(&mut settings.webhook_key_file);
        resolve(&mut settings.agent_token_secret_file);
        resolve(&mut settings.database);
        resolve(&mut settings.serve_dir);
        settings.config_file = Some(absolute);
        Ok(settings)
    }

    /// `self` with every setting `over` has replacing this one's.
    pub fn overridden_by(self, over: Settings) -> Settings {
        macro_rules! pick {
            ($($field:ident),*) => { Settings { $($field: over.$field.or(self.$field)),* } };
        }
        pick!(
            listen,
            upstream_url,
            project,
            signing_scheme,
            signing_key,
            signing_key_file,
            webhook_scheme,
            webhook_key,
            webhook_key_file,
            agent_token_secret,
            agent_token_secret_file,
            allowed_origins,
            upstream_timeout_ms,
            database,
            partial_refunds,
            refund_max,
            refund_daily,
            demo_mode,
            serve_dir,
            body_limit_bytes,
            reconcile_interval_ms,
            reconcile_in_progress_after_secs,
            reconcile_max_polls,
            reconcile_fail_after_secs,
            log_format,
            frame_ancestors,
            connect_src,
            max_token_ttl_secs,
            rate_limit_per_minute,
            header_read_timeout_ms,
            ops_listen,
            config_file
        )
    }

    /// The file layer (if any) under the environment-and-flags layer clap collected.
    pub fn layered(
        config_file: Option<&Path>,
        env_and_flags: Settings,
    ) -> Result<Settings, ConfigError> {
        let file = match config_file {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        Ok(file.overridden_by(env_and_flags))
    }

    /// The agent-token secret alone (enough for `proxy token`).
    pub fn agent_token_secret(&self) -> Result<Secret, ConfigError> {
        let secret = secret(
            "agent_token_secret",
            self.agent_token_secret.clone(),
            self.agent_token_secret_file.as_deref(),
        )?;
        if secret.expose().len() < 16 {
            return Err(ConfigError::Invalid {
                name: "agent_token_secret",
                reason: "must be at least 16 bytes".into(),
            });
        }
        Ok(secret)
    }

    /// The ledger path alone (enough for `proxy export`).
    pub fn database(&self) -> PathBuf {
        self.database
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_DATABASE))
    }
}

fn secret(
    name: &'static str,
    inline: Option<Secret>,
    file: Option<&Path>,
) -> Result<Secret, ConfigError> {
    match (inline, file) {
        (Some(secret), _) => Ok(secret),
        (None, Some(path)) => Secret::from_file(path).map_err(|e| ConfigError::Invalid {
            name,
            reason: e.to_string(),
        }),
        (None, None) => Err(ConfigError::Missing(name)),
    }
}

/// Everything the proxy needs, checked.
#[derive(Debug, Clone)]
pub struct Config {
    pub listen: SocketAddr,
    /// Without a trailing slash.
    pub upstream_url: String,
    pub project: String,
    pub signer: Signer,
    pub verifier: Verifier,
    pub agent_token_secret: Secret,
    pub allowed_origins: Vec<String>,
    pub upstream_timeout: Duration,
    pub database: PathBuf,
    pub partial_refunds: bool,
    /// Agents' limits where their token sets none.
    pub refund_max: Option<Limit>,
    pub refund_daily: Option<Limit>,
    pub demo_mode: bool,
    pub serve_dir: Option<PathBuf>,
    pub body_limit: usize,
    pub reconcile_interval: Duration,
    pub reconcile_in_progress_after: Duration,
    pub reconcile_max_polls: u32,
    /// How long `session/status` must show no refund for an `unknown` attempt before it is
    /// declared failed.
    pub reconcile_fail_after: Duration,
    pub log_json: bool,
    /// CSP `frame-ancestors` sources: `'none'`, `'self'` or origins.
    pub frame_ancestors: String,
    /// Origins besides `'self'` in the served pages' CSP `connect-src`.
    pub connect_src: Vec<String>,
    /// Tokens living longer than this (`exp` − `iat`) are refused, and not minted.
    pub max_token_ttl: Duration,
    /// Requests a minute per agent on the API; 0 is no limit.
    pub rate_limit_per_minute: u32,
    /// A connection that has not sent a request's headers within this is closed.
    pub header_read_timeout: Duration,
    /// Where operations routes are served instead of `listen`, if set.
    pub ops_listen: Option<SocketAddr>,
}

impl Config {
    pub fn from_settings(s: Settings) -> Result<Config, ConfigError> {
        let project = s
            .project
            .clone()
            .filter(|p| !p.trim().is_empty())
            .ok_or(ConfigError::Missing("project"))?;
        let signing_scheme = s.signing_scheme.unwrap_or(Scheme::RsaSha256);
        let signing_key = secret(
            "signing_key",
            s.signing_key.clone(),
            s.signing_key_file.as_deref(),
        )?;
        let signer =
            Signer::from_key(signing_scheme, signing_key).map_err(|e| ConfigError::Invalid {
                name: "signing_key",
                reason: e.to_string(),
            })?;
        let webhook_scheme = s.webhook_scheme.unwrap_or(Scheme::RsaSha256);
        let webhook_key = secret(
            "webhook_key",
            s.webhook_key.clone(),
            s.webhook_key_file.as_deref(),
        )?;
        let verifier =
            Verifier::from_key(webhook_scheme, webhook_key).map_err(|e| ConfigError::Invalid {
                name: "webhook_key",
                reason: e.to_string(),
            })?;
        let agent_token_secret = s.agent_token_secret()?;

        let upstream_url = s
            .upstream_url
            .clone()
            .unwrap_or_else(|| DEFAULT_UPSTREAM.to_owned());
        let parsed = reqwest::Url::parse(&upstream_url).map_err(|e| ConfigError::Invalid {
            name: "upstream_url",
            reason: e.to_string(),
        })?;
        if !matches!(parsed.scheme(), "http" | "https") {
            return Err(ConfigError::Invalid {
                name: "upstream_url",
                reason: "must be http or https".into(),
            });
        }
        let allowed_origins = s.allowed_origins.clone().unwrap_or_default();
        check_origins("allowed_origins", &allowed_origins)?;
        let connect_src = s.connect_src.clone().unwrap_or_default();
        check_origins("connect_src", &connect_src)?;
        let frame_ancestors = frame_ancestors(s.frame_ancestors.as_deref())?;
        if let Some(dir) = &s.serve_dir {
            check_outside_serve_dir(dir, &s)?;
        }
        let log_json = match s.log_format.as_deref() {
            None | Some("text") => false,
            Some("json") => true,
            Some(other) => {
                return Err(ConfigError::Invalid {
                    name: "log_format",
                    reason: format!("`{other}`: expected text or json"),
                })
            }
        };
        let positive = |name: &'static str, value: u64| {
            if value == 0 {
                Err(ConfigError::Invalid {
                    name,
                    reason: "must be greater than zero".into(),
                })
            } else {
                Ok(value)
            }
        };
        Ok(Config {
            listen: s
                .listen
                .unwrap_or_else(|| DEFAULT_LISTEN.parse().expect("default address")),
            upstream_url: upstream_url.trim_end_matches('/').to_owned(),
            project,
            signer,
            verifier,
            agent_token_secret,
            allowed_origins,
            upstream_timeout: Duration::from_millis(positive(
                "upstream_timeout_ms",
                s.upstream_timeout_ms.unwrap_or(10_000),
            )?),
            database: s.database(),
            partial_refunds: s.partial_refunds.unwrap_or(false),
            refund_max: s.refund_max.clone(),
            refund_daily: s.refund_daily.clone(),
            demo_mode: s.demo_mode.unwrap_or(false),
            serve_dir: s.serve_dir.clone(),
            body_limit: match s.body_limit_bytes.unwrap_or(64 * 1024) {
                0 => {
                    return Err(ConfigError::Invalid {
                        name: "body_limit_bytes",
                        reason: "must be greater than zero".into(),
                    })
                }
                limit => limit,
            },
            reconcile_interval: Duration::from_millis(positive(
                "reconcile_interval_ms",
                s.reconcile_interval_ms.unwrap_or(5_000),
            )?),
            reconcile_in_progress_after: Duration::from_secs(
                s.reconcile_in_progress_after_secs.unwrap_or(300),
            ),
            reconcile_max_polls: match s.reconcile_max_polls.unwrap_or(10) {
                0 => {
                    return Err(ConfigError::Invalid {
                        name: "reconcile_max_polls",
                        reason: "must be greater than zero".into(),
                    })
                }
                polls => polls,
            },
            reconcile_fail_after: Duration::from_secs(
                s.reconcile_fail_after_secs
                    .unwrap_or(DEFAULT_RECONCILE_FAIL_AFTER_SECS),
            ),
            log_json,
            frame_ancestors,
            connect_src,
            max_token_ttl: Duration::from_secs(s.max_token_ttl_secs()?),
            rate_limit_per_minute: s.rate_limit_per_minute.unwrap_or(120),
            header_read_timeout: Duration::from_millis(positive(
                "header_read_timeout_ms",
                s.header_read_timeout_ms.unwrap_or(10_000),
            )?),
            ops_listen: s.ops_listen,
        })
    }
}

impl Settings {
    /// `max_token_ttl_secs` checked (enough for `proxy token`).
    pub fn max_token_ttl_secs(&self) -> Result<u64, ConfigError> {
        match self
            .max_token_ttl_secs
            .unwrap_or(DEFAULT_MAX_TOKEN_TTL_SECS)
        {
            0 => Err(ConfigError::Invalid {
                name: "max_token_ttl_secs",
                reason: "must be greater than zero".into(),
            }),
            secs => Ok(secs),
        }
    }
}

/// Two minutes of `session/status` answers without the refund: far longer than Smart Glocal
/// takes to show a refund it accepted, short enough that an agent is not kept waiting.
pub const DEFAULT_RECONCILE_FAIL_AFTER_SECS: u64 = 120;

/// Tokens live at most an hour unless configured otherwise: a leaked one is worth little.
pub const DEFAULT_MAX_TOKEN_TTL_SECS: u64 = 3600;

fn check_origins(name: &'static str, origins: &[String]) -> Result<(), ConfigError> {
    for origin in origins {
        let valid = reqwest::Url::parse(origin)
            .map(|u| u.path() == "/" && !origin.ends_with('/'))
            .unwrap_or(false);
        if !valid {
            return Err(ConfigError::Invalid {
                name,
                reason: format!("`{origin}` is not an origin like http://host:port"),
            });
        }
    }
    Ok(())
}

/// `'none'`, `'self'` or origins, space-separated: what goes into the CSP header verbatim, so
/// nothing else (no `;`, no other directive) may.
fn frame_ancestors(setting: Option<&str>) -> Result<String, ConfigError> {
    let value = setting.map(str::trim).unwrap_or("'none'");
    let sources: Vec<&str> = value.split_whitespace().collect();
    let valid = !sources.is_empty()
        && sources.iter().all(|source| {
            matches!(*source, "'none'" | "'self'")
                || check_origins("frame_ancestors", &[(*source).to_owned()]).is_ok()
        })
        && (!sources.contains(&"'none'") || sources.len() == 1);
    if valid {
        Ok(sources.join(" "))
    } else {
        Err(ConfigError::Invalid {
            name: "frame_ancestors",
            reason: format!("`{value}`: expected 'none', 'self' or origins like https://host"),
        })
    }
}

/// Refuses a configuration that would let the static files route serve a secret: the ledger
/// (and its `-wal`/`-shm` beside it), a key file, or the config file itself inside
/// `serve_dir`.
fn check_outside_serve_dir(serve_dir: &Path, s: &Settings) -> Result<(), ConfigError> {
    let root = resolved(serve_dir);
    let files: [(&'static str, Option<PathBuf>); 5] = [
        ("database", Some(s.database())),
        ("signing_key_file", s.signing_key_file.clone()),
        ("webhook_key_file", s.webhook_key_file.clone()),
        ("agent_token_secret_file", s.agent_token_secret_file.clone()),
        ("config", s.config_file.clone()),
    ];
    for (name, path) in files {
        if let Some(path) = path {
            if resolved(&path).starts_with(&root) {
                return Err(ConfigError::Invalid {
                    name,
                    reason: format!(
                        "{} lies inside `serve_dir` ({}), which would serve it to anyone",
                        path.display(),
                        serve_dir.display()
                    ),
                });
            }
        }
    }
    Ok(())
}

/// `path` made absolute with every symlink of its existing part resolved, so that neither
/// `..` nor a link can hide that a file lies inside a folder. The part that does not exist
/// yet (a ledger about to be created) is appended as written.
pub fn resolved(path: &Path) -> PathBuf {
    let absolute = std::path::absolute(path).unwrap_or_else(|_| path.to_path_buf());
    let mut existing = absolute.as_path();
    let mut rest = Vec::new();
    loop {
        if let Ok(real) = std::fs::canonicalize(existing) {
            return rest.iter().rev().fold(real, |p, part| p.join(part));
        }
        match (existing.parent(), existing.file_name()) {
            (Some(parent), Some(name)) => {
                rest.push(name.to_owned());
                existing = parent;
            }
            _ => return absolute,
        }
    }
}

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
use serde::{Deserialize, Serialize, Serializer};
use shared::api::Limit;
use signing::{Scheme, Secret, Signer, Verifier};

use crate::ledger::Database;

/// Every default, written once: the bottom layer under the file, the environment and the
/// flags, and what `proxy --help` shows as ``. A setting not named here has no
/// default (required, or off when absent).
///
/// - `upstream_url`: Smart Glocal's test server; the live one is
///   `https://proxy.smart-glocal.com`.
/// - `reconcile_fail_after_secs`: two minutes of `session/status` answers without the refund,
///   far longer than Smart Glocal takes to show a refund it accepted, short enough that an
///   agent is not kept waiting.
/// - `max_token_ttl_secs`: an hour, so a leaked token is worth little.
pub const DEFAULTS: &str = r#"
listen = "127.0.0.1:8080"
upstream_url = "https://demo.smart-glocal.com"
signing_scheme = "rsa-sha256"
webhook_scheme = "rsa-sha256"
upstream_timeout_ms = 10000
database = ".data/proxy.sqlite"
database_pool_size = 10
database_connect_timeout_ms = 2000
partial_refunds = false
demo_mode = false
body_limit_bytes = 65536
reconcile_interval_ms = 5000
reconcile_in_progress_after_secs = 300
reconcile_max_polls = 10
reconcile_fail_after_secs = 120
log_format = "text"
frame_ancestors = "'none'"
max_token_ttl_secs = 3600
rate_limit_per_minute = 120
header_read_timeout_ms = 10000
max_connections = 16384
max_streams_per_agent = 32
approval_ttl_secs = 86400
"#;

/// Explains how relative paths resolve; shown by `proxy --help`.
pub const PATHS_HELP: &str =
    "Relative paths written in the config file (keys, database, serve_dir) \
resolve against the PARENT of the directory holding the file (so `demo/proxy.toml` can say \
`demo/keys/…` and `.data/…`, meaning the repository root, from any working directory). \
Relative paths given by environment variables or flags resolve against the working directory.";

/// One layer of settings. The same names serve as TOML keys, `PROXY_<UPPER_NAME>` environment
/// variables and `--kebab-name` flags. `Default` is the empty layer; [`Settings::defaults`]
/// is [`DEFAULTS`].
#[derive(Clone, Default, Deserialize, Serialize, Args)]
#[serde(deny_unknown_fields)]
pub struct Settings {
    /// Address to listen on.
    #[arg(long, env = "PROXY_LISTEN")]
    pub listen: Option<SocketAddr>,
    /// Smart Glocal base URL.
    #[arg(long, env = "PROXY_UPSTREAM_URL")]
    pub upstream_url: Option<String>,
    /// Smart Glocal project id, sent as X-PARTNER-PROJECT (required).
    #[arg(long, env = "PROXY_PROJECT")]
    pub project: Option<String>,
    /// How requests are signed: rsa-sha256 or hmac-sha256.
    #[arg(long, env = "PROXY_SIGNING_SCHEME")]
    pub signing_scheme: Option<Scheme>,
    /// The merchant's RSA private key (PEM, PKCS#8 or PKCS#1) or the HMAC secret, inline. As a
    /// flag it is in the process list for every local user to read: prefer the file or env.
    #[arg(long, env = "PROXY_SIGNING_KEY", hide_env_values = true, allow_hyphen_values = true, value_parser = parse_secret)]
    #[serde(serialize_with = "layer_secret")]
    pub signing_key: Option<Secret>,
    /// File holding `signing_key`.
    #[arg(long, env = "PROXY_SIGNING_KEY_FILE")]
    pub signing_key_file: Option<PathBuf>,
    /// How webhooks are verified: rsa-sha256 or hmac-sha256.
    #[arg(long, env = "PROXY_WEBHOOK_SCHEME")]
    pub webhook_scheme: Option<Scheme>,
    /// Smart Glocal's RSA public key (PEM) or the HMAC secret, inline (as a flag, in the
    /// process list: prefer the file or env).
    #[arg(long, env = "PROXY_WEBHOOK_KEY", hide_env_values = true, allow_hyphen_values = true, value_parser = parse_secret)]
    #[serde(serialize_with = "layer_secret")]
    pub webhook_key: Option<Secret>,
    /// File holding `webhook_key`.
    #[arg(long, env = "PROXY_WEBHOOK_KEY_FILE")]
    pub webhook_key_file: Option<PathBuf>,
    /// HS256 secret of agent tokens (at least 16 bytes), inline. As a flag it is in the
    /// process list for every local user to read: prefer the file or env.
    #[arg(long, env = "PROXY_AGENT_TOKEN_SECRET", hide_env_values = true, allow_hyphen_values = true, value_parser = parse_secret)]
    #[serde(serialize_with = "layer_secret")]
    pub agent_token_secret: Option<Secret>,
    /// File holding `agent_token_secret`.
    #[arg(long, env = "PROXY_AGENT_TOKEN_SECRET_FILE")]
    pub agent_token_secret_file: Option<PathBuf>,
    /// Browser origins allowed to call the API (comma-separated in env and flags).
    #[arg(long, env = "PROXY_ALLOWED_ORIGINS", value_delimiter = ',')]
    pub allowed_origins: Option<Vec<String>>,
    /// Timeout of each Smart Glocal call, milliseconds.
    #[arg(long, env = "PROXY_UPSTREAM_TIMEOUT_MS")]
    pub upstream_timeout_ms: Option<u64>,
    /// The ledger: a SQLite file (a path or `sqlite:` URL), or `postgres://user:password@host:port/database`
    /// for one ledger shared by several proxies (see the README's "Running more than one
    /// proxy"). The password is never printed by the proxy; as a flag it is in the process
    /// list for every local user to read: prefer env or the config file.
    #[arg(long, env = "PROXY_DATABASE", hide_env_values = true)]
    pub database: Option<PathBuf>,
    /// PostgreSQL only: connections each proxy keeps at most.
    #[arg(long, env = "PROXY_DATABASE_POOL_SIZE")]
    pub database_pool_size: Option<u32>,
    /// PostgreSQL only: how long getting a connection may take before the call fails (503),
    /// milliseconds.
    #[arg(long, env = "PROXY_DATABASE_CONNECT_TIMEOUT_MS")]
    pub database_connect_timeout_ms: Option<u64>,
    /// Whether Smart Glocal enabled partial refunds for this merchant.
    #[arg(long, env = "PROXY_PARTIAL_REFUNDS")]
    pub partial_refunds: Option<bool>,
    /// The most an agent may refund at once when their token sets no `refund_max`: minor
    /// units of the payment's currency, or per currency as JSON (`{"usd":20000}`); absent, no limit.
    #[arg(long, env = "PROXY_REFUND_MAX", value_parser = parse_limit)]
    pub refund_max: Option<Limit>,
    /// The most an agent may refund per UTC day when their token sets no `refund_daily`
    /// (same form as `refund_max`); absent, no limit.
    #[arg(long, env = "PROXY_REFUND_DAILY", value_parser = parse_limit)]
    pub refund_daily: Option<Limit>,
    /// Refunds above this need a second agent's approval (a token with `can_approve`):
    /// minor units of the payment's currency, or per currency as JSON (`{"usd":5000}`);
    /// absent, none does.
    #[arg(long, env = "PROXY_APPROVAL_ABOVE", value_parser = parse_limit)]
    pub approval_above: Option<Limit>,
    /// A request awaiting approval expires after this many seconds.
    #[arg(long, env = "PROXY_APPROVAL_TTL_SECS")]
    pub approval_ttl_secs: Option<u64>,
    /// Enables `POST /demo/token` (never in production; refused unless `upstream_url` is on
    /// this machine).
    #[arg(long, env = "PROXY_DEMO_MODE")]
    pub demo_mode: Option<bool>,
    /// Directory served for every path that is not a route (the built widget).
    #[arg(long, env = "PROXY_SERVE_DIR")]
    pub serve_dir: Option<PathBuf>,
    /// Largest request body, bytes.
    #[arg(long, env = "PROXY_BODY_LIMIT_BYTES")]
    pub body_limit_bytes: Option<usize>,
    /// How often reconciliation looks for unresolved refunds, milliseconds.
    #[arg(long, env = "PROXY_RECONCILE_INTERVAL_MS")]
    pub reconcile_interval_ms: Option<u64>,
    /// Refunds `in_progress` longer than this are polled, seconds.
    #[arg(long, env = "PROXY_RECONCILE_IN_PROGRESS_AFTER_SECS")]
    pub reconcile_in_progress_after_secs: Option<u64>,
    /// Polls of a refund still `in_progress` backing off to 5 minutes; later ones back off to
    /// an hour (a refund is polled until it ends, whether or not its webhook comes).
    #[arg(long, env = "PROXY_RECONCILE_MAX_POLLS")]
    pub reconcile_max_polls: Option<u32>,
    /// An `unknown` attempt is declared failed once `session/status` has shown no refund for
    /// it for this long, seconds.
    #[arg(long, env = "PROXY_RECONCILE_FAIL_AFTER_SECS")]
    pub reconcile_fail_after_secs: Option<u64>,
    /// Log format: text or json.
    #[arg(long, env = "PROXY_LOG_FORMAT")]
    pub log_format: Option<String>,
    /// Who may frame the served pages: CSP `frame-ancestors` sources.
    #[arg(long, env = "PROXY_FRAME_ANCESTORS")]
    pub frame_ancestors: Option<String>,
    /// Origins the served pages may call besides this one: CSP `connect-src` (comma-separated
    /// in env and flags).
    #[arg(long, env = "PROXY_CONNECT_SRC", value_delimiter = ',')]
    pub connect_src: Option<Vec<String>>,
    /// A separate address for `/healthz`, `/readyz` and `/metrics`, which then leave the
    /// public `listen` address; absent, they are served on `listen`.
    #[arg(long, env = "PROXY_OPS_LISTEN")]
    pub ops_listen: Option<SocketAddr>,
    /// Requests a minute each agent may make on `/api/*` (0: no limit).
    #[arg(long, env = "PROXY_RATE_LIMIT_PER_MINUTE")]
    pub rate_limit_per_minute: Option<u32>,
    /// How long a client has to send a request's headers before the connection is closed,
    /// milliseconds; and as long again for its body.
    #[arg(long, env = "PROXY_HEADER_READ_TIMEOUT_MS")]
    pub header_read_timeout_ms: Option<u64>,
    /// Connections open at once (more wait in the listen backlog); at most what the
    /// open-file limit allows.
    #[arg(long, env = "PROXY_MAX_CONNECTIONS")]
    pub max_connections: Option<usize>,
    /// Event streams one agent may hold open at once (0: no limit).
    #[arg(long, env = "PROXY_MAX_STREAMS_PER_AGENT")]
    pub max_streams_per_agent: Option<u32>,
    /// Longest lifetime (`exp` − `iat`) of an accepted agent token, seconds.
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
    let limit: Limit = serde_json::from_str(text.trim()).map_err(|_| {
        format!("`{text}` is not a limit: minor units (20000) or per currency ({{\"usd\":20000}})")
    })?;
    match limit.bad_currency_key() {
        Some(code) => Err(not_a_currency(code)),
        None => Ok(limit),
    }
}

fn not_a_currency(code: &str) -> String {
    format!(
        "`{code}` is not a currency code, or names one twice (ISO 4217, as Smart Glocal \
         writes it: `usd`, `rub`)"
    )
}

/// A per-currency limit from the config file (the flags' and `PROXY_*`'s went through
/// [`parse_limit`]) naming something that is not a currency: refused, since it would bind
/// nothing and leave the currency meant unlimited.
fn check_limit(name: &'static str, limit: &Option<Limit>) -> Result<Option<Limit>, ConfigError> {
    match limit.as_ref().and_then(Limit::bad_currency_key) {
        Some(code) => Err(ConfigError::Invalid {
            name,
            reason: not_a_currency(code),
        }),
        None => Ok(limit.clone()),
    }
}

fn parse_secret(text: &str) -> Result<Secret, String> {
    Ok(Secret::new(text))
}

/// A setting that is missing or wrong. Always names the setting, never shows a secret.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("missing setting `{0}` (TOML key `{0}`, env PROXY_{upper}, flag --{kebab}{file})", upper = .0.to_uppercase(), kebab = .0.replace('_', "-"), file = secret_file_hint(.0))]
    Missing(&'static str),
    #[error("invalid setting `{name}`: {reason}")]
    Invalid { name: &'static str, reason: String },
    #[error("cannot read the config file {path}: {reason}")]
    File { path: String, reason: String },
}

/// Where a TOML file is wrong and what is wrong, without the file's text: toml's own
/// `Display` quotes the whole offending line, and serde's messages quote string values
/// (`invalid type: string "…"`), either of which may be a secret or a database password.
fn toml_reason(text: &str, error: &toml::de::Error) -> String {
    // Everything from the first double quote to the last is hidden: a quoted value may hold
    // escaped quotes of its own.
    let message = error.message();
    let message = match (message.find('"'), message.rfind('"')) {
        (Some(first), Some(last)) if first < last => {
            format!("{}\"…\"{}", &message[..first], &message[last + 1..])
        }
        (Some(first), _) => format!("{}\"…", &message[..first]),
        _ => message.to_owned(),
    };
    // Values that are not strings come in backticks (``invalid type: integer `123…`,
    // expected a string``): an all-digit secret written without quotes. The first backtick
    // span is the value, except where the message names a key.
    let names_a_key = ["unknown field", "missing field", "duplicate field"]
        .iter()
        .any(|start| message.starts_with(start));
    let message = match message.find('`') {
        Some(open) if !names_a_key => match message[open + 1..].find('`') {
            Some(close) => format!(
                "{}`…`{}",
                &message[..open],
                &message[open + 1 + close + 1..]
            ),
            None => format!("{}`…", &message[..open]),
        },
        _ => message,
    };
    let at = error
        .span()
        .and_then(|span| text.get(..span.start))
        .map(|before| {
            let line = before.matches('\n').count() + 1;
            let column = before.rsplit('\n').next().unwrap_or("").chars().count() + 1;
            (line, column)
        });
    match at {
        Some((line, column)) => format!("line {line}, column {column}: {message}"),
        None => message,
    }
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
            reason: toml_reason(&text, &e),
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
        // A SQLite file however spelled: `sqlite:ledger.sqlite` is as relative as the path.
        if let Some(file) = settings.database.as_deref().and_then(sqlite_file) {
            if file.is_relative() && !file.as_os_str().is_empty() {
                settings.database = Some(base.join(file));
            }
        }
        resolve(&mut settings.serve_dir);
        settings.config_file = Some(absolute);
        Ok(settings)
    }

    /// [`DEFAULTS`] as a layer.
    pub fn defaults() -> Settings {
        toml::from_str(DEFAULTS).expect("DEFAULTS names real settings with valid values")
    }

    /// This layer without what `matches` (the clap matches it was read from) took from the
    /// environment: what was given as flags.
    pub fn given_on_command_line(
        self,
        matches: &clap::ArgMatches,
    ) -> Result<Settings, ConfigError> {
        self.keeping(matches, clap::parser::ValueSource::CommandLine)
    }

    /// `self` (as clap parsed it from `matches`) as two layers: what the environment gave,
    /// under what the command line did. One layer would refuse a secret given inline by the
    /// environment and as a file by a flag (or the other way round), where the flag should win.
    pub fn environment_then_flags(
        self,
        matches: &clap::ArgMatches,
    ) -> Result<Settings, ConfigError> {
        let environment = self
            .clone()
            .keeping(matches, clap::parser::ValueSource::EnvVariable)?;
        environment.overridden_by(self.given_on_command_line(matches)?)
    }

    /// Only the settings `matches` says came from `source`.
    fn keeping(
        self,
        matches: &clap::ArgMatches,
        source: clap::parser::ValueSource,
    ) -> Result<Settings, ConfigError> {
        let invalid = |e: String| ConfigError::Invalid {
            name: "settings",
            reason: e,
        };
        let config_file = self.config_file.clone();
        let mut table = toml::Table::try_from(self).map_err(|e| invalid(e.to_string()))?;
        for id in matches.ids() {
            let from = matches.value_source(id.as_str());
            if from.is_some_and(|from| {
                from != source && from != clap::parser::ValueSource::DefaultValue
            }) {
                table.remove(id.as_str());
            }
        }
        let mut settings: Settings = table
            .try_into()
            .map_err(|e: toml::de::Error| invalid(e.to_string()))?;
        settings.config_file = config_file;
        Ok(settings)
    }

    /// `self` with every setting `over` has replacing this one's. Layers merge as the TOML
    /// tables they are (an absent setting is an absent key), so no setting is listed twice.
    pub fn overridden_by(self, over: Settings) -> Result<Settings, ConfigError> {
        let config_file = over.config_file.clone().or(self.config_file.clone());
        let table = |layer: Settings| {
            toml::Table::try_from(layer).map_err(|e| ConfigError::Invalid {
                name: "settings",
                reason: e.to_string(),
            })
        };
        let mut merged = table(self)?;
        let over = table(over)?;
        // A secret and its file are one setting: a layer giving either replaces both.
        for pair in SECRET_PAIRS {
            if pair.iter().any(|key| over.contains_key(*key)) {
                pair.iter().for_each(|key| drop(merged.remove(*key)));
            }
        }
        merged.extend(over);
        let mut settings: Settings =
            merged
                .try_into()
                .map_err(|e: toml::de::Error| ConfigError::Invalid {
                    name: "settings",
                    reason: e.to_string(),
                })?;
        settings.config_file = config_file;
        Ok(settings)
    }

    /// [`DEFAULTS`], under the file layer (if any), under the environment-and-flags layer clap
    /// collected.
    pub fn layered(
        config_file: Option<&Path>,
        env_and_flags: Settings,
    ) -> Result<Settings, ConfigError> {
        let file = match config_file {
            Some(path) => Settings::from_file(path)?,
            None => Settings::default(),
        };
        Settings::defaults()
            .overridden_by(file)?
            .overridden_by(env_and_flags)
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

    /// The ledger alone (enough for `proxy export`).
    pub fn database(&self) -> Result<Database, ConfigError> {
        let text = set("database", self.database.clone())?;
        let pool_size = set("database_pool_size", self.database_pool_size)?;
        let timeout = positive(
            "database_connect_timeout_ms",
            set(
                "database_connect_timeout_ms",
                self.database_connect_timeout_ms,
            )?,
        )?;
        let database = Database::parse(
            &text.to_string_lossy(),
            pool_size,
            Duration::from_millis(timeout),
        )
        .map_err(|reason| ConfigError::Invalid {
            name: "database",
            reason,
        })?;
        Ok(match self.upstream_timeout_ms {
            Some(upstream) => {
                database.with_lock_wait(payment_lock_wait(Duration::from_millis(upstream)))
            }
            None => database,
        })
    }
}

/// How long a refund waits for its payment's lock: as long as one holder's two calls to Smart
/// Glocal may take (the payment, then the refund, each bounded by `upstream_timeout`), and
/// 5 s. The in-process wait (`refund_flow`) and PostgreSQL's `lock_timeout` are both this.
pub fn payment_lock_wait(upstream_timeout: Duration) -> Duration {
    upstream_timeout
        .saturating_mul(2)
        .saturating_add(Duration::from_secs(5))
}

/// `value`, unless it is zero.
fn positive<T: Default + PartialEq>(name: &'static str, value: T) -> Result<T, ConfigError> {
    if value == T::default() {
        Err(ConfigError::Invalid {
            name,
            reason: "must be greater than zero".into(),
        })
    } else {
        Ok(value)
    }
}

/// Shown with its secrets redacted and the database and upstream URLs without credentials
/// (a PostgreSQL URL's password, `user:password@` in the upstream's). `Secret`'s own `Debug`
/// already redacts; a URL is only text.
impl std::fmt::Debug for Settings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // A path that is not UTF-8 has no JSON form: then nothing is shown rather than a panic.
        let mut shown = serde_json::to_value(self).unwrap_or_default();
        let Some(fields) = shown.as_object_mut() else {
            return f.write_str("Settings { .. }");
        };
        for [inline, _] in SECRET_PAIRS {
            if let Some(secret) = fields.get_mut(inline).filter(|value| !value.is_null()) {
                *secret = "[redacted]".into();
            }
        }
        for name in ["upstream_url", "database"] {
            let url = fields.get(name).and_then(|v| v.as_str());
            if let Some(url) = url.filter(|url| url.contains("://")) {
                let shown = without_credentials(url);
                fields.insert(name.into(), shown.into());
            }
        }
        write!(f, "Settings {shown}")
    }
}

/// `url` with no user or password in it, to be logged; nothing when it is not a URL.
pub(crate) fn without_credentials(url: &str) -> String {
    match reqwest::Url::parse(url) {
        Ok(mut url) => {
            let _ = url.set_password(None);
            let _ = url.set_username("");
            url.to_string()
        }
        Err(_) => String::new(),
    }
}

/// For a secret, where else it may come from than a flag (which the process list shows).
fn secret_file_hint(name: &str) -> String {
    if SECRET_PAIRS.iter().any(|[inline, _]| *inline == name) {
        format!("; or a file named by `{name}_file`, best kept out of the process list")
    } else {
        String::new()
    }
}

/// Each secret with its `_file` twin.
const SECRET_PAIRS: [[&str; 2]; 3] = [
    ["signing_key", "signing_key_file"],
    ["webhook_key", "webhook_key_file"],
    ["agent_token_secret", "agent_token_secret_file"],
];

fn secret(
    name: &'static str,
    inline: Option<Secret>,
    file: Option<&Path>,
) -> Result<Secret, ConfigError> {
    match (inline, file) {
        // One layer gave both (the environment one way, a flag the other): neither is
        // guessed at.
        (Some(_), Some(_)) => Err(ConfigError::Invalid {
            name,
            reason: format!("set both inline and as `{name}_file`: give one"),
        }),
        (Some(secret), None) => Ok(secret),
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
    pub database: Database,
    pub partial_refunds: bool,
    /// Agents' limits where their token sets none.
    pub refund_max: Option<Limit>,
    pub refund_daily: Option<Limit>,
    /// Refunds above this (in their currency) wait for a second agent's approval.
    pub approval_above: Option<Limit>,
    /// How long a request may wait for approval.
    pub approval_ttl: Duration,
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
    /// A connection that has not sent a request's headers within this is closed, and a
    /// request whose body has not arrived within as long again is answered 408.
    pub header_read_timeout: Duration,
    /// Connections open at once (see [`crate::serve::Limits`]).
    pub max_connections: usize,
    /// Event streams per agent at once; 0 is no limit.
    pub max_streams_per_agent: u32,
    /// Where operations routes are served instead of `listen`, if set.
    pub ops_listen: Option<SocketAddr>,
}

impl Config {
    /// Checks `s` laid over [`DEFAULTS`] (so a partial layer is enough).
    pub fn from_settings(s: Settings) -> Result<Config, ConfigError> {
        let s = Settings::defaults().overridden_by(s)?;
        let project = s
            .project
            .clone()
            .filter(|p| !p.trim().is_empty())
            .ok_or(ConfigError::Missing("project"))?;
        let signing_scheme = set("signing_scheme", s.signing_scheme)?;
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
        let webhook_scheme = set("webhook_scheme", s.webhook_scheme)?;
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

        let upstream_url = set("upstream_url", s.upstream_url.clone())?;
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
        // `POST /demo/token` gives anyone who asks a token, an approver's included: only in
        // front of a sandbox on this machine, never Smart Glocal with a merchant's key.
        let host = parsed.host_str().unwrap_or_default();
        let local = host == "localhost"
            || host
                .trim_start_matches('[')
                .trim_end_matches(']')
                .parse::<std::net::IpAddr>()
                .is_ok_and(|ip| ip.is_loopback());
        if s.demo_mode == Some(true) && !local {
            return Err(ConfigError::Invalid {
                name: "demo_mode",
                reason: format!(
                    "mints agent tokens for anyone: only with a sandbox on this machine \
                     (upstream_url on 127.0.0.1 or localhost), not {}",
                    without_credentials(&upstream_url)
                ),
            });
        }
        let allowed_origins = s.allowed_origins.clone().unwrap_or_default();
        check_origins("allowed_origins", &allowed_origins)?;
        let connect_src = s.connect_src.clone().unwrap_or_default();
        check_origin_syntax("connect_src", &connect_src, false)?;
        let frame_ancestors = frame_ancestors(&set("frame_ancestors", s.frame_ancestors.clone())?)?;
        if let Some(dir) = &s.serve_dir {
            check_outside_serve_dir(dir, &s)?;
        }
        let log_json = match set("log_format", s.log_format.clone())?.as_str() {
            "text" => false,
            "json" => true,
            other => {
                return Err(ConfigError::Invalid {
                    name: "log_format",
                    reason: format!("`{other}`: expected text or json"),
                })
            }
        };
        Ok(Config {
            listen: set("listen", s.listen)?,
            upstream_url: upstream_url.trim_end_matches('/').to_owned(),
            project,
            signer,
            verifier,
            agent_token_secret,
            allowed_origins,
            upstream_timeout: Duration::from_millis(positive(
                "upstream_timeout_ms",
                set("upstream_timeout_ms", s.upstream_timeout_ms)?,
            )?),
            database: s.database()?,
            partial_refunds: set("partial_refunds", s.partial_refunds)?,
            refund_max: check_limit("refund_max", &s.refund_max)?,
            refund_daily: check_limit("refund_daily", &s.refund_daily)?,
            approval_above: check_limit("approval_above", &s.approval_above)?,
            approval_ttl: Duration::from_secs(positive(
                "approval_ttl_secs",
                set("approval_ttl_secs", s.approval_ttl_secs)?,
            )?),
            demo_mode: set("demo_mode", s.demo_mode)?,
            serve_dir: s.serve_dir.clone(),
            body_limit: positive(
                "body_limit_bytes",
                set("body_limit_bytes", s.body_limit_bytes)?,
            )?,
            reconcile_interval: Duration::from_millis(positive(
                "reconcile_interval_ms",
                set("reconcile_interval_ms", s.reconcile_interval_ms)?,
            )?),
            reconcile_in_progress_after: Duration::from_secs(set(
                "reconcile_in_progress_after_secs",
                s.reconcile_in_progress_after_secs,
            )?),
            reconcile_max_polls: positive(
                "reconcile_max_polls",
                set("reconcile_max_polls", s.reconcile_max_polls)?,
            )?,
            // Zero would fail an attempt Smart Glocal is slow to show at its first answer,
            // freeing its amount to be refunded again: not "never".
            reconcile_fail_after: Duration::from_secs(positive(
                "reconcile_fail_after_secs",
                set("reconcile_fail_after_secs", s.reconcile_fail_after_secs)?,
            )?),
            log_json,
            frame_ancestors,
            connect_src,
            max_token_ttl: Duration::from_secs(s.max_token_ttl_secs()?),
            rate_limit_per_minute: set("rate_limit_per_minute", s.rate_limit_per_minute)?,
            header_read_timeout: Duration::from_millis(positive(
                "header_read_timeout_ms",
                set("header_read_timeout_ms", s.header_read_timeout_ms)?,
            )?),
            max_connections: positive(
                "max_connections",
                set("max_connections", s.max_connections)?,
            )?,
            max_streams_per_agent: set("max_streams_per_agent", s.max_streams_per_agent)?,
            ops_listen: s.ops_listen,
        })
    }
}

impl Settings {
    /// `max_token_ttl_secs` checked (enough for `proxy token`).
    pub fn max_token_ttl_secs(&self) -> Result<u64, ConfigError> {
        positive(
            "max_token_ttl_secs",
            set("max_token_ttl_secs", self.max_token_ttl_secs)?,
        )
    }
}

/// A setting's value, which every layered [`Settings`] has (from [`DEFAULTS`] if nowhere
/// else).
fn set<T>(name: &'static str, value: Option<T>) -> Result<T, ConfigError> {
    value.ok_or(ConfigError::Missing(name))
}

/// Secrets join the in-memory TOML table [`Settings::overridden_by`] merges; nothing else
/// serialises settings.
fn layer_secret<S: Serializer>(secret: &Option<Secret>, to: S) -> Result<S::Ok, S::Error> {
    match secret {
        Some(secret) => to.serialize_some(secret.expose()),
        None => to.serialize_none(),
    }
}

/// Each an origin as browsers write it in their `Origin` header, which is compared byte for
/// byte: `https://Admin.Example`, `https://admin.example:443` or ` https://admin.example` (a
/// space after a comma) would start and then refuse every call from that page.
fn check_origins(name: &'static str, origins: &[String]) -> Result<(), ConfigError> {
    check_origin_syntax(name, origins, true)
}

/// Each an origin (`http://host:port`); `as_sent` also wants each as browsers write it in
/// their `Origin` header ([`check_origins`]). CSP sources need not: they match hosts in any
/// case and a default port written out.
fn check_origin_syntax(
    name: &'static str,
    origins: &[String],
    as_sent: bool,
) -> Result<(), ConfigError> {
    for origin in origins {
        let parsed = reqwest::Url::parse(origin)
            .ok()
            .filter(|u| u.path() == "/" && !origin.ends_with('/'));
        let Some(parsed) = parsed else {
            return Err(ConfigError::Invalid {
                name,
                reason: format!("`{origin}` is not an origin like http://host:port"),
            });
        };
        let written = parsed.origin().ascii_serialization();
        // A CSP source is copied into a header as written: nothing the parser would quietly
        // drop (spaces, a line break), nothing an origin does not have (a query, a fragment,
        // a user). One compared as browsers send it is held to that spelling (below).
        let plain = origin.bytes().all(|b| b.is_ascii_graphic())
            && parsed.query().is_none()
            && parsed.fragment().is_none()
            && parsed.username().is_empty()
            && parsed.password().is_none();
        if !as_sent && !plain {
            return Err(ConfigError::Invalid {
                name,
                reason: format!(
                    "`{}` is not an origin like http://host:port",
                    origin.escape_debug()
                ),
            });
        }
        if as_sent && written != *origin {
            return Err(ConfigError::Invalid {
                name,
                reason: format!("`{origin}` is not written as browsers send it: write `{written}`"),
            });
        }
    }
    Ok(())
}

/// `'none'`, `'self'` or origins, space-separated: what goes into the CSP header verbatim, so
/// nothing else (no `;`, no other directive) may.
fn frame_ancestors(setting: &str) -> Result<String, ConfigError> {
    let value = setting.trim();
    let sources: Vec<&str> = value.split_whitespace().collect();
    let valid = !sources.is_empty()
        && sources.iter().all(|source| {
            matches!(*source, "'none'" | "'self'")
                || check_origin_syntax("frame_ancestors", &[(*source).to_owned()], false).is_ok()
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
/// Whether a `database` setting is a URL (`postgres://…`, `sqlite:…`) rather than a path.
/// The file a `database` setting names, however spelled (`path`, `sqlite:path`,
/// `sqlite://path`); `None` for a PostgreSQL URL.
fn sqlite_file(setting: &Path) -> Option<PathBuf> {
    let text = setting.to_string_lossy();
    if text.starts_with("postgres://") || text.starts_with("postgresql://") {
        return None;
    }
    let path = text
        .strip_prefix("sqlite://")
        .or_else(|| text.strip_prefix("sqlite:"))
        .unwrap_or(&text);
    Some(PathBuf::from(path))
}

fn check_outside_serve_dir(serve_dir: &Path, s: &Settings) -> Result<(), ConfigError> {
    let root = resolved(serve_dir);
    let files: [(&'static str, Option<PathBuf>); 5] = [
        ("database", s.database.as_deref().and_then(sqlite_file)),
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

#[cfg(test)]
mod tests {
    #[test]
    fn settings_shown_for_debugging_hold_no_secret_or_password() {
        let settings = super::Settings {
            upstream_url: Some("https://partner:upstream-pw@sg.example/".into()),
            database: Some("postgres://ledger:db-hunter2@db.example:5432/refunds".into()),
            signing_key: Some(signing::Secret::new("signing-secret-value")),
            agent_token_secret: Some(signing::Secret::new("token-secret-value")),
            project: Some("merchant-project".into()),
            ..Default::default()
        };
        let shown = format!("{settings:?}");
        for secret in [
            "upstream-pw",
            "db-hunter2",
            "signing-secret-value",
            "token-secret-value",
        ] {
            assert!(!shown.contains(secret), "{secret} in {shown}");
        }
        for kept in [
            "sg.example",
            "db.example:5432/refunds",
            "merchant-project",
            "[redacted]",
        ] {
            assert!(shown.contains(kept), "{kept} not in {shown}");
        }
        let sqlite = super::Settings {
            database: Some("/var/lib/proxy/ledger.db".into()),
            ..Default::default()
        };
        assert!(format!("{sqlite:?}").contains("/var/lib/proxy/ledger.db"));
    }

    use super::*;

    #[test]
    fn a_layer_replaces_only_what_it_sets() {
        let under = Settings {
            listen: Some("127.0.0.1:9000".parse().unwrap()),
            project: Some("from-file".into()),
            agent_token_secret: Some(Secret::new("file-secret-of-enough-length")),
            allowed_origins: Some(vec!["http://a.example".into()]),
            ..Settings::default()
        };
        let over = Settings {
            project: Some("from-flag".into()),
            upstream_timeout_ms: Some(250),
            ..Settings::default()
        };
        let merged = under.overridden_by(over).unwrap();
        assert_eq!(merged.project.as_deref(), Some("from-flag"));
        assert_eq!(merged.upstream_timeout_ms, Some(250));
        assert_eq!(merged.listen, Some("127.0.0.1:9000".parse().unwrap()));
        assert_eq!(
            merged.agent_token_secret.map(|s| s.expose().to_owned()),
            Some("file-secret-of-enough-length".to_owned())
        );
        assert_eq!(merged.allowed_origins.unwrap(), ["http://a.example"]);
        assert_eq!(merged.database, None, "an absent setting stays absent");
    }

    /// A key and its file are one setting: the layer above giving either wins, and one
    /// layer giving both is refused rather than one of them silently ignored.
    #[test]
    fn a_secret_and_its_file_replace_each_other_across_layers() {
        let file = Settings {
            signing_key: Some(Secret::new("inline-in-the-file")),
            agent_token_secret_file: Some("/run/secrets/agent".into()),
            ..Settings::default()
        };
        let env = Settings {
            signing_key_file: Some("/run/secrets/rotated.pem".into()),
            agent_token_secret: Some(Secret::new("from-the-environment-123")),
            ..Settings::default()
        };
        let merged = file.clone().overridden_by(env).unwrap();
        assert!(
            merged.signing_key.is_none(),
            "the file's inline key is replaced"
        );
        assert_eq!(
            merged.signing_key_file.as_deref(),
            Some(Path::new("/run/secrets/rotated.pem"))
        );
        assert!(merged.agent_token_secret_file.is_none());
        assert_eq!(
            merged.agent_token_secret().unwrap().expose(),
            "from-the-environment-123"
        );
        // A layer that sets neither leaves both as they were.
        let merged = file.overridden_by(Settings::default()).unwrap();
        assert!(merged.signing_key.is_some());
        // Both in one layer.
        let both = Settings {
            agent_token_secret: Some(Secret::new("from-the-environment-123")),
            agent_token_secret_file: Some("/run/secrets/agent".into()),
            ..Settings::default()
        };
        assert!(matches!(
            both.agent_token_secret(),
            Err(ConfigError::Invalid {
                name: "agent_token_secret",
                ..
            })
        ));
    }

    #[test]
    fn a_wrong_config_file_is_named_by_line_and_never_shows_its_values() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("proxy.toml");
        let cases = [
            // A misspelt key: toml's own message would quote the whole line.
            "listen = \"127.0.0.1:1\"\nagent_token_secet = \"s3cret-value-1\"\n",
            // A bad escape inside a secret.
            "listen = \"127.0.0.1:1\"\nagent_token_secret = \"s3cret\\qvalue-1\"\n",
            // A string where a number goes: serde quotes the value.
            "\ndatabase_pool_size = \"s3cret-value-1\"\n",
            // A database URL with its password, unterminated.
            "database = \"postgres://u:s3cret-value-1@h/db\n",
            // A value with an escaped quote where a number goes: serde quotes it Debug-style.
            "\ndatabase_pool_size = \"s3cret\\\"value-1\"\n",
            // An all-digit secret without quotes: serde writes a number in backticks.
            "\nagent_token_secret = 5531234567890123\n",
            "\nsigning_key = 5531234567890123.5\n",
        ];
        for case in cases {
            std::fs::write(&file, case).unwrap();
            let error = Settings::from_file(&file).unwrap_err().to_string();
            assert!(
                !error.contains("s3cret") && !error.contains("value-1") && !error.contains("55312"),
                "{error}"
            );
            let line = if case.starts_with("database =") { 1 } else { 2 };
            assert!(error.contains(&format!("line {line}, column ")), "{error}");
        }
        std::fs::write(&file, "agent_token_secet = \"x\"\n").unwrap();
        let error = Settings::from_file(&file).unwrap_err().to_string();
        assert!(
            error.contains("unknown field `agent_token_secet`"),
            "{error}"
        );
    }

    #[test]
    fn a_config_file_beats_the_defaults_and_the_environment_beats_the_file() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("conf")).unwrap();
        let file = dir.path().join("conf/proxy.toml");
        std::fs::write(
            &file,
            "upstream_timeout_ms = 700\nreconcile_max_polls = 3\ndatabase = \"data/l.sqlite\"\n",
        )
        .unwrap();
        let env_and_flags = Settings {
            reconcile_max_polls: Some(4),
            ..Settings::default()
        };
        let s = Settings::layered(Some(&file), env_and_flags).unwrap();
        assert_eq!(s.upstream_timeout_ms, Some(700), "file over default");
        assert_eq!(s.reconcile_max_polls, Some(4), "flag over file");
        assert_eq!(s.reconcile_interval_ms, Some(5000), "default under all");
        // The file's relative path resolves against its directory's parent.
        let Database::Sqlite(database) = s.database().unwrap() else {
            panic!("a path is a SQLite file");
        };
        assert!(database.starts_with(std::fs::canonicalize(dir.path()).unwrap()));
        assert!(database.ends_with("data/l.sqlite"));
        // Without a file, the default ledger path is relative to the working directory.
        let s = Settings::layered(None, Settings::default()).unwrap();
        assert_eq!(
            s.database().unwrap().describe(),
            PathBuf::from(".data/proxy.sqlite").display().to_string()
        );
    }

    #[test]
    fn a_postgres_url_is_kept_whole_and_its_password_never_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("proxy.toml");
        std::fs::write(
            &file,
            "database = \"postgres://refunds:s3cret-pw@db.internal:5433/ledger\"\ndatabase_pool_size = 7\n",
        )
        .unwrap();
        let s = Settings::layered(Some(&file), Settings::default()).unwrap();
        let database = s.database().unwrap();
        let Database::Postgres(target) = &database else {
            panic!("a postgres:// URL is PostgreSQL: {database:?}");
        };
        assert_eq!(target.pool_size, 7);
        assert_eq!(target.connect_timeout, Duration::from_millis(2000));
        let shown = format!("{database:?} {} {target:?}", database.describe());
        assert!(
            shown.contains("postgres://refunds@db.internal:5433/ledger"),
            "{shown}"
        );
        assert!(!shown.contains("s3cret-pw"), "{shown}");

        let bad = Settings {
            database: Some("postgres://refunds:s3cret-pw@db:notaport/x".into()),
            ..Settings::defaults()
        };
        let error = bad.database().unwrap_err().to_string();
        assert!(error.contains("database"), "{error}");
        assert!(!error.contains("s3cret-pw"), "{error}");
    }

    /// What a zero would break (a timeout that fires at once, no connection ever served, no
    /// body ever accepted) is refused by name at start.
    #[test]
    fn a_zero_where_zero_means_nothing_is_refused_by_name() {
        let valid = || Settings {
            project: Some("shop".into()),
            signing_scheme: Some(Scheme::HmacSha256),
            signing_key: Some(Secret::new("a-signing-key")),
            webhook_scheme: Some(Scheme::HmacSha256),
            webhook_key: Some(Secret::new("a-webhook-key")),
            agent_token_secret: Some(Secret::new("a-token-secret-of-enough-length")),
            ..Settings::default()
        };
        let config = Config::from_settings(valid()).unwrap();
        assert_eq!(
            config.database.describe(),
            Settings::defaults().database().unwrap().describe()
        );
        type Zero = fn(&mut Settings);
        let zeroes: [(&str, Zero); 10] = [
            ("upstream_timeout_ms", |s| s.upstream_timeout_ms = Some(0)),
            ("approval_ttl_secs", |s| s.approval_ttl_secs = Some(0)),
            ("body_limit_bytes", |s| s.body_limit_bytes = Some(0)),
            ("reconcile_interval_ms", |s| {
                s.reconcile_interval_ms = Some(0)
            }),
            ("reconcile_max_polls", |s| s.reconcile_max_polls = Some(0)),
            ("header_read_timeout_ms", |s| {
                s.header_read_timeout_ms = Some(0)
            }),
            ("max_connections", |s| s.max_connections = Some(0)),
            ("max_token_ttl_secs", |s| s.max_token_ttl_secs = Some(0)),
            ("reconcile_fail_after_secs", |s| {
                s.reconcile_fail_after_secs = Some(0)
            }),
            ("database_connect_timeout_ms", |s| {
                s.database_connect_timeout_ms = Some(0)
            }),
        ];
        for (name, zero) in zeroes {
            let mut settings = valid();
            zero(&mut settings);
            let error = Config::from_settings(settings).err().map(|e| e.to_string());
            assert_eq!(
                error.as_deref(),
                Some(format!("invalid setting `{name}`: must be greater than zero").as_str())
            );
        }
    }

    /// The in-process wait for a payment's lock and PostgreSQL's `lock_timeout` are one figure.
    #[test]
    fn the_payment_lock_wait_is_two_upstream_calls_and_five_seconds() {
        assert_eq!(
            payment_lock_wait(Duration::from_millis(1500)),
            Duration::from_secs(8)
        );
        assert_eq!(payment_lock_wait(Duration::MAX), Duration::MAX);
    }

    /// An origin that could never equal a browser's `Origin` header is refused at start with
    /// the spelling that would.
    #[test]
    fn an_origin_no_browser_sends_is_refused_with_the_one_it_does() {
        let origins = |list: &[&str]| list.iter().map(|o| o.to_string()).collect::<Vec<_>>();
        assert!(check_origins(
            "allowed_origins",
            &origins(&["https://admin.example", "http://127.0.0.1:8080"])
        )
        .is_ok());
        for (written, browsers) in [
            ("https://Admin.Example", "https://admin.example"),
            ("https://admin.example:443", "https://admin.example"),
            (" https://admin.example", "https://admin.example"),
        ] {
            let error = check_origins("allowed_origins", &origins(&[written]))
                .unwrap_err()
                .to_string();
            assert!(error.contains(&format!("write `{browsers}`")), "{error}");
        }
        assert!(check_origins("allowed_origins", &origins(&["https://a.example/"])).is_err());
        // A CSP source matches hosts in any case and a default port written out; it is
        // copied into the header, so nothing else passes.
        assert!(check_origin_syntax(
            "connect_src",
            &origins(&["https://API.example", "https://shop.example:443"]),
            false
        )
        .is_ok());
        for copied in [
            "https://api.example\n",
            "https://api.example?;frame-ancestors *",
            "https://api.example#f",
            "https://user@api.example",
        ] {
            assert!(
                check_origin_syntax("connect_src", &origins(&[copied]), false).is_err(),
                "{copied:?}"
            );
        }
    }

    #[test]
    fn the_defaults_table_names_only_real_settings() {
        let defaults = Settings::defaults();
        assert_eq!(defaults.max_token_ttl_secs().unwrap(), 3600);
        assert!(defaults.project.is_none() && defaults.signing_key.is_none());
    }
}

//! The command line: `proxy [serve]`, `proxy token`, `proxy revoke`, `proxy export`.

use std::io::IsTerminal;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{CommandFactory, FromArgMatches, Parser, Subcommand};
use shared::api::Limit;
use shared::{SessionId, Timestamp};
use tokio::net::TcpListener;

use crate::auth::{parse_ttl, TokenKeys};
use crate::config::{Config, Settings, DEFAULTS, PATHS_HELP};
use crate::ledger::{Database, ExportRow, Ledger};

#[derive(Debug, Parser)]
#[command(
    name = "proxy",
    version,
    about = "The Smart Glocal signing proxy: agent auth, signed calls, verified webhooks, the refund ledger.",
    long_about = None,
    after_help = format!(
        "Settings are read from the --config TOML file (same key names), overridden by PROXY_* \
         environment variables, overridden by flags. Secrets can be inline, in PROXY_* variables, \
         or in files (*_file). {PATHS_HELP}\n\nRUST_LOG sets the log filter (default info)."
    )
)]
pub struct Cli {
    /// TOML configuration file.
    #[arg(long, short = 'c', env = "PROXY_CONFIG", global = true)]
    pub config: Option<PathBuf>,
    #[command(flatten)]
    pub settings: Settings,
    #[command(subcommand)]
    pub command: Option<Command>,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Run the server (the default).
    Serve {
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// Print an agent token (HS256 JWT) signed with the agent-token secret.
    Token {
        /// The agent's name (`sub`).
        #[arg(long)]
        agent: String,
        /// Lifetime: 30s, 15m, 2h, 1d.
        #[arg(long, default_value = "15m", value_parser = parse_ttl)]
        ttl: u64,
        /// Limit the token to one payment.
        #[arg(long)]
        session: Option<SessionId>,
        /// The token's `refund_max`: the most one refund may be, minor units or per currency
        /// as JSON (`{"usd":20000}`).
        #[arg(long = "limit", value_parser = crate::config::parse_limit)]
        token_refund_max: Option<Limit>,
        /// The token's `refund_daily`: the most the agent may refund per UTC day (same form).
        #[arg(long = "daily-limit", value_parser = crate::config::parse_limit)]
        token_refund_daily: Option<Limit>,
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// Refuse every token of an agent issued until now, on every proxy sharing the ledger.
    Revoke {
        /// The agent's name (`sub`).
        #[arg(long)]
        agent: String,
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// Walk the history's hash chain; exit 1 naming the first line that does not match (a
    /// line edited, or one before the last removed or reordered), 0 if every line does. Lines
    /// removed from the end, or rewritten and hashed anew from some line on, only a head held
    /// from before shows: give it with --expect-head.
    VerifyLedger {
        /// A chain head kept from before (an export's last hash, or one this printed): exit 1
        /// unless it is a line of this ledger's chain.
        #[arg(long)]
        expect_head: Option<String>,
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// Copy the SQLite ledger into a new file, consistent while the proxy runs (a `cp` of a
    /// live ledger can miss commits still in its WAL); then check the copy's chain and print
    /// its head. Restore by putting the copy where `database` points, with the proxy stopped.
    Backup {
        /// The new file (it must not exist).
        #[arg(long)]
        to: PathBuf,
        #[command(flatten)]
        settings: Box<Settings>,
    },
    /// Print the ledger's refunds created in [since, until) as CSV (with --chain: the history
    /// lines written then, with their hashes, one JSON object per line).
    Export {
        /// The history's hash chain instead of the refunds: `{"id","at","session_id","line",
        /// "prev","hash"}` per line, where hash = SHA-256(prev ‖ line) in hex.
        #[arg(long)]
        chain: bool,
        /// A date (2026-01-01, UTC midnight) or an RFC 3339 instant.
        #[arg(long)]
        since: String,
        /// A date (exclusive: 2026-02-01 stops at the end of January) or an RFC 3339 instant; default now.
        #[arg(long)]
        until: Option<String>,
        #[command(flatten)]
        settings: Box<Settings>,
    },
}

/// Parses `2026-01-01` (midnight UTC) or an RFC 3339 instant to Unix milliseconds.
pub fn parse_instant(text: &str) -> Result<i64, String> {
    let format = time::macros::format_description!("[year]-[month]-[day]");
    if let Ok(date) = time::Date::parse(text.trim(), &format) {
        return Ok(date.midnight().assume_utc().unix_timestamp() * 1000);
    }
    Timestamp::parse(text.trim())
        .map(|t| t.unix_millis())
        .map_err(|_| format!("`{text}` is neither a date like 2026-01-01 nor an RFC 3339 instant"))
}

fn init_logging(json: bool) {
    let default = || tracing_subscriber::EnvFilter::new("info,sqlx=warn");
    let (filter, refused) = match std::env::var("RUST_LOG") {
        Ok(directives) if !directives.trim().is_empty() => {
            match tracing_subscriber::EnvFilter::try_new(&directives) {
                Ok(filter) => (filter, None),
                Err(e) => (default(), Some(e.to_string())),
            }
        }
        _ => (default(), None),
    };
    // Colours for a person at a terminal; none in a file or a log collector's pipe.
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    if json {
        builder.json().init();
    } else {
        builder.init();
    }
    if let Some(error) = refused {
        tracing::warn!(%error, "RUST_LOG is not a filter the proxy understands; logging at the default level (info)");
    }
}

/// The binary's whole `main`.
pub async fn main() -> ExitCode {
    let matches = match with_defaults_shown(Cli::command()).try_get_matches() {
        Ok(matches) => matches,
        Err(e) => return refused(&e),
    };
    let mut cli = match Cli::from_arg_matches(&matches) {
        Ok(cli) => cli,
        Err(e) => e.exit(),
    };
    // Both layers read the environment; the subcommand's keeps only its own flags, so flags
    // before the subcommand still win over the environment, and the one before it is the
    // environment's under its flags (a flag's secret file replacing the environment's
    // inline secret, as any flag replaces what the environment says).
    match std::mem::take(&mut cli.settings).environment_then_flags(&matches) {
        Ok(layers) => cli.settings = layers,
        Err(e) => {
            eprintln!("proxy: {e}");
            return ExitCode::from(2);
        }
    }
    if let (Some(settings), Some((_, sub))) = (
        cli.command.as_mut().and_then(Command::settings_mut),
        matches.subcommand(),
    ) {
        match std::mem::take(settings).given_on_command_line(sub) {
            Ok(flags) => *settings = flags,
            Err(e) => {
                eprintln!("proxy: {e}");
                return ExitCode::from(2);
            }
        }
    }
    match dispatch(cli).await {
        Ok(()) => ExitCode::SUCCESS,
        // Said on stdout already; 1 tells a script the ledger was tampered with.
        Err(Failure::Broken) => ExitCode::from(1),
        Err(Failure::Message(message)) => {
            eprintln!("proxy: {message}");
            ExitCode::from(2)
        }
    }
}

/// `command` with each setting's help ending in `[default: …]`, read from [`DEFAULTS`] (the
/// values themselves apply as the bottom layer, so a config file can still set them).
pub fn with_defaults_shown(command: clap::Command) -> clap::Command {
    let defaults: toml::Table = toml::from_str(DEFAULTS).expect("DEFAULTS is TOML");
    let command = command.mut_args(|arg| match defaults.get(arg.get_id().as_str()) {
        Some(value) => {
            let shown = match value {
                toml::Value::String(text) => text.clone(),
                other => other.to_string(),
            };
            let help = arg.get_help().map(ToString::to_string).unwrap_or_default();
            arg.help(format!("{help} [default: {shown}]"))
        }
        None => arg,
    });
    let names: Vec<String> = command
        .get_subcommands()
        .map(|sub| sub.get_name().to_owned())
        .collect();
    names.iter().fold(command, |command, name| {
        command.mut_subcommand(name, with_defaults_shown)
    })
}

impl Command {
    /// The subcommand's own layer of settings (flags after it, and the environment).
    fn settings_mut(&mut self) -> Option<&mut Settings> {
        match self {
            Command::Serve { settings }
            | Command::Token { settings, .. }
            | Command::Revoke { settings, .. }
            | Command::VerifyLedger { settings, .. }
            | Command::Backup { settings, .. }
            | Command::Export { settings, .. } => Some(settings),
        }
    }
}

/// Command-line words clap could not take, said without repeating them unless they look
/// like a mistyped flag: a secret flag's value is one word away from any slip
/// (`--signing-key --webhook-key SECRET` leaves `SECRET` unexpected), and clap's own message
/// quotes the word whole. Everything else (help, versions, a limit that is not one) is
/// clap's own message: secrets' values are never refused, so never quoted.
fn refused(error: &clap::Error) -> ExitCode {
    use clap::error::{ContextKind, ContextValue, ErrorKind};
    let word = match error.get(ContextKind::InvalidArg) {
        Some(ContextValue::String(word)) => word.as_str(),
        _ => "",
    };
    let a_flag = word.len() <= 40
        && word.starts_with("--")
        && word[2..]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-');
    match error.kind() {
        ErrorKind::UnknownArgument | ErrorKind::InvalidSubcommand if !a_flag => {
            eprintln!(
                "proxy: an argument was not understood (not repeated here: it may be a secret); `proxy --help` lists the commands and settings"
            );
            ExitCode::from(2)
        }
        _ => error.exit(),
    }
}

/// Why a command did not succeed.
enum Failure {
    /// `verify-ledger` found a line that does not match its hash, or not the head it was
    /// told to expect.
    Broken,
    /// Anything else: bad arguments, an unreadable ledger, a server that could not start.
    Message(String),
}

impl From<String> for Failure {
    fn from(message: String) -> Self {
        Failure::Message(message)
    }
}

impl From<&str> for Failure {
    fn from(message: &str) -> Self {
        Failure::Message(message.to_owned())
    }
}

async fn dispatch(cli: Cli) -> Result<(), Failure> {
    // Subcommand flags over the ones before it, over the environment, the file and DEFAULTS.
    let layered = |sub: Settings| {
        let env_and_flags = cli.settings.clone().overridden_by(sub);
        env_and_flags
            .and_then(|layer| Settings::layered(cli.config.as_deref(), layer))
            .map_err(|e| e.to_string())
    };
    let database = |sub: Settings| layered(sub)?.database().map_err(|e| e.to_string());
    const AGENT_NAME: &str =
        "--agent must name an agent: something besides spaces, and no control characters";
    match cli.command {
        None => Ok(serve(layered(Settings::default())?).await?),
        Some(Command::Serve { settings }) => Ok(serve(layered(*settings)?).await?),
        Some(Command::Token {
            agent,
            ttl,
            session,
            token_refund_max,
            token_refund_daily,
            settings,
        }) => {
            if !crate::auth::names_an_agent(&agent) {
                return Err(AGENT_NAME.into());
            }
            let settings = layered(*settings)?;
            let secret = settings.agent_token_secret().map_err(|e| e.to_string())?;
            let max = settings.max_token_ttl_secs().map_err(|e| e.to_string())?;
            if ttl > max {
                return Err(format!(
                    "--ttl {ttl}s is longer than `max_token_ttl_secs` ({max}s): the proxy would refuse the token"
                )
                .into());
            }
            let keys = TokenKeys::new(&secret);
            let mut claims = keys.claims(&agent, ttl, session.as_ref());
            claims.refund_max = token_refund_max;
            claims.refund_daily = token_refund_daily;
            // A token that could not be written (a full disk) is a failure, not a success.
            print_line(&keys.mint_claims(&claims))
                .map_err(|e| format!("writing the token: {e}"))?;
            Ok(())
        }
        Some(Command::Revoke { agent, settings }) => {
            if !crate::auth::names_an_agent(&agent) {
                return Err(AGENT_NAME.into());
            }
            let agent = crate::auth::agent_id(&agent);
            let agent = agent.as_str();
            let database = database(*settings)?;
            let ledger = Ledger::open_existing(&database)
                .await
                .map_err(|e| cannot_open(&database, e))?;
            // A token may say it was issued up to the accepted clock skew ahead of our clock:
            // one minted just before this, by a merchant backend whose clock runs ahead, is
            // revoked too (and a token minted in the next few seconds, for the same reason).
            let until = crate::auth::now_secs()
                .saturating_add(i64::try_from(crate::auth::LEEWAY_SECS).unwrap_or(i64::MAX));
            let revoked = ledger.revoke_agent(agent, until).await;
            ledger.close().await;
            let closed = revoked.map_err(|e| e.to_string())?;
            eprintln!(
                "proxy: tokens of `{agent}` issued until now (or up to {}s ahead, the clock skew accepted) are refused from now on by every proxy serving {}; {closed} of their requests awaiting approval closed, nothing sent",
                crate::auth::LEEWAY_SECS,
                database.describe_whole()
            );
            Ok(())
        }
        Some(Command::VerifyLedger {
            expect_head,
            settings,
        }) => {
            // A head as printed: 64 lowercase hex digits, or `(empty)` for a chain with no
            // line yet. Anything else is a mistake (an unset shell variable gives ""), not
            // a verdict on the ledger.
            let expect_head = match expect_head.as_deref() {
                None => None,
                Some("(empty)") => Some(String::new()),
                Some(head)
                    if head.len() == 64
                        && head.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)) =>
                {
                    Some(head.to_owned())
                }
                Some(_) => {
                    return Err(Failure::Message(
                        "--expect-head takes a chain head as verify-ledger prints it: 64 hex digits, or (empty)".into(),
                    ))
                }
            };
            let database = database(*settings)?;
            let ledger = Ledger::open_read_only(&database)
                .await
                .map_err(|e| cannot_open(&database, e))?;
            let report = ledger.verify_chain().await;
            let held = match (&report, &expect_head) {
                (Ok(report), Some(head)) if report.broken.is_none() => {
                    Some(ledger.chain_holds(head).await)
                }
                _ => None,
            };
            ledger.close().await;
            let report = report.map_err(|e| e.to_string())?;
            if let Some(held) = held {
                if !held.map_err(|e| e.to_string())? {
                    say(&format!(
                        "ledger BROKEN: the chain head you hold, {}, is no line of this ledger ({} lines, head {}): lines were removed from the end, or rewritten and hashed anew",
                        expect_head.as_deref().unwrap_or_default(),
                        report.verified,
                        report.head
                    ));
                    return Err(Failure::Broken);
                }
            }
            match report.broken {
                None => {
                    // The history's chain, not the refunds' rows: those are checked by
                    // nothing but the lines that recorded them.
                    say(&format!(
                        "history chain intact: {} lines, head {} (keep it: `--expect-head` with it later shows lines removed or rewritten since)",
                        report.verified,
                        shown_head(&report.head)
                    ));
                    Ok(())
                }
                Some(line) => {
                    say(&format!(
                        "ledger BROKEN at history line {} (payment {}, written {}): its hash is {} but its content after the line before it hashes to {}; {} lines before it verified",
                        line.id,
                        // Escaped: whoever rewrote the ledger chose these bytes, and a
                        // terminal must not be told to print "intact" over this line.
                        line.session_id.escape_debug(),
                        Timestamp::from_unix_millis(line.at),
                        line.stored.as_deref().unwrap_or("missing").escape_debug(),
                        line.expected,
                        report.verified
                    ));
                    Err(Failure::Broken)
                }
            }
        }
        Some(Command::Backup { to, settings }) => {
            let database = database(*settings)?;
            let ledger = Ledger::open_read_only(&database)
                .await
                .map_err(|e| cannot_open(&database, e))?;
            let copied = ledger.backup_into(&to).await;
            ledger.close().await;
            copied?;
            // The copy is a ledger of its own: its chain walked, its head printed, so that a
            // restore can be checked against it (`verify-ledger --expect-head`).
            let copy = Database::Sqlite(std::path::absolute(&to).unwrap_or(to));
            let ledger = Ledger::open_read_only(&copy)
                .await
                .map_err(|e| cannot_open(&copy, e))?;
            let report = ledger.verify_chain().await;
            ledger.close().await;
            let report = report.map_err(|e| e.to_string())?;
            if let Some(line) = report.broken {
                return Err(format!(
                    "the copy at {} does not verify at history line {}: the ledger itself is broken there (`proxy verify-ledger`)",
                    copy.describe_whole(),
                    line.id
                )
                .into());
            }
            say(&format!(
                "ledger copied to {}: history chain intact, {} lines, head {}",
                copy.describe_whole(),
                report.verified,
                shown_head(&report.head)
            ));
            Ok(())
        }
        Some(Command::Export {
            chain,
            since,
            until,
            settings,
        }) => {
            let (since, until) = window(&since, until.as_deref())?;
            let database = database(*settings)?;
            let ledger = Ledger::open_read_only(&database)
                .await
                .map_err(|e| cannot_open(&database, e))?;
            let printed = export(&ledger, chain, since, until).await;
            ledger.close().await;
            let printed = printed.map_err(|e| e.to_string())?;
            written(std::io::Write::write_all(
                &mut std::io::stdout().lock(),
                printed.as_bytes(),
            ))
            .map_err(|e| format!("writing the export: {e}").into())
        }
    }
}

/// A chain head as `verify-ledger` prints it and `--expect-head` takes it back: `(empty)` for
/// a chain with no line yet.
fn shown_head(head: &str) -> &str {
    if head.is_empty() {
        "(empty)"
    } else {
        head
    }
}

/// `result` of writing to stdout, where a reader that has gone (`| head`, a pager that quit)
/// has what it wanted: not an error, and no panic as `println!`'s.
fn written(result: std::io::Result<()>) -> std::io::Result<()> {
    match result {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// `line` and a newline on stdout (see [`written`]); any other failure is said on stderr.
fn say(line: &str) {
    if let Err(e) = print_line(line) {
        eprintln!("proxy: writing to stdout: {e}");
    }
}

/// `line` and a newline on stdout; a reader that has gone is no error (see [`written`]).
fn print_line(line: &str) -> std::io::Result<()> {
    written(std::io::Write::write_all(
        &mut std::io::stdout().lock(),
        format!("{line}\n").as_bytes(),
    ))
}

/// Why the ledger at `database` could not be opened, naming it (a relative path is another
/// ledger from another directory).
fn cannot_open(database: &Database, error: impl std::fmt::Display) -> String {
    let (whole, error) = (database.describe_whole(), error.to_string());
    if error.contains(&whole) {
        error
    } else {
        format!("the ledger at {whole}: {error}")
    }
}

/// `--since` and `--until` (default: now) as Unix milliseconds.
fn window(since: &str, until: Option<&str>) -> Result<(i64, i64), String> {
    let since = parse_instant(since)?;
    let until = match until {
        Some(until) => parse_instant(until)?,
        None => crate::ledger::now_ms() + 1,
    };
    Ok((since, until))
}

/// What `proxy export` prints: the refunds as CSV, or (`--chain`) the history's hash chain,
/// one JSON object per line.
async fn export(ledger: &Ledger, chain: bool, since: i64, until: i64) -> Result<String, String> {
    let mut out = String::new();
    if chain {
        for entry in ledger
            .export_chain(since, until)
            .await
            .map_err(|e| e.to_string())?
        {
            out.push_str(&serde_json::to_string(&entry).map_err(|e| e.to_string())?);
            out.push('\n');
        }
    } else {
        out.push_str(ExportRow::HEADER);
        out.push('\n');
        for row in ledger
            .export(since, until)
            .await
            .map_err(|e| e.to_string())?
        {
            out.push_str(&row.csv_line());
            out.push('\n');
        }
    }
    Ok(out)
}

async fn serve(settings: Settings) -> Result<(), String> {
    let config = Config::from_settings(settings).map_err(|e| e.to_string())?;
    init_logging(config.log_json);
    // Held until the process ends: one proxy per SQLite ledger (`hold_sqlite_ledger`).
    let _held = match &config.database {
        Database::Sqlite(path) => Some(crate::ledger::hold_sqlite_ledger(path)?),
        Database::Postgres(_) => None,
    };
    let listener = TcpListener::bind(config.listen)
        .await
        .map_err(|e| format!("cannot listen on `listen` = {}: {e}", config.listen))?;
    crate::serve::run(listener, config)
        .await
        .map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn help(args: &[&str]) -> String {
        match with_defaults_shown(Cli::command()).try_get_matches_from(args) {
            Err(e) => e.to_string(),
            Ok(_) => panic!("--help prints help"),
        }
    }

    #[test]
    fn help_shows_each_default_from_the_one_table() {
        let defaults: toml::Table = toml::from_str(DEFAULTS).unwrap();
        for text in [
            help(&["proxy", "--help"]),
            help(&["proxy", "serve", "--help"]),
        ] {
            for (name, _) in &defaults {
                let flag = format!("--{}", name.replace('_', "-"));
                assert!(text.contains(&flag), "{flag} missing from\n{text}");
            }
            assert!(text.contains("[default: 127.0.0.1:8080]"), "{text}");
            assert!(text.contains("[default: 10000]"), "{text}");
            assert!(text.contains("[default: 'none']"), "{text}");
            assert!(!text.contains("[default: \""), "strings shown bare: {text}");
        }
    }
}

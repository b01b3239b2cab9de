//! The README's production configuration is a real one: every key exists (the settings reject
//! unknown keys), and once the secret files exist it makes a complete, valid [`Config`].

use std::path::{Path, PathBuf};

use proxy::config::{Config, Settings};

fn readme_toml() -> String {
    toml_of_section("## Configuring the proxy")
}

/// The first TOML block after `heading`.
fn toml_of_section(heading: &str) -> String {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .expect("README.md is readable");
    let section = readme
        .split(heading)
        .nth(1)
        .unwrap_or_else(|| panic!("README has a `{heading}` section"));
    let block = section
        .split("```toml\n")
        .nth(1)
        .and_then(|rest| rest.split("```").next())
        .expect("the section holds a ```toml block");
    block.to_owned()
}

#[test]
fn the_readme_configuration_names_only_real_settings() {
    let settings: Settings = toml::from_str(&readme_toml())
        .unwrap_or_else(|e| panic!("README's TOML does not parse as proxy settings: {e}"));
    assert_eq!(settings.project.as_deref(), Some("acme-store"));
    assert_eq!(settings.partial_refunds, Some(true));
}

#[test]
fn the_readme_configuration_is_complete_once_its_files_exist() {
    let keys = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../signing/tests/keys");
    let secret = tempfile::NamedTempFile::new().expect("a temporary file");
    std::fs::write(secret.path(), "a-token-secret-of-enough-length-for-hs256").unwrap();
    let settings: Settings = toml::from_str(&readme_toml()).expect("README's TOML parses");
    let settings = Settings {
        signing_key_file: Some(keys.join("test-pkcs8-private.pem")),
        webhook_key_file: Some(keys.join("test-public.pem")),
        agent_token_secret_file: Some(secret.path().to_path_buf()),
        ..settings
    };
    let config = Config::from_settings(settings).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(config.project, "acme-store");
    assert_eq!(config.upstream_url, "https://proxy.smart-glocal.com");
    assert!(config.partial_refunds);
    assert!(config.log_json);
    assert_eq!(config.allowed_origins, ["https://admin.acme.example"]);
}

#[test]
fn the_readme_replicas_configuration_is_postgres_and_never_shows_its_password() {
    let settings: Settings = toml::from_str(&toml_of_section("## Running more than one proxy"))
        .unwrap_or_else(|e| panic!("README's replicas TOML does not parse: {e}"));
    let database = settings.database().unwrap();
    assert_eq!(database.engine(), proxy::ledger::Engine::Postgres);
    let shown = format!("{database:?}");
    assert_eq!(shown, "postgres://refunds@db.internal:5432/refunds");
    let proxy::ledger::Database::Postgres(target) = database else {
        unreachable!("the engine is PostgreSQL");
    };
    assert_eq!(target.pool_size, 10);
    assert_eq!(
        target.connect_timeout,
        std::time::Duration::from_millis(2000)
    );
}

/// `docs/CONTRACTS.md` lists every error code the proxy answers with, each with its status:
/// a code added, removed or moved to another status changes the list too.
#[test]
fn the_contracts_list_every_error_code_with_its_status() {
    use strum::IntoEnumIterator;
    let contracts =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/CONTRACTS.md"))
            .expect("docs/CONTRACTS.md is readable");
    let listed: Vec<&str> = contracts
        .lines()
        .filter(|line| line.starts_with("| `"))
        .collect();
    for code in shared::api::ErrorCode::iter() {
        let row = format!(
            "| `{}` | {} |",
            code.name(),
            proxy::error::status_of(code).as_u16()
        );
        assert!(
            listed.iter().any(|line| line.starts_with(&row)),
            "docs/CONTRACTS.md has no row `{row}`"
        );
    }
    let codes = shared::api::ErrorCode::iter().count();
    let rows = listed
        .iter()
        .filter(|line| {
            line.split('|')
                .nth(2)
                .is_some_and(|s| s.trim().parse::<u16>().is_ok())
        })
        .count();
    assert_eq!(rows, codes, "a row in docs/CONTRACTS.md names no code");
}

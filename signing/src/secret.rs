//! Secrets that never print: signing keys, webhook secrets, the agent-token secret.

use std::path::Path;

/// A secret value. `Debug` and `Display` show `[redacted]`; only [`Secret::expose`] reads it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("cannot read the secret file {path}: {source}")]
    File {
        path: String,
        source: std::io::Error,
    },
}

impl Secret {
    pub fn new(value: impl Into<String>) -> Self {
        Self(value.into())
    }

    /// Reads a secret from a file, trimming the trailing newline editors add.
    pub fn from_file(path: &Path) -> Result<Self, SecretError> {
        std::fs::read_to_string(path)
            .map(|text| Self(text.trim_end_matches(['\n', '\r']).to_owned()))
            .map_err(|source| SecretError::File {
                path: path.display().to_string(),
                source,
            })
    }

    /// The value itself. Call sites of this are the only places a secret is used.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Secret([redacted])")
    }
}

impl std::fmt::Display for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("[redacted]")
    }
}

impl<'de> serde::Deserialize<'de> for Secret {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        String::deserialize(deserializer).map(Secret)
    }
}

//! The payments a sandbox holds when it starts: `sandbox/seed.json` by default, or a file.
//!
//! Each seeded session is a `shared::smart_glocal::Session` exactly as the API would return
//! it, plus the project it belongs to, so the file doubles as an example of the wire format.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use shared::smart_glocal::Session;

use crate::config::{ConfigError, Project};

/// The default seed, compiled in so the sandbox runs from any directory.
pub const DEFAULT_SEED_JSON: &str = include_str!("../seed.json");

/// Projects and sessions to start with.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Seed {
    #[serde(default)]
    pub projects: BTreeMap<String, Project>,
    pub sessions: Vec<SeedSession>,
}

/// One session and the project it belongs to.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SeedSession {
    pub project: String,
    pub session: Session,
}

impl Seed {
    /// `sandbox/seed.json`: eight succeeded payments in USD, EUR, RUB, JPY and KWD.
    pub fn default_seed() -> Self {
        serde_json::from_str(DEFAULT_SEED_JSON).expect("the compiled-in seed.json is valid")
    }

    pub fn from_file(path: &Path) -> Result<Self, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        serde_json::from_str(&text).map_err(|source| ConfigError::Seed {
            path: path.display().to_string(),
            source,
        })
    }
}

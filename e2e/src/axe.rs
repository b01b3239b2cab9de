//! The accessibility audit: axe-core (the npm package, pinned by `cargo xtask setup --browser`
//! into `.tools/node_modules/axe-core/`) injected into the page and run on one widget.

use std::path::PathBuf;

use fantoccini::Client;
use serde::Deserialize;

use crate::BoxError;

/// `axe-core@4.14.1`, installed by
/// `npm install --no-audit --no-fund --save-exact --prefix .tools axe-core@4.14.1`.
pub fn script_path() -> PathBuf {
    crate::workspace_root().join(".tools/node_modules/axe-core/axe.min.js")
}

/// One rule the page breaks, with the elements that break it.
#[derive(Debug, Clone, Deserialize)]
pub struct Violation {
    pub id: String,
    /// `minor`, `moderate`, `serious` or `critical`.
    pub impact: Option<String>,
    pub help: String,
    pub nodes: Vec<ViolationNode>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ViolationNode {
    pub target: serde_json::Value,
    #[serde(rename = "failureSummary")]
    pub failure_summary: Option<String>,
}

impl Violation {
    /// Serious and critical violations are the ones the issue forbids.
    pub fn is_serious(&self) -> bool {
        matches!(self.impact.as_deref(), Some("serious" | "critical"))
    }
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} ({}): {}",
            self.id,
            self.impact.as_deref().unwrap_or("?"),
            self.help
        )?;
        for node in &self.nodes {
            write!(f, "\n    at {}", node.target)?;
            if let Some(summary) = &node.failure_summary {
                write!(f, ": {}", summary.replace('\n', " "))?;
            }
        }
        Ok(())
    }
}

/// Runs axe on the element matching `selector` and returns every violation.
pub async fn audit(client: &Client, selector: &str) -> Result<Vec<Violation>, BoxError> {
    let loaded = client
        .execute("return typeof window.axe !== 'undefined';", vec![])
        .await?;
    if loaded.as_bool() != Some(true) {
        let path = script_path();
        let source = std::fs::read_to_string(&path).map_err(|e| {
            format!(
                "cannot read {}: {e}; run `cargo xtask setup --browser` \
                 (it installs axe-core from npm into .tools/)",
                path.display()
            )
        })?;
        // axe's UMD wrapper sets `window.axe` when no module loader is around.
        client.execute(&source, vec![]).await?;
    }
    let script = r#"
        const done = arguments[arguments.length - 1];
        const context = document.querySelector(arguments[0]);
        if (!context) { done(JSON.stringify({ error: 'no element matches ' + arguments[0] })); return; }
        axe.run(context, { resultTypes: ['violations'] })
            .then(r => done(JSON.stringify({ violations: r.violations })))
            .catch(e => done(JSON.stringify({ error: String(e) })));
    "#;
    let answer = client.execute_async(script, vec![selector.into()]).await?;
    let answer: serde_json::Value = serde_json::from_str(answer.as_str().unwrap_or("{}"))?;
    if let Some(error) = answer.get("error") {
        return Err(format!("axe could not run: {error}").into());
    }
    Ok(serde_json::from_value(answer["violations"].clone())?)
}

/// Fails with a readable list if the widget has serious or critical violations in `state`.
pub async fn assert_no_serious_violations(
    client: &Client,
    selector: &str,
    state: &str,
) -> Result<(), BoxError> {
    let serious: Vec<Violation> = audit(client, selector)
        .await?
        .into_iter()
        .filter(Violation::is_serious)
        .collect();
    if serious.is_empty() {
        return Ok(());
    }
    let list: Vec<String> = serious.iter().map(|v| format!("  - {v}")).collect();
    Err(format!(
        "axe found serious or critical violations {state}:\n{}",
        list.join("\n")
    )
    .into())
}

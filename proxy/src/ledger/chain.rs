//! The history's hash chain: each line carries `hash = SHA-256(previous hash ‖ line)`, the
//! line being its columns in a fixed order as a JSON array. Editing, removing or reordering
//! any line changes every hash after it, so finance can check an export offline and
//! `proxy verify-ledger` can name the first line that does not match.
//!
//! The chain is extended inside the write transaction that adds the lines (one writer, so
//! there is one chain and no fork), and read back as the raw stored text, not as decoded
//! values: a line edited to something the ledger never writes still hashes, and fails.

use sha2::{Digest, Sha256};

use super::sql::{Exec, FromRecord, Record, Sql};
use super::writer::WriteTx;

/// The `hash` a chain starts from.
pub const GENESIS: &str = "";

/// A history line as stored: exactly what is hashed.
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct Line {
    pub session_id: String,
    pub at: i64,
    pub kind: String,
    pub agent: Option<String>,
    pub attempt_id: Option<String>,
    pub refund_id: Option<String>,
    pub amount: Option<i64>,
    pub currency: Option<String>,
    pub state: Option<String>,
    pub detail: Option<String>,
    /// The requesting agent's role; written since migration 0008, hashed only when present.
    pub role: Option<String>,
}

impl Line {
    /// `SHA-256(previous ‖ canonical)` as lower-case hex.
    pub fn hash_after(&self, previous: &str) -> String {
        let mut hasher = Sha256::new();
        hasher.update(previous.as_bytes());
        hasher.update(self.canonical().as_bytes());
        hex::encode(hasher.finalize())
    }

    /// What is hashed: the columns in table order as a compact JSON array, `null` where
    /// empty — `["ps_1",1764000000000,"requested","alice",…]` — with the role appended only
    /// when there is one (so lines from before roles keep their hashes).
    pub fn canonical(&self) -> String {
        let line = (
            &self.session_id,
            self.at,
            &self.kind,
            &self.agent,
            &self.attempt_id,
            &self.refund_id,
            self.amount,
            &self.currency,
            &self.state,
            &self.detail,
        );
        // Plain values: serialising cannot fail.
        let mut columns = match serde_json::to_value(line) {
            Ok(serde_json::Value::Array(columns)) => columns,
            _ => Vec::new(),
        };
        if let Some(role) = &self.role {
            columns.push(role.as_str().into());
        }
        serde_json::Value::Array(columns).to_string()
    }
}

impl FromRecord for Line {
    fn from_record(r: &Record<'_>) -> Result<Self, sqlx::Error> {
        Ok(Self {
            session_id: r.text("session_id")?,
            at: r.int("at")?,
            kind: r.text("kind")?,
            agent: r.opt_text("agent")?,
            attempt_id: r.opt_text("attempt_id")?,
            refund_id: r.opt_text("refund_id")?,
            amount: r.opt_int("amount")?,
            currency: r.opt_text("currency")?,
            state: r.opt_text("state")?,
            detail: r.opt_text("detail")?,
            role: r.opt_text("role")?,
        })
    }
}

/// Seals lines written before the chain existed (`hash` NULL), in id order. Runs once, the
/// first time the ledger opens after the migration; never again, so a hash emptied by hand
/// later stays a broken line rather than being sealed anew. Only a ledger without a single
/// hashed line is sealed: the migration and the seal leave none unhashed, so unhashed lines
/// after hashed ones, with the seal's flag cleared, are someone laundering edited lines
/// through the seal. They are left broken, for `verify-ledger` to name, and logged.
pub(super) async fn seal_unhashed(tx: &mut WriteTx<'_>) -> Result<u64, sqlx::Error> {
    let sealed: bool = tx
        .exec()
        .fetch_one(&Sql::new("SELECT sealed FROM chain_sealed WHERE id = 1"))
        .await?;
    if sealed {
        return Ok(0);
    }
    tx.exec()
        .execute(&Sql::new(
            "UPDATE chain_sealed SET sealed = TRUE WHERE id = 1",
        ))
        .await?;
    let hashed: i64 = tx
        .exec()
        .fetch_one(&Sql::new(
            "SELECT COUNT(*) FROM history WHERE hash IS NOT NULL",
        ))
        .await?;
    if hashed > 0 {
        tracing::error!(
            hashed,
            "history lines without a hash beside hashed ones, and the chain's seal cleared: not sealed; `proxy verify-ledger` names the first"
        );
        return Ok(0);
    }
    let unsealed: Vec<(i64, Line)> = tx
        .exec()
        .fetch_all::<IdLine>(&Sql::new(format!(
            "SELECT id, {COLUMNS} FROM history WHERE hash IS NULL ORDER BY id"
        )))
        .await?
        .into_iter()
        .map(|l| (l.id, l.line))
        .collect();
    if unsealed.is_empty() {
        return Ok(0);
    }
    let first = unsealed[0].0;
    let mut previous = hash_before(tx.exec(), first).await?;
    for (id, line) in &unsealed {
        previous = line.hash_after(&previous);
        tx.exec()
            .execute(
                &Sql::new("UPDATE history SET hash = ? WHERE id = ?")
                    .bind(&previous)
                    .bind(*id),
            )
            .await?;
    }
    Ok(unsealed.len() as u64)
}

const COLUMNS: &str =
    "session_id, at, kind, agent, attempt_id, refund_id, amount, currency, state, detail, role";

/// The hash of the line before `id`, or the chain's start.
async fn hash_before(exec: Exec<'_>, id: i64) -> Result<String, sqlx::Error> {
    let hash: Option<Option<String>> = exec
        .fetch_optional(
            &Sql::new("SELECT hash FROM history WHERE id < ? ORDER BY id DESC LIMIT 1").bind(id),
        )
        .await?;
    Ok(hash.flatten().unwrap_or_else(|| GENESIS.to_owned()))
}

struct IdLine {
    id: i64,
    line: Line,
}

impl FromRecord for IdLine {
    fn from_record(r: &Record<'_>) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: r.int("id")?,
            line: Line::from_record(r)?,
        })
    }
}

struct StoredLine {
    id: i64,
    hash: Option<String>,
    line: Line,
}

impl FromRecord for StoredLine {
    fn from_record(r: &Record<'_>) -> Result<Self, sqlx::Error> {
        Ok(Self {
            id: r.int("id")?,
            hash: r.opt_text("hash")?,
            line: Line::from_record(r)?,
        })
    }
}

/// One line of `proxy export --chain`: everything needed to check it offline, alone
/// (`hash == sha256(prev ‖ line)`) and against its neighbours (`prev` is the line before's
/// `hash`).
#[derive(Debug, Clone, PartialEq, serde::Serialize)]
pub struct ChainEntry {
    pub id: i64,
    pub at: shared::Timestamp,
    pub session_id: String,
    /// The canonical line, exactly as hashed.
    pub line: String,
    pub prev: String,
    pub hash: Option<String>,
}

/// The chain's lines written in `[since, until)` (Unix ms), as one unbroken run of ids.
pub(super) async fn export(
    ledger: &super::Ledger,
    since: i64,
    until: i64,
) -> Result<Vec<ChainEntry>, sqlx::Error> {
    // By id, not by time: a run of ids is a run of the chain even where two transactions'
    // clocks interleave.
    let range: (Option<i64>, Option<i64>) = ledger
        .read()
        .fetch_one(
            &Sql::new(
                "SELECT (SELECT MIN(id) FROM history WHERE at >= ? AND at < ?),
                        (SELECT MAX(id) FROM history WHERE at >= ? AND at < ?)",
            )
            .bind(since)
            .bind(until)
            .bind(since)
            .bind(until),
        )
        .await?;
    let (Some(first), Some(last)) = range else {
        return Ok(Vec::new());
    };
    let mut prev = hash_before(ledger.read(), first).await?;
    let lines: Vec<StoredLine> = ledger
        .read()
        .fetch_all(
            &Sql::new(format!(
                "SELECT id, hash, {COLUMNS} FROM history WHERE id BETWEEN ? AND ? ORDER BY id"
            ))
            .bind(first)
            .bind(last),
        )
        .await?;
    Ok(lines
        .into_iter()
        .map(|stored| {
            let entry = ChainEntry {
                id: stored.id,
                at: shared::Timestamp::from_unix_millis(stored.line.at),
                session_id: stored.line.session_id.clone(),
                line: stored.line.canonical(),
                prev: std::mem::take(&mut prev),
                hash: stored.hash,
            };
            prev = entry.hash.clone().unwrap_or_default();
            entry
        })
        .collect())
}

/// What walking the chain found.
#[derive(Debug, Clone, PartialEq)]
pub struct ChainReport {
    /// Lines that matched their hash, from the first.
    pub verified: u64,
    /// The hash of the last line (the chain's head), if every line matched.
    pub head: String,
    /// The first line that does not match, if any.
    pub broken: Option<BrokenLine>,
}

/// A line whose stored hash is not the hash of its content after the line before it.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokenLine {
    pub id: i64,
    pub session_id: String,
    pub at: i64,
    pub stored: Option<String>,
    pub expected: String,
}

/// Walks the whole chain in id order, a page at a time.
pub(super) async fn verify(ledger: &super::Ledger) -> Result<ChainReport, sqlx::Error> {
    const PAGE: i64 = 1000;
    let mut previous = GENESIS.to_owned();
    let mut verified = 0;
    let mut after = 0;
    loop {
        let page: Vec<StoredLine> = ledger
            .read()
            .fetch_all(
                &Sql::new(format!(
                    "SELECT id, hash, {COLUMNS} FROM history WHERE id > ? ORDER BY id LIMIT ?"
                ))
                .bind(after)
                .bind(PAGE),
            )
            .await?;
        let Some(last) = page.last() else {
            return Ok(ChainReport {
                verified,
                head: previous,
                broken: None,
            });
        };
        after = last.id;
        for stored in page {
            let expected = stored.line.hash_after(&previous);
            if stored.hash.as_deref() != Some(expected.as_str()) {
                return Ok(ChainReport {
                    verified,
                    head: previous,
                    broken: Some(BrokenLine {
                        id: stored.id,
                        session_id: stored.line.session_id,
                        at: stored.line.at,
                        stored: stored.hash,
                        expected,
                    }),
                });
            }
            previous = expected;
            verified += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line(detail: &str) -> Line {
        Line {
            session_id: "ps_1".into(),
            at: 1,
            kind: "requested".into(),
            agent: Some("alice".into()),
            attempt_id: None,
            refund_id: None,
            amount: Some(500),
            currency: Some("usd".into()),
            state: Some("pending".into()),
            detail: Some(detail.into()),
            role: None,
        }
    }

    #[test]
    fn a_role_is_hashed_when_present_and_lines_without_one_keep_their_hash() {
        // The exact text hashed before roles existed.
        assert_eq!(
            line("a").canonical(),
            r#"["ps_1",1,"requested","alice",null,null,500,"usd","pending","a"]"#
        );
        let with_role = Line {
            role: Some("junior".into()),
            ..line("a")
        };
        assert_eq!(
            with_role.canonical(),
            r#"["ps_1",1,"requested","alice",null,null,500,"usd","pending","a","junior"]"#
        );
        assert_ne!(with_role.hash_after(GENESIS), line("a").hash_after(GENESIS));
    }

    #[test]
    fn each_hash_covers_the_line_and_everything_before_it() {
        let a = line("a").hash_after(GENESIS);
        assert_eq!(a.len(), 64);
        assert_eq!(a, line("a").hash_after(GENESIS), "deterministic");
        assert_ne!(a, line("b").hash_after(GENESIS), "the content counts");
        assert_ne!(
            line("b").hash_after(&a),
            line("b").hash_after(GENESIS),
            "the predecessor counts"
        );
        // Column boundaries count: moving text between fields is a different line.
        let mut shifted = line("");
        shifted.agent = Some("alicea".into());
        let mut original = line("a");
        original.agent = Some("alice".into());
        assert_ne!(shifted.hash_after(GENESIS), original.hash_after(GENESIS));
    }
}

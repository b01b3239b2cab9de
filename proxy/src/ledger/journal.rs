//! What happened, in order: events for live updates (replayed by `Last-Event-ID`), each
//! payment's history, every webhook received, and the CSV export for finance.

use super::sql::{insert_chunks, Engine, FromRecord, Record, Sql, ToArg};
use super::writer::WriteTx;
use super::{chain, now_ms, Ledger, RefundRow};
use shared::api::{ErrorCode, HistoryEntry, HistoryKind, RefundEvent, RefundState, RefundView};
use shared::{AttemptId, Currency, Money, RefundId, SessionId, Timestamp};

/// Keep at most this many forged or unsigned webhooks for audit.
const REJECTED_WEBHOOKS_KEPT: i64 = 1000;
/// Bytes of a rejected webhook's body kept for audit.
pub const REJECTED_BODY_KEPT: usize = 4096;

/// Rows per multi-row `INSERT`: well under SQLite's limit of bound parameters. Small in
/// tests, so they cross it.
pub(super) const ROWS_PER_INSERT: usize = if cfg!(test) { 3 } else { 256 };

/// A history line waiting for its transaction to write it.
struct History {
    at: i64,
    kind: HistoryKind,
    detail: Option<String>,
    row: RefundRow,
}

/// The history lines and events of one transaction, kept in order and written (see
/// [`statements`]) just before it commits: one statement per table instead of one per line,
/// which is most of what a batch of webhooks costs. Nothing reads these tables inside a
/// transaction, so writing them last changes nothing but the number of round trips.
///
/// [`statements`]: Entries::statements
#[derive(Default)]
pub(super) struct Entries {
    history: Vec<History>,
    events: Vec<(i64, RefundRow)>,
    /// The state each refund changed to (an event that changed none, a flag or a re-bind,
    /// is not one), counted once the commit holds (`proxy_refund_transitions_total`).
    entered: Vec<RefundState>,
}

impl History {
    /// The line exactly as it is stored and hashed.
    fn line(&self) -> chain::Line {
        chain::Line {
            session_id: self.row.session_id.clone(),
            at: self.at,
            kind: self.kind.as_str().to_owned(),
            agent: self.row.agent.clone(),
            attempt_id: self.row.attempt_id.as_ref().map(|id| id.to_string()),
            refund_id: self.row.refund_id.clone(),
            amount: Some(self.row.amount),
            currency: Some(self.row.currency.code()),
            state: Some(self.row.state.as_str().to_owned()),
            detail: self.detail.clone(),
            role: self.row.role.clone(),
        }
    }
}

impl Entries {
    pub(super) fn history(&mut self, row: &RefundRow, kind: HistoryKind, detail: Option<&str>) {
        self.history.push(History {
            at: now_ms(),
            kind,
            detail: detail.map(str::to_owned),
            row: row.clone(),
        });
    }

    /// Whether this transaction already holds a line of `kind` with `detail` for the refund
    /// `refund_id` (a line not yet written, so no query of `history` finds it).
    pub(super) fn has_history(&self, refund_id: &str, kind: HistoryKind, detail: &str) -> bool {
        self.history.iter().any(|line| {
            line.kind == kind
                && line.row.refund_id.as_deref() == Some(refund_id)
                && line.detail.as_deref() == Some(detail)
        })
    }

    /// An event announcing `row` as it now is; `was` its state before (none: a new row).
    pub(super) fn event(&mut self, row: &RefundRow, was: Option<RefundState>) {
        self.events.push((now_ms(), row.clone()));
        if was != Some(row.state) {
            self.entered.push(row.state);
        }
    }

    /// The states refunds entered in this transaction (see `entered`), taken out.
    pub(super) fn take_entered(&mut self) -> Vec<RefundState> {
        std::mem::take(&mut self.entered)
    }

    /// The statements that write everything inside the caller's transaction, for it to run
    /// just before its `COMMIT`; the events with their `seq`, in order.
    pub(super) async fn statements(
        self,
        tx: &mut WriteTx<'_>,
    ) -> Result<(Vec<Sql>, Vec<RefundEvent>), sqlx::Error> {
        if self.history.is_empty() && self.events.is_empty() {
            return Ok((Vec::new(), Vec::new()));
        }
        let mut statements = Vec::with_capacity(2);
        // The transaction holds the only writer (SQLite's connection, PostgreSQL's writers'
        // lock) until commit, so nobody else extends the chain or takes a `seq` meanwhile:
        // both are read here, in one statement, and the rows need no reading back.
        let tails = Tails::sql(tx.engine());
        let Tails { head, last_seq } = tx.exec().fetch_one(&tails).await?;
        // Each line as stored, chained to the one before it (see `chain`).
        let mut previous = head;
        let lines: Vec<(chain::Line, String)> = self
            .history
            .iter()
            .map(|h| {
                let line = h.line();
                previous = line.hash_after(&previous);
                (line, previous.clone())
            })
            .collect();
        for chunk in insert_chunks(tx.engine(), &lines, ROWS_PER_INSERT) {
            let insert = Sql::insert_rows(
                "INSERT INTO history (session_id, at, kind, agent, attempt_id, refund_id, amount, currency, state, detail, role, hash)",
                chunk.iter().map(|(line, hash)| {
                    vec![
                        line.session_id.as_str().to_arg(),
                        line.at.to_arg(),
                        line.kind.as_str().to_arg(),
                        (&line.agent).to_arg(),
                        (&line.attempt_id).to_arg(),
                        (&line.refund_id).to_arg(),
                        line.amount.to_arg(),
                        (&line.currency).to_arg(),
                        (&line.state).to_arg(),
                        (&line.detail).to_arg(),
                        (&line.role).to_arg(),
                        hash.to_arg(),
                    ]
                }),
            );
            statements.push(insert);
        }
        // Each event as it is stored (its row's JSON) and as it is published (seq still 0).
        let mut events = Vec::with_capacity(self.events.len());
        for (at, row) in &self.events {
            let refund = row.view();
            let json =
                serde_json::to_string(&refund).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
            let session_id = SessionId::parse(&row.session_id)
                .map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
            let event = RefundEvent {
                seq: 0,
                session_id,
                refund,
            };
            events.push((*at, json, event));
        }
        // Numbered in commit order.
        for (i, (_, _, event)) in events.iter_mut().enumerate() {
            let offset = i64::try_from(i + 1).map_err(|e| sqlx::Error::Protocol(e.to_string()))?;
            event.seq = last_seq + offset;
        }
        for chunk in insert_chunks(tx.engine(), &events, ROWS_PER_INSERT) {
            let insert = Sql::insert_rows(
                "INSERT INTO events (seq, session_id, at, refund)",
                chunk.iter().map(|(at, json, event)| {
                    vec![
                        event.seq.to_arg(),
                        event.session_id.as_str().to_arg(),
                        at.to_arg(),
                        json.to_arg(),
                    ]
                }),
            );
            statements.push(insert);
        }
        let events = events.into_iter().map(|(_, _, event)| event).collect();
        Ok((statements, events))
    }
}

/// Where a transaction's history lines and events continue from: the hash chain's head and
/// the last event's `seq`.
struct Tails {
    head: String,
    last_seq: i64,
}

impl Tails {
    fn sql(engine: Engine) -> Sql {
        Sql::new(match engine {
            Engine::Sqlite => {
                "SELECT (SELECT hash FROM history ORDER BY id DESC LIMIT 1) AS head,
                    COALESCE((SELECT seq FROM sqlite_sequence WHERE name = 'events'), 0) AS last_seq"
            }
            Engine::Postgres => {
                "SELECT (SELECT hash FROM history ORDER BY id DESC LIMIT 1) AS head,
                    (SELECT COALESCE(MAX(seq), 0) FROM events) AS last_seq"
            }
        })
    }
}

impl FromRecord for Tails {
    fn from_record(r: &Record<'_>) -> Result<Self, sqlx::Error> {
        Ok(Self {
            head: r
                .opt_text("head")?
                .unwrap_or_else(|| chain::GENESIS.to_owned()),
            last_seq: r.int("last_seq")?,
        })
    }
}

struct HistoryRow {
    at: i64,
    kind: HistoryKind,
    agent: Option<String>,
    attempt_id: Option<AttemptId>,
    refund_id: Option<String>,
    amount: Option<i64>,
    currency: Option<Currency>,
    state: Option<RefundState>,
    detail: Option<String>,
    role: Option<String>,
}

impl FromRecord for HistoryRow {
    fn from_record(r: &Record<'_>) -> Result<Self, sqlx::Error> {
        Ok(Self {
            at: r.int("at")?,
            kind: r.parsed("kind", str::parse)?,
            agent: r.opt_text("agent")?,
            attempt_id: r.opt_parsed("attempt_id", super::parse_attempt_id)?,
            refund_id: r.opt_text("refund_id")?,
            amount: r.opt_int("amount")?,
            currency: r.opt_parsed("currency", Currency::parse)?,
            state: r.opt_parsed("state", str::parse)?,
            detail: r.opt_text("detail")?,
            role: r.opt_text("role")?,
        })
    }
}

/// One line of `proxy export`.
#[derive(Debug, Clone)]
pub struct ExportRow(pub RefundRow);

impl ExportRow {
    pub const HEADER: &'static str = "created_at,session_id,attempt_id,refund_id,origin,agent,amount_minor,currency,amount,reason,note,state,error_code,idempotency_key,updated_at,finished_at";

    pub fn csv_line(&self) -> String {
        let r = &self.0;
        let at = |ms: i64| Timestamp::from_unix_millis(ms).to_string();
        let money = r.money();
        let fields = [
            at(r.created_at),
            r.session_id.clone(),
            r.attempt_id
                .as_ref()
                .map(|id| id.to_string())
                .unwrap_or_default(),
            r.refund_id.clone().unwrap_or_default(),
            r.origin.as_str().to_owned(),
            r.agent.clone().unwrap_or_default(),
            r.amount.to_string(),
            r.currency.code(),
            money.format_number(shared::Locale::En).replace(',', ""),
            r.reason
                .map(|reason| reason.as_str())
                .unwrap_or_default()
                .to_owned(),
            r.note
                .as_ref()
                .map(|note| note.to_string())
                .unwrap_or_default(),
            r.state.as_str().to_owned(),
            r.error_code
                .map(ErrorCode::name)
                .unwrap_or_default()
                .to_owned(),
            r.idempotency_key
                .as_ref()
                .map(|key| key.to_string())
                .unwrap_or_default(),
            at(r.updated_at),
            r.finished_at.map(at).unwrap_or_default(),
        ];
        csv_record(fields.iter().map(|f| spreadsheet_safe(f)))
    }
}

/// One CSV record (RFC 4180 quoting by the `csv` crate), without its line end.
fn csv_record(cells: impl IntoIterator<Item = String>) -> String {
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::Any(b'\n'))
        .from_writer(Vec::new());
    // Writing to memory cannot fail; the cells are `String`s, so the bytes are UTF-8.
    let _ = writer.write_record(cells);
    let bytes = writer.into_inner().unwrap_or_default();
    String::from_utf8(bytes)
        .unwrap_or_default()
        .trim_end_matches('\n')
        .to_owned()
}

/// A cell a spreadsheet shows as text: free text starting with `= + - @` (a formula to Excel
/// and LibreOffice) gets a leading `'`, numbers stay numbers; control characters (terminal
/// escapes, newlines, tabs, NUL), the line and paragraph separators and the bidirectional
/// overrides (which make a cell read otherwise than it is written: `U+202E`) are written as
/// `\u{…}`, so a cell is one line of plain text whatever an agent pasted into a note.
fn spreadsheet_safe(value: &str) -> String {
    let value = escape_controls(value);
    if value.starts_with(['=', '+', '-', '@']) && value.parse::<f64>().is_err() {
        format!("'{value}")
    } else {
        value
    }
}

fn escape_controls(value: &str) -> String {
    let escaped = |c: char| {
        c.is_control()
            || matches!(
                c,
                '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{061c}'
            )
            || ('\u{202a}'..='\u{202e}').contains(&c)
            || ('\u{2066}'..='\u{2069}').contains(&c)
    };
    if !value.chars().any(escaped) {
        return value.to_owned();
    }
    value
        .chars()
        .map(|c| {
            if escaped(c) {
                format!("\\u{{{:x}}}", u32::from(c))
            } else {
                c.to_string()
            }
        })
        .collect()
}

/// How many events one read of a payment's backlog returns at most (three in unit tests, so
/// that paging is tested without thousands of rows).
pub const EVENTS_PER_READ: usize = if cfg!(test) { 3 } else { 1_000 };

/// One read of a payment's events ([`Ledger::events_after`]).
#[derive(Debug)]
pub struct EventsPage {
    pub events: Vec<RefundEvent>,
    /// The last `seq` read (the one asked after, if none): the next page starts after it.
    pub through: i64,
    /// A full page was read: more may follow.
    pub more: bool,
}

impl Ledger {
    /// The `seq` of `session`'s newest event, 0 without any: a look-up's, so the stream the
    /// widget opens after it replays whatever came in between.
    pub async fn last_event_seq(&self, session: &SessionId) -> Result<i64, sqlx::Error> {
        let seq: Option<i64> = self
            .read()
            .fetch_optional(
                &Sql::new("SELECT seq FROM events WHERE session_id = ? ORDER BY seq DESC LIMIT 1")
                    .bind(session.as_str()),
            )
            .await?;
        Ok(seq.unwrap_or(0))
    }

    /// Events of `session` after `seq`, oldest first, at most [`EVENTS_PER_READ`]: a page,
    /// which says whether more may follow it.
    pub async fn events_after(
        &self,
        session: &SessionId,
        seq: i64,
    ) -> Result<EventsPage, sqlx::Error> {
        let rows: Vec<(i64, String)> = self
            .read()
            .fetch_all(
                &Sql::new(format!(
                    "SELECT seq, refund FROM events WHERE session_id = ? AND seq > ? \
                     ORDER BY seq LIMIT {EVENTS_PER_READ}"
                ))
                .bind(session.as_str())
                .bind(seq),
            )
            .await?;
        let more = rows.len() == EVENTS_PER_READ;
        let through = rows.last().map_or(seq, |(seq, _)| *seq);
        let events = rows
            .into_iter()
            .filter_map(|(seq, json)| {
                let refund: RefundView = serde_json::from_str(&json).ok()?;
                Some(RefundEvent {
                    seq,
                    session_id: session.clone(),
                    refund,
                })
            })
            .collect();
        Ok(EventsPage {
            events,
            through,
            more,
        })
    }

    /// The payment's timeline, oldest first.
    pub async fn history(&self, session: &SessionId) -> Result<Vec<HistoryEntry>, sqlx::Error> {
        let rows: Vec<HistoryRow> = self
            .read()
            .fetch_all(
                &Sql::new(
                    "SELECT at, kind, agent, attempt_id, refund_id, amount, currency, state, detail, role
                     FROM history WHERE session_id = ? ORDER BY id",
                )
                .bind(session.as_str()),
            )
            .await?;
        Ok(rows
            .into_iter()
            .map(|h| HistoryEntry {
                at: Timestamp::from_unix_millis(h.at),
                kind: h.kind,
                agent: h.agent,
                attempt_id: h.attempt_id,
                refund_id: h
                    .refund_id
                    .as_deref()
                    .and_then(|id| RefundId::parse(id).ok()),
                amount: match (h.amount, h.currency) {
                    (Some(amount), Some(currency)) => {
                        let amount = shared::money::from_stored(amount).unwrap_or(0);
                        Some(Money::new(amount, currency))
                    }
                    _ => None,
                },
                state: h.state,
                detail: h.detail,
                role: h.role,
            })
            .collect())
    }

    /// Keeps a webhook whose signature did not verify in the bounded audit table. It is
    /// never applied to any refund.
    pub async fn record_rejected_webhook(
        &self,
        raw_body: &[u8],
        reason: &str,
    ) -> Result<(), sqlx::Error> {
        let kept = &raw_body[..raw_body.len().min(REJECTED_BODY_KEPT)];
        let mut tx = self.write().await?;
        let result = async {
            tx.exec()
                .execute(
                    &Sql::new("INSERT INTO rejected_webhooks (received_at, verified, reason, raw_body) VALUES (?, FALSE, ?, ?)")
                        .bind(now_ms())
                        .bind(reason)
                        .bind(kept),
                )
                .await?;
            tx.exec()
                .execute(
                    &Sql::new(
                        "DELETE FROM rejected_webhooks WHERE id <= (SELECT MAX(id) FROM rejected_webhooks) - ?",
                    )
                    .bind(REJECTED_WEBHOOKS_KEPT),
                )
                .await?;
            Ok(())
        }
        .await;
        tx.finish(Entries::default(), result).await
    }

    /// Refunds created in `[since, until)` (Unix milliseconds), oldest first.
    pub async fn export(&self, since: i64, until: i64) -> Result<Vec<ExportRow>, sqlx::Error> {
        let rows: Vec<RefundRow> = self
            .read()
            .fetch_all(
                &Sql::new("SELECT * FROM refunds WHERE created_at >= ? AND created_at < ? ORDER BY created_at, key")
                    .bind(since)
                    .bind(until),
            )
            .await?;
        Ok(rows.into_iter().map(ExportRow).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formulas_are_defused_and_numbers_are_not() {
        for formula in ["=HYPERLINK(\"x\")", "+1+1", "-2+3", "@SUM(A1)", "=1"] {
            assert_eq!(spreadsheet_safe(formula), format!("'{formula}"));
        }
        for plain in ["-12.50", "+7", "1234", "alice", "a=b", ""] {
            assert_eq!(spreadsheet_safe(plain), plain);
        }
        // A tab or CR first (OWASP's other formula starters) is escaped, so it cannot start
        // a cell either.
        assert_eq!(spreadsheet_safe("\t=1"), r"\u{9}=1");
        assert_eq!(spreadsheet_safe("\r=1"), r"\u{d}=1");
    }

    #[test]
    fn records_are_quoted_where_csv_needs_it() {
        let cells = ["plain", "a,b", "say \"hi\"", ""].map(str::to_owned);
        assert_eq!(csv_record(cells), r#"plain,"a,b","say ""hi""","#);
    }
}

//! One text of each statement for both engines: the ledger writes its SQL once, with `?`
//! placeholders and plain values, and this module runs it on SQLite or PostgreSQL.
//!
//! - [`Sql`]: a statement and its arguments. Arguments are reduced to four column types
//!   (integer, text, boolean, bytes) when bound, so neither engine needs a type of ours.
//!   PostgreSQL gets `$1, $2, …` where SQLite reads `?`.
//! - [`Exec`]: where a statement runs: the write transaction's connection, or the readers,
//!   of either engine. SQLite's statements run through rusqlite on the caller's thread (see
//!   `sqlite`), PostgreSQL's through sqlx.
//! - [`Record`] and [`FromRecord`]: rows read back column by column and parsed into the
//!   ledger's types, the same way for both engines.

use std::borrow::Cow;

use shared::api::{ErrorCode, HistoryKind, RefundReason, RefundState};
use shared::{AttemptId, Currency, IdempotencyKey, Note};
use sqlx::postgres::{PgConnection, PgPool, PgRow, Postgres};
use sqlx::{ColumnIndex, Row};

use super::kinds::{Origin, WebhookOutcome};
use super::sqlite;

/// Which database the ledger is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Engine {
    Sqlite,
    Postgres,
}

/// One bound value, as the column stores it.
#[derive(Debug, Clone)]
pub(super) enum Arg {
    Int(Option<i64>),
    Text(Option<String>),
    Bool(bool),
    Bytes(Vec<u8>),
}

/// A statement with its arguments, in placeholder order. One statement: the writer's SQLite
/// connection prepares its text as one.
#[derive(Debug, Clone)]
pub(super) struct Sql {
    text: Cow<'static, str>,
    args: Vec<Arg>,
    /// Whether the prepared statement is cached on the connection (the default): a
    /// multi-row insert of a number of rows that does not recur is not (see
    /// [`recurring_chunks`]).
    persistent: bool,
}

impl Sql {
    pub(super) fn new(text: impl Into<Cow<'static, str>>) -> Self {
        Self {
            text: text.into(),
            args: Vec::new(),
            persistent: true,
        }
    }

    pub(super) fn bind(mut self, value: impl ToArg) -> Self {
        self.args.push(value.to_arg());
        self
    }

    /// This statement with `RETURNING *`: each row as stored, in no particular order.
    pub(super) fn returning_all(mut self) -> Self {
        let mut text = self.text.into_owned();
        text.push_str(" RETURNING *");
        self.text = text.into();
        self
    }

    /// Not cached on the connection. On PostgreSQL a cached (named) statement may, after a
    /// few runs, be planned once for any values (a generic plan), which for a look-up of a
    /// batch's many keys in a young, growing table can be a scan of the whole table; an
    /// unnamed one is planned for its values every time, as the look-up needs.
    pub(super) fn once(mut self) -> Self {
        self.persistent = false;
        self
    }

    /// `INSERT INTO table (columns) VALUES (…), (…)`: `head` is everything before `VALUES`,
    /// each row its values in column order.
    pub(super) fn insert_rows(head: &str, rows: impl IntoIterator<Item = Vec<Arg>>) -> Self {
        let rows: Vec<Vec<Arg>> = rows.into_iter().collect();
        let text = insert_text(head, rows.iter().map(Vec::len));
        let persistent = rows.len().is_power_of_two();
        let args: Vec<Arg> = rows.into_iter().flatten().collect();
        Self {
            text: text.into(),
            args,
            // Cached when its number of rows is one that recurs (see `recurring_chunks`);
            // any other would churn the cache.
            persistent,
        }
    }

    pub(super) fn text(&self) -> &str {
        &self.text
    }

    pub(super) fn args(&self) -> &[Arg] {
        &self.args
    }

    pub(super) fn is_persistent(&self) -> bool {
        self.persistent
    }

    /// The text for `engine`: PostgreSQL numbers its placeholders.
    fn text_for(&self, engine: Engine) -> Cow<'_, str> {
        match engine {
            Engine::Sqlite => Cow::Borrowed(&self.text),
            Engine::Postgres => Cow::Owned(numbered(&self.text)),
        }
    }
}

/// `items` in chunks for multi-row statements whose texts recur: each chunk's size a power of
/// two, at most `max`, largest first (13 rows: 8, 4 and 1). A multi-row insert's text depends
/// on its number of rows. With sizes like these a connection prepares each text once and
/// keeps it, one per power of two; with a batch's own size, SQLite parsed every batch's
/// statements anew, a tenth of the proxy's time during webhook ingest (perf, 2026-11-30).
/// Public for the benchmarks' storage floor, which writes its rows the same way.
pub fn recurring_chunks<T>(items: &[T], max: usize) -> impl Iterator<Item = &[T]> {
    assert!(max > 0, "a chunk holds at least one row");
    let mut rest = items;
    std::iter::from_fn(move || {
        let fits = rest.len().min(max);
        if fits == 0 {
            return None;
        }
        let size = 1 << fits.ilog2();
        let (chunk, tail) = rest.split_at(size);
        rest = tail;
        Some(chunk)
    })
}

/// How a transaction on `engine` splits rows into multi-row inserts of at most `max` rows:
/// on SQLite in [`recurring_chunks`], whose statements a connection keeps prepared; on
/// PostgreSQL, where each statement is a round trip to the server, in as few as `max` allows.
pub(super) fn insert_chunks<T>(engine: Engine, items: &[T], max: usize) -> Vec<&[T]> {
    match engine {
        Engine::Sqlite => recurring_chunks(items, max).collect(),
        Engine::Postgres => items.chunks(max).collect(),
    }
}

/// `head VALUES (?, ?), (?, ?, ?)`: a multi-row insert's text, one `?` per value of each row
/// (`widths`). Public for the benchmarks' storage floor, which inserts its rows the same way.
pub fn insert_text(head: &str, widths: impl IntoIterator<Item = usize>) -> String {
    let rows: Vec<String> = widths
        .into_iter()
        .map(|width| format!("({})", vec!["?"; width].join(", ")))
        .collect();
    format!("{head} VALUES {}", rows.join(", "))
}

/// `?` → `$1`, `$2`, … outside quoted text.
fn numbered(text: &str) -> String {
    let mut out = String::with_capacity(text.len() + 16);
    let mut n = 0;
    let mut quoted = false;
    for c in text.chars() {
        match c {
            '\'' => {
                quoted = !quoted;
                out.push(c);
            }
            '?' if !quoted => {
                n += 1;
                out.push('$');
                out.push_str(&n.to_string());
            }
            _ => out.push(c),
        }
    }
    out
}

/// A value that binds as one of [`Arg`]'s column types.
pub(super) trait ToArg {
    fn to_arg(self) -> Arg;
}

impl ToArg for Arg {
    fn to_arg(self) -> Arg {
        self
    }
}

impl ToArg for i64 {
    fn to_arg(self) -> Arg {
        Arg::Int(Some(self))
    }
}

impl ToArg for Option<i64> {
    fn to_arg(self) -> Arg {
        Arg::Int(self)
    }
}

impl ToArg for bool {
    fn to_arg(self) -> Arg {
        Arg::Bool(self)
    }
}

impl ToArg for &str {
    fn to_arg(self) -> Arg {
        Arg::Text(Some(self.to_owned()))
    }
}

impl ToArg for String {
    fn to_arg(self) -> Arg {
        Arg::Text(Some(self))
    }
}

impl ToArg for &String {
    fn to_arg(self) -> Arg {
        Arg::Text(Some(self.clone()))
    }
}

impl ToArg for Option<&str> {
    fn to_arg(self) -> Arg {
        Arg::Text(self.map(str::to_owned))
    }
}

impl ToArg for Option<String> {
    fn to_arg(self) -> Arg {
        Arg::Text(self)
    }
}

impl ToArg for &Option<String> {
    fn to_arg(self) -> Arg {
        Arg::Text(self.clone())
    }
}

impl ToArg for &[u8] {
    fn to_arg(self) -> Arg {
        Arg::Bytes(self.to_vec())
    }
}

impl ToArg for &Vec<u8> {
    fn to_arg(self) -> Arg {
        Arg::Bytes(self.clone())
    }
}

/// The ledger's closed vocabularies and identifiers are stored as their text.
macro_rules! as_text {
    ($($ty:ty => |$v:ident| $text:expr;)*) => {$(
        impl ToArg for $ty {
            fn to_arg(self) -> Arg {
                let $v = self;
                Arg::Text(Some($text))
            }
        }
    )*};
}

as_text! {
    RefundState => |s| s.as_str().to_owned();
    RefundReason => |r| r.as_str().to_owned();
    HistoryKind => |k| k.as_str().to_owned();
    Origin => |o| o.as_str().to_owned();
    WebhookOutcome => |o| o.as_str().to_owned();
    Currency => |c| c.code();
    &AttemptId => |id| id.to_string();
    &IdempotencyKey => |key| key.to_string();
}

impl ToArg for Option<ErrorCode> {
    fn to_arg(self) -> Arg {
        Arg::Text(self.map(|code| code.name().to_owned()))
    }
}

impl ToArg for Option<RefundReason> {
    fn to_arg(self) -> Arg {
        Arg::Text(self.map(|reason| reason.as_str().to_owned()))
    }
}

impl ToArg for &Option<Note> {
    fn to_arg(self) -> Arg {
        Arg::Text(self.as_ref().map(|note| note.as_str().to_owned()))
    }
}

/// Where a statement runs.
pub(super) enum Exec<'e> {
    /// The SQLite writer's connection, inside its write transaction.
    SqliteWriter(&'e mut rusqlite::Connection),
    /// SQLite's read-only connections, outside any transaction.
    SqliteReaders(&'e sqlite::Readers),
    PgConn(&'e mut PgConnection),
    PgPool(&'e PgPool),
}

fn pg_query<'q>(
    text: &'q str,
    sql: &'q Sql,
) -> sqlx::query::Query<'q, Postgres, sqlx::postgres::PgArguments> {
    sql.args
        .iter()
        .fold(sqlx::query(text), |query, arg| match arg {
            Arg::Int(v) => query.bind(*v),
            Arg::Text(v) => query.bind(v.as_deref()),
            Arg::Bool(v) => query.bind(*v),
            Arg::Bytes(v) => query.bind(v.as_slice()),
        })
        .persistent(sql.persistent)
}

/// What a statement gave back: SQLite's rows (both of its connections run statements on this
/// thread, see `sqlite`), or sqlx's from PostgreSQL.
enum Ran {
    Sqlite(Vec<sqlite::Row>, u64),
    Pg(Vec<PgRow>, u64),
}

impl Ran {
    fn records<T: FromRecord>(&self) -> impl Iterator<Item = Result<T, sqlx::Error>> + '_ {
        let records: Box<dyn Iterator<Item = Record<'_>>> = match self {
            Ran::Sqlite(rows, _) => Box::new(rows.iter().map(Record::Sqlite)),
            Ran::Pg(rows, _) => Box::new(rows.iter().map(Record::Pg)),
        };
        records.map(|record| T::from_record(&record))
    }

    fn changed(&self) -> u64 {
        match self {
            Ran::Sqlite(_, changed) | Ran::Pg(_, changed) => *changed,
        }
    }
}

impl Exec<'_> {
    /// Runs `sql`; `rows` says whether its rows are wanted (PostgreSQL counts the rows changed
    /// only when it does not fetch them).
    async fn run(self, sql: &Sql, rows: bool) -> Result<Ran, sqlx::Error> {
        macro_rules! on_pg {
            ($on:expr) => {{
                let text = sql.text_for(Engine::Postgres);
                let query = pg_query(&text, sql);
                if rows {
                    Ran::Pg(query.fetch_all($on).await?, 0)
                } else {
                    Ran::Pg(Vec::new(), query.execute($on).await?.rows_affected())
                }
            }};
        }
        Ok(match self {
            Exec::SqliteWriter(conn) => {
                let (rows, changed) = sqlite::run(conn, sql)?;
                Ran::Sqlite(rows, changed)
            }
            Exec::SqliteReaders(readers) => Ran::Sqlite(readers.run(sql).await?, 0),
            Exec::PgConn(conn) => on_pg!(conn),
            Exec::PgPool(pool) => on_pg!(pool),
        })
    }

    pub(super) async fn fetch_all<T: FromRecord>(self, sql: &Sql) -> Result<Vec<T>, sqlx::Error> {
        self.run(sql, true).await?.records().collect()
    }

    pub(super) async fn fetch_optional<T: FromRecord>(
        self,
        sql: &Sql,
    ) -> Result<Option<T>, sqlx::Error> {
        self.run(sql, true).await?.records().next().transpose()
    }

    pub(super) async fn fetch_one<T: FromRecord>(self, sql: &Sql) -> Result<T, sqlx::Error> {
        self.fetch_optional(sql)
            .await?
            .ok_or(sqlx::Error::RowNotFound)
    }

    /// Rows affected.
    pub(super) async fn execute(self, sql: &Sql) -> Result<u64, sqlx::Error> {
        Ok(self.run(sql, false).await?.changed())
    }
}

/// A row of either engine, read by column.
pub(super) enum Record<'r> {
    Sqlite(&'r sqlite::Row),
    Pg(&'r PgRow),
}

/// A column name or position, for either engine.
pub(super) trait Column: ColumnIndex<PgRow> + Copy + std::fmt::Display {
    /// Its position among `names`, the columns of a SQLite row.
    fn position(self, names: &[String]) -> Option<usize>;
}

impl Column for usize {
    fn position(self, names: &[String]) -> Option<usize> {
        (self < names.len()).then_some(self)
    }
}

impl Column for &str {
    fn position(self, names: &[String]) -> Option<usize> {
        names.iter().position(|name| name == self)
    }
}

macro_rules! getter {
    ($name:ident, $ty:ty) => {
        pub(super) fn $name(&self, column: impl Column) -> Result<$ty, sqlx::Error> {
            match self {
                Record::Sqlite(row) => sqlite_value(row, column),
                Record::Pg(row) => row.try_get(column),
            }
        }
    };
}

/// A column of a SQLite row, as one of the ledger's column types.
fn sqlite_value<T: FromValue>(row: &sqlite::Row, column: impl Column) -> Result<T, sqlx::Error> {
    let value = column
        .position(row.names())
        .and_then(|i| row.value(i))
        .ok_or_else(|| sqlx::Error::ColumnNotFound(column.to_string()))?;
    T::from_value(value).ok_or_else(|| sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: format!("{value:?} is not {}", std::any::type_name::<T>()).into(),
    })
}

/// What a column of a SQLite row holds, read as one of the ledger's column types.
trait FromValue: Sized {
    fn from_value(value: &rusqlite::types::Value) -> Option<Self>;
}

impl FromValue for i64 {
    fn from_value(value: &rusqlite::types::Value) -> Option<Self> {
        match value {
            rusqlite::types::Value::Integer(v) => Some(*v),
            _ => None,
        }
    }
}

impl FromValue for String {
    fn from_value(value: &rusqlite::types::Value) -> Option<Self> {
        match value {
            rusqlite::types::Value::Text(v) => Some(v.clone()),
            _ => None,
        }
    }
}

impl FromValue for bool {
    fn from_value(value: &rusqlite::types::Value) -> Option<Self> {
        i64::from_value(value).map(|v| v != 0)
    }
}

impl<T: FromValue> FromValue for Option<T> {
    fn from_value(value: &rusqlite::types::Value) -> Option<Self> {
        match value {
            rusqlite::types::Value::Null => Some(None),
            other => T::from_value(other).map(Some),
        }
    }
}

impl Record<'_> {
    getter!(int, i64);
    getter!(opt_int, Option<i64>);
    getter!(text, String);
    getter!(opt_text, Option<String>);
    getter!(bool, bool);

    /// A text column parsed into one of the ledger's types; text it would never write is
    /// a decode error naming the column.
    pub(super) fn parsed<T, E: std::fmt::Display>(
        &self,
        column: impl Column,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<T, sqlx::Error> {
        let text = self.text(column)?;
        parse(&text).map_err(|e| decode_error(column, &text, e))
    }

    /// As [`parsed`](Self::parsed), `None` for NULL.
    pub(super) fn opt_parsed<T, E: std::fmt::Display>(
        &self,
        column: impl Column,
        parse: impl FnOnce(&str) -> Result<T, E>,
    ) -> Result<Option<T>, sqlx::Error> {
        match self.opt_text(column)? {
            Some(text) => parse(&text)
                .map(Some)
                .map_err(|e| decode_error(column, &text, e)),
            None => Ok(None),
        }
    }
}

fn decode_error(
    column: impl std::fmt::Display,
    text: &str,
    e: impl std::fmt::Display,
) -> sqlx::Error {
    sqlx::Error::ColumnDecode {
        index: column.to_string(),
        source: format!("`{text}`: {e}").into(),
    }
}

/// Built from one row.
pub(super) trait FromRecord: Sized {
    fn from_record(record: &Record<'_>) -> Result<Self, sqlx::Error>;
}

/// A single column read as one value.
macro_rules! scalar {
    ($($ty:ty => $get:ident),* $(,)?) => {$(
        impl FromRecord for $ty {
            fn from_record(record: &Record<'_>) -> Result<Self, sqlx::Error> {
                record.$get(0)
            }
        }
    )*};
}

scalar! {
    i64 => int,
    Option<i64> => opt_int,
    String => text,
    Option<String> => opt_text,
    bool => bool,
}

impl FromRecord for (i64, String) {
    fn from_record(record: &Record<'_>) -> Result<Self, sqlx::Error> {
        Ok((record.int(0)?, record.text(1)?))
    }
}

impl FromRecord for (i64, String, String) {
    fn from_record(record: &Record<'_>) -> Result<Self, sqlx::Error> {
        Ok((record.int(0)?, record.text(1)?, record.text(2)?))
    }
}

impl FromRecord for (i64, i64) {
    fn from_record(record: &Record<'_>) -> Result<Self, sqlx::Error> {
        Ok((record.int(0)?, record.int(1)?))
    }
}

impl FromRecord for (Option<i64>, Option<i64>) {
    fn from_record(record: &Record<'_>) -> Result<Self, sqlx::Error> {
        Ok((record.opt_int(0)?, record.opt_int(1)?))
    }
}

#[cfg(test)]
mod tests {
    use super::{insert_text, numbered, recurring_chunks};

    #[test]
    fn rows_are_chunked_in_powers_of_two_up_to_the_limit_in_order() {
        let sizes = |n: usize, max: usize| {
            let rows: Vec<usize> = (0..n).collect();
            let chunks: Vec<&[usize]> = recurring_chunks(&rows, max).collect();
            assert_eq!(chunks.concat(), rows, "every row once, in order");
            chunks.iter().map(|c| c.len()).collect::<Vec<_>>()
        };
        assert_eq!(sizes(0, 256), Vec::<usize>::new());
        assert_eq!(sizes(1, 256), [1]);
        assert_eq!(sizes(13, 256), [8, 4, 1]);
        assert_eq!(sizes(64, 256), [64]);
        assert_eq!(sizes(600, 256), [256, 256, 64, 16, 8]);
        // A limit that is not a power of two is never passed.
        assert_eq!(sizes(7, 3), [2, 2, 2, 1]);
    }

    #[test]
    fn a_multi_row_insert_has_one_placeholder_per_value_of_each_row() {
        assert_eq!(
            insert_text("INSERT INTO t (a, b)", [2, 2, 2]),
            "INSERT INTO t (a, b) VALUES (?, ?), (?, ?), (?, ?)"
        );
    }

    #[test]
    fn placeholders_are_numbered_outside_quoted_text() {
        assert_eq!(
            numbered("SELECT * FROM t WHERE a = ? AND b = '?' AND c IN (?, ?)"),
            "SELECT * FROM t WHERE a = $1 AND b = '?' AND c IN ($2, $3)"
        );
    }
}

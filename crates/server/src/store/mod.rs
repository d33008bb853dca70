//! The storage facade: one synchronous SQL API over the embedded SQLite file (the default) and
//! PostgreSQL (`database_url`), so each query and each decision is written once. Statements use
//! SQLite's `?N` placeholders and SQL both databases speak; PostgreSQL gets them as `$N`.
//!
//! A [`Conn`] is one decision's connection: on SQLite the one connection's lock (the single
//! writer makes a check-and-update atomic), on PostgreSQL a pooled connection, where a decision
//! that reads before it writes takes a row lock or [`Conn::serialise`] in a transaction.

mod pg;
pub mod schema;
mod value;

pub use pg::Session;
pub use value::{FromValue, ToValue, Value};

use std::sync::{Mutex, MutexGuard};

/// A store result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What the store can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A query that must return a row returned none.
    #[error("no row")]
    NoRows,
    /// SQLite refused or failed.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL refused or failed.
    #[error("postgresql: {}", pg_message(.0))]
    Postgres(#[from] tokio_postgres::Error),
    /// No PostgreSQL connection could be had in time.
    #[error("postgresql: no connection: {0}")]
    Pool(String),
    /// A transaction was begun inside another (a bug: use [`Conn::atomically`]).
    #[error("a transaction inside a transaction")]
    Nested,
    /// The database's address or options are unusable.
    #[error("database_url: {0}")]
    Config(String),
    /// The store's own thread or runtime could not start.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The database was made by a newer build.
    #[error("the database is at schema version {found}, newer than this server's {known}: run the newer server")]
    NewerSchema {
        /// The database's version.
        found: i64,
        /// This build's newest.
        known: i64,
    },
    /// A stored value is not of the type asked for.
    #[error("column {column}: {message}")]
    Conversion {
        /// The column's index.
        column: usize,
        /// What was wrong.
        message: String,
    },
}

impl Error {
    /// A stored value (column `column`) that could not be parsed as what it should be.
    pub fn conversion(column: usize, e: impl std::fmt::Display) -> Self {
        Error::Conversion { column, message: e.to_string() }
    }

    /// Whether a constraint refused the write (a unique name taken, a missing reference, a
    /// trigger): the caller's conflict, not the server's fault.
    pub fn is_constraint_violation(&self) -> bool {
        match self {
            Error::Sqlite(rusqlite::Error::SqliteFailure(f, _)) => f.code == rusqlite::ErrorCode::ConstraintViolation,
            // SQLSTATE class 23: integrity constraint violation.
            Error::Postgres(e) => e.code().is_some_and(|c| c.code().starts_with("23")),
            _ => false,
        }
    }
}

/// The server's own words for a refusal (tokio-postgres's Display says only "db error").
fn pg_message(e: &tokio_postgres::Error) -> String {
    match e.as_db_error() {
        Some(db) => format!("{}: {} ({})", db.severity(), db.message(), db.code().code()),
        None => e.to_string(),
    }
}

/// `Ok(None)` for a query that found no row.
pub trait OptionalExtension<T> {
    /// The row, if there was one.
    ///
    /// # Errors
    /// Any other error.
    fn optional(self) -> Result<Option<T>>;
}

impl<T> OptionalExtension<T> for Result<T> {
    fn optional(self) -> Result<Option<T>> {
        match self {
            Ok(v) => Ok(Some(v)),
            Err(Error::NoRows) => Ok(None),
            Err(e) => Err(e),
        }
    }
}

/// A statement's parameters: `params![a, b]`, or `[]` for none.
pub trait Params {
    /// The parameters in order.
    fn values(&self) -> Vec<Value<'_>>;
}

impl Params for &[&dyn ToValue] {
    fn values(&self) -> Vec<Value<'_>> {
        self.iter().map(|v| v.to_value()).collect()
    }
}

/// `[]`: no parameters.
impl Params for [&dyn ToValue; 0] {
    fn values(&self) -> Vec<Value<'_>> {
        Vec::new()
    }
}

// `[a, b]` of one type (a separate impl per length, so `[]` alone still infers its type).
macro_rules! array_params {
    ($($n:literal),*) => {$(
        impl<T: ToValue> Params for [T; $n] {
            fn values(&self) -> Vec<Value<'_>> {
                self.iter().map(ToValue::to_value).collect()
            }
        }
    )*};
}
array_params!(1, 2, 3, 4, 5, 6, 7, 8);

/// The parameters of a statement, in order: `params![id, name]`.
#[macro_export]
macro_rules! params {
    () => { &[] as &[&dyn $crate::store::ToValue] };
    ($($p:expr),+ $(,)?) => { &[$(&$p as &dyn $crate::store::ToValue),+] as &[&dyn $crate::store::ToValue] };
}
pub use crate::params;

/// Which database a store is on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Dialect {
    /// The embedded file.
    Sqlite,
    /// A PostgreSQL server.
    Postgres,
}

/// The database, shared by every handler, with the keys `K` its users seal and link under
/// (the server's: crate::conn).
pub struct Store<K> {
    backend: Backend,
    keys: K,
}

enum Backend {
    Sqlite(Mutex<rusqlite::Connection>),
    Postgres(pg::Pg),
}

impl<K> std::fmt::Debug for Store<K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("dialect", &self.dialect()).finish_non_exhaustive()
    }
}

impl<K> Store<K> {
    /// A store on an open SQLite connection, with `keys`.
    pub fn sqlite(conn: rusqlite::Connection, keys: K) -> Self {
        Store { backend: Backend::Sqlite(Mutex::new(conn)), keys }
    }

    /// A store on the PostgreSQL database at `url` (a libpq connection string or URL), with
    /// at most `max_connections` connections.
    ///
    /// # Errors
    /// The URL is invalid or names a remote host (TLS to PostgreSQL is not built), or the
    /// first connection fails.
    pub fn postgres(url: &str, max_connections: usize, keys: K) -> Result<Self> {
        Self::postgres_with(url, max_connections, None, keys)
    }

    /// As [`Store::postgres`]; with `ca` (PEM certificates), every connection uses TLS and
    /// verifies the server's certificate against them and the host name in `url`, and then the
    /// host may be remote.
    ///
    /// # Errors
    /// As [`Store::postgres`], or `ca` holds no certificate, or the TLS handshake fails.
    pub fn postgres_with(url: &str, max_connections: usize, ca: Option<&[u8]>, keys: K) -> Result<Self> {
        Ok(Store { backend: Backend::Postgres(pg::Pg::connect(url, max_connections, ca)?), keys })
    }

    /// The keys its users seal and link under.
    pub fn keys(&self) -> &K {
        &self.keys
    }

    /// Which database this is.
    pub fn dialect(&self) -> Dialect {
        match self.backend {
            Backend::Sqlite(_) => Dialect::Sqlite,
            Backend::Postgres(_) => Dialect::Postgres,
        }
    }

    /// On PostgreSQL, a session of its own listening on `channel` and holding the session
    /// advisory lock `lock` until it is dropped (see [`Session`]); `None` on SQLite.
    ///
    /// # Errors
    /// The channel name is not a lower-case identifier, or the session could not be opened.
    pub fn session(&self, channel: &str, lock: (i32, i32)) -> Result<Option<Session>> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(None),
            Backend::Postgres(p) => p.session(channel, lock).map(Some),
        }
    }

    /// Runs `f` on the PostgreSQL connections' runtime; `false` (and `f` dropped) on SQLite.
    pub fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) -> bool {
        match &self.backend {
            Backend::Sqlite(_) => false,
            Backend::Postgres(p) => {
                p.spawn(f);
                true
            }
        }
    }

    /// A connection for one decision.
    pub fn conn(&self) -> Conn<'_, K> {
        let inner = match &self.backend {
            // A panic mid-transaction rolled the transaction back; the connection stays usable.
            Backend::Sqlite(m) => Inner::Sqlite(m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)),
            Backend::Postgres(p) => Inner::Postgres(Box::new(p.lazy())),
        };
        Conn { inner, keys: &self.keys, in_tx: std::cell::Cell::new(false) }
    }
}

/// One decision's connection (see the module's doc).
pub struct Conn<'a, K> {
    inner: Inner<'a>,
    keys: &'a K,
    in_tx: std::cell::Cell<bool>,
}

enum Inner<'a> {
    Sqlite(MutexGuard<'a, rusqlite::Connection>),
    // Boxed: a pooled connection is large beside a lock guard.
    Postgres(Box<pg::Lazy<'a>>),
}

impl<K> std::fmt::Debug for Conn<'_, K> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Conn").field("dialect", &self.dialect()).finish_non_exhaustive()
    }
}

/// Locks a decision takes on PostgreSQL (SQLite's single writer already serialises them).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Serial {
    /// Appending to the audit chain: each row links the one before.
    AuditChain,
    /// Bringing the schema up to date.
    Migrations,
}

impl<'a, K> Conn<'a, K> {
    /// The store's keys (the server's: sealing, the audit chain's links).
    pub fn keys(&self) -> &K {
        self.keys
    }

    /// A PostgreSQL connection in an unknown state is closed rather than pooled again.
    fn discard(&self) {
        if let Inner::Postgres(p) = &self.inner {
            p.discard();
        }
    }

    /// Which database this is.
    pub fn dialect(&self) -> Dialect {
        match self.inner {
            Inner::Sqlite(_) => Dialect::Sqlite,
            Inner::Postgres(_) => Dialect::Postgres,
        }
    }

    /// The SQLite connection itself (SQLite-only maintenance and tests), if this is one.
    pub fn sqlite(&self) -> Option<&rusqlite::Connection> {
        match &self.inner {
            Inner::Sqlite(c) => Some(c),
            Inner::Postgres(_) => None,
        }
    }

    /// Runs one statement; the number of rows it changed.
    ///
    /// # Errors
    /// The database refused it.
    pub fn execute(&self, sql: &str, params: impl Params) -> Result<usize> {
        let values = params.values();
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute(sql, rusqlite::params_from_iter(values.iter()))?),
            Inner::Postgres(p) => p.execute(sql, &values),
        }
    }

    /// Runs statements with no parameters (schema, maintenance).
    ///
    /// # Errors
    /// The database refused one.
    pub fn execute_batch(&self, sql: &str) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch(sql)?),
            Inner::Postgres(p) => p.batch(sql),
        }
    }

    /// The first row of a query, through `f`; [`Error::NoRows`] if there is none.
    ///
    /// # Errors
    /// The database refused it, there was no row, or `f` failed.
    pub fn query_row<T>(&self, sql: &str, params: impl Params, f: impl FnOnce(&Row<'_>) -> Result<T>) -> Result<T> {
        let values = params.values();
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
                match rows.next()? {
                    Some(r) => f(&Row(RowInner::Sqlite(r))),
                    None => Err(Error::NoRows),
                }
            }
            Inner::Postgres(p) => {
                let rows = p.query(sql, &values)?;
                rows.first().map_or(Err(Error::NoRows), |r| f(&Row(RowInner::Postgres(r))))
            }
        }
    }

    /// Every row of a query, through `f`.
    ///
    /// # Errors
    /// The database refused it, or `f` failed on a row.
    pub fn query_vec<T>(
        &self,
        sql: &str,
        params: impl Params,
        mut f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<Vec<T>> {
        let values = params.values();
        match &self.inner {
            Inner::Sqlite(c) => {
                let mut stmt = c.prepare(sql)?;
                let mut rows = stmt.query(rusqlite::params_from_iter(values.iter()))?;
                let mut out = Vec::new();
                while let Some(r) = rows.next()? {
                    out.push(f(&Row(RowInner::Sqlite(r)))?);
                }
                Ok(out)
            }
            Inner::Postgres(p) => p.query(sql, &values)?.iter().map(|r| f(&Row(RowInner::Postgres(r)))).collect(),
        }
    }

    /// A statement to run with [`Statement::query_map`] or [`Statement::exists`].
    ///
    /// # Errors
    /// None yet: the statement is checked when it runs (kept fallible like rusqlite's).
    pub fn prepare(&self, sql: &str) -> Result<Statement<'_, 'a, K>> {
        Ok(Statement { conn: self, sql: sql.to_owned() })
    }

    /// Begins a transaction; it rolls back when dropped uncommitted.
    ///
    /// # Errors
    /// The database refused it.
    pub fn transaction(&self) -> Result<Tx<'_, 'a, K>> {
        if self.in_tx.get() {
            return Err(Error::Nested);
        }
        self.execute_batch("BEGIN")?;
        self.in_tx.set(true);
        Ok(Tx { conn: self, done: false })
    }

    /// Runs `f` in a transaction: the caller's if one is open, else one of its own, committed
    /// when `f` succeeds (rolled back when it fails).
    ///
    /// # Errors
    /// `f`'s error, or the database's.
    pub fn atomically<T, E: From<Error>>(&self, f: impl FnOnce(&Conn<'a, K>) -> Result<T, E>) -> Result<T, E> {
        if self.in_tx.get() {
            return f(self);
        }
        let tx = self.transaction()?;
        let out = f(&tx)?;
        tx.commit()?;
        Ok(out)
    }

    /// Within a transaction on PostgreSQL, waits for and holds `what`'s lock until the
    /// transaction ends, so decisions on it run one at a time across every instance. (SQLite's
    /// single writer already does that.)
    ///
    /// # Errors
    /// The database refused it.
    pub fn serialise(&self, what: Serial) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(_) => Ok(()),
            Inner::Postgres(p) => {
                debug_assert!(self.in_tx.get(), "an advisory lock outside a transaction ends with its statement");
                let key: i64 = match what {
                    Serial::AuditChain => 0x5c_a0d1,
                    Serial::Migrations => 0x5c_5c4e,
                };
                p.execute("SELECT pg_advisory_xact_lock(?1)", &[Value::Int(key)]).map(drop)
            }
        }
    }
}

impl<K> Conn<'_, K> {
    /// Within a transaction on PostgreSQL, locks the rows of `table` whose `column` is `value`
    /// until the transaction ends, so a decision that reads them before writing is not raced by
    /// another connection or instance. (SQLite's single writer already serialises decisions.)
    ///
    /// # Errors
    /// The database refused it.
    pub fn lock_rows(&self, table: &'static str, column: &'static str, value: impl ToValue) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(_) => Ok(()),
            Inner::Postgres(p) => {
                debug_assert!(self.in_tx.get(), "a row lock outside a transaction ends with its statement");
                // NO KEY UPDATE: rows that only reference this one (sessions, bookings) may still be added.
                p.query(&format!("SELECT 1 FROM {table} WHERE {column} = ?1 FOR NO KEY UPDATE"), &[value.to_value()])
                    .map(drop)
            }
        }
    }

    /// Makes the bytes of rows deleted or overwritten in `table` leave the database's files (a
    /// shredded secret): SQLite, which zeroes deleted content (`secure_delete`), is checkpointed
    /// and vacuumed; PostgreSQL's table is rewritten (VACUUM FULL), leaving its old versions
    /// only in its write-ahead log, archives and backups (docs/architecture.md).
    ///
    /// # Errors
    /// The database refused it.
    pub fn purge_dead_rows(&self, table: &'static str) -> Result<()> {
        match &self.inner {
            Inner::Sqlite(c) => Ok(c.execute_batch("PRAGMA wal_checkpoint(TRUNCATE); VACUUM;")?),
            Inner::Postgres(p) => {
                self.wait_for_older_transactions()?;
                p.batch(&format!("VACUUM (FULL) {table}"))
            }
        }
    }

    /// Waits, at most [`PURGE_WAIT`], until no transaction begun before now runs anywhere in the
    /// cluster and no snapshot taken before now is held in this database: VACUUM FULL copies a
    /// dead row version any of them could still see, and the shredded secret stayed in the
    /// table's file (seen once in the test command's PostgreSQL pass, beside other tests'
    /// transactions). Past the wait the purge goes ahead and says what may be left.
    fn wait_for_older_transactions(&self) -> Result<()> {
        let now: String = self.query_row("SELECT pg_current_xact_id()::text", [], |r| r.get(0))?;
        let deadline = std::time::Instant::now() + PURGE_WAIT;
        loop {
            // A boolean, read as 0 or 1.
            let clear: i64 = self.query_row(
                "SELECT (pg_snapshot_xmin(pg_current_snapshot()) > ?1::text::xid8 AND NOT EXISTS ( \
                   SELECT 1 FROM pg_stat_activity WHERE datname = current_database() \
                   AND pid <> pg_backend_pid() AND backend_xmin IS NOT NULL \
                   AND age(backend_xmin) > age(xid(?1::text::xid8))))",
                [now.as_str()],
                |r| r.get(0),
            )?;
            if clear == 1 {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                tracing::warn!(
                    "a transaction older than the shred still runs: the old row version may stay in the table's file until the next purge"
                );
                return Ok(());
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
}

/// How long [`Conn::purge_dead_rows`] waits for transactions older than it on PostgreSQL.
const PURGE_WAIT: std::time::Duration = std::time::Duration::from_secs(5);

/// A prepared statement (see [`Conn::prepare`]).
#[derive(Debug)]
pub struct Statement<'c, 'a, K> {
    conn: &'c Conn<'a, K>,
    sql: String,
}

impl<K> Statement<'_, '_, K> {
    /// Every row, through `f`.
    ///
    /// # Errors
    /// The database refused it, or `f` failed on a row.
    pub fn query_map<T>(
        &mut self,
        params: impl Params,
        f: impl FnMut(&Row<'_>) -> Result<T>,
    ) -> Result<std::vec::IntoIter<Result<T>>> {
        let rows = self.conn.query_vec(&self.sql, params, f)?;
        Ok(rows.into_iter().map(Ok).collect::<Vec<_>>().into_iter())
    }

    /// Whether the query returns any row.
    ///
    /// # Errors
    /// The database refused it.
    pub fn exists(&mut self, params: impl Params) -> Result<bool> {
        match self.conn.query_row(&self.sql, params, |_| Ok(())) {
            Ok(()) => Ok(true),
            Err(Error::NoRows) => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// A transaction (see [`Conn::transaction`]); derefs to its connection.
#[derive(Debug)]
pub struct Tx<'c, 'a, K> {
    conn: &'c Conn<'a, K>,
    done: bool,
}

impl<'a, K> std::ops::Deref for Tx<'_, 'a, K> {
    type Target = Conn<'a, K>;
    fn deref(&self) -> &Conn<'a, K> {
        self.conn
    }
}

impl<K> Tx<'_, '_, K> {
    /// Commits.
    ///
    /// # Errors
    /// The database refused it (on PostgreSQL a serialisation failure); nothing was written.
    pub fn commit(mut self) -> Result<()> {
        self.done = true;
        let committed = self.conn.execute_batch("COMMIT");
        if committed.is_err() {
            // SQLite keeps a transaction whose COMMIT failed open; PostgreSQL has ended it.
            let _ = self.conn.execute_batch("ROLLBACK");
        }
        self.conn.in_tx.set(false);
        committed
    }
}

impl<K> Drop for Tx<'_, '_, K> {
    fn drop(&mut self) {
        if !self.done {
            self.conn.in_tx.set(false);
            if let Err(e) = self.conn.execute_batch("ROLLBACK") {
                tracing::warn!(error = %e, "rolling back");
                // Never handed to another decision mid-transaction.
                self.conn.discard();
            }
        }
    }
}

/// One row of a result.
pub struct Row<'r>(RowInner<'r>);

enum RowInner<'r> {
    Sqlite(&'r rusqlite::Row<'r>),
    Postgres(&'r tokio_postgres::Row),
}

impl std::fmt::Debug for Row<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Row(..)")
    }
}

/// A column's position (kept generic like rusqlite's, so `r.get::<_, T>(i)` reads the same).
pub trait ColumnIndex: Copy {
    /// The index.
    fn index(self) -> usize;
}

impl ColumnIndex for usize {
    fn index(self) -> usize {
        self
    }
}

impl Row<'_> {
    /// Column `idx` as `T`.
    ///
    /// # Errors
    /// The column is missing or not a `T`.
    pub fn get<I: ColumnIndex, T: FromValue>(&self, idx: I) -> Result<T> {
        let idx = idx.index();
        match &self.0 {
            RowInner::Sqlite(r) => T::from_sqlite(r.get_ref(idx)?),
            RowInner::Postgres(r) => {
                let raw: Option<value::Raw<'_>> = r.try_get(idx)?;
                T::from_pg(raw)
            }
        }
        .map_err(|message| Error::Conversion { column: idx, message })
    }
}

/// `sql` with SQLite's `?N` placeholders as PostgreSQL's `$N` (outside quoted text).
pub(crate) fn to_postgres(sql: &str) -> String {
    let mut out = String::with_capacity(sql.len());
    let (mut quoted, mut comment) = (false, false);
    let mut chars = sql.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => comment = false,
            '-' if !quoted && chars.peek() == Some(&'-') => comment = true,
            '\'' if !comment => quoted = !quoted,
            // Only a numbered placeholder: `?` alone (none in this code) is left for the server to refuse.
            '?' if !quoted && !comment && chars.peek().is_some_and(char::is_ascii_digit) => {
                out.push('$');
                continue;
            }
            _ => {}
        }
        out.push(c);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_become_dollars_outside_quotes() {
        assert_eq!(
            to_postgres("SELECT a FROM t WHERE b = ?1 AND c = '?2' AND d = ?12"),
            "SELECT a FROM t WHERE b = $1 AND c = '?2' AND d = $12"
        );
        assert_eq!(
            to_postgres("SELECT 1 -- it's ?1\nWHERE x = ?2 AND y = ?"),
            "SELECT 1 -- it's ?1\nWHERE x = $2 AND y = ?"
        );
    }

    #[test]
    fn a_store_on_sqlite_runs_statements_and_transactions() {
        let store = Store::sqlite(rusqlite::Connection::open_in_memory().expect("db"), ());
        let c = store.conn();
        c.execute_batch("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT NOT NULL UNIQUE, data BLOB)")
            .expect("schema");
        assert_eq!(
            c.execute("INSERT INTO t (name, data) VALUES (?1, ?2)", params!["a", vec![1u8, 2]]).expect("insert"),
            1
        );
        let e = c.execute("INSERT INTO t (name) VALUES (?1)", params!["a"]).expect_err("unique");
        assert!(e.is_constraint_violation());
        {
            let tx = c.transaction().expect("begin");
            tx.execute("INSERT INTO t (name) VALUES (?1)", params!["b"]).expect("insert");
            // Dropped uncommitted: rolled back.
        }
        let names = c.query_vec("SELECT name FROM t ORDER BY id", [], |r| r.get::<_, String>(0)).expect("names");
        assert_eq!(names, ["a"]);
        let none: Option<i64> =
            c.query_row("SELECT id FROM t WHERE name = ?1", params!["zz"], |r| r.get(0)).optional().expect("query");
        assert_eq!(none, None);
        let data: Option<Vec<u8>> = c.query_row("SELECT data FROM t WHERE name = 'a'", [], |r| r.get(0)).expect("row");
        assert_eq!(data.as_deref(), Some(&[1u8, 2][..]));
    }
}

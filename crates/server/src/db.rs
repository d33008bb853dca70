//! The embedded SQLite store: schema and typed queries. Callers hold the one connection's lock
//! for a whole decision, so check-and-update steps are atomic.

use crate::Error;
use rusqlite::{params, Connection, OptionalExtension};
use sc_proto::DeviceId;
use std::path::Path;

const SCHEMA: &str = r#"
PRAGMA journal_mode = WAL;
PRAGMA synchronous = FULL;
PRAGMA foreign_keys = ON;
CREATE TABLE IF NOT EXISTS prisons (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS staff (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    display_name TEXT NOT NULL,
    role TEXT NOT NULL CHECK (role IN ('nurse', 'it', 'consultant')),
    prison_id INTEGER REFERENCES prisons(id),
    password_hash TEXT NOT NULL,
    totp_secret TEXT NOT NULL,
    last_totp_step INTEGER NOT NULL DEFAULT -1,
    failures INTEGER NOT NULL DEFAULT 0,
    lockouts INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER NOT NULL DEFAULT 0,
    -- Set when IT disables a leaver: no sign-in, no session, for good.
    disabled_at INTEGER,
    -- A consultant's hospital, named to the prisoner and nurse in the call.
    hospital TEXT
);
CREATE TABLE IF NOT EXISTS devices (
    id TEXT PRIMARY KEY,
    prison_id INTEGER NOT NULL REFERENCES prisons(id),
    public_key BLOB NOT NULL,
    hostname TEXT NOT NULL,
    -- The per-device exchange secret; NULL once crypto-shredded.
    exchange_secret BLOB,
    enrolled_at INTEGER NOT NULL,
    revoked_at INTEGER,
    revoke_reason TEXT,
    last_contact INTEGER,
    failures INTEGER NOT NULL DEFAULT 0,
    lockouts INTEGER NOT NULL DEFAULT 0,
    locked_until INTEGER NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS enrol_tokens (
    hash BLOB PRIMARY KEY,
    prison_id INTEGER NOT NULL REFERENCES prisons(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    used_at INTEGER,
    device_id TEXT
);
CREATE TABLE IF NOT EXISTS nonces (
    device_id TEXT NOT NULL,
    nonce BLOB NOT NULL,
    seen_at INTEGER NOT NULL,
    PRIMARY KEY (device_id, nonce)
);
CREATE TABLE IF NOT EXISTS kiosk_sessions (
    token_hash BLOB PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id),
    staff_id INTEGER NOT NULL REFERENCES staff(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS web_sessions (
    token_hash BLOB PRIMARY KEY,
    staff_id INTEGER NOT NULL REFERENCES staff(id),
    created_at INTEGER NOT NULL,
    expires_at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS appointments (
    id INTEGER PRIMARY KEY,
    consultant_id INTEGER NOT NULL REFERENCES staff(id),
    prison_id INTEGER NOT NULL REFERENCES prisons(id),
    starts_at INTEGER NOT NULL,
    ends_at INTEGER NOT NULL,
    room_code TEXT NOT NULL UNIQUE,
    -- Who it is for (sc_proto::signal::Patient), when the booking says.
    patient_number TEXT,
    patient_initials TEXT,
    -- Cancelled on the team page (by whom is in the audit log): kept, never listed or joined.
    cancelled_at INTEGER
);
CREATE TABLE IF NOT EXISTS audit (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    event TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    device_id TEXT,
    staff TEXT,
    prison_id INTEGER,
    detail TEXT,
    -- The hash chain (docs/brick.md): each row's hash covers the previous row's.
    prev_hash BLOB NOT NULL DEFAULT x'',
    hash BLOB NOT NULL DEFAULT x''
);
-- Calls admitted and not yet ended (crate::calls): what a peer may resume after a restart.
CREATE TABLE IF NOT EXISTS live_calls (
    appointment_id INTEGER PRIMARY KEY REFERENCES appointments(id),
    device_id TEXT NOT NULL REFERENCES devices(id),
    consultant_id INTEGER NOT NULL REFERENCES staff(id),
    started_at INTEGER NOT NULL
);
-- How IT staff know a laptop: the asset tag they gave at enrolment, the firmware's serial number.
CREATE TABLE IF NOT EXISTS device_labels (
    device_id TEXT PRIMARY KEY REFERENCES devices(id),
    asset_tag TEXT NOT NULL,
    serial TEXT NOT NULL
);
-- A prison's posture policy (crate::config::PosturePolicy as JSON); none: the server's default.
CREATE TABLE IF NOT EXISTS prison_posture (
    prison_id INTEGER PRIMARY KEY REFERENCES prisons(id),
    policy TEXT NOT NULL
);
-- Each laptop's last posture report, and what its prison's policy found wrong with it.
CREATE TABLE IF NOT EXISTS device_posture (
    device_id TEXT PRIMARY KEY REFERENCES devices(id),
    at INTEGER NOT NULL,
    stage TEXT NOT NULL,
    report TEXT NOT NULL,
    failing TEXT NOT NULL
);
-- Outcome notes (crate::notes): the text sealed under the note's uid; never changed or deleted
-- (a correction is an addendum), which the triggers enforce against any code path.
CREATE TABLE IF NOT EXISTS outcome_notes (
    id INTEGER PRIMARY KEY,
    uid TEXT NOT NULL UNIQUE,
    appointment_id INTEGER NOT NULL REFERENCES appointments(id),
    consultant_id INTEGER NOT NULL REFERENCES staff(id),
    prison_id INTEGER NOT NULL REFERENCES prisons(id),
    addendum_to INTEGER REFERENCES outcome_notes(id),
    created_at INTEGER NOT NULL,
    urgency TEXT NOT NULL,
    follow_up_on TEXT,
    body TEXT NOT NULL
);
CREATE UNIQUE INDEX IF NOT EXISTS one_note_per_appointment ON outcome_notes(appointment_id) WHERE addendum_to IS NULL;
CREATE TRIGGER IF NOT EXISTS outcome_notes_immutable BEFORE UPDATE ON outcome_notes
BEGIN SELECT RAISE(ABORT, 'an outcome note is never changed: add an addendum'); END;
CREATE TRIGGER IF NOT EXISTS outcome_notes_kept BEFORE DELETE ON outcome_notes
BEGIN SELECT RAISE(ABORT, 'an outcome note is never deleted'); END;
-- The first acknowledgement of each note by a nurse of its prison.
CREATE TABLE IF NOT EXISTS note_acks (
    note_id INTEGER PRIMARY KEY REFERENCES outcome_notes(id),
    staff_id INTEGER NOT NULL REFERENCES staff(id),
    at INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS bricks (
    command_id TEXT PRIMARY KEY,
    device_id TEXT NOT NULL REFERENCES devices(id),
    reason TEXT NOT NULL,
    by_staff TEXT NOT NULL,
    created_at INTEGER NOT NULL,
    wiped_at INTEGER,
    receipt BLOB
);
"#;

/// Opens (creating if needed) the database at `path`, with the server's `keys`, which only
/// this connection holds: the audit log's links and the sealed TOTP seeds are made under them.
pub fn open(path: &Path, keys: &crate::keys::ServerKeys) -> Result<Connection, Error> {
    // Created 0600 before SQLite opens it (its journal and WAL files take the same mode).
    #[cfg(unix)]
    if !path.exists() {
        let mut opts = std::fs::OpenOptions::new();
        std::os::unix::fs::OpenOptionsExt::mode(opts.write(true).create_new(true), 0o600);
        match opts.open(path) {
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(Error::io(format!("creating {}", path.display()))(e)),
        }
    }
    let conn = Connection::open(path)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    prepare(&conn, keys)?;
    migrate_audit_chain(&conn)?;
    add_missing_columns(&conn)?;
    conn.execute_batch(SCHEMA)?;
    crate::audit::ensure_keyed(&conn)?;
    seal_plain_seeds(&conn)?;
    Ok(conn)
}

/// What every connection gets first: deleted content overwritten with zeros (a shredded secret
/// must not survive in a free page or a page's free space), and the server's keys as SQL
/// functions: `sc_audit_link(encoded)`, `sc_seal(text, label)` and `sc_unseal(text, label)`.
/// The keys stay in this process's memory; the database holds only links and sealed values.
fn prepare(conn: &Connection, keys: &crate::keys::ServerKeys) -> Result<(), Error> {
    use rusqlite::functions::FunctionFlags;
    conn.execute_batch("PRAGMA secure_delete = ON;")?;
    // Only from top-level SQL (never from a trigger or view someone adds to the file).
    let flags = FunctionFlags::SQLITE_UTF8 | FunctionFlags::SQLITE_DIRECTONLY;
    let audit = keys.audit.clone();
    conn.create_scalar_function("sc_audit_link", 1, flags | FunctionFlags::SQLITE_DETERMINISTIC, move |ctx| {
        let encoded: Vec<u8> = ctx.get(0)?;
        Ok(audit.link(&encoded).to_vec())
    })?;
    let seal = keys.seal.clone();
    conn.create_scalar_function("sc_seal", 2, flags, move |ctx| {
        let (plain, label): (String, String) = (ctx.get(0)?, ctx.get(1)?);
        seal.seal(&plain, &label).map_err(|e| rusqlite::Error::UserFunctionError(e.to_string().into()))
    })?;
    let seal = keys.seal.clone();
    conn.create_scalar_function("sc_unseal", 2, flags | FunctionFlags::SQLITE_DETERMINISTIC, move |ctx| {
        let (sealed, label): (String, String) = (ctx.get(0)?, ctx.get(1)?);
        seal.open(&sealed, &label).map_err(|e| rusqlite::Error::UserFunctionError(e.to_string().into()))
    })?;
    Ok(())
}

/// Seals the TOTP seeds a database from before sealing kept in the clear (once; a sealed one
/// starts with `keys::SEALED_PREFIX`, which a base32 seed cannot).
fn seal_plain_seeds(conn: &Connection) -> Result<(), Error> {
    conn.execute(
        "UPDATE staff SET totp_secret = sc_seal(totp_secret, username) WHERE totp_secret NOT LIKE ?1",
        params![format!("{}%", crate::keys::SEALED_PREFIX)],
    )?;
    Ok(())
}

/// Columns added since a table was first made (SQLite cannot `ADD COLUMN IF NOT EXISTS`).
fn add_missing_columns(conn: &Connection) -> Result<(), Error> {
    let has = |table: &str, column: &str| -> Result<bool, Error> {
        Ok(conn.query_row(
            "SELECT COUNT(*) > 0 FROM pragma_table_info(?1) WHERE name = ?2",
            params![table, column],
            |r| r.get(0),
        )?)
    };
    let table_exists: bool =
        conn.query_row("SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'staff'", [], |r| {
            r.get(0)
        })?;
    if table_exists && !has("staff", "disabled_at")? {
        conn.execute_batch("ALTER TABLE staff ADD COLUMN disabled_at INTEGER;")?;
    }
    if table_exists && !has("staff", "hospital")? {
        conn.execute_batch("ALTER TABLE staff ADD COLUMN hospital TEXT;")?;
    }
    if table_exists && !has("appointments", "patient_number")? {
        conn.execute_batch(
            "ALTER TABLE appointments ADD COLUMN patient_number TEXT; ALTER TABLE appointments ADD COLUMN patient_initials TEXT;",
        )?;
    }
    if table_exists && !has("appointments", "cancelled_at")? {
        conn.execute_batch("ALTER TABLE appointments ADD COLUMN cancelled_at INTEGER;")?;
    }
    Ok(())
}

/// A database made before the audit chain gets the chain's columns, and its existing rows are
/// chained once, here (never later: a row with an empty hash afterwards is a broken link).
fn migrate_audit_chain(conn: &Connection) -> Result<(), Error> {
    let exists: bool =
        conn.query_row("SELECT COUNT(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'audit'", [], |r| {
            r.get(0)
        })?;
    if !exists {
        return Ok(());
    }
    let has_hash: bool =
        conn.query_row("SELECT COUNT(*) > 0 FROM pragma_table_info('audit') WHERE name = 'hash'", [], |r| r.get(0))?;
    if has_hash {
        return Ok(());
    }
    let tx = conn.unchecked_transaction()?;
    tx.execute_batch("ALTER TABLE audit ADD COLUMN prev_hash BLOB NOT NULL DEFAULT x''; ALTER TABLE audit ADD COLUMN hash BLOB NOT NULL DEFAULT x'';")?;
    crate::audit::chain_unchained(&tx)?;
    tx.commit()?;
    Ok(())
}

/// An in-memory database (tests).
pub fn open_in_memory() -> Result<Connection, Error> {
    let conn = Connection::open_in_memory()?;
    prepare(&conn, &crate::keys::ServerKeys::random()?)?;
    conn.execute_batch(SCHEMA)?;
    crate::audit::ensure_keyed(&conn)?;
    Ok(conn)
}

/// A prison row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Prison {
    /// Row id.
    pub id: i64,
    /// Name.
    pub name: String,
}

/// A staff row (with its secrets; never logged).
#[derive(Clone)]
pub struct Staff {
    /// Row id.
    pub id: i64,
    /// Login name.
    pub username: String,
    /// Name shown on screens.
    pub display_name: String,
    /// nurse, it or consultant.
    pub role: String,
    /// The prison a nurse belongs to.
    pub prison_id: Option<i64>,
    /// Argon2id PHC string.
    pub password_hash: String,
    /// Base32 TOTP secret.
    pub totp_secret: String,
    /// The last TOTP time step accepted (codes at or before it are refused).
    pub last_totp_step: i64,
    /// Failures in a row.
    pub failures: u32,
    /// Lock-outs so far (for back-off).
    pub lockouts: u32,
    /// Unix time until which the account is locked out.
    pub locked_until: i64,
    /// When IT disabled the account (a leaver), if it did.
    pub disabled_at: Option<i64>,
}

impl std::fmt::Debug for Staff {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Staff").field("username", &self.username).field("role", &self.role).finish_non_exhaustive()
    }
}

/// A device row.
#[derive(Clone)]
pub struct Device {
    /// Id.
    pub id: DeviceId,
    /// Its prison.
    pub prison_id: i64,
    /// Ed25519 public key.
    pub public_key: Vec<u8>,
    /// Host name at enrolment.
    pub hostname: String,
    /// The exchange secret, unless shredded.
    pub exchange_secret: Option<Vec<u8>>,
    /// Enrolment time.
    pub enrolled_at: i64,
    /// Revocation time.
    pub revoked_at: Option<i64>,
    /// Last successful contact.
    pub last_contact: Option<i64>,
    /// Failures in a row.
    pub failures: u32,
    /// Lock-outs so far.
    pub lockouts: u32,
    /// Locked out until.
    pub locked_until: i64,
}

impl std::fmt::Debug for Device {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Device").field("id", &self.id).field("prison_id", &self.prison_id).finish_non_exhaustive()
    }
}

/// Which lock-out counter to touch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Subject<'a> {
    /// A staff account, by row id.
    Staff(i64),
    /// A device.
    Device(&'a DeviceId),
}

/// Whether `e` is a constraint refusing the write (a unique name taken, a missing reference):
/// the caller's conflict, not the server's fault. (PostgreSQL's SQLSTATE class 23.)
pub(crate) fn is_constraint_violation(e: &rusqlite::Error) -> bool {
    matches!(e, rusqlite::Error::SqliteFailure(f, _) if f.code == rusqlite::ErrorCode::ConstraintViolation)
}

/// Adds a prison.
pub fn insert_prison(c: &Connection, name: &str) -> Result<Prison, Error> {
    // RETURNING rather than the connection's last row id: it is the inserted row's, whatever else
    // runs on the connection, and PostgreSQL has it too.
    match c.query_row("INSERT INTO prisons (name) VALUES (?1) RETURNING id", params![name], |r| r.get(0)) {
        Ok(id) => Ok(Prison { id, name: name.to_owned() }),
        Err(e) if is_constraint_violation(&e) => Err(Error::Conflict(format!("prison {name:?}"))),
        Err(e) => Err(e.into()),
    }
}

/// Finds a prison by name.
pub fn prison_by_name(c: &Connection, name: &str) -> Result<Prison, Error> {
    c.query_row("SELECT id, name FROM prisons WHERE name = ?1", params![name], |r| {
        Ok(Prison { id: r.get(0)?, name: r.get(1)? })
    })
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("prison {name:?}")))
}

/// Finds a prison by id.
pub fn prison_by_id(c: &Connection, id: i64) -> Result<Prison, Error> {
    c.query_row("SELECT id, name FROM prisons WHERE id = ?1", params![id], |r| {
        Ok(Prison { id: r.get(0)?, name: r.get(1)? })
    })
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("prison {id}")))
}

/// A new staff row's fields.
pub struct NewStaff<'a> {
    /// Login name.
    pub username: &'a str,
    /// Display name.
    pub display_name: &'a str,
    /// Role.
    pub role: &'a str,
    /// Prison.
    pub prison_id: Option<i64>,
    /// Argon2id PHC string.
    pub password_hash: &'a str,
    /// Base32 TOTP secret.
    pub totp_secret: &'a str,
    /// A consultant's hospital.
    pub hospital: Option<&'a str>,
}

impl std::fmt::Debug for NewStaff<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewStaff").field("username", &self.username).field("role", &self.role).finish_non_exhaustive()
    }
}

/// Adds a staff member.
pub fn insert_staff(c: &Connection, s: &NewStaff<'_>) -> Result<i64, Error> {
    let res = c.query_row(
        "INSERT INTO staff (username, display_name, role, prison_id, password_hash, totp_secret, hospital)
         VALUES (?1, ?2, ?3, ?4, ?5, sc_seal(?6, ?1), ?7) RETURNING id",
        params![s.username, s.display_name, s.role, s.prison_id, s.password_hash, s.totp_secret, s.hospital],
        |r| r.get(0),
    );
    match res {
        Ok(id) => Ok(id),
        Err(e) if is_constraint_violation(&e) => Err(Error::Conflict(format!("staff {:?}", s.username))),
        Err(e) => Err(e.into()),
    }
}

/// Finds a staff member by user name.
pub fn staff_by_username(c: &Connection, username: &str) -> Result<Option<Staff>, Error> {
    Ok(c.query_row(
        "SELECT id, username, display_name, role, prison_id, password_hash, sc_unseal(totp_secret, username),
                last_totp_step, failures, lockouts, locked_until, disabled_at FROM staff WHERE username = ?1",
        params![username],
        |r| {
            Ok(Staff {
                id: r.get(0)?,
                username: r.get(1)?,
                display_name: r.get(2)?,
                role: r.get(3)?,
                prison_id: r.get(4)?,
                password_hash: r.get(5)?,
                totp_secret: r.get(6)?,
                last_totp_step: r.get(7)?,
                failures: r.get(8)?,
                lockouts: r.get(9)?,
                locked_until: r.get(10)?,
                disabled_at: r.get(11)?,
            })
        },
    )
    .optional()?)
}

/// Records an accepted TOTP step.
pub fn set_totp_step(c: &Connection, staff_id: i64, step: i64) -> Result<(), Error> {
    c.execute("UPDATE staff SET last_totp_step = ?2 WHERE id = ?1", params![staff_id, step])?;
    Ok(())
}

fn device_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Device> {
    let id: String = r.get(0)?;
    let id = DeviceId::try_from(id)
        .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))?;
    Ok(Device {
        id,
        prison_id: r.get(1)?,
        public_key: r.get(2)?,
        hostname: r.get(3)?,
        exchange_secret: r.get(4)?,
        enrolled_at: r.get(5)?,
        revoked_at: r.get(6)?,
        last_contact: r.get(7)?,
        failures: r.get(8)?,
        lockouts: r.get(9)?,
        locked_until: r.get(10)?,
    })
}

const DEVICE_COLUMNS: &str = "id, prison_id, public_key, hostname, exchange_secret, enrolled_at, revoked_at,
    last_contact, failures, lockouts, locked_until";

/// Finds a device.
pub fn device(c: &Connection, id: &DeviceId) -> Result<Option<Device>, Error> {
    Ok(c.query_row(
        &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"),
        params![id.as_str()],
        device_from_row,
    )
    .optional()?)
}

/// All devices, newest first.
pub fn devices(c: &Connection) -> Result<Vec<Device>, Error> {
    let mut stmt = c.prepare(&format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY enrolled_at DESC, id"))?;
    let rows = stmt.query_map([], device_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Adds a device.
pub fn insert_device(
    c: &Connection,
    id: &DeviceId,
    prison_id: i64,
    public_key: &[u8],
    hostname: &str,
    exchange_secret: &[u8],
    now: i64,
) -> Result<(), Error> {
    c.execute(
        "INSERT INTO devices (id, prison_id, public_key, hostname, exchange_secret, enrolled_at, last_contact)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6)",
        params![id.as_str(), prison_id, public_key, hostname, exchange_secret, now],
    )?;
    Ok(())
}

/// Crypto-shreds a device: its exchange secret is overwritten and deleted in one statement.
pub fn shred_device(c: &Connection, id: &DeviceId, reason: &str, now: i64) -> Result<bool, Error> {
    let n = c.execute(
        "UPDATE devices SET exchange_secret = NULL, revoked_at = COALESCE(revoked_at, ?2), revoke_reason = ?3
         WHERE id = ?1",
        params![id.as_str(), now, reason],
    )?;
    Ok(n == 1)
}

/// A device's brick.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Brick {
    /// The command id.
    pub command_id: String,
    /// The device.
    pub device_id: String,
    /// Why (IT's words).
    pub reason: String,
    /// Who bricked it.
    pub by_staff: String,
    /// When.
    pub created_at: i64,
    /// When the verified receipt arrived.
    pub wiped_at: Option<i64>,
}

fn brick_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Brick> {
    Ok(Brick {
        command_id: r.get(0)?,
        device_id: r.get(1)?,
        reason: r.get(2)?,
        by_staff: r.get(3)?,
        created_at: r.get(4)?,
        wiped_at: r.get(5)?,
    })
}

/// The device's brick, if it was bricked.
pub fn brick_of(c: &Connection, id: &DeviceId) -> Result<Option<Brick>, Error> {
    Ok(c
        .query_row(
            "SELECT command_id, device_id, reason, by_staff, created_at, wiped_at FROM bricks WHERE device_id = ?1 ORDER BY created_at LIMIT 1",
            params![id.as_str()],
            brick_row,
        )
        .optional()?)
}

/// Every brick, newest first.
pub fn bricks(c: &Connection) -> Result<Vec<Brick>, Error> {
    let mut stmt = c.prepare(
        "SELECT command_id, device_id, reason, by_staff, created_at, wiped_at FROM bricks ORDER BY created_at DESC",
    )?;
    let rows = stmt.query_map([], brick_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Records a brick.
pub fn insert_brick(
    c: &Connection,
    command_id: &str,
    id: &DeviceId,
    reason: &str,
    by: &str,
    now: i64,
) -> Result<(), Error> {
    c.execute(
        "INSERT INTO bricks (command_id, device_id, reason, by_staff, created_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![command_id, id.as_str(), reason, by, now],
    )?;
    Ok(())
}

/// Stores a verified receipt; false when the device has no such brick. A repeat keeps the first.
pub fn record_receipt(
    c: &Connection,
    id: &DeviceId,
    command_id: &str,
    receipt: &[u8],
    now: i64,
) -> Result<bool, Error> {
    let n = c.execute(
        "UPDATE bricks SET wiped_at = COALESCE(wiped_at, ?3), receipt = COALESCE(receipt, ?4) WHERE device_id = ?1 AND command_id = ?2",
        params![id.as_str(), command_id, now, receipt],
    )?;
    Ok(n == 1)
}

/// Records a successful contact.
pub fn touch_device(c: &Connection, id: &DeviceId, now: i64) -> Result<(), Error> {
    c.execute("UPDATE devices SET last_contact = ?2 WHERE id = ?1", params![id.as_str(), now])?;
    Ok(())
}

/// Records a nonce; false if this device used it before.
pub fn claim_nonce(c: &Connection, device: &DeviceId, nonce: &[u8], now: i64, keep_secs: i64) -> Result<bool, Error> {
    // Nonces older than the freshness window can never be replayed successfully: forget them.
    c.execute("DELETE FROM nonces WHERE seen_at < ?1", params![now - keep_secs])?;
    let n = c.execute(
        "INSERT INTO nonces (device_id, nonce, seen_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        params![device.as_str(), nonce, now],
    )?;
    Ok(n == 1)
}

/// Adds an enrolment token (its hash only).
pub fn insert_enrol_token(c: &Connection, hash: &[u8], prison_id: i64, now: i64, expires_at: i64) -> Result<(), Error> {
    c.execute(
        "INSERT INTO enrol_tokens (hash, prison_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![hash, prison_id, now, expires_at],
    )?;
    Ok(())
}

/// An enrolment token's state.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnrolToken {
    /// Its prison.
    pub prison_id: i64,
    /// Expiry.
    pub expires_at: i64,
    /// When it was used, if it was.
    pub used_at: Option<i64>,
}

/// Looks up a token by hash.
pub fn enrol_token(c: &Connection, hash: &[u8]) -> Result<Option<EnrolToken>, Error> {
    Ok(c.query_row("SELECT prison_id, expires_at, used_at FROM enrol_tokens WHERE hash = ?1", params![hash], |r| {
        Ok(EnrolToken { prison_id: r.get(0)?, expires_at: r.get(1)?, used_at: r.get(2)? })
    })
    .optional()?)
}

/// Marks a token used; false if it was already used.
pub fn use_enrol_token(c: &Connection, hash: &[u8], device: &DeviceId, now: i64) -> Result<bool, Error> {
    let n = c.execute(
        "UPDATE enrol_tokens SET used_at = ?2, device_id = ?3 WHERE hash = ?1 AND used_at IS NULL",
        params![hash, now, device.as_str()],
    )?;
    Ok(n == 1)
}

fn table(s: Subject<'_>) -> (&'static str, rusqlite::types::Value) {
    match s {
        Subject::Staff(id) => ("staff", rusqlite::types::Value::Integer(id)),
        Subject::Device(id) => ("devices", rusqlite::types::Value::Text(id.as_str().to_owned())),
    }
}

/// Counts a failure; when it reaches `max`, locks the subject out with doubling back-off.
/// Returns the lock-out length if this failure caused one. The back-off remembers earlier
/// lock-outs until one is `forget_secs` past, whatever succeeded in between: a success that
/// reset it would hand a guesser who shares the account short lock-outs again.
pub fn record_failure(
    c: &Connection,
    s: Subject<'_>,
    lockout: &crate::config::Lockout,
    now: i64,
) -> Result<Option<u64>, Error> {
    let (t, id) = table(s);
    let (failures, lockouts, locked_until): (u32, u32, i64) =
        c.query_row(&format!("SELECT failures, lockouts, locked_until FROM {t} WHERE id = ?1"), params![id], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?))
        })?;
    let forgotten = locked_until.saturating_add(i64::try_from(lockout.forget_secs).unwrap_or(i64::MAX)) <= now;
    let lockouts = if forgotten { 0 } else { lockouts };
    let failures = failures + 1;
    if failures >= lockout.max_failures {
        let secs = lockout.base_secs.saturating_mul(1u64 << lockouts.min(20)).min(lockout.max_secs);
        let until = now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX));
        c.execute(
            &format!("UPDATE {t} SET failures = 0, lockouts = ?2, locked_until = ?3 WHERE id = ?1"),
            params![id, lockouts.saturating_add(1), until],
        )?;
        Ok(Some(secs))
    } else {
        c.execute(
            &format!("UPDATE {t} SET failures = ?2, lockouts = ?3 WHERE id = ?1"),
            params![id, failures, lockouts],
        )?;
        Ok(None)
    }
}

/// Clears the run of failures after a success; the back-off history stays (see `record_failure`).
pub fn clear_failures(c: &Connection, s: Subject<'_>) -> Result<(), Error> {
    let (t, id) = table(s);
    c.execute(&format!("UPDATE {t} SET failures = 0 WHERE id = ?1"), params![id])?;
    Ok(())
}

/// SHA-256 of a bearer token: only hashes are stored, so a database leak yields no live session.
pub fn token_hash(token: &[u8]) -> Vec<u8> {
    use sha2::Digest as _;
    sha2::Sha256::digest(token).to_vec()
}

/// Stores a kiosk session (an unlocked laptop's bearer token).
pub fn insert_kiosk_session(
    c: &Connection,
    token: &[u8],
    device: &DeviceId,
    staff_id: i64,
    now: i64,
    expires_at: i64,
) -> Result<(), Error> {
    c.execute("DELETE FROM kiosk_sessions WHERE expires_at <= ?1", params![now])?;
    c.execute(
        "INSERT INTO kiosk_sessions (token_hash, device_id, staff_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4, ?5)",
        params![token_hash(token), device.as_str(), staff_id, now, expires_at],
    )?;
    Ok(())
}

/// An unlocked laptop, as its bearer token proves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KioskSession {
    /// The laptop.
    pub device_id: DeviceId,
    /// Its prison.
    pub prison_id: i64,
    /// The nurse who unlocked it.
    pub staff_id: i64,
    /// The nurse's display name.
    pub nurse: String,
}

/// Finds a live kiosk session whose device is not revoked.
pub fn kiosk_session(c: &Connection, token: &[u8], now: i64) -> Result<Option<KioskSession>, Error> {
    kiosk_session_by_hash(c, &token_hash(token), now)
}

/// As [`kiosk_session`], by the token's hash (what a live connection keeps).
pub fn kiosk_session_by_hash(c: &Connection, hash: &[u8], now: i64) -> Result<Option<KioskSession>, Error> {
    Ok(c.query_row(
        "SELECT k.device_id, d.prison_id, k.staff_id, s.display_name FROM kiosk_sessions k
         JOIN devices d ON d.id = k.device_id JOIN staff s ON s.id = k.staff_id
         WHERE k.token_hash = ?1 AND k.expires_at > ?2 AND d.revoked_at IS NULL AND d.exchange_secret IS NOT NULL
           AND s.disabled_at IS NULL",
        params![hash, now],
        |r| {
            let id: String = r.get(0)?;
            let device_id = DeviceId::try_from(id)
                .map_err(|e| rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e)))?;
            Ok(KioskSession { device_id, prison_id: r.get(1)?, staff_id: r.get(2)?, nurse: r.get(3)? })
        },
    )
    .optional()?)
}

/// Ends a kiosk session (the laptop locked).
pub fn delete_kiosk_session(c: &Connection, token: &[u8]) -> Result<(), Error> {
    c.execute("DELETE FROM kiosk_sessions WHERE token_hash = ?1", params![token_hash(token)])?;
    Ok(())
}

/// Stores a staff member's browser session.
pub fn insert_web_session(c: &Connection, token: &[u8], staff_id: i64, now: i64, expires_at: i64) -> Result<(), Error> {
    c.execute("DELETE FROM web_sessions WHERE expires_at <= ?1", params![now])?;
    c.execute(
        "INSERT INTO web_sessions (token_hash, staff_id, created_at, expires_at) VALUES (?1, ?2, ?3, ?4)",
        params![token_hash(token), staff_id, now, expires_at],
    )?;
    Ok(())
}

/// A signed-in staff member in a browser (a consultant or IT staff).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebSession {
    /// Staff row id.
    pub staff_id: i64,
    /// Display name.
    pub name: String,
    /// Login name (what the audit log records).
    pub username: String,
}

/// Finds a live browser session of a staff member holding `role` (a consultant's session is no
/// use on IT's pages, and the other way round).
pub fn web_session(c: &Connection, token: &[u8], now: i64, role: &str) -> Result<Option<WebSession>, Error> {
    web_session_by_hash(c, &token_hash(token), now, role)
}

/// As [`web_session`], by the token's hash (what a live connection keeps).
pub fn web_session_by_hash(c: &Connection, hash: &[u8], now: i64, role: &str) -> Result<Option<WebSession>, Error> {
    Ok(c.query_row(
        "SELECT s.id, s.display_name, s.username FROM web_sessions w JOIN staff s ON s.id = w.staff_id
         WHERE w.token_hash = ?1 AND w.expires_at > ?2 AND s.role = ?3 AND s.disabled_at IS NULL",
        params![hash, now, role],
        |r| Ok(WebSession { staff_id: r.get(0)?, name: r.get(1)?, username: r.get(2)? }),
    )
    .optional()?)
}

/// Ends a browser session.
pub fn delete_web_session(c: &Connection, token: &[u8]) -> Result<(), Error> {
    c.execute("DELETE FROM web_sessions WHERE token_hash = ?1", params![token_hash(token)])?;
    Ok(())
}

/// An appointment row with names resolved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AppointmentRow {
    /// The public view.
    pub view: sc_proto::signal::Appointment,
    /// The consultant's staff id.
    pub consultant_id: i64,
    /// The prison's id.
    pub prison_id: i64,
}

const APPOINTMENT_SELECT: &str =
    "SELECT a.id, a.room_code, s.display_name, p.name, a.starts_at, a.ends_at, a.consultant_id, a.prison_id,
            a.patient_number, a.patient_initials, s.hospital
     FROM appointments a JOIN staff s ON s.id = a.consultant_id JOIN prisons p ON p.id = a.prison_id";

fn appointment_from_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<AppointmentRow> {
    Ok(AppointmentRow {
        view: sc_proto::signal::Appointment {
            id: r.get(0)?,
            room_code: r.get(1)?,
            consultant: r.get(2)?,
            consultant_hospital: r.get::<_, Option<String>>(10)?.map(String::into_boxed_str),
            prison: r.get(3)?,
            starts_at: r.get(4)?,
            ends_at: r.get(5)?,
            patient: patient_from(r.get(8)?, r.get(9)?),
        },
        consultant_id: r.get(6)?,
        prison_id: r.get(7)?,
    })
}

/// The stored patient reference; both parts are written parsed, so a row that no longer parses
/// has been edited outside the server and is shown as no reference rather than a wrong one.
pub(crate) fn patient_from(number: Option<String>, initials: Option<String>) -> Option<Box<sc_proto::signal::Patient>> {
    let patient =
        sc_proto::signal::Patient { prison_number: number?.try_into().ok()?, initials: initials?.try_into().ok()? };
    Some(Box::new(patient))
}

/// A new appointment's row.
#[derive(Debug, Clone, Copy)]
pub struct NewAppointmentRow<'a> {
    /// The consultant's staff id.
    pub consultant_id: i64,
    /// The prison's id.
    pub prison_id: i64,
    /// Start, Unix seconds.
    pub starts_at: i64,
    /// End, Unix seconds.
    pub ends_at: i64,
    /// The room code.
    pub room_code: &'a str,
    /// Who it is for.
    pub patient: Option<&'a sc_proto::signal::Patient>,
}

/// Adds an appointment.
pub fn insert_appointment(c: &Connection, a: &NewAppointmentRow<'_>) -> Result<i64, Error> {
    Ok(c.query_row(
        "INSERT INTO appointments (consultant_id, prison_id, starts_at, ends_at, room_code, patient_number, patient_initials)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        params![
            a.consultant_id,
            a.prison_id,
            a.starts_at,
            a.ends_at,
            a.room_code,
            a.patient.map(|p| p.prison_number.as_str()),
            a.patient.map(|p| p.initials.as_str())
        ],
        |r| r.get(0),
    )?)
}

/// An appointment by id.
pub fn appointment(c: &Connection, id: i64) -> Result<Option<AppointmentRow>, Error> {
    Ok(c.query_row(
        &format!("{APPOINTMENT_SELECT} WHERE a.id = ?1 AND a.cancelled_at IS NULL"),
        params![id],
        appointment_from_row,
    )
    .optional()?)
}

/// An appointment by room code.
pub fn appointment_by_code(c: &Connection, code: &str) -> Result<Option<AppointmentRow>, Error> {
    Ok(c.query_row(
        &format!("{APPOINTMENT_SELECT} WHERE a.room_code = ?1 AND a.cancelled_at IS NULL"),
        params![code],
        appointment_from_row,
    )
    .optional()?)
}

/// Appointments overlapping `[from, to)`, for a prison or a consultant, earliest first.
pub fn appointments_between(
    c: &Connection,
    prison_id: Option<i64>,
    consultant_id: Option<i64>,
    from: i64,
    to: i64,
) -> Result<Vec<AppointmentRow>, Error> {
    let mut stmt = c.prepare(&format!(
        "{APPOINTMENT_SELECT} WHERE a.cancelled_at IS NULL AND a.ends_at > ?1 AND a.starts_at < ?2
         AND (?3 IS NULL OR a.prison_id = ?3) AND (?4 IS NULL OR a.consultant_id = ?4) ORDER BY a.starts_at, a.id"
    ))?;
    let rows = stmt.query_map(params![from, to, prison_id, consultant_id], appointment_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// A prison's own posture policy, if IT set one.
pub fn posture_policy(c: &Connection, prison_id: i64) -> Result<Option<crate::config::PosturePolicy>, Error> {
    let json: Option<String> = c
        .query_row("SELECT policy FROM prison_posture WHERE prison_id = ?1", params![prison_id], |r| r.get(0))
        .optional()?;
    json.map(|j| {
        serde_json::from_str(&j).map_err(|e| Error::Config(format!("prison {prison_id}'s posture policy: {e}")))
    })
    .transpose()
}

/// Sets a prison's posture policy.
pub fn set_posture_policy(c: &Connection, prison_id: i64, policy: &crate::config::PosturePolicy) -> Result<(), Error> {
    let json = serde_json::to_string(policy).map_err(|e| Error::Config(e.to_string()))?;
    c.execute(
        "INSERT INTO prison_posture (prison_id, policy) VALUES (?1, ?2)
         ON CONFLICT (prison_id) DO UPDATE SET policy = excluded.policy",
        params![prison_id, json],
    )?;
    Ok(())
}

/// A laptop's last posture report as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PostureRecord {
    /// When it was reported, server time.
    pub at: i64,
    /// "enrolment" or "activation".
    pub stage: String,
    /// The report.
    pub report: sc_proto::Posture,
    /// The failing items' words (empty: it passed).
    pub failing: Vec<String>,
}

/// Keeps a laptop's last posture report.
pub fn record_posture(c: &Connection, id: &DeviceId, record: &PostureRecord) -> Result<(), Error> {
    let report = serde_json::to_string(&record.report).map_err(|e| Error::Config(e.to_string()))?;
    c.execute(
        "INSERT INTO device_posture (device_id, at, stage, report, failing) VALUES (?1, ?2, ?3, ?4, ?5)
         ON CONFLICT (device_id) DO UPDATE SET at = excluded.at, stage = excluded.stage,
             report = excluded.report, failing = excluded.failing",
        params![id.as_str(), record.at, record.stage, report, record.failing.join(" ")],
    )?;
    Ok(())
}

/// A laptop's last posture report, if it made one.
pub fn posture_of(c: &Connection, id: &DeviceId) -> Result<Option<PostureRecord>, Error> {
    let row: Option<(i64, String, String, String)> = c
        .query_row(
            "SELECT at, stage, report, failing FROM device_posture WHERE device_id = ?1",
            params![id.as_str()],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?)),
        )
        .optional()?;
    row.map(|(at, stage, report, failing)| {
        Ok(PostureRecord {
            at,
            stage,
            report: serde_json::from_str(&report).map_err(|e| Error::Config(format!("posture of {id}: {e}")))?,
            failing: failing.split_whitespace().map(str::to_owned).collect(),
        })
    })
    .transpose()
}

/// Records IT staff's asset tag and the firmware's serial number for a laptop.
pub fn label_device(c: &Connection, id: &DeviceId, asset_tag: &str, serial: &str) -> Result<(), Error> {
    c.execute(
        "INSERT INTO device_labels (device_id, asset_tag, serial) VALUES (?1, ?2, ?3)
         ON CONFLICT (device_id) DO UPDATE SET asset_tag = excluded.asset_tag, serial = excluded.serial",
        params![id.as_str(), asset_tag, serial],
    )?;
    Ok(())
}

/// A laptop's asset tag and serial number (empty when not given).
pub fn device_label(c: &Connection, id: &DeviceId) -> Result<(String, String), Error> {
    Ok(c.query_row("SELECT asset_tag, serial FROM device_labels WHERE device_id = ?1", params![id.as_str()], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()?
    .unwrap_or_default())
}

//! The care server's typed queries, and opening its database: the embedded SQLite file by
//! default, PostgreSQL when `database_url` names one (crate::store). A decision's statements run
//! on one [`Conn`]; where a check comes before an update, the update itself re-checks (or the
//! decision locks what it reads), so it stays atomic with several instances on PostgreSQL.

use crate::conn::{Conn, Store};
use crate::store::{params, OptionalExtension};
use crate::Error;
use sc_proto::DeviceId;
use std::path::Path;

/// Opens (creating if needed) the SQLite database at `path`, with the server's `keys`: the
/// audit log's links and the sealed TOTP seeds are made under them, in this process only.
pub fn open(path: &Path, keys: &crate::keys::ServerKeys) -> Result<Store, Error> {
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
    let conn = rusqlite::Connection::open(path).map_err(crate::store::Error::from)?;
    conn.busy_timeout(std::time::Duration::from_secs(5)).map_err(crate::store::Error::from)?;
    init(Store::sqlite(conn, keys.clone()))
}

/// Opens the PostgreSQL database at `url` with at most `max_connections` connections, bringing
/// its schema up to date (several instances starting at once take turns).
pub fn open_postgres(url: &str, max_connections: usize, keys: &crate::keys::ServerKeys) -> Result<Store, Error> {
    open_postgres_with(url, max_connections, None, keys)
}

/// As [`open_postgres`]; with `ca` (PEM), over TLS verified against it (see
/// [`crate::config::DatabaseConfig::ca`]).
///
/// # Errors
/// As [`open_postgres`], or the CA is not a PEM certificate, or the TLS handshake fails.
pub fn open_postgres_with(
    url: &str,
    max_connections: usize,
    ca: Option<&[u8]>,
    keys: &crate::keys::ServerKeys,
) -> Result<Store, Error> {
    let store = Store::postgres_with(url, max_connections, ca, keys.clone()).map_err(|e| match e {
        crate::store::Error::Config(why) => Error::Config(format!("database_url: {why}")),
        e => Error::Db(e),
    })?;
    init(store)
}

/// The database `config` names (crate::config::DatabaseConfig), with the data directory's keys.
pub fn open_configured(config: &crate::config::ServerConfig) -> Result<Store, Error> {
    let keys = crate::pki::server_keys(&config.data_dir)?;
    match &config.database.url {
        Some(url) => {
            let ca = match &config.database.ca {
                Some(path) => Some(std::fs::read(path).map_err(Error::io(format!("reading {}", path.display())))?),
                None => None,
            };
            open_postgres_with(url, config.database.max_connections, ca.as_deref(), &keys)
        }
        None => open(&config.db_path(), &keys),
    }
}

/// An in-memory SQLite database with random keys (tests).
pub fn open_in_memory() -> Result<Store, Error> {
    let conn = rusqlite::Connection::open_in_memory().map_err(crate::store::Error::from)?;
    open_sqlite_conn(conn, &crate::keys::ServerKeys::random()?)
}

/// A store on an SQLite connection already open (tests: in memory), its schema brought up to date.
pub fn open_sqlite_conn(conn: rusqlite::Connection, keys: &crate::keys::ServerKeys) -> Result<Store, Error> {
    init(Store::sqlite(conn, keys.clone()))
}

/// Upgrades a database made by an older build, and checks the audit chain is keyed.
fn init(store: Store) -> Result<Store, Error> {
    {
        let c = store.conn();
        if let Some(sqlite) = c.sqlite() {
            // Deleted content overwritten with zeros: a shredded secret must not survive in a
            // free page or a page's free space.
            sqlite
                .execute_batch(
                    "PRAGMA journal_mode = WAL; PRAGMA synchronous = FULL; PRAGMA foreign_keys = ON; \
                     PRAGMA secure_delete = ON;",
                )
                .map_err(crate::store::Error::from)?;
            // Files from before schema versions.
            migrate_audit_chain(&c)?;
            add_missing_columns(&c)?;
        }
        crate::store::schema::migrate(&c)?;
        crate::audit::ensure_keyed(&c)?;
        seal_plain_seeds(&c)?;
    }
    Ok(store)
}

/// Seals the TOTP seeds a database from before sealing kept in the clear (once; a sealed one
/// starts with `keys::SEALED_PREFIX`, which a base32 seed cannot).
fn seal_plain_seeds(conn: &Conn<'_>) -> Result<(), Error> {
    let plain = conn.query_vec(
        "SELECT id, username, totp_secret FROM staff WHERE totp_secret NOT LIKE ?1",
        params![format!("{}%", crate::keys::SEALED_PREFIX)],
        |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?, zeroize::Zeroizing::new(r.get::<_, String>(2)?))),
    )?;
    for (id, username, seed) in plain {
        let sealed = conn.keys().seal.seal(&seed, &username)?;
        conn.execute("UPDATE staff SET totp_secret = ?2 WHERE id = ?1", params![id, sealed])?;
    }
    Ok(())
}

/// Columns added since a table was first made (SQLite cannot `ADD COLUMN IF NOT EXISTS`).
fn add_missing_columns(conn: &Conn<'_>) -> Result<(), Error> {
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
fn migrate_audit_chain(conn: &Conn<'_>) -> Result<(), Error> {
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
    let tx = conn.transaction()?;
    tx.execute_batch("ALTER TABLE audit ADD COLUMN prev_hash BLOB NOT NULL DEFAULT x''; ALTER TABLE audit ADD COLUMN hash BLOB NOT NULL DEFAULT x'';")?;
    crate::audit::chain_unchained(&tx)?;
    tx.commit()?;
    Ok(())
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

/// Adds a prison.
pub fn insert_prison(c: &Conn<'_>, name: &str) -> Result<Prison, Error> {
    // RETURNING rather than the connection's last row id: it is the inserted row's, whatever else
    // runs on the connection, and PostgreSQL has it too.
    match c.query_row("INSERT INTO prisons (name) VALUES (?1) RETURNING id", params![name], |r| r.get(0)) {
        Ok(id) => Ok(Prison { id, name: name.to_owned() }),
        Err(e) if e.is_constraint_violation() => Err(Error::Conflict(format!("prison {name:?}"))),
        Err(e) => Err(e.into()),
    }
}

/// Finds a prison by name.
pub fn prison_by_name(c: &Conn<'_>, name: &str) -> Result<Prison, Error> {
    c.query_row("SELECT id, name FROM prisons WHERE name = ?1", params![name], |r| {
        Ok(Prison { id: r.get(0)?, name: r.get(1)? })
    })
    .optional()?
    .ok_or_else(|| Error::NotFound(format!("prison {name:?}")))
}

/// Finds a prison by id.
pub fn prison_by_id(c: &Conn<'_>, id: i64) -> Result<Prison, Error> {
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
pub fn insert_staff(c: &Conn<'_>, s: &NewStaff<'_>) -> Result<i64, Error> {
    let res = c.query_row(
        "INSERT INTO staff (username, display_name, role, prison_id, password_hash, totp_secret, hospital)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7) RETURNING id",
        params![
            s.username,
            s.display_name,
            s.role,
            s.prison_id,
            s.password_hash,
            c.keys().seal.seal(s.totp_secret, s.username)?,
            s.hospital
        ],
        |r| r.get(0),
    );
    match res {
        Ok(id) => Ok(id),
        Err(e) if e.is_constraint_violation() => Err(Error::Conflict(format!("staff {:?}", s.username))),
        Err(e) => Err(e.into()),
    }
}

/// Finds a staff member by user name.
pub fn staff_by_username(c: &Conn<'_>, username: &str) -> Result<Option<Staff>, Error> {
    let sealed = c
        .query_row(
            "SELECT id, username, display_name, role, prison_id, password_hash, totp_secret,
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
        .optional()?;
    let Some(mut staff) = sealed else { return Ok(None) };
    staff.totp_secret = c.keys().seal.open(&staff.totp_secret, &staff.username)?;
    Ok(Some(staff))
}

/// Records an accepted TOTP step; false if a step at or after it was recorded first (a code
/// spent by a parallel request: the update itself checks, so no two requests spend one code).
pub fn set_totp_step(c: &Conn<'_>, staff_id: i64, step: i64) -> Result<bool, Error> {
    let n = c.execute(
        "UPDATE staff SET last_totp_step = ?2 WHERE id = ?1 AND last_totp_step < ?2",
        params![staff_id, step],
    )?;
    Ok(n == 1)
}

fn device_from_row(r: &crate::store::Row<'_>) -> crate::store::Result<Device> {
    let id: String = r.get(0)?;
    let id = DeviceId::try_from(id).map_err(|e| crate::store::Error::conversion(0, e))?;
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
pub fn device(c: &Conn<'_>, id: &DeviceId) -> Result<Option<Device>, Error> {
    Ok(c.query_row(
        &format!("SELECT {DEVICE_COLUMNS} FROM devices WHERE id = ?1"),
        params![id.as_str()],
        device_from_row,
    )
    .optional()?)
}

/// All devices, newest first.
pub fn devices(c: &Conn<'_>) -> Result<Vec<Device>, Error> {
    let mut stmt = c.prepare(&format!("SELECT {DEVICE_COLUMNS} FROM devices ORDER BY enrolled_at DESC, id"))?;
    let rows = stmt.query_map([], device_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Adds a device.
pub fn insert_device(
    c: &Conn<'_>,
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
pub fn shred_device(c: &Conn<'_>, id: &DeviceId, reason: &str, now: i64) -> Result<bool, Error> {
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

fn brick_row(r: &crate::store::Row<'_>) -> crate::store::Result<Brick> {
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
pub fn brick_of(c: &Conn<'_>, id: &DeviceId) -> Result<Option<Brick>, Error> {
    Ok(c
        .query_row(
            "SELECT command_id, device_id, reason, by_staff, created_at, wiped_at FROM bricks WHERE device_id = ?1 ORDER BY created_at LIMIT 1",
            params![id.as_str()],
            brick_row,
        )
        .optional()?)
}

/// Every brick, newest first.
pub fn bricks(c: &Conn<'_>) -> Result<Vec<Brick>, Error> {
    let mut stmt = c.prepare(
        "SELECT command_id, device_id, reason, by_staff, created_at, wiped_at FROM bricks ORDER BY created_at DESC",
    )?;
    let rows = stmt.query_map([], brick_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Records a brick.
pub fn insert_brick(
    c: &Conn<'_>,
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
pub fn record_receipt(c: &Conn<'_>, id: &DeviceId, command_id: &str, receipt: &[u8], now: i64) -> Result<bool, Error> {
    let n = c.execute(
        "UPDATE bricks SET wiped_at = COALESCE(wiped_at, ?3), receipt = COALESCE(receipt, ?4) WHERE device_id = ?1 AND command_id = ?2",
        params![id.as_str(), command_id, now, receipt],
    )?;
    Ok(n == 1)
}

/// Records a successful contact.
pub fn touch_device(c: &Conn<'_>, id: &DeviceId, now: i64) -> Result<(), Error> {
    c.execute("UPDATE devices SET last_contact = ?2 WHERE id = ?1", params![id.as_str(), now])?;
    Ok(())
}

/// Records a nonce; false if this device used it before.
pub fn claim_nonce(c: &Conn<'_>, device: &DeviceId, nonce: &[u8], now: i64, keep_secs: i64) -> Result<bool, Error> {
    // Nonces older than the freshness window can never be replayed successfully: forget them.
    c.execute("DELETE FROM nonces WHERE seen_at < ?1", params![now - keep_secs])?;
    let n = c.execute(
        "INSERT INTO nonces (device_id, nonce, seen_at) VALUES (?1, ?2, ?3) ON CONFLICT DO NOTHING",
        params![device.as_str(), nonce, now],
    )?;
    Ok(n == 1)
}

/// Adds an enrolment token (its hash only).
pub fn insert_enrol_token(c: &Conn<'_>, hash: &[u8], prison_id: i64, now: i64, expires_at: i64) -> Result<(), Error> {
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
pub fn enrol_token(c: &Conn<'_>, hash: &[u8]) -> Result<Option<EnrolToken>, Error> {
    Ok(c.query_row("SELECT prison_id, expires_at, used_at FROM enrol_tokens WHERE hash = ?1", params![hash], |r| {
        Ok(EnrolToken { prison_id: r.get(0)?, expires_at: r.get(1)?, used_at: r.get(2)? })
    })
    .optional()?)
}

/// Marks a token used; false if it was already used.
pub fn use_enrol_token(c: &Conn<'_>, hash: &[u8], device: &DeviceId, now: i64) -> Result<bool, Error> {
    let n = c.execute(
        "UPDATE enrol_tokens SET used_at = ?2, device_id = ?3 WHERE hash = ?1 AND used_at IS NULL",
        params![hash, now, device.as_str()],
    )?;
    Ok(n == 1)
}

fn table(s: Subject<'_>) -> (&'static str, crate::store::Value<'_>) {
    match s {
        Subject::Staff(id) => ("staff", crate::store::Value::Int(id)),
        Subject::Device(id) => ("devices", crate::store::Value::Text(id.as_str())),
    }
}

/// Counts a failure; when it reaches `max`, locks the subject out with doubling back-off.
/// Returns the lock-out length if this failure caused one. The back-off remembers earlier
/// lock-outs until one is `forget_secs` past, whatever succeeded in between: a success that
/// reset it would hand a guesser who shares the account short lock-outs again.
pub fn record_failure(
    c: &Conn<'_>,
    s: Subject<'_>,
    lockout: &crate::config::Lockout,
    now: i64,
) -> Result<Option<u64>, Error> {
    let (t, id) = table(s);
    // Read, then written: the row is locked between (on PostgreSQL), so parallel failures each count.
    c.atomically(|c| {
        c.lock_rows(t, "id", id)?;
        let (failures, lockouts, locked_until): (u32, u32, i64) = c.query_row(
            &format!("SELECT failures, lockouts, locked_until FROM {t} WHERE id = ?1"),
            params![id],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )?;
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
    })
}

/// Clears the run of failures after a success; the back-off history stays (see `record_failure`).
pub fn clear_failures(c: &Conn<'_>, s: Subject<'_>) -> Result<(), Error> {
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
    c: &Conn<'_>,
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
pub fn kiosk_session(c: &Conn<'_>, token: &[u8], now: i64) -> Result<Option<KioskSession>, Error> {
    kiosk_session_by_hash(c, &token_hash(token), now)
}

/// As [`kiosk_session`], by the token's hash (what a live connection keeps).
pub fn kiosk_session_by_hash(c: &Conn<'_>, hash: &[u8], now: i64) -> Result<Option<KioskSession>, Error> {
    Ok(c.query_row(
        "SELECT k.device_id, d.prison_id, k.staff_id, s.display_name FROM kiosk_sessions k
         JOIN devices d ON d.id = k.device_id JOIN staff s ON s.id = k.staff_id
         WHERE k.token_hash = ?1 AND k.expires_at > ?2 AND d.revoked_at IS NULL AND d.exchange_secret IS NOT NULL
           AND s.disabled_at IS NULL",
        params![hash, now],
        |r| {
            let id: String = r.get(0)?;
            let device_id = DeviceId::try_from(id).map_err(|e| crate::store::Error::conversion(0, e))?;
            Ok(KioskSession { device_id, prison_id: r.get(1)?, staff_id: r.get(2)?, nurse: r.get(3)? })
        },
    )
    .optional()?)
}

/// Ends a kiosk session (the laptop locked).
pub fn delete_kiosk_session(c: &Conn<'_>, token: &[u8]) -> Result<(), Error> {
    c.execute("DELETE FROM kiosk_sessions WHERE token_hash = ?1", params![token_hash(token)])?;
    Ok(())
}

/// Stores a staff member's browser session.
pub fn insert_web_session(c: &Conn<'_>, token: &[u8], staff_id: i64, now: i64, expires_at: i64) -> Result<(), Error> {
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
pub fn web_session(c: &Conn<'_>, token: &[u8], now: i64, role: &str) -> Result<Option<WebSession>, Error> {
    web_session_by_hash(c, &token_hash(token), now, role)
}

/// As [`web_session`], by the token's hash (what a live connection keeps).
pub fn web_session_by_hash(c: &Conn<'_>, hash: &[u8], now: i64, role: &str) -> Result<Option<WebSession>, Error> {
    Ok(c.query_row(
        "SELECT s.id, s.display_name, s.username FROM web_sessions w JOIN staff s ON s.id = w.staff_id
         WHERE w.token_hash = ?1 AND w.expires_at > ?2 AND s.role = ?3 AND s.disabled_at IS NULL",
        params![hash, now, role],
        |r| Ok(WebSession { staff_id: r.get(0)?, name: r.get(1)?, username: r.get(2)? }),
    )
    .optional()?)
}

/// Ends a browser session.
pub fn delete_web_session(c: &Conn<'_>, token: &[u8]) -> Result<(), Error> {
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

fn appointment_from_row(r: &crate::store::Row<'_>) -> crate::store::Result<AppointmentRow> {
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
pub fn insert_appointment(c: &Conn<'_>, a: &NewAppointmentRow<'_>) -> Result<i64, Error> {
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
pub fn appointment(c: &Conn<'_>, id: i64) -> Result<Option<AppointmentRow>, Error> {
    Ok(c.query_row(
        &format!("{APPOINTMENT_SELECT} WHERE a.id = ?1 AND a.cancelled_at IS NULL"),
        params![id],
        appointment_from_row,
    )
    .optional()?)
}

/// An appointment by room code.
pub fn appointment_by_code(c: &Conn<'_>, code: &str) -> Result<Option<AppointmentRow>, Error> {
    Ok(c.query_row(
        &format!("{APPOINTMENT_SELECT} WHERE a.room_code = ?1 AND a.cancelled_at IS NULL"),
        params![code],
        appointment_from_row,
    )
    .optional()?)
}

/// Appointments overlapping `[from, to)`, for a prison or a consultant, earliest first.
pub fn appointments_between(
    c: &Conn<'_>,
    prison_id: Option<i64>,
    consultant_id: Option<i64>,
    from: i64,
    to: i64,
) -> Result<Vec<AppointmentRow>, Error> {
    let mut stmt = c.prepare(&format!(
        "{APPOINTMENT_SELECT} WHERE a.cancelled_at IS NULL AND a.ends_at > ?1 AND a.starts_at < ?2
         AND (CAST(?3 AS BIGINT) IS NULL OR a.prison_id = ?3) AND (CAST(?4 AS BIGINT) IS NULL OR a.consultant_id = ?4) ORDER BY a.starts_at, a.id"
    ))?;
    let rows = stmt.query_map(params![from, to, prison_id, consultant_id], appointment_from_row)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// A prison's own posture policy, if IT set one.
pub fn posture_policy(c: &Conn<'_>, prison_id: i64) -> Result<Option<crate::config::PosturePolicy>, Error> {
    let json: Option<String> = c
        .query_row("SELECT policy FROM prison_posture WHERE prison_id = ?1", params![prison_id], |r| r.get(0))
        .optional()?;
    json.map(|j| {
        serde_json::from_str(&j).map_err(|e| Error::Config(format!("prison {prison_id}'s posture policy: {e}")))
    })
    .transpose()
}

/// Sets a prison's posture policy.
pub fn set_posture_policy(c: &Conn<'_>, prison_id: i64, policy: &crate::config::PosturePolicy) -> Result<(), Error> {
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
pub fn record_posture(c: &Conn<'_>, id: &DeviceId, record: &PostureRecord) -> Result<(), Error> {
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
pub fn posture_of(c: &Conn<'_>, id: &DeviceId) -> Result<Option<PostureRecord>, Error> {
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
pub fn label_device(c: &Conn<'_>, id: &DeviceId, asset_tag: &str, serial: &str) -> Result<(), Error> {
    c.execute(
        "INSERT INTO device_labels (device_id, asset_tag, serial) VALUES (?1, ?2, ?3)
         ON CONFLICT (device_id) DO UPDATE SET asset_tag = excluded.asset_tag, serial = excluded.serial",
        params![id.as_str(), asset_tag, serial],
    )?;
    Ok(())
}

/// A laptop's asset tag and serial number (empty when not given).
pub fn device_label(c: &Conn<'_>, id: &DeviceId) -> Result<(String, String), Error> {
    Ok(c.query_row("SELECT asset_tag, serial FROM device_labels WHERE device_id = ?1", params![id.as_str()], |r| {
        Ok((r.get(0)?, r.get(1)?))
    })
    .optional()?
    .unwrap_or_default())
}

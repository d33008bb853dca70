//! The schema, as numbered migrations both databases run; `schema_version` records how far a
//! database has got. Written once in the SQL both speak: `{id}` is an auto-numbered key,
//! INTEGER and BLOB become BIGINT and BYTEA on PostgreSQL, and the statements that differ
//! (triggers) are given per dialect.

use super::{Conn, Dialect, Error, Serial};

/// One step of the schema.
struct Migration {
    version: i64,
    common: &'static str,
    sqlite: &'static str,
    postgres: &'static str,
}

/// Every step, oldest first. A step, once released, is never edited: a change is a new step.
const MIGRATIONS: &[Migration] = &[
    Migration { version: 1, common: V1, sqlite: V1_SQLITE, postgres: V1_POSTGRES },
    Migration { version: 2, common: "", sqlite: "", postgres: V2_POSTGRES },
];

/// Numbers for the instances sharing one PostgreSQL database (`crate::bus`), each a signalling
/// connection id's high 32 bits and the key of a session lock: positive 32-bit values, never
/// reused (two billion starts later the sequence fails loudly rather than wrap). SQLite has one
/// instance, numbered 0.
const V2_POSTGRES: &str = "CREATE SEQUENCE IF NOT EXISTS hub_instance MINVALUE 1 MAXVALUE 2147483647 NO CYCLE;";

/// The tables as they were when migrations were introduced (every `IF NOT EXISTS`: a database
/// made before then has them already, and gets here through `db::open`'s older upgrades).
const V1: &str = r#"
CREATE TABLE IF NOT EXISTS prisons (
    id {id},
    name TEXT NOT NULL UNIQUE
);
CREATE TABLE IF NOT EXISTS staff (
    id {id},
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
    id {id},
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
    id {id},
    at INTEGER NOT NULL,
    event TEXT NOT NULL,
    outcome TEXT NOT NULL,
    reason TEXT,
    device_id TEXT,
    staff TEXT,
    prison_id INTEGER,
    detail TEXT,
    -- The hash chain (docs/brick.md): each row's hash covers the previous row's.
    prev_hash BLOB NOT NULL DEFAULT {empty},
    hash BLOB NOT NULL DEFAULT {empty}
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
    id {id},
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
-- How the audit chain's links are made (crate::audit::ensure_keyed).
CREATE TABLE IF NOT EXISTS audit_meta (id INTEGER PRIMARY KEY CHECK (id = 1), scheme TEXT NOT NULL);
"#;

/// Outcome notes are never changed or deleted, whatever code path tries.
const V1_SQLITE: &str = r#"
CREATE TRIGGER IF NOT EXISTS outcome_notes_immutable BEFORE UPDATE ON outcome_notes
BEGIN SELECT RAISE(ABORT, 'an outcome note is never changed: add an addendum'); END;
CREATE TRIGGER IF NOT EXISTS outcome_notes_kept BEFORE DELETE ON outcome_notes
BEGIN SELECT RAISE(ABORT, 'an outcome note is never deleted'); END;
"#;

/// The same on PostgreSQL, where TRUNCATE skips row triggers and so is refused too.
const V1_POSTGRES: &str = r#"
CREATE OR REPLACE FUNCTION outcome_notes_refuse() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'UPDATE' THEN
        RAISE EXCEPTION 'an outcome note is never changed: add an addendum' USING ERRCODE = 'restrict_violation';
    END IF;
    RAISE EXCEPTION 'an outcome note is never deleted' USING ERRCODE = 'restrict_violation';
END $$;
CREATE OR REPLACE TRIGGER outcome_notes_immutable BEFORE UPDATE ON outcome_notes
    FOR EACH ROW EXECUTE FUNCTION outcome_notes_refuse();
CREATE OR REPLACE TRIGGER outcome_notes_kept BEFORE DELETE ON outcome_notes
    FOR EACH ROW EXECUTE FUNCTION outcome_notes_refuse();
CREATE OR REPLACE TRIGGER outcome_notes_not_truncated BEFORE TRUNCATE ON outcome_notes
    FOR EACH STATEMENT EXECUTE FUNCTION outcome_notes_refuse();
"#;

/// `sql` in `dialect`.
fn render(sql: &str, dialect: Dialect) -> String {
    match dialect {
        Dialect::Postgres => sql
            .replace("{id}", "BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY")
            .replace("{empty}", "'\\x'::bytea")
            .replace("INTEGER", "BIGINT")
            .replace("BLOB", "BYTEA"),
        _ => sql.replace("{id}", "INTEGER PRIMARY KEY").replace("{empty}", "x''"),
    }
}

/// The newest version this build knows.
pub fn latest() -> i64 {
    MIGRATIONS.last().map_or(0, |m| m.version)
}

/// Brings the database up to [`latest`], in one transaction (on PostgreSQL one instance at a
/// time: several starting together wait for each other). A database newer than this build is
/// refused rather than used.
///
/// # Errors
/// A step failed (nothing of it is kept), or the database is newer than this build.
pub fn migrate<K>(c: &Conn<'_, K>) -> Result<(), Error> {
    let tx = c.transaction()?;
    tx.serialise(Serial::Migrations)?;
    tx.execute_batch(&render(
        "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, applied_at INTEGER NOT NULL);",
        tx.dialect(),
    ))?;
    let current: i64 = tx.query_row("SELECT COALESCE(MAX(version), 0) FROM schema_version", [], |r| r.get(0))?;
    if current > latest() {
        return Err(Error::NewerSchema { found: current, known: latest() });
    }
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX));
    for m in MIGRATIONS.iter().filter(|m| m.version > current) {
        tx.execute_batch(&render(m.common, tx.dialect()))?;
        let own = match tx.dialect() {
            Dialect::Postgres => m.postgres,
            _ => m.sqlite,
        };
        tx.execute_batch(&render(own, tx.dialect()))?;
        tx.execute("INSERT INTO schema_version (version, applied_at) VALUES (?1, ?2)", [m.version, now])?;
    }
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn postgres_gets_its_own_types() {
        let pg = render(V1, Dialect::Postgres);
        assert!(!pg.contains("INTEGER") && !pg.contains("BLOB") && !pg.contains('{'), "{pg}");
        assert!(pg.contains("id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY"));
        let sqlite = render(V1, Dialect::Sqlite);
        assert!(sqlite.contains("id INTEGER PRIMARY KEY") && sqlite.contains("DEFAULT x''"));
    }
}

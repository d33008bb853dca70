//! The staff life cycle IT manages: list every account (role, prison, state), disable a leaver at
//! once, reset a password or a TOTP seed, lift a lock-out early. Each change is audited under the
//! IT member's name with the account and reason in the detail. The CLI and the admin page both
//! call these; the caller closes the live connections of the sessions a change ended.

use crate::admin::NewStaffSecret;
use crate::config::ServerConfig;
use crate::conn::Conn;
use crate::store::{params, OptionalExtension as _};
use crate::{audit, auth, Error};
use serde::Serialize;

/// One account as IT sees it (no hash, no seed).
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct StaffRow {
    /// Login name.
    pub username: String,
    /// Name shown on screens.
    pub display_name: String,
    /// nurse, consultant or it.
    pub role: String,
    /// A nurse's prison.
    pub prison: Option<String>,
    /// active, locked (until `locked_until`) or disabled.
    pub state: &'static str,
    /// Locked out until (Unix seconds), while locked.
    pub locked_until: Option<i64>,
    /// When the account was disabled.
    pub disabled_at: Option<i64>,
}

/// Every account, by user name.
pub fn list(c: &Conn<'_>, now: i64) -> Result<Vec<StaffRow>, Error> {
    let mut stmt = c.prepare(
        "SELECT s.username, s.display_name, s.role, p.name, s.locked_until, s.disabled_at
         FROM staff s LEFT JOIN prisons p ON p.id = s.prison_id ORDER BY s.username",
    )?;
    let rows = stmt.query_map([], |r| {
        let (locked_until, disabled_at): (i64, Option<i64>) = (r.get(4)?, r.get(5)?);
        let state = match (disabled_at, locked_until > now) {
            (Some(_), _) => "disabled",
            (None, true) => "locked",
            (None, false) => "active",
        };
        Ok(StaffRow {
            username: r.get(0)?,
            display_name: r.get(1)?,
            role: r.get(2)?,
            prison: r.get(3)?,
            state,
            locked_until: (locked_until > now).then_some(locked_until),
            disabled_at,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// A reason IT gives: present, and short enough to keep.
fn reason(text: &str) -> Result<&str, Error> {
    let text = text.trim();
    if text.is_empty() {
        return Err(Error::BadRequest("give a reason for the audit log".into()));
    }
    if text.chars().count() > 500 {
        return Err(Error::BadRequest("keep the reason under 500 characters".into()));
    }
    Ok(text)
}

/// The account's row id, or a clear "not found".
fn id_of(c: &Conn<'_>, username: &str) -> Result<i64, Error> {
    c.query_row("SELECT id FROM staff WHERE username = ?1", params![username], |r| r.get(0))
        .optional()?
        .ok_or_else(|| Error::NotFound(format!("staff member {username:?}")))
}

fn record(c: &Conn<'_>, now: i64, event: &str, by: &str, detail: String) -> Result<(), Error> {
    audit::record(
        c,
        now,
        &audit::Entry { event, outcome: "ok", staff: Some(by), detail: Some(detail), ..Default::default() },
    )
}

/// The sessions a change ended, as token hashes: the caller closes their live connections
/// (`sessions::Sessions::end_session`); in another process the server's sweep does.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct EndedSessions(pub Vec<Vec<u8>>);

/// Ends every session of account `id` (laptops it unlocked, its browser sessions).
fn end_sessions(c: &Conn<'_>, id: i64) -> Result<EndedSessions, Error> {
    let mut hashes = Vec::new();
    for table in ["kiosk_sessions", "web_sessions"] {
        let mut stmt = c.prepare(&format!("SELECT token_hash FROM {table} WHERE staff_id = ?1"))?;
        let found = stmt.query_map(params![id], |r| r.get::<_, Vec<u8>>(0))?;
        hashes.extend(found.collect::<Result<Vec<_>, _>>()?);
        c.execute(&format!("DELETE FROM {table} WHERE staff_id = ?1"), params![id])?;
    }
    Ok(EndedSessions(hashes))
}

/// Disables `username` at once: no further sign-in anywhere, and every session it holds ends.
pub fn disable(c: &Conn<'_>, username: &str, why: &str, by: &str, now: i64) -> Result<EndedSessions, Error> {
    let why = reason(why)?;
    let id = id_of(c, username)?;
    let tx = c.transaction()?;
    tx.execute("UPDATE staff SET disabled_at = COALESCE(disabled_at, ?2) WHERE id = ?1", params![id, now])?;
    let ended = end_sessions(&tx, id)?;
    record(
        &tx,
        now,
        "staff_disabled",
        by,
        format!("account={username} sessions_ended={} reason={why}", ended.0.len()),
    )?;
    tx.commit()?;
    Ok(ended)
}

/// Sets a new password for `username` (their sessions end: whoever held the old one is out).
pub fn reset_password(
    c: &Conn<'_>,
    config: &ServerConfig,
    username: &str,
    password: &str,
    by: &str,
    now: i64,
) -> Result<EndedSessions, Error> {
    if password.chars().count() < 12 {
        return Err(Error::BadRequest("a password has at least 12 characters".into()));
    }
    let id = id_of(c, username)?;
    let hash = auth::hash_password(password, config.argon2)?;
    let tx = c.transaction()?;
    tx.execute("UPDATE staff SET password_hash = ?2, failures = 0 WHERE id = ?1", params![id, hash])?;
    let ended = end_sessions(&tx, id)?;
    record(&tx, now, "password_reset", by, format!("account={username}"))?;
    tx.commit()?;
    Ok(ended)
}

/// Gives `username` a new TOTP seed, shown once (the old authenticator stops working; their
/// sessions end).
pub fn reset_totp(c: &Conn<'_>, username: &str, by: &str, now: i64) -> Result<(NewStaffSecret, EndedSessions), Error> {
    let id = id_of(c, username)?;
    let seed = auth::new_totp_secret();
    let sealed = c.keys().seal.seal(&seed, username)?;
    let tx = c.transaction()?;
    tx.execute("UPDATE staff SET totp_secret = ?2, last_totp_step = -1 WHERE id = ?1", params![id, sealed])?;
    let ended = end_sessions(&tx, id)?;
    record(&tx, now, "totp_reset", by, format!("account={username}"))?;
    tx.commit()?;
    let otpauth_uri = auth::otpauth_uri(&seed, username)?;
    Ok((NewStaffSecret { totp_secret: seed, otpauth_uri }, ended))
}

/// Lifts `username`'s lock-out now (the back-off history stays: the next lock-out is no shorter).
pub fn lift_lockout(c: &Conn<'_>, username: &str, why: &str, by: &str, now: i64) -> Result<(), Error> {
    let why = reason(why)?;
    let id = id_of(c, username)?;
    let tx = c.transaction()?;
    tx.execute("UPDATE staff SET locked_until = 0, failures = 0 WHERE id = ?1", params![id])?;
    record(&tx, now, "lockout_lifted", by, format!("account={username} reason={why}"))?;
    tx.commit()?;
    Ok(())
}

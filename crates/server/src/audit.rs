//! The audit log: every enrolment, activation and refusal with its real reason. No secrets and no
//! clinical content are ever written here.

use crate::Error;
use rusqlite::{params, Connection};
use sc_proto::DeviceId;
use serde::Serialize;

/// Why something was refused (or what happened), as recorded.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Reason {
    /// The request did not parse.
    Malformed,
    /// No such device.
    UnknownDevice,
    /// The device signature did not verify.
    BadSignature,
    /// The device was revoked (its secret shredded).
    RevokedDevice,
    /// The device is locked out.
    DeviceLockedOut,
    /// The timestamp is outside the freshness window.
    StaleTime,
    /// The nonce was seen before.
    ReplayedNonce,
    /// The posture report is not acceptable.
    Posture,
    /// No such staff member.
    UnknownStaff,
    /// The staff account is locked out.
    StaffLockedOut,
    /// Wrong password.
    BadPassword,
    /// Wrong TOTP code.
    BadCode,
    /// A TOTP code already used.
    ReusedCode,
    /// The staff member's role may not do this.
    WrongRole,
    /// The staff member belongs to another prison than the device.
    OtherPrison,
    /// The enrolment token is unknown.
    TokenUnknown,
    /// The enrolment token was already used.
    TokenUsed,
    /// The enrolment token expired.
    TokenExpired,
    /// IT staff revoked the device.
    Revoked,
}

impl Reason {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Reason::Malformed => "malformed",
            Reason::UnknownDevice => "unknown_device",
            Reason::BadSignature => "bad_signature",
            Reason::RevokedDevice => "revoked_device",
            Reason::DeviceLockedOut => "device_locked_out",
            Reason::StaleTime => "stale_time",
            Reason::ReplayedNonce => "replayed_nonce",
            Reason::Posture => "posture",
            Reason::UnknownStaff => "unknown_staff",
            Reason::StaffLockedOut => "staff_locked_out",
            Reason::BadPassword => "bad_password",
            Reason::BadCode => "bad_code",
            Reason::ReusedCode => "reused_code",
            Reason::WrongRole => "wrong_role",
            Reason::OtherPrison => "other_prison",
            Reason::TokenUnknown => "token_unknown",
            Reason::TokenUsed => "token_used",
            Reason::TokenExpired => "token_expired",
            Reason::Revoked => "revoked",
        }
    }
}

/// One event to record.
#[derive(Debug, Default)]
pub struct Entry<'a> {
    /// What happened: enrol, activate, revoke, ...
    pub event: &'a str,
    /// ok or refused.
    pub outcome: &'a str,
    /// Why, when refused.
    pub reason: Option<Reason>,
    /// The device concerned.
    pub device_id: Option<&'a DeviceId>,
    /// The staff user name concerned (as typed, for refusals).
    pub staff: Option<&'a str>,
    /// The prison concerned.
    pub prison_id: Option<i64>,
    /// Non-secret detail (e.g. posture summary, lock-out length).
    pub detail: Option<String>,
}

/// Appends an event.
pub fn record(c: &Connection, at: i64, e: &Entry<'_>) -> Result<(), Error> {
    c.execute(
        "INSERT INTO audit (at, event, outcome, reason, device_id, staff, prison_id, detail)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        params![
            at,
            e.event,
            e.outcome,
            e.reason.map(Reason::as_str),
            e.device_id.map(DeviceId::as_str),
            e.staff,
            e.prison_id,
            e.detail
        ],
    )?;
    Ok(())
}

/// A stored event.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Row {
    /// Sequence number.
    pub id: i64,
    /// Unix time.
    pub at: i64,
    /// What happened.
    pub event: String,
    /// ok or refused.
    pub outcome: String,
    /// Why.
    pub reason: Option<String>,
    /// Device.
    pub device_id: Option<String>,
    /// Staff.
    pub staff: Option<String>,
    /// Prison.
    pub prison_id: Option<i64>,
    /// Detail.
    pub detail: Option<String>,
}

/// The newest `limit` events, newest last.
pub fn tail(c: &Connection, limit: u32) -> Result<Vec<Row>, Error> {
    let mut stmt = c.prepare(
        "SELECT id, at, event, outcome, reason, device_id, staff, prison_id, detail FROM
         (SELECT * FROM audit ORDER BY id DESC LIMIT ?1) ORDER BY id",
    )?;
    let rows = stmt.query_map(params![limit], |r| {
        Ok(Row {
            id: r.get(0)?,
            at: r.get(1)?,
            event: r.get(2)?,
            outcome: r.get(3)?,
            reason: r.get(4)?,
            device_id: r.get(5)?,
            staff: r.get(6)?,
            prison_id: r.get(7)?,
            detail: r.get(8)?,
        })
    })?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

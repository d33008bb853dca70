//! The audit log: every enrolment, activation and refusal with its real reason. No secrets and no
//! clinical content are ever written here.

use crate::conn::Conn;
use crate::store::{params, OptionalExtension as _};
use crate::Error;
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
    /// IT disabled the staff account (a leaver).
    StaffDisabled,
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
            Reason::StaffDisabled => "staff_disabled",
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

/// The longest user name stored (longer ones are cut).
pub const MAX_NAME: usize = 64;
/// The longest detail stored.
pub const MAX_DETAIL: usize = 512;

/// `text` cut to `max` characters (at a character boundary), marked when cut.
fn capped(text: &str, max: usize) -> String {
    match text.char_indices().nth(max) {
        None => text.to_owned(),
        Some((at, _)) => format!("{}...", &text[..at]),
    }
}

/// Appends an event, chained to the one before (callers hold the connection, so appends are serial).
pub fn record(c: &Conn<'_>, at: i64, e: &Entry<'_>) -> Result<(), Error> {
    // The chain's head is read then extended: one writer at a time, across instances too.
    c.atomically(|c| {
        c.serialise(crate::store::Serial::AuditChain)?;
        append(c, at, e)
    })
}

fn append(c: &Conn<'_>, at: i64, e: &Entry<'_>) -> Result<(), Error> {
    let (last_id, prev): (i64, Vec<u8>) = c
        .query_row("SELECT id, hash FROM audit ORDER BY id DESC LIMIT 1", [], |r| Ok((r.get(0)?, r.get(1)?)))
        .optional()?
        .unwrap_or((0, GENESIS.to_vec()));
    let row = Row {
        id: last_id + 1,
        at,
        event: e.event.to_owned(),
        outcome: e.outcome.to_owned(),
        reason: e.reason.map(|r| r.as_str().to_owned()),
        device_id: e.device_id.map(|d| d.as_str().to_owned()),
        staff: e.staff.map(|t| capped(t, MAX_NAME)),
        prison_id: e.prison_id,
        detail: e.detail.as_deref().map(|t| capped(t, MAX_DETAIL)),
    };
    let hash = row.link(c, &prev)?;
    c.execute(
        "INSERT INTO audit (id, at, event, outcome, reason, device_id, staff, prison_id, detail, prev_hash, hash)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
        params![
            row.id,
            row.at,
            row.event,
            row.outcome,
            row.reason,
            row.device_id,
            row.staff,
            row.prison_id,
            row.detail,
            prev,
            hash.to_vec()
        ],
    )?;
    Ok(())
}

/// The `prev_hash` of the first row.
pub const GENESIS: [u8; 32] = [0u8; 32];

/// Where the chain first breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BrokenLink {
    /// The first row that does not fit (for a deleted row: the one after the gap).
    pub id: i64,
    /// What does not fit.
    pub why: &'static str,
}

impl std::fmt::Display for BrokenLink {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "audit row {}: {}", self.id, self.why)
    }
}

/// A chain verified up to a row: how many rows, and the newest one (keep its hash elsewhere to
/// detect truncation).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Rows checked, in all.
    pub rows: u64,
    /// The newest row's id (0: none).
    pub last_id: i64,
    /// The newest row's hash.
    pub head: [u8; 32],
}

/// Rows read at a time while verifying.
const VERIFY_PAGE: i64 = 1000;

/// Walks the chain from the first row; `Ok(Err(link))` names the first broken link.
pub fn verify(c: &Conn<'_>) -> Result<Result<Verified, BrokenLink>, Error> {
    verify_from(c, None).map(|r| r.map(|(v, _)| v))
}

/// Walks the chain on from `from` (a chain verified before; `None`: from the first row), after
/// checking that its newest row is still there, unchanged. Returns the chain verified to the
/// newest row and how many rows this walk read; `Ok(Err(link))` names the first broken link.
/// The admin page calls this on every refresh, so it reads only what was added since.
pub fn verify_from(c: &Conn<'_>, from: Option<&Verified>) -> Result<Result<(Verified, u64), BrokenLink>, Error> {
    let start = from.cloned().unwrap_or(Verified { rows: 0, last_id: 0, head: GENESIS });
    if start.last_id > 0 {
        let hash: Option<Vec<u8>> =
            c.query_row("SELECT hash FROM audit WHERE id = ?1", params![start.last_id], |r| r.get(0)).optional()?;
        if hash.as_deref() != Some(start.head.as_slice()) {
            return Ok(Err(BrokenLink {
                id: start.last_id,
                why: "a row verified earlier is gone or changed (the log was truncated or edited)",
            }));
        }
    }
    let mut expected_prev = start.head.to_vec();
    let (mut last_id, mut walked) = (start.last_id, 0u64);
    // In pages, so a long log is never held whole.
    loop {
        let page = c.query_vec(
            "SELECT id, at, event, outcome, reason, device_id, staff, prison_id, detail, prev_hash, hash FROM audit
             WHERE id > ?1 ORDER BY id LIMIT ?2",
            params![last_id, VERIFY_PAGE],
            |r| Ok((Row::from_sql(r)?, r.get::<_, Vec<u8>>(9)?, r.get::<_, Vec<u8>>(10)?)),
        )?;
        let full = page.len() == usize::try_from(VERIFY_PAGE).unwrap_or(usize::MAX);
        for (row, prev, hash) in page {
            if prev != expected_prev {
                return Ok(Err(BrokenLink {
                    id: row.id,
                    why: "does not follow the row before it (a row was deleted, inserted or moved)",
                }));
            }
            if row.link(c, &prev)?.as_slice() != hash.as_slice() {
                return Ok(Err(BrokenLink {
                    id: row.id,
                    why: "its contents do not match its link under the audit key (the row was edited)",
                }));
            }
            expected_prev = hash;
            last_id = row.id;
            walked += 1;
        }
        if !full {
            break;
        }
    }
    let mut head = GENESIS;
    if expected_prev.len() == 32 {
        head.copy_from_slice(&expected_prev);
    }
    Ok(Ok((Verified { rows: start.rows + walked, last_id, head }, walked)))
}

pub use crate::keys::AuditKey;

/// How the chain's links are made, as `audit_meta` records it.
const KEYED: &str = "hmac-sha256";

/// Makes sure the chain is linked under the key: a new database is marked so; an older one's
/// unkeyed chain is checked whole and then linked again under the key, in one transaction. A
/// broken unkeyed chain is not re-linked (that would launder the edit): opening fails, naming
/// the row.
pub(crate) fn ensure_keyed(c: &Conn<'_>) -> Result<(), Error> {
    let tx = c.transaction()?;
    // Instances starting together take turns, and a later one sees the first's keyed chain.
    tx.serialise(crate::store::Serial::AuditChain)?;
    // A database from before the chain was keyed has no such table (the schema makes it now).
    tx.execute_batch(
        "CREATE TABLE IF NOT EXISTS audit_meta (id INTEGER PRIMARY KEY CHECK (id = 1), scheme TEXT NOT NULL)",
    )?;
    let scheme: Option<String> =
        tx.query_row("SELECT scheme FROM audit_meta WHERE id = 1", [], |r| r.get(0)).optional()?;
    if scheme.as_deref() == Some(KEYED) {
        return Ok(());
    }
    let rows = {
        let mut stmt = tx.prepare(
            "SELECT id, at, event, outcome, reason, device_id, staff, prison_id, detail, prev_hash, hash FROM audit ORDER BY id",
        )?;
        let rows =
            stmt.query_map([], |r| Ok((Row::from_sql(r)?, r.get::<_, Vec<u8>>(9)?, r.get::<_, Vec<u8>>(10)?)))?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    let mut expected = GENESIS.to_vec();
    for (row, prev, hash) in &rows {
        if *prev != expected || row.unkeyed_hash(prev).as_slice() != hash.as_slice() {
            return Err(Error::Config(format!(
                "the audit chain is broken at row {} (before it was keyed): keep a copy of the database and \
                 investigate before starting this version",
                row.id
            )));
        }
        expected.clone_from(hash);
    }
    let mut prev = GENESIS.to_vec();
    for (row, _, _) in &rows {
        let link = row.link(&tx, &prev)?.to_vec();
        tx.execute("UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE id = ?3", params![prev, link, row.id])?;
        prev = link;
    }
    tx.execute(
        "INSERT INTO audit_meta (id, scheme) VALUES (1, ?1) ON CONFLICT (id) DO UPDATE SET scheme = excluded.scheme",
        params![KEYED],
    )?;
    tx.commit()?;
    Ok(())
}

/// The signing context of an audit checkpoint (signed with the server's command key).
pub const SIG_CONTEXT_CHECKPOINT: &[u8] = b"secureconsult/audit-checkpoint/v1\0";

/// What a checkpoint vouches for: the chain up to `last_id`, with `head` as that row's link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, serde::Deserialize)]
pub struct Checkpoint {
    /// The newest row then.
    pub last_id: i64,
    /// Rows then.
    pub rows: u64,
    /// The newest row's link, hex.
    pub head: String,
    /// When it was taken (Unix seconds).
    pub at: i64,
}

/// Why a checkpoint does not hold against the log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CheckpointMismatch {
    /// Not signed by this server's command key (or not a checkpoint at all).
    #[error("the checkpoint is not signed by this server")]
    NotOurs,
    /// The row it ends at is gone: the newest rows were removed.
    #[error("row {0}, the checkpoint's last, is gone: the log was truncated")]
    Truncated(i64),
    /// The row it ends at has another link: the log was rewritten up to there.
    #[error("row {0}'s link differs from the checkpoint's: the log was rewritten")]
    Rewritten(i64),
}

/// Verifies the chain and signs a checkpoint of its head with the command key, for IT to keep
/// off the box. `Ok(Err(link))` if the chain is broken (no checkpoint of a broken chain).
pub fn checkpoint(
    c: &Conn<'_>,
    key: &ring::signature::Ed25519KeyPair,
    now: i64,
) -> Result<Result<sc_proto::Signed, BrokenLink>, Error> {
    let v = match verify(c)? {
        Ok(v) => v,
        Err(b) => return Ok(Err(b)),
    };
    let cp = Checkpoint {
        last_id: v.last_id,
        rows: v.rows,
        head: v.head.iter().map(|b| format!("{b:02x}")).collect(),
        at: now,
    };
    let payload = serde_json::to_vec(&cp).map_err(|e| Error::Crypto(format!("checkpoint: {e}")))?;
    let signature = key.sign(&sc_proto::signing_input(SIG_CONTEXT_CHECKPOINT, &payload));
    let mut sig = [0u8; 64];
    sig.copy_from_slice(signature.as_ref());
    Ok(Ok(sc_proto::Signed { payload: sc_proto::Bytes(payload), signature: sc_proto::Bytes(sig) }))
}

/// Checks a checkpoint against the log: signed by `command_public`, and its last row still
/// there with the same link. (The rows before it are the chain's to vouch for: `verify`.)
pub fn check_checkpoint(
    c: &Conn<'_>,
    signed: &sc_proto::Signed,
    command_public: &[u8; 32],
) -> Result<Result<Checkpoint, CheckpointMismatch>, Error> {
    use ring::signature::{UnparsedPublicKey, ED25519};
    let message = sc_proto::signing_input(SIG_CONTEXT_CHECKPOINT, &signed.payload.0);
    if UnparsedPublicKey::new(&ED25519, command_public).verify(&message, &signed.signature.0).is_err() {
        return Ok(Err(CheckpointMismatch::NotOurs));
    }
    let Ok(cp) = serde_json::from_slice::<Checkpoint>(&signed.payload.0) else {
        return Ok(Err(CheckpointMismatch::NotOurs));
    };
    let hash: Option<Vec<u8>> =
        c.query_row("SELECT hash FROM audit WHERE id = ?1", params![cp.last_id], |r| r.get(0)).optional()?;
    let Some(hash) = hash else { return Ok(Err(CheckpointMismatch::Truncated(cp.last_id))) };
    let hex: String = hash.iter().map(|b| format!("{b:02x}")).collect();
    if hex != cp.head {
        return Ok(Err(CheckpointMismatch::Rewritten(cp.last_id)));
    }
    Ok(Ok(cp))
}

/// Chains rows that have no hash yet, in id order (the one-time migration of an older database).
pub(crate) fn chain_unchained(c: &Conn<'_>) -> Result<(), Error> {
    let rows = {
        let mut stmt = c.prepare(
            "SELECT id, at, event, outcome, reason, device_id, staff, prison_id, detail FROM audit ORDER BY id",
        )?;
        let rows = stmt.query_map([], Row::from_sql)?;
        rows.collect::<Result<Vec<_>, _>>()?
    };
    let mut prev = GENESIS.to_vec();
    for row in rows {
        let hash = row.unkeyed_hash(&prev).to_vec();
        c.execute("UPDATE audit SET prev_hash = ?1, hash = ?2 WHERE id = ?3", params![prev, hash, row.id])?;
        prev = hash;
    }
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

impl Row {
    fn from_sql(r: &crate::store::Row<'_>) -> crate::store::Result<Self> {
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
    }

    /// Every field, length-prefixed after the previous link (so no two different rows encode
    /// alike): what a row's link authenticates.
    fn encode(&self, prev: &[u8]) -> Vec<u8> {
        let mut b = Vec::with_capacity(128);
        b.extend_from_slice(prev);
        b.extend_from_slice(&self.id.to_le_bytes());
        b.extend_from_slice(&self.at.to_le_bytes());
        let text = |b: &mut Vec<u8>, v: Option<&str>| match v {
            None => b.push(0),
            Some(s) => {
                b.push(1);
                b.extend_from_slice(&(s.len() as u64).to_le_bytes());
                b.extend_from_slice(s.as_bytes());
            }
        };
        text(&mut b, Some(&self.event));
        text(&mut b, Some(&self.outcome));
        text(&mut b, self.reason.as_deref());
        text(&mut b, self.device_id.as_deref());
        text(&mut b, self.staff.as_deref());
        match self.prison_id {
            None => b.push(0),
            Some(p) => {
                b.push(1);
                b.extend_from_slice(&p.to_le_bytes());
            }
        }
        text(&mut b, self.detail.as_deref());
        b
    }

    /// The row's link: HMAC-SHA256 under the server's audit key, which only this process holds
    /// (the store's keys), never the database.
    pub fn link(&self, c: &Conn<'_>, prev: &[u8]) -> Result<[u8; 32], Error> {
        Ok(c.keys().audit.link(&self.encode(prev)))
    }

    /// The link of the first, unkeyed chain (SHA-256 with the v1 prefix): read only to check an
    /// older database's chain before it is linked again under the key. Anyone can compute it.
    pub fn unkeyed_hash(&self, prev: &[u8]) -> [u8; 32] {
        use sha2::{Digest as _, Sha256};
        let mut h = Sha256::new();
        h.update(b"secureconsult/audit/v1\0");
        h.update(self.encode(prev));
        h.finalize().into()
    }
}

/// The newest `limit` events, newest last.
pub fn tail(c: &Conn<'_>, limit: u32) -> Result<Vec<Row>, Error> {
    let mut stmt = c.prepare(
        "SELECT id, at, event, outcome, reason, device_id, staff, prison_id, detail FROM
         (SELECT * FROM audit ORDER BY id DESC LIMIT ?1) AS newest ORDER BY id",
    )?;
    let rows = stmt.query_map(params![limit], Row::from_sql)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

//! `POST /v1/activate`: the key is released only when every check holds: an enrolled, unrevoked
//! device's signature; a fresh nonce and time; acceptable posture; the staff member's password and
//! an unused TOTP code; the staff member's role and prison; neither side locked out.
//! The laptop hears only "refused" (or the lock-out time); the audit log records the real reason.

use crate::audit::{self, Reason};
use crate::conn::Conn;
use crate::db::{self, Device, Staff, Subject};
use crate::posture::{Failing, When};
use crate::signin::{self, Channel, Verdict};
use crate::{AppState, Error};
use ring::signature::{UnparsedPublicKey, ED25519};
use sc_proto::{ActivatePayload, ActivateResponse, Bytes, Signed, SIG_CONTEXT_ACTIVATE};

/// Who a refusal's failure counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Count {
    /// Nobody: the request may not come from the device (bad signature, replay, stale).
    Nobody,
    /// The device (a staff account's failures are counted by `signin::verdict`).
    Device,
}

struct Ctx<'a> {
    now: i64,
    /// The enrolled device the request names, once found.
    device: Option<&'a Device>,
    /// The staff account concerned, once found.
    staff: Option<&'a Staff>,
    /// The name of an existing account the request named (for the audit; a made-up name is
    /// never stored).
    known_name: Option<&'a str>,
    /// Set when this failure locked the staff account out, for how long.
    staff_locked_for: Option<u64>,
}

fn audit_refusal(c: &Conn<'_>, ctx: &Ctx<'_>, reason: Reason, detail: Option<String>) -> Result<(), Error> {
    audit::record(
        c,
        ctx.now,
        &audit::Entry {
            event: "activate",
            outcome: "refused",
            reason: Some(reason),
            // Only what the server knows: an unknown device's id or a made-up name is not stored.
            device_id: ctx.device.map(|d| &d.id),
            staff: ctx.staff.map(|s| s.username.as_str()).or(ctx.known_name),
            prison_id: ctx.device.map(|d| d.prison_id),
            detail,
        },
    )
}

/// Refusals the device's key did not sign for (or that a replay could have caused): counted,
/// not logged one by one (`crate::tally`).
fn anonymous(reason: Reason) -> bool {
    matches!(
        reason,
        Reason::Malformed | Reason::UnknownDevice | Reason::BadSignature | Reason::StaleTime | Reason::ReplayedNonce
    )
}

/// Counts the failure against whom it should, audits it, and answers a plain refusal.
fn refuse(state: &AppState, c: &Conn<'_>, ctx: &Ctx<'_>, reason: Reason, count: Count) -> Result<Error, Error> {
    if anonymous(reason) {
        state.tally.note(c, ctx.now, "activate", reason)?;
        return Ok(Error::Refused);
    }
    let lockout = &state.config.lockout;
    let mut detail = ctx.staff_locked_for.map(|secs| format!("staff locked out for {secs} s"));
    if let (Count::Device, Some(d)) = (count, ctx.device) {
        if let Some(secs) = db::record_failure(c, Subject::Device(&d.id), lockout, ctx.now)? {
            detail = Some(format!("device locked out for {secs} s"));
        }
    }
    audit_refusal(c, ctx, reason, detail)?;
    tracing::info!(device_id = ?ctx.device.map(|d| &d.id), reason = reason.as_str(), "activation refused");
    Ok(Error::Refused)
}

/// Audits an attempt during a lock-out and answers with the time left; nothing is checked.
fn locked_out(c: &Conn<'_>, ctx: &Ctx<'_>, reason: Reason, until: i64) -> Result<Error, Error> {
    audit_refusal(c, ctx, reason, None)?;
    Ok(Error::LockedOut(u64::try_from(until - ctx.now).unwrap_or(1).max(1)))
}

fn version_at_least(have: &str, min: &str) -> bool {
    let parse = |v: &str| -> Option<Vec<u64>> { v.split('.').map(|p| p.parse().ok()).collect() };
    match (parse(have), parse(min)) {
        (Some(h), Some(m)) => h >= m,
        _ => false,
    }
}

/// Phase one, under the database lock: everything that needs no password hashing.
fn precheck(state: &AppState, signed: &Signed, now: i64) -> Result<(ActivatePayload, Device, Option<Staff>), Error> {
    let c = state.db();
    let payload: ActivatePayload = match serde_json::from_slice(&signed.payload.0) {
        Ok(p) => p,
        Err(e) => {
            state.tally.note(&c, now, "activate", Reason::Malformed)?;
            return Err(Error::BadRequest(format!("activation payload: {e}")));
        }
    };
    let mut ctx = Ctx { now, device: None, staff: None, known_name: None, staff_locked_for: None };
    let Some(device) = db::device(&c, &payload.device_id)? else {
        return Err(refuse(state, &c, &ctx, Reason::UnknownDevice, Count::Nobody)?);
    };
    ctx.device = Some(&device);
    let message = sc_proto::signing_input(SIG_CONTEXT_ACTIVATE, &signed.payload.0);
    if UnparsedPublicKey::new(&ED25519, &device.public_key).verify(&message, &signed.signature.0).is_err() {
        return Err(refuse(state, &c, &ctx, Reason::BadSignature, Count::Nobody)?);
    }
    if device.revoked_at.is_some() || device.exchange_secret.is_none() {
        let refused = refuse(state, &c, &ctx, Reason::RevokedDevice, Count::Nobody)?;
        // A bricked laptop that proved who it is gets its wipe order, bound to this request's nonce.
        if let Some(brick) = db::brick_of(&c, &device.id)? {
            return Err(Error::Bricked(Box::new(crate::device::sign_brick(
                state,
                &brick.command_id,
                &device.id,
                payload.nonce.0,
            )?)));
        }
        return Err(refused);
    }
    let window = state.config.freshness_secs;
    // abs_diff: a signed request's timestamp may be anything, even i64::MIN.
    if payload.timestamp.abs_diff(now) > window.unsigned_abs() {
        return Err(refuse(state, &c, &ctx, Reason::StaleTime, Count::Nobody)?);
    }
    if !db::claim_nonce(&c, &device.id, &payload.nonce.0, now, 2 * window)? {
        return Err(refuse(state, &c, &ctx, Reason::ReplayedNonce, Count::Nobody)?);
    }
    if device.locked_until > now {
        return Err(locked_out(&c, &ctx, Reason::DeviceLockedOut, device.locked_until)?);
    }
    if !version_at_least(&payload.posture.app_version, &state.config.min_app_version) {
        return Err(refuse(state, &c, &ctx, Reason::Posture, Count::Nobody)?);
    }
    let failing = crate::posture::check(state, &c, &device, &payload.posture, now, When::Activation)?;
    if !failing.is_empty() {
        let items = failing.iter().map(Failing::item).collect::<Vec<_>>().join(" ");
        audit_refusal(&c, &ctx, Reason::Posture, Some(items))?;
        tracing::info!(device_id = %device.id, "activation refused: posture");
        let sentences: Vec<String> = failing.iter().map(Failing::sentence).collect();
        return Err(Error::Posture(sentences.join(" ")));
    }
    let staff = signin::candidate(&c, &payload.username, Channel::Laptop)?;
    if let Some(s) = &staff {
        if s.locked_until > now {
            ctx.staff = Some(s);
            return Err(locked_out(&c, &ctx, Reason::StaffLockedOut, s.locked_until)?);
        }
    }
    Ok((payload, device, staff))
}

/// Handles an activation.
pub async fn activate(state: &AppState, signed: &Signed) -> Result<ActivateResponse, Error> {
    let now = state.now();
    let (payload, device, staff) = precheck(state, signed, now)?;

    // Phase two, without the lock: Argon2 is deliberately slow (an unknown name is checked
    // against the dummy hash, so its refusal takes as long as a wrong password's).
    let password_ok = signin::check_password(
        &state.hash_pools,
        &state.dummy_hash,
        Channel::Laptop,
        staff.as_ref(),
        &payload.password,
    )
    .await?;

    // Phase three, under the lock: everything that may have changed meanwhile is read again, so
    // parallel attempts cannot pass a lock-out another one caused; the TOTP step is spent here.
    // One transaction with the device's row locked (on PostgreSQL; SQLite's single writer does
    // the same): a brick, or another attempt's failure, cannot land between the read and the
    // answer. A refusal's counts and audit row are committed with it; an error rolls back.
    let c = state.db();
    let id = device.id.clone();
    c.atomically(|c| -> Result<Result<ActivateResponse, Error>, Error> {
        c.lock_rows("devices", "id", id.as_str())?;
        let device = db::device(c, &device.id)?.ok_or(Error::Refused)?;
        let mut ctx = Ctx { now, device: Some(&device), staff: None, known_name: None, staff_locked_for: None };
        if device.locked_until > now {
            return Ok(Err(locked_out(c, &ctx, Reason::DeviceLockedOut, device.locked_until)?));
        }
        let attempt = signin::Attempt {
            channel: Channel::Laptop,
            username: &payload.username,
            code: &payload.totp,
            checked: staff.as_ref(),
            password_ok,
        };
        let staff = match signin::verdict(c, &attempt, now, &state.config.lockout)? {
            Verdict::Admit(staff) => staff,
            Verdict::LockedOut { staff, until } => {
                ctx.staff = Some(&staff);
                return Ok(Err(locked_out(c, &ctx, Reason::StaffLockedOut, until)?));
            }
            Verdict::Refused { reason, known_name, locked_for } => {
                ctx.known_name = known_name.as_deref();
                ctx.staff_locked_for = locked_for;
                return Ok(Err(refuse(state, c, &ctx, reason, Count::Device)?));
            }
        };
        ctx.staff = Some(&staff);
        if staff.prison_id != Some(device.prison_id) {
            return Ok(Err(refuse(state, c, &ctx, Reason::OtherPrison, Count::Device)?));
        }
        let secret_bytes = device.exchange_secret.as_deref().ok_or(Error::Refused)?;
        let secret_bytes: [u8; 32] =
            secret_bytes.try_into().map_err(|_| Error::Crypto("stored exchange secret has the wrong length".into()))?;
        let secret = sc_keyx::ServerSecret::from_bytes(&secret_bytes).map_err(|e| Error::Crypto(e.to_string()))?;
        let evaluated = match secret.evaluate(&payload.blinded.0) {
            Ok(y) => y,
            Err(_) => return Ok(Err(refuse(state, c, &ctx, Reason::Malformed, Count::Device)?)),
        };
        let mut session = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut session)
            .map_err(|_| Error::Crypto("random session".into()))?;
        let lease = i64::try_from(state.config.policy.lease_secs).unwrap_or(i64::MAX);
        db::insert_kiosk_session(c, &session, &device.id, staff.id, now, now.saturating_add(lease))?;
        db::clear_failures(c, Subject::Device(&device.id))?;
        db::touch_device(c, &device.id, now)?;
        audit::record(
            c,
            now,
            &audit::Entry {
                event: "activate",
                outcome: "ok",
                reason: None,
                device_id: Some(&device.id),
                staff: Some(&staff.username),
                prison_id: Some(device.prison_id),
                detail: Some(format!(
                    "app={} os={} {}",
                    payload.posture.app_version, payload.posture.os, payload.posture.os_version
                )),
            },
        )?;
        tracing::info!(device_id = %device.id, staff = %staff.username, "activation released");
        Ok(Ok(ActivateResponse {
            evaluated: Bytes(evaluated),
            staff_name: staff.display_name.clone(),
            server_time: now,
            session: Bytes(session),
        }))
    })?
}

#[cfg(test)]
mod tests {
    use super::version_at_least;

    #[test]
    fn versions_compare_numerically() {
        assert!(version_at_least("0.10.0", "0.9.1"));
        assert!(version_at_least("1.0.0", "1.0.0"));
        assert!(!version_at_least("0.1.0", "0.2.0"));
        assert!(!version_at_least("garbage", "0.1.0"));
    }
}

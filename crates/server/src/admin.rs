//! What IT staff do from the admin CLI: prisons, staff, enrolment tokens, devices.

use crate::audit::{self, Reason};
use crate::config::ServerConfig;
use crate::conn::Conn;
use crate::{auth, db, Error};
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use ring::rand::SecureRandom as _;
use sc_proto::DeviceId;
use serde::Serialize;

/// Adds a prison.
pub fn add_prison(c: &Conn<'_>, name: &str, now: i64) -> Result<db::Prison, Error> {
    let p = db::insert_prison(c, name)?;
    audit::record(
        c,
        now,
        &audit::Entry { event: "add_prison", outcome: "ok", prison_id: Some(p.id), ..Default::default() },
    )?;
    Ok(p)
}

/// A new staff member's TOTP enrolment, shown once.
pub struct NewStaffSecret {
    /// Base32 secret.
    pub totp_secret: String,
    /// `otpauth://` URI for an authenticator app.
    pub otpauth_uri: String,
}

/// Who a new staff member is.
#[derive(Debug, Clone, Copy)]
pub struct StaffSpec<'a> {
    /// Login name.
    pub username: &'a str,
    /// Name shown on screens.
    pub display_name: &'a str,
    /// nurse, it or consultant.
    pub role: &'a str,
    /// The prison (required for nurses).
    pub prison: Option<&'a str>,
    /// A consultant's hospital (named on the kiosk's call screen).
    pub hospital: Option<&'a str>,
}

/// Adds a staff member; the TOTP secret is returned once to be shown to them.
pub fn add_staff(
    c: &Conn<'_>,
    config: &ServerConfig,
    spec: StaffSpec<'_>,
    password: &str,
    now: i64,
) -> Result<NewStaffSecret, Error> {
    let StaffSpec { username, display_name, role, prison, hospital } = spec;
    if hospital.is_some_and(|h| h.trim().is_empty() || h.chars().count() > 100 || h.chars().any(char::is_control)) {
        return Err(Error::BadRequest("a hospital's name is 1-100 characters on one line".into()));
    }
    let hospital = hospital.map(str::trim);
    if !matches!(role, "nurse" | "it" | "consultant") {
        return Err(Error::BadRequest(format!("unknown role {role:?} (nurse, it, consultant)")));
    }
    if username.is_empty()
        || username.len() > 64
        || !username.bytes().all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b))
    {
        return Err(Error::BadRequest("a user name is 1-64 letters, digits, '.', '_' or '-'".into()));
    }
    if password.chars().count() < 12 {
        return Err(Error::BadRequest("a password has at least 12 characters".into()));
    }
    let prison_id = match prison {
        Some(name) => Some(db::prison_by_name(c, name)?.id),
        None if role == "nurse" => return Err(Error::BadRequest("a nurse belongs to a prison (--prison)".into())),
        None => None,
    };
    let hash = auth::hash_password(password, config.argon2)?;
    let totp_secret = auth::new_totp_secret();
    db::insert_staff(
        c,
        &db::NewStaff {
            username,
            display_name,
            role,
            prison_id,
            password_hash: &hash,
            totp_secret: &totp_secret,
            hospital,
        },
    )?;
    audit::record(
        c,
        now,
        &audit::Entry {
            event: "add_staff",
            outcome: "ok",
            staff: Some(username),
            prison_id,
            detail: Some(role.into()),
            ..Default::default()
        },
    )?;
    let otpauth_uri = auth::otpauth_uri(&totp_secret, username)?;
    Ok(NewStaffSecret { totp_secret, otpauth_uri })
}

/// Issues a one-time enrolment token for `prison`, valid for `ttl_secs`. The token embeds the CA
/// fingerprint so the laptop can pin the server on first contact.
pub fn issue_enrol_token(c: &Conn<'_>, ca_der: &[u8], prison: &str, ttl_secs: i64, now: i64) -> Result<String, Error> {
    let prison = db::prison_by_name(c, prison)?;
    let mut secret = [0u8; 24];
    ring::rand::SystemRandom::new().fill(&mut secret).map_err(|_| Error::Crypto("random token".into()))?;
    let secret = URL_SAFE_NO_PAD.encode(secret);
    db::insert_enrol_token(c, &db::token_hash(secret.as_bytes()), prison.id, now, now + ttl_secs)?;
    audit::record(
        c,
        now,
        &audit::Entry { event: "enrol_token", outcome: "ok", prison_id: Some(prison.id), ..Default::default() },
    )?;
    use sha2::Digest as _;
    Ok(sc_proto::EnrolToken { secret, ca_fingerprint: sha2::Sha256::digest(ca_der).into() }.to_string())
}

/// A device as IT staff see it.
#[derive(Debug, Clone, Serialize)]
pub struct DeviceSummary {
    /// Id.
    pub id: String,
    /// Prison name.
    pub prison: String,
    /// Host name at enrolment.
    pub hostname: String,
    /// IT staff's name for it, e.g. "HMP Example laptop 3" (empty: none given at enrolment).
    pub asset_tag: String,
    /// Its firmware's serial number (empty: unknown).
    pub serial: String,
    /// Enrolment time.
    pub enrolled_at: i64,
    /// Last successful contact.
    pub last_contact: Option<i64>,
    /// active, bricked (wipe pending), wiped (receipt verified), revoked (dead-man).
    pub state: &'static str,
    /// Its last posture report, if it made one.
    pub posture: Option<PostureSummary>,
}

/// A laptop's last posture report as IT staff see it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct PostureSummary {
    /// When, server time.
    pub at: i64,
    /// "enrolment" or "activation".
    pub stage: String,
    /// The failing items' words; empty when it passed.
    pub failing: Vec<String>,
    /// The report's main items, in words: "disk encrypted, Secure Boot on, lockdown integrity, ...".
    pub summary: String,
}

impl From<db::PostureRecord> for PostureSummary {
    fn from(r: db::PostureRecord) -> Self {
        let p = &r.report;
        let yes_no = |v: Option<bool>, yes: &str, no: &str| match v {
            Some(true) => yes.to_owned(),
            Some(false) => no.to_owned(),
            None => format!("{no}?"),
        };
        let summary = [
            yes_no(p.root_encrypted, "disk encrypted", "disk not encrypted"),
            yes_no(p.secure_boot, "Secure Boot on", "Secure Boot off"),
            format!("lockdown {}", if p.lockdown.is_empty() { "unknown" } else { p.lockdown.as_str() }),
            if p.kiosk_session { "kiosk session".to_owned() } else { "outside the kiosk session".to_owned() },
            yes_no(p.firewall, "firewall on", "firewall off"),
            format!("interfaces {}", p.interfaces.join(",")),
            format!("{} {}, kiosk {}", p.os, p.os_version, p.app_version),
        ]
        .join("; ");
        PostureSummary { at: r.at, stage: r.stage, failing: r.failing, summary }
    }
}

/// Lists devices.
pub fn list_devices(c: &Conn<'_>) -> Result<Vec<DeviceSummary>, Error> {
    db::devices(c)?
        .into_iter()
        .map(|d| {
            let (asset_tag, serial) = db::device_label(c, &d.id)?;
            Ok(DeviceSummary {
                asset_tag,
                serial,
                prison: db::prison_by_id(c, d.prison_id)?.name,
                id: d.id.to_string(),
                hostname: d.hostname,
                enrolled_at: d.enrolled_at,
                last_contact: d.last_contact,
                state: match (d.exchange_secret.is_some() && d.revoked_at.is_none(), db::brick_of(c, &d.id)?) {
                    (true, _) => "active",
                    (false, Some(b)) if b.wiped_at.is_some() => "wiped",
                    (false, Some(_)) => "bricked",
                    (false, None) => "revoked",
                },
                posture: db::posture_of(c, &d.id)?.map(PostureSummary::from),
            })
        })
        .collect()
}

/// Sets a prison's posture policy, recording who did in the audit log.
pub fn set_posture_policy(
    c: &Conn<'_>,
    prison: &str,
    policy: &crate::config::PosturePolicy,
    by: &str,
    now: i64,
) -> Result<(), Error> {
    let p = db::prison_by_name(c, prison)?;
    let tx = c.transaction()?;
    db::set_posture_policy(&tx, p.id, policy)?;
    let detail = serde_json::to_string(policy).map_err(|e| Error::Config(e.to_string()))?;
    audit::record(
        &tx,
        now,
        &audit::Entry {
            event: "posture_policy",
            outcome: "ok",
            staff: Some(by),
            prison_id: Some(p.id),
            detail: Some(detail),
            ..Default::default()
        },
    )?;
    tx.commit()?;
    Ok(())
}

/// Bricks a device: in one transaction its server-side secret is destroyed (its config can never
/// be unsealed again), the brick is recorded with a fresh command id, and the audit log says who
/// and why. The signed command goes out on the laptop's next contact (or at once over its open
/// channel). Bricking twice returns the first brick's id.
pub fn brick_device(c: &Conn<'_>, id: &DeviceId, reason: &str, by: &str, now: i64) -> Result<String, Error> {
    if reason.trim().is_empty() {
        return Err(Error::BadRequest("give a reason for the audit log".into()));
    }
    let tx = c.transaction()?;
    // Two bricks of one laptop at once (two IT staff, two instances) make one command.
    tx.lock_rows("devices", "id", id.as_str())?;
    let device = db::device(&tx, id)?.ok_or_else(|| Error::NotFound(format!("device {id}")))?;
    if let Some(existing) = db::brick_of(&tx, id)? {
        return Ok(existing.command_id);
    }
    let mut raw = [0u8; 16];
    ring::rand::SystemRandom::new().fill(&mut raw).map_err(|_| Error::Crypto("random command id".into()))?;
    let command_id: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    db::shred_device(&tx, id, reason, now)?;
    db::insert_brick(&tx, &command_id, id, reason, by, now)?;
    audit::record(
        &tx,
        now,
        &audit::Entry {
            event: "brick",
            outcome: "ok",
            reason: Some(Reason::Revoked),
            device_id: Some(id),
            staff: Some(by),
            prison_id: Some(device.prison_id),
            detail: Some(format!("command={command_id} reason={reason}")),
        },
    )?;
    tx.commit()?;
    c.purge_dead_rows("devices")?;
    Ok(command_id)
}

impl std::fmt::Debug for NewStaffSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Shown once to the person it is for, never logged.
        f.write_str("NewStaffSecret(..)")
    }
}

/// A new appointment's handles.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewAppointment {
    /// Server id.
    pub id: i64,
    /// The room code to give the prison.
    pub room_code: String,
}

/// A room code: 60 random bits in an unambiguous alphabet, grouped for reading aloud.
pub fn room_code() -> Result<String, Error> {
    // Crockford base32: no i, l, o or u to misread.
    const ALPHABET: &[u8; 32] = b"0123456789abcdefghjkmnpqrstvwxyz";
    let mut raw = [0u8; 12];
    ring::rand::SystemRandom::new().fill(&mut raw).map_err(|_| Error::Crypto("random room code".into()))?;
    let chars: Vec<char> = raw.iter().map(|b| char::from(ALPHABET[usize::from(b & 31)])).collect();
    Ok(chars.chunks(4).map(|c| c.iter().collect::<String>()).collect::<Vec<_>>().join("-"))
}

/// Books a consultation between a consultant and a prison.
pub fn add_appointment(
    c: &Conn<'_>,
    consultant: &str,
    prison: &str,
    starts_at: i64,
    minutes: i64,
    patient: Option<&sc_proto::signal::Patient>,
    now: i64,
) -> Result<NewAppointment, Error> {
    let staff =
        db::staff_by_username(c, consultant)?.ok_or_else(|| Error::NotFound(format!("staff {consultant:?}")))?;
    if staff.role != "consultant" {
        return Err(Error::BadRequest(format!("{consultant} is not a consultant")));
    }
    if !(1..=24 * 60).contains(&minutes) {
        return Err(Error::BadRequest("an appointment lasts 1 to 1440 minutes".into()));
    }
    let prison = db::prison_by_name(c, prison)?;
    let room_code = room_code()?;
    let id = db::insert_appointment(
        c,
        &db::NewAppointmentRow {
            consultant_id: staff.id,
            prison_id: prison.id,
            starts_at,
            ends_at: starts_at + minutes * 60,
            room_code: &room_code,
            patient,
        },
    )?;
    audit::record(
        c,
        now,
        &audit::Entry {
            event: "add_appointment",
            outcome: "ok",
            staff: Some(consultant),
            prison_id: Some(prison.id),
            detail: Some(format!("appointment={id}")),
            ..Default::default()
        },
    )?;
    Ok(NewAppointment { id, room_code })
}

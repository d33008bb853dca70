//! `POST /v1/enrol`: a laptop registers its device key with a one-time, expiring, prison-scoped
//! token and receives its exchange public point; the server keeps the exchange secret.

use crate::audit::{self, Reason};
use crate::posture::{self, Failing, When};
use crate::{db, AppState, Error};
use ring::signature::{UnparsedPublicKey, ED25519};
use sc_proto::{Bytes, DeviceId, EnrolPayload, EnrolResponse, PrisonInfo, Signed, SIG_CONTEXT_ENROL};

/// A name from the laptop as IT staff will read it: printable characters, at most 64.
fn label(text: &str) -> String {
    text.chars().filter(|c| !c.is_control()).take(64).collect::<String>().trim().to_owned()
}

/// Handles an enrolment.
pub fn enrol(state: &AppState, signed: &Signed) -> Result<EnrolResponse, Error> {
    let now = state.now();
    let conn = state.db();
    // Anyone can make a key and sign with it: every refusal here is counted, not logged
    // one by one (`crate::tally`).
    let refuse = |reason: Reason| -> Error {
        if let Err(e) = state.tally.note(&conn, now, "enrol", reason) {
            return e;
        }
        Error::Refused
    };
    let payload: EnrolPayload = match serde_json::from_slice(&signed.payload.0) {
        Ok(p) => p,
        Err(e) => {
            let _ = refuse(Reason::Malformed);
            return Err(Error::BadRequest(format!("enrolment payload: {e}")));
        }
    };
    let message = sc_proto::signing_input(SIG_CONTEXT_ENROL, &signed.payload.0);
    if UnparsedPublicKey::new(&ED25519, &payload.device_public_key.0).verify(&message, &signed.signature.0).is_err() {
        return Err(refuse(Reason::BadSignature));
    }
    let hash = db::token_hash(payload.token.as_bytes());
    let token = match db::enrol_token(&conn, &hash)? {
        None => return Err(refuse(Reason::TokenUnknown)),
        Some(t) if t.used_at.is_some() => return Err(refuse(Reason::TokenUsed)),
        Some(t) if t.expires_at <= now => return Err(refuse(Reason::TokenExpired)),
        Some(t) => t,
    };

    // Judged before the token is spent: IT staff can put it right and enrol again.
    let failing =
        posture::judge(&posture::policy_for(state, &conn, token.prison_id)?, &payload.posture, now, When::Enrolment);
    if !failing.is_empty() {
        let items = failing.iter().map(Failing::item).collect::<Vec<_>>().join(" ");
        audit::record(
            &conn,
            now,
            &audit::Entry {
                event: "enrol",
                outcome: "refused",
                reason: Some(Reason::Posture),
                prison_id: Some(token.prison_id),
                detail: Some(format!("host={} {items}", payload.hostname.chars().take(64).collect::<String>())),
                ..Default::default()
            },
        )?;
        return Err(Error::Posture(failing.iter().map(Failing::sentence).collect::<Vec<_>>().join(" ")));
    }

    let mut id = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut id)
        .map_err(|_| Error::Crypto("random device id".into()))?;
    let device_id = DeviceId::from_random(id);
    let (secret, exchange_public) = sc_keyx::ServerSecret::generate().map_err(|e| Error::Crypto(e.to_string()))?;
    let prison = db::prison_by_id(&conn, token.prison_id)?;

    let tx = conn.transaction()?;
    if !db::use_enrol_token(&tx, &hash, &device_id, now)? {
        // Rolled back first: the tally's write (once a minute) must not go with it.
        drop(tx);
        return Err(refuse(Reason::TokenUsed));
    }
    db::insert_device(
        &tx,
        &device_id,
        prison.id,
        &payload.device_public_key.0,
        &payload.hostname,
        secret.to_bytes().as_ref(),
        now,
    )?;
    audit::record(
        &tx,
        now,
        &audit::Entry {
            event: "enrol",
            outcome: "ok",
            device_id: Some(&device_id),
            prison_id: Some(prison.id),
            detail: Some(format!(
                "host={} app={} asset={} serial={}",
                payload.hostname,
                payload.posture.app_version,
                label(&payload.asset_tag),
                label(&payload.serial)
            )),
            ..Default::default()
        },
    )?;
    posture::keep(&tx, &device_id, &payload.posture, &[], now, When::Enrolment)?;
    db::label_device(&tx, &device_id, &label(&payload.asset_tag), &label(&payload.serial))?;
    tx.commit()?;
    tracing::info!(device_id = %device_id, prison = %prison.name, "device enrolled");
    Ok(EnrolResponse {
        device_id,
        prison: PrisonInfo { id: prison.id, name: prison.name },
        exchange_public: Bytes(exchange_public),
        command_public_key: Bytes(state.command_public),
        policy: state.config.policy,
        turn_urls: state.config.turn.all_urls(),
    })
}

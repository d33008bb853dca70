//! The unlocked laptop's API: its prison's appointments, how many outcome notes await its team,
//! and ending its session on lock. The
//! bearer token comes from activation and proves the laptop is unlocked.

use crate::{db, web, AppState, Error};
use axum::extract::State;
use axum::http::header::AUTHORIZATION;
use axum::http::HeaderMap;
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sc_proto::signal::{Appointment, OutcomeNotes};

/// The bearer token's bytes.
pub fn bearer(headers: &HeaderMap) -> Option<Vec<u8>> {
    let value = headers.get(AUTHORIZATION)?.to_str().ok()?;
    URL_SAFE_NO_PAD.decode(value.strip_prefix("Bearer ")?.trim()).ok()
}

/// The unlocked laptop making this request.
pub fn kiosk(state: &AppState, headers: &HeaderMap) -> Result<(db::KioskSession, Vec<u8>), Error> {
    let token = bearer(headers).ok_or(Error::Unauthorized)?;
    let session = db::kiosk_session(&state.db(), &token, state.now())?.ok_or(Error::Unauthorized)?;
    Ok((session, token))
}

/// `GET /v1/kiosk/appointments`: this prison's appointments around now.
pub async fn appointments(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Vec<Appointment>>, Error> {
    let (session, _) = kiosk(&state, &headers)?;
    web::upcoming(&state, Some(session.prison_id), None).map(Json)
}

/// `GET /v1/kiosk/outcome-notes`: how many of this prison's outcome notes nobody has
/// acknowledged (a count only: the laptop shows the nurse a line, never a note).
pub async fn outcome_notes(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<OutcomeNotes>, Error> {
    let (session, _) = kiosk(&state, &headers)?;
    Ok(Json(OutcomeNotes { unacknowledged: crate::notes::unacknowledged(&state.db(), session.prison_id)? }))
}

/// `POST /v1/kiosk/end-session`: the laptop locked; its token dies now rather than at lease end.
pub async fn end_session(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<serde_json::Value>, Error> {
    if let Some(token) = bearer(&headers) {
        db::delete_kiosk_session(&state.db(), &token)?;
        // Its signalling socket, waiting room and call end with it.
        state.sessions.end_session(&db::token_hash(&token), crate::sessions::Ended::Locked);
    }
    Ok(Json(serde_json::json!({})))
}

//! IT's admin page, the staff accounts: the list, and disabling a leaver, resetting a password
//! or a TOTP seed, lifting a lock-out, each under the signed-in IT member's name
//! (`crate::staff`). Ended sessions' live connections close at once.

use crate::sessions::Ended;
use crate::staff::{self, EndedSessions, StaffRow};
use crate::web::{self, WebRole};
use crate::{AppState, Error};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::{Deserialize, Serialize};

/// `GET /v1/admin/staff`
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Vec<StaffRow>>, Error> {
    web::session(&state, &headers, WebRole::It)?;
    staff::list(&state.db(), state.now()).map(Json)
}

/// A change's reason.
#[derive(Debug, Deserialize)]
pub struct Why {
    /// IT's words, for the audit log.
    pub reason: String,
}

/// A new password.
#[derive(Deserialize)]
pub struct NewPassword {
    /// At least 12 characters.
    pub password: String,
}

impl std::fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewPassword(..)")
    }
}

/// A new TOTP seed, shown once to the IT member, who hands it to the account's owner.
#[derive(Serialize)]
pub struct NewSeed {
    /// Base32.
    pub totp_secret: String,
    /// For an authenticator app's QR code.
    pub otpauth_uri: String,
}

impl std::fmt::Debug for NewSeed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NewSeed(..)")
    }
}

fn close(state: &AppState, ended: &EndedSessions) {
    for hash in &ended.0 {
        state.sessions.end_session(hash, Ended::Locked);
    }
}

/// `POST /v1/admin/staff/{username}/disable` `{reason}`
pub async fn disable(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(username): Path<String>,
    Json(form): Json<Why>,
) -> Result<Json<serde_json::Value>, Error> {
    let me = web::session(&state, &headers, WebRole::It)?;
    if me.username == username {
        return Err(Error::BadRequest("you cannot disable your own account".into()));
    }
    let ended = staff::disable(&state.db(), &username, &form.reason, &me.username, state.now())?;
    close(&state, &ended);
    Ok(Json(serde_json::json!({ "sessions_ended": ended.0.len() })))
}

/// `POST /v1/admin/staff/{username}/password` `{password}`
pub async fn reset_password(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(username): Path<String>,
    Json(form): Json<NewPassword>,
) -> Result<Json<serde_json::Value>, Error> {
    let me = web::session(&state, &headers, WebRole::It)?;
    let password = zeroize::Zeroizing::new(form.password);
    // Argon2 off the runtime's threads, as at sign-in.
    let (s, who) = (state.clone(), me.username.clone());
    let ended = tokio::task::spawn_blocking(move || {
        staff::reset_password(&s.db(), &s.config, &username, &password, &who, s.now())
    })
    .await
    .map_err(|_| Error::Crypto("password task failed".into()))??;
    close(&state, &ended);
    Ok(Json(serde_json::json!({ "sessions_ended": ended.0.len() })))
}

/// `POST /v1/admin/staff/{username}/totp`: a new seed, in the answer only.
pub async fn reset_totp(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(username): Path<String>,
) -> Result<Json<NewSeed>, Error> {
    let me = web::session(&state, &headers, WebRole::It)?;
    let (seed, ended) = staff::reset_totp(&state.db(), &username, &me.username, state.now())?;
    close(&state, &ended);
    Ok(Json(NewSeed { totp_secret: seed.totp_secret, otpauth_uri: seed.otpauth_uri }))
}

/// `POST /v1/admin/staff/{username}/unlock` `{reason}`
pub async fn lift_lockout(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(username): Path<String>,
    Json(form): Json<Why>,
) -> Result<Json<serde_json::Value>, Error> {
    let me = web::session(&state, &headers, WebRole::It)?;
    staff::lift_lockout(&state.db(), &username, &form.reason, &me.username, state.now())?;
    Ok(Json(serde_json::json!({})))
}

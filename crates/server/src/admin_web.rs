//! IT staff's admin page over HTTP: sign in (IT role, password + TOTP), the devices with their
//! prison and last contact, bricking with a reason, each brick's state, and the audit log with
//! its chain verified on every view.

use crate::web::{self, asset, Login, Me, WebRole};
use crate::{admin, audit, db, AppState, Error};
use axum::extract::{Path, Query, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::Json;
use sc_proto::DeviceId;
use serde::{Deserialize, Serialize};

/// `GET /admin/`
pub async fn page() -> Response {
    asset(include_str!("../web/admin/index.html"), "text/html; charset=utf-8")
}

/// `GET /admin/admin.js`
pub async fn script() -> Response {
    asset(include_str!("../web/admin/admin.js"), "text/javascript; charset=utf-8")
}

/// `POST /admin/login`
pub async fn login(State(state): State<AppState>, Json(form): Json<Login>) -> Result<Response, Error> {
    web::sign_in(&state, form, WebRole::It).await
}

/// `POST /admin/logout`
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Error> {
    web::sign_out(&state, &headers, WebRole::It)
}

/// `GET /v1/admin/me`
pub async fn me(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Me>, Error> {
    Ok(Json(Me { name: web::session(&state, &headers, WebRole::It)?.name }))
}

/// A device row on the page: the CLI's summary plus its brick, if any.
#[derive(Debug, Serialize)]
pub struct DeviceRow {
    /// What `list-devices` shows.
    #[serde(flatten)]
    pub device: admin::DeviceSummary,
    /// The brick's state, when bricked.
    pub brick: Option<BrickRow>,
}

/// A brick as IT staff see it.
#[derive(Debug, Serialize)]
pub struct BrickRow {
    /// The signed command's id.
    pub command_id: String,
    /// The device.
    pub device_id: String,
    /// IT's words.
    pub reason: String,
    /// Who bricked it.
    pub by: String,
    /// When.
    pub created_at: i64,
    /// "pending" until the laptop's signed receipt is verified, then "wiped".
    pub state: &'static str,
    /// When the verified receipt arrived.
    pub wiped_at: Option<i64>,
}

impl From<db::Brick> for BrickRow {
    fn from(b: db::Brick) -> Self {
        BrickRow {
            state: if b.wiped_at.is_some() { "wiped" } else { "pending" },
            command_id: b.command_id,
            device_id: b.device_id,
            reason: b.reason,
            by: b.by_staff,
            created_at: b.created_at,
            wiped_at: b.wiped_at,
        }
    }
}

/// `GET /v1/admin/devices`
pub async fn devices(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Vec<DeviceRow>>, Error> {
    web::session(&state, &headers, WebRole::It)?;
    let c = state.db();
    let bricks = db::bricks(&c)?;
    let rows = admin::list_devices(&c)?
        .into_iter()
        .map(|device| {
            // Oldest brick first, as `brick_of` picks it: that is the one the laptop is sent.
            let brick = bricks.iter().rev().find(|b| b.device_id == device.id).cloned().map(BrickRow::from);
            DeviceRow { device, brick }
        })
        .collect();
    Ok(Json(rows))
}

/// What the brick form sends.
#[derive(Debug, Deserialize)]
pub struct BrickForm {
    /// Why, for the audit log.
    pub reason: String,
}

/// The answer to a brick.
#[derive(Debug, Serialize)]
pub struct Bricked {
    /// The command's id (the same on a repeat).
    pub command_id: String,
}

/// `POST /v1/admin/devices/{id}/brick`: shreds the device's secret and queues the signed command,
/// recorded in the audit log under the signed-in IT user's name.
pub async fn brick(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<String>,
    Json(form): Json<BrickForm>,
) -> Result<Json<Bricked>, Error> {
    let me = web::session(&state, &headers, WebRole::It)?;
    let id: DeviceId = id.parse().map_err(|_| Error::BadRequest("not a device id".into()))?;
    let reason = form.reason.trim();
    if reason.chars().count() > 500 {
        return Err(Error::BadRequest("keep the reason under 500 characters".into()));
    }
    let now = state.now();
    let command_id = admin::brick_device(&state.db(), &id, reason, &me.username, now)?;
    // Its signalling socket, waiting room and call end now, not at its next contact.
    state.sessions.end_device(&id, crate::sessions::Ended::Revoked);
    Ok(Json(Bricked { command_id }))
}

/// `GET /v1/admin/bricks`: every brick, newest first.
pub async fn bricks(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Vec<BrickRow>>, Error> {
    web::session(&state, &headers, WebRole::It)?;
    Ok(Json(db::bricks(&state.db())?.into_iter().map(BrickRow::from).collect()))
}

/// How much of the audit log to show.
#[derive(Debug, Deserialize)]
pub struct AuditQuery {
    /// Newest rows to return (1 to 1000; 200 when absent).
    pub limit: Option<u32>,
}

/// The chain's state as the page shows it.
#[derive(Debug, Serialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ChainState {
    /// Every link checks; `head` is the newest hash (hex), to keep elsewhere against truncation.
    Intact {
        /// Rows checked.
        rows: u64,
        /// The newest row's hash, hex.
        head: String,
    },
    /// The first broken link.
    Broken {
        /// The row.
        id: i64,
        /// What does not fit.
        why: &'static str,
    },
}

/// The audit page's data.
#[derive(Debug, Serialize)]
pub struct AuditView {
    /// The whole chain, verified now.
    pub chain: ChainState,
    /// The newest rows, newest last.
    pub rows: Vec<audit::Row>,
}

/// How often the admin page re-verifies the whole audit chain rather than only the new rows.
pub const FULL_CHECK_SECS: i64 = 600;

/// `GET /v1/admin/audit?limit=N`
pub async fn audit_log(
    State(state): State<AppState>,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Result<Json<AuditView>, Error> {
    web::session(&state, &headers, WebRole::It)?;
    let limit = q.limit.unwrap_or(200);
    if !(1..=1000).contains(&limit) {
        return Err(Error::BadRequest("limit is 1 to 1000".into()));
    }
    let c = state.db();
    let now = state.now();
    // What nobody authenticated was refused, as of now.
    state.tally.flush(&c, now)?;
    // Verified on from the last refresh, not re-hashed from the first row under the lock each
    // time; the whole chain again once every FULL_CHECK_SECS (and by `care-server audit-verify`).
    let mut verified = state.audit_verified.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
    let (from, whole_at) = match verified.as_ref() {
        Some((v, at)) if now.saturating_sub(*at) < FULL_CHECK_SECS => (Some(v), *at),
        _ => (None, now),
    };
    let chain = match audit::verify_from(&c, from)? {
        Ok((v, _)) => {
            let view = ChainState::Intact { rows: v.rows, head: v.head.iter().map(|b| format!("{b:02x}")).collect() };
            *verified = Some((v, whole_at));
            view
        }
        Err(b) => {
            *verified = None;
            ChainState::Broken { id: b.id, why: b.why }
        }
    };
    drop(verified);
    Ok(Json(AuditView { chain, rows: audit::tail(&c, limit)? }))
}

//! The prison healthcare team's page over HTTP: nurses sign in (the same password and code as on
//! the laptops), book, move and cancel their prison's appointments, and read, acknowledge and
//! export the consultants' outcome notes for their prison. Every read, acknowledgement and export
//! of a note is audited; another prison's note or booking is, to them, one that does not exist.

use crate::bookings::{self, BookingForm, Nurse, SlotForm};
use crate::notes::{self, NoteHeader, Whose};
use crate::web::{self, asset, Login, WebRole};
use crate::{audit, db, fhir, AppState, Error};
use axum::extract::{Path, State};
use axum::http::header::{CONTENT_DISPOSITION, CONTENT_TYPE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse as _, Response};
use axum::Json;
use sc_proto::signal::Appointment;
use serde::{Deserialize, Serialize};

/// `GET /team/`
pub async fn page() -> Response {
    asset(include_str!("../web/team/index.html"), "text/html; charset=utf-8")
}

/// `GET /team/team.js`
pub async fn script() -> Response {
    asset(include_str!("../web/team/team.js"), "text/javascript; charset=utf-8")
}

/// `POST /team/login`
pub async fn login(State(state): State<AppState>, Json(form): Json<Login>) -> Result<Response, Error> {
    web::sign_in(&state, form, WebRole::Team).await
}

/// `POST /team/logout`
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Error> {
    web::sign_out(&state, &headers, WebRole::Team)
}

/// The signed-in nurse and their prison.
pub fn nurse(state: &AppState, headers: &HeaderMap) -> Result<Nurse, Error> {
    let session = web::session(state, headers, WebRole::Team)?;
    let c = state.db();
    // A nurse always has a prison (`add-staff` requires one); one without is let in nowhere.
    let prison_id = db::staff_by_username(&c, &session.username)?.and_then(|s| s.prison_id).ok_or(Error::Refused)?;
    let prison = db::prison_by_id(&c, prison_id)?.name;
    Ok(Nurse { staff_id: session.staff_id, username: session.username, name: session.name, prison_id, prison })
}

/// Who is signed in, for the page's header.
#[derive(Debug, Serialize)]
pub struct TeamMe {
    /// Display name.
    pub name: String,
    /// Their prison.
    pub prison: String,
}

/// `GET /v1/team/me`
pub async fn me(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<TeamMe>, Error> {
    let n = nurse(&state, &headers)?;
    Ok(Json(TeamMe { name: n.name, prison: n.prison }))
}

// ---- Bookings ----

/// A consultant the team may book.
#[derive(Debug, Serialize)]
pub struct ConsultantRow {
    /// Login name (what a booking names).
    pub username: String,
    /// Display name.
    pub name: String,
    /// Their hospital.
    pub hospital: Option<String>,
}

/// `GET /v1/team/consultants`: every consultant who can be booked.
pub async fn consultants(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Vec<ConsultantRow>>, Error> {
    nurse(&state, &headers)?;
    let c = state.db();
    let mut stmt = c.prepare(
        "SELECT username, display_name, hospital FROM staff
         WHERE role = 'consultant' AND disabled_at IS NULL ORDER BY display_name, username",
    )?;
    let rows =
        stmt.query_map([], |r| Ok(ConsultantRow { username: r.get(0)?, name: r.get(1)?, hospital: r.get(2)? }))?;
    Ok(Json(rows.collect::<Result<Vec<_>, _>>()?))
}

/// How far ahead the team's list of bookings reaches.
const LIST_AHEAD_SECS: i64 = 90 * 24 * 3600;

/// `GET /v1/team/appointments`: the prison's bookings from the last half-day to 90 days ahead.
pub async fn appointments(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Vec<Appointment>>, Error> {
    let n = nurse(&state, &headers)?;
    let now = state.now();
    let rows = db::appointments_between(&state.db(), Some(n.prison_id), None, now - 12 * 3600, now + LIST_AHEAD_SECS)?;
    Ok(Json(rows.into_iter().map(|r| r.view).collect()))
}

/// The answer to a booking.
#[derive(Debug, Serialize)]
pub struct Booked {
    /// The appointment's id.
    pub id: i64,
    /// Its room code.
    pub room_code: String,
}

/// `POST /v1/team/appointments`
pub async fn book(
    State(state): State<AppState>,
    headers: HeaderMap,
    Json(form): Json<BookingForm>,
) -> Result<Json<Booked>, Error> {
    let n = nurse(&state, &headers)?;
    let made = bookings::book(&state.db(), &n, &form, state.now())?;
    Ok(Json(Booked { id: made.id, room_code: made.room_code }))
}

/// `POST /v1/team/appointments/{id}/reschedule`
pub async fn reschedule(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(form): Json<SlotForm>,
) -> Result<Json<serde_json::Value>, Error> {
    let n = nurse(&state, &headers)?;
    bookings::reschedule(&state.db(), &n, id, form, state.now())?;
    Ok(Json(serde_json::json!({})))
}

/// Why a booking is cancelled.
#[derive(Debug, Deserialize)]
pub struct CancelForm {
    /// The nurse's words, for the audit log.
    pub reason: String,
}

/// `POST /v1/team/appointments/{id}/cancel`
pub async fn cancel(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(form): Json<CancelForm>,
) -> Result<Json<serde_json::Value>, Error> {
    let n = nurse(&state, &headers)?;
    bookings::cancel(&state.db(), &n, id, &form.reason, state.now())?;
    Ok(Json(serde_json::json!({})))
}

// ---- Outcome notes ----

/// Records a nurse's access to note `id`.
fn record_access(c: &crate::conn::Conn<'_>, n: &Nurse, event: &str, id: i64, now: i64) -> Result<(), Error> {
    audit::record(
        c,
        now,
        &audit::Entry {
            event,
            outcome: "ok",
            staff: Some(&n.username),
            prison_id: Some(n.prison_id),
            detail: Some(format!("note={id}")),
            ..Default::default()
        },
    )
}

/// The nurse's prison's note `id`; another prison's is not found.
fn own_note(state: &AppState, n: &Nurse, id: i64) -> Result<notes::Note, Error> {
    let now = state.now();
    notes::note(&state.db(), id, now, state.config.urgent_note_ack_secs)?
        .filter(|note| note.header.prison_id == n.prison_id)
        .ok_or_else(|| Error::NotFound(format!("outcome note {id}")))
}

/// `GET /v1/team/notes`: the prison's notes, newest first, without their text.
pub async fn list_notes(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Vec<NoteHeader>>, Error> {
    let n = nurse(&state, &headers)?;
    let now = state.now();
    notes::headers(&state.db(), Whose::Prison(n.prison_id), now, state.config.urgent_note_ack_secs).map(Json)
}

/// `GET /v1/team/notes/{id}`: one note, whole (audited as read).
pub async fn read_note(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<notes::Note>, Error> {
    let n = nurse(&state, &headers)?;
    let note = own_note(&state, &n, id)?;
    record_access(&state.db(), &n, "note_read", id, state.now())?;
    Ok(Json(note))
}

/// `POST /v1/team/notes/{id}/acknowledge`: the nurse has read it and the team will act on it
/// (the first acknowledgement stands; a repeat is not an error and changes nothing).
pub async fn acknowledge(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<NoteHeader>, Error> {
    let n = nurse(&state, &headers)?;
    own_note(&state, &n, id)?;
    let now = state.now();
    let c = state.db();
    let tx = c.transaction()?;
    if notes::acknowledge(&tx, id, n.staff_id, now)? {
        record_access(&tx, &n, "note_acknowledged", id, now)?;
    }
    tx.commit()?;
    let header = notes::header(&c, id, now, state.config.urgent_note_ack_secs)?
        .ok_or_else(|| Error::NotFound(format!("outcome note {id}")))?;
    Ok(Json(header))
}

/// `GET /v1/team/notes/{id}/fhir`: the note as a FHIR R4 Composition, for the prison's clinical
/// record (audited as exported).
pub async fn export_note(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Response, Error> {
    let n = nurse(&state, &headers)?;
    let note = own_note(&state, &n, id)?;
    let appends = match note.header.addendum_to {
        Some(original) => Some(own_note(&state, &n, original)?.header.uid),
        None => None,
    };
    record_access(&state.db(), &n, "note_exported", id, state.now())?;
    let body = serde_json::to_vec_pretty(&fhir::composition(&note, appends.as_deref()))
        .map_err(|e| Error::Crypto(format!("fhir: {e}")))?;
    let name = format!("attachment; filename=\"outcome-note-{id}.fhir.json\"");
    let disposition = HeaderValue::from_str(&name).map_err(|_| Error::Crypto("header".into()))?;
    Ok((
        [
            (CONTENT_TYPE, HeaderValue::from_static("application/fhir+json; fhirVersion=4.0")),
            (CONTENT_DISPOSITION, disposition),
        ],
        body,
    )
        .into_response())
}

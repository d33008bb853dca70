//! The consultant's side of outcome notes: write the note for one of their appointments once it
//! has begun, add an addendum to one of their notes (a sent note never changes), and see their
//! notes with who acknowledged each. A note of another consultant is, to them, one that does not
//! exist.

use crate::notes::{self, NoteDraft, NoteForm, NoteHeader, Whose};
use crate::{audit, db, web, AppState, Error};
use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::Json;
use serde::Serialize;

/// The answer to a note sent.
#[derive(Debug, Serialize)]
pub struct Sent {
    /// The note's id.
    pub id: i64,
}

fn record(
    c: &crate::conn::Conn<'_>,
    who: &str,
    prison_id: i64,
    event: &str,
    detail: String,
    now: i64,
) -> Result<(), Error> {
    audit::record(
        c,
        now,
        &audit::Entry {
            event,
            outcome: "ok",
            staff: Some(who),
            prison_id: Some(prison_id),
            detail: Some(detail),
            ..Default::default()
        },
    )
}

/// Stores `new` and audits it as `event` under `who`, in one transaction; returns the note's id.
fn store(
    c: &crate::conn::Conn<'_>,
    who: &str,
    new: &notes::NewNote<'_>,
    event: &str,
    about: &str,
    now: i64,
) -> Result<i64, Error> {
    let tx = c.transaction()?;
    let (note, _) = notes::insert(&tx, new, now)?;
    let detail = format!("note={note} {about} urgency={}", new.draft.urgency.as_str());
    record(&tx, who, new.prison_id, event, detail, now)?;
    tx.commit()?;
    Ok(note)
}

/// `POST /v1/consult/appointments/{id}/note`: the outcome note of appointment `id`, sent to that
/// prison's healthcare team.
pub async fn send(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(form): Json<NoteForm>,
) -> Result<Json<Sent>, Error> {
    let me = web::consultant(&state, &headers)?;
    let draft = NoteDraft::try_from(form)?;
    let now = state.now();
    let c = state.db();
    let appointment = db::appointment(&c, id)?
        .filter(|a| a.consultant_id == me.staff_id)
        .ok_or_else(|| Error::NotFound(format!("appointment {id}")))?;
    // A note follows a consultation: not before the laptop could first have joined.
    if now < appointment.view.starts_at - state.config.join_early_secs {
        return Err(Error::BadRequest("this appointment has not started: write its note after the call".into()));
    }
    let new = notes::NewNote {
        appointment_id: id,
        consultant_id: me.staff_id,
        prison_id: appointment.prison_id,
        addendum_to: None,
        draft: &draft,
    };
    store(&c, &me.username, &new, "note_sent", &format!("appointment={id}"), now).map(|id| Json(Sent { id }))
}

/// `POST /v1/consult/notes/{id}/addendum`: adds to one of the consultant's notes (to the note
/// itself when `id` is an addendum, so every addendum hangs off the note it corrects).
pub async fn addendum(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
    Json(form): Json<NoteForm>,
) -> Result<Json<Sent>, Error> {
    let me = web::consultant(&state, &headers)?;
    let draft = NoteDraft::try_from(form)?;
    let now = state.now();
    let c = state.db();
    let target = notes::header(&c, id, now, state.config.urgent_note_ack_secs)?
        .filter(|h| h.consultant_id == me.staff_id)
        .ok_or_else(|| Error::NotFound(format!("outcome note {id}")))?;
    let original = target.addendum_to.unwrap_or(target.id);
    let new = notes::NewNote {
        appointment_id: target.appointment_id,
        consultant_id: me.staff_id,
        prison_id: target.prison_id,
        addendum_to: Some(original),
        draft: &draft,
    };
    let about = format!("addendum_to={original}");
    store(&c, &me.username, &new, "note_addendum", &about, now).map(|id| Json(Sent { id }))
}

/// `GET /v1/consult/notes`: the consultant's own notes, newest first, with who acknowledged each.
pub async fn list(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Vec<NoteHeader>>, Error> {
    let me = web::consultant(&state, &headers)?;
    notes::headers(&state.db(), Whose::Consultant(me.staff_id), state.now(), state.config.urgent_note_ack_secs)
        .map(Json)
}

/// `GET /v1/consult/notes/{id}`: one of the consultant's notes, whole (audited as read).
pub async fn read(
    State(state): State<AppState>,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<Json<notes::Note>, Error> {
    let me = web::consultant(&state, &headers)?;
    let now = state.now();
    let c = state.db();
    let note = notes::note(&c, id, now, state.config.urgent_note_ack_secs)?
        .filter(|n| n.header.consultant_id == me.staff_id)
        .ok_or_else(|| Error::NotFound(format!("outcome note {id}")))?;
    record(&c, &me.username, note.header.prison_id, "note_read", format!("note={id}"), now)?;
    Ok(Json(note))
}

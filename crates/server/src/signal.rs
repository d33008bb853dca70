//! The signalling WebSocket, one loop for both kinds of peer: messages in are checked against the
//! rules (prison, consultant, time window, occupancy) and handed to the rooms hub; messages out come
//! from the hub. A garbled message gets an error back and the connection stays.
//!
//! Calls outlive the server: an admitted call is recorded in the database (crate::calls) until it
//! ends, and after a restart each peer reconnects and sends `resume`; a server that stops closes
//! the sockets with 1012 (service restart) and ends no call.

use crate::audit::{self, Reason};
use crate::hub::Tx;
use crate::rooms::{CallEvent, KioskPeer, RoomError};
use crate::{db, kiosk_api, turn, web, AppState, Error};
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::http::header::{HOST, ORIGIN};
use axum::http::HeaderMap;
use axum::response::Response;
use futures_util::{SinkExt as _, StreamExt as _};
use sc_proto::signal::{FromServer, Role, ToServer};
use std::time::Duration;
use tokio::sync::mpsc::unbounded_channel;

/// SDP with many candidates stays far below this.
const MAX_MESSAGE: usize = 64 * 1024;
const PING_EVERY: Duration = Duration::from_secs(15);
const DEAD_AFTER: Duration = Duration::from_secs(45);
/// After a start, how long the calls an earlier server recorded live wait to be resumed.
pub const RESUME_WITHIN: Duration = Duration::from_secs(60);

enum Who {
    Kiosk { session: db::KioskSession, token: Vec<u8> },
    Consultant(db::WebSession, Vec<u8>),
}

/// `GET /v1/kiosk/signal`: an unlocked laptop (bearer token).
pub async fn kiosk(State(state): State<AppState>, headers: HeaderMap, ws: WebSocketUpgrade) -> Result<Response, Error> {
    let (session, token) = kiosk_api::kiosk(&state, &headers)?;
    Ok(ws.max_message_size(MAX_MESSAGE).on_upgrade(move |s| run(s, state, Who::Kiosk { session, token })))
}

/// `GET /v1/consult/signal`: a signed-in consultant's page (cookie, same origin only).
pub async fn consultant(
    State(state): State<AppState>,
    headers: HeaderMap,
    ws: WebSocketUpgrade,
) -> Result<Response, Error> {
    // Browsers send cookies on cross-site WebSocket handshakes: insist the page is our own.
    let origin = headers.get(ORIGIN).and_then(|v| v.to_str().ok()).unwrap_or_default();
    let host = headers.get(HOST).and_then(|v| v.to_str().ok()).unwrap_or_default();
    if host.is_empty() || origin != format!("https://{host}") {
        return Err(Error::Unauthorized);
    }
    let (me, token_hash) = web::session_and_hash(&state, &headers, web::WebRole::Consultant)?;
    Ok(ws.max_message_size(MAX_MESSAGE).on_upgrade(move |s| run(s, state, Who::Consultant(me, token_hash))))
}

fn error(kind: &str, message: impl Into<String>) -> FromServer {
    FromServer::Error { kind: kind.into(), message: message.into() }
}

/// A call started, resumed or ended: audited, and the live calls kept in step.
fn audit_call(state: &AppState, event: &str, call: &CallEvent) {
    let c = state.db();
    let kept = match event {
        "call_started" => crate::calls::started(&c, call, state.now()),
        "call_ended" => crate::calls::ended(&c, call.appointment_id),
        _ => Ok(()),
    };
    if let Err(e) = kept {
        tracing::error!(error = %e, "recording a live call failed");
    }
    let entry = audit::Entry {
        event,
        outcome: "ok",
        device_id: Some(&call.device_id),
        detail: Some(format!("appointment={} consultant={}", call.appointment_id, call.consultant_id)),
        ..Default::default()
    };
    if let Err(e) = audit::record(&c, state.now(), &entry) {
        tracing::error!(error = %e, "audit of a call failed");
    }
}

fn audit_refusal(state: &AppState, who: &Who, reason: Reason, detail: String) {
    let c = state.db();
    let device_id = match who {
        Who::Kiosk { session, .. } => Some(&session.device_id),
        Who::Consultant(..) => None,
    };
    let entry = audit::Entry {
        event: "join",
        outcome: "refused",
        reason: Some(reason),
        device_id,
        detail: Some(detail),
        ..Default::default()
    };
    if let Err(e) = audit::record(&c, state.now(), &entry) {
        tracing::error!(error = %e, "audit of a refusal failed");
    }
}

/// What a share's audit record counts.
struct ShareCounts {
    files: u32,
    shown: u32,
    failed: u32,
    bytes: u64,
}

/// The most modalities one share's record lists, and the longest name kept.
const MAX_MODALITIES: usize = 16;
const MAX_MODALITY: usize = 16;

/// A consultant's share of images, recorded in the audit log under the call it was made in:
/// counts and modalities only (no file names, patient data or pixels reach the server).
fn audit_share(
    state: &AppState,
    conn: u64,
    who: &Who,
    n: ShareCounts,
    modalities: &[String],
) -> Result<(), FromServer> {
    let Who::Consultant(..) = who else { return Err(error("forbidden", "only a consultant shares images")) };
    let call =
        state.hub.call_of_consultant(conn).ok_or_else(|| error("not_in_call", "no call to record a share in"))?;
    // A modality is a DICOM code string (upper case, digits, space, underscore) or "picture".
    let valid = |m: &String| {
        m == "picture"
            || (!m.is_empty()
                && m.len() <= MAX_MODALITY
                && m.bytes().all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b' ' || b == b'_'))
    };
    if modalities.len() > MAX_MODALITIES || !modalities.iter().all(valid) || n.shown.saturating_add(n.failed) > n.files
    {
        return Err(error("bad_message", "a share record with impossible counts or modalities"));
    }
    let mut kinds: Vec<&str> = modalities.iter().map(String::as_str).collect();
    kinds.sort_unstable();
    kinds.dedup();
    let entry = audit::Entry {
        event: "image_share",
        outcome: if n.failed == 0 { "ok" } else { "partial" },
        device_id: Some(&call.device_id),
        detail: Some(format!(
            "appointment={} consultant={} files={} shown={} failed={} bytes={} modalities={}",
            call.appointment_id,
            call.consultant_id,
            n.files,
            n.shown,
            n.failed,
            n.bytes,
            kinds.join(",")
        )),
        ..Default::default()
    };
    audit::record(&state.db(), state.now(), &entry).map_err(|e| {
        tracing::error!(error = %e, "audit of an image share failed");
        error("unavailable", "the share could not be recorded")
    })
}

fn join(state: &AppState, conn: u64, who: &Who, room_code: &str) -> Result<(), FromServer> {
    let Who::Kiosk { token, .. } = who else { return Err(error("forbidden", "only a laptop joins a waiting room")) };
    let now = state.now();
    // Re-check the session: the lease may have ended or the laptop been revoked since connecting.
    let session = db::kiosk_session(&state.db(), token, now)
        .map_err(|_| error("unavailable", "try again"))?
        .ok_or_else(|| error("forbidden", "this laptop is locked"))?;
    let appt = db::appointment_by_code(&state.db(), room_code.trim())
        .map_err(|_| error("unavailable", "try again"))?
        .ok_or_else(|| error("not_found", "No appointment has that room code."))?;
    if appt.prison_id != session.prison_id {
        audit_refusal(state, who, Reason::OtherPrison, format!("appointment={}", appt.view.id));
        return Err(error("forbidden", "This appointment is for another prison."));
    }
    if now < appt.view.starts_at - state.config.join_early_secs || now >= appt.view.ends_at {
        return Err(error("not_now", "This appointment is not open now."));
    }
    let peer = KioskPeer {
        conn,
        device_id: session.device_id.clone(),
        prison: appt.view.prison.clone(),
        nurse: session.nurse,
    };
    state.hub.join(peer, &appt.view, appt.consultant_id).map_err(|e| e.to_message())
}

fn admit(
    state: &AppState,
    conn: u64,
    who: &Who,
    appointment_id: i64,
    patient_confirmed: bool,
) -> Result<(), FromServer> {
    let Who::Consultant(me, _) = who else { return Err(error("forbidden", "only a consultant admits")) };
    let appt = db::appointment(&state.db(), appointment_id)
        .map_err(|_| error("unavailable", "try again"))?
        .ok_or_else(|| error("not_found", "No such appointment."))?;
    if appt.consultant_id != me.staff_id {
        return Err(RoomError::Forbidden.to_message());
    }
    // The wrong-patient hazard (docs/clinical-safety.md H3): a booking that names its patient is
    // admitted only once the consultant says they checked who is there.
    if appt.view.patient.is_some() && !patient_confirmed {
        return Err(error(
            "confirm_patient",
            "Check the patient's prison number and initials with the nurse, tick that you have, then admit.",
        ));
    }
    let turn = &state.config.turn;
    let relay = match turn.relay_for(appointment_id) {
        Some(urls) if !turn.secret.is_empty() => urls,
        _ => {
            tracing::error!("TURN is not configured: set [turn] urls and secret (or SC_TURN_SECRET)");
            return Err(error("unavailable", "Calls are not available: the relay is not configured."));
        }
    };
    let now = state.now();
    let admitted = |role: Role| {
        let label = match role {
            Role::Offerer => format!("appt{appointment_id}-kiosk"),
            Role::Answerer => format!("appt{appointment_id}-consultant"),
        };
        FromServer::Admitted {
            appointment_id,
            role,
            ice_servers: vec![turn::credentials(relay, &turn.secret, &label, now, turn.ttl_secs)],
        }
    };
    let call = state.hub.admit(conn, appointment_id, admitted).map_err(|e| e.to_message())?;
    audit_call(state, "call_started", &call);
    if patient_confirmed {
        let entry = audit::Entry {
            event: "patient_confirmed",
            outcome: "ok",
            device_id: Some(&call.device_id),
            detail: Some(format!("appointment={appointment_id} consultant={}", call.consultant_id)),
            ..Default::default()
        };
        if let Err(e) = audit::record(&state.db(), state.now(), &entry) {
            tracing::error!(error = %e, "audit of a patient check failed");
        }
    }
    Ok(())
}

/// `resume`: a peer takes up a call it was in before its connection (or the server) went away.
/// Every refusal reads the same, so nobody learns whose calls are live.
fn resume(state: &AppState, conn: u64, who: &Who, appointment_id: i64) -> Result<(), FromServer> {
    let refused = || RoomError::NotResumable.to_message();
    let now = state.now();
    let live = crate::calls::live(&state.db(), appointment_id)
        .map_err(|_| error("unavailable", "try again"))?
        .ok_or_else(refused)?;
    let linked = match who {
        Who::Kiosk { token, .. } => {
            let session = db::kiosk_session(&state.db(), token, now)
                .map_err(|_| error("unavailable", "try again"))?
                .ok_or_else(|| error("forbidden", "this laptop is locked"))?;
            if session.device_id != live.device_id {
                return Err(refused());
            }
            let appt = db::appointment(&state.db(), appointment_id)
                .map_err(|_| error("unavailable", "try again"))?
                .ok_or_else(refused)?;
            let peer = KioskPeer { conn, device_id: session.device_id, prison: appt.view.prison, nurse: session.nurse };
            state.hub.resume_kiosk(peer, appointment_id, live.consultant_id)
        }
        Who::Consultant(me, _) if me.staff_id == live.consultant_id => {
            state.hub.resume_consultant(conn, appointment_id, &live.device_id)
        }
        Who::Consultant(..) => return Err(refused()),
    };
    if let Some(call) = linked.map_err(|e| e.to_message())? {
        audit_call(state, "call_resumed", &call);
    }
    Ok(())
}

/// Ends the calls recorded live that this server's hub does not know (nobody resumed them within
/// [`RESUME_WITHIN`] of its start). Returns how many.
pub fn end_unresumed(state: &AppState) -> Result<usize, Error> {
    let ids = crate::calls::all(&state.db())?;
    let mut n = 0;
    for id in ids.into_iter().filter(|id| !state.hub.knows_call(*id)) {
        let Some(live) = crate::calls::live(&state.db(), id)? else { continue };
        let call = CallEvent { appointment_id: id, device_id: live.device_id, consultant_id: live.consultant_id };
        audit_call(state, "call_ended", &call);
        n += 1;
    }
    Ok(n)
}

fn handle(state: &AppState, conn: u64, who: &Who, tx: &Tx, text: &str) {
    let msg: ToServer = match serde_json::from_str(text) {
        Ok(m) => m,
        Err(e) => {
            let _ = tx.send(error("bad_message", format!("not a signalling message: {e}")));
            return;
        }
    };
    let result = match msg {
        ToServer::Join { room_code } => join(state, conn, who, &room_code),
        ToServer::Admit { appointment_id, patient_confirmed } => {
            admit(state, conn, who, appointment_id, patient_confirmed)
        }
        ToServer::Offer { sdp } => state.hub.relay(conn, FromServer::Offer { sdp }).map_err(|e| e.to_message()),
        ToServer::Answer { sdp } => state.hub.relay(conn, FromServer::Answer { sdp }).map_err(|e| e.to_message()),
        ToServer::Candidate { candidate } => {
            state.hub.relay(conn, FromServer::Candidate { candidate }).map_err(|e| e.to_message())
        }
        ToServer::Quality { quality } => {
            state.hub.relay(conn, FromServer::Quality { quality }).map_err(|e| e.to_message())
        }
        ToServer::Resume { appointment_id } => resume(state, conn, who, appointment_id),
        ToServer::ShareDone { files, shown, failed, bytes, modalities } => {
            audit_share(state, conn, who, ShareCounts { files, shown, failed, bytes }, &modalities)
        }
        ToServer::HangUp => {
            if let Some(call) = state.hub.hang_up(conn) {
                audit_call(state, "call_ended", &call);
            }
            Ok(())
        }
        _ => Err(error("bad_message", "unsupported message")),
    };
    if let Err(reply) = result {
        let _ = tx.send(reply);
    }
}

async fn run(socket: WebSocket, state: AppState, who: Who) {
    let (tx, mut rx) = unbounded_channel();
    let conn = state.hub.connection(tx.clone());
    // A connection lives only as long as its session (crate::sessions).
    let mut ended = match &who {
        Who::Consultant(me, token_hash) => {
            state.hub.consultant_connected(conn, me.staff_id);
            state.sessions.register_staff(conn, web::WebRole::Consultant.role(), token_hash.clone())
        }
        Who::Kiosk { session, token } => {
            state.sessions.register(conn, session.device_id.clone(), db::token_hash(token))
        }
    };
    let (mut sink, mut stream) = socket.split();
    let mut ping = tokio::time::interval(PING_EVERY);
    let mut last_seen = tokio::time::Instant::now();
    loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => { last_seen = tokio::time::Instant::now(); handle(&state, conn, &who, &tx, text.as_str()) }
                Some(Ok(Message::Binary(_))) => { let _ = tx.send(error("bad_message", "text messages only")); }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => last_seen = tokio::time::Instant::now(),
            },
            out = rx.recv() => {
                let Some(msg) = out else { break };
                let Ok(json) = serde_json::to_string(&msg) else { continue };
                if sink.send(Message::Text(json.into())).await.is_err() { break }
            }
            _ = ping.tick() => {
                if last_seen.elapsed() > DEAD_AFTER || sink.send(Message::Ping(Vec::new().into())).await.is_err() { break }
            }
            why = &mut ended => {
                if why == Ok(crate::sessions::Ended::Restarting) {
                    // Not an end: the peer reconnects and resumes (1012: service restart).
                    let frame = axum::extract::ws::CloseFrame { code: 1012, reason: "restarting".into() };
                    let _ = sink.send(Message::Close(Some(frame))).await;
                    break;
                }
                let message = why.map_or("This session has ended.", crate::sessions::Ended::message);
                if let Ok(json) = serde_json::to_string(&error("session_ended", message)) {
                    let _ = sink.send(Message::Text(json.into())).await;
                }
                let _ = sink.send(Message::Close(None)).await;
                break;
            }
        }
    }
    state.sessions.unregister(conn);
    if let Some(call) = state.hub.disconnected(conn) {
        audit_call(&state, "call_ended", &call);
    }
}

//! The device channel and bricking's server side: a laptop's signed hello (over the channel
//! WebSocket or as a poll) is answered "ok" or with a brick command signed by the command key and
//! bound to the hello's challenge; an open channel gets a brick pushed within a second; wipe
//! receipts are verified with the device key and close the brick. See docs/brick.md.

use crate::audit::{self, Reason};
use crate::conn::Conn;
use crate::{db, AppState, Error};
use axum::body::Bytes;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::State;
use axum::response::Response;
use axum::Json;
use futures_util::{SinkExt as _, StreamExt as _};
use ring::signature::{UnparsedPublicKey, ED25519};
use sc_proto::brick::{
    BrickCommand, ChannelDown, ChannelUp, HelloPayload, ReceiptAck, ReceiptPayload, WipeCause, SIG_CONTEXT_BRICK,
    SIG_CONTEXT_HELLO, SIG_CONTEXT_RECEIPT,
};
use sc_proto::{Bytes as B64, DeviceId, Signed, PROTOCOL_VERSION};
use std::time::Duration;

/// How often an open channel looks for a brick of its device.
const BRICK_CHECK: Duration = Duration::from_secs(1);
/// A channel silent this long is closed (the laptop pings every 20 s).
const DEAD_AFTER: Duration = Duration::from_secs(70);
const MAX_MESSAGE: usize = 16 * 1024;

/// Signs a brick command for `device`, answering `challenge`.
pub fn sign_brick(state: &AppState, command_id: &str, device: &DeviceId, challenge: [u8; 16]) -> Result<Signed, Error> {
    let command = BrickCommand {
        version: PROTOCOL_VERSION,
        command_id: command_id.to_owned(),
        device_id: device.clone(),
        issued_at: state.now(),
        challenge: B64(challenge),
    };
    let payload = serde_json::to_vec(&command).map_err(|e| Error::Crypto(format!("brick command: {e}")))?;
    let signature = state.command_key.sign(&sc_proto::signing_input(SIG_CONTEXT_BRICK, &payload));
    let mut sig = [0u8; 64];
    sig.copy_from_slice(signature.as_ref());
    Ok(Signed { payload: B64(payload), signature: B64(sig) })
}

/// Audits a brick command going out to its laptop.
fn audit_delivery(c: &Conn<'_>, now: i64, device: &DeviceId, command_id: &str, via: &str) -> Result<(), Error> {
    let entry = audit::Entry {
        event: "brick_delivered",
        outcome: "ok",
        device_id: Some(device),
        detail: Some(format!("command={command_id} via={via}")),
        ..Default::default()
    };
    audit::record(c, now, &entry)
}

/// Parses a device-signed payload and checks the signature against the enrolled key.
fn verified<T: serde::de::DeserializeOwned>(
    c: &Conn<'_>,
    signed: &Signed,
    context: &[u8],
    device_of: impl Fn(&T) -> &DeviceId,
) -> Result<(T, db::Device), Error> {
    let payload: T =
        serde_json::from_slice(&signed.payload.0).map_err(|e| Error::BadRequest(format!("payload: {e}")))?;
    let device = db::device(c, device_of(&payload))?.ok_or(Error::Refused)?;
    let message = sc_proto::signing_input(context, &signed.payload.0);
    UnparsedPublicKey::new(&ED25519, &device.public_key)
        .verify(&message, &signed.signature.0)
        .map_err(|_| Error::Refused)?;
    Ok((payload, device))
}

/// A device that said hello in good standing, and the challenge it sent: the channel stays open for it.
pub type Listener = (DeviceId, [u8; 16]);

/// Answers a hello: `Ok`, or the brick command when the device is bricked. Refusals are audited.
pub fn hello(state: &AppState, signed: &Signed) -> Result<(ChannelDown, Option<Listener>), Error> {
    let now = state.now();
    let c = state.db();
    let (hello, device) = match verified::<HelloPayload>(&c, signed, SIG_CONTEXT_HELLO, |h| &h.device_id) {
        Ok(v) => v,
        Err(Error::Refused) => {
            // An unknown device or a forged signature: counted, not logged one by one.
            state.tally.note(&c, now, "hello", Reason::BadSignature)?;
            return Ok((ChannelDown::Refused { message: "This laptop is not recognised.".into() }, None));
        }
        Err(e) => return Err(e),
    };
    // A bricked laptop gets its brick whatever its clock says (issue #14): the command answers
    // this hello's challenge, which is what proves it fresh to the laptop, and a replayed hello
    // only gets a command for a challenge its laptop no longer holds.
    if let Some(brick) = db::brick_of(&c, &device.id)? {
        let command = sign_brick(state, &brick.command_id, &device.id, hello.challenge.0)?;
        audit_delivery(&c, now, &device.id, &brick.command_id, "hello")?;
        return Ok((ChannelDown::Brick { command }, None));
    }
    if hello.timestamp.abs_diff(now) > state.config.freshness_secs.unsigned_abs() {
        // A replayed hello looks the same: counted, not logged one by one.
        state.tally.note(&c, now, "hello", Reason::StaleTime)?;
        return Ok((ChannelDown::Refused { message: "The laptop's clock is wrong.".into() }, None));
    }
    db::touch_device(&c, &device.id, now)?;
    Ok((ChannelDown::Ok { server_time: now }, Some((device.id, hello.challenge.0))))
}

/// `POST /v1/device/poll`: a signed hello over plain HTTPS.
pub async fn poll(State(state): State<AppState>, body: Bytes) -> Result<Json<ChannelDown>, Error> {
    let signed: Signed = serde_json::from_slice(&body).map_err(|e| Error::BadRequest(format!("signed hello: {e}")))?;
    hello(&state, &signed).map(|(down, _)| Json(down))
}

/// `POST /v1/device/receipt`: a wiped laptop's signed receipt.
pub async fn receipt(State(state): State<AppState>, body: Bytes) -> Result<Json<ReceiptAck>, Error> {
    let signed: Signed =
        serde_json::from_slice(&body).map_err(|e| Error::BadRequest(format!("signed receipt: {e}")))?;
    let now = state.now();
    let c = state.db();
    let (receipt, device) = verified::<ReceiptPayload>(&c, &signed, SIG_CONTEXT_RECEIPT, |r| &r.device_id)?;
    let tx = c.transaction()?;
    let detail = match &receipt.cause {
        WipeCause::Brick { command_id } => {
            if !db::record_receipt(&tx, &device.id, command_id, &signed.payload.0, now)? {
                return Err(Error::BadRequest("no such brick for this laptop".into()));
            }
            format!("command={command_id} wiped_at={}", receipt.wiped_at)
        }
        WipeCause::DeadMan { last_contact } => {
            // The laptop destroyed its own share; destroy ours too, so nothing is left to release.
            db::shred_device(&tx, &device.id, "dead-man timer", now)?;
            format!("dead_man last_contact={last_contact} wiped_at={}", receipt.wiped_at)
        }
        _ => return Err(Error::BadRequest("unknown wipe cause".into())),
    };
    let entry = audit::Entry {
        event: "wipe_receipt",
        outcome: "ok",
        device_id: Some(&device.id),
        prison_id: Some(device.prison_id),
        detail: Some(detail),
        ..Default::default()
    };
    audit::record(&tx, now, &entry)?;
    tx.commit()?;
    if matches!(receipt.cause, WipeCause::DeadMan { .. }) {
        c.purge_dead_rows("devices")?;
    }
    tracing::info!(device_id = %device.id, "wipe receipt verified");
    Ok(Json(ReceiptAck { state: "wiped".into() }))
}

/// `GET /v1/device/channel`: the laptop's light, always-on channel.
pub async fn channel(State(state): State<AppState>, ws: WebSocketUpgrade) -> Response {
    ws.max_message_size(MAX_MESSAGE).on_upgrade(move |s| run(s, state))
}

async fn send(sink: &mut futures_util::stream::SplitSink<WebSocket, Message>, msg: &ChannelDown) -> bool {
    match serde_json::to_string(msg) {
        Ok(json) => sink.send(Message::Text(json.into())).await.is_ok(),
        Err(_) => false,
    }
}

async fn run(socket: WebSocket, state: AppState) {
    let (mut sink, mut stream) = socket.split();
    // The first message must be a signed hello, promptly.
    let first = tokio::time::timeout(Duration::from_secs(10), stream.next()).await;
    let Ok(Some(Ok(Message::Text(text)))) = first else { return };
    let reply = match serde_json::from_str::<ChannelUp>(text.as_str()) {
        Ok(ChannelUp::Hello { hello: signed }) => hello(&state, &signed),
        _ => Err(Error::BadRequest("the channel opens with a signed hello".into())),
    };
    let (down, who) = match reply {
        Ok(r) => r,
        Err(e) => {
            let _ = send(&mut sink, &ChannelDown::Refused { message: e.to_string() }).await;
            return;
        }
    };
    if !send(&mut sink, &down).await {
        return;
    }
    let Some((device_id, challenge)) = who else { return };
    let mut check = tokio::time::interval(BRICK_CHECK);
    let mut last_seen = tokio::time::Instant::now();
    loop {
        tokio::select! {
            incoming = stream.next() => match incoming {
                Some(Ok(Message::Text(text))) => {
                    last_seen = tokio::time::Instant::now();
                    if let Ok(ChannelUp::Ping) = serde_json::from_str::<ChannelUp>(text.as_str()) {
                        let now = state.now();
                        let touched = db::touch_device(&state.db(), &device_id, now);
                        if touched.is_err() || !send(&mut sink, &ChannelDown::Ok { server_time: now }).await { break }
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => break,
                Some(Ok(_)) => last_seen = tokio::time::Instant::now(),
            },
            _ = check.tick() => {
                if last_seen.elapsed() > DEAD_AFTER { break }
                let brick = db::brick_of(&state.db(), &device_id);
                match brick {
                    Ok(Some(b)) => {
                        // A brick from the CLI (another process) reaches the signalling too.
                        state.sessions.end_device(&device_id, crate::sessions::Ended::Revoked);
                        let pushed = sign_brick(&state, &b.command_id, &device_id, challenge).map(|command| ChannelDown::Brick { command });
                        let Ok(msg) = pushed else { break };
                        if let Err(e) = audit_delivery(&state.db(), state.now(), &device_id, &b.command_id, "channel") {
                            tracing::error!(error = %e, "auditing a brick delivery");
                        }
                        let _ = send(&mut sink, &msg).await;
                        break;
                    }
                    Ok(None) => {}
                    Err(e) => tracing::error!(error = %e, "checking for a brick"),
                }
            }
        }
    }
}

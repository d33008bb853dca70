//! The device channel, the laptop's side: while the app runs (locked or not) it keeps a WebSocket
//! to the server, opened with a device-signed hello and kept alive with a heartbeat; every answer
//! counts as contact for the dead-man timer, and a brick command pushed down it is verified and
//! carried out. Reconnects with back-off (1 s doubling to 60 s). See docs/brick.md.

use crate::client::client_for;
use crate::clock::Clock;
use crate::keystore::blocking;
use crate::kiosk::Kiosk;
use crate::Error;
use futures_util::{SinkExt as _, StreamExt as _};
use ring::rand::{SecureRandom as _, SystemRandom};
use sc_proto::brick::{ChannelDown, ChannelUp, HelloPayload, SIG_CONTEXT_HELLO};
use sc_proto::{Bytes, Signed, PROTOCOL_VERSION};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::Message;

/// How often the laptop pings.
pub const HEARTBEAT: Duration = Duration::from_secs(20);
/// With no word from the server this long, the connection is presumed dead.
const SILENT_FOR: Duration = Duration::from_secs(60);
const MAX_BACKOFF: Duration = Duration::from_secs(60);

/// A signed hello and the challenge in it.
pub async fn hello(kiosk: &Kiosk) -> Result<(Signed, [u8; 16]), Error> {
    let record = kiosk.record().ok_or(Error::NotEnrolled)?;
    let keystore = blocking(kiosk.keystore_factory()).await?;
    let profile = kiosk.data_dir().profile_id();
    let secrets = blocking(move || keystore.load(&profile)).await?;
    let mut challenge = [0u8; 16];
    SystemRandom::new().fill(&mut challenge).map_err(|_| Error::Crypto("random challenge"))?;
    let payload = HelloPayload {
        version: PROTOCOL_VERSION,
        device_id: record.device_id.clone(),
        // The server checks freshness against its own clock: always the system's.
        timestamp: Clock::system().unix_now(),
        challenge: Bytes(challenge),
    };
    let bytes = serde_json::to_vec(&payload).map_err(|e| Error::Protocol(e.to_string()))?;
    Ok((secrets.sign(SIG_CONTEXT_HELLO, bytes)?, challenge))
}

/// Acts on the server's answer; `Ok(false)` when the laptop is now disabled.
async fn apply(kiosk: &Kiosk, down: ChannelDown, challenge: [u8; 16]) -> Result<bool, Error> {
    match down {
        ChannelDown::Ok { server_time } => {
            kiosk.contact_made(server_time);
            Ok(true)
        }
        ChannelDown::Brick { command } => {
            kiosk.apply_brick(&command, challenge).await?;
            Ok(false)
        }
        ChannelDown::Refused { message } => {
            tracing::warn!(%message, "the server refused this laptop's hello");
            Err(Error::Refused)
        }
        _ => Err(Error::Protocol("unknown channel message".into())),
    }
}

/// One poll over HTTPS (the same answer as the channel's first).
pub async fn poll(kiosk: &Kiosk) -> Result<bool, Error> {
    let record = kiosk.record().ok_or(Error::NotEnrolled)?;
    let (signed, challenge) = hello(kiosk).await?;
    let down = client_for(record)?.poll(&signed).await?;
    apply(kiosk, down, challenge).await
}

/// One connection: hello, then heartbeats until it drops. `Ok(false)` once disabled.
async fn connection(kiosk: &Kiosk) -> Result<bool, Error> {
    let record = kiosk.record().ok_or(Error::NotEnrolled)?.clone();
    let (signed, challenge) = hello(kiosk).await?;
    let mut ws = crate::signal::open(&record, "/v1/device/channel", None).await?;
    let send = |m: &ChannelUp| {
        serde_json::to_string(m).map(|j| Message::Text(j.into())).map_err(|e| Error::Protocol(e.to_string()))
    };
    ws.send(send(&ChannelUp::Hello { hello: signed })?).await.map_err(|_| Error::Unreachable)?;
    let mut ping = tokio::time::interval(HEARTBEAT);
    ping.tick().await;
    let mut last_heard = tokio::time::Instant::now();
    loop {
        tokio::select! {
            msg = ws.next() => match msg {
                Some(Ok(Message::Text(t))) => {
                    last_heard = tokio::time::Instant::now();
                    let down: ChannelDown = serde_json::from_str(t.as_str()).map_err(|e| Error::Protocol(format!("channel: {e}")))?;
                    if !apply(kiosk, down, challenge).await? {
                        return Ok(false);
                    }
                }
                Some(Ok(Message::Close(_))) | Some(Err(_)) | None => return Ok(true),
                Some(Ok(_)) => last_heard = tokio::time::Instant::now(),
            },
            _ = ping.tick() => {
                if kiosk.check_dead_man() || last_heard.elapsed() > SILENT_FOR {
                    return Ok(!kiosk.is_disabled());
                }
                ws.send(send(&ChannelUp::Ping)?).await.map_err(|_| Error::Unreachable)?;
            }
        }
    }
}

/// Keeps the channel up for as long as the laptop is enrolled and not disabled; once disabled,
/// finishes the wipe and re-sends the receipt until the server acknowledges it.
pub async fn run(kiosk: Arc<Kiosk>) {
    let mut backoff = Duration::from_secs(1);
    loop {
        if kiosk.record().is_none() {
            return;
        }
        if kiosk.is_disabled() {
            match kiosk.finish_wipe().await {
                Ok(Some(t)) if t.acknowledged || t.receipt.is_none() => return,
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "finishing the wipe"),
            }
        } else {
            match connection(&kiosk).await {
                Ok(true) => backoff = Duration::from_secs(1),
                Ok(false) => continue,
                Err(e) => tracing::debug!(error = %e, "device channel down"),
            }
        }
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

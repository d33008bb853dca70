//! The kiosk's call engine without a window, for runs inside a network namespace (the shaped-link
//! tests): enrols a laptop profile with a one-time token, signs a nurse in, joins a room and
//! reports the call as JSON lines on stdout (`phase` on each change, `stats` every second) until
//! the call ends or `SC_SECS` seconds in the call have passed. Settings come from the environment:
//! SC_SERVER, SC_TOKEN, SC_NURSE, SC_PASSWORD, SC_CODE, SC_ROOM, SC_DATA (a fresh directory),
//! SC_BIND (the UDP address for the TURN client), SC_SECS, and SC_MEDIA (`synthetic`, or a 640x480
//! Y4M clip's path); SC_VIDEO_FEC=0 sends the kiosk's video without ULPFEC (on in the kiosk; for
//! the benchmark's comparison); SC_LINK_MEMORY names the file the link's record is kept in (by
//! default the data directory's, as in the kiosk). RUST_LOG filters the logs on stderr. The
//! keystore is the session's Secret Service, as for the real kiosk.
#![forbid(unsafe_code)]
// The stats line is one `json!` object of some fifty fields; the macro recurses once a token.
#![recursion_limit = "256"]

use sc_call::consultation::{Consultation, MediaSetup, Phase};
use sc_core::activate::Credentials;
use sc_core::keystore::Keystore;
use sc_core::{Kiosk, KioskView};
use serde_json::json;
use std::sync::Arc;
use std::time::{Duration, Instant};

fn setting(key: &str) -> String {
    std::env::var(key).unwrap_or_else(|_| fail(&format!("{key} is required")))
}

fn fail(why: &str) -> ! {
    println!("{}", json!({ "event": "error", "message": why }));
    std::process::exit(1)
}

fn main() {
    // Logs go to stderr, filtered by RUST_LOG (none by default); the tests keep them with
    // SC_ENGINE_LOG (see tests/e2e/shaped_call.rs).
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "off".into()))
        .with_writer(std::io::stderr)
        .init();
    let rt = tokio::runtime::Runtime::new().unwrap_or_else(|e| fail(&format!("runtime: {e}")));
    rt.block_on(run());
}

async fn run() {
    let dir = std::path::PathBuf::from(setting("SC_DATA"));
    let data = sc_core::record::DataDir::open(&dir).unwrap_or_else(|e| fail(&format!("data dir: {e}")));
    let keystore = tokio::task::spawn_blocking(Keystore::secret_service)
        .await
        .unwrap_or_else(|e| fail(&format!("keystore: {e}")))
        .unwrap_or_else(|e| fail(&format!("keystore: {e}")));
    let token = setting("SC_TOKEN").parse().unwrap_or_else(|e| fail(&format!("token: {e}")));
    sc_core::enrol::enrol(&data, &keystore, &setting("SC_SERVER"), &token)
        .await
        .unwrap_or_else(|e| fail(&format!("enrol: {e}")));
    let kiosk = Kiosk::open(&dir, Keystore::secret_service).unwrap_or_else(|e| fail(&format!("open: {e}")));
    let creds = Credentials {
        username: setting("SC_NURSE"),
        password: setting("SC_PASSWORD").into(),
        totp: setting("SC_CODE"),
    };
    let view = kiosk.sign_in(creds).await;
    if !matches!(view, KioskView::Unlocked { .. }) {
        fail(&format!("sign-in: {view:?}"));
    }
    let record = kiosk.record().cloned().unwrap_or_else(|| fail("not enrolled"));
    let session = kiosk.session_token().unwrap_or_else(|| fail("not unlocked"));
    let bind = vec![setting("SC_BIND")];
    let mut media = match setting("SC_MEDIA").as_str() {
        "synthetic" => MediaSetup::synthetic(bind, Duration::from_secs(30)),
        clip => MediaSetup::clip(bind, Duration::from_secs(30), clip.into()),
    };
    media.video_fec = std::env::var("SC_VIDEO_FEC").map_or(true, |v| v != "0");
    // As the kiosk keeps it, in its data directory; `SC_LINK_MEMORY` names a file that outlives
    // the run (a prison's calls one after another).
    let link_memory = std::env::var_os("SC_LINK_MEMORY").map_or_else(|| data.link_path(), std::path::PathBuf::from);
    media.link_memory = Some(sc_call::link_memory::LinkMemory::at(link_memory));
    let secs: u64 = setting("SC_SECS").parse().unwrap_or_else(|_| fail("SC_SECS: a number of seconds"));
    let call = Consultation::start(record, session, setting("SC_ROOM"), Arc::new(media));
    let mut phases = call.phases();
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let mut in_call_since: Option<Instant> = None;
    let started = Instant::now();
    loop {
        tokio::select! {
            changed = phases.changed() => {
                if changed.is_err() {
                    break;
                }
                let phase = phases.borrow_and_update().clone();
                let name = match &phase {
                    Phase::Joining => "joining",
                    Phase::Waiting { .. } => "waiting",
                    Phase::Connecting => "connecting",
                    Phase::InCall { .. } => "in_call",
                    Phase::Ended { .. } => "ended",
                    _ => "other",
                };
                println!("{}", json!({ "event": "phase", "phase": name, "at_ms": started.elapsed().as_millis() as u64, "detail": format!("{phase:?}") }));
                if matches!(phase, Phase::InCall { .. }) && in_call_since.is_none() {
                    in_call_since = Some(Instant::now());
                }
                if matches!(phase, Phase::Ended { .. }) {
                    break;
                }
            }
            _ = tick.tick() => {
                let s = call.stats();
                let sending = s.sending.map(|x| json!({
                    "video": x.video.map(|(r, kbps)| json!({ "width": r.width, "height": r.height, "fps": r.fps, "kbps": kbps })),
                    "audio_kbps": x.audio_kbps,
                    "audio_loss_pct": x.audio_loss_pct,
                    "audio_frame_ms": x.audio_frame_ms,
                    "audio_red": x.audio_red,
                }));
                println!("{}", json!({
                    "event": "stats",
                    "at_ms": started.elapsed().as_millis() as u64,
                    "frames_sent": s.frames_sent,
                    "frames_decoded": s.frames_decoded,
                    "remote": [s.remote_width, s.remote_height],
                    "audio_sent": s.audio_sent,
                    "audio_red_sent": s.audio_red_sent,
                    "audio_received": s.audio_received,
                    "audio_lost": s.audio_lost,
                    "audio_recovered": s.audio_recovered,
                    "audio_red": s.audio_red,
                    "audio_samples": s.audio_samples,
                    "audio_concealed_samples": s.audio_concealed_samples,
                    "audio_inserted_samples": s.audio_inserted_samples,
                    "audio_removed_samples": s.audio_removed_samples,
                    "audio_delay_ms": s.audio_delay.as_millis() as u64,
                    "audio_sync_ms": s.audio_sync.as_millis() as u64,
                    "av_skew_ms": s.av_skew_ms,
                    "remote_audio_frame_ms": s.remote_audio_frame_ms,
                    "target_kbps": s.target_kbps,
                    "limit_kbps": s.limit_kbps,
                    "peer_cap_kbps": s.peer_cap_kbps,
                    "link_loss": s.link_loss,
                    "queue_ms": s.queue_ms,
                    "window_loss": s.window_loss,
                    "repairs_unasked": s.repairs_unasked,
                    "repairs_too_old": s.repairs_too_old,
                    "round_trip_ms": s.round_trip.map(|d| d.as_millis() as u64),
                    "sound_only_by_link": s.sound_only_by_link,
                    "ice_restarts": s.ice_restarts,
                    "freezes": s.freezes,
                    "pauses": s.pauses,
                    "playout_ms": s.playout_delay.as_millis() as u64,
                    "keyframes_asked": s.keyframes_asked,
                    "video_bytes_sent": s.video_bytes_sent,
                    "frames_skipped_busy": s.frames_skipped_busy,
                    "frames_dropped_by_encoder": s.frames_dropped_by_encoder,
                    "video_fec": s.video_fec,
                    "video_fec_rebuilt": s.video_fec_rebuilt,
                    "video_fec_contradicted": s.video_fec_contradicted,
                    "video_fec_sent": s.video_fec_sent,
                    "keyframes_sent": s.keyframes_sent,
                    "keyframe_requests": s.keyframe_requests,
                    "sending": sending,
                }));
                if in_call_since.is_some_and(|t| t.elapsed() >= Duration::from_secs(secs)) {
                    call.hang_up();
                }
            }
        }
    }
    kiosk.lock();
}

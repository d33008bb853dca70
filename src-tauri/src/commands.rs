//! The kiosk page's commands. Each forwards to `sc_core::Kiosk` or the call; the kiosk's own rules
//! (timeouts, a call counting as activity, a lock ending the call) run on its timer, not here.
//! Errors reach the page as `{kind, message}`, worded by `sc_core::notice`.

use crate::calls::Calls;
use sc_call::consultation::{Consultation, Phase};
use sc_core::activate::Credentials;
use sc_core::notice::{NoticeKind, Wording};
use sc_core::{Kiosk, KioskView};
use sc_proto::signal::Appointment;
use std::sync::Arc;
use tauri::ipc::{Channel, InvokeResponseBody};
use tauri::State;
use zeroize::Zeroizing;

/// An error as the page receives it: `{kind, message}`. A core error is worded by
/// [`sc_core::Error::for_nurse`]; the shell adds only its own checks of the page's input.
pub type UiError = Wording;

fn invalid(message: &str) -> UiError {
    Wording::new(NoticeKind::InvalidInput, message)
}

fn core_error(e: sc_core::Error) -> UiError {
    // The page shows the nurse's words (with a code for IT); the cause is logged under that code.
    if let Some(code) = e.it_code() {
        tracing::warn!(error = %e, code, "a command failed");
    }
    e.for_nurse()
}

/// The current screen.
#[tauri::command]
pub fn kiosk_status(kiosk: State<'_, Arc<Kiosk>>) -> KioskView {
    kiosk.screen()
}

/// Signs in with user name, password and the 6-digit code.
#[tauri::command]
pub async fn sign_in(
    kiosk: State<'_, Arc<Kiosk>>,
    username: String,
    password: String,
    code: String,
) -> Result<KioskView, UiError> {
    let password = Zeroizing::new(password);
    let username = username.trim().to_owned();
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if username.is_empty() || username.len() > 64 {
        return Err(invalid("Enter your user name."));
    }
    if password.is_empty() || password.len() > 1024 {
        return Err(invalid("Enter your password."));
    }
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(invalid("The code is the 6 digits shown in your authenticator."));
    }
    Ok(kiosk.sign_in(Credentials { username, password, totp: code }).await)
}

/// Locks now (the kiosk's timer then ends any call).
#[tauri::command]
pub fn lock(kiosk: State<'_, Arc<Kiosk>>) -> KioskView {
    kiosk.lock()
}

/// Someone used the laptop: postpones the idle lock.
#[tauri::command]
pub fn activity(kiosk: State<'_, Arc<Kiosk>>) {
    kiosk.activity();
}

/// Checks the server is reachable (the lock screen shows when it is not). The page calls this
/// first thing, so its first call marks the page as ready (the benchmark times start-up by it).
#[tauri::command]
pub async fn check_server(kiosk: State<'_, Arc<Kiosk>>) -> Result<KioskView, UiError> {
    static READY: std::sync::Once = std::sync::Once::new();
    READY.call_once(|| {
        tracing::info!("kiosk page ready");
        crate::session::close_the_door();
    });
    Ok(kiosk.check_server().await)
}

/// Today's appointments for this prison.
#[tauri::command]
pub async fn appointments(kiosk: State<'_, Arc<Kiosk>>) -> Result<Vec<Appointment>, UiError> {
    kiosk.appointments().await.map_err(core_error)
}

/// How many of this prison's outcome notes await its healthcare team: the appointments screen
/// says so in one line (never the note: the patient can see this screen).
#[tauri::command]
pub async fn outcome_notes(kiosk: State<'_, Arc<Kiosk>>) -> Result<sc_proto::signal::OutcomeNotes, UiError> {
    kiosk.outcome_notes().await.map_err(core_error)
}

/// Joins an appointment's waiting room by its room code. Async so that it runs on the Tokio
/// runtime, where the consultation's task lives (synchronous commands run on the main thread).
#[tauri::command]
pub async fn join(
    kiosk: State<'_, Arc<Kiosk>>,
    calls: State<'_, Arc<Calls>>,
    room_code: String,
) -> Result<Phase, UiError> {
    let code = room_code.trim().to_lowercase();
    if code.is_empty() || code.len() > 32 || !code.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return Err(invalid("Type the room code as given, for example abcd-efgh-jkmn."));
    }
    if calls.active() {
        return Err(Wording::new(NoticeKind::Busy, "A consultation is already under way."));
    }
    let record = kiosk.record().cloned().ok_or_else(|| core_error(sc_core::Error::NotEnrolled))?;
    let token = kiosk.session_token().ok_or_else(|| core_error(sc_core::Error::Locked))?;
    calls.start(Consultation::start(record, token, code, calls.media.clone()));
    Ok(Phase::Joining)
}

/// The consultation's phase (`null` when there is none).
#[tauri::command]
pub fn call_status(calls: State<'_, Arc<Calls>>) -> Option<Phase> {
    calls.phase()
}

/// Ends the call or leaves the waiting room.
#[tauri::command]
pub fn hang_up(calls: State<'_, Arc<Calls>>) {
    calls.with(Consultation::hang_up);
}

/// Switches one of the call's options: `mute`, `camera` or `audio_only`.
#[tauri::command]
pub fn set_call_option(calls: State<'_, Arc<Calls>>, option: String, on: bool) -> Result<(), UiError> {
    match option.as_str() {
        "mute" => calls.with(|c| c.set_muted(on)),
        "camera" => calls.with(|c| c.set_camera(on)),
        "audio_only" => calls.with(|c| c.set_audio_only(on)),
        _ => return Err(invalid("Unknown call option.")),
    };
    Ok(())
}

/// Switches to the laptop's next camera (the hand-held close-up camera, and back).
#[tauri::command]
pub fn switch_camera(calls: State<'_, Arc<Calls>>) {
    calls.with(Consultation::switch_camera);
}

/// Puts the consultant's shared image back as the file shows it: the nurse's only control over
/// the viewer (the consultant is told).
#[tauri::command]
pub fn reset_view(calls: State<'_, Arc<Calls>>) {
    calls.with(Consultation::reset_view);
}

/// Stops the consultant's playing image (a loop) on the frame shown (the consultant is told).
#[tauri::command]
pub fn pause_images(calls: State<'_, Arc<Calls>>) {
    calls.with(Consultation::pause_images);
}

/// Back to the appointments after a call ended.
#[tauri::command]
pub fn dismiss_call(calls: State<'_, Arc<Calls>>) {
    calls.dismiss();
}

/// Where decoded frames go: raw bytes, a 12-byte header (width, height, number) then I420.
/// Answers whether the page draws video at all (false: a native surface does, and sends nothing).
#[tauri::command]
pub fn watch_video(calls: State<'_, Arc<Calls>>, on_frame: Channel<InvokeResponseBody>) -> bool {
    calls.set_video_channel(on_frame);
    calls.page_draws()
}

/// Where self-view frames go (same format as `watch_video`, small and a few times a second).
#[tauri::command]
pub fn watch_self_view(calls: State<'_, Arc<Calls>>, on_frame: Channel<InvokeResponseBody>) {
    calls.set_self_view_channel(on_frame);
}

//! The kiosk page's commands. Each forwards to `sc_core::Kiosk`; errors reach the page as
//! `{kind, message}`.

use sc_core::activate::Credentials;
use sc_core::{Kiosk, KioskView};
use serde::Serialize;
use std::time::Instant;
use tauri::State;
use zeroize::Zeroizing;

/// An error as the page receives it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct UiError {
    /// Machine-readable kind, e.g. `invalid_input`.
    pub kind: &'static str,
    /// What to show.
    pub message: String,
}

impl UiError {
    fn invalid(message: &str) -> Self {
        UiError { kind: "invalid_input", message: message.to_owned() }
    }
}

/// The current screen.
#[tauri::command]
pub fn kiosk_status(kiosk: State<'_, Kiosk>) -> KioskView {
    kiosk.view(Instant::now())
}

/// Signs in with user name, password and the 6-digit code.
#[tauri::command]
pub async fn sign_in(
    kiosk: State<'_, Kiosk>,
    username: String,
    password: String,
    code: String,
) -> Result<KioskView, UiError> {
    let password = Zeroizing::new(password);
    let username = username.trim().to_owned();
    let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
    if username.is_empty() || username.len() > 64 {
        return Err(UiError::invalid("Enter your user name."));
    }
    if password.is_empty() || password.len() > 1024 {
        return Err(UiError::invalid("Enter your password."));
    }
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Err(UiError::invalid("The code is the 6 digits shown in your authenticator."));
    }
    Ok(kiosk.sign_in(Credentials { username, password, totp: code }).await)
}

/// Locks now.
#[tauri::command]
pub fn lock(kiosk: State<'_, Kiosk>) -> KioskView {
    kiosk.lock()
}

/// Someone used the laptop: postpones the idle lock.
#[tauri::command]
pub fn activity(kiosk: State<'_, Kiosk>) {
    kiosk.activity();
}

/// Checks the server is reachable (the lock screen shows when it is not). The page calls this
/// first thing, so its first call marks the page as ready (the benchmark times start-up by it).
#[tauri::command]
pub async fn check_server(kiosk: State<'_, Kiosk>) -> Result<KioskView, UiError> {
    static READY: std::sync::Once = std::sync::Once::new();
    READY.call_once(|| tracing::info!("kiosk page ready"));
    Ok(kiosk.check_server().await)
}

//! The kiosk shell: command-line entry, the locked-down window, and the Tauri wiring. No business
//! logic lives here; it forwards to `sc_core::Kiosk`.
#![forbid(unsafe_code)]

pub mod calls;
mod cli;
pub mod commands;
#[cfg(target_os = "linux")]
mod image_view;
#[cfg(target_os = "linux")]
pub mod surface;
pub mod window;

use sc_core::Kiosk;
use std::process::ExitCode;
use tauri::{Builder, Runtime};

/// Registers the kiosk's state and commands on a builder (the real one or the mock runtime's).
pub fn wire<R: Runtime>(builder: Builder<R>, kiosk: Kiosk, calls: calls::Calls) -> Builder<R> {
    // Shared with the device channel's task, which runs for the app's whole life.
    builder.manage(std::sync::Arc::new(kiosk)).manage(calls).invoke_handler(tauri::generate_handler![
        commands::kiosk_status,
        commands::sign_in,
        commands::lock,
        commands::activity,
        commands::check_server,
        commands::appointments,
        commands::join,
        commands::call_status,
        commands::hang_up,
        commands::set_call_option,
        commands::dismiss_call,
        commands::watch_video,
        commands::switch_camera,
        commands::watch_self_view,
        commands::reset_view,
    ])
}

/// Runs the kiosk window until it is closed.
pub fn run_window(kiosk: Kiosk) -> Result<(), String> {
    #[cfg(target_os = "linux")]
    let native = surface::native_enabled();
    #[cfg(not(target_os = "linux"))]
    let native = false;
    wire(tauri::Builder::default(), kiosk, calls::Calls::new(calls::media_from_env()).drawing_natively(native))
        .setup(move |app| {
            window::create(app.handle())?;
            #[cfg(target_os = "linux")]
            if native {
                surface::install(app.handle())?;
            }
            // The device channel: heartbeat, dead-man contact, brick push; and after a wipe,
            // the receipt until the server has it.
            let kiosk = tauri::Manager::state::<std::sync::Arc<Kiosk>>(app).inner().clone();
            tauri::async_runtime::spawn(sc_core::channel::run(kiosk));
            Ok(())
        })
        .run(tauri::generate_context!())
        .map_err(|e| format!("the kiosk window failed: {e}"))
}

/// The process entry point.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match cli::run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("secureconsult-kiosk: {message}");
            ExitCode::FAILURE
        }
    }
}

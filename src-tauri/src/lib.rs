//! The kiosk shell: the Tauri wiring and the locked-down window (the command line is `cli`). No
//! business logic lives here; it forwards to `sc_core::Kiosk`.
#![forbid(unsafe_code)]

#[macro_use]
mod page_commands;
pub mod calls;
mod cli;
pub mod commands;
#[cfg(target_os = "linux")]
mod image_view;
mod session;
#[cfg(target_os = "linux")]
pub mod surface;
pub mod window;

pub use cli::main;
pub use page_commands::COMMANDS;

use sc_core::Kiosk;
use std::sync::Arc;
use tauri::{Builder, Runtime};

/// The invoke handler for the page's commands (the list in `page_commands.rs`).
macro_rules! handler {
    ($($command:ident),* $(,)?) => {
        tauri::generate_handler![$(commands::$command),*]
    };
}

/// Registers the kiosk's state and commands on a builder (the real one or the mock runtime's), and
/// starts the kiosk's timer: its rules (lease, idle, a call counting as activity, the dead-man
/// timer) run on their own, and a lock ends the call.
pub fn wire<R: Runtime>(builder: Builder<R>, kiosk: Kiosk, calls: calls::Calls) -> Builder<R> {
    // Background work (telling the server a session ended) runs on Tauri's runtime, so a lock
    // from a synchronous command (main thread, no runtime) still reaches the server.
    let kiosk = Arc::new(kiosk.with_runtime(tauri::async_runtime::handle().inner().clone()));
    let calls = Arc::new(calls);
    tauri::async_runtime::spawn(sc_core::timer::run(kiosk.clone(), calls.clone()));
    // Shared with the device channel's task, which runs for the app's whole life.
    builder.manage(kiosk).manage(calls).invoke_handler(page_commands!(handler))
}

/// Runs the kiosk window until it is closed.
pub fn run_window(kiosk: Kiosk) -> Result<(), String> {
    #[cfg(target_os = "linux")]
    let native = surface::native_enabled();
    #[cfg(not(target_os = "linux"))]
    let native = false;
    let mut media = calls::media_from_env();
    // Each call starts from what the last calls learnt of the link (sc_call::link_memory).
    media.link_memory = Some(sc_call::link_memory::LinkMemory::at(kiosk.data_dir().link_path()));
    wire(tauri::Builder::default(), kiosk, calls::Calls::new(media).drawing_natively(native))
        .setup(move |app| {
            window::create(app.handle())?;
            #[cfg(target_os = "linux")]
            if native {
                surface::install(app.handle())?;
            }
            // The device channel: heartbeat, dead-man contact, brick push; and after a wipe,
            // the receipt until the server has it.
            let kiosk = tauri::Manager::state::<Arc<Kiosk>>(app).inner().clone();
            tauri::async_runtime::spawn(sc_core::channel::run(kiosk));
            Ok(())
        })
        .run(tauri::generate_context!())
        .map_err(|e| format!("the kiosk window failed: {e}"))
}

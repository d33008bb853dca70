//! The one kiosk window: fullscreen, undecorated, no devtools, and no way to navigate away or open
//! another window.

use tauri::webview::NewWindowResponse;
use tauri::{AppHandle, Runtime, WebviewUrl, WebviewWindowBuilder};
use url::Url;

/// Only the app's own pages may load; everything else (links, redirects, typed URLs) is refused.
pub fn navigation_allowed(url: &Url) -> bool {
    match url.scheme() {
        "tauri" => url.host_str() == Some("localhost"),
        "http" | "https" => url.host_str() == Some("tauri.localhost"),
        _ => false,
    }
}

/// Creates the kiosk window.
pub fn create<R: Runtime>(app: &AppHandle<R>) -> tauri::Result<()> {
    WebviewWindowBuilder::new(app, "main", WebviewUrl::App("index.html".into()))
        .title("SecureConsult")
        .fullscreen(true)
        .decorations(false)
        // Resizable so that the compositor's fullscreen size is taken: GTK keeps a fixed-size
        // window at its default 800x600, which cage then shows in a corner of a black screen.
        // Nobody can resize it: it has no decorations and the session has no window manager.
        .resizable(true)
        .closable(false)
        .minimizable(false)
        .maximizable(false)
        .skip_taskbar(true)
        .always_on_top(true)
        .focused(true)
        .devtools(false)
        .on_navigation(|url| {
            let ok = navigation_allowed(url);
            if !ok {
                tracing::warn!(scheme = url.scheme(), "blocked navigation away from the kiosk");
            }
            ok
        })
        .on_new_window(|_, _| NewWindowResponse::Deny)
        .build()?;
    Ok(())
}

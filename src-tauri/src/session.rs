//! The kiosk session's door: under the kiosk compositor (policy/linux runs cage with
//! `SC_KIOSK_SESSION=1`), once the kiosk's page is up the compositor's socket is removed, so no
//! other program can open a window in the session; the kiosk's own connection stays.

use std::path::PathBuf;

/// The socket to remove: `$XDG_RUNTIME_DIR/$WAYLAND_DISPLAY` in the kiosk session, else nothing.
fn door(env: impl Fn(&str) -> Option<String>) -> Option<PathBuf> {
    if env("SC_KIOSK_SESSION").as_deref() != Some("1") {
        return None;
    }
    let display = env("WAYLAND_DISPLAY").filter(|d| !d.is_empty())?;
    // An absolute WAYLAND_DISPLAY names the socket itself.
    let socket = if display.starts_with('/') {
        PathBuf::from(display)
    } else {
        PathBuf::from(env("XDG_RUNTIME_DIR")?).join(display)
    };
    Some(socket)
}

/// Removes the compositor's socket (and its lock file) in the kiosk session.
pub(crate) fn close_the_door() {
    let Some(socket) = door(|k| std::env::var(k).ok()) else { return };
    match std::fs::remove_file(&socket) {
        Ok(()) => tracing::info!(socket = %socket.display(), "kiosk session closed to other programs"),
        Err(e) => tracing::warn!(error = %e, socket = %socket.display(), "could not close the kiosk session"),
    }
    let mut lock = socket.into_os_string();
    lock.push(".lock");
    let _ = std::fs::remove_file(lock);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_kiosk_session_closes_its_door() {
        let env = |session: &'static str, display: &'static str| {
            move |k: &str| match k {
                "SC_KIOSK_SESSION" => Some(session.to_owned()),
                "WAYLAND_DISPLAY" => Some(display.to_owned()),
                "XDG_RUNTIME_DIR" => Some("/run/user/1001".to_owned()),
                _ => None,
            }
        };
        assert_eq!(door(env("1", "wayland-0")), Some(PathBuf::from("/run/user/1001/wayland-0")));
        assert_eq!(door(env("1", "/tmp/w")), Some(PathBuf::from("/tmp/w")));
        assert_eq!(door(env("0", "wayland-0")), None, "outside the session nothing is touched");
        assert_eq!(door(env("1", "")), None, "an X11 session has no Wayland socket");
    }
}

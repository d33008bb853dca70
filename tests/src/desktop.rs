//! Driving the kiosk window like a nurse at the keyboard: real X key events through xdotool.

use crate::PASSWORD;
use std::process::Command;

/// Runs xdotool; panics (it is a test kit) if it fails.
pub fn xdotool(args: &[&str]) {
    let status = Command::new("xdotool").args(args).status().expect("xdotool");
    assert!(status.success(), "xdotool {args:?} failed");
}

/// Signs `username` in with the test password and `code`: the page focuses the user name, Tab moves
/// on, Return submits.
pub fn sign_in_by_keyboard(username: &str, code: &str) {
    for (i, text) in [username, PASSWORD, code].into_iter().enumerate() {
        if i > 0 {
            xdotool(&["key", "Tab"]);
        }
        xdotool(&["type", "--delay", "40", text]);
    }
    xdotool(&["key", "Return"]);
}

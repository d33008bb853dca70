//! Declares the app's commands so each needs an explicit permission (least privilege).
fn main() {
    tauri_build::try_build(tauri_build::Attributes::new().app_manifest(tauri_build::AppManifest::new().commands(&[
        "kiosk_status",
        "sign_in",
        "lock",
        "activity",
        "check_server",
        "appointments",
        "join",
        "call_status",
        "hang_up",
        "set_call_option",
        "dismiss_call",
        "watch_video",
        "switch_camera",
        "watch_self_view",
        "reset_view",
    ])))
    .expect("tauri build script failed: see the message above");
}

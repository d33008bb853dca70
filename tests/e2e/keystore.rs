//! No keystore is a clear error, never a silent plain-file fallback.

use std::process::Command;

#[test]
fn enrolling_without_a_keystore_fails_clearly_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("dir");
    let token = tempfile::NamedTempFile::new().expect("token file");
    std::fs::write(token.path(), format!("sce1.AAAAAAAAAAAAAAAAAAAAAAAA.{}\n", sc_proto::Bytes([0u8; 32])))
        .expect("write");
    let out = Command::new(sc_e2e::bin("secureconsult-kiosk"))
        .args(["--data-dir"])
        .arg(dir.path())
        .args(["enrol", "--server", "https://127.0.0.1:9", "--token-file"])
        .arg(token.path())
        .env("DBUS_SESSION_BUS_ADDRESS", "unix:path=/nonexistent/secureconsult-test-bus")
        .output()
        .expect("run kiosk");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("the OS keystore is not available"), "{stderr}");
    let files: Vec<_> = std::fs::read_dir(dir.path()).expect("list").collect();
    assert!(files.is_empty(), "no file fallback: {files:?}");
}

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

/// The private session the tests run in (`scripts/session.sh`) hands its command a Secret Service
/// already unlocked. CI of 91b8d14: 19 tests failed alike ("result not returned from SS API"), the bus
/// having started a keyring of its own (locked) because a client asked before the session's daemon
/// held its name. The command here asks at once, as a test binary's first enrolment does.
#[test]
fn ci_91b8d14_the_session_s_keyring_is_unlocked_before_its_command_starts() {
    for attempt in 0..5 {
        let dir = tempfile::tempdir().expect("dir");
        // Files, not pipes: a keyring the bus started outlives the session and would hold a pipe open.
        let (out_path, err_path) = (dir.path().join("out"), dir.path().join("err"));
        let mut child = Command::new("dbus-run-session")
            .arg("--")
            .arg(sc_e2e::repo_root().join("scripts/session.sh"))
            .args([
                "dbus-send",
                "--session",
                "--print-reply",
                "--dest=org.freedesktop.secrets",
                "/org/freedesktop/secrets/aliases/default",
                "org.freedesktop.DBus.Properties.Get",
                "string:org.freedesktop.Secret.Collection",
                "string:Locked",
            ])
            .env("SC_NO_DISPLAY", "1")
            // As from a fresh login: nothing of the session this test itself runs in.
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("XDG_DATA_HOME")
            .env_remove("XDG_RUNTIME_DIR")
            .env_remove("GNOME_KEYRING_CONTROL")
            .stdout(std::fs::File::create(&out_path).expect("out file"))
            .stderr(std::fs::File::create(&err_path).expect("err file"))
            .spawn()
            .expect("run dbus-run-session");
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        let status = loop {
            if let Some(status) = child.try_wait().expect("wait") {
                break status;
            }
            if std::time::Instant::now() > deadline {
                let _ = child.kill();
                panic!("attempt {attempt}: the session did not end within 60 s");
            }
            std::thread::sleep(std::time::Duration::from_millis(50));
        };
        let stdout = std::fs::read_to_string(&out_path).expect("out");
        let stderr = std::fs::read_to_string(&err_path).expect("err");
        assert!(status.success(), "attempt {attempt}: {stderr}");
        assert!(
            !stderr.contains("Activating service name='org.freedesktop.secrets'"),
            "attempt {attempt}: a second keyring: {stderr}"
        );
        assert!(
            stdout.contains("boolean false"),
            "attempt {attempt}: the default collection is locked: {stdout} {stderr}"
        );
        assert!(!stderr.contains("exited while the command ran"), "attempt {attempt}: {stderr}");
    }
}

//! Issue #13: after the demo's whole run (activation, a call, a shared CT), no password, TOTP seed
//! or code, key, enrolment token or image byte is in any log (the care server's, the kiosk's,
//! coturn's, the enrolment's, the browser's and its reports), any audit row or any panic message
//! (which would be in those logs). The demo's own terminal output is not a log: it prints the
//! nurse's code and the seeds' oathtool commands on purpose, for the person running it.

use std::path::Path;

/// Where `needle` occurs in `hay` as a whole number (not inside a longer digit run, nor a
/// timestamp's fraction of a second): a six-digit code otherwise matches by chance.
fn has_code(hay: &str, needle: &str) -> bool {
    hay.match_indices(needle).any(|(i, _)| {
        let before = hay[..i].chars().next_back();
        let after = hay[i + needle.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_digit() || c == '.') && !after.is_some_and(|c| c.is_ascii_digit())
    })
}

/// The encodings a byte string could show up in.
fn encodings(bytes: &[u8]) -> Vec<String> {
    use base64::Engine as _;
    vec![
        bytes.iter().map(|b| format!("{b:02x}")).collect(),
        base64::engine::general_purpose::STANDARD_NO_PAD.encode(bytes),
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes),
    ]
}

/// Checks the demo's logs in `demo` (its `SC_DEMO_DIR`), run from `start` to `end` (Unix seconds).
pub fn assert_no_secrets(demo: &Path, start: i64, end: i64) {
    let server = demo.join("care-server");
    let keys = sc_server::pki::server_keys(&server).expect("server keys");
    let store = sc_server::db::open(&server.join("care.sqlite"), &keys).expect("the demo's database");
    let db = store.conn();
    let mut logs = String::new();
    let mut bytes = Vec::new();
    for entry in std::fs::read_dir(demo).expect("demo dir") {
        let path = entry.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if [".log", ".out", ".jsonl"].iter().any(|ext| name.ends_with(ext)) {
            let b = std::fs::read(&path).expect("log");
            logs.push_str(&String::from_utf8_lossy(&b));
            bytes.extend(b);
        }
    }
    let audit = serde_json::to_string(&sc_server::audit::tail(&db, 100_000).expect("audit")).expect("json");
    assert!(logs.len() > 1000, "the demo left its logs: {} bytes", logs.len());
    let found = std::cell::RefCell::new(Vec::new());
    let secret = |what: &str, value: &str, code: bool| {
        for (name, text) in [("logs", &logs), ("audit", &audit)] {
            if (code && has_code(text, value)) || (!code && text.contains(value)) {
                found.borrow_mut().push(format!("{what} in the {name}"));
            }
        }
    };
    secret("the demo password", "demo-password-nurse", false);
    for user in ["nurse.demo", "dr.demo", "it.demo"] {
        let staff = sc_server::db::staff_by_username(&db, user).expect("db").expect("staff");
        secret(&format!("{user}'s TOTP seed"), &staff.totp_secret, false);
        secret(&format!("{user}'s password hash"), &staff.password_hash, false);
        // Every code valid during the run, with the skew the server allows.
        let mut t = start - 30;
        while t <= end + 30 {
            let code = sc_server::auth::totp_code(&staff.totp_secret, t).expect("code");
            secret(&format!("{user}'s code at {t}"), &code, true);
            t += 30;
        }
    }
    // The server's keys, as bytes and as their files' text.
    let server_key = std::fs::read(server.join(sc_server::pki::SERVER_KEY)).expect("server.key");
    for e in encodings(&server_key) {
        secret("server.key", &e, false);
    }
    for file in std::fs::read_dir(&server).expect("server dir") {
        let path = file.expect("entry").path();
        let name = path.file_name().and_then(|n| n.to_str()).unwrap_or_default().to_owned();
        if name.contains("key") && name != sc_server::pki::SERVER_KEY {
            let text = std::fs::read(&path).expect("key file");
            let body = String::from_utf8_lossy(&text);
            // A PEM key's base64 lines, or a binary key's encodings.
            for line in body.lines().filter(|l| l.len() >= 40 && !l.starts_with("-----")) {
                secret(&name, line, false);
            }
            // ring's Ed25519 PKCS#8 document: a 16-byte prefix, then the 32-byte seed (the
            // public key at its end is public).
            if !body.contains("-----BEGIN") && text.len() >= 48 {
                for e in encodings(&text[16..48]) {
                    secret(&name, &e, false);
                }
            }
        }
    }
    // The secret the server shares with coturn (the demo makes it "demo-turn-<random>" and hands
    // it over in the environment; coturn's log and the server's must not repeat it).
    secret("the TURN secret", "demo-turn-", false);
    // An enrolment token's text starts so; none belongs in a log.
    secret("an enrolment token", "sce1.", false);
    // The shared CT's pixel bytes (sampled from the middle of the file), raw or encoded.
    let ct = std::fs::read(sc_e2e::dicom_dir().join("CT_small.dcm")).expect("the CT");
    for at in [ct.len() / 3, ct.len() / 2, ct.len() * 2 / 3] {
        let sample = &ct[at..at + 24];
        if bytes.windows(sample.len()).any(|w| w == sample) {
            found.borrow_mut().push(format!("CT bytes at {at} in the logs"));
        }
        for e in encodings(sample) {
            secret(&format!("CT bytes at {at}"), &e, false);
        }
    }
    let found = found.into_inner();
    assert!(found.is_empty(), "secrets in the demo's logs or audit: {found:?}");
}

#[test]
fn a_six_digit_code_is_matched_as_a_whole_number_only() {
    assert!(has_code("code 123456 typed", "123456"));
    assert!(has_code("\"123456\"", "123456"));
    assert!(!has_code("port 1234567", "123456"));
    assert!(!has_code("at 13:06:41.123456Z", "123456"));
    assert!(!has_code("ts 1796123456", "123456"));
}

//! IT staff's admin CLI end to end: real `care-server` and `secureconsult-kiosk` processes, the real
//! keystore, loopback TLS. Bad input gets a clear message; TOTP agrees with oathtool.

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};

fn care(data: &Path, args: &[&str], stdin: Option<&str>) -> Output {
    sc_e2e::care_cli(data, args, stdin)
}

fn ok(out: Output) -> String {
    assert!(out.status.success(), "failed: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn err(out: Output) -> String {
    assert!(!out.status.success(), "should have failed: {}", String::from_utf8_lossy(&out.stdout));
    String::from_utf8_lossy(&out.stderr).into_owned()
}

struct Server(Child);
impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn it_staff_enrol_list_and_revoke_a_laptop() {
    let server_dir = tempfile::tempdir().expect("dir");
    let data = server_dir.path();
    ok(care(data, &["init"], None));
    ok(care(data, &["add-prison", "HMP Cli"], None));
    assert!(err(care(data, &["add-prison", "HMP Cli"], None)).contains("already exists"));

    // Bad input: clear messages, nothing half-made.
    assert!(err(care(
        data,
        &["add-staff", "--username", "jo", "--name", "Jo", "--prison", "HMP Cli"],
        Some("short\n")
    ))
    .contains("at least 12 characters"));
    assert!(err(care(
        data,
        &["add-staff", "--username", "jo", "--name", "Jo", "--prison", "HMP Nowhere"],
        Some("long enough password\n")
    ))
    .contains("prison \"HMP Nowhere\" not found"));
    assert!(err(care(
        data,
        &["add-staff", "--username", "jo", "--name", "Jo", "--role", "janitor"],
        Some("long enough password\n")
    ))
    .contains("unknown role"));

    let out = ok(care(
        data,
        &["add-staff", "--username", "jo", "--name", "Jo", "--prison", "HMP Cli"],
        Some("long enough password\n"),
    ));
    let secret =
        out.lines().find_map(|l| l.strip_prefix("TOTP secret (shown once): ")).expect("secret line").to_owned();
    let uri = out.lines().find_map(|l| l.strip_prefix("otpauth URI (shown once): ")).expect("uri line");
    assert!(uri.starts_with("otpauth://totp/SecureConsult:jo?") && uri.contains(&format!("secret={secret}")), "{uri}");

    // Our TOTP agrees with an independent implementation.
    let theirs = Command::new("oathtool").args(["--totp", "-b", &secret]).output().expect("oathtool");
    let theirs = String::from_utf8_lossy(&theirs.stdout).trim().to_owned();
    let now = sc_e2e::now();
    let ours: Vec<String> =
        [now - 30, now, now + 30].iter().map(|t| sc_server::auth::totp_code(&secret, *t).expect("code")).collect();
    assert!(ours.contains(&theirs), "oathtool {theirs} vs ours {ours:?}");

    // Issue #13: the staff life cycle from the CLI, each step audited under the IT member's name.
    let staff: serde_json::Value =
        serde_json::from_str(&ok(care(data, &["list-staff", "--json"], None))).expect("json");
    assert_eq!((staff[0]["username"].as_str(), staff[0]["state"].as_str()), (Some("jo"), Some("active")), "{staff}");
    assert!(err(care(data, &["reset-password", "jo", "--by", "it.sam"], Some("short\n"))).contains("12 characters"));
    assert!(
        ok(care(data, &["reset-password", "jo", "--by", "it.sam"], Some("another long password\n"))).contains("reset")
    );
    let reset = ok(care(data, &["reset-totp", "jo", "--by", "it.sam"], None));
    assert!(reset.contains("new TOTP secret (shown once)") && !reset.contains(&secret), "{reset}");
    assert!(ok(care(data, &["lift-lockout", "jo", "--reason", "helpdesk", "--by", "it.sam"], None)).contains("lifted"));
    assert!(
        err(care(data, &["disable-staff", "nobody", "--reason", "left", "--by", "it.sam"], None)).contains("not found")
    );

    assert!(err(care(data, &["enrol-token", "--prison", "HMP Nowhere"], None)).contains("not found"));
    let token = ok(care(data, &["enrol-token", "--prison", "HMP Cli"], None)).trim().to_owned();
    assert!(token.starts_with("sce1."));

    let mut child = Command::new(sc_e2e::bin("care-server"))
        .arg("--data-dir")
        .arg(data)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("serve");
    let mut line = String::new();
    BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("listening line");
    let server = Server(child);
    let url = line.trim().strip_prefix("listening on ").expect("listening on ...").to_owned();

    let laptop = tempfile::tempdir().expect("dir");
    let kiosk = |args: &[&str]| {
        Command::new(sc_e2e::bin("secureconsult-kiosk"))
            .arg("--data-dir")
            .arg(laptop.path())
            .args(args)
            .output()
            .expect("kiosk")
    };
    // The token comes from standard input (or a file), never the command line (issue #13).
    let enrol_with = |token: &str| {
        use std::io::Write as _;
        let mut child = Command::new(sc_e2e::bin("secureconsult-kiosk"))
            .arg("--data-dir")
            .arg(laptop.path())
            .args(["enrol", "--server", &url, "--token-file", "-", "--asset-tag", "HMP Cli laptop 3"])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .spawn()
            .expect("kiosk");
        writeln!(child.stdin.take().expect("stdin"), "{token}").expect("write");
        child.wait_with_output().expect("kiosk")
    };
    assert!(String::from_utf8_lossy(&kiosk(&["status"]).stdout).contains("not enrolled"));
    let on_the_command_line = kiosk(&["enrol", "--server", &url, "--token", &token]);
    assert!(!on_the_command_line.status.success(), "a token on the command line is not accepted");
    let bad = enrol_with("sce1.garbage");
    assert!(String::from_utf8_lossy(&bad.stderr).contains("the enrolment token is malformed"));
    let empty = kiosk(&["enrol", "--server", &url, "--token-file", "/dev/null"]);
    assert!(String::from_utf8_lossy(&empty.stderr).contains("no enrolment token"), "{empty:?}");
    let enrolled = ok(enrol_with(&token));
    let device_id = enrolled.trim().strip_prefix("enrolled as device ").expect("device id").to_owned();
    let again = enrol_with(&token);
    assert!(String::from_utf8_lossy(&again.stderr).contains("already enrolled"), "re-enrolling is refused");

    let devices: serde_json::Value =
        serde_json::from_str(&ok(care(data, &["list-devices", "--json"], None))).expect("json");
    assert_eq!(devices[0]["id"], device_id.as_str());
    assert_eq!(devices[0]["prison"], "HMP Cli");
    assert_eq!(devices[0]["state"], "active");
    // Issue #14: IT staff find the laptop by the asset tag given at enrolment.
    assert_eq!(devices[0]["asset_tag"], "HMP Cli laptop 3");
    assert!(ok(care(data, &["list-devices"], None)).contains("HMP Cli laptop 3"));

    assert!(err(care(data, &["brick-device", "not-an-id", "--reason", "x"], None)).contains("32 lowercase hex"));
    assert!(err(care(data, &["brick-device", &device_id, "--reason", " "], None)).contains("reason"));
    let bricked = ok(care(data, &["brick-device", &device_id, "--reason", "stolen", "--by", "it.sam"], None));
    assert!(bricked.contains("bricked"), "{bricked}");
    let devices: serde_json::Value =
        serde_json::from_str(&ok(care(data, &["list-devices", "--json"], None))).expect("json");
    assert_eq!(devices[0]["state"], "bricked");
    let bricks = ok(care(data, &["list-bricks"], None));
    assert!(bricks.contains(&device_id) && bricks.contains("pending") && bricks.contains("it.sam"), "{bricks}");
    let audit = ok(care(data, &["audit", "--limit", "3"], None));
    assert!(audit.contains("\"event\":\"brick\"") && audit.contains("stolen"), "{audit}");
    assert!(ok(care(data, &["disable-staff", "jo", "--reason", "left the service", "--by", "it.sam"], None))
        .contains("disabled"));
    assert!(ok(care(data, &["list-staff"], None)).lines().any(|l| l.starts_with("jo ") && l.ends_with("disabled")));
    let audit = ok(care(data, &["audit", "--limit", "20"], None));
    for event in ["password_reset", "totp_reset", "lockout_lifted", "staff_disabled"] {
        assert!(
            audit.contains(&format!("\"event\":\"{event}\"")) && audit.contains("\"staff\":\"it.sam\""),
            "{event}: {audit}"
        );
    }
    drop(server);

    // The audit chain verifies, and an edited row is named.
    assert!(ok(care(data, &["audit-verify"], None)).contains("audit chain intact"));
    // Issue #13: a checkpoint kept off the box catches the newest rows being removed, which the
    // chain alone cannot (what is left still chains).
    let off_box = tempfile::tempdir().expect("dir");
    let checkpoint = off_box.path().join("checkpoint.json");
    std::fs::write(&checkpoint, ok(care(data, &["audit-checkpoint"], None))).expect("write");
    let cp = checkpoint.to_str().expect("utf-8");
    assert!(ok(care(data, &["audit-verify", "--checkpoint", cp], None)).contains("holds"));
    let db = rusqlite::Connection::open(data.join("care.sqlite")).expect("db");
    db.execute("DELETE FROM audit WHERE id = (SELECT MAX(id) FROM audit)", []).expect("truncate");
    drop(db);
    assert!(ok(care(data, &["audit-verify"], None)).contains("audit chain intact"), "the chain alone cannot tell");
    let truncated = err(care(data, &["audit-verify", "--checkpoint", cp], None));
    assert!(truncated.contains("truncated"), "{truncated}");
    let db = rusqlite::Connection::open(data.join("care.sqlite")).expect("db");
    db.execute("UPDATE audit SET detail = 'nothing happened' WHERE id = 2", []).expect("tamper");
    drop(db);
    let broken = err(care(data, &["audit-verify"], None));
    assert!(broken.contains("audit row 2"), "{broken}");

    // Leave the test keyring as found.
    let data_dir = sc_core::record::DataDir::open(laptop.path()).expect("data");
    if let Ok(ks) = sc_core::keystore::Keystore::secret_service() {
        let _ = ks.delete(&data_dir.profile_id());
    }
}

/// Issue #14: IT set a prison's posture policy from the CLI (the production set, or a TOML file);
/// a malformed file or an unknown key is refused and changes nothing; each change is audited.
#[test]
fn issue_14_it_staff_show_and_set_a_prison_s_posture_policy() {
    let server_dir = tempfile::tempdir().expect("dir");
    let data = server_dir.path();
    ok(care(data, &["init"], None));
    ok(care(data, &["add-prison", "HMP Cli"], None));
    let shown = ok(care(data, &["posture-policy", "HMP Cli"], None));
    assert!(shown.contains("the server's default") && shown.contains("require_secure_boot = false"), "{shown}");
    let set = ok(care(data, &["posture-policy", "HMP Cli", "--production", "--by", "it.sam"], None));
    assert!(set.contains("its own") && set.contains("require_secure_boot = true"), "{set}");
    assert!(set.contains("max_patch_age_days = 45"), "{set}");

    let file = server_dir.path().join("policy.toml");
    std::fs::write(&file, "require_encrypted_root = true\ndisallowed_interfaces = [\"wl\"]\n").expect("write");
    let set = ok(care(data, &["posture-policy", "HMP Cli", "--file", file.to_str().expect("utf8")], None));
    assert!(set.contains("require_encrypted_root = true") && set.contains("require_secure_boot = false"), "{set}");
    std::fs::write(&file, "require_encrypted_rot = true\n").expect("write");
    let e = err(care(data, &["posture-policy", "HMP Cli", "--file", file.to_str().expect("utf8")], None));
    assert!(e.contains("unknown field"), "{e}");
    let shown = ok(care(data, &["posture-policy", "HMP Cli"], None));
    assert!(shown.contains("require_encrypted_root = true"), "the bad file changed nothing: {shown}");
    assert!(err(care(data, &["posture-policy", "HMP Nowhere", "--production"], None)).contains("not found"));
    let audit = ok(care(data, &["audit", "--limit", "5"], None));
    assert_eq!(audit.matches("posture_policy").count(), 2, "{audit}");
    assert!(audit.contains("it.sam"), "{audit}");
}

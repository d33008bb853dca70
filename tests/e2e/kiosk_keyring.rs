//! Issue #14: an installed laptop's kiosk finds its device keys. `secureconsult-admin enrol` (IT
//! staff, as root) enrols as the kiosk user into that user's own keyring, which
//! `secureconsult-session` opens with the laptop's keyring password from a real systemd credential
//! and a real gnome-keyring; a later session of that user (as the kiosk unit starts one) finds the
//! keys; root's keystore holds none; a wrong password opens nothing. Run as a `sc-kiosk` of its
//! own (a uid named in a private mount namespace's /etc/passwd), against a care server on loopback.

use crate::support::runnable_by_anyone;
use sc_e2e::CareServer;
use std::io::Write as _;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

/// The kiosk user's uid here (`sc-kiosk` only inside [`Laptop::admin`]'s namespace).
const KIOSK_UID: u32 = 64125;

struct Laptop {
    _dir: tempfile::TempDir,
    bin: PathBuf,
    home: PathBuf,
    /// systemd's host key for these credentials (a throwaway one, not this machine's).
    host_key: PathBuf,
    credential: PathBuf,
    /// /etc/passwd and /etc/group with `sc-kiosk` added, for [`Laptop::admin`]'s namespace.
    passwd: PathBuf,
    group: PathBuf,
}

impl Laptop {
    fn new() -> Self {
        let dir = tempfile::tempdir().expect("dir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("bin");
        runnable_by_anyone(&sc_e2e::bin("secureconsult-kiosk"), &bin);
        for script in ["secureconsult-session", "secureconsult-admin"] {
            runnable_by_anyone(&sc_e2e::repo_root().join("policy/linux/bin").join(script), &bin);
        }
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).expect("chmod");
        let home = dir.path().join("home");
        std::fs::create_dir(&home).expect("home");
        std::fs::set_permissions(&home, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::os::unix::fs::chown(&home, Some(KIOSK_UID), Some(KIOSK_UID)).expect("chown");
        let host_key = dir.path().join("credential.secret");
        let credential = dir.path().join("keyring-password.cred");
        // This machine's accounts, and the kiosk user as the package's postinst makes it.
        let passwd = dir.path().join("passwd");
        let group = dir.path().join("group");
        let mut accounts = std::fs::read_to_string("/etc/passwd").expect("passwd");
        accounts +=
            &format!("sc-kiosk:x:{KIOSK_UID}:{KIOSK_UID}:SecureConsult kiosk:{}:/usr/sbin/nologin\n", home.display());
        std::fs::write(&passwd, accounts).expect("passwd");
        let mut groups = std::fs::read_to_string("/etc/group").expect("group");
        groups += &format!("sc-kiosk:x:{KIOSK_UID}:\n");
        std::fs::write(&group, groups).expect("group");
        let laptop = Laptop { bin, home, host_key, credential, passwd, group, _dir: dir };
        // As the package's postinst makes it.
        laptop.seal("a-random-keyring-password", &laptop.credential);
        laptop
    }

    /// Seals `password` as the keyring password credential at `to`, as the package's postinst does.
    fn seal(&self, password: &str, to: &Path) {
        let mut child = Command::new("systemd-creds")
            .args(["encrypt", "--name=keyring-password", "--with-key=host", "-"])
            .arg(to)
            .env("SYSTEMD_CREDENTIAL_SECRET", &self.host_key)
            .stdin(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("systemd-creds");
        child.stdin.take().expect("stdin").write_all(password.as_bytes()).expect("password");
        assert!(child.wait().expect("systemd-creds").success(), "systemd-creds encrypt");
    }

    /// `secureconsult-admin ARGS` as root, with `credential`, `stdin` given. It runs in a mount
    /// namespace of its own where /etc/passwd and /etc/group also name `sc-kiosk` (dbus-daemon
    /// needs the user to exist), so this machine's accounts are untouched.
    fn admin(&self, credential: &Path, args: &[&str], stdin: &str) -> Output {
        let mut child = Command::new("unshare")
            .args(["--mount", "--propagation", "private", "sh", "-c"])
            .arg("mount --bind \"$1\" /etc/passwd && mount --bind \"$2\" /etc/group && shift 2 && exec \"$@\"")
            .arg("sh")
            .arg(&self.passwd)
            .arg(&self.group)
            .arg(self.bin.join("secureconsult-admin"))
            .args(args)
            .env("SC_KIOSK_HOME", &self.home)
            .env("SC_KIOSK_DATA_DIR", self.data())
            .env("SC_KEYRING_CREDENTIAL", credential)
            .env("SC_KIOSK_BIN", self.bin.join("secureconsult-kiosk"))
            .env("SC_SESSION_BIN", self.bin.join("secureconsult-session"))
            .env("SYSTEMD_CREDENTIAL_SECRET", &self.host_key)
            .env("RUST_LOG", "warn")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("secureconsult-admin");
        child.stdin.take().expect("stdin").write_all(stdin.as_bytes()).expect("stdin");
        child.wait_with_output().expect("secureconsult-admin")
    }

    fn data(&self) -> PathBuf {
        self.home.join("data")
    }
}

fn text(out: &Output) -> String {
    format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr))
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_14_enrolled_through_secureconsult_admin_the_kiosk_user_finds_its_keys_in_a_later_session() {
    let server = CareServer::start().await;
    server.add_prison("HMP Keyring");
    let token = server.token("HMP Keyring");
    let url = server.url.clone();
    tokio::task::spawn_blocking(move || {
        let laptop = Laptop::new();
        std::fs::create_dir(laptop.data()).expect("data");
        std::fs::set_permissions(laptop.data(), std::fs::Permissions::from_mode(0o700)).expect("chmod");
        std::os::unix::fs::chown(laptop.data(), Some(KIOSK_UID), Some(KIOSK_UID)).expect("chown");

        // A token file only root can read: secureconsult-admin reads it and hands it over.
        let token_file = laptop.home.parent().expect("dir").join("token");
        std::fs::write(&token_file, format!("{token}\n")).expect("token");
        std::fs::set_permissions(&token_file, std::fs::Permissions::from_mode(0o600)).expect("chmod");
        let token_path = token_file.to_str().expect("utf-8");
        let enrol = laptop.admin(
            &laptop.credential,
            &["enrol", "--server", &url, "--token-file", token_path, "--asset-tag", "HMP Keyring laptop 1"],
            "",
        );
        assert!(enrol.status.success(), "{}", text(&enrol));
        assert!(text(&enrol).contains("enrolled as device"), "{}", text(&enrol));
        // The keyring is the kiosk user's, on disk encrypted with the sealed password.
        let keyrings = laptop.home.join(".local/share/keyrings");
        let owned: Vec<u32> = std::fs::read_dir(&keyrings)
            .unwrap_or_else(|e| panic!("{}: {e}", keyrings.display()))
            .flatten()
            .map(|e| std::os::unix::fs::MetadataExt::uid(&e.metadata().expect("meta")))
            .collect();
        assert!(!owned.is_empty() && owned.iter().all(|&u| u == KIOSK_UID), "{owned:?}");

        // A later session (a new bus, a new gnome-keyring) finds the keys.
        let status = laptop.admin(&laptop.credential, &["status"], "");
        assert!(status.status.success(), "{}", text(&status));
        assert!(text(&status).contains("device keys: in this user's keystore"), "{}", text(&status));

        // Root's own keystore (this test session's) holds none of them.
        let as_root = Command::new(laptop.bin.join("secureconsult-kiosk"))
            .arg("--data-dir")
            .arg(laptop.data())
            .arg("status")
            .env("RUST_LOG", "warn")
            .output()
            .expect("status");
        assert!(!as_root.status.success(), "{}", text(&as_root));
        assert!(text(&as_root).contains("not in this user's keystore"), "{}", text(&as_root));

        // Another password opens nothing: the keys stay locked, and the kiosk says so.
        let wrong = laptop.home.parent().expect("dir").join("wrong.cred");
        laptop.seal("not-the-password", &wrong);
        let locked = laptop.admin(&wrong, &["status"], "");
        assert!(!locked.status.success(), "{}", text(&locked));
        assert!(text(&locked).contains("device keys: the keystore cannot be read"), "{}", text(&locked));

        // No credential at all: a clear refusal before anything runs.
        let missing = laptop.admin(&laptop.home.parent().expect("dir").join("none.cred"), &["status"], "");
        assert!(!missing.status.success());
        assert!(text(&missing).contains("cannot open the keyring password"), "{}", text(&missing));
    })
    .await
    .expect("join");
}

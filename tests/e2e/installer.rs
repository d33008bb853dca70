//! Issue #14: the packages on real parts. `installer/build-deb.sh` builds the kiosk's and the care
//! server's .deb from the built binaries; lintian passes them without a warning; both install into a
//! throwaway root (dpkg --root, maintainer scripts honouring DPKG_ROOT) where every path the units
//! name is in place, the users and their 0700 directories are made and the units enabled; a purge
//! leaves nothing of them behind.

use crate::support::run_ok as run;
use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};
use std::process::Command;

/// An empty root dpkg can install into: its database and the account files useradd edits.
fn throwaway_root() -> tempfile::TempDir {
    let root = tempfile::tempdir().expect("root");
    let r = root.path();
    for dir in ["var/lib/dpkg/info", "var/lib/dpkg/updates", "etc"] {
        std::fs::create_dir_all(r.join(dir)).expect("mkdir");
    }
    for (file, text) in [
        ("var/lib/dpkg/status", ""),
        ("etc/passwd", "root:x:0:0:root:/root:/bin/bash\n"),
        ("etc/group", "root:x:0:\n"),
        ("etc/shadow", "root:*:19000:0:99999:7:::\n"),
        ("etc/gshadow", "root:*::\n"),
    ] {
        std::fs::write(r.join(file), text).expect("write");
    }
    root
}

fn dpkg(root: &Path) -> Command {
    let mut cmd = Command::new("dpkg");
    // The root has no shell or libraries of its own: the scripts run outside it, told where it is
    // (DPKG_ROOT); the packages' dependencies are this machine's business, not the root's.
    cmd.arg(format!("--root={}", root.display())).args(["--force-script-chrootless", "--force-depends"]);
    cmd
}

/// Every file under `root`, relative, but for dpkg's own database.
fn files(root: &Path) -> BTreeSet<String> {
    fn walk(dir: &Path, root: &Path, out: &mut BTreeSet<String>) {
        for entry in std::fs::read_dir(dir).expect("read dir").flatten() {
            let path = entry.path();
            let rel = path.strip_prefix(root).expect("under the root").to_string_lossy().into_owned();
            if rel.starts_with("var/lib/dpkg") {
                continue;
            }
            if path.is_dir() && !path.is_symlink() {
                walk(&path, root, out);
            } else {
                out.insert(rel);
            }
        }
    }
    let mut out = BTreeSet::new();
    walk(root, root, &mut out);
    out
}

/// The packages' own absolute paths a unit names (its programs, config, data and marker).
fn paths_in_unit(text: &str) -> Vec<String> {
    text.split(|c: char| c.is_whitespace() || "'\"=|;:".contains(c))
        .filter(|w| {
            [
                "/usr/bin/secureconsult-kiosk",
                "/usr/bin/care-server",
                "/usr/lib/secureconsult/",
                "/etc/secureconsult/",
                "/var/lib/",
            ]
            .iter()
            .any(|p| w.starts_with(p))
        })
        .map(|w| w.trim_end_matches(|c: char| !c.is_alphanumeric()).to_owned())
        .collect()
}

#[test]
fn issue_14_the_packages_build_pass_lintian_install_into_a_throwaway_root_and_purge_clean() {
    // Stripping a debug binary and lintian take a core for half a minute.
    let _slot = sc_e2e::shaped::one_at_a_time_blocking();
    let out = tempfile::tempdir().expect("out");
    let built = run(Command::new("bash")
        .arg(sc_e2e::repo_root().join("installer/build-deb.sh"))
        .arg(sc_e2e::bin_dir())
        .arg(out.path())
        .arg("0.1.0"));
    let debs: Vec<PathBuf> = built.lines().map(PathBuf::from).collect();
    assert_eq!(debs.len(), 2, "{built}");

    // Lintian: no error and no warning (it exits non-zero on either).
    let lint =
        run(Command::new("lintian").args(["--fail-on", "error,warning", "--tag-display-limit", "0"]).args(&debs));
    assert!(!lint.lines().any(|l| l.starts_with("E:") || l.starts_with("W:")), "{lint}");

    let root = throwaway_root();
    let r = root.path();
    let before = files(r);
    run(dpkg(r).arg("-i").args(&debs));

    for bin in ["usr/bin/secureconsult-kiosk", "usr/bin/care-server"] {
        let mode = std::fs::metadata(r.join(bin)).expect(bin).permissions().mode();
        assert_eq!(mode & 0o777, 0o755, "{bin}");
    }
    let units: Vec<PathBuf> =
        std::fs::read_dir(r.join("lib/systemd/system")).expect("the units").flatten().map(|e| e.path()).collect();
    assert!(units.len() >= 5, "{units:?}");
    for unit in &units {
        let text = std::fs::read_to_string(unit).expect("unit");
        for path in paths_in_unit(&text) {
            // Made later: the server's data by systemd at its start (StateDirectory), the kiosk's
            // enrolment record by the enrolment.
            let made_later = path.starts_with("/var/lib/secureconsult") || path.starts_with("/var/lib/sc-kiosk/data/");
            assert!(
                made_later || r.join(path.trim_start_matches('/')).exists(),
                "{}: {path} is not installed",
                unit.display()
            );
        }
    }
    assert!(r.join("etc/secureconsult/session-only").exists(), "the kiosk runs only in its session");
    // The kiosk user's keyring password: made by the postinst, sealed (0600), and it opens.
    let cred = r.join("etc/secureconsult/keyring-password.cred");
    let mode = std::fs::metadata(&cred).expect("the keyring password credential").permissions().mode();
    assert_eq!(mode & 0o777, 0o600, "{}", cred.display());
    let password = run(Command::new("systemd-creds")
        .args(["decrypt", "--name=keyring-password"])
        .arg(&cred)
        .arg("-")
        .env("SYSTEMD_CREDENTIAL_SECRET", r.join("var/lib/systemd/credential.secret")));
    assert!(password.len() >= 40 && !std::fs::read_to_string(&cred).expect("cred").contains(&password));
    for (path, mode) in [
        ("usr/lib/secureconsult/secureconsult-session", 0o755),
        ("usr/lib/secureconsult/secureconsult-decode", 0o755),
        ("usr/sbin/secureconsult-admin", 0o755),
    ] {
        let m = std::fs::metadata(r.join(path)).expect(path).permissions().mode();
        assert_eq!(m & 0o777, mode, "{path}");
    }
    for (user, home) in [("sc-kiosk", "var/lib/sc-kiosk"), ("sc-care", "var/lib/secureconsult")] {
        let passwd = std::fs::read_to_string(r.join("etc/passwd")).expect("passwd");
        let line =
            passwd.lines().find(|l| l.starts_with(&format!("{user}:"))).unwrap_or_else(|| panic!("{user}: {passwd}"));
        assert!(line.ends_with(&format!("/{home}:/usr/sbin/nologin")), "{line}");
        let mode = std::fs::metadata(r.join(home)).expect(home).permissions().mode();
        assert_eq!(mode & 0o777, 0o700, "{home}");
    }
    for unit in ["secureconsult-kiosk.service", "secureconsult-firewall.service", "secureconsult-care.service"] {
        let link = r.join("etc/systemd/system/multi-user.target.wants").join(unit);
        assert!(link.is_symlink(), "{unit} is enabled");
    }

    run(dpkg(r).args(["--purge", "secureconsult-kiosk", "secureconsult-care-server"]));
    let after = files(r);
    let left: Vec<&String> = after
        .difference(&before)
        .filter(|f| !f.starts_with("etc/") || !f.ends_with('-') && !f.ends_with(".pwd.lock"))
        // systemd's host key stays: other services' credentials use it too.
        .filter(|f| f.as_str() != "var/lib/systemd/credential.secret")
        .collect();
    assert!(left.is_empty(), "the purge left {left:?}");
    let passwd = std::fs::read_to_string(r.join("etc/passwd")).expect("passwd");
    assert!(!passwd.contains("sc-kiosk") && !passwd.contains("sc-care"), "the users are gone: {passwd}");
}

#[test]
fn units_name_their_programs() {
    let kiosk = std::fs::read_to_string(sc_e2e::repo_root().join("policy/linux/systemd/secureconsult-kiosk.service"))
        .expect("unit");
    assert_eq!(
        paths_in_unit(&kiosk),
        vec![
            "/var/lib/sc-kiosk/data",
            "/etc/secureconsult/keyring-password.cred",
            "/usr/lib/secureconsult/secureconsult-session",
            "/usr/bin/secureconsult-kiosk",
            "/var/lib/sc-kiosk"
        ]
    );
}

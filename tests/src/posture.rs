//! A prepared root for the posture check (`sc_core::posture::Sources::root`): the kernel's and
//! the system's files of a sound prison laptop, each of which a test can break on its own.

use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The EFI variable the check reads.
const SECURE_BOOT: &str = "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// A sound laptop's files under a temporary directory: root on LVM on LUKS, Secure Boot on,
/// lockdown integrity, the kiosk as `sc-kiosk` under cage, wired Ethernet only, patched today.
#[derive(Debug)]
pub struct PreparedRoot {
    dir: tempfile::TempDir,
}

impl PreparedRoot {
    /// A sound laptop.
    pub fn sound() -> Self {
        let root = PreparedRoot { dir: tempfile::tempdir().expect("temp dir") };
        root.write("proc/self/mounts", "proc /proc proc rw 0 0\n/dev/mapper/vg-root / ext4 rw,relatime 0 0\n");
        root.write("sys/block/dm-1/dm/name", "vg-root\n");
        root.write("sys/block/dm-1/dm/uuid", "LVM-Ab12\n");
        root.mkdir("sys/block/dm-1/slaves/dm-0");
        root.write("sys/block/dm-0/dm/name", "sda3_crypt\n");
        root.write("sys/block/dm-0/dm/uuid", "CRYPT-LUKS2-0f1e2d3c-sda3_crypt\n");
        root.write_bytes(SECURE_BOOT, &[6, 0, 0, 0, 1]);
        root.write("sys/kernel/security/lockdown", "none [integrity] confidentiality\n");
        root.write("proc/self/status", "Name:\tsecureconsult-k\nPPid:\t42\nUid:\t1001\t1001\t1001\t1001\n");
        root.write("proc/42/comm", "cage\n");
        root.write("proc/43/comm", "secureconsult-kiosk\n");
        root.write(
            "etc/passwd",
            "root:x:0:0:root:/root:/bin/bash\nsc-kiosk:x:1001:1001::/var/lib/sc-kiosk:/usr/sbin/nologin\n",
        );
        root.mkdir("sys/class/net/lo");
        root.mkdir("sys/class/net/eth0");
        root.write("var/lib/dpkg/status", "Package: base-files\n");
        root
    }

    /// The root to point the check at.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    fn at(&self, rel: &str) -> PathBuf {
        self.dir.path().join(rel)
    }

    fn mkdir(&self, rel: &str) {
        std::fs::create_dir_all(self.at(rel)).expect("mkdir");
    }

    /// Writes `text` at `rel`, making its directories.
    pub fn write(&self, rel: &str, text: &str) {
        self.write_bytes(rel, text.as_bytes());
    }

    fn write_bytes(&self, rel: &str, bytes: &[u8]) {
        let path = self.at(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }

    /// Root on plain LVM: no dm-crypt under it.
    pub fn unencrypted(&self) {
        self.write("sys/block/dm-0/dm/uuid", "LVM-Cd34\n");
    }

    /// Secure Boot off.
    pub fn secure_boot_off(&self) {
        self.write_bytes(SECURE_BOOT, &[6, 0, 0, 0, 0]);
    }

    /// The kernel not locked down.
    pub fn no_lockdown(&self) {
        self.write("sys/kernel/security/lockdown", "[none] integrity confidentiality\n");
    }

    /// The kiosk started from a shell, not the kiosk session.
    pub fn outside_the_session(&self) {
        self.write("proc/42/comm", "bash\n");
    }

    /// Another program running beside the kiosk.
    pub fn running(&self, name: &str) {
        self.write("proc/99/comm", &format!("{name}\n"));
    }

    /// Another network interface present.
    pub fn interface(&self, name: &str) {
        self.mkdir(&format!("sys/class/net/{name}"));
    }

    /// Packages last installed `days` ago.
    pub fn patched_days_ago(&self, days: u64) {
        let when = SystemTime::now() - Duration::from_secs(days * 86_400);
        let file = std::fs::File::options().write(true).open(self.at("var/lib/dpkg/status")).expect("open");
        file.set_modified(when).expect("set mtime");
    }
}

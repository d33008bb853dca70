//! The laptop's posture report: what it tells the server about itself at enrolment and at every
//! activation, read from the kernel's own files (under a root that tests point at prepared
//! files) and sysinfo. It reports; the server's per-prison policy judges (`sc_server::posture`).

use sc_proto::Posture;
use std::net::{SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};

/// The dedicated user the kiosk session runs as (policy/linux, installer/).
pub const KIOSK_USER: &str = "sc-kiosk";
/// The compositor the kiosk session runs the kiosk under.
pub const KIOSK_COMPOSITOR: &str = "cage";
/// Where the firewall is probed: an address the allow-list never admits (TEST-NET-1, RFC 5737).
/// Under the kiosk's nftables rules a UDP datagram there is dropped on the laptop itself and the
/// send fails at once with EPERM; without them it leaves (or finds no route). UDP, because a
/// dropped TCP SYN is only retried, never reported.
pub const FIREWALL_CANARY: &str = "192.0.2.1:443";
/// Most process names reported (a laptop running more is itself a finding).
const MAX_NAMES: usize = 512;
/// The EFI variable holding Secure Boot's state (4 bytes of attributes, then 1 when on).
const SECURE_BOOT_VAR: &str = "sys/firmware/efi/efivars/SecureBoot-8be4df61-93ca-11d2-aa0d-00e098032b8c";

/// Where the posture is read.
#[derive(Debug, Clone)]
pub struct Sources {
    /// The file system root the kernel's files are read under (`/` on a laptop).
    pub root: PathBuf,
    /// The address the firewall probe tries; `None` skips the probe (reported as unknown).
    pub canary: Option<SocketAddr>,
    /// The clock reported (the server judges its skew).
    pub clock: crate::Clock,
}

impl Sources {
    /// This machine.
    pub fn system() -> Self {
        Sources { root: PathBuf::from("/"), canary: FIREWALL_CANARY.parse().ok(), clock: crate::Clock::system() }
    }
}

/// Reads the posture from this machine. Blocking (files, one datagram).
pub fn current() -> Posture {
    collect(&Sources::system())
}

/// Reads the posture from `sources`. Blocking.
pub fn collect(sources: &Sources) -> Posture {
    let root = &sources.root;
    Posture {
        app_version: env!("CARGO_PKG_VERSION").to_owned(),
        os: sysinfo::System::name().unwrap_or_default(),
        os_version: sysinfo::System::os_version().unwrap_or_default(),
        kernel: sysinfo::System::kernel_version().unwrap_or_default(),
        uptime_secs: sysinfo::System::uptime().unwrap_or(0),
        root_encrypted: root_encrypted(root),
        secure_boot: secure_boot(root),
        lockdown: lockdown(root),
        kiosk_session: kiosk_session(root),
        firewall: sources.canary.map(firewall_blocks),
        processes: processes(root),
        interfaces: interfaces(root),
        patched_at: patched_at(root),
        clock: sources.clock.unix_now(),
    }
}

fn read(root: &Path, path: &str) -> Option<String> {
    std::fs::read_to_string(root.join(path)).ok()
}

/// Whether the root file system sits on dm-crypt: its device, or any device under it (LVM on
/// LUKS), is a device-mapper target whose uuid says `CRYPT-`. `None`: the root's device is unknown.
fn root_encrypted(root: &Path) -> Option<bool> {
    let mounts = read(root, "proc/self/mounts")?;
    // The last mount on "/" is the one in force.
    let device = mounts
        .lines()
        .filter_map(|l| {
            let mut fields = l.split_whitespace();
            Some((fields.next()?, fields.next()?))
        })
        .rfind(|(_, at)| *at == "/")?
        .0;
    let name = dm_name(root, device)?;
    Some(is_crypt(root, &name, 0))
}

/// The `dm-N` block device behind a mount's device (`/dev/dm-0`, `/dev/mapper/NAME`).
fn dm_name(root: &Path, device: &str) -> Option<String> {
    if let Some(dm) = device.strip_prefix("/dev/").filter(|d| d.starts_with("dm-")) {
        return Some(dm.to_owned());
    }
    let mapped = device.strip_prefix("/dev/mapper/")?;
    let blocks = std::fs::read_dir(root.join("sys/block")).ok()?;
    blocks
        .flatten()
        .map(|e| e.file_name().to_string_lossy().into_owned())
        .find(|b| read(root, &format!("sys/block/{b}/dm/name")).is_some_and(|n| n.trim() == mapped))
}

fn is_crypt(root: &Path, dm: &str, depth: u8) -> bool {
    if depth > 8 {
        return false; // a loop in prepared files; the kernel has none
    }
    if read(root, &format!("sys/block/{dm}/dm/uuid")).is_some_and(|u| u.starts_with("CRYPT-")) {
        return true;
    }
    std::fs::read_dir(root.join(format!("sys/block/{dm}/slaves")))
        .map(|slaves| slaves.flatten().any(|s| is_crypt(root, &s.file_name().to_string_lossy(), depth + 1)))
        .unwrap_or(false)
}

/// Secure Boot's state from its EFI variable; `Some(false)` on a machine without EFI variables
/// (booted without UEFI, so without Secure Boot).
fn secure_boot(root: &Path) -> Option<bool> {
    match std::fs::read(root.join(SECURE_BOOT_VAR)) {
        Ok(bytes) => bytes.get(4).map(|b| *b == 1),
        Err(_) if !root.join("sys/firmware/efi").exists() => Some(false),
        Err(_) => None,
    }
}

/// The kernel lockdown mode in force (the bracketed word of `none [integrity] confidentiality`);
/// "none" on a kernel without the lockdown module.
fn lockdown(root: &Path) -> String {
    match read(root, "sys/kernel/security/lockdown") {
        Some(modes) => modes
            .split_whitespace()
            .find_map(|w| w.strip_prefix('[').and_then(|w| w.strip_suffix(']')))
            .unwrap_or("unknown")
            .to_owned(),
        None => "none".to_owned(),
    }
}

/// The marker an installed laptop carries (installer/): the kiosk then runs only in its session.
pub const SESSION_ONLY_MARKER: &str = "etc/secureconsult/session-only";

/// Whether this laptop requires the kiosk to run in its session (the installed package says so).
pub fn session_required(root: &Path) -> bool {
    root.join(SESSION_ONLY_MARKER).exists()
}

/// Whether a debugger (any tracer: gdb, strace) is attached to this process.
pub fn traced(root: &Path) -> bool {
    read(root, "proc/self/status")
        .is_some_and(|s| s.lines().find_map(|l| l.strip_prefix("TracerPid:")).is_some_and(|pid| pid.trim() != "0"))
}

/// Whether this process runs as the kiosk user directly under the kiosk compositor.
pub fn kiosk_session(root: &Path) -> bool {
    let Some(status) = read(root, "proc/self/status") else { return false };
    let field = |name: &str| {
        status.lines().find_map(|l| l.strip_prefix(name)).and_then(|v| v.split_whitespace().next()).map(str::to_owned)
    };
    let (Some(ppid), Some(uid)) = (field("PPid:"), field("Uid:")) else { return false };
    let parent = read(root, &format!("proc/{ppid}/comm")).unwrap_or_default();
    let user = read(root, "etc/passwd").and_then(|p| {
        p.lines().find_map(|l| {
            let mut f = l.split(':');
            let (name, id) = (f.next()?, f.nth(1)?);
            (id == uid).then(|| name.to_owned())
        })
    });
    parent.trim() == KIOSK_COMPOSITOR && user.as_deref() == Some(KIOSK_USER)
}

/// Whether the firewall refused a datagram to `canary` on the laptop itself: the kiosk's
/// nftables rules drop it in the output hook, which the kernel reports to the sender as EPERM.
pub fn firewall_blocks(canary: SocketAddr) -> bool {
    let local: SocketAddr = if canary.is_ipv4() { ([0, 0, 0, 0], 0).into() } else { ([0u16; 8], 0).into() };
    let Ok(socket) = UdpSocket::bind(local) else { return false };
    match socket.send_to(b"secureconsult posture probe", canary) {
        Ok(_) => false,
        Err(e) => e.kind() == std::io::ErrorKind::PermissionDenied,
    }
}

/// The names of the processes running (each once, sorted).
fn processes(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.join("proc")) else { return Vec::new() };
    let mut names: Vec<String> = entries
        .flatten()
        .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|e| std::fs::read_to_string(e.path().join("comm")).ok())
        .map(|n| n.trim().to_owned())
        .filter(|n| !n.is_empty())
        .collect();
    names.sort();
    names.dedup();
    names.truncate(MAX_NAMES);
    names
}

/// The network interfaces present (sorted).
fn interfaces(root: &Path) -> Vec<String> {
    let Ok(entries) = std::fs::read_dir(root.join("sys/class/net")) else { return Vec::new() };
    let mut names: Vec<String> = entries.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).collect();
    names.sort();
    names
}

/// When packages were last installed or upgraded: the newest of apt's and dpkg's own records.
fn patched_at(root: &Path) -> Option<i64> {
    ["var/lib/apt/periodic/upgrade-stamp", "var/log/dpkg.log", "var/lib/dpkg/status"]
        .iter()
        .filter_map(|p| std::fs::metadata(root.join(p)).and_then(|m| m.modified()).ok())
        .filter_map(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .filter_map(|d| i64::try_from(d.as_secs()).ok())
        .max()
}

/// The laptop's serial number from its firmware (DMI; readable by root, who enrols), or empty.
pub fn serial_number() -> String {
    read(Path::new("/"), "sys/class/dmi/id/product_serial").map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// The host name, for IT staff's device list.
pub fn hostname() -> String {
    sysinfo::System::host_name().unwrap_or_else(|_| "unknown".to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(root: &Path, rel: &str, bytes: &[u8]) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, bytes).expect("write");
    }

    #[test]
    fn a_bare_root_reports_nothing_it_cannot_tell_as_sound() {
        let dir = tempfile::tempdir().expect("dir");
        let sources = Sources { root: dir.path().to_owned(), canary: None, clock: crate::Clock::with_wall(|| 42) };
        let p = collect(&sources);
        assert_eq!((p.root_encrypted, p.secure_boot, p.lockdown.as_str()), (None, Some(false), "none"));
        assert!(!p.kiosk_session && p.firewall.is_none() && p.processes.is_empty() && p.interfaces.is_empty());
        assert_eq!((p.patched_at, p.clock), (None, 42));
    }

    #[test]
    fn dm_crypt_is_found_directly_by_mapper_name_or_under_lvm_and_a_loop_ends() {
        let dir = tempfile::tempdir().expect("dir");
        let root = dir.path();
        put(root, "proc/self/mounts", b"/dev/dm-0 / ext4 rw 0 0\n");
        put(root, "sys/block/dm-0/dm/uuid", b"CRYPT-LUKS2-x\n");
        assert_eq!(root_encrypted(root), Some(true));
        put(root, "proc/self/mounts", b"/dev/mapper/vg-root / ext4 rw 0 0\n/dev/sda1 /boot ext4 rw 0 0\n");
        put(root, "sys/block/dm-1/dm/name", b"vg-root\n");
        put(root, "sys/block/dm-1/dm/uuid", b"LVM-x\n");
        assert_eq!(root_encrypted(root), Some(false), "LVM with nothing under it");
        std::fs::create_dir_all(root.join("sys/block/dm-1/slaves/dm-0")).expect("mkdir");
        assert_eq!(root_encrypted(root), Some(true), "LVM on LUKS");
        put(root, "sys/block/dm-0/dm/uuid", b"LVM-y\n");
        std::fs::create_dir_all(root.join("sys/block/dm-0/slaves/dm-1")).expect("mkdir");
        assert_eq!(root_encrypted(root), Some(false), "a loop in prepared files ends");
        put(root, "proc/self/mounts", b"/dev/sda2 / ext4 rw 0 0\n");
        assert_eq!(root_encrypted(root), None, "a plain partition: no device-mapper target to judge");
    }

    #[test]
    fn secure_boot_and_lockdown_read_as_the_kernel_writes_them() {
        let dir = tempfile::tempdir().expect("dir");
        let root = dir.path();
        put(root, SECURE_BOOT_VAR, &[6, 0, 0, 0, 1]);
        assert_eq!(secure_boot(root), Some(true));
        put(root, SECURE_BOOT_VAR, &[6, 0, 0, 0]);
        assert_eq!(secure_boot(root), None, "a short variable");
        put(root, "sys/kernel/security/lockdown", b"none integrity [confidentiality]\n");
        assert_eq!(lockdown(root), "confidentiality");
    }

    #[test]
    fn a_tracer_and_the_session_marker_are_read_from_the_kernel_s_and_the_package_s_files() {
        let dir = tempfile::tempdir().expect("dir");
        let root = dir.path();
        assert!(!traced(root) && !session_required(root));
        put(root, "proc/self/status", b"Name:\tkiosk\nTracerPid:\t0\nUid:\t0\n");
        assert!(!traced(root));
        put(root, "proc/self/status", b"Name:\tkiosk\nTracerPid:\t4242\nUid:\t0\n");
        assert!(traced(root));
        put(root, SESSION_ONLY_MARKER, b"");
        assert!(session_required(root));
        assert!(!traced(Path::new("/")), "this test is not being debugged");
    }

    #[test]
    fn the_firewall_probe_finds_none_where_a_datagram_leaves() {
        let closed = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr");
        assert!(!firewall_blocks(closed), "a datagram to a closed port left: no firewall");
    }
}

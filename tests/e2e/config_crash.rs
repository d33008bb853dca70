//! kill -9 at random points of a config write leaves the old or the new config, never a broken one.

use sc_core::sealed::{self, DataKey};
use sc_proto::DeviceId;
use std::process::{Command, Stdio};
use std::time::Duration;

#[test]
fn kill_9_mid_write_leaves_a_whole_config() {
    let dir = tempfile::tempdir().expect("dir");
    let path = dir.path().join("config.sealed");
    let key = DataKey::from_bytes([6; 32]);
    let id = DeviceId::from_random([5; 16]);
    let mut last_generation = 0u64;
    let mut seed = u64::from(std::process::id()) | 1;
    for round in 0..40 {
        let mut child = Command::new(env!("CARGO_BIN_EXE_sealed-writer"))
            .arg(&path)
            .arg(last_generation.to_string())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn writer");
        // xorshift: a different kill point each round, reproducible from the printed seed.
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let wait_ms = 5 + seed % 60;
        std::thread::sleep(Duration::from_millis(wait_ms));
        child.kill().expect("SIGKILL"); // std's kill sends SIGKILL on Unix
        let status = child.wait().expect("reap");
        assert!(!status.success(), "round {round}: the writer must have been killed");
        if !path.exists() {
            continue; // killed before the first rename: nothing was ever written
        }
        let config = sealed::read(&path, &key, &id)
            .unwrap_or_else(|e| panic!("round {round} (kill after {wait_ms} ms): broken config: {e}"));
        assert!(config.policy.lease_secs >= last_generation, "never goes back to an older config");
        assert_eq!(config.server_url, format!("https://generation-{}", config.policy.lease_secs));
        last_generation = config.policy.lease_secs;
    }
    assert!(last_generation > 0, "the writer made progress");
}

/// A small tmpfs mounted for one test (root only, as the shaped-link tests), unmounted on drop.
struct Tmpfs(tempfile::TempDir);

impl Tmpfs {
    fn mount(size: &str) -> Tmpfs {
        let dir = tempfile::tempdir().expect("dir");
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size},mode=0700"), "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount (the tests run as root)");
        assert!(status.success(), "mounting a tmpfs needs root");
        Tmpfs(dir)
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg(self.0.path()).status();
    }
}

/// Fills the file system holding `dir` to its last byte.
fn fill(dir: &std::path::Path) {
    use std::io::Write as _;
    let mut f = std::fs::File::create(dir.join("filler")).expect("filler");
    let block = vec![0xffu8; 4096];
    while f.write_all(&block).is_ok() {}
    let mut byte = [0u8; 1];
    while f.write_all(&byte).is_ok() {
        byte[0] = byte[0].wrapping_add(1);
    }
    let _ = f.sync_all();
}

/// Issue #13: a full disk during a config or record write keeps the old one and says so clearly.
#[test]
fn issue_13_a_full_disk_during_a_config_or_record_write_keeps_the_old_one() {
    let fs = Tmpfs::mount("1m");
    let data = sc_core::record::DataDir::open(fs.0.path()).expect("data dir");
    let record = |url: &str| sc_core::record::EnrolmentRecord {
        format: sc_core::record::RECORD_VERSION,
        device_id: DeviceId::from_random([5; 16]),
        server_url: url.into(),
        ca_cert: sc_proto::Bytes(vec![1; 64]),
        command_public_key: sc_proto::Bytes([2; 32]),
        exchange_public: sc_proto::Bytes([3; 32]),
        client_public: sc_proto::Bytes([4; 32]),
        turn_urls: Vec::new(),
    };
    data.store_record(&record("https://old.example")).expect("the first record");
    let key = DataKey::from_bytes([6; 32]);
    let id = DeviceId::from_random([5; 16]);
    let config = |name: &str| sealed::Config {
        device_id: id.clone(),
        prison: sc_proto::PrisonInfo { id: 1, name: name.into() },
        server_url: "https://old.example".into(),
        policy: sc_proto::Policy { lease_secs: 60, idle_secs: 60, dead_man_days: 1 },
        enrolled_at: 0,
    };
    let path = data.sealed_path();
    sealed::write(&path, &config("HMP Old"), &key).expect("the first config");
    fill(fs.0.path());

    let e = data.store_record(&record(&format!("https://{}.example", "new".repeat(4000)))).expect_err("no space");
    assert!(e.to_string().contains("No space left on device"), "a clear error: {e}");
    assert_eq!(data.load_record().expect("readable").expect("kept").server_url, "https://old.example");
    let e = sealed::write(&path, &config(&"HMP New".repeat(10_000)), &key).expect_err("no space");
    assert!(e.to_string().contains("No space left on device"), "a clear error: {e}");
    assert_eq!(sealed::read(&path, &key, &id).expect("the old config opens").prison.name, "HMP Old");
    let left: Vec<_> = std::fs::read_dir(fs.0.path())
        .expect("list")
        .filter_map(|e| e.ok().map(|e| e.file_name().to_string_lossy().into_owned()))
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(left.is_empty(), "no half-written temporary file left: {left:?}");
    // Space again: the next write goes through.
    std::fs::remove_file(fs.0.path().join("filler")).expect("free");
    sealed::write(&path, &config("HMP New"), &key).expect("written once there is room");
    assert_eq!(sealed::read(&path, &key, &id).expect("opens").prison.name, "HMP New");
}

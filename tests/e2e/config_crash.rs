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

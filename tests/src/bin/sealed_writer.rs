//! Test helper: rewrites a sealed config in a loop (generation 0, 1, 2, ...) until killed, so a test
//! can kill -9 it mid-write and check the file is always the old or the new config.
#![forbid(unsafe_code)]

use sc_core::sealed::{self, Config, DataKey};
use sc_proto::{DeviceId, Policy, PrisonInfo};

fn main() {
    let mut args = std::env::args().skip(1);
    let (Some(path), Some(start)) = (args.next(), args.next()) else {
        eprintln!("usage: sealed-writer <path> <first generation>");
        std::process::exit(2);
    };
    let start: u64 = start.parse().unwrap_or(0);
    let id = DeviceId::from_random([5; 16]);
    let key = DataKey::from_bytes([6; 32]);
    for generation in start.. {
        let config = Config {
            device_id: id.clone(),
            // A long name makes each write span several pages, widening the window for a kill.
            prison: PrisonInfo { id: i64::try_from(generation).unwrap_or(i64::MAX), name: "x".repeat(200_000) },
            server_url: format!("https://generation-{generation}"),
            policy: Policy { lease_secs: generation, idle_secs: 1, dead_man_days: 1 },
            enrolled_at: 0,
        };
        if let Err(e) = sealed::write(std::path::Path::new(&path), &config, &key) {
            eprintln!("write failed: {e}");
            std::process::exit(1);
        }
    }
}

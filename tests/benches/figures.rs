//! The benchmark figures (printed, never asserted): activation latency p50/p99 over 200
//! activations on loopback with production Argon2, the care server under load (`load`), kiosk cold start to the lock screen drawn, and
//! a call's first-frame times and CPU/PSS beside a Chromium consultant, and the video surface's
//! colour conversion per frame. Run by scripts/bench.sh
//! inside a desktop session.
#![forbid(unsafe_code)]

mod call;
mod imaging;
mod links;
mod load;
mod video;

use sc_core::keystore::Keystore;
use sc_core::Kiosk;
use sc_e2e::CareServer;
use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const ACTIVATIONS: usize = 200;

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let idx = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[idx.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

/// A server for activation figures: one lab laptop activating hundreds of times a minute is no
/// prison's pattern, so the laptops' per-source limit is set out of the way (the web pages' stays).
pub(crate) fn lab_config() -> sc_server::config::ServerConfig {
    let mut config = sc_server::config::ServerConfig::default();
    config.sign_in.laptop_burst = 100_000;
    config
}

async fn activation_latency() -> (tempfile::TempDir, Keystore, String) {
    let server = CareServer::start_with(lab_config()).await;
    let a = server.state.config.argon2;
    println!("argon2id m={} KiB t={} p={} (production defaults)", a.m_kib, a.t, a.p);
    // One nurse per activation: each TOTP code can be used once, and a code lasts 30 s.
    let load::Laptop { dir, data, keystore, kiosk, nurses } =
        load::laptop_with_nurses(&server, ACTIVATIONS, "Bench Nurse").await;

    let times = load::activate_all(&kiosk, &nurses).await;
    println!(
        "activation (sign-in to unlocked: keystore, TLS, signed request, Argon2id, TOTP, exchange, unseal), {ACTIVATIONS} runs: p50 {} p99 {} min {} max {}",
        ms(percentile(&times, 0.5)),
        ms(percentile(&times, 0.99)),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
    let profile = data.profile_id();
    (dir, keystore, profile)
}

fn cold_start(data_dir: &std::path::Path, runs: usize) {
    let bin = sc_e2e::bin("secureconsult-kiosk");
    let mut times = Vec::new();
    for _ in 0..runs {
        let t0 = Instant::now();
        let mut child = Command::new(&bin)
            .arg("--data-dir")
            .arg(data_dir)
            .env("RUST_LOG", "info")
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start the kiosk");
        let stderr = child.stderr.take().expect("stderr");
        let mut ready = None;
        for line in BufReader::new(stderr).lines() {
            let line = line.unwrap_or_default();
            if line.contains("kiosk page ready") {
                ready = Some(t0.elapsed());
                break;
            }
        }
        let _ = child.kill();
        let _ = child.wait();
        times.push(ready.expect("the kiosk page never reported ready"));
        std::thread::sleep(Duration::from_millis(300));
    }
    times.sort();
    println!(
        "kiosk cold start (process start to the lock-screen page running its first call), {runs} runs: p50 {} min {} max {}",
        ms(percentile(&times, 0.5)),
        ms(times[0]),
        ms(times[times.len() - 1])
    );
}

/// Brick on the admin side -> the online laptop wiped (tombstone, config, receipt verified by the
/// server, keystore entry and files gone), over `runs` fresh laptops on loopback.
async fn brick_figures(runs: usize) {
    let server = CareServer::start().await;
    let mut times = Vec::with_capacity(runs);
    let mut receipts = Vec::with_capacity(runs);
    for _ in 0..runs {
        let dir = tempfile::tempdir().expect("dir");
        let data = sc_core::record::DataDir::open(dir.path()).expect("data");
        let keystore = tokio::task::spawn_blocking(Keystore::secret_service).await.expect("join").expect("keystore");
        let token = server.token("HMP Testshire").parse().expect("token");
        let record = sc_core::enrol::enrol(&data, &keystore, &server.url, &token).await.expect("enrol");
        let kiosk = std::sync::Arc::new(Kiosk::open(dir.path(), Keystore::secret_service).expect("kiosk"));
        let channel = tokio::spawn(sc_core::channel::run(kiosk.clone()));
        while sc_server::db::device(&server.state.db(), &record.device_id)
            .expect("db")
            .and_then(|d| d.last_contact)
            .is_none()
        {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        // Brick at a different point of the server's 1 s check each run (not just after it).
        tokio::time::sleep(Duration::from_millis(1000 + 97 * times.len() as u64)).await;
        let t0 = Instant::now();
        sc_server::admin::brick_device(&server.state.db(), &record.device_id, "bench", "it.bench", sc_e2e::now())
            .expect("brick");
        let mut receipt = None;
        while !channel.is_finished() {
            if receipt.is_none()
                && sc_server::db::brick_of(&server.state.db(), &record.device_id)
                    .expect("db")
                    .and_then(|b| b.wiped_at)
                    .is_some()
            {
                receipt = Some(t0.elapsed());
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        times.push(t0.elapsed());
        receipts.push(receipt.unwrap_or_else(|| t0.elapsed()));
        assert!(kiosk.is_disabled() && !data.sealed_path().exists(), "wiped");
    }
    times.sort();
    receipts.sort();
    println!(
        "brick -> online laptop wiped (push within the 1 s channel check, verify, tombstone, shred, signed receipt verified, keystore), {runs} runs: p50 {} max {}; receipt at the server p50 {}",
        ms(percentile(&times, 0.5)),
        ms(times[times.len() - 1]),
        ms(percentile(&receipts, 0.5))
    );
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return; // `cargo test --benches` asks for a list; the figures are not tests.
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    // SC_BENCH_ONLY=call, =links, =video or =imaging: only those figures (for profiling).
    if std::env::var("SC_BENCH_ONLY").as_deref() == Ok("call") {
        let secs = std::env::var("SC_BENCH_CALL_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
        rt.block_on(call::call_figures(secs, "native"));
        return;
    }
    // SC_BENCH_ONLY=load: the care server under load only.
    if std::env::var("SC_BENCH_ONLY").as_deref() == Ok("load") {
        rt.block_on(load::load_figures());
        return;
    }
    // SC_BENCH_ONLY=links: the shaped-link calls only (root: network namespaces).
    if std::env::var("SC_BENCH_ONLY").as_deref() == Ok("links") {
        rt.block_on(links::link_figures());
        return;
    }
    video::conversion_figures();
    if std::env::var("SC_BENCH_ONLY").as_deref() == Ok("video") {
        return;
    }
    imaging::imaging_figures();
    rt.block_on(imaging::share_figures());
    if std::env::var("SC_BENCH_ONLY").as_deref() == Ok("imaging") {
        return;
    }
    let (dir, keystore, profile) = rt.block_on(activation_latency());
    rt.block_on(brick_figures(10));
    if std::env::var_os("DISPLAY").is_some() {
        cold_start(dir.path(), 10);
        let secs = std::env::var("SC_BENCH_CALL_SECS").ok().and_then(|s| s.parse().ok()).unwrap_or(60);
        rt.block_on(call::call_figures(secs, "native"));
        rt.block_on(call::call_figures(secs, "page"));
    } else {
        println!("kiosk cold start and call: skipped (no DISPLAY; scripts/bench.sh provides one)");
    }
    let _ = keystore.delete(&profile);
    rt.block_on(load::load_figures());
    rt.block_on(links::link_figures());
}

//! The call figures: admission -> first remote frame on each side, and the CPU and PSS of the
//! kiosk's whole process tree (app and WebKit processes, drawing into its window) beside a visible
//! Chromium consultant's tree over a 640x480 call, as a ratio. Chromium draws on an Xvfb display
//! of its own, so neither window hides the other.

use sc_e2e::browser::{Consultant, Options};
use sc_e2e::desktop::{sign_in_by_keyboard, xdotool};
use sc_e2e::media::{write_y4m, Turn};
use sc_e2e::strip_ansi;
use sc_e2e::{artifacts_dir, processes, tree, CareServer, CpuMeter, TURN_SECRET};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// Kills a child process when dropped.
struct Reaper(Child);

impl Drop for Reaper {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// A group's CPU by process name (the kiosk's app, WebKitWebProcess, WebKitNetworkProcess).
fn per_process(g: &Group) -> Vec<(String, f64)> {
    g.usage.cpu.as_ref().map(CpuMeter::cores_by_name).unwrap_or_default()
}

fn pss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/smaps_rollup"))
        .ok()
        .and_then(|s| s.lines().find(|l| l.starts_with("Pss:")).and_then(|l| l.split_whitespace().nth(1)?.parse().ok()))
        .unwrap_or(0)
}

fn xvfb_pid(display: &str) -> Option<u32> {
    processes().into_iter().map(|(p, _)| p).find(|p| {
        let cmd = std::fs::read(format!("/proc/{p}/cmdline")).unwrap_or_default();
        let args: Vec<String> = cmd.split(|&b| b == 0).map(|a| String::from_utf8_lossy(a).into_owned()).collect();
        args.first().is_some_and(|a| a.ends_with("Xvfb")) && args.iter().any(|a| a == display)
    })
}

/// What a group of processes cost over the window.
#[derive(Default)]
struct Usage {
    cpu: Option<CpuMeter>,
    pss_samples: Vec<u64>,
    cores: f64,
}

struct Group {
    name: &'static str,
    members: Box<dyn Fn() -> Vec<u32>>,
    usage: Usage,
}

impl Group {
    fn new(name: &'static str, members: impl Fn() -> Vec<u32> + 'static) -> Self {
        Group { name, members: Box::new(members), usage: Usage::default() }
    }

    fn begin(&mut self) {
        self.usage.cpu = Some(CpuMeter::start((self.members)()));
    }

    fn sample(&mut self) {
        let members = (self.members)();
        if let Some(cpu) = self.usage.cpu.as_mut() {
            cpu.sample(members.iter().copied());
        }
        self.usage.pss_samples.push(members.into_iter().map(pss_kib).sum());
    }

    fn end(&mut self) {
        if let Some(cpu) = self.usage.cpu.as_mut() {
            cpu.sample((self.members)());
            self.usage.cores = cpu.cores();
        }
    }

    fn pss_mib(&self) -> f64 {
        let s = &self.usage.pss_samples;
        if s.is_empty() {
            0.0
        } else {
            s.iter().sum::<u64>() as f64 / s.len() as f64 / 1024.0
        }
    }
}

fn wait_log(log: &Path, needle: &str, timeout: Duration) -> String {
    let start = Instant::now();
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            return text;
        }
        assert!(start.elapsed() < timeout, "the kiosk never logged {needle:?}; see {}", log.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A private Xvfb display for the consultant's browser.
fn second_display() -> (Reaper, String) {
    let n = (150..199).find(|n| !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists()).expect("a free display");
    let child = Command::new("Xvfb")
        .arg(format!(":{n}"))
        .args(["-screen", "0", "1280x800x24", "-nolisten", "tcp"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("Xvfb");
    let start = Instant::now();
    while !Path::new(&format!("/tmp/.X11-unix/X{n}")).exists() {
        assert!(start.elapsed() < Duration::from_secs(10), "Xvfb :{n} did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    (Reaper(child), format!(":{n}"))
}

/// Runs a call of `secs` seconds (after it is up) with the kiosk drawing video in `video` mode
/// ("native": the GTK surface; "page": WebGL in the page) and prints the figures.
pub(crate) async fn call_figures(secs: u64, video: &str) {
    let turn = Turn::start(TURN_SECRET);
    let server = CareServer::start_relaying(&turn).await;
    let nurse = server.add_nurse("nurse.jo", "Jo Nurse", "HMP Testshire");
    let dr = server.add_consultant("dr.who", "Dr Who");
    server.add_appointment("dr.who", "HMP Testshire", 0);
    let dir = tempfile::tempdir().expect("dir");
    let data = sc_core::record::DataDir::open(dir.path()).expect("data");
    let keystore = tokio::task::spawn_blocking(sc_core::keystore::Keystore::secret_service)
        .await
        .expect("join")
        .expect("keystore");
    let token = server.token("HMP Testshire").parse().expect("token");
    sc_core::enrol::enrol(&data, &keystore, &server.url, &token).await.expect("enrol");
    let clip = tempfile::Builder::new().suffix(".y4m").tempfile().expect("y4m");
    write_y4m(clip.path(), 30);
    let (_xvfb, chromium_display) = second_display();

    let log = artifacts_dir().join("bench-kiosk-call.log");
    let kiosk = Reaper(
        Command::new(sc_e2e::bin("secureconsult-kiosk"))
            .arg("--data-dir")
            .arg(dir.path())
            // SC_BENCH_KIOSK_LOG: a tracing filter for profiling the kiosk (e.g. rtc_dtls=debug).
            .env("RUST_LOG", std::env::var("SC_BENCH_KIOSK_LOG").unwrap_or_else(|_| "info".into()))
            .env("SC_KIOSK_MEDIA", "synthetic")
            .env("SC_KIOSK_BIND", "127.0.0.1:0")
            .env("SC_KIOSK_VIDEO", video)
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).expect("log"))
            .spawn()
            .expect("kiosk"),
    );
    let kiosk_pid = kiosk.0.id();
    let code = CareServer::code(&nurse);
    let log2 = log.clone();
    tokio::task::spawn_blocking(move || {
        wait_log(&log2, "kiosk page ready", Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(1500));
        sign_in_by_keyboard("nurse.jo", &code);
        wait_log(&log2, "kiosk unlocked", Duration::from_secs(60));
        std::thread::sleep(Duration::from_millis(1500));
        xdotool(&["key", "Return"]); // the first appointment's Join has the focus
    })
    .await
    .expect("sign in and join");

    let hold_ms = (secs + 15) * 1000;
    let options = Options { end: "consultant".into(), hold_ms, display: Some(chromium_display.clone()) };
    let mut consultant = Consultant::start(&server, "dr.who", &dr, clip.path(), &options);
    let driver = consultant.pid().expect("driver pid");
    let chromium_first = loop {
        let v = tokio::time::timeout(Duration::from_secs(120), consultant.events.recv())
            .await
            .expect("consultant progress")
            .expect("driver");
        match v["event"].as_str() {
            Some("stats") => break v["firstFrameMs"].as_f64(),
            Some("error") => panic!("consultant driver failed: {v}"),
            _ => {}
        }
    };
    let text = wait_log(&log, "first remote frame decoded", Duration::from_secs(30));
    let kiosk_first: Option<f64> =
        text.lines().find(|l| l.contains("first remote frame decoded")).map(strip_ansi).and_then(|l| {
            l.split("after_ms=")
                .nth(1)
                .and_then(|r| r.split(|c: char| !c.is_ascii_digit()).next())
                .and_then(|d| d.parse().ok())
        });

    let kiosk_display = std::env::var("DISPLAY").unwrap_or_default();
    let (kx, cx) = (xvfb_pid(&kiosk_display), xvfb_pid(&chromium_display));
    let mut groups = vec![
        Group::new("kiosk (app + WebKit)", move || tree(kiosk_pid)),
        Group::new("chromium (browser tree)", move || tree(driver).into_iter().filter(|p| *p != driver).collect()),
        Group::new("Xvfb under the kiosk", move || kx.into_iter().collect()),
        Group::new("Xvfb under chromium", move || cx.into_iter().collect()),
    ];
    tokio::time::sleep(Duration::from_secs(3)).await; // let both settle into steady state
    let t0 = Instant::now();
    groups.iter_mut().for_each(Group::begin);
    // Each second: a process that ends loses only what it used since the last sample.
    while t0.elapsed() < Duration::from_secs(secs) {
        tokio::time::sleep(Duration::from_secs(1)).await;
        groups.iter_mut().for_each(Group::sample);
    }
    let elapsed = t0.elapsed();
    groups.iter_mut().for_each(Group::end);

    let fmt = |v: Option<f64>| v.map_or("n/a".to_owned(), |ms| format!("{ms:.0} ms"));
    println!(
        "call, admission -> first remote frame decoded: kiosk {}, chromium {}",
        fmt(kiosk_first),
        fmt(chromium_first)
    );
    println!(
        "call, 640x480 VP8 + Opus through coturn on loopback, {:.0} s, kiosk video drawn {video}:",
        elapsed.as_secs_f64()
    );
    for g in &groups {
        println!("  {:<26} {:.2} CPU cores, {:.0} MiB PSS", g.name, g.usage.cores, g.pss_mib());
    }
    for (name, cores) in per_process(&groups[0]) {
        println!("    {name:<24} {cores:.2} CPU cores");
    }
    let (k, c) = (&groups[0], &groups[1]);
    println!(
        "  kiosk / chromium: CPU {:.2}x, PSS {:.2}x",
        k.usage.cores / c.usage.cores.max(f64::EPSILON),
        k.pss_mib() / c.pss_mib().max(f64::EPSILON)
    );
    drop(consultant);
    drop(kiosk);
    drop(turn);
    let _ = keystore.delete(&data.profile_id());
}

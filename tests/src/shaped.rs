//! The shaped-link harness's calls (issue #12), shared by the tests and the benchmark: the hospital
//! side (coturn behind the delay relay, the care server, staff) in one namespace; a call from the
//! kiosk's engine (`kiosk-engine`, in the prison's namespace) to a headless Chromium consultant;
//! and the same call between two Chromiums on the same link, relay and clip, the peer every kiosk
//! figure is measured beside. Both peers send what [`Content`] says: the camera-like clip
//! ([`crate::media::write_camera_clip`]; the benchmark) or light test pictures (the smoke tests).

use crate::browser::{Driver, Options};
use crate::link::{DelayRelay, Link, Side, RELAY_SEED};
use crate::{bin, CpuMeter, PASSWORD, TURN_SECRET};
use serde_json::{json, Value};
use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

/// Shaped calls run one at a time: each is a Chromium and a kiosk encoding a camera's worth of
/// video, and two at once on two cores starved them (measured: a prison-profile call that never
/// connected while another ran beside it). Every other test with a call, a kiosk window, a
/// package build, a clippy run or a minute of image decoding (the DCMTK comparison) takes the
/// same slot: beside them the shaped calls' figures fell under their
/// bounds (the far-link repair and the prison profile's 15 fps, in fresh-clone runs of #16's
/// session), and a window test beside a shaped call missed its 30 s for a brick's receipt.
static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

/// Holds the shaped-call slot until dropped (see [`ONE_AT_A_TIME`]).
pub async fn one_at_a_time() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().await
}

/// The same slot for a test without an async runtime that would starve a shaped call beside it
/// (issue #14's CI run: lintian and a second WebKit beside the prison-profile call took the kiosk's
/// video at the consultant from 20 fps to 12.9).
pub fn one_at_a_time_blocking() -> tokio::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.blocking_lock()
}

/// `root`'s process tree (none for no process).
fn tree_of(root: Option<u32>) -> Vec<u32> {
    root.map(crate::tree).unwrap_or_default()
}

/// The hospital side: coturn, the delay relay in front of it, and the care server, with nurses
/// and consultants.
#[derive(Debug)]
pub struct Hospital {
    /// The care server's data directory (its CLI runs against it).
    pub dir: tempfile::TempDir,
    /// The care server's address.
    pub url: String,
    /// The TURN URL both peers are given (the delay relay in front of coturn).
    pub turn_url: String,
    /// TOTP secrets of the nurses `nurse.s<n>`.
    pub nurse: Vec<String>,
    /// TOTP secrets of the consultants `dr.s<n>`.
    pub consultant: Vec<String>,
    children: Vec<Child>,
    _relay: DelayRelay,
    /// What the peers send.
    pub content: Content,
    /// The kiosk's record of its link (`SC_LINK_MEMORY`), kept from one call to the next; `None`:
    /// each call starts as on a new link (its own fresh data directory).
    pub link_memory: Option<PathBuf>,
}

/// What the peers of a shaped call send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Content {
    /// The camera-like clip on both sides: what a camera costs to encode.
    Camera,
    /// The kiosk's synthetic pattern and a still clip for Chromium: cheap to encode.
    Light,
}

impl Drop for Hospital {
    fn drop(&mut self) {
        for c in &mut self.children {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Runs the care server's CLI on `dir`; panics on failure, returns its output.
pub fn care(dir: &Path, args: &[&str], stdin: Option<&str>) -> String {
    let out = crate::care_cli(dir, args, stdin);
    assert!(out.status.success(), "care-server {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn totp_secret(out: &str) -> String {
    out.lines().find_map(|l| l.strip_prefix("TOTP secret (shown once): ")).expect("TOTP secret").to_owned()
}

/// The TOTP code for `secret` now.
pub fn code(secret: &str) -> String {
    sc_server::auth::totp_code(secret, crate::now()).expect("code")
}

/// Starts the hospital side of `link`: coturn behind the delay relay, the care server, four
/// nurses and four consultants.
pub fn hospital(link: &Link) -> Hospital {
    hospital_sending(link, Content::Light)
}

/// As [`hospital`], with the peers sending `content`.
pub fn hospital_sending(link: &Link, content: Content) -> Hospital {
    hospital_with(link, content, false)
}

/// As [`hospital`], with coturn also on TLS port 443 (a certificate from the care server's CA,
/// `care-server relay-cert`) and its `turns:` URL handed to the peers beside the UDP one.
pub fn hospital_with_tls_relay(link: &Link) -> Hospital {
    hospital_with(link, Content::Light, true)
}

fn hospital_with(link: &Link, content: Content, tls_relay: bool) -> Hospital {
    let addr = link.addr(Side::Hospital);
    let dir = tempfile::tempdir().expect("dir");
    care(dir.path(), &["init", "--tls-name", &addr.to_string()], None);
    care(dir.path(), &["add-prison", "HMP Shaped"], None);
    let pw = format!("{PASSWORD}\n");
    // A nurse and a consultant for each try: a TOTP code is good for one sign-in.
    let nurse = (0..4)
        .map(|i| {
            let name = format!("nurse.s{i}");
            let args =
                ["add-staff", "--username", &name, "--name", "Nurse S", "--role", "nurse", "--prison", "HMP Shaped"];
            totp_secret(&care(dir.path(), &args, Some(&pw)))
        })
        .collect();
    let consultant = (0..4)
        .map(|i| {
            let name = format!("dr.s{i}");
            let args = ["add-staff", "--username", &name, "--name", "Dr S", "--role", "consultant"];
            totp_secret(&care(dir.path(), &args, Some(&pw)))
        })
        .collect();
    let mut children = Vec::new();
    let mut turn = link.command(Side::Hospital, "turnserver");
    // The relay's TLS listener has an address of its own: the care server refuses to issue a
    // relay a certificate for its own name (a laptop would take one for the other).
    let [a, b, c, _] = addr.octets();
    let tls_addr = std::net::Ipv4Addr::new(a, b, c, 3);
    if tls_relay {
        let add = ["addr", "add", &format!("{tls_addr}/24"), "dev", Side::Hospital.veth()];
        let status = link.command(Side::Hospital, "ip").args(add).status().expect("ip addr add");
        assert!(status.success(), "ip addr add {tls_addr}");
        let certs = dir.path().join("relay");
        care(dir.path(), &["relay-cert", "--name", &tls_addr.to_string(), "--out", &certs.display().to_string()], None);
        turn.arg(format!("--listening-ip={tls_addr}"))
            .arg("--tls-listening-port=443")
            .arg(format!("--cert={}", certs.join("relay.crt.pem").display()))
            .arg(format!("--pkey={}", certs.join("relay.key.pem").display()));
    } else {
        turn.arg("--no-tls");
    }
    let turn = turn
        .args(["-n", "--no-cli", "--no-dtls", "--use-auth-secret", "--realm=secureconsult.test"])
        .arg(format!("--static-auth-secret={TURN_SECRET}"))
        .arg(format!("--listening-ip={addr}"))
        .arg(format!("--relay-ip={addr}"))
        .args(["--listening-port=3478", "--min-port=49152", "--max-port=49352"])
        .args(crate::media::denied_peer_args(&addr.to_string()))
        .arg(format!("--pidfile={}", dir.path().join("turn.pid").display()))
        .arg(format!("--db={}", dir.path().join("turndb").display()))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("turnserver");
    children.push(turn);
    // Both peers reach coturn through the relay (the server hands both one TURN URL), so each leg
    // carries half the profile's delay and jitter.
    let p = link.profile();
    let relay = link.delay_relay_with(
        Side::Hospital,
        (addr, 0).into(),
        (addr, 3478).into(),
        p.delay_ms / 2,
        p.jitter_ms / 2,
        RELAY_SEED,
    );
    let tls_url = if tls_relay { format!(", \"turns:{tls_addr}:443?transport=tcp\"") } else { String::new() };
    std::fs::write(
        dir.path().join("care-server.toml"),
        format!("[turn]\nurls = [\"{}\"{tls_url}]\n", relay.turn_url()),
    )
    .expect("config");
    let mut server = link
        .command(Side::Hospital, bin("care-server"))
        .arg("--data-dir")
        .arg(dir.path())
        .args(["serve", "--listen", &format!("{addr}:8443")])
        .env("SC_TURN_SECRET", TURN_SECRET)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("care-server serve");
    let mut line = String::new();
    BufReader::new(server.stdout.take().expect("stdout")).read_line(&mut line).expect("listening line");
    assert!(line.starts_with("listening on "), "{line}");
    children.push(server);
    std::thread::sleep(Duration::from_millis(300)); // coturn's listeners
    Hospital {
        url: format!("https://{addr}:8443"),
        turn_url: relay.turn_url(),
        dir,
        nurse,
        consultant,
        children,
        _relay: relay,
        link_memory: None,
        content,
    }
}

/// One admitted call: the engine's reports, the consultant page's, and how long the call took to
/// connect after the consultant admitted the laptop.
#[derive(Debug)]
pub struct Attempt {
    /// The engine's JSON lines (`phase`, `stats`).
    pub engine: Vec<Value>,
    /// The consultant page's reports (four a second).
    pub page: Vec<Value>,
    /// Admitted -> in call.
    pub connected_after_admission: Option<Duration>,
    /// CPU in the call, in cores: the kiosk engine's process, and the consultant's node + Chromium.
    pub cpu: (Option<f64>, Option<f64>),
}

/// A call of `in_call_secs` on `link` (try `try_no` picks the nurse and consultant).
pub async fn attempt(link: &Link, h: &Hospital, try_no: usize, in_call_secs: u64) -> Attempt {
    attempt_watching(link, h, try_no, in_call_secs, |_, _| false).await
}

/// As [`attempt`]; `watch` sees each engine stats report and the page's reports so far, and may
/// act on the link; the call is left as soon as it returns true.
pub async fn attempt_watching(
    link: &Link,
    h: &Hospital,
    try_no: usize,
    in_call_secs: u64,
    mut watch: impl FnMut(&Value, &[Value]) -> bool,
) -> Attempt {
    let room = care(
        h.dir.path(),
        &["add-appointment", "--consultant", &format!("dr.s{try_no}"), "--prison", "HMP Shaped", "--in-minutes", "0"],
        None,
    );
    let room = room.split_whitespace().last().expect("room code").to_owned();
    let token = care(h.dir.path(), &["enrol-token", "--prison", "HMP Shaped"], None).trim().to_owned();
    let data = tempfile::tempdir().expect("kiosk dir");
    let clip = tempfile::Builder::new().suffix(".y4m").tempfile().expect("y4m");
    let _voice = write_clip(h.content, clip.path());
    let spki = crate::spki_pin_of(h.dir.path());
    let mut consultant = Driver::start_in(
        link.ns(Side::Hospital),
        (&h.url, &spki),
        (&format!("dr.s{try_no}"), &code(&h.consultant[try_no])),
        clip.path(),
        // The page waits out the engine's call (plus its own set-up) before waiting for the end.
        &Options { end: "kiosk".into(), hold_ms: in_call_secs.saturating_sub(20) * 1000, display: None },
    );
    let mut cmd = tokio::process::Command::from(link.command(Side::Kiosk, bin("kiosk-engine")));
    // Prints the log's end if the call never connects, also when this function panics.
    let (log, mut log_guard) = engine_log(link.profile().name, try_no);
    if std::env::var_os("RUST_LOG").is_none() {
        // ICE, DTLS and the call's own states: what a failure to connect is read from.
        cmd.env("RUST_LOG", "info");
    }
    let mut engine = cmd
        .env("SC_SERVER", &h.url)
        .env("SC_TOKEN", &token)
        .env("SC_NURSE", format!("nurse.s{try_no}"))
        .env("SC_PASSWORD", PASSWORD)
        .env("SC_CODE", code(&h.nurse[try_no]))
        .env("SC_ROOM", &room)
        .env("SC_DATA", data.path())
        .env("SC_BIND", format!("{}:0", link.addr(Side::Kiosk)))
        .env("SC_MEDIA", if h.content == Content::Camera { clip.path().as_os_str() } else { "synthetic".as_ref() })
        .env("SC_SECS", in_call_secs.to_string())
        .envs(h.link_memory.iter().map(|p| ("SC_LINK_MEMORY", p)))
        .stdout(Stdio::piped())
        .stderr(log)
        .kill_on_drop(true)
        .spawn()
        .expect("kiosk-engine");
    let mut lines = tokio::io::AsyncBufReadExt::lines(tokio::io::BufReader::new(engine.stdout.take().expect("stdout")));
    let mut reports = Vec::new();
    let mut page = Vec::new();
    let (mut admitted, mut connected) = (None::<Instant>, None::<Instant>);
    let (engine_pid, page_pid) = (engine.id(), consultant.pid());
    // From the call's start, sampled at each of the engine's reports (once a second).
    let mut cpu: Option<(CpuMeter, CpuMeter)> = None;
    let deadline = Instant::now() + Duration::from_secs(90 + in_call_secs);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::select! {
            line = lines.next_line() => match line {
                Ok(Some(l)) => {
                    let v: Value = serde_json::from_str(&l).unwrap_or(Value::Null);
                    assert_ne!(v["event"], "error", "kiosk engine: {v}; audit: {}", care(h.dir.path(), &["audit", "--limit", "6"], None));
                    match v["phase"].as_str() {
                        Some("connecting") => admitted = admitted.or(Some(Instant::now())),
                        Some("in_call") => {
                            connected = connected.or(Some(Instant::now()));
                            log_guard.connected = true;
                            if cpu.is_none() {
                                cpu = Some((CpuMeter::start(tree_of(engine_pid)), CpuMeter::start(tree_of(page_pid))));
                            }
                        }
                        Some("ended") => { reports.push(v); break; }
                        _ => {}
                    }
                    if let Some((e, p)) = cpu.as_mut().filter(|_| v["event"] == "stats") {
                        e.sample(tree_of(engine_pid));
                        p.sample(tree_of(page_pid));
                    }
                    let done = v["event"] == "stats" && watch(&v, &page);
                    reports.push(v);
                    if done {
                        break;
                    }
                }
                _ => break,
            },
            Some(v) = consultant.events.recv() => {
                assert_ne!(v["event"], "error", "consultant: {v}");
                if v["event"] == "page" {
                    page.push(v);
                }
            }
            _ = tokio::time::sleep(left) => panic!("the call did not end in time; engine: {:?}", reports.last()),
        }
    }
    let cpu = cpu.map_or((None, None), |(mut e, mut p)| {
        e.sample(tree_of(engine_pid));
        p.sample(tree_of(page_pid));
        (Some(e.cores()), Some(p.cores()))
    });
    let _ = engine.start_kill();
    let _ = engine.wait().await;
    Attempt {
        cpu,
        engine: reports,
        page,
        connected_after_admission: admitted.zip(connected).map(|(a, c)| c.duration_since(a)),
    }
}

/// Where the engine's logs go: to a file in `SC_ENGINE_LOG` (a directory; set RUST_LOG too) for
/// looking into a failure, else to a temporary file whose tail is printed if the call never
/// connects (a rare failure in CI is then explained by its own run).
/// Named by the process, the link's profile and the try (tests run side by side).
fn engine_log(profile: &str, try_no: usize) -> (Stdio, LogTail) {
    let Some(dir) = std::env::var_os("SC_ENGINE_LOG") else {
        let file = tempfile::Builder::new().prefix("kiosk-engine-").suffix(".log").tempfile().expect("engine log");
        let (file, path) = file.into_parts();
        return (Stdio::from(file), LogTail { path: path.to_path_buf(), _temp: Some(path), connected: false });
    };
    static N: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = N.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let path =
        std::path::Path::new(&dir).join(format!("kiosk-engine-{}-{n}-{profile}-{try_no}.log", std::process::id()));
    let file = std::fs::File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    (Stdio::from(file), LogTail { path, _temp: None, connected: false })
}

/// The engine's log, its end printed on drop unless the call connected.
struct LogTail {
    path: std::path::PathBuf,
    _temp: Option<tempfile::TempPath>,
    connected: bool,
}

impl Drop for LogTail {
    fn drop(&mut self) {
        if !self.connected {
            eprintln!("the kiosk engine never connected; the end of its log:\n{}", log_tail(&self.path, 80));
        }
    }
}

/// The last lines of the engine's log, without the ICE agent's repeated complaints.
fn log_tail(path: &std::path::Path, lines: usize) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let kept: Vec<&str> = text.lines().filter(|l| !l.contains("pingAllCandidates")).collect();
    kept[kept.len().saturating_sub(lines)..].join("\n")
}

/// Writes the camera clip both peers send at `clip`, and for [`Content::Camera`] what both say
/// beside it (`<clip>.wav`, removed when the returned path drops).
fn write_clip(content: Content, clip: &std::path::Path) -> Option<tempfile::TempPath> {
    match content {
        Content::Camera => {
            crate::media::write_camera_clip(clip);
            let wav = clip.with_extension("wav");
            crate::media::write_voice_wav(&wav);
            Some(tempfile::TempPath::try_from_path(wav).expect("an absolute path"))
        }
        Content::Light => {
            crate::media::write_y4m(clip, 15);
            None
        }
    }
}

/// A Chromium <-> Chromium call on the same link: one peer in the prison's namespace (where the
/// kiosk would be), one in the hospital's, both through the hospital's delay relay and coturn with
/// credentials of their own, both sending the camera clip. `watch` sees the prison side's and the
/// hospital side's reports so far each second (and may act on the link); the call is left when it
/// returns true, after `secs` seconds connected, or after a minute unconnected.
pub async fn peer_call(
    link: &Link,
    h: &Hospital,
    secs: u64,
    mut watch: impl FnMut(&[Value], &[Value]) -> bool,
) -> PeerCall {
    let clip = tempfile::Builder::new().suffix(".y4m").tempfile().expect("y4m");
    let _voice = write_clip(h.content, clip.path());
    let spki = crate::spki_pin_of(h.dir.path());
    let turn =
        |id: &str| sc_server::turn::credentials(std::slice::from_ref(&h.turn_url), TURN_SECRET, id, crate::now(), 3600);
    let mut prison = Driver::peer_in(link.ns(Side::Kiosk), (&h.url, &spki), "offer", &turn("peer-prison"), clip.path());
    let mut hospital =
        Driver::peer_in(link.ns(Side::Hospital), (&h.url, &spki), "answer", &turn("peer-hosp"), clip.path());
    let (mut from_prison, mut from_hospital) = (Vec::new(), Vec::new());
    let mut connected: Option<Instant> = None;
    let started = Instant::now();
    let mut cpu: Option<(CpuMeter, CpuMeter)> = None;
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            Some(v) = prison.events.recv() => {
                assert_ne!(v["event"], "error", "prison-side Chromium: {v}");
                match v["event"].as_str() {
                    Some("signal") => hospital.tell(json!({ "do": "signal", "message": v })).await,
                    Some("page") => from_prison.push(v),
                    _ => {}
                }
            }
            Some(v) = hospital.events.recv() => {
                assert_ne!(v["event"], "error", "hospital-side Chromium: {v}");
                match v["event"].as_str() {
                    Some("signal") => prison.tell(json!({ "do": "signal", "message": v })).await,
                    Some("page") => from_hospital.push(v),
                    _ => {}
                }
            }
            _ = tick.tick() => {
                let up = |r: &[Value]| r.last().is_some_and(|p| p["callState"] == "connected");
                if connected.is_none() && up(&from_prison) && up(&from_hospital) {
                    connected = Some(Instant::now());
                    cpu = Some((CpuMeter::start(tree_of(prison.pid())), CpuMeter::start(tree_of(hospital.pid()))));
                }
                if let Some((p, hs)) = cpu.as_mut() {
                    p.sample(tree_of(prison.pid()));
                    hs.sample(tree_of(hospital.pid()));
                }
                if watch(&from_prison, &from_hospital) || connected.is_some_and(|c| c.elapsed() >= Duration::from_secs(secs)) {
                    break;
                }
                // Never connected in a minute: given up (`connected_after` says so).
                if connected.is_none() && started.elapsed() >= Duration::from_secs(60) {
                    break;
                }
            }
        }
    }
    let cpu = cpu.map_or((None, None), |(mut p, mut hs)| {
        p.sample(tree_of(prison.pid()));
        hs.sample(tree_of(hospital.pid()));
        (Some(p.cores()), Some(hs.cores()))
    });
    prison.tell(json!({ "do": "end" })).await;
    hospital.tell(json!({ "do": "end" })).await;
    // Let them close their browsers, rather than the link's clean-up killing them.
    for d in [&mut prison, &mut hospital] {
        let _ = tokio::time::timeout(Duration::from_secs(5), d.child.wait()).await;
    }
    PeerCall { prison: from_prison, hospital: from_hospital, connected_after: connected.map(|c| c - started), cpu }
}

/// What a Chromium <-> Chromium call saw.
#[derive(Debug)]
pub struct PeerCall {
    /// The prison side's reports (what it received), four a second.
    pub prison: Vec<Value>,
    /// The hospital side's reports.
    pub hospital: Vec<Value>,
    /// Start -> both connected.
    pub connected_after: Option<Duration>,
    /// CPU in the call, in cores: (prison side, hospital side), node + Chromium each.
    pub cpu: (Option<f64>, Option<f64>),
}

//! The real kiosk window under Xvfb (with a window manager, for fullscreen): a screenshot of the lock
//! screen, and a keyboard-only sign-in (real X key events through xdotool) that ends on the unlocked
//! screen. Screenshots are kept in the artifacts directory.

use crate::support::Laptop;
use sc_e2e::desktop::{sign_in_by_keyboard, xdotool};
use sc_e2e::{artifacts_dir, CareServer, PASSWORD};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// One display, one keyboard: window tests take turns.
pub(crate) static DISPLAY: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

pub(crate) const BRAND: &str = "srgb(11,110,79)";
pub(crate) const PAPER: &str = "srgb(244,247,246)";

pub(crate) struct KioskProcess {
    pub(crate) child: Child,
    log: std::path::PathBuf,
}

impl KioskProcess {
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

impl Drop for KioskProcess {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

pub(crate) fn screenshot(path: &Path) {
    let status = Command::new("import").args(["-window", "root"]).arg(path).status().expect("import");
    assert!(status.success(), "screenshot failed");
}

pub(crate) fn pixel(path: &Path, x: u32, y: u32) -> String {
    run("convert", &[&path.to_string_lossy(), "-format", &format!("%[pixel:p{{{x},{y}}}]"), "info:"])
}

/// Fraction of the image in the brand colour.
fn brand_fraction(path: &Path) -> f64 {
    colour_fraction(path, "#0b6e4f")
}

/// The fraction of the screenshot's pixels that are exactly `hex`.
pub(crate) fn colour_fraction(path: &Path, hex: &str) -> f64 {
    let out = run(
        "convert",
        &[
            &path.to_string_lossy(),
            "-fill",
            "black",
            "+opaque",
            hex,
            "-fill",
            "white",
            "-opaque",
            hex,
            "-format",
            "%[fx:mean]",
            "info:",
        ],
    );
    out.parse().unwrap_or(0.0)
}

/// The background of the appointments screen's line saying outcome notes await the team.
pub(crate) const REMINDER: &str = "#e3eefb";

pub(crate) fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

/// Screenshots into `path` until the pixel at (10, 10) is `colour` (off the async runtime).
pub(crate) async fn wait_for_colour(what: &'static str, path: PathBuf, colour: &'static str, secs: u64) {
    tokio::task::spawn_blocking(move || {
        wait_for(what, Duration::from_secs(secs), || {
            screenshot(&path);
            pixel(&path, 10, 10) == colour
        })
    })
    .await
    .expect("join");
}

/// Screenshots into `path`: whether the lock screen shows (the Unlock button in the brand colour
/// on a paper background).
pub(crate) fn on_lock_screen(path: &Path) -> bool {
    screenshot(path);
    brand_fraction(path) > 0.002 && pixel(path, 10, 10) == PAPER
}

pub(crate) fn luma_at(path: &Path, x: u32, y: u32) -> f64 {
    let out = run(
        "convert",
        &[&path.to_string_lossy(), "-colorspace", "Gray", "-format", &format!("%[fx:255*p{{{x},{y}}}]"), "info:"],
    );
    out.parse().unwrap_or(-1.0)
}

pub(crate) fn start_kiosk(data_dir: &Path, log_name: &str, media: bool) -> KioskProcess {
    start_kiosk_at(data_dir, log_name, media, None)
}

/// As [`start_kiosk`], with the kiosk's clock set `skew` out (libfaketime's offset, "+2h") for
/// it alone; its monotonic clocks stay true, as a wrongly set wall clock leaves them.
fn start_kiosk_at(data_dir: &Path, log_name: &str, media: bool, skew: Option<&str>) -> KioskProcess {
    let log = artifacts_dir().join(log_name);
    let log_file = std::fs::File::create(&log).expect("log file");
    let kiosk = sc_e2e::bin("secureconsult-kiosk");
    let mut cmd = match skew {
        Some(skew) => {
            let mut c = Command::new("faketime");
            c.args(["-f", skew]).arg(kiosk).env("FAKETIME_DONT_FAKE_MONOTONIC", "1").env("DONT_FAKE_MONOTONIC", "1");
            c
        }
        None => Command::new(kiosk),
    };
    cmd.arg("--data-dir").arg(data_dir).env("RUST_LOG", "info").stdout(Stdio::null()).stderr(log_file);
    if media {
        cmd.env("SC_KIOSK_MEDIA", "synthetic").env("SC_KIOSK_BIND", "127.0.0.1:0");
    }
    KioskProcess { child: cmd.spawn().expect("start the kiosk"), log }
}

/// Starts the kiosk window (synthetic media) on an enrolled laptop, signs `nurse.jo` in with the
/// keyboard and joins the first appointment: the kiosk waits to be admitted.
pub(crate) async fn kiosk_joining(data_dir: &Path, log_name: &str, nurse_secret: &str) -> KioskProcess {
    let kiosk = start_kiosk(data_dir, log_name, true);
    let shot = artifacts_dir().join(log_name.replace(".log", "-joining.png"));
    let code = CareServer::code(nurse_secret);
    tokio::task::spawn_blocking(move || {
        wait_for("the lock screen", Duration::from_secs(60), || {
            screenshot(&shot);
            brand_fraction(&shot) > 0.002 && pixel(&shot, 10, 10) == PAPER
        });
        sign_in_by_keyboard("nurse.jo", &code);
        wait_for("the appointments", Duration::from_secs(60), || {
            screenshot(&shot);
            pixel(&shot, 10, 10) == BRAND
        });
        // The first appointment's Join button has the focus; the screen as the nurse saw it.
        std::thread::sleep(Duration::from_millis(1500));
        screenshot(
            &shot.with_file_name(shot.file_name().expect("name").to_string_lossy().replace("joining", "unlocked")),
        );
        xdotool(&["key", "Return"]);
        kiosk
    })
    .await
    .expect("join")
}

/// What a window test with a call needs: coturn; the care server with a nurse (`nurse.jo`), a
/// consultant (`dr.who`, TOTP secret `dr`), an appointment and an earlier one's outcome note not yet
/// acknowledged; an enrolled laptop; a camera clip for the consultant; and the kiosk window,
/// signed in and joining.
pub(crate) struct WindowCall {
    pub(crate) turn: sc_e2e::media::Turn,
    pub(crate) server: CareServer,
    pub(crate) dr: String,
    pub(crate) laptop: Laptop,
    pub(crate) clip: tempfile::NamedTempFile,
    pub(crate) kiosk: KioskProcess,
}

pub(crate) async fn window_call(log_name: &str) -> WindowCall {
    let turn = sc_e2e::media::Turn::start(sc_e2e::TURN_SECRET);
    let server = CareServer::start_relaying(&turn).await;
    let secret = server.add_nurse("nurse.jo", "Jo Nurse", "HMP Testshire");
    let dr = server.add_consultant("dr.who", "Dr Who");
    // Twenty hours ago, so it is no longer listed (the first listed is the one the nurse joins).
    let earlier = server.add_appointment("dr.who", "HMP Testshire", -20 * 60);
    // An earlier consultation's note the prison's team has not acknowledged yet (issue #16).
    server.add_outcome_note(earlier.id, "Review the dressing daily.", "soon");
    server.add_appointment("dr.who", "HMP Testshire", 0);
    let laptop = Laptop::new().await;
    laptop.enrol(&server, "HMP Testshire").await;
    let clip = tempfile::Builder::new().suffix(".y4m").tempfile().expect("y4m");
    sc_e2e::media::write_y4m(clip.path(), 15);
    let kiosk = kiosk_joining(laptop.dir.path(), log_name, &secret).await;
    WindowCall { turn, server, dr, laptop, clip, kiosk }
}

/// Waits (90 s at most) until the consultant's driver reports the call proven both ways.
pub(crate) async fn call_proven(consultant: &mut sc_e2e::browser::Consultant, kiosk: &KioskProcess) {
    loop {
        let v = tokio::time::timeout(Duration::from_secs(90), consultant.events.recv())
            .await
            .expect("consultant progress")
            .expect("driver");
        match v["event"].as_str() {
            Some("stats") => break,
            Some("error") => panic!("consultant driver failed: {v}; kiosk log: {}", kiosk.log()),
            _ => {}
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_call_shows_the_consultants_video_in_the_window() {
    // A call or a kiosk window: never beside a shaped call (on 2 cores the figures starve).
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let _display = DISPLAY.lock().await;
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "needs an X display: scripts/test.sh runs Xvfb and a window manager"
    );
    let WindowCall { turn, server, dr, laptop: _laptop, clip, kiosk } = window_call("kiosk-call-window.log").await;
    // Issue #16: the appointments screen said an outcome note awaits the team (a line, not the note).
    let unlocked = artifacts_dir().join("kiosk-call-window-unlocked.png");
    let line = colour_fraction(&unlocked, REMINDER);
    assert!(line > 0.002, "no outcome-note line on {} ({line})", unlocked.display());
    let shot = artifacts_dir().join("call-screen.png");
    let mut consultant = crate::call::start_consultant_holding(&server, &dr, clip.path(), "consultant", 8000);
    call_proven(&mut consultant, &kiosk).await;
    // The consultant's clip is bright on the left and dark on the right: so must the window be.
    let shot2 = shot.clone();
    let (left, right) = tokio::task::spawn_blocking(move || {
        let mut lr = (0.0, 0.0);
        let start = std::time::Instant::now();
        while start.elapsed() < Duration::from_secs(7) {
            screenshot(&shot2);
            lr = (luma_at(&shot2, 384, 350), luma_at(&shot2, 896, 350));
            if lr.0 > 150.0 && lr.1 < 100.0 {
                break;
            }
            std::thread::sleep(Duration::from_millis(300));
        }
        lr
    })
    .await
    .expect("join");
    assert!(
        left > 150.0 && right < 100.0,
        "video region not showing the consultant (left {left}, right {right}); see {}; log: {}",
        shot.display(),
        kiosk.log()
    );
    // Never during a call.
    assert_eq!(colour_fraction(&shot, REMINDER), 0.0, "the outcome-note line on the call screen: {}", shot.display());
    // The consultant ends the call: the kiosk goes back to its appointments.
    loop {
        let v = tokio::time::timeout(Duration::from_secs(30), consultant.events.recv())
            .await
            .expect("end")
            .expect("driver");
        if v["event"] == "ended" {
            break;
        }
    }
    wait_for_colour("the appointments again", artifacts_dir().join("after-call.png"), BRAND, 30).await;
    assert!(kiosk.log().contains("consultation ended"), "{}", kiosk.log());
    drop(kiosk);
    drop(turn);
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_screen_then_keyboard_sign_in_reaches_the_unlocked_screen() {
    let _display = DISPLAY.lock().await;
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "needs an X display: scripts/test.sh runs Xvfb and a window manager"
    );
    let server = CareServer::start().await;
    let secret = server.add_nurse("nurse.jo", "Jo Nurse", "HMP Testshire");
    let laptop = Laptop::new().await;
    laptop.enrol(&server, "HMP Testshire").await;

    let artifacts = artifacts_dir();
    let kiosk = start_kiosk(laptop.dir.path(), "kiosk-window.log", false);

    let lock_png = artifacts.join("lock-screen.png");
    tokio::task::spawn_blocking(move || {
        wait_for("the kiosk window", Duration::from_secs(60), || {
            !run("xdotool", &["search", "--name", "^SecureConsult$"]).is_empty()
        });
        // The lock screen is drawn when the Unlock button (brand colour) shows on a paper background.
        wait_for("the lock screen to be drawn", Duration::from_secs(60), || {
            screenshot(&lock_png);
            brand_fraction(&lock_png) > 0.002 && pixel(&lock_png, 10, 10) == PAPER
        });
        lock_png
    })
    .await
    .expect("join");

    // Keyboard only: the page focuses the user name; Tab moves on; Return submits.
    let code = CareServer::code(&secret);
    tokio::task::spawn_blocking(move || sign_in_by_keyboard("nurse.jo", &code)).await.expect("join");
    wait_for_colour("the unlocked screen", artifacts.join("unlocked-screen.png"), BRAND, 60).await;
    let log = kiosk.log();
    assert!(log.contains("kiosk unlocked"), "the core unlocked: {log}");
    assert!(!log.contains(PASSWORD), "no secret in the log");
    drop(kiosk);
}

/// Waits up to 30 s for the server to verify the bricked laptop's wipe receipt.
async fn wait_for_receipt(server: &CareServer, device: &sc_proto::DeviceId, kiosk: &KioskProcess, what: &str) {
    let start = Instant::now();
    while sc_server::db::brick_of(&server.state.db(), device).expect("db").and_then(|b| b.wiped_at).is_none() {
        assert!(start.elapsed() < Duration::from_secs(30), "{what}: no verified receipt: {}", kiosk.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The disabled screen's background.
const DISABLED: &str = "srgb(122,16,32)";

#[tokio::test(flavor = "multi_thread")]
async fn a_bricked_laptop_shows_the_disabled_screen_for_ever() {
    // A call or a kiosk window: never beside a shaped call (on 2 cores the figures starve).
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let _display = DISPLAY.lock().await;
    assert!(
        std::env::var_os("DISPLAY").is_some(),
        "needs an X display: scripts/test.sh runs Xvfb and a window manager"
    );
    let server = CareServer::start().await;
    let laptop = Laptop::new().await;
    let record = laptop.enrol(&server, "HMP Testshire").await;
    let kiosk = start_kiosk(laptop.dir.path(), "kiosk-brick-window.log", false);
    // Online: the window's device channel has said hello.
    let start = Instant::now();
    while sc_server::db::device(&server.state.db(), &record.device_id)
        .expect("db")
        .and_then(|d| d.last_contact)
        .is_none()
    {
        assert!(start.elapsed() < Duration::from_secs(60), "the kiosk never contacted the server: {}", kiosk.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    sc_server::admin::brick_device(&server.state.db(), &record.device_id, "stolen", "it.sam", sc_e2e::now())
        .expect("brick");
    wait_for_colour("the disabled screen", artifacts_dir().join("disabled-screen.png"), DISABLED, 30).await;
    wait_for_receipt(&server, &record.device_id, &kiosk, "").await;
    assert!(!laptop.data.sealed_path().exists());
    drop(kiosk);
    // A restart shows nothing but the disabled screen.
    let again = start_kiosk(laptop.dir.path(), "kiosk-brick-window-restart.log", false);
    wait_for_colour(
        "the disabled screen after a restart",
        artifacts_dir().join("disabled-after-restart.png"),
        DISABLED,
        60,
    )
    .await;
    drop(again);
}

/// Issue #14: a laptop whose clock was more than 5 minutes out had its hello refused ("the
/// laptop's clock is wrong") before the server looked for a brick, and refused a brick command
/// whose time was not its own: a stolen laptop with its clock set two hours out was never wiped.
#[tokio::test(flavor = "multi_thread")]
async fn issue_14_a_laptop_two_hours_fast_or_slow_is_still_wiped_by_a_brick() {
    // A call or a kiosk window: never beside a shaped call (on 2 cores the figures starve).
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let _display = DISPLAY.lock().await;
    let server = CareServer::start().await;
    for skew in ["+2h", "-2h"] {
        let laptop = Laptop::new().await;
        let record = laptop.enrol(&server, "HMP Testshire").await;
        sc_server::admin::brick_device(&server.state.db(), &record.device_id, "stolen", "it.sam", sc_e2e::now())
            .expect("brick");
        let kiosk = start_kiosk_at(laptop.dir.path(), &format!("kiosk-brick-skew{skew}.log"), false, Some(skew));
        wait_for_colour("the disabled screen", artifacts_dir().join(format!("disabled-skew{skew}.png")), DISABLED, 60)
            .await;
        wait_for_receipt(&server, &record.device_id, &kiosk, skew).await;
        assert!(!laptop.data.sealed_path().exists(), "{skew}: the sealed config is gone");
        drop(kiosk);
    }
}

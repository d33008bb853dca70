//! The real kiosk window under Xvfb (with a window manager, for fullscreen): a screenshot of the lock
//! screen, and a keyboard-only sign-in (real X key events through xdotool) that ends on the unlocked
//! screen. Screenshots are kept in the artifacts directory.

use crate::support::Laptop;
use sc_e2e::{artifacts_dir, CareServer, PASSWORD};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BRAND: &str = "srgb(11,110,79)";
const PAPER: &str = "srgb(244,247,246)";

struct KioskProcess {
    child: Child,
    log: std::path::PathBuf,
}

impl KioskProcess {
    fn log(&self) -> String {
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

fn screenshot(path: &Path) {
    let status = Command::new("import").args(["-window", "root"]).arg(path).status().expect("import");
    assert!(status.success(), "screenshot failed");
}

fn pixel(path: &Path, x: u32, y: u32) -> String {
    run("convert", &[&path.to_string_lossy(), "-format", &format!("%[pixel:p{{{x},{y}}}]"), "info:"])
}

/// Fraction of the image in the brand colour.
fn brand_fraction(path: &Path) -> f64 {
    let out = run(
        "convert",
        &[&path.to_string_lossy(), "-fill", "black", "+opaque", "#0b6e4f", "-fill", "white", "-opaque", "#0b6e4f", "-format", "%[fx:mean]", "info:"],
    );
    out.parse().unwrap_or(0.0)
}

fn wait_for(what: &str, timeout: Duration, mut ok: impl FnMut() -> bool) {
    let start = Instant::now();
    while !ok() {
        assert!(start.elapsed() < timeout, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn xdotool(args: &[&str]) {
    let status = Command::new("xdotool").args(args).status().expect("xdotool");
    assert!(status.success(), "xdotool {args:?} failed");
}

#[tokio::test(flavor = "multi_thread")]
async fn lock_screen_then_keyboard_sign_in_reaches_the_unlocked_screen() {
    assert!(std::env::var_os("DISPLAY").is_some(), "needs an X display: scripts/test.sh runs Xvfb and a window manager");
    let server = CareServer::start().await;
    let secret = server.add_nurse("nurse.jo", "Jo Nurse", "HMP Testshire");
    let laptop = Laptop::new().await;
    laptop.enrol(&server, "HMP Testshire").await;

    let artifacts = artifacts_dir();
    let log = artifacts.join("kiosk-window.log");
    let log_file = std::fs::File::create(&log).expect("log file");
    let child = Command::new(sc_e2e::bin("secureconsult-kiosk"))
        .arg("--data-dir")
        .arg(laptop.dir.path())
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log_file)
        .spawn()
        .expect("start the kiosk");
    let kiosk = KioskProcess { child, log };

    let lock_png = artifacts.join("lock-screen.png");
    tokio::task::spawn_blocking(move || {
        wait_for("the kiosk window", Duration::from_secs(60), || !run("xdotool", &["search", "--name", "^SecureConsult$"]).is_empty());
        // The lock screen is drawn when the Unlock button (brand colour) shows on a paper background.
        wait_for("the lock screen to be drawn", Duration::from_secs(60), || {
            screenshot(&lock_png);
            brand_fraction(&lock_png) > 0.002 && pixel(&lock_png, 10, 10) == PAPER
        });
        lock_png
    })
    .await
    .expect("join");

    let code = CareServer::code(&secret);
    let unlocked_png = artifacts.join("unlocked-screen.png");
    let kiosk = tokio::task::spawn_blocking(move || {
        // Keyboard only: the page focuses the user name; Tab moves on; Return submits.
        xdotool(&["type", "--delay", "40", "nurse.jo"]);
        xdotool(&["key", "Tab"]);
        xdotool(&["type", "--delay", "40", PASSWORD]);
        xdotool(&["key", "Tab"]);
        xdotool(&["type", "--delay", "40", &code]);
        xdotool(&["key", "Return"]);
        wait_for("the unlocked screen", Duration::from_secs(60), || {
            screenshot(&unlocked_png);
            pixel(&unlocked_png, 10, 10) == BRAND
        });
        kiosk
    })
    .await
    .expect("join");
    let log = kiosk.log();
    assert!(log.contains("kiosk unlocked"), "the core unlocked: {log}");
    assert!(!log.contains(PASSWORD), "no secret in the log");
    drop(kiosk);
}

//! The README's demo command (`scripts/demo.sh`), run exactly as written with no display (its own
//! Xvfb path): to its end, with each step's screenshot checked by pixels (the lock screen, the
//! unlocked screen with today's appointment, the call, a shared CT slice, the consultant's page);
//! and cut short, by Ctrl+C, by a TERM to the script alone and by a failing step. Whichever way it
//! ends, no process it started is left running.

use sc_e2e::{artifacts_dir, as_from_a_shell, dicom_dir, repo_root};
use std::io::Read as _;
use std::os::unix::process::CommandExt as _;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

/// One demo at a time: they share artifacts/demo.
static DEMO: std::sync::Mutex<()> = std::sync::Mutex::new(());

/// The variable that marks every process a demo run starts (inherited through the environment,
/// so daemons that leave the process tree carry it too).
const TAG_VAR: &str = "SC_E2E_DEMO_TAG";

struct Demo {
    child: Child,
    tag: String,
    log: PathBuf,
}

impl Demo {
    /// Starts `scripts/demo.sh` from the clone's root as a person would at a terminal with no
    /// desktop: no display, no session bus, no cargo test variables; its own process group.
    fn start(name: &str) -> Demo {
        let tag = format!("{name}-{}-{}", std::process::id(), Instant::now().elapsed().as_nanos());
        let log = artifacts_dir().join(format!("demo-run-{name}.log"));
        let err = std::fs::File::create(&log).expect("log file");
        let out = err.try_clone().expect("log file");
        let child = as_from_a_shell(&mut Command::new("scripts/demo.sh"))
            .current_dir(repo_root())
            .env_remove("DISPLAY")
            .env_remove("DBUS_SESSION_BUS_ADDRESS")
            .env_remove("XAUTHORITY")
            .env(TAG_VAR, &tag)
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .process_group(0)
            .spawn()
            .expect("scripts/demo.sh");
        Demo { child, tag, log }
    }

    fn output(&self) -> String {
        let mut s = String::new();
        let _ = std::fs::File::open(&self.log).and_then(|mut f| f.read_to_string(&mut s));
        s
    }

    /// Waits for the demo to print `line` (it logs each step as it begins).
    fn wait_for_line(&mut self, line: &str, secs: u64) {
        let start = Instant::now();
        while !self.output().contains(line) {
            if let Ok(Some(status)) = self.child.try_wait() {
                panic!("the demo ended ({status}) before {line:?}:\n{}", self.output());
            }
            assert!(start.elapsed() < Duration::from_secs(secs), "no {line:?} in time:\n{}", self.output());
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    fn wait(&mut self, secs: u64) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            if start.elapsed() > Duration::from_secs(secs) {
                self.stop();
                panic!("the demo did not end within {secs} s:\n{}", self.output());
            }
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Processes that carry this run's tag.
    fn left_running(&self) -> Vec<String> {
        let needle = format!("{TAG_VAR}={}", self.tag);
        let mut found = Vec::new();
        for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            if name.parse::<u32>().is_err() {
                continue;
            }
            let Ok(environ) = std::fs::read(entry.path().join("environ")) else { continue };
            if environ.split(|b| *b == 0).any(|v| v == needle.as_bytes()) {
                let comm = std::fs::read_to_string(entry.path().join("comm")).unwrap_or_default();
                found.push(format!("{name} {}", comm.trim()));
            }
        }
        found
    }

    /// Asserts that nothing the demo started is still running (a moment for the last to exit).
    fn assert_nothing_left(&self) {
        let start = Instant::now();
        let mut left = self.left_running();
        while !left.is_empty() && start.elapsed() < Duration::from_secs(3) {
            std::thread::sleep(Duration::from_millis(200));
            left = self.left_running();
        }
        assert!(left.is_empty(), "still running after the demo ended: {left:?}\n{}", self.output());
    }

    /// Kills whatever is left (only when a test has already failed).
    fn stop(&mut self) {
        let _ = self.child.kill();
        for p in self.left_running() {
            if let Some(pid) = p.split_whitespace().next() {
                let _ = Command::new("kill").arg("-KILL").arg(pid).status();
            }
        }
    }

    fn signal(&self, signal: &str, target: String) {
        let status = Command::new("kill").arg(format!("-{signal}")).arg("--").arg(target).status().expect("kill");
        assert!(status.success(), "kill -{signal}");
    }
}

impl Drop for Demo {
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.stop();
        }
    }
}

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    DEMO.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn run(cmd: &str, args: &[&str]) -> String {
    let out = Command::new(cmd).args(args).output().unwrap_or_else(|e| panic!("{cmd}: {e}"));
    String::from_utf8_lossy(&out.stdout).trim().to_owned()
}

fn pixel(path: &Path, x: u32, y: u32) -> [u8; 3] {
    let img = image::open(path).unwrap_or_else(|e| panic!("{}: {e}", path.display())).to_rgb8();
    img.get_pixel(x, y).0
}

/// Fraction of the screenshot's pixels in the brand colour (#0b6e4f), within `region` (x, y, w, h).
fn brand_fraction(path: &Path, (x0, y0, w, h): (u32, u32, u32, u32)) -> f64 {
    let img = image::open(path).expect("screenshot").to_rgb8();
    let mut n = 0u32;
    for y in y0..y0 + h {
        for x in x0..x0 + w {
            if img.get_pixel(x, y).0 == BRAND {
                n += 1;
            }
        }
    }
    f64::from(n) / f64::from(w * h)
}

fn luma(path: &Path, x: u32, y: u32) -> f64 {
    run(
        "convert",
        &[&path.to_string_lossy(), "-colorspace", "Gray", "-format", &format!("%[fx:255*p{{{x},{y}}}]"), "info:"],
    )
    .parse()
    .unwrap_or(-1.0)
}

const BRAND: [u8; 3] = [11, 110, 79];
const PAPER: [u8; 3] = [244, 247, 246];

#[test]
fn the_readme_demo_runs_to_its_end_and_each_step_shows_on_screen() {
    // A kiosk window and a call: never beside a shaped call (on 2 cores the figures starve).
    let _slot = sc_e2e::shaped::one_at_a_time_blocking();
    let _one = one_at_a_time();
    let artifacts = artifacts_dir();
    let shots = ["lock-screen", "unlocked", "call", "ct", "consultant", "after-call", "note", "team"];
    for s in shots {
        let _ = std::fs::remove_file(artifacts.join(format!("demo-{s}.png")));
    }
    let started = sc_e2e::now();
    let mut demo = Demo::start("full");
    let status = demo.wait(900);
    assert!(status.success(), "the demo failed ({status}):\n{}", demo.output());
    demo.assert_nothing_left();
    let out = demo.output();
    assert!(out.contains("demo finished"), "{out}");
    for event in [
        "\"event\":\"activate\"",
        "\"event\":\"call_started\"",
        "\"event\":\"call_ended\"",
        "\"event\":\"note_sent\"",
        "\"event\":\"note_acknowledged\"",
    ] {
        assert!(out.contains(event), "the audit log printed at the end has {event}:\n{out}");
    }
    crate::log_secrets::assert_no_secrets(&repo_root().join("artifacts/demo"), started, sc_e2e::now());
    let shot = |s: &str| artifacts.join(format!("demo-{s}.png"));

    // The lock screen: the page's paper, the Unlock button in the brand colour, no top bar.
    let lock = shot("lock-screen");
    assert_eq!(pixel(&lock, 10, 10), PAPER, "{}", lock.display());
    assert!(brand_fraction(&lock, (0, 0, 1280, 800)) > 0.002, "no Unlock button on {}", lock.display());

    // Unlocked: the brand bar at the top, and today's appointment (its Join button) in the list
    // above the room-code form.
    for s in ["unlocked", "after-call"] {
        let p = shot(s);
        assert_eq!(pixel(&p, 10, 10), BRAND, "{}", p.display());
        assert!(appointment_listed(&p), "today's appointment is not listed on {}", p.display());
    }

    // The call: the consultant's camera (bright left half, dark right half) fills the video area.
    let call = shot("call");
    let (left, right) = (luma(&call, 384, 350), luma(&call, 896, 350));
    assert!(left > 150.0 && right < 100.0, "no consultant video on {} ({left}, {right})", call.display());

    // The shared CT: the screen shows the CT's own pixels where the viewer draws it.
    let ct = dicom_dir().join("CT_small.dcm");
    let (pixels, size) = crate::share_window::expected(&ct, 0);
    let matching = crate::share_window::matching(&shot("ct"), &pixels, size);
    assert!(matching > 0.95, "{:.3} of the CT's pixels on {}", matching, shot("ct").display());

    // The consultant's page: its brand bar, and the laptop's video (the kiosk's synthetic grey bars:
    // near-white and near-black columns side by side) in the video area at the top left.
    let page = image::open(shot("consultant")).expect("consultant screenshot").to_rgb8();
    assert!(page.width() >= 1000 && page.height() >= 700, "{:?}", page.dimensions());
    assert_eq!(page.get_pixel(10, 10).0, BRAND, "the consultant page's bar");
    let row: Vec<u8> = (40..700).map(|x| page.get_pixel(x, 200).0[1]).collect();
    assert!(
        row.iter().any(|g| *g > 230) && row.iter().any(|g| *g < 25),
        "no laptop video on the consultant's page: {row:?}"
    );

    // After the call, the consultant's outcome note form, then the prison team's page with the
    // note open: each under its brand bar (what they say is checked through the audit log above).
    for s in ["note", "team"] {
        let page = image::open(shot(s)).expect("screenshot").to_rgb8();
        assert_eq!(page.get_pixel(10, 10).0, BRAND, "the brand bar on {}", shot(s).display());
        assert!(page.height() >= 700, "{s}: {:?}", page.dimensions());
    }
}

/// Today's appointment: its Join button in the list above the room-code form's own Join button, so
/// below the top bar there are two separate bands of rows holding brand-coloured pixels, not one.
fn appointment_listed(path: &Path) -> bool {
    let img = image::open(path).expect("screenshot").to_rgb8();
    let (mut bands, mut inside) = (0, false);
    for y in 120..img.height() {
        let brand = (0..img.width()).filter(|&x| img.get_pixel(x, y).0 == BRAND).count() > 40;
        if brand && !inside {
            bands += 1;
        }
        inside = brand;
    }
    bands >= 2
}

#[test]
fn the_demo_stops_everything_when_interrupted() {
    let _one = one_at_a_time();
    // Ctrl+C at a terminal: SIGINT to the whole foreground process group, once the window is up.
    let mut demo = Demo::start("ctrl-c");
    demo.wait_for_line("step: nurse signs in", 600);
    demo.signal("INT", format!("-{}", demo.child.id()));
    let status = demo.wait(60);
    assert!(!status.success(), "{status}");
    demo.assert_nothing_left();

    // TERM to the script alone (as a service manager or `kill` would), mid-call: the browser, the
    // kiosk, the servers, the X server and the keyring all go too.
    let mut demo = Demo::start("term");
    demo.wait_for_line("step: the call on the kiosk", 600);
    assert!(demo.left_running().iter().any(|p| p.contains("chrom")), "{:?}", demo.left_running());
    demo.signal("TERM", demo.child.id().to_string());
    let status = demo.wait(60);
    assert!(!status.success(), "{status}");
    demo.assert_nothing_left();
}

#[test]
fn a_failing_demo_step_names_itself_and_its_log_and_stops_everything() {
    let _one = one_at_a_time();
    let mut demo = Demo::start("failing");
    demo.wait_for_line("lock screen: ", 600);
    // The kiosk dies under the nurse's fingers.
    let kiosk: Vec<String> = demo.left_running().into_iter().filter(|p| p.contains("secureconsult-k")).collect();
    assert_eq!(kiosk.len(), 1, "{kiosk:?}");
    demo.signal("KILL", kiosk[0].split_whitespace().next().expect("pid").to_owned());
    let status = demo.wait(120);
    assert!(!status.success(), "{status}");
    let out = demo.output();
    assert!(out.contains("demo step 'nurse signs in' failed: the kiosk exited"), "{out}");
    assert!(out.contains("artifacts/demo/kiosk.log"), "{out}");
    demo.assert_nothing_left();
}

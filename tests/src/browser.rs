//! Staff in a real browser: headless (or, for the benchmark, visible) Chromium driven by the
//! scripts in tests/consultant (call.mjs as the consultant, admin.mjs as IT staff, pathway.mjs as
//! the prison's team and the consultant around a note), which report progress as JSON lines.

use crate::{CareServer, PASSWORD};
use serde_json::Value;
use std::path::{Path, PathBuf};
use tokio::io::AsyncBufReadExt as _;

/// How the scripted consultant behaves.
#[derive(Debug, Clone)]
pub struct Options {
    /// Who ends the call: "consultant" (clicks End) or "kiosk" (waits for the laptop to).
    pub end: String,
    /// How long to keep the call up after it is proven, in ms.
    pub hold_ms: u64,
    /// Draw on an X display instead of headless: the display's name (e.g. ":7").
    pub display: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options { end: "consultant".into(), hold_ms: 0, display: None }
    }
}

/// A running browser driver (node, with Chromium as its child); killed when dropped.
#[derive(Debug)]
pub struct Driver {
    /// The driver process.
    pub child: tokio::process::Child,
    /// The driver's JSON events (the consultant: waiting, connected, stats, ended, error; IT:
    /// listed, bricked, wiped, error; sharing: share_open, kiosk, page_status, call, did).
    pub events: tokio::sync::mpsc::UnboundedReceiver<Value>,
    /// Commands to the sharing consultant (share.mjs reads them).
    stdin: Option<tokio::process::ChildStdin>,
    /// The driver's TMPDIR, where Playwright puts Chromium's profile: a killed driver never
    /// removes it, and the CI machine's /tmp gathered a profile for every browser a run started.
    _tmp: tempfile::TempDir,
}

/// The consultant in the browser ([`Driver::start`]).
pub type Consultant = Driver;
/// IT staff in the browser ([`Driver::brick`]).
pub type ItAdmin = Driver;

impl Drop for Driver {
    fn drop(&mut self) {
        // SIGTERM first: Playwright then closes Chromium and removes its profile itself. A SIGKILL
        // leaves Chromium to notice its closed pipe on its own, racing the removal of `_tmp`.
        if let Some(pid) = self.child.id() {
            let _ = std::process::Command::new("kill").args(["-TERM", &pid.to_string()]).status();
            let deadline = std::time::Instant::now() + std::time::Duration::from_secs(3);
            while std::time::Instant::now() < deadline {
                if matches!(self.child.try_wait(), Ok(Some(_))) {
                    return;
                }
                std::thread::sleep(std::time::Duration::from_millis(20));
            }
        }
        let _ = self.child.start_kill();
    }
}

/// Chromium's fake microphone: the clip's voice (`<clip>.wav` beside the clip, see
/// [`crate::media::write_voice_wav`]) when there is one, else its built-in beep.
fn voice_of(cmd: &mut tokio::process::Command, y4m: &Path) {
    let wav = y4m.with_extension("wav");
    if wav.exists() {
        cmd.env("SC_WAV", wav);
    }
}

fn driver_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("consultant")
}

impl Driver {
    /// Signs `username` (TOTP secret `secret`) in on the server's consultant page with `y4m` as
    /// the camera, and admits the first laptop that waits. Must run within a Tokio runtime.
    pub fn start(server: &CareServer, username: &str, secret: &str, y4m: &Path, options: &Options) -> Self {
        let mut cmd = tokio::process::Command::new("node");
        if let Some(display) = &options.display {
            cmd.env("DISPLAY", display);
        }
        cmd.env("SC_Y4M", y4m)
            .env("SC_END", &options.end)
            .env("SC_HOLD_MS", options.hold_ms.to_string())
            .env("SC_HEADLESS", if options.display.is_some() { "0" } else { "1" });
        spawn(cmd, "call.mjs", server, username, secret)
    }

    /// As [`Driver::start`], in the network namespace `ns` (a shaped link's hospital side), for
    /// the care server at `url` with SPKI pin `spki`, signing in with the TOTP `code`.
    pub fn start_in(
        ns: &str,
        (url, spki): (&str, &str),
        (username, code): (&str, &str),
        y4m: &Path,
        options: &Options,
    ) -> Self {
        let mut cmd = tokio::process::Command::new("ip");
        cmd.args(["netns", "exec", ns, "node"]);
        voice_of(&mut cmd, y4m);
        cmd.env("SC_Y4M", y4m)
            .env("SC_END", &options.end)
            .env("SC_HOLD_MS", options.hold_ms.to_string())
            .env("SC_HEADLESS", "1");
        spawn_at(cmd, "call.mjs", (url, spki), username, code)
    }

    /// One side of a Chromium <-> Chromium call in the network namespace `ns` (see
    /// tests/consultant/p2p.mjs): `role` "offer" or "answer", relay-only through `turn`, sending
    /// `y4m`. Signalling goes through [`Driver::tell`] and its `signal` events.
    pub fn peer_in(
        ns: &str,
        (url, spki): (&str, &str),
        role: &str,
        turn: &sc_proto::signal::IceServer,
        y4m: &Path,
    ) -> Self {
        let mut cmd = tokio::process::Command::new("ip");
        cmd.args(["netns", "exec", ns, "node"]);
        voice_of(&mut cmd, y4m);
        cmd.env("SC_Y4M", y4m)
            .env("SC_ROLE", role)
            .env("SC_TURN_URL", turn.urls.first().map_or("", String::as_str))
            .env("SC_TURN_USER", &turn.username)
            .env("SC_TURN_PASS", &turn.credential)
            .env("SC_HEADLESS", "1");
        spawn_at(cmd, "p2p.mjs", (url, spki), "", "")
    }

    /// As [`Driver::start`], for a consultant who then shares images as told ([`Driver::tell`]).
    pub fn sharing(server: &CareServer, username: &str, secret: &str, y4m: &Path) -> Self {
        let mut cmd = tokio::process::Command::new("node");
        cmd.env("SC_Y4M", y4m).env("SC_HEADLESS", "1");
        spawn(cmd, "share.mjs", server, username, secret)
    }

    /// As [`Driver::start`], all by keyboard (tests/consultant/keys.mjs): signs in, confirms the
    /// patient and (once a second laptop waits too) admits, shares `file`, sets a window preset,
    /// ends the call and sends the outcome note.
    pub fn by_keyboard(server: &CareServer, username: &str, secret: &str, y4m: &Path, file: &Path) -> Self {
        let mut cmd = tokio::process::Command::new("node");
        cmd.env("SC_Y4M", y4m).env("SC_FILE", file).env("SC_HEADLESS", "1").env("SC_SECOND_LAPTOP", "1");
        spawn(cmd, "keys.mjs", server, username, secret)
    }

    /// Opens the consultant's page at `url` (by host name; `host_map` is "name 127.0.0.1") with
    /// nothing relaxed: Chromium trusts only its store, the NSS database under `home`
    /// (tests/consultant/trust.mjs), and signs `username` in.
    pub fn trusting(url: &str, host_map: &str, home: &Path, username: &str, secret: &str) -> Self {
        let mut cmd = tokio::process::Command::new("node");
        cmd.env("SC_HOST_MAP", host_map).env("HOME", home);
        spawn_at(cmd, "trust.mjs", (url, ""), username, &CareServer::code(secret))
    }

    /// Sends a command to the sharing consultant (see tests/consultant/share.mjs).
    pub async fn tell(&mut self, command: Value) {
        use tokio::io::AsyncWriteExt as _;
        let stdin = self.stdin.as_mut().expect("the driver reads commands");
        let line = format!("{command}\n");
        stdin.write_all(line.as_bytes()).await.expect("command to the driver");
        stdin.flush().await.expect("flush");
    }

    /// The next event for which `pick` returns something, within `secs`; panics on a driver error.
    pub async fn wait_for<T>(&mut self, what: &str, secs: u64, mut pick: impl FnMut(&Value) -> Option<T>) -> T {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(secs);
        let mut seen = std::collections::VecDeque::new();
        loop {
            let v = tokio::time::timeout_at(deadline, self.events.recv())
                .await
                .unwrap_or_else(|_| panic!("timed out waiting for {what}; the last events: {seen:?}"))
                .unwrap_or_else(|| panic!("the driver ended while waiting for {what}"));
            if seen.len() == 8 {
                seen.pop_front();
            }
            seen.push_back(v.to_string());
            if v["event"] == "error" {
                panic!("the driver failed while waiting for {what}: {v}");
            }
            if let Some(t) = pick(&v) {
                return t;
            }
        }
    }

    /// The driver's process id (Chromium runs beneath it).
    pub fn pid(&self) -> Option<u32> {
        self.child.id()
    }
}

/// Starts `script` signed in as `username`, with its JSON-line reports on a channel.
fn spawn(cmd: tokio::process::Command, script: &str, server: &CareServer, username: &str, secret: &str) -> Driver {
    spawn_at(cmd, script, (&server.url, &server.spki_pin()), username, &CareServer::code(secret))
}

/// As [`spawn`], for a server at `url` whose key has the SPKI pin `spki`, with the TOTP `code`.
fn spawn_at(
    mut cmd: tokio::process::Command,
    script: &str,
    (url, spki): (&str, &str),
    username: &str,
    code: &str,
) -> Driver {
    assert!(
        driver_dir().join("node_modules/playwright-core").exists(),
        "run `npm ci` in tests/consultant (scripts/test.sh does)"
    );
    let tmp = tempfile::Builder::new().prefix("sc-browser-").tempdir().expect("a temporary directory");
    let mut child = cmd
        .arg(driver_dir().join(script))
        .env("TMPDIR", tmp.path())
        .stdin(std::process::Stdio::piped())
        .env("SC_URL", url)
        .env("SC_USER", username)
        .env("SC_PASSWORD", PASSWORD)
        .env("SC_CODE", code)
        .env("SC_SPKI", spki)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("node");
    let stdout = child.stdout.take().expect("stdout");
    let stdin = child.stdin.take();
    let (tx, events) = tokio::sync::mpsc::unbounded_channel();
    let script = script.to_owned();
    tokio::spawn(async move {
        let mut lines = tokio::io::BufReader::new(stdout).lines();
        while let Ok(Some(line)) = lines.next_line().await {
            match serde_json::from_str::<Value>(&line) {
                Ok(v) => {
                    let _ = tx.send(v);
                }
                Err(_) => eprintln!("{script}: {line}"),
            }
        }
    });
    Driver { child, events, stdin, _tmp: tmp }
}

impl Driver {
    /// Signs `username` in on the admin page and bricks `device` with `reason`; a screenshot of
    /// the page once the wipe shows goes to `screenshot`; then disables the account `leaver`.
    /// Must run within a Tokio runtime.
    pub fn brick(
        server: &CareServer,
        (username, secret): (&str, &str),
        (device, reason): (&str, &str),
        leaver: &str,
        screenshot: &Path,
    ) -> Self {
        let mut cmd = tokio::process::Command::new("node");
        cmd.env("SC_DEVICE", device).env("SC_REASON", reason).env("SC_SCREENSHOT", screenshot).env("SC_LEAVER", leaver);
        spawn(cmd, "admin.mjs", server, username, secret)
    }
}

impl Driver {
    /// Runs the care pathway in the browser (tests/consultant/pathway.mjs): `nurse` books
    /// `consultant` on the team page for patient `patient`; the consultant writes the note of an
    /// appointment that has begun; the nurse reads, acknowledges and exports it (the FHIR file to
    /// `export`); the consultant sees the acknowledgement. Screenshots go to `shots`. Must run
    /// within a Tokio runtime.
    pub fn pathway(
        server: &CareServer,
        consultant: (&str, &str),
        (nurse, nurse_secret): (&str, &str),
        patient: &str,
        export: &Path,
        shots: &Path,
    ) -> Self {
        let mut cmd = tokio::process::Command::new("node");
        cmd.env("SC_NURSE_USER", nurse)
            .env("SC_NURSE_CODE", CareServer::code(nurse_secret))
            .env("SC_BOOK_PATIENT", patient)
            .env("SC_EXPORT", export)
            .env("SC_SHOTS", shots);
        spawn(cmd, "pathway.mjs", server, consultant.0, consultant.1)
    }

    /// Validates FHIR R4 resources (one JSON file each) with FHIR.js (tests/consultant/fhir.mjs):
    /// each file's report (`valid`, `errors`, `warnings`), and whether all were valid.
    pub async fn validate_fhir(files: &[&Path]) -> (Vec<Value>, bool) {
        let out = tokio::process::Command::new("node")
            .arg(driver_dir().join("fhir.mjs"))
            .args(files)
            .output()
            .await
            .expect("node fhir.mjs");
        let reports =
            String::from_utf8_lossy(&out.stdout).lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
        (reports, out.status.success())
    }
}

impl Driver {
    /// Audits the consultant's page (as `consultant`, who has an appointment begun and without a
    /// note), the admin page (as `it`), the team page (as `nurse`, whose prison has a note) and
    /// the kiosk's own page with axe-core (tests/consultant/a11y.mjs); reports `audit` per page,
    /// then `done`. Must run within a Tokio runtime.
    pub fn audit(
        server: &CareServer,
        consultant: (&str, &str),
        (it_user, it_secret): (&str, &str),
        (nurse, nurse_secret): (&str, &str),
    ) -> Self {
        let mut cmd = tokio::process::Command::new("node");
        cmd.env("SC_IT_USER", it_user)
            .env("SC_IT_CODE", CareServer::code(it_secret))
            .env("SC_NURSE_USER", nurse)
            .env("SC_NURSE_CODE", CareServer::code(nurse_secret))
            .env("SC_KIOSK_UI", crate::repo_root().join("ui"));
        spawn(cmd, "a11y.mjs", server, consultant.0, consultant.1)
    }
}

//! Test kit for the end-to-end suite and the benchmarks: a real care server on loopback TLS with its
//! own temporary data directory, demo staff, and helpers to find the workspace's binaries.
#![forbid(unsafe_code)]

use sc_server::config::ServerConfig;
use sc_server::serve::Running;
use sc_server::{admin, db, pki, serve, state, AppState};
use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// The demo nurse's password in tests.
pub const PASSWORD: &str = "correct horse battery staple";
/// The TURN shared secret test servers use.
pub const TURN_SECRET: &str = "test-turn-secret";

pub mod balancer;
pub mod browser;
pub mod consultant;
pub mod desktop;
pub mod dicom;
pub mod link;
pub mod media;
pub mod posture;
pub mod shaped;

/// A care server running in this process on a loopback port, over real TLS.
#[derive(Debug)]
pub struct CareServer {
    /// The server's data directory (database, keys).
    pub dir: tempfile::TempDir,
    /// Its base URL.
    pub url: String,
    /// Its CA certificate (what laptops pin).
    pub ca_der: Vec<u8>,
    /// The shared state (database) for direct admin operations.
    pub state: AppState,
    /// The bound address (the URL's host is this address).
    pub addr: SocketAddr,
    running: Option<Running>,
    // Last: the PostgreSQL database of this server (SC_TEST_DATABASE_URL), dropped after it.
    _scratch: Option<sc_server::scratch::Scratch>,
}

impl CareServer {
    /// Initialises a data directory with keys and a prison "HMP Testshire", and starts serving.
    pub async fn start() -> Self {
        Self::start_with(ServerConfig::default()).await
    }

    /// A server whose calls relay through `turn` (coturn on loopback, sharing [`TURN_SECRET`]).
    pub async fn start_relaying(turn: &media::Turn) -> Self {
        let mut config = ServerConfig::default();
        config.turn.urls = vec![turn.url()];
        Self::start_with(config).await
    }

    /// As [`CareServer::start`] with a given configuration (its listen address and data dir are
    /// replaced). On PostgreSQL when SC_TEST_DATABASE_URL names a cluster (the test command's
    /// second pass), else SQLite.
    pub async fn start_with(config: ServerConfig) -> Self {
        let scratch = sc_server::scratch::Scratch::from_env().map(|s| s.expect("a scratch database"));
        Self::start_on(config, scratch).await
    }

    /// As [`CareServer::start_with`], on `scratch` (a PostgreSQL database made for this server) or
    /// on SQLite, whatever the environment says.
    pub async fn start_on(mut config: ServerConfig, scratch: Option<sc_server::scratch::Scratch>) -> Self {
        if config.turn.secret.is_empty() {
            config.turn.secret = TURN_SECRET.into();
        }
        let dir = tempfile::tempdir().expect("temp dir");
        config.data_dir = dir.path().to_path_buf();
        pki::init(dir.path(), &config.tls_names).expect("pki init");
        let keys = pki::load(dir.path()).expect("pki load");
        if let Some(s) = &scratch {
            config.database.url = Some(s.url().to_owned());
        }
        let conn = db::open_configured(&config).expect("db");
        let state = AppState::new(conn, config, keys.command_key.clone(), state::system_clock()).expect("state");
        admin::add_prison(&state.db(), "HMP Testshire", now()).expect("prison");
        let running = serve::start(state.clone(), &keys, "127.0.0.1:0".parse().expect("addr")).expect("serve");
        let addr = running.addr;
        CareServer {
            url: format!("https://127.0.0.1:{}", addr.port()),
            ca_der: keys.ca_der.clone(),
            dir,
            state,
            addr,
            running: Some(running),
            _scratch: scratch,
        }
    }

    /// Stops serving (the data stays).
    pub async fn stop(&mut self) {
        if let Some(r) = self.running.take() {
            r.stop().await;
        }
    }

    /// Serves again on the same address.
    pub async fn restart(&mut self) {
        self.stop().await;
        let keys = pki::load(self.dir.path()).expect("pki load");
        self.running = Some(serve::start(self.state.clone(), &keys, self.addr).expect("serve again"));
    }

    /// Starts serving again on the same address as a new process would (after [`CareServer::stop`]):
    /// a new state (rooms hub, live connections, rate limits) over the same database and keys.
    pub async fn start_fresh(&mut self) {
        assert!(self.running.is_none(), "stop the server first");
        let keys = pki::load(self.dir.path()).expect("pki load");
        let config = (*self.state.config).clone();
        let conn = db::open_configured(&config).expect("db");
        let state = AppState::new(conn, config, keys.command_key.clone(), state::system_clock()).expect("state");
        self.running = Some(serve::start(state.clone(), &keys, self.addr).expect("serve again"));
        self.state = state;
    }

    /// A second instance of this server in this process (issue #17: several instances behind one
    /// address), over the same PostgreSQL database and keys, on a port of its own, with its own
    /// rooms, limits and live connections.
    pub fn another_instance(&self) -> Instance {
        assert_eq!(
            self.state.db.dialect(),
            sc_server::store::Dialect::Postgres,
            "instances share a PostgreSQL database (start_on with a scratch database)"
        );
        let keys = pki::load(self.dir.path()).expect("pki load");
        let config = (*self.state.config).clone();
        let store = db::open_configured(&config).expect("db");
        let state = AppState::new(store, config, keys.command_key.clone(), state::system_clock()).expect("state");
        let running = serve::start(state.clone(), &keys, "127.0.0.1:0".parse().expect("addr")).expect("serve");
        Instance { url: format!("https://127.0.0.1:{}", running.addr.port()), state, running: Some(running) }
    }

    /// Another instance of this server as a process of its own (`care-server serve` on this
    /// server's data directory, PostgreSQL database and relays), so a test can kill it as a
    /// machine dies: its sockets and its database sessions go at once.
    pub fn instance_process(&self) -> InstanceProcess {
        use std::io::BufRead as _;
        let url = self.state.config.database.url.clone().expect("instances share a PostgreSQL database");
        let relays: Vec<String> = self.state.config.turn.urls.iter().map(|u| format!("{u:?}")).collect();
        std::fs::write(self.dir.path().join("care-server.toml"), format!("[turn]\nurls = [{}]\n", relays.join(", ")))
            .expect("config");
        let port = std::net::TcpListener::bind("127.0.0.1:0").and_then(|l| l.local_addr()).expect("free port").port();
        let mut child = std::process::Command::new(bin("care-server"))
            .arg("--data-dir")
            .arg(self.dir.path())
            .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
            .env("SC_DATABASE_URL", url)
            .env("SC_TURN_SECRET", &self.state.config.turn.secret)
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::null())
            .spawn()
            .expect("care-server serve");
        let mut line = String::new();
        std::io::BufReader::new(child.stdout.take().expect("stdout")).read_line(&mut line).expect("listening line");
        assert!(line.starts_with("listening on "), "{line}");
        InstanceProcess { child, addr: ([127, 0, 0, 1], port).into() }
    }

    /// Adds a prison.
    pub fn add_prison(&self, name: &str) {
        admin::add_prison(&self.state.db(), name, now()).expect("prison");
    }

    /// Adds a nurse of `prison`; returns the TOTP secret.
    pub fn add_nurse(&self, username: &str, display: &str, prison: &str) -> String {
        let spec =
            admin::StaffSpec { username, display_name: display, role: "nurse", prison: Some(prison), hospital: None };
        admin::add_staff(&self.state.db(), &self.state.config, spec, PASSWORD, now()).expect("staff").totp_secret
    }

    /// Adds a consultant; returns the TOTP secret.
    pub fn add_consultant(&self, username: &str, display: &str) -> String {
        let spec =
            admin::StaffSpec { username, display_name: display, role: "consultant", prison: None, hospital: None };
        admin::add_staff(&self.state.db(), &self.state.config, spec, PASSWORD, now()).expect("consultant").totp_secret
    }

    /// As [`Self::add_consultant`], working at `hospital`.
    pub fn add_consultant_of(&self, username: &str, display: &str, hospital: &str) -> String {
        let spec = admin::StaffSpec {
            username,
            display_name: display,
            role: "consultant",
            prison: None,
            hospital: Some(hospital),
        };
        admin::add_staff(&self.state.db(), &self.state.config, spec, PASSWORD, now()).expect("staff").totp_secret
    }

    /// Adds an IT staff member; returns the TOTP secret.
    pub fn add_it(&self, username: &str, display: &str) -> String {
        let spec = admin::StaffSpec { username, display_name: display, role: "it", prison: None, hospital: None };
        admin::add_staff(&self.state.db(), &self.state.config, spec, PASSWORD, now()).expect("IT staff").totp_secret
    }

    /// Books an appointment starting `in_minutes` from now, 30 minutes long.
    pub fn add_appointment(&self, consultant: &str, prison: &str, in_minutes: i64) -> admin::NewAppointment {
        admin::add_appointment(&self.state.db(), consultant, prison, now() + in_minutes * 60, 30, None, now())
            .expect("appointment")
    }

    /// As [`Self::add_appointment`], for the patient with `prison_number` and `initials`.
    pub fn add_booking(
        &self,
        consultant: &str,
        prison: &str,
        in_minutes: i64,
        prison_number: &str,
        initials: &str,
    ) -> admin::NewAppointment {
        let patient = sc_proto::signal::Patient {
            prison_number: prison_number.to_owned().try_into().expect("a prison number"),
            initials: initials.to_owned().try_into().expect("initials"),
        };
        admin::add_appointment(&self.state.db(), consultant, prison, now() + in_minutes * 60, 30, Some(&patient), now())
            .expect("appointment")
    }

    /// Sends an outcome note for appointment `id` as its consultant would (urgency `urgency`):
    /// what the prison's team then has to acknowledge.
    pub fn add_outcome_note(&self, id: i64, summary: &str, urgency: &str) -> i64 {
        let c = self.state.db();
        let a = sc_server::db::appointment(&c, id).expect("db").expect("the appointment");
        let form = sc_server::notes::NoteForm {
            summary: summary.into(),
            actions: String::new(),
            medication: String::new(),
            follow_up: String::new(),
            follow_up_on: String::new(),
            urgency: urgency.into(),
        };
        let draft = sc_server::notes::NoteDraft::try_from(form).expect("a good note");
        let new = sc_server::notes::NewNote {
            appointment_id: id,
            consultant_id: a.consultant_id,
            prison_id: a.prison_id,
            addendum_to: None,
            draft: &draft,
        };
        sc_server::notes::insert(&c, &new, now()).expect("note").0
    }

    /// A one-time enrolment token for `prison`.
    pub fn token(&self, prison: &str) -> String {
        admin::issue_enrol_token(&self.state.db(), &self.ca_der, prison, 3600, now()).expect("token")
    }

    /// base64(SHA-256(SubjectPublicKeyInfo)) of the TLS key: what Chromium's
    /// `--ignore-certificate-errors-spki-list` pins.
    pub fn spki_pin(&self) -> String {
        spki_pin_of(self.dir.path())
    }

    /// The current code for a TOTP secret.
    pub fn code(secret: &str) -> String {
        sc_server::auth::totp_code(secret, now()).expect("code")
    }

    /// The code for the next time step (a fresh code when the current one was just used).
    pub fn next_code(secret: &str) -> String {
        sc_server::auth::totp_code(secret, now() + sc_server::auth::TOTP_STEP).expect("code")
    }
}

impl Drop for CareServer {
    fn drop(&mut self) {
        if let Some(r) = self.running.take() {
            drop(r);
        }
    }
}

/// Another instance of a [`CareServer`] (see [`CareServer::another_instance`]); stops when dropped.
#[derive(Debug)]
pub struct Instance {
    /// Its base URL.
    pub url: String,
    /// Its own state, over the shared database.
    pub state: AppState,
    running: Option<Running>,
}

impl Drop for Instance {
    fn drop(&mut self) {
        drop(self.running.take());
    }
}

/// A care server instance in a process of its own (see [`CareServer::instance_process`]);
/// killed when dropped.
#[derive(Debug)]
pub struct InstanceProcess {
    child: std::process::Child,
    /// Where it listens.
    pub addr: SocketAddr,
}

impl InstanceProcess {
    /// Kills it (SIGKILL: no goodbye to its peers or its database).
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for InstanceProcess {
    fn drop(&mut self) {
        self.kill();
    }
}

/// Unix seconds now.
pub fn now() -> i64 {
    (state::system_clock())()
}

/// The directory holding the workspace's binaries (next to this test's executable).
pub fn bin_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("current exe");
    let mut dir = exe.parent().expect("exe dir").to_path_buf();
    if dir.ends_with("deps") {
        dir.pop();
    }
    dir
}

/// A workspace binary by name; panics with a hint when it was not built.
pub fn bin(name: &str) -> PathBuf {
    let p = bin_dir().join(name);
    assert!(p.exists(), "{} is missing: build the workspace's binaries first (scripts/test.sh does)", p.display());
    p
}

/// Where tests keep artifacts such as screenshots: `$SC_ARTIFACTS`, or `artifacts/` in the workspace.
pub fn artifacts_dir() -> PathBuf {
    let dir = std::env::var_os("SC_ARTIFACTS")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("../artifacts"));
    std::fs::create_dir_all(&dir).expect("artifacts dir");
    dir
}

/// The pydicom wheel's test files (scripts/lib.sh `dicom_test_files` fetches them).
pub fn dicom_dir() -> PathBuf {
    let dir = std::env::var_os("SC_DICOM_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".cache/secureconsult/pydicom/test_files")
    });
    assert!(
        dir.join("CT_small.dcm").exists(),
        "pydicom's test files are missing in {} (scripts/test.sh fetches them)",
        dir.display()
    );
    dir
}

/// (pid, parent) of every process.
pub fn processes() -> Vec<(u32, u32)> {
    let mut out = Vec::new();
    for entry in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else { continue };
        let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else { continue };
        // The command name may hold spaces and parentheses: fields start after the last ')'.
        let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else { continue };
        if let Some(ppid) = rest.split_whitespace().nth(1).and_then(|p| p.parse().ok()) {
            out.push((pid, ppid));
        }
    }
    out
}

/// utime + stime of a process, in clock ticks ([`clock_ticks_per_sec`] a second).
pub fn cpu_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let f: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// The CPU a changing set of processes used over a span, from each process's own counter sampled
/// along the way ([`CpuMeter::sample`], about once a second). A process's counter ends with it, so
/// the difference of two sums over the set undercounts whatever ended in the span: the consultant
/// page's Chromium swaps its renderer after sign-in, and the links benchmark printed 0.00 cores for
/// a page decoding video when the swapped-out renderer's count was larger than the newcomers' (issue
/// #12). Here a process gone by a sample loses only what it used since the last one.
#[derive(Debug)]
pub struct CpuMeter {
    /// Each live process's counter at the last sample.
    last: HashMap<u32, u64>,
    /// Ticks used within the span, by process, and each one's name at first sight.
    used: HashMap<u32, (String, u64)>,
    from: std::time::Instant,
}

impl CpuMeter {
    /// Starts the span with `pids` as they stand now.
    pub fn start(pids: impl IntoIterator<Item = u32>) -> Self {
        Self::starting_at(read_counters(pids))
    }

    /// Starts the span with the counters (process, ticks) read now.
    fn starting_at(counters: Vec<(u32, u64)>) -> Self {
        CpuMeter { last: counters.into_iter().collect(), used: HashMap::new(), from: std::time::Instant::now() }
    }

    /// Reads `pids`' counters now.
    pub fn sample(&mut self, pids: impl IntoIterator<Item = u32>) {
        self.add(read_counters(pids), comm);
    }

    /// Counts `counters` (process, ticks), read now: what each process used since the last sample,
    /// or since it began if it began within the span.
    fn add(&mut self, counters: Vec<(u32, u64)>, name: impl Fn(u32) -> String) {
        let mut last = HashMap::with_capacity(counters.len());
        for (pid, ticks) in counters {
            let before = self.last.get(&pid).copied().unwrap_or(0);
            let entry = self.used.entry(pid).or_insert_with(|| (name(pid), 0));
            entry.1 += ticks.saturating_sub(before);
            last.insert(pid, ticks);
        }
        self.last = last;
    }

    /// Cores used on average since the start (ticks over [`clock_ticks_per_sec`] and the span).
    pub fn cores(&self) -> f64 {
        let ticks: u64 = self.used.values().map(|(_, t)| t).sum();
        ticks as f64 / clock_ticks_per_sec() / self.from.elapsed().as_secs_f64().max(0.001)
    }

    /// Cores used since the start by each process name.
    pub fn cores_by_name(&self) -> Vec<(String, f64)> {
        let secs = self.from.elapsed().as_secs_f64().max(0.001) * clock_ticks_per_sec();
        let mut by: HashMap<&str, u64> = HashMap::new();
        for (name, ticks) in self.used.values() {
            *by.entry(name).or_default() += ticks;
        }
        let mut v: Vec<(String, f64)> = by.into_iter().map(|(n, t)| (n.to_owned(), t as f64 / secs)).collect();
        v.sort_by(|a, b| b.1.total_cmp(&a.1));
        v
    }
}

/// The counters (process, ticks) of those of `pids` still running.
fn read_counters(pids: impl IntoIterator<Item = u32>) -> Vec<(u32, u64)> {
    pids.into_iter().filter_map(|p| Some((p, cpu_ticks(p)?))).collect()
}

/// A process's short name (empty once it has ended).
fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm")).map(|s| s.trim().to_owned()).unwrap_or_default()
}

/// The kernel's clock ticks a second (`getconf CLK_TCK`; 100 if that fails).
pub fn clock_ticks_per_sec() -> f64 {
    let out = std::process::Command::new("getconf").arg("CLK_TCK").output();
    out.ok().and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok()).unwrap_or(100.0)
}

/// `root` and all its descendants.
pub fn tree(root: u32) -> Vec<u32> {
    let all = processes();
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let parent = found[i];
        found.extend(all.iter().filter(|(_, pp)| *pp == parent).map(|(p, _)| *p));
        i += 1;
    }
    found
}

/// The clone's root (the workspace).
pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().expect("the workspace").to_path_buf()
}

/// Clears what `cargo test` adds to a test's environment (`CARGO_MANIFEST_DIR`, `CARGO_PKG_*`, ...),
/// so that a project script the test runs sees what a person's shell would; the shared
/// `CARGO_TARGET_DIR` and `CARGO_HOME` stay.
pub fn as_from_a_shell(cmd: &mut std::process::Command) -> &mut std::process::Command {
    for (key, _) in std::env::vars_os() {
        let key = key.to_string_lossy();
        if key.starts_with("CARGO_") && key != "CARGO_HOME" && key != "CARGO_TARGET_DIR" {
            cmd.env_remove(key.as_ref());
        }
    }
    cmd
}

/// The SPKI pin ([`CareServer::spki_pin`]) of the care server whose data directory is `dir`.
pub fn spki_pin_of(dir: &Path) -> String {
    use base64::Engine as _;
    use rcgen::PublicKeyData as _;
    let pem = std::fs::read_to_string(dir.join("server.key.pem")).expect("server key");
    let key = rcgen::KeyPair::from_pem(&pem).expect("key");
    let digest = ring::digest::digest(&ring::digest::SHA256, &key.subject_public_key_info());
    base64::engine::general_purpose::STANDARD.encode(digest.as_ref())
}

/// Text without terminal colour codes (the kiosk's and the servers' logs are coloured).
pub fn strip_ansi(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut chars = text.chars();
    while let Some(c) = chars.next() {
        if c == '\u{1b}' {
            // ESC [ ... letter
            for d in chars.by_ref() {
                if d.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

/// Runs the `care-server` CLI on the data directory `data`, with `stdin` fed to it if given.
pub fn care_cli(data: &Path, args: &[&str], stdin: Option<&str>) -> std::process::Output {
    use std::io::Write as _;
    use std::process::{Command, Stdio};
    let mut child = Command::new(bin("care-server"))
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("care-server");
    if let Some(input) = stdin {
        child.stdin.take().expect("stdin").write_all(input.as_bytes()).expect("write stdin");
    }
    child.wait_with_output().expect("wait")
}

#[cfg(test)]
mod cpu_meter_tests {
    use super::CpuMeter;

    fn named(pid: u32) -> String {
        format!("p{pid}")
    }

    /// Issue #12: the links benchmark printed 0.00 cores for a Chromium page decoding video. A
    /// process busy at the start and gone by the end (a renderer swapped out) took its count with
    /// it, and the sum at the end was under the sum at the start.
    #[test]
    fn issue_12_a_process_that_ends_within_the_span_keeps_what_it_used() {
        // At the start: the browser (1) at 100 ticks, the renderer to be swapped (2) at 900.
        let mut m = CpuMeter::starting_at(vec![(1, 100), (2, 900)]);
        // The renderer works 50 more, then a new one (3) takes over and the old one ends.
        m.add(vec![(1, 110), (2, 950), (3, 20)], named);
        m.add(vec![(1, 130), (3, 220)], named);
        let used: u64 = m.used.values().map(|(_, t)| t).sum();
        // 30 by the browser, 50 by the old renderer, 220 by the new one.
        assert_eq!(used, 300);
        let old = m.used.get(&2).map(|(n, t)| (n.as_str(), *t));
        assert_eq!(old, Some(("p2", 50)), "the ended renderer's share is kept under its name");
    }
}

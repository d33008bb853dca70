//! The kiosk's side: one helper process per file, fed the file on stdin, its reply read from
//! stdout (and checked as untrusted by `sc_imaging::wire`), killed at the time limit. Its failure
//! becomes that file's [`Error::Sandbox`] with a reason the consultant and nurse can read.

use crate::child::HELPER_ARG;
use sc_imaging::{Decoder, Error, Image, Limits};
use std::io::{Read as _, Write as _};
use std::path::PathBuf;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// The helper's file name.
pub const PROGRAM: &str = "secureconsult-decode";

/// How much one helper may take.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HelperLimits {
    /// Address space, in bytes (RLIMIT_AS): the decoded file, the decoder's own buffers and the
    /// reply must fit.
    pub memory: u64,
    /// Wall-clock time for one file, start to reply; CPU time is limited to the same.
    pub time: Duration,
}

impl Default for HelperLimits {
    /// 1.5 GiB and 20 s: the largest file the share limits admit (64 Mpx, 256 MiB as values)
    /// decodes within both with room to spare; a runaway decoder does not.
    fn default() -> Self {
        HelperLimits { memory: 1536 << 20, time: Duration::from_secs(20) }
    }
}

/// Decodes each file in a fresh helper process: `program` run as `program decode-helper ...`.
#[derive(Debug, Clone)]
pub struct Helper {
    /// `None` when this binary's own path could not be found: every file is then refused.
    program: Option<PathBuf>,
    limits: HelperLimits,
}

impl Helper {
    /// Runs `program` (a binary whose `main` starts with `run_if_helper`) as the helper.
    pub fn new(program: impl Into<PathBuf>, limits: HelperLimits) -> Self {
        Helper { program: Some(program.into()), limits }
    }

    /// The installed helper: `secureconsult-decode` beside this binary (a build tree), else in
    /// /usr/lib/secureconsult (the .deb). Should neither exist, files are refused rather than
    /// decoded unconfined.
    pub fn installed(limits: HelperLimits) -> Self {
        let beside = std::env::current_exe().ok().and_then(|exe| Some(exe.parent()?.join(PROGRAM)));
        let program =
            beside.into_iter().chain([PathBuf::from("/usr/lib/secureconsult").join(PROGRAM)]).find(|p| p.is_file());
        if program.is_none() {
            tracing::error!("{PROGRAM} is not installed; shared images cannot be decoded");
        }
        Helper { program, limits }
    }

    fn spawn(&self) -> std::io::Result<Child> {
        let cpu = self.limits.time.as_secs().max(1);
        let program = self.program.as_ref().ok_or_else(|| std::io::Error::other("no helper binary"))?;
        Command::new(program)
            .arg(HELPER_ARG)
            .arg(self.limits.memory.to_string())
            .arg(cpu.to_string())
            // Nothing of the kiosk's environment (tokens, display, keyring addresses) is needed.
            .env_clear()
            .current_dir("/")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
    }
}

/// The most a reply can need for `limits`: four bytes a value, a bit a pixel for overlays, and
/// headroom for the rest.
fn max_reply(limits: &Limits) -> u64 {
    limits.max_total_pixels.saturating_mul(5).saturating_add(16 << 20)
}

/// Reads `from` to its end, up to `max` bytes (more is an error: the reply cannot be one).
fn read_bounded(mut from: impl std::io::Read, max: u64) -> Result<Vec<u8>, ()> {
    let mut out = Vec::new();
    (&mut from).take(max.saturating_add(1)).read_to_end(&mut out).map_err(|_| ())?;
    if out.len() as u64 > max {
        return Err(());
    }
    Ok(out)
}

impl Decoder for Helper {
    fn decode(&self, bytes: &[u8], limits: &Limits) -> Result<Image, Error> {
        let started = Instant::now();
        let deadline = started + self.limits.time;
        let mut child = self.spawn().map_err(|e| {
            tracing::error!(error = %e, program = ?self.program, "the decode helper did not start");
            Error::Sandbox("the laptop's image decoder could not be started".into())
        })?;
        let (Some(mut stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            kill(&mut child);
            return Err(Error::Sandbox("the laptop's image decoder could not be started".into()));
        };
        let request = sc_imaging::wire::encode_request(limits, bytes);
        // A helper that stops reading (it crashed) ends the write with an error; nothing to do.
        let writer = std::thread::spawn(move || {
            let _ = stdin.write_all(&request);
        });
        let max = max_reply(limits);
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let _ = tx.send(read_bounded(stdout, max));
        });
        let errors = std::thread::spawn(move || read_bounded(stderr, 16 << 10).unwrap_or_default());
        let reply = rx.recv_timeout(deadline.saturating_duration_since(Instant::now()));
        let status = match reply {
            Ok(_) => wait_until(&mut child, deadline),
            Err(_) => None,
        };
        let Some(status) = status else {
            kill(&mut child);
            let _ = writer.join();
            tracing::warn!(limit_s = self.limits.time.as_secs_f64(), "a shared file's decoder ran out of time");
            return Err(Error::Sandbox(format!(
                "decoding it took longer than the {} s a file may take",
                self.limits.time.as_secs()
            )));
        };
        let _ = writer.join();
        let stderr = errors.join().unwrap_or_default();
        let elapsed_ms = started.elapsed().as_millis() as u64;
        match (status.success(), reply) {
            (true, Ok(Ok(reply))) => {
                tracing::debug!(elapsed_ms, bytes = reply.len(), "decoded in the helper");
                sc_imaging::wire::decode_reply(&reply, limits)
            }
            (true, _) => Err(Error::Sandbox("the decoder's answer was too large to be an image".into())),
            (false, _) => {
                let why = failure(status, &String::from_utf8_lossy(&stderr), &self.limits);
                tracing::warn!(%status, elapsed_ms, reason = %why, "a shared file's decoder failed");
                Err(Error::Sandbox(why))
            }
        }
    }
}

/// The helper's exit status once it has exited, or `None` at the deadline.
fn wait_until(child: &mut Child, deadline: Instant) -> Option<ExitStatus> {
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status),
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            _ => return None,
        }
    }
}

fn kill(child: &mut Child) {
    let _ = child.kill();
    let _ = child.wait();
}

/// Why the helper stopped, in words for the consultant and nurse.
fn failure(status: ExitStatus, stderr: &str, limits: &HelperLimits) -> String {
    #[cfg(unix)]
    let signal = std::os::unix::process::ExitStatusExt::signal(&status);
    #[cfg(not(unix))]
    let signal: Option<i32> = None;
    if stderr.contains("memory allocation of") {
        return format!("decoding it needed more than the {} MiB of memory a file may use", limits.memory >> 20);
    }
    match signal {
        // RLIMIT_CPU: SIGXCPU at the soft limit, SIGKILL at the hard one.
        Some(24) | Some(9) => format!("decoding it took longer than the {} s a file may take", limits.time.as_secs()),
        Some(31) => "the decoder tried to do something a decoder must not (it was stopped)".into(),
        _ if stderr.contains("decode sandbox could not be set up") => {
            tracing::error!(detail = %stderr.trim(), "the decode sandbox is unavailable");
            "the laptop's image decoder could not be confined, so it was not run".into()
        }
        Some(s) => format!("the decoder crashed on it (signal {s})"),
        None => format!("the decoder stopped on it ({status})"),
    }
}

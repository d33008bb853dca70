//! The helper's side: confine this process, then read one request on stdin, decode it and write
//! the reply on stdout. Nothing is read before the confinement is in force.

use std::io::{Read as _, Write as _};
use std::process::ExitCode;

/// The first argument that makes a binary the decode helper (followed by the memory limit in
/// bytes and the CPU limit in seconds).
pub const HELPER_ARG: &str = "decode-helper";

/// When this process was started as the decode helper (`HELPER_ARG MEMORY CPU_SECONDS`), runs it
/// and returns its exit code; otherwise `None`.
pub fn run_if_helper() -> Option<ExitCode> {
    let mut args = std::env::args_os().skip(1);
    if args.next()? != HELPER_ARG {
        return None;
    }
    let mut number = || args.next().and_then(|a| a.to_str()?.parse::<u64>().ok());
    let (Some(memory), Some(cpu_seconds)) = (number(), number()) else {
        eprintln!("usage: {HELPER_ARG} MEMORY_BYTES CPU_SECONDS");
        return Some(ExitCode::from(2));
    };
    Some(run(memory, cpu_seconds))
}

fn run(memory: u64, cpu_seconds: u64) -> ExitCode {
    if let Err(e) = confine(memory, cpu_seconds) {
        // Never decode unconfined: the parent reports this file as not decoded.
        eprintln!("the decode sandbox could not be set up: {e}");
        return ExitCode::from(3);
    }
    let mut request = Vec::new();
    if let Err(e) = std::io::stdin().lock().read_to_end(&mut request) {
        eprintln!("reading the request: {e}");
        return ExitCode::from(4);
    }
    let outcome =
        sc_imaging::wire::decode_request(&request).and_then(|(limits, file)| sc_imaging::decode(file, &limits));
    drop(request);
    let reply = sc_imaging::wire::encode_reply(&outcome);
    drop(outcome);
    let mut out = std::io::stdout().lock();
    if out.write_all(&reply).and_then(|()| out.flush()).is_err() {
        // The parent gave up (time limit) or died.
        return ExitCode::from(5);
    }
    ExitCode::SUCCESS
}

#[cfg(target_os = "linux")]
fn confine(memory: u64, cpu_seconds: u64) -> Result<(), String> {
    crate::confine::confine(memory, cpu_seconds)
}

/// Elsewhere the process boundary is the only confinement (a crash or a runaway allocation still
/// costs only this process; the parent's time limit still applies).
#[cfg(not(target_os = "linux"))]
fn confine(_memory: u64, _cpu_seconds: u64) -> Result<(), String> {
    Ok(())
}

/// For the tests: confines this process as a helper is confined (64 MiB, 1 s of CPU), then tries
/// `what` (open, connect, spawn, allocate, spin, write-fd); the exit code or signal says what the
/// confinement did. Exit 0 means the forbidden thing succeeded.
#[cfg(target_os = "linux")]
pub fn probe(what: &str) -> ExitCode {
    if let Err(e) = confine(64 << 20, 1) {
        eprintln!("confine: {e}");
        return ExitCode::from(3);
    }
    let done = match what {
        "open" => std::fs::File::open("/etc/hostname").is_ok(),
        "connect" => std::net::TcpStream::connect("127.0.0.1:9").is_ok(),
        "spawn" => std::process::Command::new("/bin/true").status().is_ok(),
        "allocate" => {
            let v = vec![1u8; 256 << 20];
            !std::hint::black_box(&v).is_empty()
        }
        // Allowed: the JPEG decoder's worker threads.
        "thread" => std::thread::Builder::new().name("worker".into()).spawn(|| 1).is_ok_and(|t| t.join().is_ok()),
        "spin" => {
            let mut x = 0u64;
            loop {
                x = std::hint::black_box(x.wrapping_add(1));
            }
        }
        "write-fd" => {
            // Any descriptor but stdout and stderr: stdin, here (an inherited socket elsewhere).
            use std::os::fd::AsFd as _;
            rustix::io::write(std::io::stdin().as_fd(), b"x").is_ok()
        }
        _ => return ExitCode::from(2),
    };
    if done {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

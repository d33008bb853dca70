//! The helper's confinement, tried from inside: once confined, opening a file, connecting a
//! socket, starting a process or writing to any descriptor but stdout and stderr kills it
//! (SIGSYS); allocating past its memory limit fails; spinning past its CPU limit ends it.

use std::os::unix::process::ExitStatusExt as _;
use std::process::{Command, Output, Stdio};

fn probe(what: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_secureconsult-decode"))
        .args(["probe", what])
        .stdin(Stdio::piped())
        .output()
        .expect("the helper binary runs")
}

const SIGXCPU: i32 = 24;
const SIGSYS: i32 = 31;

#[test]
fn a_confined_helper_cannot_open_connect_spawn_or_write_elsewhere() {
    for what in ["open", "connect", "spawn", "write-fd"] {
        let out = probe(what);
        assert_eq!(
            out.status.signal(),
            Some(SIGSYS),
            "{what}: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn a_confined_helper_cannot_allocate_past_its_memory_limit() {
    // The probe allocates 256 MiB under a 64 MiB limit.
    let out = probe("allocate");
    assert!(!out.status.success(), "{:?}", out.status);
    assert!(String::from_utf8_lossy(&out.stderr).contains("memory allocation of"), "{out:?}");
}

#[test]
fn a_confined_helper_that_spins_is_stopped_by_its_cpu_limit() {
    let out = probe("spin");
    assert_eq!(out.status.signal(), Some(SIGXCPU), "{:?}", out.status);
}

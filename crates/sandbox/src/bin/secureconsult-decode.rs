//! `secureconsult-decode`: the kiosk's decode helper (`decode-helper MEMORY CPU_SECONDS`: one file
//! on stdin, its image on stdout, confined before it reads). `probe WHAT` confines itself the same
//! way and then tries one thing a helper must not do, for the tests and for IT staff checking a
//! laptop's kernel: it should die (SIGSYS) or fail, never exit 0.
#![forbid(unsafe_code)]

use std::process::ExitCode;

fn main() -> ExitCode {
    if let Some(code) = sc_sandbox::run_if_helper() {
        return code;
    }
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        #[cfg(target_os = "linux")]
        ["probe", what] => sc_sandbox::probe(what),
        _ => {
            eprintln!("usage: secureconsult-decode decode-helper MEMORY_BYTES CPU_SECONDS | probe WHAT");
            ExitCode::from(2)
        }
    }
}

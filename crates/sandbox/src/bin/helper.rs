//! The decode helper on its own, for sc-sandbox's tests (the kiosk runs itself in this mode). Its
//! `probe` mode confines itself as a helper does, then tries one thing a helper must not do.
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
            eprintln!("usage: sc-decode-helper decode-helper MEMORY_BYTES CPU_SECONDS | probe WHAT");
            ExitCode::from(2)
        }
    }
}

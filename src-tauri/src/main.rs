//! `secureconsult-kiosk`: the kiosk window, or `enrol` for IT staff. Everything lives in the library.
#![forbid(unsafe_code)]
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

fn main() -> std::process::ExitCode {
    sc_kiosk::main()
}

//! The laptop's posture report: what it tells the server about itself at enrolment and activation.

use sc_proto::Posture;

/// Reads the posture from the running system.
pub fn current() -> Posture {
    Posture {
        app_version: env!("CARGO_PKG_VERSION").to_owned(),
        os: sysinfo::System::name().unwrap_or_default(),
        os_version: sysinfo::System::os_version().unwrap_or_default(),
        kernel: sysinfo::System::kernel_version().unwrap_or_default(),
        uptime_secs: sysinfo::System::uptime().unwrap_or(0),
    }
}

/// The host name, for IT staff's device list.
pub fn hostname() -> String {
    sysinfo::System::host_name().unwrap_or_else(|_| "unknown".to_owned())
}

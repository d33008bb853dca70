//! sc-sandbox's integration tests: the helper binary's confinement tried from inside, every test
//! file decoding through the helper exactly as in process, and hostile files failing alone within
//! their limits.

#![allow(unreachable_pub, reason = "support items shared across the test binary")]

mod confinement;
mod decode;
mod limits;

use sc_sandbox::{Helper, HelperLimits};

/// The helper binary built with this crate.
pub fn helper(limits: HelperLimits) -> Helper {
    Helper::new(env!("CARGO_BIN_EXE_secureconsult-decode"), limits)
}

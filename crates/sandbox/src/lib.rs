//! Decoding shared images in a helper process (`secureconsult-decode`, installed beside the kiosk),
//! confined before it reads a byte of the file (a memory and CPU limit, no file system or network through
//! Landlock, a seccomp allow-list of the few system calls decoding needs) and killed at a time
//! limit. A decoder that crashes, allocates without bound or loops costs that file, not the call.
//!
//! [`Helper`] is the parent's side (an [`sc_imaging::Decoder`]); [`run_if_helper`] the child's.
#![forbid(unsafe_code)]

mod child;
#[cfg(target_os = "linux")]
mod confine;
mod parent;

#[cfg(target_os = "linux")]
pub use child::probe;
pub use child::{run_if_helper, HELPER_ARG};
pub use parent::{Helper, HelperLimits, PROGRAM};

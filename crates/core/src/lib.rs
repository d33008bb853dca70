//! The SecureConsult kiosk's logic without a window: device identity, the sealed config,
//! enrolment, activation, and the lock state machine. The Tauri shell only wires this to a page.
#![forbid(unsafe_code)]

pub mod activate;
pub mod atomic;
pub mod channel;
pub mod client;
pub mod contact;
pub mod enrol;
mod error;
pub mod keystore;
pub mod kiosk;
pub mod lock;
pub mod posture;
pub mod record;
pub mod sealed;
pub mod signal;
pub mod tls;
pub mod wipe;

pub use error::Error;
pub use kiosk::{Kiosk, KioskView, Notice};

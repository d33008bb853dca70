//! The SecureConsult kiosk's logic without a window: device identity, the sealed config,
//! enrolment, activation, the lock state machine and the kiosk's timer. The Tauri shell only
//! wires this to a page.
#![forbid(unsafe_code)]

pub mod activate;
pub mod atomic;
pub mod channel;
pub mod client;
pub mod clock;
pub mod contact;
pub mod enrol;
mod error;
pub mod firewall;
pub mod keystore;
pub mod kiosk;
pub mod lock;
pub mod notice;
pub mod posture;
pub mod record;
pub mod sealed;
pub mod signal;
pub mod timer;
pub mod tls;
pub mod windows_policy;
pub mod wipe;

pub use clock::Clock;
pub use error::Error;
pub use kiosk::{Kiosk, KioskView, Notice};

//! The kiosk's call engine: one WebRTC call with the consultant's browser, relay-only through TURN.
//! VP8 (libvpx) and Opus are encoded and decoded here; sources are the camera and microphone or
//! synthetic ones for tests. Signalling I/O stays outside: the engine takes `FromServer` messages
//! in and emits `ToServer` messages and events out, so the shell (or a test) carries them.
#![forbid(unsafe_code)]

#[macro_use]
mod chain;
pub mod adapt;
mod audio;
pub mod camera_clip;
pub mod consultation;
pub mod convert;
mod data;
#[cfg(feature = "devices")]
pub mod devices;
pub mod down_link;
mod engine;
mod error;
pub mod estimate;
mod fec_send;
pub mod frame;
pub mod gaps;
pub mod images;
mod keyframe;
pub mod link_memory;
pub mod lipsync;
pub mod nack;
mod pacer;
pub mod peer_cap;
pub mod playout;
pub mod red;
mod rtx;
mod sender_reports;
pub mod source;
pub mod turn_tls;
pub mod ulpfec;
mod unasked;
mod video;
pub mod voice_playout;
pub mod wav;
pub mod y4m;

pub use data::{DataIn, DataSender};
pub use engine::{Call, CallConfig, CallEvent, CallState, CallStats, SelectedPair};
pub use error::Error;
pub use frame::I420Frame;

/// A mutex's guard; a poisoned one is taken as it is: what the crate's mutexes guard (counters,
/// queues, the newest frame, settings) stays consistent between statements, and no invariant
/// spans a panic.
pub(crate) fn lock<T>(m: &std::sync::Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

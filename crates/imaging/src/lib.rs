//! The kiosk's image viewer core: decodes what the consultant shares (DICOM at full dynamic range
//! with dicom-rs, PNG and JPEG with the image crate) into memory only, and maps it to display
//! grey levels through a window (the file's own, a preset, or the consultant's).
//!
//! Nothing here touches a file: input is bytes, output is pixels. Every limit is checked before
//! the work it bounds, and bad input is an [`Error`], never a panic.
#![forbid(unsafe_code)]

mod dicom;
mod error;
mod image;
mod lengths;
mod palette;
mod raster;
pub mod viewer;
pub mod window;
pub mod wire;

pub use error::Error;
pub use image::{Frame, Image, Limits, OverlayMask, Rendered, Source};
pub use viewer::{Screen, ShareLimits, Viewer};
pub use window::{Preset, Window};

/// Turns one shared file into an image: [`InProcess`], or a helper process with its own limits
/// (crate sc-sandbox), so a decoder that runs away costs that file and not the call.
pub trait Decoder: Send + Sync + std::fmt::Debug {
    /// Decodes one file within `limits`.
    fn decode(&self, bytes: &[u8], limits: &Limits) -> Result<Image, Error>;
}

/// [`decode`] in the calling process: the limits are checked, but the decoders' own allocations
/// and time are not bounded.
#[derive(Debug, Clone, Copy, Default)]
pub struct InProcess;

impl Decoder for InProcess {
    fn decode(&self, bytes: &[u8], limits: &Limits) -> Result<Image, Error> {
        decode(bytes, limits)
    }
}

/// Decodes one shared file, guessing its kind from its first bytes (DICOM Part 10, PNG, JPEG).
pub fn decode(bytes: &[u8], limits: &Limits) -> Result<Image, Error> {
    if bytes.len() > limits.max_file_bytes {
        return Err(Error::TooLarge { what: "file", limit: limits.max_file_bytes as u64, actual: bytes.len() as u64 });
    }
    let decoder: fn(&[u8], &Limits) -> Result<Image, Error> =
        if bytes.starts_with(b"\x89PNG\r\n\x1a\n") || bytes.starts_with(b"\xff\xd8\xff") {
            raster::decode
        } else if bytes.len() >= 132 && &bytes[128..132] == b"DICM" {
            dicom::decode
        } else {
            return Err(Error::UnknownFormat);
        };
    // The codecs are third-party code run on input from the network; one was found panicking on
    // a damaged RLE stream (tests/it/robustness.rs). A panic there must not take the call down:
    // it becomes this file's error. Nothing is shared across the boundary but the input bytes.
    std::panic::catch_unwind(|| decoder(bytes, limits))
        .unwrap_or_else(|_| Err(Error::BadPixels("the decoder failed on this data".into())))
}

//! The image-share protocol on the call's data channel: the consultant's control messages (JSON
//! text) and file chunks (binary), and the kiosk's replies (JSON text). The consultant page speaks
//! the same JSON and the same 13-byte chunk header (crates/server/web/share.js).
//!
//! A share is a list of file sizes announced up front; the files then follow in order, each as
//! chunks at increasing offsets on the one ordered, reliable channel. Nothing but sizes is sent
//! ahead: file names are clinical content and stay in the consultant's browser.

use serde::{Deserialize, Serialize};

/// The data channel's label (the kiosk opens it in its offer; a consultant may open another).
pub const CHANNEL_LABEL: &str = "share";
/// The largest message either side sends: webrtc-rs delivers messages up to 16 KiB.
pub const MAX_MESSAGE: usize = 16 * 1024;
/// Bytes before a chunk's data: tag, share, file, offset.
pub const CHUNK_HEADER: usize = 13;
/// The most file bytes one chunk carries.
pub const MAX_CHUNK_DATA: usize = MAX_MESSAGE - CHUNK_HEADER;
/// The first byte of every chunk (a JSON message starts with `{`).
pub const CHUNK_TAG: u8 = b'C';

/// A piece of a shared file: binary message `C`, share (u32 BE), file index (u32 BE), byte offset
/// in the file (u32 BE), then the bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Chunk<'a> {
    /// Which share.
    pub share: u32,
    /// Which file of the share (0-based, in announced order).
    pub file: u32,
    /// Where in the file `data` starts.
    pub offset: u32,
    /// The file's bytes.
    pub data: &'a [u8],
}

/// Why a binary message is not a chunk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ChunkError {
    /// Shorter than the header, or without the chunk tag.
    #[error("a binary message that is not a file chunk")]
    NotAChunk,
    /// Larger than [`MAX_MESSAGE`].
    #[error("a file chunk larger than {MAX_MESSAGE} bytes")]
    TooLarge,
}

impl<'a> Chunk<'a> {
    /// Parses a binary message.
    pub fn parse(message: &'a [u8]) -> Result<Chunk<'a>, ChunkError> {
        if message.len() > MAX_MESSAGE {
            return Err(ChunkError::TooLarge);
        }
        let (head, data) = message.split_at_checked(CHUNK_HEADER).ok_or(ChunkError::NotAChunk)?;
        if head[0] != CHUNK_TAG {
            return Err(ChunkError::NotAChunk);
        }
        let word = |at: usize| u32::from_be_bytes([head[at], head[at + 1], head[at + 2], head[at + 3]]);
        Ok(Chunk { share: word(1), file: word(5), offset: word(9), data })
    }

    /// The wire form.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(CHUNK_HEADER + self.data.len());
        out.push(CHUNK_TAG);
        out.extend_from_slice(&self.share.to_be_bytes());
        out.extend_from_slice(&self.file.to_be_bytes());
        out.extend_from_slice(&self.offset.to_be_bytes());
        out.extend_from_slice(self.data);
        out
    }
}

/// Which window the image is shown through.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(tag = "kind", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WindowChoice {
    /// The file's own window (DICOM Window Center/Width, or its values' range).
    #[default]
    Default,
    /// A named preset: lung, soft_tissue, bone, brain.
    Preset {
        /// The preset's wire name.
        name: String,
    },
    /// The consultant's own centre and width (modality units).
    Custom {
        /// Window centre.
        center: f64,
        /// Window width.
        width: f64,
    },
}

/// What the prisoner is shown: the consultant sets it whole each time (idempotent).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct View {
    /// Which stack (a multi-frame file, a series of single-frame files, or one picture).
    pub stack: u32,
    /// Which frame (slice) of the stack.
    pub frame: u32,
    /// The window.
    #[serde(default)]
    pub window: WindowChoice,
    /// Magnification, 1 = the image fits the viewer.
    pub zoom: f32,
    /// The point of the image at the viewer's centre, as a fraction of the image from its centre
    /// (-0.5..=0.5 on each axis; 0, 0 = centred).
    pub pan_x: f32,
    /// As `pan_x`, vertically (positive is down).
    pub pan_y: f32,
    /// A multi-frame stack plays as a loop (cine) from `frame`, at the file's own frame rate.
    #[serde(default)]
    pub playing: bool,
}

impl Default for View {
    fn default() -> Self {
        View { stack: 0, frame: 0, window: WindowChoice::Default, zoom: 1.0, pan_x: 0.0, pan_y: 0.0, playing: false }
    }
}

/// The consultant's control messages.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToKiosk {
    /// A new share: its files' sizes, in the order they will be sent.
    Share {
        /// The share's number (the consultant counts up from 1).
        share: u32,
        /// Each file's size in bytes (as the file is, before any compression for the way).
        sizes: Vec<u64>,
        /// Which files travel zlib-deflated (uncompressed DICOM shrinks: pydicom's CT to 63 %);
        /// each such file is preceded by a [`ToKiosk::Deflated`] giving its length on the way.
        /// Empty: none.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        deflate: Vec<bool>,
    },
    /// The length of a deflated file's stream, sent just before its first chunk (the page
    /// compresses each file while the one before it is on its way, so it cannot say sooner).
    Deflated {
        /// Which share.
        share: u32,
        /// Which file of it (from 0).
        file: u32,
        /// The deflated stream's length in bytes.
        bytes: u64,
    },
    /// The consultant stopped sending this share.
    Cancel {
        /// Which share.
        share: u32,
    },
    /// Show this.
    View(View),
    /// The consultant's pointer, in image fractions (0..=1 from the top left), or hidden.
    Pointer {
        /// Where, or `None` to hide it.
        at: Option<[f32; 2]>,
    },
    /// A distance to measure on the image shown, between two points in image fractions from the
    /// top left, or `None` to take the measurement away.
    Measure {
        /// The two ends.
        line: Option<[[f32; 2]; 2]>,
    },
    /// Drop every image.
    Clear,
}

/// A stack as the consultant's page lists it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackInfo {
    /// Frames (slices) so far.
    pub frames: u32,
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// "dicom", "png" or "jpeg".
    pub kind: String,
    /// The DICOM modality, when given.
    pub modality: Option<String>,
    /// The file's own window centre (modality units).
    pub window_center: f64,
    /// The file's own window width.
    pub window_width: f64,
    /// Which share it came in.
    pub share: u32,
    /// Milliseconds between frames when it plays (the file's Frame Time or Cine Rate, else 100).
    #[serde(default)]
    pub frame_ms: u32,
    /// Millimetres between pixel centres (row to row, column to column), when the file says.
    #[serde(default)]
    pub pixel_spacing: Option<[f64; 2]>,
    /// The first file of the share in it.
    pub first_file: u32,
}

/// The longer side of a [`FromKiosk::Preview`], in pixels.
pub const PREVIEW_SIZE: u32 = 256;

/// A PNG, base64 on the wire. Clinical content: its `Debug` says only how long it is.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct PreviewPng(String);

impl PreviewPng {
    /// Wraps PNG bytes.
    pub fn new(png: &[u8]) -> Self {
        use base64::Engine as _;
        PreviewPng(base64::engine::general_purpose::STANDARD.encode(png))
    }

    /// The base64 text as it came (a page's data URL carries it).
    pub fn from_base64(text: &str) -> Self {
        PreviewPng(text.to_owned())
    }

    /// The PNG bytes (`None` when the text is not base64).
    pub fn bytes(&self) -> Option<Vec<u8>> {
        use base64::Engine as _;
        base64::engine::general_purpose::STANDARD.decode(&self.0).ok()
    }
}

impl std::fmt::Debug for PreviewPng {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PreviewPng({} base64 chars)", self.0.len())
    }
}

/// The kiosk's replies.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FromKiosk {
    /// The share fits the laptop's limits; send the files.
    Accepted {
        /// Which share.
        share: u32,
    },
    /// Bytes received so far (sent every so often, and when a file completes).
    Progress {
        /// Which share.
        share: u32,
        /// Bytes received.
        received: u64,
        /// Bytes announced.
        total: u64,
        /// Files received whole.
        files: u32,
    },
    /// The stacks the laptop holds now (after each file is decoded).
    Stacks {
        /// In order; a view names one by its index.
        stacks: Vec<StackInfo>,
    },
    /// One file could not be shown; the rest of the share goes on.
    FileFailed {
        /// Which share.
        share: u32,
        /// Which file.
        file: u32,
        /// Why, in words for the consultant.
        message: String,
    },
    /// Every file of the share arrived.
    Done {
        /// Which share.
        share: u32,
        /// Files decoded.
        shown: u32,
        /// Files that failed.
        failed: u32,
    },
    /// The share was refused or stopped (limits, a cut or stalled transfer, a garbled chunk).
    /// Images already received stay.
    ShareFailed {
        /// Which share.
        share: u32,
        /// Why, in words for the consultant.
        message: String,
    },
    /// What the prisoner sees now (after a view message, or after the nurse reset the view).
    Shown {
        /// The view as applied (clamped to what exists).
        view: View,
        /// The window actually used, for the consultant's display.
        center: f64,
        /// The window's width.
        width: f64,
        /// True when the nurse reset it or paused it.
        by_nurse: bool,
    },
    /// A small copy of what the prisoner sees (the frame at the window shown, no pointer), sent
    /// after each `shown`, so the consultant points and windows on the picture itself.
    Preview {
        /// Which stack.
        stack: u32,
        /// Which frame.
        frame: u32,
        /// The preview's size in pixels (at most [`PREVIEW_SIZE`] on its longer side).
        width: u32,
        /// Its height.
        height: u32,
        /// The picture, a PNG.
        png: PreviewPng,
    },
    /// The distance the consultant measured, as the laptop shows it (`mm` is `None` when the file
    /// gives no pixel spacing, or the measurement was taken away: `line` is `None`).
    Measured {
        /// The two ends, as applied.
        line: Option<[[f32; 2]; 2]>,
        /// Millimetres, from the file's Pixel Spacing.
        mm: Option<f64>,
        /// What both screens show beside the line.
        label: String,
    },
    /// Every image is gone.
    Cleared,
    /// A message the laptop could not use.
    Error {
        /// What was wrong.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_chunk_round_trips_and_garbage_is_not_a_chunk() {
        let c = Chunk { share: 7, file: 2, offset: 65_536, data: b"DICM" };
        let wire = c.encode();
        assert_eq!(wire.len(), CHUNK_HEADER + 4);
        assert_eq!(Chunk::parse(&wire), Ok(c));
        assert_eq!(Chunk::parse(b"{\"type\":\"clear\"}"), Err(ChunkError::NotAChunk));
        assert_eq!(Chunk::parse(b"C123"), Err(ChunkError::NotAChunk));
        assert_eq!(Chunk::parse(&vec![CHUNK_TAG; MAX_MESSAGE + 1]), Err(ChunkError::TooLarge));
    }

    #[test]
    fn messages_are_tagged_json() {
        let v: ToKiosk = serde_json::from_str(r#"{"type":"view","stack":1,"frame":3,"window":{"kind":"preset","name":"lung"},"zoom":2,"pan_x":0.1,"pan_y":0}"#).expect("view");
        assert_eq!(
            v,
            ToKiosk::View(View {
                stack: 1,
                frame: 3,
                window: WindowChoice::Preset { name: "lung".into() },
                zoom: 2.0,
                pan_x: 0.1,
                pan_y: 0.0,
                playing: false
            })
        );
        let p: ToKiosk = serde_json::from_str(r#"{"type":"pointer","at":null}"#).expect("pointer");
        assert_eq!(p, ToKiosk::Pointer { at: None });
        assert_eq!(serde_json::to_string(&FromKiosk::Cleared).expect("json"), r#"{"type":"cleared"}"#);
    }
}

//! A decoded image in memory: one or more frames of modality values (or RGB), its own window, and
//! the share limits that bound how much a file may ask of the laptop.

use crate::window::Window;

/// Where the image came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Source {
    /// A DICOM Part 10 file.
    Dicom,
    /// A PNG picture.
    Png,
    /// A JPEG picture.
    Jpeg,
}

/// One frame's pixels, row by row.
#[derive(Clone, PartialEq)]
#[non_exhaustive]
pub enum Frame {
    /// Greyscale at full dynamic range: modality values (for CT, Hounsfield units), after the
    /// rescale slope and intercept.
    Grey(Vec<f32>),
    /// Colour, 8 bits a channel, RGB.
    Rgb(Vec<u8>),
}

impl std::fmt::Debug for Frame {
    // Pixel values are clinical content: never print them.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Frame::Grey(v) => write!(f, "Grey({} px)", v.len()),
            Frame::Rgb(v) => write!(f, "Rgb({} px)", v.len() / 3),
        }
    }
}

/// A decoded image (a multi-frame DICOM object has several frames).
#[derive(Debug, Clone)]
pub struct Image {
    /// Columns.
    pub width: u32,
    /// Rows.
    pub height: u32,
    /// The frames, in order.
    pub frames: Vec<Frame>,
    /// Where it came from.
    pub source: Source,
    /// The file's own window (DICOM Window Center/Width, or the values' range when it has none).
    pub default_window: Window,
    /// MONOCHROME1: low values are white, so the display is inverted.
    pub inverted: bool,
    /// The DICOM modality (CT, MR, ...), when given.
    pub modality: Option<String>,
    /// Millimetres between pixel centres (row to row, column to column): DICOM Pixel Spacing, or
    /// Imager Pixel Spacing for a projection radiograph without it.
    pub pixel_spacing: Option<[f64; 2]>,
    /// The time between frames when a multi-frame file plays (DICOM Frame Time, Cine Rate or
    /// Recommended Display Frame Rate), when the file gives one.
    pub frame_time: Option<std::time::Duration>,
    /// Graphics overlay planes (DICOM 60xx), drawn white over grey frames as DCMTK draws them:
    /// for each frame that has any, one bit a pixel.
    pub overlays: Vec<(usize, OverlayMask)>,
}

/// Which pixels of one frame an overlay covers.
#[derive(Clone, PartialEq, Eq)]
pub struct OverlayMask(Vec<u64>);

impl std::fmt::Debug for OverlayMask {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "OverlayMask({} px set)", self.0.iter().map(|w| w.count_ones()).sum::<u32>())
    }
}

impl OverlayMask {
    /// An empty mask for `pixels` pixels.
    pub(crate) fn new(pixels: usize) -> Self {
        OverlayMask(vec![0; pixels.div_ceil(64)])
    }

    pub(crate) fn set(&mut self, index: usize) {
        if let Some(word) = self.0.get_mut(index / 64) {
            *word |= 1 << (index % 64);
        }
    }

    /// A mask from its 64-bit words (pixel `i` is bit `i % 64` of word `i / 64`).
    pub(crate) fn from_words(words: Vec<u64>) -> Self {
        OverlayMask(words)
    }

    pub(crate) fn words(&self) -> &[u64] {
        &self.0
    }

    /// Whether pixel `index` is covered.
    pub fn is_set(&self, index: usize) -> bool {
        self.0.get(index / 64).is_some_and(|w| w >> (index % 64) & 1 == 1)
    }
}

/// How much one shared file may ask of the laptop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Bytes in one file.
    pub max_file_bytes: usize,
    /// Frames in one file.
    pub max_frames: u32,
    /// Pixels in one frame (width x height).
    pub max_frame_pixels: u64,
    /// Pixels across all frames of one file (bounds the memory the decoded file takes).
    pub max_total_pixels: u64,
}

impl Default for Limits {
    /// 64 MiB a file, 1,000 frames, 4096 x 4096 a frame, 64 Mpx a file (256 MiB as f32).
    fn default() -> Self {
        Limits { max_file_bytes: 64 << 20, max_frames: 1000, max_frame_pixels: 4096 * 4096, max_total_pixels: 64 << 20 }
    }
}

impl Limits {
    /// Checks a file's announced geometry before anything is decoded.
    pub(crate) fn check(&self, width: u32, height: u32, frames: u32) -> Result<(), crate::Error> {
        let per_frame = u64::from(width) * u64::from(height);
        if width == 0 || height == 0 || frames == 0 {
            return Err(crate::Error::NoImage);
        }
        if frames > self.max_frames {
            return Err(crate::Error::TooLarge {
                what: "number of frames",
                limit: u64::from(self.max_frames),
                actual: u64::from(frames),
            });
        }
        if per_frame > self.max_frame_pixels {
            return Err(crate::Error::TooLarge { what: "frame", limit: self.max_frame_pixels, actual: per_frame });
        }
        let total = per_frame * u64::from(frames);
        if total > self.max_total_pixels {
            return Err(crate::Error::TooLarge {
                what: "image (all frames)",
                limit: self.max_total_pixels,
                actual: total,
            });
        }
        Ok(())
    }
}

impl Image {
    /// Renders `frame` for display as 8-bit grey (RGB frames are returned as they are, 3 bytes a
    /// pixel): the window maps modality values to 0..=255, inverted for MONOCHROME1, and graphics
    /// overlays are drawn white.
    pub fn render(&self, frame: usize, window: Window) -> Option<Rendered> {
        match self.frames.get(frame)? {
            Frame::Grey(values) => {
                let lut = window.transform();
                let mut pixels: Vec<u8> = values
                    .iter()
                    .map(|&v| {
                        let y = lut.apply(v);
                        if self.inverted {
                            255 - y
                        } else {
                            y
                        }
                    })
                    .collect();
                for (_, mask) in self.overlays.iter().filter(|(f, _)| *f == frame) {
                    for (i, p) in pixels.iter_mut().enumerate() {
                        if mask.is_set(i) {
                            *p = 255;
                        }
                    }
                }
                Some(Rendered::Grey(pixels))
            }
            Frame::Rgb(rgb) => Some(Rendered::Rgb(rgb.clone())),
        }
    }
}

/// Display pixels.
#[derive(Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Rendered {
    /// One byte a pixel.
    Grey(Vec<u8>),
    /// Three bytes a pixel.
    Rgb(Vec<u8>),
}

impl std::fmt::Debug for Rendered {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Rendered::Grey(v) => write!(f, "Grey({} px)", v.len()),
            Rendered::Rgb(v) => write!(f, "Rgb({} px)", v.len() / 3),
        }
    }
}

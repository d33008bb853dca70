//! What can go wrong with a shared image, in words both the consultant and the nurse can act on.

/// Everything decoding can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// Neither DICOM (Part 10, with its "DICM" header), PNG nor JPEG.
    #[error("this file is not a DICOM, PNG or JPEG image")]
    UnknownFormat,
    /// A DICOM file whose header or data set could not be read (truncated, garbled, no meta group).
    #[error("this DICOM file is damaged or incomplete: {0}")]
    BadDicom(String),
    /// A DICOM object that holds no image (a report, a plan, a waveform).
    #[error("this DICOM file holds no image")]
    NoImage,
    /// The pixel data is compressed in a way this laptop cannot decode.
    #[error("this image is compressed as {name} ({uid}), which this laptop cannot decode; send it uncompressed or as JPEG 2000")]
    UnsupportedCompression {
        /// The transfer syntax's name.
        name: String,
        /// Its UID.
        uid: String,
    },
    /// The samples are of a kind this laptop does not show (1-bit segmentations).
    #[error("this image holds {0}, which this laptop cannot show")]
    UnsupportedSamples(String),
    /// The pixel data did not decode (corrupt or cut short).
    #[error("the image data is damaged: {0}")]
    BadPixels(String),
    /// A PNG or JPEG that did not decode.
    #[error("this picture is damaged: {0}")]
    BadPicture(String),
    /// The decoder's helper process stopped on this file: over its memory or time limit, crashed,
    /// could not start, or answered with something that is not an image.
    #[error("this file could not be decoded safely: {0}")]
    Sandbox(String),
    /// Over a share limit.
    #[error("the {what} is too large ({actual}, limit {limit})")]
    TooLarge {
        /// What is measured: file, frames, pixels.
        what: &'static str,
        /// The limit.
        limit: u64,
        /// What the input has.
        actual: u64,
    },
}

//! The bytes between the kiosk and its decode helper process (crate sc-sandbox): a request (the
//! limits and one file) and a reply (the image or the refusal). The reply comes from a process that
//! has just parsed hostile input, so it is parsed here as hostile too: every length and count is
//! checked against the limits and the image's own geometry before an [`Image`] exists.

use crate::image::{Frame, Image, Limits, OverlayMask, Source};
use crate::window::{Function, Window};
use crate::Error;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// The request's first bytes: a helper from another build refuses rather than misreads.
const REQUEST_MAGIC: &[u8; 8] = b"SCDEC\x00\x00\x01";
const REQUEST_HEADER: usize = REQUEST_MAGIC.len() + 4 * 8;

/// The request for one file: the limits, then the file's bytes.
pub fn encode_request(limits: &Limits, file: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(REQUEST_HEADER + file.len());
    out.extend_from_slice(REQUEST_MAGIC);
    for n in
        [limits.max_file_bytes as u64, u64::from(limits.max_frames), limits.max_frame_pixels, limits.max_total_pixels]
    {
        out.extend_from_slice(&n.to_le_bytes());
    }
    out.extend_from_slice(file);
    out
}

/// The limits and the file of a request made by [`encode_request`].
pub fn decode_request(request: &[u8]) -> Result<(Limits, &[u8]), Error> {
    let malformed = || Error::Sandbox("the decoder was sent a malformed request".into());
    let (header, file) = request.split_at_checked(REQUEST_HEADER).ok_or_else(malformed)?;
    let (magic, numbers) = header.split_at(REQUEST_MAGIC.len());
    if magic != REQUEST_MAGIC {
        return Err(malformed());
    }
    let mut n = numbers.chunks_exact(8).map(|c| {
        let mut word = [0u8; 8];
        word.copy_from_slice(c);
        u64::from_le_bytes(word)
    });
    let mut next = || n.next().ok_or_else(malformed);
    let limits = Limits {
        max_file_bytes: usize::try_from(next()?).map_err(|_| malformed())?,
        max_frames: u32::try_from(next()?).map_err(|_| malformed())?,
        max_frame_pixels: next()?,
        max_total_pixels: next()?,
    };
    Ok((limits, file))
}

#[derive(Serialize, Deserialize)]
enum Reply {
    Image(WireImage),
    Refused(WireError),
}

#[derive(Serialize, Deserialize)]
struct WireImage {
    width: u32,
    height: u32,
    grey: Vec<Vec<f32>>,
    rgb: Vec<Vec<u8>>,
    source: u8,
    window: (f64, f64, u8),
    inverted: bool,
    modality: Option<String>,
    pixel_spacing: Option<[f64; 2]>,
    frame_time_us: Option<u64>,
    overlays: Vec<(u32, Vec<u64>)>,
}

#[derive(Serialize, Deserialize)]
enum WireError {
    UnknownFormat,
    BadDicom(String),
    NoImage,
    UnsupportedCompression { name: String, uid: String },
    UnsupportedSamples(String),
    BadPixels(String),
    BadPicture(String),
    TooLarge { what: String, limit: u64, actual: u64 },
    Sandbox(String),
}

/// What [`Error::TooLarge`] may name (its `what` is static text, so a reply is mapped back to it).
const MEASURES: [&str; 5] = ["file", "number of frames", "frame", "image (all frames)", "inflated data set"];

/// The reply for a decode's outcome.
pub fn encode_reply(outcome: &Result<Image, Error>) -> Vec<u8> {
    let reply = match outcome {
        Ok(image) => Reply::Image(WireImage::from(image)),
        Err(e) => Reply::Refused(WireError::from(e)),
    };
    // Serialising plain owned data into a Vec has no failure path but running out of memory,
    // which aborts anyway; an empty reply would still be refused by `decode_reply`.
    postcard::to_stdvec(&reply).unwrap_or_default()
}

/// The image (or the decoder's refusal) in a reply, checked against `limits`.
pub fn decode_reply(reply: &[u8], limits: &Limits) -> Result<Image, Error> {
    let malformed = |why: &str| Error::Sandbox(format!("the decoder returned a malformed image ({why})"));
    let reply: Reply = postcard::from_bytes(reply).map_err(|_| malformed("unreadable"))?;
    let w = match reply {
        Reply::Refused(e) => return Err(e.into()),
        Reply::Image(w) => w,
    };
    let frame_count = w.grey.len().max(w.rgb.len());
    if !w.grey.is_empty() && !w.rgb.is_empty() {
        return Err(malformed("grey and colour frames mixed"));
    }
    limits.check(w.width, w.height, u32::try_from(frame_count).unwrap_or(u32::MAX))?;
    // `check` bounded width x height, so this fits in usize on every target the kiosk runs on.
    let pixels = w.width as usize * w.height as usize;
    if w.grey.iter().any(|f| f.len() != pixels) || w.rgb.iter().any(|f| f.len() != pixels * 3) {
        return Err(malformed("a frame's length is not its geometry's"));
    }
    let source = match w.source {
        0 => Source::Dicom,
        1 => Source::Png,
        2 => Source::Jpeg,
        _ => return Err(malformed("unknown source")),
    };
    let (center, width, function) = w.window;
    let function = match function {
        0 => Function::Linear,
        1 => Function::LinearExact,
        2 => Function::Sigmoid,
        _ => return Err(malformed("unknown window function")),
    };
    if !center.is_finite() || !width.is_finite() || width < 1.0 {
        return Err(malformed("window out of range"));
    }
    if w.pixel_spacing.is_some_and(|s| s.iter().any(|v| !v.is_finite() || *v <= 0.0)) {
        return Err(malformed("pixel spacing out of range"));
    }
    let words = pixels.div_ceil(64);
    let mut overlays = Vec::with_capacity(w.overlays.len().min(frame_count));
    for (frame, mask) in w.overlays {
        let frame = frame as usize;
        if frame >= frame_count || mask.len() != words {
            return Err(malformed("an overlay that fits no frame"));
        }
        overlays.push((frame, OverlayMask::from_words(mask)));
    }
    let frames = if w.rgb.is_empty() {
        w.grey.into_iter().map(Frame::Grey).collect()
    } else {
        w.rgb.into_iter().map(Frame::Rgb).collect()
    };
    Ok(Image {
        width: w.width,
        height: w.height,
        frames,
        source,
        default_window: Window { center, width, function },
        inverted: w.inverted,
        modality: w.modality,
        pixel_spacing: w.pixel_spacing,
        frame_time: w.frame_time_us.map(Duration::from_micros),
        overlays,
    })
}

impl From<&Image> for WireImage {
    fn from(i: &Image) -> Self {
        let (mut grey, mut rgb) = (Vec::new(), Vec::new());
        for f in &i.frames {
            match f {
                Frame::Grey(v) => grey.push(v.clone()),
                Frame::Rgb(v) => rgb.push(v.clone()),
            }
        }
        WireImage {
            width: i.width,
            height: i.height,
            grey,
            rgb,
            source: match i.source {
                Source::Dicom => 0,
                Source::Png => 1,
                Source::Jpeg => 2,
            },
            window: (
                i.default_window.center,
                i.default_window.width,
                match i.default_window.function {
                    Function::Linear => 0,
                    Function::LinearExact => 1,
                    Function::Sigmoid => 2,
                },
            ),
            inverted: i.inverted,
            modality: i.modality.clone(),
            pixel_spacing: i.pixel_spacing,
            frame_time_us: i.frame_time.map(|t| u64::try_from(t.as_micros()).unwrap_or(u64::MAX)),
            overlays: i.overlays.iter().map(|(f, m)| (*f as u32, m.words().to_vec())).collect(),
        }
    }
}

impl From<&Error> for WireError {
    fn from(e: &Error) -> Self {
        match e {
            Error::UnknownFormat => WireError::UnknownFormat,
            Error::BadDicom(s) => WireError::BadDicom(s.clone()),
            Error::NoImage => WireError::NoImage,
            Error::UnsupportedCompression { name, uid } => {
                WireError::UnsupportedCompression { name: name.clone(), uid: uid.clone() }
            }
            Error::UnsupportedSamples(s) => WireError::UnsupportedSamples(s.clone()),
            Error::BadPixels(s) => WireError::BadPixels(s.clone()),
            Error::BadPicture(s) => WireError::BadPicture(s.clone()),
            Error::TooLarge { what, limit, actual } => {
                WireError::TooLarge { what: (*what).to_owned(), limit: *limit, actual: *actual }
            }
            Error::Sandbox(s) => WireError::Sandbox(s.clone()),
        }
    }
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        match e {
            WireError::UnknownFormat => Error::UnknownFormat,
            WireError::BadDicom(s) => Error::BadDicom(s),
            WireError::NoImage => Error::NoImage,
            WireError::UnsupportedCompression { name, uid } => Error::UnsupportedCompression { name, uid },
            WireError::UnsupportedSamples(s) => Error::UnsupportedSamples(s),
            WireError::BadPixels(s) => Error::BadPixels(s),
            WireError::BadPicture(s) => Error::BadPicture(s),
            WireError::TooLarge { what, limit, actual } => Error::TooLarge {
                what: MEASURES.iter().find(|m| **m == what).copied().unwrap_or("image"),
                limit,
                actual,
            },
            WireError::Sandbox(s) => Error::Sandbox(s),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn image() -> Image {
        let mut mask = OverlayMask::new(6);
        mask.set(4);
        Image {
            width: 3,
            height: 2,
            frames: vec![Frame::Grey(vec![0.0, 1.0, 2.0, 3.0, 4.0, -1024.0]), Frame::Grey(vec![5.0; 6])],
            source: Source::Dicom,
            default_window: Window { center: 40.0, width: 400.0, function: Function::Sigmoid },
            inverted: true,
            modality: Some("CT".into()),
            pixel_spacing: Some([0.5, 0.7]),
            frame_time: Some(Duration::from_millis(33)),
            overlays: vec![(1, mask)],
        }
    }

    #[test]
    fn a_request_and_an_image_come_through_unchanged() {
        let limits = Limits { max_file_bytes: 9, max_frames: 8, max_frame_pixels: 7, max_total_pixels: 6 };
        let request = encode_request(&limits, b"file");
        assert_eq!(decode_request(&request).expect("well formed"), (limits, &b"file"[..]));
        let back = decode_reply(&encode_reply(&Ok(image())), &Limits::default()).expect("well formed");
        let i = image();
        assert_eq!((back.width, back.height, &back.frames, back.source), (i.width, i.height, &i.frames, i.source));
        assert_eq!((back.default_window, back.inverted, &back.modality), (i.default_window, i.inverted, &i.modality));
        assert_eq!((back.pixel_spacing, back.frame_time), (i.pixel_spacing, i.frame_time));
        assert_eq!(back.overlays, i.overlays);
    }

    #[test]
    fn a_refusal_comes_back_as_the_same_error() {
        let e = Error::TooLarge { what: "frame", limit: 1, actual: 2 };
        let back = decode_reply(&encode_reply(&Err(e)), &Limits::default()).expect_err("a refusal");
        assert!(matches!(back, Error::TooLarge { what: "frame", limit: 1, actual: 2 }), "{back:?}");
    }

    #[test]
    fn a_reply_that_lies_about_its_image_is_refused() {
        let mut short = image();
        short.frames[1] = Frame::Grey(vec![0.0; 5]);
        let mut stray = image();
        stray.overlays[0].0 = 2;
        let mut big = image();
        big.width = 3000;
        big.height = 3000;
        let small = Limits { max_total_pixels: 11, ..Limits::default() };
        for (what, image, limits) in [
            ("short frame", short, Limits::default()),
            ("stray overlay", stray, Limits::default()),
            ("over the limit", image(), small),
        ] {
            let got = decode_reply(&encode_reply(&Ok(image)), &limits);
            assert!(matches!(got, Err(Error::Sandbox(_) | Error::TooLarge { .. })), "{what}: {got:?}");
        }
        let got = decode_reply(&encode_reply(&Ok(big)), &Limits::default());
        assert!(got.is_err(), "a frame's length that does not match a grown geometry");
        for garbage in [&b""[..], b"\x00", b"\xff\xff\xff\xff\xff\xff\xff\xff\xff\xff"] {
            assert!(matches!(decode_reply(garbage, &Limits::default()), Err(Error::Sandbox(_))));
        }
        assert!(decode_request(b"SCDEC").is_err());
    }
}

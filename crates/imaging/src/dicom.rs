//! DICOM Part 10 files: parse with dicom-object, check the geometry against the limits, decode the
//! pixel data with dicom-pixeldata (native, RLE, JPEG, JPEG 2000), and keep modality values.

use crate::image::{Frame, Image, Limits, Source};
use crate::window::{Function, Window};
use crate::Error;
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex as _;
use dicom_object::InMemDicomObject;
use dicom_pixeldata::PixelDecoder as _;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

fn uint(obj: &InMemDicomObject, tag: dicom_object::Tag) -> Option<u32> {
    obj.element_opt(tag).ok().flatten()?.to_int::<u32>().ok()
}

pub(crate) fn decode(bytes: &[u8], limits: &Limits) -> Result<Image, Error> {
    // dicom-parser zeroes a value's declared length before reading it: lengths are checked first.
    crate::lengths::check(bytes, limits.max_file_bytes)?;
    // The caller checked the 128-byte preamble and "DICM"; dicom-object reads from the magic code.
    let file = dicom_object::from_reader(&bytes[128..]).map_err(|e| Error::BadDicom(e.to_string()))?;
    let ts_uid = file.meta().transfer_syntax().trim_end_matches('\0').to_owned();
    if file.element_opt(tags::PIXEL_DATA).ok().flatten().is_none() {
        return Err(Error::NoImage);
    }
    let (width, height) = (uint(&file, tags::COLUMNS).unwrap_or(0), uint(&file, tags::ROWS).unwrap_or(0));
    let frames = file
        .element_opt(tags::NUMBER_OF_FRAMES)
        .ok()
        .flatten()
        .and_then(|e| e.to_str().ok().and_then(|s| s.trim().parse::<u32>().ok()))
        .unwrap_or(1);
    limits.check(width, height, frames)?;
    let (ts_name, big_endian) = match TransferSyntaxRegistry.get(&ts_uid) {
        Some(ts) if ts.can_decode_all() => (ts.name().to_owned(), ts.endianness() == dicom_encoding::Endianness::Big),
        Some(ts) => return Err(Error::UnsupportedCompression { name: ts.name().to_owned(), uid: ts_uid }),
        None => return Err(Error::UnsupportedCompression { name: "an unknown transfer syntax".into(), uid: ts_uid }),
    };
    let modality =
        file.element_opt(tags::MODALITY).ok().flatten().and_then(|e| e.to_str().ok().map(|s| s.trim().to_owned()));

    let decoded = file.decode_pixel_data().map_err(|e| Error::BadPixels(format!("{ts_name}: {e}")))?;
    let pi = decoded.photometric_interpretation().as_str().to_owned();
    let grey = decoded.samples_per_pixel() == 1 && pi.starts_with("MONOCHROME");
    let n = decoded.number_of_frames();
    limits.check(decoded.columns(), decoded.rows(), n)?;
    let mut out = Vec::with_capacity(n as usize);
    let (mut min, mut max) = (f32::INFINITY, f32::NEG_INFINITY);
    for i in 0..n {
        if grey {
            let values =
                grey_frame(&decoded, i, big_endian).map_err(|e| Error::BadPixels(format!("{ts_name}: {e}")))?;
            for &v in &values {
                min = min.min(v);
                max = max.max(v);
            }
            out.push(Frame::Grey(values));
        } else {
            let img = decoded.to_dynamic_image(i).map_err(|e| Error::BadPixels(format!("{ts_name}: {e}")))?;
            out.push(Frame::Rgb(img.to_rgb8().into_raw()));
        }
    }
    let expected = decoded.columns() as usize * decoded.rows() as usize;
    for f in &out {
        let len = match f {
            Frame::Grey(v) => v.len(),
            Frame::Rgb(v) => v.len() / 3,
        };
        if len != expected {
            return Err(Error::BadPixels(format!("a frame has {len} pixels, not {expected}")));
        }
    }
    let own = decoded.window().ok().flatten().and_then(|w| w.first().copied());
    let function = match decoded.voi_lut_function().ok().flatten().and_then(|f| f.first().copied()) {
        Some(dicom_pixeldata::VoiLutFunction::LinearExact) => Function::LinearExact,
        Some(dicom_pixeldata::VoiLutFunction::Sigmoid) => Function::Sigmoid,
        _ => Function::Linear,
    };
    let default_window = match own {
        Some(w) if w.width >= 1.0 => Window { center: w.center, width: w.width, function },
        _ if min <= max => Window::covering(f64::from(min), f64::from(max)),
        _ => Window::linear(127.5, 256.0),
    };
    Ok(Image {
        width: decoded.columns(),
        height: decoded.rows(),
        frames: out,
        source: Source::Dicom,
        default_window,
        inverted: grey && pi == "MONOCHROME1",
        modality,
    })
}

/// A grey frame's modality values. dicom-pixeldata converts 8- and 16-bit samples; 32-bit ones
/// (RT dose grids, some CT) are read here from the decoded bytes and rescaled. From a big-endian
/// file those bytes come 16-bit-word swapped (dicom-rs swaps OW words), so the high word is first.
fn grey_frame(
    decoded: &dicom_pixeldata::DecodedPixelData<'_>,
    frame: u32,
    big_endian: bool,
) -> Result<Vec<f32>, String> {
    if decoded.bits_allocated() != 32 {
        return decoded.to_vec_frame(frame).map_err(|e| e.to_string());
    }
    let bytes = decoded.frame_data(frame).map_err(|e| e.to_string())?;
    let rescales = decoded.rescale().map_err(|e| e.to_string())?;
    let rescale = rescales
        .get(frame as usize)
        .or_else(|| rescales.first())
        .copied()
        .unwrap_or(dicom_pixeldata::Rescale::new(1.0, 0.0));
    let signed = matches!(decoded.pixel_representation(), dicom_pixeldata::PixelRepresentation::Signed);
    Ok(bytes
        .chunks_exact(4)
        .map(|b| {
            let word = [b[0], b[1], b[2], b[3]];
            let stored = match (signed, big_endian) {
                (true, false) => f64::from(i32::from_le_bytes(word)),
                (true, true) => f64::from(i32::from_be_bytes([b[1], b[0], b[3], b[2]])),
                (false, false) => f64::from(u32::from_le_bytes(word)),
                (false, true) => f64::from(u32::from_be_bytes([b[1], b[0], b[3], b[2]])),
            };
            rescale.apply(stored) as f32
        })
        .collect())
}

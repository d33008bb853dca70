//! DICOM Part 10 files: parse with dicom-object, check the geometry against the limits, decode the
//! pixel data with dicom-pixeldata (native, RLE, JPEG, JPEG 2000), and keep modality values.

use crate::image::{Frame, Image, Limits, OverlayMask, Source};
use crate::window::{Function, Window};
use crate::Error;
use dicom_dictionary_std::tags;
use dicom_encoding::transfer_syntax::TransferSyntaxIndex as _;
use dicom_object::{InMemDicomObject, Tag};
use dicom_pixeldata::PixelDecoder as _;
use dicom_transfer_syntax_registry::TransferSyntaxRegistry;

fn uint(obj: &InMemDicomObject, tag: dicom_object::Tag) -> Option<u32> {
    obj.element_opt(tag).ok().flatten()?.to_int::<u32>().ok()
}

pub(crate) fn decode(bytes: &[u8], limits: &Limits) -> Result<Image, Error> {
    // dicom-parser zeroes a value's declared length before reading it: lengths are checked first.
    crate::lengths::check(bytes, limits.max_file_bytes)?;
    // The caller checked the 128-byte preamble and "DICM"; dicom-object reads from the magic code.
    let mut file = dicom_object::from_reader(&bytes[128..]).map_err(|e| Error::BadDicom(e.to_string()))?;
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
        Some(ts) if ts.can_decode_all() => {
            if ts.is_codec_free() {
                expand_native_ybr_422(&mut file, width, height, frames)?;
            }
            (ts.name().to_owned(), ts.endianness() == dicom_encoding::Endianness::Big)
        }
        Some(ts) => return Err(Error::UnsupportedCompression { name: ts.name().to_owned(), uid: ts_uid }),
        None => return Err(Error::UnsupportedCompression { name: "an unknown transfer syntax".into(), uid: ts_uid }),
    };
    // Decoders dicom-rs has for the transfer syntax but not for these samples: named here, not
    // left to fail as "damaged" (the files are fine).
    let (allocated, stored) =
        (uint(&file, tags::BITS_ALLOCATED).unwrap_or(0), uint(&file, tags::BITS_STORED).unwrap_or(0));
    let unsupported = match ts_uid.as_str() {
        // jpeg-decoder reads 8-bit JPEG only; 12-bit (process 4) has no decoder in Rust.
        "1.2.840.10008.1.2.4.51" if stored > 8 => Some(format!("12-bit JPEG ({ts_name})")),
        // dicom-rs's RLE decoder stops at 16-bit samples.
        "1.2.840.10008.1.2.5" if allocated > 16 => Some(format!("{ts_name} with {allocated}-bit samples")),
        _ => None,
    };
    if let Some(name) = unsupported {
        return Err(Error::UnsupportedCompression { name, uid: ts_uid });
    }
    if allocated == 1 {
        return Err(Error::UnsupportedSamples("1-bit samples (a segmentation, not a picture)".into()));
    }
    let modality =
        file.element_opt(tags::MODALITY).ok().flatten().and_then(|e| e.to_str().ok().map(|s| s.trim().to_owned()));

    let decoded = file.decode_pixel_data().map_err(|e| Error::BadPixels(format!("{ts_name}: {e}")))?;
    let pi = decoded.photometric_interpretation().as_str().to_owned();
    let grey = decoded.samples_per_pixel() == 1 && pi.starts_with("MONOCHROME");
    // dicom-pixeldata 0.10 converts YBR_FULL with the wrong sign on blue's share of green (G =
    // Y + 0.344 (Cb - 128) - ...): those frames are converted here, by the standard's formula. (The
    // `yuv` crate's 13-bit fixed point was up to 0.9 of a level off it, and 2 from DCMTK.)
    let ybr = decoded.samples_per_pixel() == 3 && decoded.bits_allocated() == 8 && pi.starts_with("YBR_FULL");
    let palette = if decoded.samples_per_pixel() == 1 && pi == "PALETTE COLOR" {
        let signed = matches!(decoded.pixel_representation(), dicom_pixeldata::PixelRepresentation::Signed);
        Some(crate::palette::Palette::read(&file, signed)?)
    } else {
        None
    };
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
        } else if ybr {
            let rgb = ybr_full_to_rgb(&decoded, i).map_err(|e| Error::BadPixels(format!("{ts_name}: {e}")))?;
            out.push(Frame::Rgb(rgb));
        } else if let Some(palette) = &palette {
            let values = stored_values(&decoded, i).map_err(|e| Error::BadPixels(format!("{ts_name}: {e}")))?;
            out.push(Frame::Rgb(palette.apply(values.into_iter())));
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
    let overlays = if grey { overlays(&file, &decoded, limits)? } else { Vec::new() };
    Ok(Image {
        width: decoded.columns(),
        height: decoded.rows(),
        frames: out,
        source: Source::Dicom,
        default_window,
        inverted: grey && pi == "MONOCHROME1",
        modality,
        overlays,
        frame_time: frame_time(&file),
        pixel_spacing: pixel_spacing(&file),
    })
}

/// Pixel Spacing (0028,0030), else Imager Pixel Spacing (0018,1164): two positive millimetre
/// figures, row spacing first. Anything else is treated as absent: a wrong figure would mislead.
fn pixel_spacing(file: &InMemDicomObject) -> Option<[f64; 2]> {
    [tags::PIXEL_SPACING, tags::IMAGER_PIXEL_SPACING].into_iter().find_map(|tag| {
        let values = file.element_opt(tag).ok().flatten()?.to_multi_float64().ok()?;
        match values[..] {
            [row, column] if [row, column].iter().all(|v| v.is_finite() && *v > 0.0 && *v < 1000.0) => {
                Some([row, column])
            }
            _ => None,
        }
    })
}

/// The file's own playback rate: Frame Time (ms), else Cine Rate or Recommended Display Frame
/// Rate (frames a second). Values outside 1 ms..=10 s are ignored as damaged.
fn frame_time(file: &InMemDicomObject) -> Option<std::time::Duration> {
    let number = |tag| {
        file.element_opt(tag).ok().flatten().and_then(|e| e.to_str().ok().and_then(|s| s.trim().parse::<f64>().ok()))
    };
    let ms = number(tags::FRAME_TIME)
        .or_else(|| number(tags::CINE_RATE).map(|fps| 1000.0 / fps))
        .or_else(|| number(tags::RECOMMENDED_DISPLAY_FRAME_RATE).map(|fps| 1000.0 / fps))?;
    (ms.is_finite() && (1.0..=10_000.0).contains(&ms)).then(|| std::time::Duration::from_secs_f64(ms / 1000.0))
}

/// The graphics overlay planes (60xx) over each frame, in image coordinates. Region-of-interest
/// planes mark an area for software rather than draw on it, and are left out. Each plane's
/// geometry is checked against the limits first: dicom-pixeldata unpacks a plane to a byte a bit.
fn overlays(
    file: &dicom_object::DefaultDicomObject,
    decoded: &dicom_pixeldata::DecodedPixelData<'_>,
    limits: &Limits,
) -> Result<Vec<(usize, OverlayMask)>, Error> {
    for group in (0x6000u16..=0x601E).step_by(2) {
        let (rows, columns) = (uint(file, Tag(group, 0x0010)), uint(file, Tag(group, 0x0011)));
        if let (Some(rows), Some(columns)) = (rows, columns) {
            let frames = file
                .element_opt(Tag(group, 0x0015))
                .ok()
                .flatten()
                .and_then(|e| e.to_str().ok().and_then(|s| s.trim().parse::<u32>().ok()))
                .unwrap_or(1);
            limits
                .check(columns, rows, frames)
                .map_err(|e| Error::BadPixels(format!("overlay plane {group:04X}: {e}")))?;
        }
    }
    let planes = file.decode_overlays().map_err(|e| Error::BadPixels(format!("overlay: {e}")))?;
    let (width, height) = (decoded.columns() as i64, decoded.rows() as i64);
    let mut masks: Vec<(usize, OverlayMask)> = Vec::new();
    for plane in planes.iter().filter(|p| p.overlay_type() == dicom_pixeldata::OverlayType::Graphics) {
        let [origin_row, origin_col] = plane.origin().map(|v| i64::from(v) - 1);
        for frame in 0..decoded.number_of_frames() {
            let Some(overlay_frame) = plane.frame_for_image_frame(frame) else { continue };
            let at = match masks.iter().position(|(f, _)| *f == frame as usize) {
                Some(at) => at,
                None => {
                    masks.push((frame as usize, OverlayMask::new((width * height) as usize)));
                    masks.len() - 1
                }
            };
            for r in 0..u32::from(plane.rows()) {
                for c in 0..u32::from(plane.columns()) {
                    let (y, x) = (origin_row + i64::from(r), origin_col + i64::from(c));
                    if (0..height).contains(&y) && (0..width).contains(&x) && plane.is_set(overlay_frame, r, c) {
                        masks[at].1.set((y * width + x) as usize);
                    }
                }
            }
        }
    }
    Ok(masks)
}

/// Uncompressed YBR_FULL_422 (PS3.3 C.7.6.3.1.2) holds two luma samples and one chroma pair per
/// two pixels (Y Y Cb Cr). dicom-pixeldata expects three samples a pixel, and refused such a file
/// ("frame out of range"): each pair's chroma is given to both its pixels and the file relabelled
/// YBR_FULL, which dicom-pixeldata converts to RGB as it does decompressed 4:2:2.
fn expand_native_ybr_422(
    file: &mut dicom_object::DefaultDicomObject,
    width: u32,
    height: u32,
    frames: u32,
) -> Result<(), Error> {
    let pi = file.element_opt(tags::PHOTOMETRIC_INTERPRETATION).ok().flatten().and_then(|e| e.to_str().ok());
    if pi.as_deref().map(str::trim) != Some("YBR_FULL_422") {
        return Ok(());
    }
    if uint(file, tags::BITS_ALLOCATED) != Some(8)
        || uint(file, tags::SAMPLES_PER_PIXEL) != Some(3)
        || !width.is_multiple_of(2)
    {
        return Err(Error::BadPixels("YBR_FULL_422 other than 8 bits, 3 samples and an even width".into()));
    }
    let raw = file
        .element(tags::PIXEL_DATA)
        .map_err(|e| Error::BadPixels(e.to_string()))?
        .to_bytes()
        .map_err(|e| Error::BadPixels(e.to_string()))?;
    let pixels = width as usize * height as usize * frames as usize;
    let packed = raw.get(..pixels * 2).ok_or_else(|| {
        Error::BadPixels(format!("YBR_FULL_422: {} bytes of pixel data for {pixels} pixels", raw.len()))
    })?;
    let mut full = Vec::with_capacity(pixels * 3);
    for quad in packed.chunks_exact(4) {
        let [y0, y1, cb, cr] = [quad[0], quad[1], quad[2], quad[3]];
        full.extend_from_slice(&[y0, cb, cr, y1, cb, cr]);
    }
    file.put(dicom_object::mem::InMemElement::new(
        tags::PIXEL_DATA,
        dicom_core::VR::OB,
        dicom_core::PrimitiveValue::from(full),
    ));
    file.put(dicom_object::mem::InMemElement::new(
        tags::PHOTOMETRIC_INTERPRETATION,
        dicom_core::VR::CS,
        dicom_core::PrimitiveValue::from("YBR_FULL"),
    ));
    file.put(dicom_object::mem::InMemElement::new(
        tags::PLANAR_CONFIGURATION,
        dicom_core::VR::US,
        dicom_core::PrimitiveValue::from(0_u16),
    ));
    Ok(())
}

/// An 8-bit YBR_FULL frame (full range, BT.601: PS3.3 C.7.6.3.1.2) as RGB, rounded.
fn ybr_full_to_rgb(decoded: &dicom_pixeldata::DecodedPixelData<'_>, frame: u32) -> Result<Vec<u8>, String> {
    let data = decoded.frame_data(frame).map_err(|e| e.to_string())?;
    let (width, height) = (decoded.columns(), decoded.rows());
    let n = width as usize * height as usize;
    if data.len() < n * 3 {
        return Err(format!("a YBR frame has {} bytes for {n} pixels", data.len()));
    }
    let planes: [Vec<u8>; 3] = match decoded.planar_configuration() {
        // Y Cb Cr, Y Cb Cr, ...
        dicom_pixeldata::PlanarConfiguration::Standard => {
            [0, 1, 2].map(|c| data[..n * 3].iter().skip(c).step_by(3).copied().collect())
        }
        // All Y, then all Cb, then all Cr.
        dicom_pixeldata::PlanarConfiguration::PixelFirst => [0, 1, 2].map(|c| data[c * n..(c + 1) * n].to_vec()),
    };
    let level = |v: f32| v.round().clamp(0.0, 255.0) as u8;
    let mut rgb = Vec::with_capacity(n * 3);
    for ((&y, &cb), &cr) in planes[0].iter().zip(&planes[1]).zip(&planes[2]) {
        let (y, cb, cr) = (f32::from(y), f32::from(cb) - 128.0, f32::from(cr) - 128.0);
        rgb.extend([level(y + 1.402 * cr), level(y - 0.344_136 * cb - 0.714_136 * cr), level(y + 1.772 * cb)]);
    }
    Ok(rgb)
}

/// A frame's stored values, as they are in the file (no rescale): what a palette indexes.
fn stored_values(decoded: &dicom_pixeldata::DecodedPixelData<'_>, frame: u32) -> Result<Vec<i64>, String> {
    let bytes = decoded.frame_data(frame).map_err(|e| e.to_string())?;
    let stored = u32::from(decoded.bits_stored().clamp(1, 16));
    let mask = (1u32 << stored) - 1;
    let signed = matches!(decoded.pixel_representation(), dicom_pixeldata::PixelRepresentation::Signed);
    let value = |raw: u32| {
        let v = raw & mask;
        // Two's complement within the stored bits.
        if signed && v >> (stored - 1) == 1 {
            i64::from(v) - (1i64 << stored)
        } else {
            i64::from(v)
        }
    };
    match decoded.bits_allocated() {
        8 => Ok(bytes.iter().map(|&b| value(u32::from(b))).collect()),
        16 => Ok(bytes.chunks_exact(2).map(|w| value(u32::from(u16::from_le_bytes([w[0], w[1]])))).collect()),
        other => Err(format!("{other}-bit palette indices (8 or 16 are allowed)")),
    }
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

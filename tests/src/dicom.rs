//! Synthetic CT for the share tests and figures: every slice known and visibly different (a bone
//! disk that moves round a soft-tissue body in air), written as real DICOM Part 10 files.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};

/// Hounsfield units of slice `k` (of `of`) at pixel (`x`, `y`) of a `size` x `size` image.
pub fn hu(size: u32, k: u32, of: u32, x: u32, y: u32) -> i16 {
    let (c, r) = (f64::from(size) / 2.0, f64::from(size) * 0.42);
    let (dx, dy) = (f64::from(x) - c, f64::from(y) - c);
    let angle = std::f64::consts::TAU * f64::from(k) / f64::from(of.max(1));
    let (bx, by) = (c + r * 0.55 * angle.cos(), c + r * 0.55 * angle.sin());
    let bone = (f64::from(x) - bx).hypot(f64::from(y) - by) < f64::from(size) * 0.09;
    if bone {
        700
    } else if dx.hypot(dy) < r {
        40
    } else {
        -1000
    }
}

/// One CT file: `frames` slices of `size` x `size` starting at slice `first` of `of`
/// (one frame: a single-slice file of a series; more: a multi-frame file). Window L 40 W 400.
pub fn ct(size: u32, first: u32, frames: u32, of: u32) -> Vec<u8> {
    let mut pixels = Vec::with_capacity((size * size * frames * 2) as usize);
    for k in first..first + frames {
        for y in 0..size {
            for x in 0..size {
                pixels.extend_from_slice(&(hu(size, k, of, x, y) + 1024).to_le_bytes());
            }
        }
    }
    let instance = format!("2.25.{}{}", 4_000_000 + first, size);
    let mut elements = vec![
        DataElement::new(tags::SOP_CLASS_UID, VR::UI, PrimitiveValue::from(uids::CT_IMAGE_STORAGE)),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from(instance.as_str())),
        DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("CT")),
        DataElement::new(tags::INSTANCE_NUMBER, VR::IS, PrimitiveValue::from((first + 1).to_string())),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1_u16)),
        DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, PrimitiveValue::from("MONOCHROME2")),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(size as u16)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(size as u16)),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16_u16)),
        DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(16_u16)),
        DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(15_u16)),
        DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(1_u16)),
        DataElement::new(tags::WINDOW_CENTER, VR::DS, PrimitiveValue::from("40")),
        DataElement::new(tags::WINDOW_WIDTH, VR::DS, PrimitiveValue::from("400")),
        DataElement::new(tags::RESCALE_SLOPE, VR::DS, PrimitiveValue::from("1")),
        DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, PrimitiveValue::from("-1024")),
    ];
    if frames > 1 {
        elements.push(DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, PrimitiveValue::from(frames.to_string())));
    }
    elements.push(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(pixels)));
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(uids::CT_IMAGE_STORAGE)
        .media_storage_sop_instance_uid(instance.as_str())
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN);
    let file = InMemDicomObject::from_element_iter(elements).with_meta(meta).expect("a well-formed meta group");
    let mut out = Vec::new();
    file.write_all(&mut out).expect("writing to memory");
    out
}

/// Writes a series of `slices` single-slice files (`slice001.dcm`, ...) into `dir`.
pub fn write_series(dir: &std::path::Path, size: u32, slices: u32) -> Vec<std::path::PathBuf> {
    (0..slices)
        .map(|k| {
            let path = dir.join(format!("slice{:03}.dcm", k + 1));
            std::fs::write(&path, ct(size, k, 1, slices)).expect("write a slice");
            path
        })
        .collect()
}

/// The palette tables of the synthetic ultrasound: grey tissue in entries 0..128, colour Doppler
/// (red towards, blue away) in 128..256, as 16-bit entries.
fn doppler_palette() -> [Vec<u16>; 3] {
    let mut lut = [Vec::new(), Vec::new(), Vec::new()];
    for i in 0..256u32 {
        let (r, g, b) = if i < 128 {
            (i * 2, i * 2, i * 2)
        } else if i < 192 {
            (255, (i - 128) * 3, 0)
        } else {
            (0, (i - 192) * 2, 255)
        };
        for (c, v) in lut.iter_mut().zip([r, g, b]) {
            // 8-bit levels spread over 16 bits the way writers do (v * 257), plus a low byte
            // that a reader must not take for the level.
            c.push((v * 257).min(0xFFFF) as u16);
        }
    }
    lut
}

/// Palette index of frame `k` at (`x`, `y`): a fan of speckled tissue and a Doppler jet that
/// moves and changes direction from frame to frame.
pub fn doppler_index(k: u32, x: u32, y: u32, width: u32, height: u32) -> u8 {
    let (cx, cy) = (f64::from(width) / 2.0, 0.0);
    let (dx, dy) = (f64::from(x) - cx, f64::from(y) - cy);
    let r = dx.hypot(dy);
    let angle = dx.atan2(dy).abs();
    if r > f64::from(height) * 0.95 || angle > 0.7 {
        return 0;
    }
    let (jx, jy) = (cx + f64::from(k % 6) * 2.0 - 5.0, f64::from(height) * 0.55);
    if (f64::from(x) - jx).hypot(f64::from(y) - jy) < f64::from(height) * 0.18 {
        let towards = k.is_multiple_of(2);
        let speed = ((x + y + k) % 60) as u8;
        return if towards { 128 + speed } else { 192 + speed };
    }
    (20 + (x * 7 + y * 13 + k * 3) % 100) as u8
}

/// RLE Lossless (PS3.5 G) of one 8-bit plane: a 64-byte header and one segment of literal runs.
fn rle_frame(plane: &[u8]) -> Vec<u8> {
    let mut segment = Vec::new();
    for run in plane.chunks(128) {
        segment.push((run.len() - 1) as u8);
        segment.extend_from_slice(run);
    }
    if !segment.len().is_multiple_of(2) {
        // -128 is the no-op byte: it pads the segment to an even length.
        segment.push(0x80);
    }
    let mut out = Vec::with_capacity(64 + segment.len());
    out.extend_from_slice(&1u32.to_le_bytes());
    out.extend_from_slice(&64u32.to_le_bytes());
    out.extend_from_slice(&[0u8; 56]);
    out.extend_from_slice(&segment);
    out
}

/// How a synthetic palette file stores its tables and indices.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PaletteKind {
    /// 8-bit indices, 256 16-bit entries, RLE Lossless: a colour Doppler loop.
    RleDoppler,
    /// 8-bit entries, one to a word, a table of 200 whose first entry is value 16.
    EightBitEntries,
    /// 16-bit indices into a 4096-entry table whose first entry is value 100.
    SixteenBitIndices,
    /// The Doppler tables as segments (discrete, linear and indirect).
    Segmented,
}

/// A multi-frame PALETTE COLOR ultrasound, 64x48, `frames` frames at 10 frames a second.
pub fn palette(kind: PaletteKind, frames: u32) -> Vec<u8> {
    let (width, height) = (64u32, 48u32);
    let mut indices: Vec<u16> = Vec::new();
    for k in 0..frames {
        for y in 0..height {
            for x in 0..width {
                let i = u16::from(doppler_index(k, x, y, width, height));
                indices.push(match kind {
                    // Spread over a wider range, some below the first mapped value and past the end.
                    PaletteKind::SixteenBitIndices => i * 17,
                    _ => i,
                });
            }
        }
    }
    let instance = format!("2.25.77{}", kind as u32);
    let sixteen = kind == PaletteKind::SixteenBitIndices;
    let bits = if sixteen { 16_u16 } else { 8 };
    let mut elements = vec![
        DataElement::new(tags::SOP_CLASS_UID, VR::UI, PrimitiveValue::from(uids::ULTRASOUND_MULTI_FRAME_IMAGE_STORAGE)),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from(instance.as_str())),
        DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("US")),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1_u16)),
        DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, PrimitiveValue::from("PALETTE COLOR")),
        DataElement::new(tags::NUMBER_OF_FRAMES, VR::IS, PrimitiveValue::from(frames.to_string())),
        DataElement::new(tags::FRAME_TIME, VR::DS, PrimitiveValue::from("100")),
        DataElement::new(tags::CINE_RATE, VR::IS, PrimitiveValue::from("10")),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(height as u16)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(width as u16)),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(bits)),
        DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(bits)),
        DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(bits - 1)),
        DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(0_u16)),
    ];
    let doppler = doppler_palette();
    let descriptors = [
        tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
        tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DESCRIPTOR,
    ];
    let data = [
        tags::RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        tags::GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        tags::BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    ];
    let segmented = [
        tags::SEGMENTED_RED_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        tags::SEGMENTED_GREEN_PALETTE_COLOR_LOOKUP_TABLE_DATA,
        tags::SEGMENTED_BLUE_PALETTE_COLOR_LOOKUP_TABLE_DATA,
    ];
    for c in 0..3 {
        let (descriptor, table): ([u16; 3], Vec<u16>) = match kind {
            PaletteKind::RleDoppler => ([256, 0, 16], doppler[c].clone()),
            PaletteKind::EightBitEntries => {
                ([200, 16, 8], doppler[c].iter().skip(16).take(200).map(|v| v >> 8).collect())
            }
            PaletteKind::SixteenBitIndices => {
                ([4096, 100, 16], (0..4096u32).map(|i| ((i * (c as u32 + 5) * 16) % 65536) as u16).collect())
            }
            PaletteKind::Segmented => ([256, 0, 16], Vec::new()),
        };
        elements.push(DataElement::new(descriptors[c], VR::US, PrimitiveValue::U16(descriptor.to_vec().into())));
        if kind == PaletteKind::Segmented {
            // Entries 0..128: a discrete first entry then a linear ramp; 128..256: the Doppler
            // half given discretely; then an indirect copy would overrun, so the ramp's shape
            // is reused by pointing at the first two segments for a table of 256 + 0.
            let half = &doppler[c][128..];
            let mut seg = vec![0u16, 1, doppler[c][0], 1, 127, doppler[c][127]];
            seg.extend([0, half.len() as u16]);
            seg.extend_from_slice(half);
            elements.push(DataElement::new(segmented[c], VR::OW, PrimitiveValue::U16(seg.into())));
        } else {
            elements.push(DataElement::new(data[c], VR::OW, PrimitiveValue::U16(table.into())));
        }
    }
    let frame_len = (width * height) as usize;
    let transfer = if kind == PaletteKind::RleDoppler {
        let fragments: Vec<Vec<u8>> =
            indices.chunks(frame_len).map(|f| rle_frame(&f.iter().map(|&i| i as u8).collect::<Vec<u8>>())).collect();
        elements.push(DataElement::new(
            tags::PIXEL_DATA,
            VR::OB,
            dicom_core::value::PixelFragmentSequence::new(Vec::<u32>::new(), fragments),
        ));
        uids::RLE_LOSSLESS
    } else if sixteen {
        elements.push(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::U16(indices.into())));
        uids::EXPLICIT_VR_LITTLE_ENDIAN
    } else {
        let bytes: Vec<u8> = indices.iter().map(|&i| i as u8).collect();
        elements.push(DataElement::new(tags::PIXEL_DATA, VR::OB, PrimitiveValue::from(bytes)));
        uids::EXPLICIT_VR_LITTLE_ENDIAN
    };
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(uids::ULTRASOUND_MULTI_FRAME_IMAGE_STORAGE)
        .media_storage_sop_instance_uid(instance.as_str())
        .transfer_syntax(transfer);
    let file = InMemDicomObject::from_element_iter(elements).with_meta(meta).expect("a well-formed meta group");
    let mut out = Vec::new();
    file.write_all(&mut out).expect("writing to memory");
    out
}

/// The synthetic part of the differential test's set (e2e::reference), written into `dir`: a
/// multi-frame CT with its own window and every kind of palette above.
pub fn write_reference_set(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut files = vec![("synthetic_ct_4frames.dcm", ct(64, 0, 4, 4))];
    for (name, kind) in [
        ("synthetic_palette_rle_doppler.dcm", PaletteKind::RleDoppler),
        ("synthetic_palette_8bit_entries.dcm", PaletteKind::EightBitEntries),
        ("synthetic_palette_16bit_indices.dcm", PaletteKind::SixteenBitIndices),
        ("synthetic_palette_segmented.dcm", PaletteKind::Segmented),
    ] {
        files.push((name, palette(kind, 6)));
    }
    files
        .into_iter()
        .map(|(name, bytes)| {
            let path = dir.join(name);
            std::fs::write(&path, bytes).expect("write a synthetic file");
            path
        })
        .collect()
}

/// A hostile file for the decode sandbox: its DICOM header is a real test file's (so every check
/// the kiosk makes before decoding passes), but its compressed stream claims `size` x `size`
/// pixels, and the codec allocates and fills what the stream claims.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Bomb {
    /// SC_rgb_jpeg_dcmtk.dcm (100x100 RGB baseline JPEG) with its SOF0 saying `size` x `size`:
    /// 3 bytes a pixel (65500: 12 GiB, 36 s until the machine's memory ran out, measured here).
    Jpeg(u16),
    /// JPEG2000.dcm with its SIZ saying `size` x `size` (60000: 14 GiB in 8 s, measured here).
    Jpeg2000(u32),
}

/// The bytes of `bomb`.
pub fn decoder_bomb(bomb: Bomb) -> Vec<u8> {
    let (file, marker) = match bomb {
        Bomb::Jpeg(_) => ("SC_rgb_jpeg_dcmtk.dcm", [0xff, 0xc0]),
        Bomb::Jpeg2000(_) => ("JPEG2000.dcm", [0xff, 0x51]),
    };
    let mut bytes = std::fs::read(crate::dicom_dir().join(file)).expect("a pydicom test file");
    let at = bytes.windows(2).position(|w| w == marker).expect("the codestream's size marker");
    match bomb {
        // SOF: FFC0, length (2), precision (1), height (2), width (2).
        Bomb::Jpeg(size) => {
            bytes[at + 5..at + 7].copy_from_slice(&size.to_be_bytes());
            bytes[at + 7..at + 9].copy_from_slice(&size.to_be_bytes());
        }
        // SIZ: FF51, length (2), capabilities (2), width (4), height (4).
        Bomb::Jpeg2000(size) => {
            bytes[at + 6..at + 10].copy_from_slice(&size.to_be_bytes());
            bytes[at + 10..at + 14].copy_from_slice(&size.to_be_bytes());
        }
    }
    bytes
}

/// A series of `slices` 512x512 files with a real CT's texture (pydicom's CT_small, 128x128,
/// tiled 4x4, each tile and each slice shifted by some rows), for figures where how well the pixels compress
/// matters: the synthetic [`write_series`] is flat and compresses far better than a real scan.
pub fn write_real_series(dir: &std::path::Path, slices: u32) -> Vec<std::path::PathBuf> {
    let source = dicom_object::open_file(crate::dicom_dir().join("CT_small.dcm")).expect("CT_small.dcm");
    let pixels = source.element(tags::PIXEL_DATA).expect("pixel data").to_bytes().expect("bytes").into_owned();
    let (side, tiles) = (128usize, 4usize);
    (0..slices)
        .map(|k| {
            let mut tiled = vec![0u8; side * side * tiles * tiles * 2];
            for y in 0..side * tiles {
                for t in 0..tiles {
                    // Each tile starts 37 rows further on: 37 rows of 1 KiB put repeats beyond
                    // deflate's 32 KiB window, so the series compresses as the scan does, not as
                    // a copy of itself.
                    let from = ((y + k as usize + t * 37) % side) * side * 2;
                    let to = (y * side * tiles + t * side) * 2;
                    tiled[to..to + side * 2].copy_from_slice(&pixels[from..from + side * 2]);
                }
            }
            let mut object = source.clone();
            let instance = format!("2.25.88{}", k + 1);
            object.put(DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from(instance.as_str())));
            object.put(DataElement::new(tags::INSTANCE_NUMBER, VR::IS, PrimitiveValue::from((k + 1).to_string())));
            object.put(DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(512_u16)));
            object.put(DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(512_u16)));
            object.put(DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(tiled)));
            object.meta_mut().media_storage_sop_instance_uid = instance;
            object.meta_mut().update_information_group_length();
            let path = dir.join(format!("real{:03}.dcm", k + 1));
            object.write_to_file(&path).expect("write a slice");
            path
        })
        .collect()
}

#[cfg(test)]
mod tests {
    #[test]
    fn the_real_series_decodes_as_512_square_slices_that_differ() {
        let dir = tempfile::tempdir().expect("dir");
        let files = super::write_real_series(dir.path(), 2);
        let decode = |p: &std::path::Path| {
            sc_imaging::decode(&std::fs::read(p).expect("read"), &sc_imaging::Limits::default()).expect("decodes")
        };
        let (a, b) = (decode(&files[0]), decode(&files[1]));
        assert_eq!((a.width, a.height, b.width, b.height), (512, 512, 512, 512));
        assert!(a.frames != b.frames, "each slice is shifted");
    }
}

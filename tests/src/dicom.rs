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

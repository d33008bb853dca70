//! Window/level correctness on objects built here, so every stored value is known: stored ->
//! modality value (slope, intercept) -> display grey under a preset, MONOCHROME1 inverted.

use dicom_core::{DataElement, PrimitiveValue, VR};
use dicom_dictionary_std::{tags, uids};
use dicom_object::{FileMetaTableBuilder, InMemDicomObject};
use sc_imaging::{Limits, Preset, Rendered, Window};

/// A 2x2 16-bit signed CT slice with the given stored values, slope and intercept, as file bytes.
fn ct(stored: [i16; 4], slope: &str, intercept: &str, photometric: &str) -> Vec<u8> {
    let pixels: Vec<u8> = stored.iter().flat_map(|v| v.to_le_bytes()).collect();
    let obj = InMemDicomObject::from_element_iter([
        DataElement::new(tags::SOP_CLASS_UID, VR::UI, PrimitiveValue::from(uids::CT_IMAGE_STORAGE)),
        DataElement::new(tags::SOP_INSTANCE_UID, VR::UI, PrimitiveValue::from("2.25.1234")),
        DataElement::new(tags::MODALITY, VR::CS, PrimitiveValue::from("CT")),
        DataElement::new(tags::SAMPLES_PER_PIXEL, VR::US, PrimitiveValue::from(1_u16)),
        DataElement::new(tags::PHOTOMETRIC_INTERPRETATION, VR::CS, PrimitiveValue::from(photometric)),
        DataElement::new(tags::ROWS, VR::US, PrimitiveValue::from(2_u16)),
        DataElement::new(tags::COLUMNS, VR::US, PrimitiveValue::from(2_u16)),
        DataElement::new(tags::BITS_ALLOCATED, VR::US, PrimitiveValue::from(16_u16)),
        DataElement::new(tags::BITS_STORED, VR::US, PrimitiveValue::from(16_u16)),
        DataElement::new(tags::HIGH_BIT, VR::US, PrimitiveValue::from(15_u16)),
        DataElement::new(tags::PIXEL_REPRESENTATION, VR::US, PrimitiveValue::from(1_u16)),
        DataElement::new(tags::RESCALE_SLOPE, VR::DS, PrimitiveValue::from(slope)),
        DataElement::new(tags::RESCALE_INTERCEPT, VR::DS, PrimitiveValue::from(intercept)),
        DataElement::new(tags::PIXEL_DATA, VR::OW, PrimitiveValue::from(pixels)),
    ]);
    let meta = FileMetaTableBuilder::new()
        .media_storage_sop_class_uid(uids::CT_IMAGE_STORAGE)
        .media_storage_sop_instance_uid("2.25.1234")
        .transfer_syntax(uids::EXPLICIT_VR_LITTLE_ENDIAN);
    let file = obj.with_meta(meta).expect("meta");
    let mut out = Vec::new();
    file.write_all(&mut out).expect("write");
    out
}

fn grey(bytes: &[u8], window: Window) -> Vec<u8> {
    let image = sc_imaging::decode(bytes, &Limits::default()).expect("decode");
    match image.render(0, window).expect("frame 0") {
        Rendered::Grey(p) => p,
        other => panic!("{other:?}"),
    }
}

#[test]
fn a_known_stored_value_maps_through_slope_intercept_and_the_preset() {
    // slope 2, intercept -1024: stored 532 -> 40 HU (the soft-tissue and brain centre).
    let bytes = ct([532, -1000, 0, 2000], "2", "-1024", "MONOCHROME2");
    let image = sc_imaging::decode(&bytes, &Limits::default()).expect("decode");
    assert_eq!(crate::support::grey(&image, 0), &[40.0, -3024.0, -1024.0, 2976.0]);
    // Soft tissue W400 L40: 40 HU is mid-grey; -3024 and -1024 are black; 2976 is white.
    assert_eq!(grey(&bytes, Preset::SoftTissue.window()), [128, 0, 0, 255]);
    // Lung W1500 L-600: -1024 HU -> ((-1024 + 600.5) / 1499 + 0.5) * 255 = 55.45 -> 55;
    // 40 HU -> ((40 + 600.5) / 1499 + 0.5) * 255 = 236.46 -> 236.
    assert_eq!(grey(&bytes, Preset::Lung.window()), [236, 0, 55, 255]);
    // Bone W1800 L400: 40 HU -> ((40 - 399.5) / 1799 + 0.5) * 255 = 76.54 -> 77.
    assert_eq!(grey(&bytes, Preset::Bone.window())[0], 77);
    // Brain W80 L40: 40 HU -> ((40 - 39.5) / 79 + 0.5) * 255 = 129.1 -> 129; 0 HU -> 0; above 79 -> 255.
    assert_eq!(Preset::Brain.window().display(40.0), 129);
    assert_eq!(Preset::Brain.window().display(0.0), 0);
    assert_eq!(Preset::Brain.window().display(79.6), 255);
}

#[test]
fn the_formula_matches_dicom_at_the_window_edges() {
    // C.11.2.1.2.1: x <= c - 0.5 - (w-1)/2 -> 0; x > c - 0.5 + (w-1)/2 -> 255.
    let w = Window::linear(40.0, 400.0);
    assert_eq!(w.display(40.0 - 0.5 - 399.0 / 2.0), 0);
    assert_eq!(w.display(40.0 - 0.5 + 399.0 / 2.0 + 0.01), 255);
    assert_eq!(w.display(1e9), 255);
    assert_eq!(w.display(-1e9), 0);
    // A window covering a range maps its ends to black and white.
    let c = Window::covering(-1024.0, 3071.0);
    assert_eq!((c.display(-1024.0), c.display(3071.0)), (0, 255));
}

#[test]
fn monochrome1_is_shown_inverted() {
    let m2 = grey(&ct([532, -1000, 0, 2000], "2", "-1024", "MONOCHROME2"), Preset::SoftTissue.window());
    let m1 = grey(&ct([532, -1000, 0, 2000], "2", "-1024", "MONOCHROME1"), Preset::SoftTissue.window());
    assert_eq!(m1, m2.iter().map(|v| 255 - v).collect::<Vec<_>>());
}

#[test]
fn the_files_own_window_is_the_default_and_presets_parse_by_name() {
    let image = sc_imaging::decode(&ct([0, 10, 20, 30], "1", "0", "MONOCHROME2"), &Limits::default()).expect("decode");
    // No window in the file: the values' own range.
    assert_eq!((image.default_window.display(0.0), image.default_window.display(30.0)), (0, 255));
    for (name, preset) in
        [("lung", Preset::Lung), ("soft_tissue", Preset::SoftTissue), ("bone", Preset::Bone), ("brain", Preset::Brain)]
    {
        assert_eq!(Preset::from_name(name), Some(preset));
    }
    assert_eq!(Preset::from_name("liver"), None);
}

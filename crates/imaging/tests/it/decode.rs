//! The pydicom wheel's files decode at full dynamic range, whatever the transfer syntax; the broken
//! ones give clear errors.

use crate::support::{decode, grey, read};
use dicom_dictionary_std::tags;
use sc_imaging::{Error, Frame, Limits, Source};

#[test]
fn ct_keeps_hounsfield_units_exactly_as_stored_times_slope_plus_intercept() {
    let image = decode("CT_small.dcm").expect("CT decodes");
    assert_eq!((image.width, image.height, image.frames.len(), image.source), (128, 128, 1, Source::Dicom));
    assert_eq!(image.modality.as_deref(), Some("CT"));
    // The expected values, read straight from the file's native pixel data and rescale tags.
    let obj = dicom_object::from_reader(&read("CT_small.dcm")[128..]).expect("parse");
    let raw = obj.element(tags::PIXEL_DATA).expect("pixels").to_bytes().expect("bytes").into_owned();
    let signed = obj.element(tags::PIXEL_REPRESENTATION).expect("repr").to_int::<u16>().expect("int") == 1;
    let slope = obj.element(tags::RESCALE_SLOPE).expect("slope").to_float64().expect("f64");
    let intercept = obj.element(tags::RESCALE_INTERCEPT).expect("intercept").to_float64().expect("f64");
    let values = grey(&image, 0);
    for index in [0usize, 777, 64 * 128 + 64, 128 * 128 - 1] {
        let word = [raw[2 * index], raw[2 * index + 1]];
        let stored = if signed { f64::from(i16::from_le_bytes(word)) } else { f64::from(u16::from_le_bytes(word)) };
        assert_eq!(f64::from(values[index]), stored * slope + intercept, "pixel {index}");
    }
    // Its own window comes from the file.
    let w =
        obj.element(tags::WINDOW_CENTER).ok().and_then(|e| e.to_multi_float64().ok()).and_then(|v| v.first().copied());
    if let Some(center) = w {
        assert_eq!(image.default_window.center, center);
    }
}

#[test]
fn mr_decodes_to_the_same_values_in_every_lossless_transfer_syntax() {
    let reference = decode("MR_small.dcm").expect("MR");
    assert_eq!((reference.width, reference.height), (64, 64));
    for name in [
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_expb.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "MR_small_jpeg_ls_lossless.dcm",
        "MR_small_padded.dcm",
    ] {
        let image = decode(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(grey(&image, 0), grey(&reference, 0), "{name} decodes to the reference's values");
    }
}

#[test]
fn jpeg_baseline_extended_and_jpeg_2000_decode() {
    let rgb = decode("SC_rgb_jpeg_dcmtk.dcm").expect("JPEG baseline RGB");
    assert!(matches!(&rgb.frames[0], Frame::Rgb(p) if p.len() == (rgb.width * rgb.height * 3) as usize), "{rgb:?}");
    let j2k = decode("JPEG2000.dcm").expect("JPEG 2000");
    assert_eq!(grey(&j2k, 0).len(), (j2k.width * j2k.height) as usize);
    // A 512x512 CT slice in JPEG 2000 keeps its full dynamic range: far more than 256 levels.
    let ct = decode("693_J2KI.dcm").expect("JPEG 2000 CT");
    let mut levels: Vec<i64> = grey(&ct, 0).iter().map(|&v| v as i64).collect();
    levels.sort_unstable();
    levels.dedup();
    assert!(levels.len() > 256, "{} levels", levels.len());
    // 12-bit JPEG (Extended) has no decoder here: the error names the compression.
    let err = decode("JPEG-lossy.dcm").expect_err("12-bit JPEG");
    assert!(err.to_string().contains("JPEG Extended"), "{err}");
}

#[test]
fn issue_15_samples_without_a_decoder_are_refused_by_name_not_as_damaged() {
    for (name, says) in [
        ("JPEG-lossy.dcm", "12-bit JPEG"),
        ("JPGExtended.dcm", "12-bit JPEG"),
        ("SC_rgb_rle_32bit.dcm", "RLE Lossless with 32-bit samples"),
        ("rtdose_rle.dcm", "RLE Lossless with 32-bit samples"),
    ] {
        let err = decode(name).expect_err(name);
        assert!(matches!(&err, Error::UnsupportedCompression { name, .. } if name.contains(says)), "{name}: {err}");
    }
    let err = decode("liver_1frame.dcm").expect_err("1-bit");
    assert!(matches!(&err, Error::UnsupportedSamples(what) if what.contains("1-bit")), "{err}");
}

#[test]
fn multi_frame_objects_keep_every_frame() {
    for name in ["rtdose.dcm", "SC_rgb_rle_2frame.dcm", "examples_ybr_color.dcm"] {
        let obj = dicom_object::from_reader(&read(name)[128..]).expect("parse");
        let frames: usize =
            obj.element(tags::NUMBER_OF_FRAMES).expect("frames").to_str().expect("str").trim().parse().expect("n");
        let image = decode(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(frames > 1);
        assert_eq!(image.frames.len(), frames, "{name}");
    }
    // Frames differ (a dose volume is not one slice repeated).
    let dose = decode("rtdose.dcm").expect("dose");
    assert_ne!(grey(&dose, 0), grey(&dose, dose.frames.len() - 1));
    // 32-bit samples, big endian or little: the same dose values.
    let big = decode("rtdose_expb.dcm").expect("big endian dose");
    for i in 0..dose.frames.len() {
        assert_eq!(grey(&big, i), grey(&dose, i), "frame {i}");
    }
}

#[test]
fn broken_and_unsupported_files_give_clear_errors() {
    type Check = fn(&Error) -> bool;
    let cases: [(&str, Check); 5] = [
        ("MR_truncated.dcm", |e| matches!(e, Error::BadPixels(_) | Error::BadDicom(_))),
        ("no_meta.dcm", |e| matches!(e, Error::UnknownFormat)),
        ("meta_missing_tsyntax.dcm", |e| matches!(e, Error::BadDicom(_))),
        ("rtplan.dcm", |e| matches!(e, Error::NoImage)),
        ("JPEG-lossy.dcm", |e| matches!(e, Error::UnsupportedCompression { name, .. } if name.contains("12-bit JPEG"))),
    ];
    for (name, expected) in cases {
        let err = decode(name).expect_err(name);
        assert!(expected(&err), "{name}: {err:?}");
        let text = err.to_string();
        assert!(!text.is_empty() && !text.contains("panicked"), "{name}: {text}");
    }
    let err = decode("JPGExtended.dcm").expect_err("12-bit JPEG");
    assert!(err.to_string().contains("cannot decode"), "{err}");
}

#[test]
fn limits_refuse_before_decoding() {
    let bytes = read("CT_small.dcm");
    let small = Limits { max_frame_pixels: 100, ..Limits::default() };
    assert!(matches!(
        sc_imaging::decode(&bytes, &small),
        Err(Error::TooLarge { what: "frame", limit: 100, actual: 16384 })
    ));
    let tiny = Limits { max_file_bytes: 1000, ..Limits::default() };
    assert!(matches!(sc_imaging::decode(&bytes, &tiny), Err(Error::TooLarge { what: "file", .. })));
    let few = Limits { max_frames: 2, ..Limits::default() };
    assert!(matches!(
        sc_imaging::decode(&read("rtdose.dcm"), &few),
        Err(Error::TooLarge { what: "number of frames", .. })
    ));
}

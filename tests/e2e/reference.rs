//! The differential test against the reference toolkit (issue #15): every test image rendered by
//! the kiosk's decoder and by DCMTK's `dcm2pnm`, frame by frame, with the file's own window and
//! with a min-max window (colour as colour), must agree within one level per pixel. A file either
//! side cannot render is listed with the reason, never skipped silently. The kiosk's side is the
//! kiosk's confined decode helper (`secureconsult-decode`), as it decodes a share in a call.

use dicom_dictionary_std::tags;
use sc_imaging::{Decoder as _, Error, Frame, Image, Limits, Rendered, Window};
use std::path::{Path, PathBuf};
use std::process::Command;

/// A rendered frame: 8-bit grey (PGM) or RGB (PPM), as DCMTK writes them.
pub(crate) struct Pnm {
    pub(crate) width: u32,
    pub(crate) height: u32,
    pub(crate) channels: usize,
    pub(crate) data: Vec<u8>,
}

/// Reads a PGM or PPM with the image crate's decoder.
fn parse_pnm(bytes: &[u8]) -> Result<Pnm, String> {
    let img = image::load_from_memory_with_format(bytes, image::ImageFormat::Pnm).map_err(|e| e.to_string())?;
    let (width, height) = (img.width(), img.height());
    Ok(match img {
        image::DynamicImage::ImageLuma8(g) => Pnm { width, height, channels: 1, data: g.into_raw() },
        image::DynamicImage::ImageRgb8(c) => Pnm { width, height, channels: 3, data: c.into_raw() },
        other => return Err(format!("not 8-bit grey or RGB: {:?}", other.color())),
    })
}

/// How a file was rendered for comparison.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The file's first VOI window (`+Wi 1`).
    OwnWindow,
    /// The frame's smallest and largest value (`+Wm`).
    MinMax,
    /// A colour file, as colour.
    Colour,
}

impl Mode {
    fn dcmtk_args(self) -> &'static [&'static str] {
        match self {
            Mode::OwnWindow => &["+Wi", "1"],
            Mode::MinMax => &["+Wm"],
            Mode::Colour => &[],
        }
    }
}

/// What one (file, mode) gave.
#[derive(Debug)]
enum Outcome {
    /// Every pixel of every frame within one level; the largest difference.
    Agrees { frames: usize, max_diff: u8 },
    /// Some pixel differs by more than one level.
    Differs { frame: usize, pixels: usize, max_diff: u8, first: String },
    /// DCMTK cannot render the file (its message).
    DcmtkRefuses(String),
    /// The kiosk refuses the file (its error), and whether DCMTK renders it.
    KioskRefuses { ours: String, dcmtk_renders: bool },
}

impl std::fmt::Display for Outcome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Outcome::Agrees { frames, max_diff } => {
                write!(f, "agrees: {frames} frame(s), largest difference {max_diff}")
            }
            Outcome::Differs { frame, pixels, max_diff, first } => {
                write!(f, "DIFFERS in frame {frame}: {pixels} pixel(s) by up to {max_diff}; {first}")
            }
            Outcome::DcmtkRefuses(why) => write!(f, "DCMTK cannot render it: {why}"),
            Outcome::KioskRefuses { ours, dcmtk_renders: true } => {
                write!(f, "the kiosk refuses, DCMTK renders it: {ours}")
            }
            Outcome::KioskRefuses { ours, dcmtk_renders: false } => write!(f, "both refuse: {ours}"),
        }
    }
}

/// Renders every frame with DCMTK into `out`, in frame order: `dcmj2pnm` (dcm2pnm with the JPEG
/// decoders), then `dcml2pnm` (with JPEG-LS) when the first cannot decompress the file.
pub(crate) fn dcmtk(file: &Path, mode: Mode, out: &Path) -> Result<Vec<Pnm>, String> {
    let mut refusal = String::new();
    for tool in ["dcmj2pnm", "dcml2pnm"] {
        let dir = out.join(tool);
        std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
        let output = Command::new(tool)
            .arg("+Fa")
            .args(mode.dcmtk_args())
            .arg(file)
            .arg(dir.join("frame"))
            .output()
            .map_err(|e| format!("{tool}: {e} (the test command installs dcmtk)"))?;
        if !output.status.success() {
            let text = String::from_utf8_lossy(&output.stderr);
            refusal = text.lines().find(|l| l.starts_with("E:") || l.starts_with("F:")).unwrap_or("failed").to_owned();
            continue;
        }
        let mut frames = Vec::new();
        for k in 0.. {
            let found = ["pgm", "ppm"].iter().map(|ext| dir.join(format!("frame.{k}.{ext}"))).find(|p| p.exists());
            let Some(path) = found else { break };
            let bytes = std::fs::read(&path).map_err(|e| e.to_string())?;
            frames.push(parse_pnm(&bytes).map_err(|e| format!("{}: {e}", path.display()))?);
        }
        if frames.is_empty() {
            return Err(format!("{tool} wrote no frames"));
        }
        return Ok(frames);
    }
    Err(refusal)
}

/// Files DCMTK is known to read differently from the standard, each compared with DCMTK's render of
/// a twin holding the same values. DCMTK 3.6.7 reads 32-bit samples in a big-endian file's OW
/// Pixel Data as two byte-swapped 16-bit words, so the halves of every value trade places
/// (`0x00130EE8`, 1.249 Gy at the file's dose scaling, becomes `0x0EE80013`); pydicom and the
/// kiosk read the value, and its little-endian twin renders the same in both.
/// DCMTK 3.6.7's JPEG decoder (IJG 6b) takes a baseline JPEG's three components for YCbCr unless a
/// JFIF or Adobe marker says otherwise; this file's components are RGB (component ids `R`, `G`,
/// `B`), as libjpeg-turbo reads them, so DCMTK turns them to grey. It is compared instead with
/// libjpeg-turbo's decode of its JPEG stream (ImageMagick).
const DCMTK_MISREADS_RGB_JPEG: &str = "SC_jpeg_no_color_transform.dcm";

/// Lossy JPEG: two conforming decoders may differ. ISO/IEC 10918-2 allows each component's
/// inverse DCT one level either way, and colour conversion carries a chroma error of one into up
/// to 1.772 levels (blue); libjpeg's smoothed chroma upsampling adds its own. Colour from lossy
/// JPEG agrees within this many levels; everything else within one.
const LOSSY_JPEG_COLOUR_TOLERANCE: u8 = 3;

/// The first JPEG stream in `file`, decoded by ImageMagick (libjpeg-turbo).
fn libjpeg_turbo(file: &Path, out: &Path) -> Result<Vec<Pnm>, String> {
    let bytes = std::fs::read(file).map_err(|e| e.to_string())?;
    let start = bytes.windows(3).position(|w| w == [0xFF, 0xD8, 0xFF]).ok_or("no JPEG stream")?;
    let end = bytes.windows(2).rposition(|w| w == [0xFF, 0xD9]).ok_or("no JPEG end")? + 2;
    std::fs::create_dir_all(out).map_err(|e| e.to_string())?;
    let jpeg = out.join("stream.jpg");
    std::fs::write(&jpeg, &bytes[start..end]).map_err(|e| e.to_string())?;
    let output = Command::new("convert").arg(&jpeg).arg("ppm:-").output().map_err(|e| format!("convert: {e}"))?;
    if !output.status.success() {
        return Err(String::from_utf8_lossy(&output.stderr).into_owned());
    }
    Ok(vec![parse_pnm(&output.stdout)?])
}

const TWINS: [(&str, &str); 2] = [("rtdose_expb.dcm", "rtdose.dcm"), ("rtdose_expb_1frame.dcm", "rtdose_1frame.dcm")];

fn has_own_window(bytes: &[u8]) -> bool {
    dicom_object::from_reader(&bytes[128..])
        .ok()
        .is_some_and(|o| o.element_opt(tags::WINDOW_CENTER).ok().flatten().is_some())
}

fn compare(file: &Path, bytes: &[u8], decoded: &Result<Image, Error>, mode: Mode, scratch: &Path) -> Outcome {
    let image = match decoded {
        Ok(image) => image,
        Err(e) => {
            let dcmtk_renders = dcmtk(file, mode, scratch).is_ok();
            return Outcome::KioskRefuses { ours: e.to_string(), dcmtk_renders };
        }
    };
    let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
    let twin = TWINS.iter().find(|(f, _)| *f == name).map(|(_, twin)| file.with_file_name(twin));
    let rendered = if name == DCMTK_MISREADS_RGB_JPEG {
        libjpeg_turbo(file, scratch)
    } else {
        dcmtk(twin.as_deref().unwrap_or(file), mode, scratch)
    };
    let lossy_jpeg = bytes.get(128..).and_then(|b| dicom_object::from_reader(b).ok()).is_some_and(|o| {
        let ts = o.meta().transfer_syntax().trim_end_matches('\0');
        ts == "1.2.840.10008.1.2.4.50" || ts == "1.2.840.10008.1.2.4.51"
    });
    let reference = match rendered {
        Ok(frames) => frames,
        Err(e) => return Outcome::DcmtkRefuses(e),
    };
    if reference.len() != image.frames.len() {
        return Outcome::Differs {
            frame: 0,
            pixels: 0,
            max_diff: 255,
            first: format!("{} frames, DCMTK {}", image.frames.len(), reference.len()),
        };
    }
    // DCMTK's min-max window spans every frame it loaded (all of them, with +Fa).
    let (lo, hi) = image
        .frames
        .iter()
        .filter_map(|f| match f {
            Frame::Grey(values) => Some(values),
            _ => None,
        })
        .flatten()
        .fold((f32::INFINITY, f32::NEG_INFINITY), |(l, h), &v| (l.min(v), h.max(v)));
    let min_max = Window::covering(f64::from(lo), f64::from(hi));
    let mut worst = 0u8;
    for (k, expected) in reference.iter().enumerate() {
        if (expected.width, expected.height) != (image.width, image.height) {
            return Outcome::Differs {
                frame: k,
                pixels: 0,
                max_diff: 255,
                first: format!("{}x{}, DCMTK {}x{}", image.width, image.height, expected.width, expected.height),
            };
        }
        let window = if mode == Mode::MinMax { min_max } else { image.default_window };
        let (ours, channels) = match image.render(k, window) {
            Some(Rendered::Grey(p)) => (p, 1),
            Some(Rendered::Rgb(p)) => (p, 3),
            Some(_) | None => {
                return Outcome::KioskRefuses { ours: format!("frame {k} does not render"), dcmtk_renders: true }
            }
        };
        let tolerance = if lossy_jpeg && channels == 3 { LOSSY_JPEG_COLOUR_TOLERANCE } else { 1 };
        if channels != expected.channels {
            return Outcome::Differs {
                frame: k,
                pixels: 0,
                max_diff: 255,
                first: format!("{channels} channel(s), DCMTK {}", expected.channels),
            };
        }
        let mut bad = 0;
        let mut first = String::new();
        for (i, (&a, &b)) in ours.iter().zip(&expected.data).enumerate() {
            let d = a.abs_diff(b);
            worst = worst.max(d);
            if d > tolerance {
                if bad == 0 {
                    first = format!("pixel {} channel {}: ours {a}, DCMTK {b}", i / channels, i % channels);
                }
                bad += 1;
            }
        }
        if bad > 0 {
            return Outcome::Differs { frame: k, pixels: bad, max_diff: worst, first };
        }
    }
    Outcome::Agrees { frames: reference.len(), max_diff: worst }
}

/// Every DICOM file of the test set: pydicom's, in name order, then the synthetic ones written into
/// `dir`.
fn test_set(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(sc_e2e::dicom_dir())
        .expect("list the test files")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "dcm"))
        .collect();
    files.sort();
    files.extend(sc_e2e::dicom::write_reference_set(dir));
    files
}

#[test]
fn issue_15_every_test_image_renders_as_dcmtk_renders_it() {
    // A minute of decoding on both cores: beside the prison-profile call it took Chromium's
    // picture of the kiosk from ~26 fps to 11.6-12.0 (issue #12's test failed in CI twice).
    let _slot = sc_e2e::shaped::one_at_a_time_blocking();
    let dir = tempfile::tempdir().expect("a scratch directory");
    let scratch = dir.path().join("dcmtk");
    let mut table = Vec::new();
    let kiosk = sc_sandbox::Helper::new(sc_e2e::bin(sc_sandbox::PROGRAM), sc_sandbox::HelperLimits::default());
    for file in test_set(dir.path()) {
        let bytes = std::fs::read(&file).expect("read");
        let decoded = kiosk.decode(&bytes, &Limits::default());
        let colour = matches!(decoded.as_ref().ok().and_then(|i| i.frames.first()), Some(Frame::Rgb(_)));
        let modes: &[Mode] = if colour {
            &[Mode::Colour]
        } else if has_own_window(&bytes) {
            &[Mode::OwnWindow, Mode::MinMax]
        } else {
            &[Mode::MinMax]
        };
        for &mode in modes {
            let out =
                scratch.join(format!("{}-{mode:?}", file.file_name().map(|n| n.to_string_lossy()).unwrap_or_default()));
            table.push((file.clone(), mode, compare(&file, &bytes, &decoded, mode, &out)));
        }
    }
    println!("{:<44} {:<10} result", "file", "mode");
    for (file, mode, outcome) in &table {
        let name = file.file_name().map(|n| n.to_string_lossy().into_owned()).unwrap_or_default();
        println!("{name:<44} {:<10} {outcome}", format!("{mode:?}"));
    }
    let differs: Vec<String> = table
        .iter()
        .filter(|(_, _, o)| matches!(o, Outcome::Differs { .. }))
        .map(|(file, mode, o)| format!("{} {mode:?}: {o}", file.display()))
        .collect();
    assert!(differs.is_empty(), "{} render(s) differ from DCMTK's:\n{}", differs.len(), differs.join("\n"));
    // What DCMTK renders and the kiosk still refuses, each with its reason (issue #15 lists the
    // work left). A file that starts or stops being refused changes this list on purpose.
    let mut refused: Vec<String> = table
        .iter()
        .filter(|(_, _, o)| matches!(o, Outcome::KioskRefuses { dcmtk_renders: true, .. }))
        .filter_map(|(f, _, _)| f.file_name().map(|n| n.to_string_lossy().into_owned()))
        .collect();
    refused.dedup();
    assert_eq!(
        refused,
        [
            "JPEG-lossy.dcm",              // 12-bit JPEG (Extended): no decoder in dicom-rs
            "JPGExtended.dcm",             // 12-bit JPEG
            "SC_rgb_rle_32bit.dcm",        // RLE of 32-bit samples: dicom-rs's RLE decoder stops at 16
            "SC_rgb_rle_32bit_2frame.dcm", // RLE, 32-bit
            "badVR.dcm",                   // Number of Frames with a bad value representation
            "liver_1frame.dcm",            // 1-bit samples (a segmentation)
            "liver_expb_1frame.dcm",       // 1-bit samples
            "rtdose_rle.dcm",              // RLE, 32-bit
            "rtdose_rle_1frame.dcm",       // RLE, 32-bit
        ],
        "the files the kiosk refuses while DCMTK renders them"
    );
    let agreed = table.iter().filter(|(_, _, o)| matches!(o, Outcome::Agrees { .. })).count();
    assert!(agreed >= 40, "only {agreed} renders compared: the test set or dcm2pnm is missing");
}

#[test]
fn issue_15_a_segmented_palette_draws_as_its_whole_table() {
    // DCMTK 3.6.7 refuses segmented palettes ("empty LookupTableData"): the segmented file is
    // checked against the same tables given whole, which the test above compares with DCMTK.
    use sc_e2e::dicom::{palette, PaletteKind};
    let decode = |kind| sc_imaging::decode(&palette(kind, 6), &Limits::default()).expect("decodes");
    let (segmented, whole) = (decode(PaletteKind::Segmented), decode(PaletteKind::RleDoppler));
    assert_eq!(segmented.frames.len(), 6);
    assert!(matches!(&segmented.frames[0], Frame::Rgb(_)), "drawn in colour");
    assert_eq!(segmented.frames, whole.frames);
}

//! Damaged input never panics: every pydicom file and a PNG and JPEG made here, cut at many points
//! and with bytes flipped, decode to a value or an error. (The fuzz target in fuzz/
//! runs the same entry point under libFuzzer; this runs on stable in the test command.)

use crate::support::read;
use sc_imaging::Limits;

/// A small deterministic generator (xorshift64*), so a failure reproduces.
struct Rng(u64);
impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}

fn picture(format: image::ImageFormat) -> Vec<u8> {
    let img = image::GrayImage::from_fn(40, 30, |x, y| image::Luma([(x * 6 + y) as u8]));
    let mut out = std::io::Cursor::new(Vec::new());
    img.write_to(&mut out, format).expect("encode");
    out.into_inner()
}

#[test]
fn cut_and_flipped_files_decode_or_fail_cleanly() {
    // Tight limits, as in the fuzz target: a flipped header byte may claim a huge image, which the
    // limits refuse (decoding 64 Mpx unoptimised would only make the test slow).
    let limits =
        Limits { max_file_bytes: 1 << 20, max_frames: 16, max_frame_pixels: 512 * 512, max_total_pixels: 1 << 20 };
    let mut inputs: Vec<(String, Vec<u8>)> = [
        "CT_small.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
        "SC_rgb_jpeg_dcmtk.dcm",
        "SC_rgb_rle_2frame.dcm",
        "rtdose.dcm",
    ]
    .iter()
    .map(|n| ((*n).to_owned(), read(n)))
    .collect();
    inputs.push(("png".into(), picture(image::ImageFormat::Png)));
    inputs.push(("jpeg".into(), picture(image::ImageFormat::Jpeg)));
    let mut rng = Rng(0x5ec0_25a1_7e57_0001);
    let mut outcomes = (0usize, 0usize);
    for (name, bytes) in &inputs {
        assert!(sc_imaging::decode(bytes, &limits).is_ok(), "{name} decodes intact");
        for i in 0..12 {
            let cut = (bytes.len() * i) / 12;
            match sc_imaging::decode(&bytes[..cut], &limits) {
                Ok(_) => outcomes.0 += 1,
                Err(_) => outcomes.1 += 1,
            }
        }
        // Few flips a file: a flipped length field makes dicom-parser allocate and zero what it claims
        // (see the issue note), slow in an unoptimised build.
        for _ in 0..10 {
            let mut damaged = bytes.clone();
            for _ in 0..1 + rng.next() % 8 {
                let at = (rng.next() % damaged.len() as u64) as usize;
                damaged[at] ^= 1 << (rng.next() % 8);
            }
            match sc_imaging::decode(&damaged, &limits) {
                Ok(_) => outcomes.0 += 1,
                Err(e) => {
                    assert!(!e.to_string().is_empty());
                    outcomes.1 += 1;
                }
            }
        }
    }
    assert!(outcomes.1 > 0, "damage was noticed at least sometimes: {outcomes:?}");
}

/// Where `needle` first occurs in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> usize {
    haystack.windows(needle.len()).position(|w| w == needle).expect("the element is in the file")
}

#[test]
fn an_element_claiming_more_than_the_file_holds_is_refused_before_anything_is_allocated() {
    // dicom-parser zeroes a declared length before reading; a 4 GiB claim in a small file must be
    // refused by the length check (its message), never reach the parser.
    let mut explicit = read("CT_small.dcm");
    let at = find(&explicit, &[0xE0, 0x7F, 0x10, 0x00, b'O', b'W']) + 8;
    explicit[at..at + 4].copy_from_slice(&0xFFFF_FFF0u32.to_le_bytes());
    // Implicit VR: Rows (0028,0010), then a 4-byte length.
    let mut implicit = read("MR_small_implicit.dcm");
    let at = find(&implicit[132..], &[0x28, 0x00, 0x10, 0x00, 0x02, 0x00, 0x00, 0x00]) + 132 + 4;
    implicit[at..at + 4].copy_from_slice(&0x7FFF_FFFFu32.to_le_bytes());
    // Big endian: the pixel data's length.
    let mut big = read("MR_small_bigendian.dcm");
    let at = find(&big, &[0x7F, 0xE0, 0x00, 0x10, b'O', b'W']) + 8;
    big[at..at + 4].copy_from_slice(&0xFFFF_FF00u32.to_be_bytes());
    for (name, bytes) in [("explicit", explicit), ("implicit", implicit), ("big endian", big)] {
        let err = sc_imaging::decode(&bytes, &Limits::default()).expect_err(name);
        let text = err.to_string();
        assert!(
            matches!(err, sc_imaging::Error::BadDicom(_)) && text.contains("claims") && text.contains("remain"),
            "{name}: {text}"
        );
    }
}

#[test]
fn every_intact_test_file_passes_the_length_check() {
    // The check must not refuse a file dicom-rs reads: every pydicom file that parses still does.
    let dir = crate::support::test_files();
    let mut checked = 0;
    for entry in std::fs::read_dir(&dir).expect("dir").flatten().filter(|e| e.path().is_file()) {
        let bytes = std::fs::read(entry.path()).expect("read");
        if bytes.len() < 132 || &bytes[128..132] != b"DICM" || dicom_object::from_reader(&bytes[128..]).is_err() {
            continue;
        }
        if let Err(e) = sc_imaging::decode(&bytes, &Limits::default()) {
            assert!(!e.to_string().contains("claims"), "{}: {e}", entry.path().display());
        }
        checked += 1;
    }
    assert!(checked > 50, "only {checked} files checked");
}

/// Found by the share_decode fuzz target (issue #13): a deflated file whose meta group length
/// disagreed with its elements, so dicom-rs parsed a data set the length check never saw and
/// allocated a declared 2 GB value (2.7 GB, 9 s). Refused now, quickly, with the reason.
#[test]
fn issue_13_a_meta_group_whose_length_disagrees_with_its_elements_is_refused() {
    let bytes = std::fs::read(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/data/issue-13-meta-length-deflate-bomb.dcm"))
        .expect("the fuzzer's file");
    let limits = sc_imaging::Limits {
        max_file_bytes: 1 << 20,
        max_frames: 16,
        max_frame_pixels: 512 * 512,
        max_total_pixels: 1 << 20,
    };
    // Refused by the length check, before dicom-rs parses anything.
    let e = sc_imaging::decode(&bytes, &limits).expect_err("refused");
    assert!(e.to_string().contains("meta group says"), "{e}");
}

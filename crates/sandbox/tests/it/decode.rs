//! Every pydicom test file decodes through the confined helper exactly as it does in process:
//! the same pixels and attributes, or the same refusal. (The seccomp allow-list is narrow; a codec
//! that needs one more system call would show here as a killed helper.)

use crate::helper;
use sc_imaging::{Decoder, Error, Image, InProcess, Limits};
use sc_sandbox::HelperLimits;

fn summary(r: &Result<Image, Error>) -> String {
    match r {
        Ok(i) => format!(
            "{}x{} {:?} {:?} {:?} inv={} {:?} {:?} {:?} {:?}",
            i.width,
            i.height,
            i.source,
            i.frames.len(),
            i.default_window,
            i.inverted,
            i.modality,
            i.pixel_spacing,
            i.frame_time,
            i.overlays
        ),
        Err(e) => format!("refused: {e}"),
    }
}

/// Files that make the in-process decoder allocate gigabytes before it refuses them, so they are
/// only run in the helper: UN_sequence.dcm grew a release build to 3.6 GB for 5.8 s (27 s in a
/// debug build) before "Could not read data set token"; in the helper the allocation fails at its
/// limit at once, with the same refusal.
const IN_PROCESS_BOMBS: [&str; 1] = ["UN_sequence.dcm"];

#[test]
fn every_test_file_decodes_through_the_helper_as_in_process() {
    let helper = helper(HelperLimits::default());
    let limits = Limits::default();
    let mut files: Vec<_> = std::fs::read_dir(sc_e2e::dicom_dir())
        .expect("the pydicom test files")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "dcm"))
        .collect();
    files.sort();
    assert!(files.len() > 70, "only {} test files", files.len());
    let (mut decoded, mut refused) = (0, 0);
    for path in &files {
        let bytes = std::fs::read(path).expect("readable");
        let name = path.file_name().expect("a file name").to_string_lossy();
        let outside = helper.decode(&bytes, &limits);
        if IN_PROCESS_BOMBS.contains(&&*name) {
            assert!(outside.is_err(), "{name}: {}", summary(&outside));
            refused += 1;
            continue;
        }
        let inside = InProcess.decode(&bytes, &limits);
        assert_eq!(summary(&outside), summary(&inside), "{name}");
        if let (Ok(a), Ok(b)) = (&outside, &inside) {
            assert!(a.frames == b.frames, "{name}: the pixels differ");
            decoded += 1;
        } else {
            refused += 1;
        }
    }
    println!("{decoded} decoded and {refused} refused alike in the helper and in process");
    assert!(decoded >= 50, "{decoded} decoded");
}

#[test]
fn a_missing_helper_refuses_the_file_in_words() {
    let helper = sc_sandbox::Helper::new("/nonexistent/secureconsult-decode", HelperLimits::default());
    let bytes = std::fs::read(sc_e2e::dicom_dir().join("CT_small.dcm")).expect("readable");
    let got = helper.decode(&bytes, &Limits::default());
    assert!(matches!(&got, Err(Error::Sandbox(m)) if m.contains("could not be started")), "{got:?}");
}

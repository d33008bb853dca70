//! Where the test files are, and small builders.

use std::path::PathBuf;

/// The pydicom wheel's `data/test_files` (scripts/test.sh downloads and unpacks it).
pub fn test_files() -> PathBuf {
    let dir = std::env::var_os("SC_DICOM_DIR").map(PathBuf::from).unwrap_or_else(|| {
        let home = std::env::var_os("HOME").map(PathBuf::from).unwrap_or_else(|| PathBuf::from("/root"));
        home.join(".cache/secureconsult/pydicom/test_files")
    });
    assert!(
        dir.join("CT_small.dcm").exists(),
        "pydicom's test files are missing in {} (scripts/test.sh fetches them)",
        dir.display()
    );
    dir
}

pub fn read(name: &str) -> Vec<u8> {
    std::fs::read(test_files().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

pub fn decode(name: &str) -> Result<sc_imaging::Image, sc_imaging::Error> {
    sc_imaging::decode(&read(name), &sc_imaging::Limits::default())
}

pub fn grey(image: &sc_imaging::Image, frame: usize) -> &[f32] {
    match &image.frames[frame] {
        sc_imaging::Frame::Grey(v) => v,
        other => panic!("expected grey, got {other:?}"),
    }
}

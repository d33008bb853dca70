//! Where the test files are, and small builders.

use sc_imaging::Viewer;
use sc_proto::share::{Chunk, FromKiosk, ToKiosk, MAX_CHUNK_DATA};
use std::path::PathBuf;
use std::time::Instant;

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

/// A control message as the page sends it.
pub fn text(msg: &ToKiosk) -> String {
    serde_json::to_string(msg).expect("json")
}

/// Every chunk of every file, in order.
pub fn chunks(share: u32, files: &[Vec<u8>]) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    for (f, bytes) in files.iter().enumerate() {
        for (n, data) in bytes.chunks(MAX_CHUNK_DATA).enumerate() {
            out.push(Chunk { share, file: f as u32, offset: (n * MAX_CHUNK_DATA) as u32, data }.encode());
        }
    }
    out
}

/// Announces a share of `files`.
pub fn announce(v: &mut Viewer, now: Instant, share: u32, files: &[Vec<u8>]) -> Vec<FromKiosk> {
    v.on_text(
        now,
        &text(&ToKiosk::Share { share, sizes: files.iter().map(|f| f.len() as u64).collect(), deflate: Vec::new() }),
    )
}

/// Announces and sends a whole share; returns every reply.
pub fn share(v: &mut Viewer, now: Instant, share: u32, files: &[Vec<u8>]) -> Vec<FromKiosk> {
    let mut replies = announce(v, now, share, files);
    for c in chunks(share, files) {
        replies.extend(v.on_binary(now, &c));
    }
    replies
}

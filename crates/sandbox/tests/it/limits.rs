//! Hostile files fail alone within their limits: a JPEG and a JPEG 2000 stream that claim tens
//! of gigabytes (which in process grew the kiosk past the machine's memory) stop at the helper's
//! memory limit, a decode slower than the time limit is killed, and the next file decodes.

use crate::helper;
use sc_e2e::dicom::{decoder_bomb, Bomb};
use sc_imaging::{Decoder, Error, Limits};
use sc_sandbox::HelperLimits;
use std::time::Duration;

fn ct() -> Vec<u8> {
    std::fs::read(sc_e2e::dicom_dir().join("CT_small.dcm")).expect("readable")
}

#[test]
fn issue_15_a_memory_bomb_stops_at_the_helpers_memory_limit_and_the_next_file_decodes() {
    let helper = helper(HelperLimits { memory: 512 << 20, time: Duration::from_secs(60) });
    // The JPEG decoder aborts when an allocation fails; OpenJPEG's port checks its allocations
    // and reports the stream as undecodable. Either way the file fails and nothing else does.
    for (bomb, expect) in [(Bomb::Jpeg(65500), "512 MiB of memory"), (Bomb::Jpeg2000(60000), "Could not decode")] {
        let got = helper.decode(&decoder_bomb(bomb), &Limits::default());
        assert!(got.as_ref().is_err_and(|e| e.to_string().contains(expect)), "{bomb:?}: {got:?}");
        let next = helper.decode(&ct(), &Limits::default()).expect("the next file decodes");
        assert_eq!((next.width, next.height), (128, 128));
    }
}

#[test]
fn issue_15_a_decode_past_the_time_limit_is_stopped_and_the_next_file_decodes() {
    // 16000 x 16000 RGB fits in 4 GiB but takes seconds to fill.
    let helper = helper(HelperLimits { memory: 4 << 30, time: Duration::from_secs(1) });
    let got = helper.decode(&decoder_bomb(Bomb::Jpeg(16000)), &Limits::default());
    assert!(matches!(&got, Err(Error::Sandbox(m)) if m.contains("longer than the 1 s")), "{got:?}");
    helper.decode(&ct(), &Limits::default()).expect("the next file decodes");
}

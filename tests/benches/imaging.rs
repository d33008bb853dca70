//! Image viewer figures: decode + window/level of one 512x512 16-bit CT slice (JPEG 2000, from the
//! pydicom test files), and window/level alone.

use std::time::{Duration, Instant};

fn ms(d: Duration) -> String {
    format!("{:.1} ms", d.as_secs_f64() * 1000.0)
}

pub(crate) fn imaging_figures() {
    let Some(dir) = std::env::var_os("SC_DICOM_DIR") else {
        println!("image decode: skipped (SC_DICOM_DIR unset; scripts/bench.sh sets it)");
        return;
    };
    let bytes = std::fs::read(std::path::Path::new(&dir).join("693_J2KI.dcm")).expect("693_J2KI.dcm");
    let limits = sc_imaging::Limits::default();
    let mut decode = Vec::new();
    let mut window = Vec::new();
    for _ in 0..20 {
        let t = Instant::now();
        let image = sc_imaging::decode(&bytes, &limits).expect("decode");
        let rendered = image.render(0, sc_imaging::Preset::SoftTissue.window()).expect("frame");
        decode.push(t.elapsed());
        let t = Instant::now();
        let again = image.render(0, sc_imaging::Preset::Lung.window()).expect("frame");
        window.push(t.elapsed());
        assert_ne!(rendered, again);
    }
    decode.sort();
    window.sort();
    println!(
        "image, 512x512 16-bit CT slice (JPEG 2000), 20 runs: decode + window/level p50 {} max {}; window/level alone p50 {}",
        ms(decode[decode.len() / 2]),
        ms(decode[decode.len() - 1]),
        ms(window[window.len() / 2])
    );
}

//! Fuzzes what a shared file goes through on the kiosk: format sniffing, DICOM parsing and pixel
//! decoding (or PNG/JPEG), and rendering every frame. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = sc_imaging::Limits {
        max_file_bytes: 1 << 20,
        max_frames: 16,
        max_frame_pixels: 512 * 512,
        max_total_pixels: 1 << 20,
    };
    if let Ok(image) = sc_imaging::decode(data, &limits) {
        for i in 0..image.frames.len() {
            let _ = image.render(i, image.default_window);
        }
    }
});

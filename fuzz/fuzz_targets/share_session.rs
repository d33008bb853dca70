//! Fuzzes the kiosk's whole share session: the input is a run of data-channel messages (text,
//! binary chunks), ticks, cuts and the nurse's resets, fed to the viewer with small limits, drawing
//! after each as the window would. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use std::time::{Duration, Instant};

fuzz_target!(|data: &[u8]| {
    let limits = sc_imaging::ShareLimits {
        max_files: 8,
        max_share_bytes: 1 << 20,
        max_held_pixels: 1 << 20,
        stall: Duration::from_secs(30),
        decode: sc_imaging::Limits {
            max_file_bytes: 1 << 20,
            max_frames: 16,
            max_frame_pixels: 512 * 512,
            max_total_pixels: 1 << 20,
        },
    };
    let mut viewer = sc_imaging::Viewer::new(limits);
    let start = Instant::now();
    let mut rest = data;
    let mut seconds = 0u64;
    // Each record: kind (1 byte), length (2 bytes, little endian), payload.
    while rest.len() >= 3 {
        let (kind, len) = (rest[0], usize::from(u16::from_le_bytes([rest[1], rest[2]])));
        let payload = &rest[3..(3 + len).min(rest.len())];
        rest = &rest[(3 + len).min(rest.len())..];
        let now = start + Duration::from_secs(seconds);
        let _ = match kind % 5 {
            0 => viewer.on_text(now, &String::from_utf8_lossy(payload)),
            1 => viewer.on_binary(now, payload),
            2 => {
                seconds += u64::from(payload.first().copied().unwrap_or(1));
                viewer.on_tick(start + Duration::from_secs(seconds))
            }
            3 => viewer.on_channel_closed(),
            _ => viewer.reset(),
        };
        let _ = viewer.screen();
    }
});

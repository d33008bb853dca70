//! Video drawing figures: the native surface's colour conversion (I420 -> cairo's B, G, R, X, by
//! the `yuv` crate) per frame, at the call's size and at the odd sizes a peer sends when it scales
//! its video down, with the CPU it implies at 30 fps.

use sc_call::I420Frame;
use std::time::{Duration, Instant};

pub(crate) fn conversion_figures() {
    for (w, h) in [(640u32, 480u32), (1280, 720), (213, 160)] {
        let frame = I420Frame::filled(w, h, 126, 100, 150);
        let stride = w * 4;
        let mut out = vec![0u8; (stride * h) as usize];
        let mut times: Vec<Duration> = (0..300)
            .map(|_| {
                let t = Instant::now();
                frame.to_bgrx(&mut out, stride).expect("convert");
                t.elapsed()
            })
            .collect();
        times.sort();
        let p50 = times[times.len() / 2];
        println!(
            "video conversion {w}x{h} (yuv crate, I420 -> BGRX), 300 frames: p50 {:.3} ms, max {:.3} ms; at 30 fps {:.3} cores",
            p50.as_secs_f64() * 1000.0,
            times[times.len() - 1].as_secs_f64() * 1000.0,
            p50.as_secs_f64() * 30.0
        );
    }
}

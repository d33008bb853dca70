//! A picture that costs what a camera costs to encode, for the shaped-link tests, the benchmark
//! (both peers send it as a Y4M clip) and the encoder's own tests: a textured room, a face-sized
//! shape that moves and turns, a slow pan, and sensor noise on every pixel. The motion is periodic
//! over [`FRAMES`], so a loop has no cut. Deterministic (a fixed seed): every run sends the same
//! pictures.

use crate::frame::I420Frame;

/// Frames in the loop (two seconds at 30 fps).
pub const FRAMES: usize = 60;
/// The clip's size.
pub const WIDTH: u32 = 640;
/// See [`WIDTH`].
pub const HEIGHT: u32 = 480;

/// The loop's frames, 640x480 I420.
pub fn frames() -> Vec<I420Frame> {
    let (w, h) = (WIDTH as usize, HEIGHT as usize);
    let mut rng = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        // xorshift64*: cheap and good enough for texture and noise.
        rng ^= rng >> 12;
        rng ^= rng << 25;
        rng ^= rng >> 27;
        (rng.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 56) as u8
    };
    // The room: smooth shading with a fixed grain, wider than the frame for the pan.
    let (rw, rh) = (w + 64, h);
    let room: Vec<u8> = (0..rw * rh)
        .map(|i| {
            let (x, y) = (i % rw, i / rw);
            let shade = 90 + (x * 60 / rw) as i32 + (y * 40 / rh) as i32;
            let stripes = if (x / 40 + y / 60) % 2 == 0 { 12 } else { -12 };
            (shade + stripes + i32::from(next() % 24) - 12).clamp(16, 235) as u8
        })
        .collect();
    let face_texture: Vec<u8> = (0..128 * 160).map(|_| next() % 32).collect();
    (0..FRAMES)
        .map(|f| {
            let mut frame = I420Frame::filled(WIDTH, HEIGHT, 0, 0, 0);
            let data = frame.data_mut();
            let phase = f as f64 / FRAMES as f64 * std::f64::consts::TAU;
            let pan = (32.0 + 32.0 * phase.sin()) as usize;
            let (cx, cy) = (w as f64 / 2.0 + 60.0 * phase.cos(), h as f64 / 2.0 + 20.0 * (2.0 * phase).sin());
            let turn = 10.0 * phase.sin();
            let (luma, chroma) = data.split_at_mut(w * h);
            for (i, p) in luma.iter_mut().enumerate() {
                let (x, y) = (i % w, i / w);
                let (dx, dy) = ((x as f64 - cx) / 64.0, (y as f64 - cy) / 80.0);
                let value = if dx * dx + dy * dy <= 1.0 {
                    let tx = ((dx + 1.0) * 64.0 + turn).clamp(0.0, 127.0) as usize;
                    let ty = ((dy + 1.0) * 80.0).clamp(0.0, 159.0) as usize;
                    150 + i32::from(face_texture[ty * 128 + tx]) - (dy * 20.0) as i32
                } else {
                    i32::from(room[y * rw + x + pan])
                };
                *p = (value + i32::from(next() % 9) - 4).clamp(16, 235) as u8;
            }
            // Chroma: a warm face on a cool room, with a little noise.
            for (plane, samples) in chroma.chunks_mut(w * h / 4).enumerate() {
                for (i, p) in samples.iter_mut().enumerate() {
                    let (x, y) = (i % (w / 2), i / (w / 2));
                    let (dx, dy) = ((2 * x) as f64 - cx, (2 * y) as f64 - cy);
                    let face = (dx / 64.0).powi(2) + (dy / 80.0).powi(2) <= 1.0;
                    let base: i32 = match (plane, face) {
                        (0, true) => 110,
                        (1, true) => 150,
                        (0, false) => 135,
                        _ => 122,
                    };
                    *p = (base + i32::from(next() % 5) - 2) as u8;
                }
            }
            frame
        })
        .collect()
}

/// The loop as a Y4M clip (30 fps), for Chromium's fake camera and the kiosk's `y4m::Y4mClip`.
pub fn y4m() -> Vec<u8> {
    let mut out = format!("YUV4MPEG2 W{WIDTH} H{HEIGHT} F30:1 Ip A1:1 C420jpeg\n").into_bytes();
    for frame in frames() {
        out.extend_from_slice(b"FRAME\n");
        out.extend_from_slice(frame.data());
    }
    out
}

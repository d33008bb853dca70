//! Pure conversions between what devices give and what the codecs take: camera pixel layouts to
//! I420 at the call's size, and audio between sample rates and channel counts. No device here, so
//! every path is unit-tested.

use crate::frame::I420Frame;

/// How a camera lays out a frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PixelLayout {
    /// Packed 4:2:2: Y0 U Y1 V.
    Yuyv,
    /// Y plane, then interleaved U/V at half resolution.
    Nv12,
    /// Luma only.
    Gray,
    /// Packed 8-bit RGB.
    Rgb,
    /// Packed 8-bit BGR.
    Bgr,
}

#[cfg(feature = "devices")]
impl TryFrom<nokhwa::utils::FrameFormat> for PixelLayout {
    type Error = String;

    fn try_from(f: nokhwa::utils::FrameFormat) -> Result<Self, String> {
        use nokhwa::utils::FrameFormat as F;
        match f {
            F::YUYV => Ok(PixelLayout::Yuyv),
            F::NV12 => Ok(PixelLayout::Nv12),
            F::GRAY => Ok(PixelLayout::Gray),
            F::RAWRGB => Ok(PixelLayout::Rgb),
            F::RAWBGR => Ok(PixelLayout::Bgr),
            other => Err(format!("camera format {other} is not supported")),
        }
    }
}

/// Converts a `sw`x`sh` frame to I420 of `dw`x`dh` (nearest pixel; the camera is asked for the
/// call's size, so scaling is the exception).
pub fn to_i420(buf: &[u8], layout: PixelLayout, sw: u32, sh: u32, dw: u32, dh: u32) -> Result<I420Frame, String> {
    let (w, h) = (sw as usize, sh as usize);
    let need = match layout {
        PixelLayout::Yuyv => w * h * 2,
        PixelLayout::Nv12 => w * h + w * h / 2,
        PixelLayout::Gray => w * h,
        PixelLayout::Rgb | PixelLayout::Bgr => w * h * 3,
    };
    if w < 2 || h < 2 || buf.len() < need {
        return Err(format!("short camera frame: {} bytes for {sw}x{sh} {layout:?}", buf.len()));
    }
    let (dw, dh) = (dw & !1, dh & !1);
    let mut out = I420Frame::filled(dw, dh, 0, 128, 128);
    let (ow, oh) = (dw as usize, dh as usize);
    // Source pixel for destination (x, y), nearest.
    let sx = |x: usize| (x * w / ow).min(w - 1);
    let sy = |y: usize| (y * h / oh).min(h - 1);
    let rgb = |x: usize, y: usize| -> (f32, f32, f32) {
        let i = (y * w + x) * 3;
        let (a, b, c) = (f32::from(buf[i]), f32::from(buf[i + 1]), f32::from(buf[i + 2]));
        if layout == PixelLayout::Bgr {
            (c, b, a)
        } else {
            (a, b, c)
        }
    };
    // BT.601 limited range, as VP8 expects.
    let luma = |(r, g, b): (f32, f32, f32)| (16.0 + 0.257 * r + 0.504 * g + 0.098 * b).round() as u8;
    let chroma = |(r, g, b): (f32, f32, f32)| {
        (
            (128.0 - 0.148 * r - 0.291 * g + 0.439 * b).round() as u8,
            (128.0 + 0.439 * r - 0.368 * g - 0.071 * b).round() as u8,
        )
    };
    for y in 0..oh {
        for x in 0..ow {
            let (px, py) = (sx(x), sy(y));
            out.data_mut()[y * ow + x] = match layout {
                PixelLayout::Yuyv => buf[(py * w + px) * 2],
                PixelLayout::Nv12 | PixelLayout::Gray => buf[py * w + px],
                PixelLayout::Rgb | PixelLayout::Bgr => luma(rgb(px, py)),
            };
        }
    }
    let (u_base, v_base) = (ow * oh, ow * oh + (ow / 2) * (oh / 2));
    for y in 0..oh / 2 {
        for x in 0..ow / 2 {
            let (px, py) = (sx(x * 2) & !1, sy(y * 2) & !1);
            let (u, v) = match layout {
                PixelLayout::Yuyv => (buf[(py * w + px) * 2 + 1], buf[(py * w + px) * 2 + 3]),
                PixelLayout::Nv12 => {
                    let i = w * h + (py / 2) * w + px;
                    (buf[i], buf[i + 1])
                }
                PixelLayout::Gray => (128, 128),
                PixelLayout::Rgb | PixelLayout::Bgr => chroma(rgb(px, py)),
            };
            out.data_mut()[u_base + y * (ow / 2) + x] = u;
            out.data_mut()[v_base + y * (ow / 2) + x] = v;
        }
    }
    Ok(out)
}

/// Linear resampling of interleaved f32 audio between rates and channel counts (mono is copied to
/// both sides; beyond two channels only the first two are used). Keeps its position between calls
/// so a stream cut into blocks resamples as one.
#[derive(Debug, Clone)]
pub struct Resampler {
    step: f64,
    pos: f64,
    prev: (f32, f32),
    ch_in: usize,
    ch_out: usize,
}

impl Resampler {
    /// From `rate_in` Hz with `ch_in` channels to `rate_out` Hz with `ch_out`.
    pub fn new(rate_in: u32, ch_in: u16, rate_out: u32, ch_out: u16) -> Self {
        Resampler {
            step: f64::from(rate_in.max(1)) / f64::from(rate_out.max(1)),
            pos: 0.0,
            prev: (0.0, 0.0),
            ch_in: usize::from(ch_in.max(1)),
            ch_out: usize::from(ch_out.max(1)),
        }
    }

    /// Resamples one block.
    pub fn process(&mut self, input: &[f32]) -> Vec<f32> {
        let frames: Vec<(f32, f32)> =
            input.chunks_exact(self.ch_in).map(|f| if f.len() == 1 { (f[0], f[0]) } else { (f[0], f[1]) }).collect();
        let at = |i: usize| if i == 0 { self.prev } else { frames[i - 1] };
        let mut out = Vec::with_capacity(((frames.len() as f64 / self.step) as usize + 2) * self.ch_out);
        // Positions index the sequence [prev, frames...]; interpolate while a next frame exists.
        while self.pos + 1.0 <= frames.len() as f64 {
            let i = self.pos as usize;
            let t = (self.pos - i as f64) as f32;
            let (a, b) = (at(i), at((i + 1).min(frames.len())));
            let (l, r) = (a.0 + (b.0 - a.0) * t, a.1 + (b.1 - a.1) * t);
            match self.ch_out {
                1 => out.push((l + r) / 2.0),
                n => {
                    out.push(l);
                    out.push(r);
                    out.extend(std::iter::repeat_n(0.0, n - 2));
                }
            }
            self.pos += self.step;
        }
        if let Some(&last) = frames.last() {
            self.pos -= frames.len() as f64;
            self.prev = last;
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn yuyv_keeps_luma_and_chroma() {
        // 4x2 YUYV: left half Y=50, right half Y=200; U=90, V=160 everywhere.
        let mut buf = Vec::new();
        for _row in 0..2 {
            buf.extend_from_slice(&[50, 90, 50, 160, 200, 90, 200, 160]);
        }
        let f = to_i420(&buf, PixelLayout::Yuyv, 4, 2, 4, 2).expect("converts");
        assert_eq!(f.y(), &[50, 50, 200, 200, 50, 50, 200, 200]);
        assert_eq!(&f.data()[8..], &[90, 90, 160, 160]);
    }

    #[test]
    fn scaling_and_rgb() {
        let white = vec![255u8; 8 * 4 * 3];
        let f = to_i420(&white, PixelLayout::Rgb, 8, 4, 4, 2).expect("converts");
        assert_eq!((f.width(), f.height()), (4, 2));
        assert!(f.y().iter().all(|&y| y == 235), "white is luma 235 in limited range: {:?}", f.y());
        assert!(f.data()[8..].iter().all(|&c| c == 128), "white has no chroma");
    }

    #[test]
    fn short_frames_are_refused() {
        assert!(to_i420(&[0; 10], PixelLayout::Yuyv, 640, 480, 640, 480).is_err());
    }

    #[test]
    fn resampling_keeps_length_and_tone() {
        // 44.1 kHz mono tone to 48 kHz stereo, in uneven blocks.
        let tone: Vec<f32> = (0..44_100).map(|i| (std::f32::consts::TAU * 440.0 * i as f32 / 44_100.0).sin()).collect();
        let mut r = Resampler::new(44_100, 1, 48_000, 2);
        let mut out = Vec::new();
        for block in tone.chunks(441 + 17) {
            out.extend(r.process(block));
        }
        let frames = out.len() / 2;
        assert!((47_990..=48_000).contains(&frames), "{frames}");
        assert!(out.chunks(2).all(|p| p[0] == p[1]), "mono goes to both sides");
        let rms = (out.iter().map(|s| s * s).sum::<f32>() / out.len() as f32).sqrt();
        assert!((rms - std::f32::consts::FRAC_1_SQRT_2).abs() < 0.01, "{rms}");
        let same = Resampler::new(48_000, 2, 48_000, 2).process(&[0.5, -0.5, 0.25, -0.25]);
        assert_eq!(same, vec![0.0, 0.0, 0.5, -0.5], "one frame of delay, values unchanged");
    }
}

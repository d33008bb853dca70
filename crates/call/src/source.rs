//! Media sources. Synthetic ones (a moving test pattern and a tone) let tests and the demo run
//! without a camera or microphone; real devices plug in behind the same traits.

use crate::frame::I420Frame;

/// Produces video frames on demand.
pub trait VideoSource: Send + 'static {
    /// The next frame.
    fn next_frame(&mut self) -> I420Frame;
}

/// Produces 20 ms of 48 kHz stereo audio (960 frames, interleaved) on demand.
pub trait AudioSource: Send + 'static {
    /// Fills `out` (1920 samples).
    fn fill(&mut self, out: &mut [i16]);
}

/// Takes decoded remote audio: 20 ms of 48 kHz stereo (960 frames, interleaved) at a time.
pub trait AudioSink: Send + 'static {
    /// Plays `pcm`; must not block (a device that falls behind drops, it does not stall the call).
    fn play(&mut self, pcm: &[i16]);
}

/// Discards audio (tests, and a laptop told to play nothing).
#[derive(Debug, Clone, Copy, Default)]
pub struct NullSink;

impl AudioSink for NullSink {
    fn play(&mut self, _pcm: &[i16]) {}
}

/// A test pattern: eight vertical colour bars (known luma per bar) with a white square moving
/// across the lower third, so motion and content can both be checked.
#[derive(Debug, Clone)]
pub struct TestPattern {
    width: u32,
    height: u32,
    tick: u32,
}

/// Luma of each of the eight bars, left to right.
pub const BAR_LUMA: [u8; 8] = [235, 210, 170, 145, 106, 81, 41, 16];

impl TestPattern {
    /// A pattern of this size (even width and height).
    pub fn new(width: u32, height: u32) -> Self {
        TestPattern { width: width & !1, height: height & !1, tick: 0 }
    }
}

impl VideoSource for TestPattern {
    fn next_frame(&mut self) -> I420Frame {
        let (w, h) = (self.width as usize, self.height as usize);
        let mut f = I420Frame::filled(self.width, self.height, 0, 128, 128);
        let bar_w = (w / 8).max(1);
        for row in 0..h {
            for col in 0..w {
                f.data_mut()[row * w + col] = BAR_LUMA[(col / bar_w).min(7)];
            }
        }
        let side = h / 6;
        let x0 = (self.tick as usize * 4) % w.saturating_sub(side).max(1);
        for row in (h * 2 / 3)..(h * 2 / 3 + side).min(h) {
            for col in x0..(x0 + side).min(w) {
                f.data_mut()[row * w + col] = 255;
            }
        }
        self.tick = self.tick.wrapping_add(1);
        f
    }
}

/// The synthetic "close-up" camera: a checkerboard of 40x40 squares, luma 220 and 40, so a switch
/// of camera shows in the picture (mean luma 130, against the bars' 138).
#[derive(Debug, Clone)]
pub struct Checkerboard {
    width: u32,
    height: u32,
}

/// Luma of the checkerboard's light and dark squares.
pub const CHECKER_LUMA: (u8, u8) = (220, 40);

impl Checkerboard {
    /// A checkerboard of this size (even width and height).
    pub fn new(width: u32, height: u32) -> Self {
        Checkerboard { width: width & !1, height: height & !1 }
    }
}

impl VideoSource for Checkerboard {
    fn next_frame(&mut self) -> I420Frame {
        let w = self.width as usize;
        let mut f = I420Frame::filled(self.width, self.height, 0, 128, 128);
        for (i, p) in f.data_mut()[..w * self.height as usize].iter_mut().enumerate() {
            let (row, col) = (i / w, i % w);
            *p = if (row / 40 + col / 40) % 2 == 0 { CHECKER_LUMA.0 } else { CHECKER_LUMA.1 };
        }
        f
    }
}

/// A black frame source (camera off).
#[derive(Debug, Clone)]
pub struct Black {
    width: u32,
    height: u32,
}

impl Black {
    /// Black frames of this size.
    pub fn new(width: u32, height: u32) -> Self {
        Black { width, height }
    }
}

impl VideoSource for Black {
    fn next_frame(&mut self) -> I420Frame {
        I420Frame::filled(self.width, self.height, 16, 128, 128)
    }
}

/// A sine tone.
#[derive(Debug, Clone)]
pub struct Tone {
    hz: f64,
    amplitude: f64,
    phase: f64,
}

impl Tone {
    /// A tone at `hz`, amplitude 0..1 of full scale.
    pub fn new(hz: f64, amplitude: f64) -> Self {
        Tone { hz, amplitude, phase: 0.0 }
    }
}

impl AudioSource for Tone {
    fn fill(&mut self, out: &mut [i16]) {
        let step = std::f64::consts::TAU * self.hz / 48_000.0;
        for pair in out.chunks_mut(2) {
            let s = (self.phase.sin() * self.amplitude * f64::from(i16::MAX)) as i16;
            pair.fill(s);
            self.phase = (self.phase + step) % std::f64::consts::TAU;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pattern_bars_have_known_luma_and_the_square_moves() {
        let mut p = TestPattern::new(640, 480);
        let a = p.next_frame();
        assert_eq!(a.mean_luma(10, 10, 60, 100), f64::from(BAR_LUMA[0]));
        assert_eq!(a.mean_luma(570, 10, 60, 100), f64::from(BAR_LUMA[7]));
        let b = p.next_frame();
        assert_ne!(a, b, "the square moves");
    }

    #[test]
    fn checkerboard_alternates() {
        let f = Checkerboard::new(640, 480).next_frame();
        assert_eq!(f.mean_luma(0, 0, 40, 40), f64::from(CHECKER_LUMA.0));
        assert_eq!(f.mean_luma(40, 0, 40, 40), f64::from(CHECKER_LUMA.1));
        assert_eq!(f.mean_luma(0, 0, 640, 480), 130.0);
    }

    #[test]
    fn tone_has_energy() {
        let mut t = Tone::new(440.0, 0.3);
        let mut buf = vec![0i16; 1920];
        t.fill(&mut buf);
        let rms = (buf.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / buf.len() as f64).sqrt();
        assert!(rms > 0.2 * f64::from(i16::MAX) && rms < 0.25 * f64::from(i16::MAX), "{rms}");
    }
}

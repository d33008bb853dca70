//! Media sources. Synthetic ones (a moving test pattern, a tone, a voice) let tests and the demo run
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

/// A synthetic voice: what a microphone hears of someone talking, for the link tests and the
/// benchmark (a steady tone is no voice: Opus codes it as music, with no in-band FEC, and its
/// voice detector hears no speech). Voiced syllables four to five a second, a pitch that glides
/// between 100 and 180 Hz, formant-shaped harmonics that change with each vowel, breathy noise,
/// and a dip to a murmur between syllables and phrases. Deterministic: a phase that restarts
/// gives the same samples, and [`Voice::PERIOD_SECS`] seconds loop without a cut.
#[derive(Debug, Clone)]
pub struct Voice {
    /// Samples produced since the start of the loop.
    t: u64,
    /// The glottal phase (0..1).
    phase: f64,
    noise: u32,
    amplitude: f64,
}

impl Voice {
    /// The loop's length.
    pub const PERIOD_SECS: u64 = 6;
    const SEED: u32 = 0x1234_5678;
    /// Syllable onsets in the loop, in seconds, each with its vowel (index into `VOWELS`).
    const SYLLABLES: [(f64, usize); 24] = [
        (0.00, 0),
        (0.21, 1),
        (0.40, 2),
        (0.63, 3),
        (0.85, 1),
        (1.04, 4),
        (1.30, 0),
        (1.52, 2),
        (2.20, 3),
        (2.41, 0),
        (2.66, 4),
        (2.88, 1),
        (3.10, 2),
        (3.29, 3),
        (3.55, 0),
        (4.15, 1),
        (4.37, 4),
        (4.58, 2),
        (4.80, 0),
        (5.02, 3),
        (5.23, 1),
        (5.40, 4),
        (5.58, 2),
        (5.75, 0),
    ];
    /// Formant centre frequencies (Hz) of five vowels: a, e, i, o, u.
    const VOWELS: [[f64; 3]; 5] = [
        [730.0, 1090.0, 2440.0],
        [530.0, 1840.0, 2480.0],
        [270.0, 2290.0, 3010.0],
        [570.0, 840.0, 2410.0],
        [300.0, 870.0, 2240.0],
    ];

    /// A voice at `amplitude` (0..1 of full scale) at its loudest.
    pub fn new(amplitude: f64) -> Self {
        Voice { t: 0, phase: 0.0, noise: Self::SEED, amplitude }
    }

    /// The sample at the current time, advancing it.
    fn sample(&mut self) -> f64 {
        let rate = 48_000.0;
        let period = Self::PERIOD_SECS * 48_000;
        if self.t == 0 {
            // The loop starts again exactly as it began.
            self.phase = 0.0;
            self.noise = Self::SEED;
        }
        let secs = self.t as f64 / rate;
        self.t = (self.t + 1) % period;
        // The syllable we are in, and how far into it.
        let i = Self::SYLLABLES.iter().rposition(|&(at, _)| at <= secs).unwrap_or(0);
        let (start, vowel) = Self::SYLLABLES[i];
        let end = Self::SYLLABLES.get(i + 1).map_or(Self::PERIOD_SECS as f64, |&(at, _)| at);
        let into = secs - start;
        let length = (end - start).min(0.24);
        // Rise over 30 ms, fall to a murmur by the syllable's end (or the phrase's pause).
        let envelope = if into < 0.03 {
            into / 0.03
        } else if into < length {
            1.0 - 0.8 * ((into - 0.03) / (length - 0.03)).powi(2)
        } else {
            0.05
        };
        let pitch = 140.0 + 40.0 * (std::f64::consts::TAU * secs / 1.7).sin() - 30.0 * into;
        self.phase = (self.phase + pitch / rate) % 1.0;
        let formants = Self::VOWELS[vowel];
        let mut voiced = 0.0;
        let mut h = 1.0;
        while h * pitch < 3800.0 {
            let f = h * pitch;
            // Each harmonic weighted by its distance to the vowel's formants.
            let weight: f64 = formants
                .iter()
                .enumerate()
                .map(|(k, &fc)| (1.0 / (k as f64 + 1.0)) / (1.0 + ((f - fc) / 120.0).powi(2)))
                .sum();
            voiced += weight * (std::f64::consts::TAU * h * self.phase).sin() / h.sqrt();
            h += 1.0;
        }
        // xorshift32: breath noise.
        self.noise ^= self.noise << 13;
        self.noise ^= self.noise >> 17;
        self.noise ^= self.noise << 5;
        let breath = (f64::from(self.noise) / f64::from(u32::MAX) - 0.5) * 0.08;
        (envelope * (0.5 * voiced + breath)).clamp(-1.0, 1.0)
    }
}

impl AudioSource for Voice {
    fn fill(&mut self, out: &mut [i16]) {
        for pair in out.chunks_mut(2) {
            let s = (self.sample() * self.amplitude * f64::from(i16::MAX)) as i16;
            pair.fill(s);
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

    #[test]
    fn the_voice_loops_without_a_cut_talks_in_syllables_and_never_clips() {
        let mut v = Voice::new(0.5);
        let period = (Voice::PERIOD_SECS * 50) as usize; // 20 ms packets in the loop
        let mut packets = Vec::new();
        for _ in 0..period + 1 {
            let mut buf = vec![0i16; 1920];
            v.fill(&mut buf);
            packets.push(buf);
        }
        assert!(packets[0] == packets[period], "the loop restarts where it began");
        let rms: Vec<f64> = packets
            .iter()
            .map(|p| (p.iter().map(|&s| f64::from(s).powi(2)).sum::<f64>() / p.len() as f64).sqrt())
            .collect();
        let loud = rms.iter().filter(|&&r| r > 0.05 * f64::from(i16::MAX)).count();
        let quiet = rms.iter().filter(|&&r| r < 0.02 * f64::from(i16::MAX)).count();
        assert!(
            loud > period / 3 && quiet > period / 20,
            "syllables and pauses: {loud} loud, {quiet} quiet of {period}"
        );
        assert!(packets.iter().flatten().all(|&s| s.unsigned_abs() < 32_000), "no clipping");
    }
}

//! A microphone that plays a WAV file in a loop (as Chromium's `--use-file-for-fake-audio-capture`
//! does), so the link tests and the benchmark have the kiosk say what the consultant's Chromium
//! says: a voice Opus hears as speech. 16-bit mono PCM at 48 kHz only; the file is read whole (a
//! few seconds of speech, at most [`MAX_SAMPLES`]).

use crate::source::AudioSource;
use std::path::Path;

/// The longest clip accepted: a minute of 48 kHz mono (5.8 MB).
pub const MAX_SAMPLES: usize = 48_000 * 60;

/// Why a WAV file could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum WavError {
    /// Not a RIFF WAVE file, or cut short inside a chunk header.
    #[error("not a WAV file")]
    NotWav,
    /// A format other than 16-bit mono PCM.
    #[error("not 16-bit mono PCM")]
    Format,
    /// No samples (or no `data` chunk).
    #[error("no audio in it")]
    Empty,
    /// Longer than [`MAX_SAMPLES`].
    #[error("longer than a minute")]
    TooLong,
}

/// A parsed 16-bit mono PCM WAV file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Wav {
    /// Samples a second.
    pub rate: u32,
    /// The samples.
    pub samples: Vec<i16>,
}

impl Wav {
    /// Parses a WAV file's bytes: its `fmt ` and `data` chunks, every length checked.
    pub fn parse(bytes: &[u8]) -> Result<Self, WavError> {
        let u16_at = |at: usize| bytes.get(at..at + 2).map(|b| u16::from_le_bytes([b[0], b[1]]));
        let u32_at = |at: usize| bytes.get(at..at + 4).map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]));
        if bytes.get(..4) != Some(b"RIFF") || bytes.get(8..12) != Some(b"WAVE") {
            return Err(WavError::NotWav);
        }
        let (mut at, mut rate, mut data) = (12usize, None, None);
        while let (Some(id), Some(len)) = (bytes.get(at..at + 4), u32_at(at + 4)) {
            let body = at + 8;
            let len = usize::try_from(len).map_err(|_| WavError::NotWav)?;
            match id {
                b"fmt " => {
                    let (Some(tag), Some(channels), Some(bits), Some(r)) =
                        (u16_at(body), u16_at(body + 2), u16_at(body + 14), u32_at(body + 4))
                    else {
                        return Err(WavError::NotWav);
                    };
                    if (tag, channels, bits) != (1, 1, 16) {
                        return Err(WavError::Format);
                    }
                    rate = Some(r);
                }
                // A writer that could not seek back leaves the data's length at its largest.
                b"data" => data = bytes.get(body..body.saturating_add(len).min(bytes.len())),
                _ => {}
            }
            at = body.saturating_add(len).saturating_add(len % 2);
        }
        let (Some(rate), Some(data)) = (rate.filter(|r| *r > 0), data) else { return Err(WavError::Empty) };
        if data.len() / 2 > MAX_SAMPLES {
            return Err(WavError::TooLong);
        }
        let samples: Vec<i16> = data.chunks_exact(2).map(|b| i16::from_le_bytes([b[0], b[1]])).collect();
        if samples.is_empty() {
            return Err(WavError::Empty);
        }
        Ok(Wav { rate, samples })
    }

    /// The file's bytes: 16-bit mono PCM.
    pub fn to_bytes(&self) -> Vec<u8> {
        let data = u32::try_from(self.samples.len() * 2).unwrap_or(u32::MAX);
        let mut out = Vec::with_capacity(44 + self.samples.len() * 2);
        out.extend_from_slice(b"RIFF");
        out.extend_from_slice(&data.saturating_add(36).to_le_bytes());
        out.extend_from_slice(b"WAVEfmt ");
        // PCM, 1 channel, the rate, its bytes a second, 2-byte frames, 16 bits.
        for field in
            [16u32.to_le_bytes().as_slice(), &1u16.to_le_bytes(), &1u16.to_le_bytes(), &self.rate.to_le_bytes()]
        {
            out.extend_from_slice(field);
        }
        for field in [self.rate.saturating_mul(2).to_le_bytes().as_slice(), &2u16.to_le_bytes(), &16u16.to_le_bytes()] {
            out.extend_from_slice(field);
        }
        out.extend_from_slice(b"data");
        out.extend_from_slice(&data.to_le_bytes());
        for s in &self.samples {
            out.extend_from_slice(&s.to_le_bytes());
        }
        out
    }
}

/// A WAV file played in a loop as the microphone.
#[derive(Debug, Clone)]
pub struct WavLoop {
    samples: Vec<i16>,
    at: usize,
}

impl WavLoop {
    /// Opens `path`: 16-bit mono PCM at 48 kHz.
    pub fn open(path: &Path) -> Result<Self, String> {
        let why = |e: &dyn std::fmt::Display| format!("voice clip {}: {e}", path.display());
        let bytes = std::fs::read(path).map_err(|e| why(&e))?;
        let wav = Wav::parse(&bytes).map_err(|e| why(&e))?;
        if wav.rate != 48_000 {
            return Err(why(&format!("{} Hz, the call sends 48000", wav.rate)));
        }
        Ok(WavLoop { samples: wav.samples, at: 0 })
    }
}

impl AudioSource for WavLoop {
    fn fill(&mut self, out: &mut [i16]) {
        // Stereo out: each sample on both channels.
        for frame in out.chunks_exact_mut(2) {
            let s = self.samples[self.at];
            self.at = (self.at + 1) % self.samples.len();
            frame.fill(s);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wav_written_reads_back_loops_and_anything_else_is_refused() {
        let wav = Wav { rate: 48_000, samples: (0..1000).map(|i| (i * 37 % 2000 - 1000) as i16).collect() };
        let bytes = wav.to_bytes();
        assert_eq!(Wav::parse(&bytes), Ok(wav.clone()));
        let dir = tempfile::tempdir().expect("a temporary directory");
        let path = dir.path().join("voice.wav");
        std::fs::write(&path, &bytes).expect("write");
        let mut mic = WavLoop::open(&path).expect("opens");
        let mut out = vec![0i16; 1920];
        mic.fill(&mut out);
        mic.fill(&mut out);
        // 1920 samples in, the loop has wrapped (1000 samples): sample 920 of the second 960.
        assert_eq!((out[0], out[1]), (wav.samples[960], wav.samples[960]));
        assert_eq!(out[2 * 40], wav.samples[0], "wrapped to the start");
        assert_eq!(Wav::parse(&bytes[..30]), Err(WavError::NotWav), "cut short");
        assert_eq!(Wav::parse(&bytes[..44]), Err(WavError::Empty), "no samples");
        assert_eq!(Wav::parse(b"RIFX\0\0\0\0WAVE"), Err(WavError::NotWav));
        let mut stereo = bytes.clone();
        stereo[22] = 2;
        assert_eq!(Wav::parse(&stereo), Err(WavError::Format), "two channels");
        std::fs::write(&path, Wav { rate: 22_050, ..wav }.to_bytes()).expect("write");
        assert!(WavLoop::open(&path).expect_err("not 48 kHz").contains("22050 Hz"));
    }
}

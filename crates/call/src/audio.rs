//! Opus at 48 kHz stereo in 20 ms packets, with in-band FEC on; the decoder conceals or recovers
//! lost packets and measures the energy it hears.

use crate::Error;

/// Samples per channel in one 20 ms packet.
pub(crate) const FRAME: usize = 960;
/// Interleaved stereo samples in one packet.
pub(crate) const FRAME_STEREO: usize = FRAME * 2;

fn codec(e: impl std::fmt::Display) -> Error {
    Error::Codec(format!("opus: {e}"))
}

pub(crate) struct OpusEncoder {
    enc: opus::Encoder,
    buf: Vec<u8>,
    /// The (kbit/s, loss %) last set.
    tuned: (u32, u8),
}

impl OpusEncoder {
    pub(crate) fn new() -> Result<Self, Error> {
        let mut enc = opus::Encoder::new(48_000, opus::Channels::Stereo, opus::Application::Voip).map_err(codec)?;
        // In-band FEC lets the far end rebuild a lost packet from the next one; it only engages
        // when the encoder expects loss.
        enc.set_inband_fec(true).map_err(codec)?;
        enc.set_packet_loss_perc(10).map_err(codec)?;
        enc.set_bitrate(opus::Bitrate::Bits(32_000)).map_err(codec)?;
        // Silence goes out as tiny packets (discontinuous transmission): bitrate for the voice.
        enc.set_dtx(true).map_err(codec)?;
        Ok(OpusEncoder { enc, buf: vec![0; 4000], tuned: (32, 10) })
    }

    /// Follows the link: the voice's bitrate, and the loss its in-band FEC is tuned for.
    pub(crate) fn tune(&mut self, kbps: u32, loss_pct: u8) -> Result<(), Error> {
        if (kbps, loss_pct) == self.tuned {
            return Ok(());
        }
        let bits = i32::try_from(kbps.saturating_mul(1000)).unwrap_or(i32::MAX);
        self.enc.set_bitrate(opus::Bitrate::Bits(bits)).map_err(codec)?;
        self.enc.set_packet_loss_perc(i32::from(loss_pct)).map_err(codec)?;
        self.tuned = (kbps, loss_pct);
        Ok(())
    }

    pub(crate) fn encode(&mut self, pcm: &[i16]) -> Result<Vec<u8>, Error> {
        let n = self.enc.encode(pcm, &mut self.buf).map_err(codec)?;
        Ok(self.buf[..n].to_vec())
    }
}

pub(crate) struct OpusDecoder {
    dec: opus::Decoder,
    last_seq: Option<u16>,
    pcm: Vec<i16>,
}

/// What one received packet produced.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Decoded {
    /// Mean square of the samples, as a fraction of full scale squared.
    pub(crate) energy: f64,
    /// Packets lost just before this one (concealed or recovered).
    pub(crate) lost: u16,
    /// Samples per channel produced (including concealment).
    pub(crate) samples: usize,
}

impl OpusDecoder {
    pub(crate) fn new() -> Result<Self, Error> {
        Ok(OpusDecoder {
            dec: opus::Decoder::new(48_000, opus::Channels::Stereo).map_err(codec)?,
            last_seq: None,
            pcm: vec![0; FRAME_STEREO * 6],
        })
    }

    /// Decodes the packet with RTP sequence number `seq`; gaps are filled from FEC or concealed.
    pub(crate) fn decode(&mut self, seq: u16, packet: &[u8], out: &mut Vec<i16>) -> Result<Decoded, Error> {
        let lost = match self.last_seq {
            Some(prev) => seq.wrapping_sub(prev).wrapping_sub(1),
            None => 0,
        };
        if lost > 1000 {
            // A reordered (late) packet: its slot was already concealed.
            return Ok(Decoded::default());
        }
        self.last_seq = Some(seq);
        let mut samples = 0;
        for i in 0..lost.min(5) {
            // The last missing packet can be rebuilt from this one's FEC; earlier ones are concealed.
            let fec = i + 1 == lost.min(5);
            let input: &[u8] = if fec { packet } else { &[] };
            let n = self.dec.decode(input, &mut self.pcm[..FRAME_STEREO], fec).map_err(codec)?;
            out.extend_from_slice(&self.pcm[..n * 2]);
            samples += n;
        }
        let n = self.dec.decode(packet, &mut self.pcm, false).map_err(codec)?;
        out.extend_from_slice(&self.pcm[..n * 2]);
        samples += n;
        let fresh = &self.pcm[..n * 2];
        let energy = if fresh.is_empty() {
            0.0
        } else {
            fresh.iter().map(|&s| (f64::from(s) / 32768.0).powi(2)).sum::<f64>() / fresh.len() as f64
        };
        Ok(Decoded { energy, lost, samples })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{AudioSource, Tone};

    #[test]
    fn a_tone_survives_and_loss_is_concealed() {
        let mut enc = OpusEncoder::new().expect("encoder");
        let mut dec = OpusDecoder::new().expect("decoder");
        let mut tone = Tone::new(440.0, 0.3);
        let mut pcm = vec![0i16; FRAME_STEREO];
        let mut out = Vec::new();
        let mut last = Decoded::default();
        for seq in 0u16..50 {
            tone.fill(&mut pcm);
            let pkt = enc.encode(&pcm).expect("encode");
            if seq == 30 || seq == 31 {
                continue; // lost on the way
            }
            last = dec.decode(seq, &pkt, &mut out).expect("decode");
            if seq == 32 {
                assert_eq!(last.lost, 2);
                assert_eq!(last.samples, 3 * FRAME, "two concealed or recovered frames, then this one");
            }
        }
        assert!(last.energy > 0.02, "tone energy {}", last.energy);
        assert_eq!(out.len(), 50 * FRAME_STEREO, "every 20 ms slot produced audio");
        assert!(dec.decode(50, b"\xff\xff\xff", &mut out).is_err(), "a corrupt packet is an error, not a panic");
    }
}

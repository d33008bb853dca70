//! Opus at 48 kHz stereo in 20 ms packets (60 ms on a slow link), with in-band FEC on; the decoder conceals or recovers
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
        // A voice call: told so, Opus stays in its speech mode (SILK) even for a steady tone and at
        // a few percent loss, the only mode that carries in-band FEC; left to guess it chose CELT
        // at 32 kbit/s below 8 % loss, and a lost packet could only be concealed. One microphone:
        // one channel, all the bits for it.
        enc.set_signal(opus::Signal::Voice).map_err(codec)?;
        enc.set_force_channels(Some(opus::Channels::Mono)).map_err(codec)?;
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
        self.enc.set_max_bandwidth(fec_band(kbps, loss_pct)).map_err(codec)?;
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
    pcm: Vec<i16>,
}

/// What one packet's own speech decoded to.
#[derive(Debug, Default, Clone, Copy, PartialEq)]
pub(crate) struct Played {
    /// Mean square of the samples, as a fraction of full scale squared.
    pub(crate) energy: f64,
    /// Samples per channel (960 for 20 ms).
    pub(crate) samples: usize,
}

impl OpusDecoder {
    pub(crate) fn new() -> Result<Self, Error> {
        Ok(OpusDecoder {
            dec: opus::Decoder::new(48_000, opus::Channels::Stereo).map_err(codec)?,
            pcm: vec![0; FRAME_STEREO * 6],
        })
    }

    /// Decodes one packet's own speech.
    pub(crate) fn play(&mut self, packet: &[u8], out: &mut Vec<i16>) -> Result<Played, Error> {
        let n = self.dec.decode(packet, &mut self.pcm, false).map_err(codec)?;
        let fresh = &self.pcm[..n * 2];
        out.extend_from_slice(fresh);
        let energy = if fresh.is_empty() {
            0.0
        } else {
            fresh.iter().map(|&s| (f64::from(s) / 32768.0).powi(2)).sum::<f64>() / fresh.len() as f64
        };
        Ok(Played { energy, samples: n })
    }

    /// Rebuilds the `samples` (per channel) of the packet before `next`: whole from `repeat` (the
    /// copy of it RED carries in `next`), else from `next`'s in-band FEC; conceals them when
    /// neither can. Returns whether they were rebuilt. The repeat is the peer's (network input):
    /// one that does not decode is concealed.
    pub(crate) fn rebuild(
        &mut self,
        next: &[u8],
        repeat: Option<&[u8]>,
        samples: usize,
        out: &mut Vec<i16>,
    ) -> Result<bool, Error> {
        let span = samples.clamp(120, FRAME * 6) * 2;
        if let Some(frame) = repeat {
            if let Ok(n) = self.dec.decode(frame, &mut self.pcm, false) {
                out.extend_from_slice(&self.pcm[..n * 2]);
                return Ok(true);
            }
        } else if carries_fec(next) {
            let n = self.dec.decode(next, &mut self.pcm[..span], true).map_err(codec)?;
            out.extend_from_slice(&self.pcm[..n * 2]);
            return Ok(true);
        }
        self.conceal(samples, out)?;
        Ok(false)
    }

    /// Conceals `samples` per channel (a multiple of 120, 2.5 ms) with the decoder's packet loss
    /// concealment: the voice carried on and faded, quiet after a quiet packet.
    pub(crate) fn conceal(&mut self, samples: usize, out: &mut Vec<i16>) -> Result<(), Error> {
        let span = samples.clamp(120, FRAME * 6) * 2;
        let n = self.dec.decode(&[], &mut self.pcm[..span], false).map_err(codec)?;
        out.extend_from_slice(&self.pcm[..n * 2]);
        Ok(())
    }
}

/// The widest band in which Opus still codes in-band FEC at `kbps` when `loss_pct` is expected.
///
/// libopus adds FEC only when its loss-discounted rate (the rate less `loss / (6 loss + 10)` of
/// it) beats a threshold per band (its `decide_fec`: 13, 15, 17, 21, 23 kbit/s from narrowband
/// up, hysteresis included, scaled by 125 % less the loss), and narrows the band itself only
/// above 5 % loss: at 24 kbit/s and 2 % it coded super-wideband with no FEC at all. On a lossy
/// link a narrower band that repairs a lost packet is worth more than a wider one that cannot.
/// With no loss expected the band is left open.
fn fec_band(kbps: u32, loss_pct: u8) -> opus::Bandwidth {
    use opus::Bandwidth::{Fullband, Mediumband, Narrowband, Superwideband, Wideband};
    if loss_pct == 0 {
        return Fullband;
    }
    let loss = u64::from(loss_pct);
    let bits = u64::from(kbps) * 1000;
    let rate = bits - bits * loss / (6 * loss + 10);
    let scale = 125 - loss.min(25);
    [(Fullband, 23_000), (Superwideband, 21_000), (Wideband, 17_000), (Mediumband, 15_000)]
        .into_iter()
        .find(|&(_, threshold)| rate > threshold * scale / 100)
        .map_or(Narrowband, |(band, _)| band)
}

/// Whether an Opus packet carries in-band FEC (SILK's LBRR) for the packet before it.
///
/// The first SILK symbols are one VAD flag per SILK frame then the LBRR flag, per channel, coded
/// as raw bits, so they are read off the first byte of the first frame (RFC 6716, 4.2.3). CELT
/// packets never carry it. A packet that does not parse carries nothing.
pub(crate) fn carries_fec(packet: &[u8]) -> bool {
    let Some(&toc) = packet.first() else { return false };
    if toc & 0x80 != 0 {
        return false; // CELT only
    }
    let Ok(parsed) = opus::packet::parse(packet) else { return false };
    let Some(&first) = parsed.frames.first().and_then(|f| f.first()) else { return false };
    // SILK frames of 20 ms in one Opus frame: SILK configurations (0..=11) last 10, 20, 40 or
    // 60 ms by their low two bits; hybrid ones (12..=15) 10 or 20 ms.
    let config = toc >> 3;
    let silk_frames: u32 = match (config >= 12, config & 0x3) {
        (true, _) | (false, 0 | 1) => 1,
        (false, 2) => 2,
        (false, _) => 3,
    };
    let channels: u32 = if toc & 0x04 != 0 { 2 } else { 1 };
    (1..=channels).any(|n| first & (0x80u8 >> (n * (silk_frames + 1) - 1)) != 0)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::source::{AudioSource, Tone, Voice};

    /// What one received packet produced, gaps before it included.
    #[derive(Debug, Default, Clone, Copy, PartialEq)]
    struct Decoded {
        energy: f64,
        /// Packets lost just before this one (concealed or recovered).
        lost: u16,
        /// Of those, rebuilt from this packet (its repeat or its FEC).
        recovered: u16,
        /// Samples per channel produced (concealment included).
        samples: usize,
    }

    /// Decodes packets as they come, filling gaps in the sequence numbers (what the jitter buffer,
    /// `crate::voice_playout`, asks of the decoder, without its timing).
    struct SeqDecoder {
        dec: OpusDecoder,
        last: Option<u16>,
    }

    impl SeqDecoder {
        fn new() -> Result<Self, Error> {
            Ok(SeqDecoder { dec: OpusDecoder::new()?, last: None })
        }

        fn decode(&mut self, seq: u16, packet: &[u8], out: &mut Vec<i16>) -> Result<Decoded, Error> {
            self.decode_with(seq, packet, None, out)
        }

        fn decode_with(
            &mut self,
            seq: u16,
            packet: &[u8],
            previous: Option<&[u8]>,
            out: &mut Vec<i16>,
        ) -> Result<Decoded, Error> {
            let lost = self.last.map_or(0, |prev| seq.wrapping_sub(prev).wrapping_sub(1));
            self.last = Some(seq);
            // A lost packet lasted as long as this one.
            let span = opus::packet::get_nb_samples(packet, 48_000).unwrap_or(FRAME);
            let (mut samples, mut recovered) = (0, 0);
            for i in 0..lost {
                let before = out.len();
                if i + 1 == lost {
                    recovered += u16::from(self.dec.rebuild(packet, previous, span, out)?);
                } else {
                    self.dec.conceal(span, out)?;
                }
                samples += (out.len() - before) / 2;
            }
            let played = self.dec.play(packet, out)?;
            Ok(Decoded { energy: played.energy, lost, recovered, samples: samples + played.samples })
        }
    }

    #[test]
    fn a_tone_survives_and_loss_is_concealed() {
        let mut enc = OpusEncoder::new().expect("encoder");
        let mut dec = SeqDecoder::new().expect("decoder");
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

    /// Prison links lose about 3 % of packets: the voice must carry in-band FEC there, and a
    /// lost packet be rebuilt from the next one. Opus left to itself coded the test tone in CELT
    /// at that loss, which carries none, and every lost packet was concealed.
    #[test]
    fn issue_12_at_prison_loss_the_voice_carries_fec_and_a_lost_packet_is_rebuilt() {
        for (kbps, loss) in [(32, 3), (24, 2), (24, 5), (32, 10), (24, 20)] {
            let mut enc = OpusEncoder::new().expect("encoder");
            enc.tune(kbps, loss).expect("tune");
            let mut dec = SeqDecoder::new().expect("decoder");
            let mut voice = Voice::new(0.3);
            let mut pcm = vec![0i16; FRAME_STEREO];
            let mut out = Vec::new();
            let (mut with_fec, mut lost, mut recovered) = (0, 0, 0);
            for seq in 0u16..200 {
                voice.fill(&mut pcm);
                let pkt = enc.encode(&pcm).expect("encode");
                with_fec += usize::from(carries_fec(&pkt));
                if seq % 10 == 5 {
                    continue; // every tenth packet lost
                }
                let d = dec.decode(seq, &pkt, &mut out).expect("decode");
                lost += d.lost;
                recovered += d.recovered;
            }
            // Murmurs between syllables are not speech to Opus and carry none.
            assert!(with_fec >= 120, "{kbps} kbit/s at {loss} %: {with_fec} of 200 packets carried FEC");
            assert!(recovered >= 16, "{kbps} kbit/s at {loss} %: {recovered} of {lost} lost packets rebuilt");
        }
    }

    /// The slow link's 60 ms packets: they carry FEC too, and a lost one comes back as 60 ms of
    /// speech (rebuilt or concealed), so the stream keeps its length.
    #[test]
    fn issue_12_sixty_ms_packets_carry_fec_and_a_lost_one_keeps_its_length() {
        let mut enc = OpusEncoder::new().expect("encoder");
        enc.tune(crate::adapt::AUDIO_MIN_KBPS, 5).expect("tune");
        let mut dec = SeqDecoder::new().expect("decoder");
        let mut voice = Voice::new(0.3);
        let mut piece = vec![0i16; FRAME_STEREO];
        let mut out = Vec::new();
        let (mut with_fec, mut lost, mut recovered, mut samples) = (0, 0, 0, 0);
        for seq in 0u16..100 {
            let mut pcm = Vec::new();
            for _ in 0..3 {
                voice.fill(&mut piece);
                pcm.extend_from_slice(&piece);
            }
            let pkt = enc.encode(&pcm).expect("encode");
            assert_eq!(opus::packet::get_nb_samples(&pkt, 48_000).expect("parse"), FRAME * 3);
            with_fec += usize::from(carries_fec(&pkt));
            if seq % 10 == 5 {
                continue;
            }
            let d = dec.decode(seq, &pkt, &mut out).expect("decode");
            lost += d.lost;
            recovered += d.recovered;
            samples += d.samples;
        }
        assert!(with_fec >= 60, "{with_fec} of 100 packets carried FEC");
        assert_eq!(lost, 10);
        assert!(recovered >= 8, "{recovered} of {lost} lost packets rebuilt");
        assert_eq!(samples, 100 * FRAME * 3, "every lost packet filled with 60 ms");
        assert_eq!(out.len(), samples * 2);
    }

    /// With RED (Chromium's redundancy when the kiosk offers it first), every single lost packet
    /// comes back whole from the next one, even a tone Opus codes mostly without FEC.
    #[test]
    fn issue_12_a_lost_packet_repeated_in_the_next_one_is_rebuilt_whole() {
        let mut enc = OpusEncoder::new().expect("encoder");
        let mut tone = Tone::new(440.0, 0.3);
        let mut pcm = vec![0i16; FRAME_STEREO];
        let packets: Vec<Vec<u8>> = (0..200)
            .map(|_| {
                tone.fill(&mut pcm);
                enc.encode(&pcm).expect("encode")
            })
            .collect();
        let (mut with_red, mut plain) = (SeqDecoder::new().expect("decoder"), SeqDecoder::new().expect("decoder"));
        let (mut out_red, mut out_plain) = (Vec::new(), Vec::new());
        let (mut recovered_red, mut recovered_plain, mut lost) = (0, 0, 0);
        for seq in 0u16..200 {
            if seq % 10 == 5 {
                continue; // every tenth packet lost
            }
            let pkt = &packets[usize::from(seq)];
            let previous = seq.checked_sub(1).map(|p| packets[usize::from(p)].as_slice());
            let d = with_red.decode_with(seq, pkt, previous, &mut out_red).expect("decode");
            recovered_red += d.recovered;
            lost += d.lost;
            recovered_plain += plain.decode(seq, pkt, &mut out_plain).expect("decode").recovered;
        }
        assert_eq!(lost, 20);
        assert_eq!(recovered_red, 20, "every lost packet rebuilt from the repeat");
        assert!(recovered_plain < 10, "in-band FEC alone rebuilt {recovered_plain} of the tone's 20");
        assert_eq!(out_red.len(), 200 * FRAME_STEREO, "every 20 ms slot produced audio");
        // Two lost in a row: the second comes back, the first is concealed.
        let mut dec = SeqDecoder::new().expect("decoder");
        let mut out = Vec::new();
        dec.decode(0, &packets[0], &mut out).expect("decode");
        let d = dec.decode_with(3, &packets[3], Some(&packets[2]), &mut out).expect("decode");
        assert_eq!((d.lost, d.recovered), (2, 1));
        // A garbled repeat is concealed; the packet itself still plays.
        let d = dec.decode_with(5, &packets[5], Some(b"\xff\xff\xff"), &mut out).expect("the packet still decodes");
        assert_eq!((d.lost, d.recovered, d.samples), (1, 0, 2 * FRAME));
    }

    #[test]
    fn fec_is_read_only_from_speech_packets() {
        assert!(!carries_fec(&[]), "empty");
        assert!(!carries_fec(&[0xfc, 0xff, 0xff]), "CELT packets carry none");
        assert!(!carries_fec(&[0x4b]), "a SILK packet with no frame data carries none");
        // SILK WB 20 ms mono: VAD bit then LBRR bit.
        assert!(carries_fec(&[0x48, 0b0100_0000]));
        assert!(!carries_fec(&[0x48, 0b1000_0000]));
        // SILK WB 60 ms stereo: three VAD bits and LBRR for the mid channel, then the side's.
        assert!(carries_fec(&[0x5c, 0b0000_0001]));
        assert!(carries_fec(&[0x5c, 0b0001_0000]));
        assert!(!carries_fec(&[0x5c, 0b1110_1110]));
    }
}

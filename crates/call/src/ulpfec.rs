//! ULPFEC (RFC 5109) both ways, as libwebrtc sends it inside RED (RFC 2198): parity packets
//! over a few frames' packets, so one packet lost from them is rebuilt without waiting a round
//! trip for its resend. The kiosk's pair measured what that is worth on the prison profile
//! (80 ms each way, 3 % loss): Chromium as the receiver of Chromium froze 0.8 times a minute, the
//! kiosk 3.0; and Chromium receiving the kiosk's unprotected video froze 2-5 times a minute where
//! its pair, protected, froze 0-1.2 (issue #12).
//! Pure: packets in as the FEC protects them (the whole RTP packet with the media's own payload
//! type, the RED header gone), FEC blocks or rebuilt packets out; every length checked, nothing
//! panics on what the network sends.

use std::collections::{HashMap, VecDeque};

/// The fixed RTP header, which the FEC protects field by field; the bytes after it (CSRCs, header
/// extensions, payload) are protected as one block.
const RTP_HEADER: usize = 12;
/// The FEC header (RFC 5109 section 7.3) before the level-0 header.
const FEC_HEADER: usize = 10;
/// Media packets kept to rebuild from: well past the 48 one FEC packet can protect, and a round
/// trip of resends at the top rung.
const KEEP_MEDIA: usize = 512;
/// FEC packets kept while one of theirs may yet be rebuilt (each protects one or a few frames).
const KEEP_FEC: usize = 48;

/// An FEC packet that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum UlpfecError {
    /// The packet ended inside its headers or its protected block.
    #[error("ULPFEC packet truncated")]
    Truncated,
    /// The E bit is set: an extension of the FEC header no sender uses.
    #[error("ULPFEC packet with the extension bit set")]
    Extended,
    /// A mask naming no packet.
    #[error("ULPFEC packet protecting no packet")]
    Empty,
}

/// A media packet as the FEC sees it.
#[derive(Debug, Clone)]
struct Media {
    /// The first two header bytes (P, X, CC, M and PT are protected).
    first: [u8; 2],
    timestamp: u32,
    /// Everything after the fixed header.
    body: Vec<u8>,
    /// Rebuilt here rather than received.
    rebuilt: bool,
}

/// One parsed FEC packet (level 0 only: libwebrtc sends no other).
#[derive(Debug, Clone)]
struct Fec {
    ssrc: u32,
    first: [u8; 2],
    timestamp: u32,
    length: u16,
    /// The protected sequence numbers.
    protects: Vec<u16>,
    /// The XOR of the protected packets' bodies, as long as the longest of them.
    block: Vec<u8>,
}

/// What the decoder has counted.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UlpfecCounts {
    /// FEC packets taken.
    pub fec: u64,
    /// Packets rebuilt.
    pub rebuilt: u64,
    /// Rebuilt packets whose payload a later copy of the same packet (a resend) contradicted: a
    /// sign that the protected bytes were not read as the sender wrote them.
    pub contradicted: u64,
}

/// The receiver's FEC state for one video stream.
#[derive(Debug, Default)]
pub struct UlpfecDecoder {
    media: HashMap<u16, Media>,
    media_order: VecDeque<u16>,
    fec: VecDeque<Fec>,
    counts: UlpfecCounts,
}

impl UlpfecDecoder {
    /// What has been counted so far.
    pub fn counts(&self) -> UlpfecCounts {
        self.counts
    }

    /// A received media packet, `raw` as the FEC protects it (the whole RTP packet, its payload
    /// type the media's). Returns any packets it lets the stored FEC rebuild, as whole RTP packets.
    pub fn media(&mut self, raw: &[u8]) -> Vec<Vec<u8>> {
        let Some(seq) = raw.get(2..4).map(|b| u16::from_be_bytes([b[0], b[1]])) else { return Vec::new() };
        let Some(media) = parse_media(raw) else { return Vec::new() };
        if let Some(had) = self.media.get(&seq) {
            if had.rebuilt && payload(&had.first, &had.body) != payload(&media.first, &media.body) {
                self.counts.contradicted += 1;
                tracing::warn!(seq, "a packet rebuilt from FEC differs from its resend");
            }
            return Vec::new();
        }
        self.keep(seq, media);
        self.rebuild()
    }

    /// A received FEC packet: `ssrc` and the FEC block (the RED header gone). Returns the packets
    /// it, or the FEC stored before it, now lets the decoder rebuild.
    pub fn fec(&mut self, ssrc: u32, block: &[u8]) -> Result<Vec<Vec<u8>>, UlpfecError> {
        let fec = parse_fec(ssrc, block)?;
        self.counts.fec += 1;
        if self.fec.len() == KEEP_FEC {
            self.fec.pop_front();
        }
        self.fec.push_back(fec);
        Ok(self.rebuild())
    }

    fn keep(&mut self, seq: u16, media: Media) {
        if self.media_order.len() == KEEP_MEDIA {
            if let Some(old) = self.media_order.pop_front() {
                self.media.remove(&old);
            }
        }
        self.media_order.push_back(seq);
        self.media.insert(seq, media);
    }

    /// Rebuilds every packet that is the only one missing from a stored FEC packet's set, until
    /// no more can be (a rebuilt packet may complete another set). FEC with nothing missing is
    /// done with and dropped.
    fn rebuild(&mut self) -> Vec<Vec<u8>> {
        let mut out = Vec::new();
        loop {
            let mut progress = false;
            let mut i = 0;
            while i < self.fec.len() {
                let fec = &self.fec[i];
                let mut missing = fec.protects.iter().filter(|s| !self.media.contains_key(s));
                match (missing.next().copied(), missing.next()) {
                    (None, _) => {
                        self.fec.remove(i);
                        continue;
                    }
                    (Some(seq), None) => {
                        let rebuilt = self.fec.remove(i).and_then(|fec| self.recover(&fec, seq));
                        if let Some((raw, media)) = rebuilt {
                            self.counts.rebuilt += 1;
                            self.keep(seq, media);
                            out.push(raw);
                            progress = true;
                        }
                        continue;
                    }
                    _ => i += 1,
                }
            }
            if !progress {
                return out;
            }
        }
    }

    /// Packet `seq`, the XOR of `fec` and every other packet it protects (all present).
    fn recover(&self, fec: &Fec, seq: u16) -> Option<(Vec<u8>, Media)> {
        let mut first = fec.first;
        let mut timestamp = fec.timestamp;
        let mut length = fec.length;
        let mut body = fec.block.clone();
        for other in fec.protects.iter().filter(|&&s| s != seq) {
            let m = self.media.get(other)?;
            first[0] ^= m.first[0];
            first[1] ^= m.first[1];
            timestamp ^= m.timestamp;
            // A body longer than the protected block was not read as the sender wrote it.
            length ^= u16::try_from(m.body.len()).ok()?;
            if m.body.len() > body.len() {
                tracing::debug!(seq, "a protected packet is longer than its FEC block");
                return None;
            }
            body.iter_mut().zip(&m.body).for_each(|(b, m)| *b ^= m);
        }
        let length = usize::from(length);
        if length > body.len() {
            tracing::debug!(seq, "a rebuilt length past the FEC block");
            return None;
        }
        body.truncate(length);
        // Version 2 whatever the XOR gave (RFC 5109 section 10.2).
        let first = [0x80 | (first[0] & 0x3f), first[1]];
        let mut raw = Vec::with_capacity(RTP_HEADER + body.len());
        raw.extend_from_slice(&first);
        raw.extend_from_slice(&seq.to_be_bytes());
        raw.extend_from_slice(&timestamp.to_be_bytes());
        raw.extend_from_slice(&fec.ssrc.to_be_bytes());
        raw.extend_from_slice(&body);
        Some((raw, Media { first, timestamp, body, rebuilt: true }))
    }
}

fn parse_media(raw: &[u8]) -> Option<Media> {
    let head = raw.get(..RTP_HEADER)?;
    Some(Media {
        first: [head[0], head[1]],
        timestamp: u32::from_be_bytes([head[4], head[5], head[6], head[7]]),
        body: raw[RTP_HEADER..].to_vec(),
        rebuilt: false,
    })
}

/// The payload in a packet's body: past its CSRCs and header extension, before its padding.
/// `None` when the body is too short for what the header says it holds.
fn payload<'a>(first: &[u8; 2], body: &'a [u8]) -> Option<&'a [u8]> {
    let mut at = 4 * usize::from(first[0] & 0x0f);
    if first[0] & 0x10 != 0 {
        let words = body.get(at + 2..at + 4)?;
        at += 4 + 4 * usize::from(u16::from_be_bytes([words[0], words[1]]));
    }
    let mut end = body.len();
    if first[0] & 0x20 != 0 {
        end = end.checked_sub(usize::from(*body.last()?))?;
    }
    body.get(at..end)
}

/// RFC 5109 section 7.3-7.4: the FEC header (E, L, P/X/CC, M/PT recovery, SN base, TS
/// recovery, length recovery), the level-0 header (protection length, a 16-bit mask or a 48-bit
/// one when L is set), then the protected block.
fn parse_fec(ssrc: u32, b: &[u8]) -> Result<Fec, UlpfecError> {
    let h = b.get(..FEC_HEADER + 4).ok_or(UlpfecError::Truncated)?;
    if h[0] & 0x80 != 0 {
        return Err(UlpfecError::Extended);
    }
    let long_mask = h[0] & 0x40 != 0;
    let base = u16::from_be_bytes([h[2], h[3]]);
    let protection = usize::from(u16::from_be_bytes([h[10], h[11]]));
    let mask_len = if long_mask { 6 } else { 2 };
    let mask_bytes = b.get(FEC_HEADER + 2..FEC_HEADER + 2 + mask_len).ok_or(UlpfecError::Truncated)?;
    let start = FEC_HEADER + 2 + mask_len;
    let block = b.get(start..start + protection).ok_or(UlpfecError::Truncated)?.to_vec();
    let mut protects = Vec::new();
    for (i, byte) in mask_bytes.iter().enumerate() {
        for bit in 0..8u16 {
            if byte & (0x80 >> bit) != 0 {
                // i < 6, so the offset is below 48.
                protects.push(base.wrapping_add(8 * i as u16 + bit));
            }
        }
    }
    if protects.is_empty() {
        return Err(UlpfecError::Empty);
    }
    Ok(Fec {
        ssrc,
        first: [h[0], h[1]],
        timestamp: u32::from_be_bytes([h[4], h[5], h[6], h[7]]),
        length: u16::from_be_bytes([h[8], h[9]]),
        protects,
        block,
    })
}

/// The largest set one FEC packet protects (its mask with the L bit set).
const MAX_SET: usize = 48;
/// No FEC under this loss: on a clean link every parity packet is waste.
pub const PROTECT_FROM_LOSS: f64 = 0.01;
/// FEC packets per media packet at [`PROTECT_FROM_LOSS`], and the most at any loss. At 420
/// kbit/s a frame is one or two packets, so a set is two frames and one parity packet: a third.
/// Half that (five times the loss, from 10 %) measured worse on the prison profile (the
/// consultant froze 7.4 and 6.1 times a minute in two runs; 0-4.9, median 3.1, in eight at this).
const MIN_SHARE: f64 = 0.3;
/// See [`MIN_SHARE`].
const MAX_SHARE: f64 = 0.6;
/// A set is closed at a frame's end once its FEC costs at most this much more than the share
/// asked for (libwebrtc's rule, with its 20 %): small frames (two packets at 420 kbit/s) are
/// gathered into one set rather than each paying a whole parity packet.
const EXCESS: f64 = 0.2;
/// ... and at the latest after this many frames, so the first of them waits little for its
/// repair (a frame at 30 fps is 33 ms; Chromium receiving FEC keeps a shorter jitter buffer).
const MAX_FRAMES: usize = 2;

/// The FEC packets to send per media packet at a measured loss of `loss` (0..1): none under
/// [`PROTECT_FROM_LOSS`], from there ten times the loss between [`MIN_SHARE`] and
/// [`MAX_SHARE`]. A set of n packets and one parity packet loses a packet for good only when
/// two of its n + 1 go; at 3 % and n = 2 that is 0.3 % of sets.
pub fn protection(loss: f64) -> f64 {
    if loss.is_nan() || loss < PROTECT_FROM_LOSS {
        0.0
    } else {
        (loss * 10.0).clamp(MIN_SHARE, MAX_SHARE)
    }
}

/// How long the parity stays on after a report last named [`PROTECT_FROM_LOSS`] or more lost, as
/// libwebrtc protects at the largest loss of its last ten one-second windows. rtc's loss is each
/// transport feedback's own: on the prison profile (3 % random loss) one report in ten named under
/// 1 %, and each turned the parity off until the next, so ~9 % of that call's seconds sent their
/// video unprotected (a packet lost there waits a round trip and more for its resend, longer
/// than Chromium held the video: the consultant froze 13 times in four 60 s prison calls, once
/// with the parity held).
pub const PROTECT_FOR: std::time::Duration = std::time::Duration::from_secs(10);

/// The parity share over a call: [`protection`] of the loss each report names, and no less than
/// [`MIN_SHARE`] within [`PROTECT_FOR`] of the last report that called for parity.
#[derive(Debug, Default)]
pub struct Protection {
    /// When a report last named enough loss to protect against.
    lossy_at: Option<std::time::Instant>,
}

impl Protection {
    /// The share to send from `now`, with the latest report's `loss` (0..1).
    pub fn share(&mut self, now: std::time::Instant, loss: f64) -> f64 {
        let share = protection(loss);
        if share > 0.0 {
            self.lossy_at = Some(now);
            return share;
        }
        match self.lossy_at {
            Some(at) if now.saturating_duration_since(at) < PROTECT_FOR => MIN_SHARE,
            _ => 0.0,
        }
    }
}

/// The sender's FEC state for one video stream: media packets in, in the order they leave, FEC
/// blocks out when a set closes.
#[derive(Debug, Default)]
pub struct UlpfecEncoder {
    /// The open set's packets as protected, and how many frames it has ended.
    set: Vec<Vec<u8>>,
    frames: usize,
}

impl UlpfecEncoder {
    /// A media packet `raw` as the FEC protects it (see the module docs; at least its 12-byte
    /// header, as built by the sender itself), `end_of_frame` when it is its frame's last, at a
    /// `share` from [`protection`]. Returns the FEC blocks (the RED block's contents, RFC 5109
    /// section 7) to send after it, in order; none while the set stays open or `share` is 0.
    pub fn media(&mut self, raw: Vec<u8>, end_of_frame: bool, share: f64) -> Vec<Vec<u8>> {
        if share <= 0.0 || raw.len() < RTP_HEADER {
            self.set.clear();
            self.frames = 0;
            return Vec::new();
        }
        self.set.push(raw);
        if end_of_frame {
            self.frames += 1;
        }
        let n = self.set.len();
        let fec = fec_count(n, share);
        let cheap = fec as f64 / n as f64 <= share + EXCESS;
        let close = (end_of_frame && (cheap || self.frames >= MAX_FRAMES)) || n + 1 >= MAX_SET;
        if !close {
            return Vec::new();
        }
        let set = std::mem::take(&mut self.set);
        self.frames = 0;
        // Interleaved: parity packet j protects packets j, j + fec, j + 2 fec, ... so any one
        // loss in each of those subsets is rebuilt, and a short burst falls in different ones.
        (0..fec).map(|j| block(&set.iter().skip(j).step_by(fec).map(Vec::as_slice).collect::<Vec<_>>())).collect()
    }
}

/// Parity packets for a set of `n` at `share`: rounded, at least one.
fn fec_count(n: usize, share: f64) -> usize {
    ((n as f64 * share).round() as usize).clamp(1, n)
}

/// The FEC block over `packets` (in sequence order, all within [`MAX_SET`] of the first): the
/// FEC header, the level-0 header, then the XOR of everything after each fixed header, as long
/// as the longest.
fn block(packets: &[&[u8]]) -> Vec<u8> {
    let seq = |p: &[u8]| u16::from_be_bytes([p[2], p[3]]);
    let base = packets.first().map_or(0, |p| seq(p));
    let long = packets.iter().any(|p| usize::from(seq(p).wrapping_sub(base)) >= 16);
    let protection = packets.iter().map(|p| p.len() - RTP_HEADER).max().unwrap_or(0);
    let (mut b0, mut b1, mut ts, mut len, mut mask) = (0u8, 0u8, 0u32, 0u16, 0u64);
    let mut xor = vec![0u8; protection];
    for p in packets {
        b0 ^= p[0];
        b1 ^= p[1];
        ts ^= u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
        // An RTP packet is far under 64 KiB (the MTU); `protection` fits likewise.
        len ^= (p.len() - RTP_HEADER) as u16;
        xor.iter_mut().zip(&p[RTP_HEADER..]).for_each(|(b, x)| *b ^= x);
        mask |= 1 << (47 - u64::from(seq(p).wrapping_sub(base)).min(47));
    }
    let mut out = Vec::with_capacity(FEC_HEADER + 8 + protection);
    // E = 0; L; then P, X and CC recovered; M and PT recovered.
    out.push((b0 & 0x3f) | if long { 0x40 } else { 0 });
    out.push(b1);
    out.extend_from_slice(&base.to_be_bytes());
    out.extend_from_slice(&ts.to_be_bytes());
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(&(protection as u16).to_be_bytes());
    out.extend_from_slice(&mask.to_be_bytes()[2..if long { 8 } else { 4 }]);
    out.extend_from_slice(&xor);
    out
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// An RTP packet: `ext` one-byte header-extension elements `(id, data)`, then `payload`.
    fn rtp(seq: u16, ts: u32, marker: bool, ext: &[(u8, &[u8])], payload: &[u8]) -> Vec<u8> {
        let mut p = vec![0x80 | if ext.is_empty() { 0 } else { 0x10 }, 96 | if marker { 0x80 } else { 0 }];
        p.extend_from_slice(&seq.to_be_bytes());
        p.extend_from_slice(&ts.to_be_bytes());
        p.extend_from_slice(&0x1234_5678u32.to_be_bytes());
        if !ext.is_empty() {
            let mut elements = Vec::new();
            for (id, data) in ext {
                elements.push((id << 4) | (data.len() as u8 - 1));
                elements.extend_from_slice(data);
            }
            while elements.len() % 4 != 0 {
                elements.push(0);
            }
            p.extend_from_slice(&[0xbe, 0xde]);
            p.extend_from_slice(&((elements.len() / 4) as u16).to_be_bytes());
            p.extend_from_slice(&elements);
        }
        p.extend_from_slice(payload);
        p
    }

    /// An FEC block over `packets` as RFC 5109 section 7 builds one (an independent writing of
    /// the sender's side, so the decoder is checked against the RFC rather than against itself).
    pub(crate) fn fec_over(packets: &[&[u8]], base: u16) -> Vec<u8> {
        let long = packets.iter().any(|p| u16::from_be_bytes([p[2], p[3]]).wrapping_sub(base) >= 16);
        let protection = packets.iter().map(|p| p.len() - 12).max().unwrap_or(0);
        let (mut b0, mut b1, mut ts, mut len) = (0u8, 0u8, 0u32, 0u16);
        let mut block = vec![0u8; protection];
        let mut mask = 0u64;
        for p in packets {
            b0 ^= p[0];
            b1 ^= p[1];
            ts ^= u32::from_be_bytes([p[4], p[5], p[6], p[7]]);
            len ^= (p.len() - 12) as u16;
            for (b, x) in block.iter_mut().zip(&p[12..]) {
                *b ^= x;
            }
            let offset = u16::from_be_bytes([p[2], p[3]]).wrapping_sub(base);
            mask |= 1 << (47 - offset);
        }
        let mut out = vec![(b0 & 0x3f) | if long { 0x40 } else { 0 }, b1];
        out.extend_from_slice(&base.to_be_bytes());
        out.extend_from_slice(&ts.to_be_bytes());
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(&(protection as u16).to_be_bytes());
        out.extend_from_slice(&mask.to_be_bytes()[2..if long { 8 } else { 4 }]);
        out.extend_from_slice(&block);
        out
    }

    fn frames() -> Vec<Vec<u8>> {
        vec![
            rtp(100, 3000, false, &[(3, &[0, 7])], &[0x90, 0xe0, 0x01, 0x02, 0x03, 0x04, 0x05]),
            rtp(101, 3000, false, &[(3, &[0, 8]), (5, &[1, 2, 3])], &[0x80, 0xe0, 0x09]),
            rtp(102, 3000, true, &[(3, &[0, 9])], &[0x80, 0xe0, 0x0a, 0x0b, 0x0c, 0x0d, 0x0e, 0x0f, 0x10, 0x11]),
            rtp(104, 6000, true, &[], &[0x90, 0xe0, 0x20]),
        ]
    }

    /// Issue #12: a packet lost from a protected set comes back byte for byte, header,
    /// extensions and payload, whichever it was and whether the FEC came before or after the rest.
    #[test]
    fn issue_12_a_lost_packet_is_rebuilt_byte_for_byte() {
        let all = frames();
        let refs: Vec<&[u8]> = all.iter().map(Vec::as_slice).collect();
        let fec = fec_over(&refs, 100);
        for lost in 0..all.len() {
            let mut d = UlpfecDecoder::default();
            let mut rebuilt = Vec::new();
            for (i, p) in all.iter().enumerate() {
                if i != lost {
                    rebuilt.extend(d.media(p));
                }
            }
            rebuilt.extend(d.fec(0x1234_5678, &fec).expect("parses"));
            assert_eq!(rebuilt, vec![all[lost].clone()], "packet {lost} lost, FEC last");
            // FEC first, the rest after.
            let mut d = UlpfecDecoder::default();
            let mut rebuilt = d.fec(0x1234_5678, &fec).expect("parses");
            for (i, p) in all.iter().enumerate() {
                if i != lost {
                    rebuilt.extend(d.media(p));
                }
            }
            assert_eq!(rebuilt, vec![all[lost].clone()], "packet {lost} lost, FEC first");
            assert_eq!(d.counts(), UlpfecCounts { fec: 1, rebuilt: 1, contradicted: 0 });
        }
    }

    /// Two lost from one set wait; the resend of one then rebuilds the other.
    #[test]
    fn issue_12_two_lost_wait_for_a_resend_then_the_other_is_rebuilt() {
        let all = frames();
        let refs: Vec<&[u8]> = all.iter().map(Vec::as_slice).collect();
        let fec = fec_over(&refs, 100);
        let mut d = UlpfecDecoder::default();
        assert!(d.media(&all[0]).is_empty());
        assert!(d.media(&all[3]).is_empty());
        assert!(d.fec(0x1234_5678, &fec).expect("parses").is_empty(), "two missing: nothing to rebuild");
        assert_eq!(d.media(&all[2]), vec![all[1].clone()], "the resend of one rebuilds the other");
        assert!(d.media(&all[1]).is_empty(), "the late original is no news");
        assert_eq!(d.counts().contradicted, 0);
    }

    /// A set reaching past 16 packets uses the 48-bit mask; sets chained by a rebuilt packet
    /// rebuild in turn.
    #[test]
    fn issue_12_long_masks_and_chained_sets() {
        let a = rtp(1000, 9000, true, &[], &[1, 2, 3, 4]);
        let b = rtp(1030, 12000, true, &[], &[5, 6]);
        let c = rtp(1031, 15000, true, &[], &[7, 8, 9]);
        let long = fec_over(&[&a, &b], 1000);
        assert_eq!(long[0] & 0x40, 0x40, "the L bit");
        let short = fec_over(&[&b, &c], 1030);
        let mut d = UlpfecDecoder::default();
        assert!(d.media(&a).is_empty());
        assert!(d.fec(1, &short).expect("parses").is_empty(), "b and c both missing");
        let got = d.fec(1, &long).expect("parses");
        let fixed = |mut p: Vec<u8>| {
            p[8..12].copy_from_slice(&1u32.to_be_bytes());
            p
        };
        assert_eq!(got, vec![fixed(b.clone()), fixed(c.clone())], "b from the long set, then c from the short");
    }

    /// A resend that contradicts a rebuilt packet's payload is counted: the e2e tests check the
    /// count against Chromium's own FEC, where any misreading of the protected bytes shows.
    #[test]
    fn issue_12_a_resend_contradicting_a_rebuilt_packet_is_counted() {
        let all = frames();
        let refs: Vec<&[u8]> = all.iter().map(Vec::as_slice).collect();
        let fec = fec_over(&refs, 100);
        let mut d = UlpfecDecoder::default();
        for p in [&all[0], &all[2], &all[3]] {
            d.media(p);
        }
        assert_eq!(d.fec(0x1234_5678, &fec).expect("parses").len(), 1);
        // A resend with other header-extension values (a new transport sequence number) is the
        // same packet.
        let resend = rtp(101, 3000, false, &[(3, &[1, 200]), (5, &[1, 2, 3])], &[0x80, 0xe0, 0x09]);
        d.media(&resend);
        assert_eq!(d.counts().contradicted, 0);
        let mut d2 = UlpfecDecoder::default();
        for p in [&all[0], &all[2], &all[3]] {
            d2.media(p);
        }
        d2.fec(0x1234_5678, &fec).expect("parses");
        d2.media(&rtp(101, 3000, false, &[(3, &[0, 8]), (5, &[1, 2, 3])], &[0x80, 0xe0, 0x77]));
        assert_eq!(d2.counts().contradicted, 1);
    }

    /// Garbled FEC gets an error; FEC that does not match what was received rebuilds nothing
    /// rather than a packet of the wrong length; random bytes never panic.
    #[test]
    fn issue_12_garbled_fec_is_refused_and_never_panics() {
        let mut d = UlpfecDecoder::default();
        assert_eq!(d.fec(1, &[0; 5]).expect_err("refused"), UlpfecError::Truncated);
        assert_eq!(d.fec(1, &[0x80; 20]).expect_err("refused"), UlpfecError::Extended);
        assert_eq!(d.fec(1, &[0; 14]).expect_err("refused"), UlpfecError::Empty);
        let mut short = fec_over(&[&frames()[0]], 100);
        short.truncate(short.len() - 1);
        assert_eq!(d.fec(1, &short).expect_err("refused"), UlpfecError::Truncated);
        // A protected packet longer than the block: nothing rebuilt.
        let all = frames();
        let fec = fec_over(&[&all[0][..20], &all[3]], 100);
        let mut d = UlpfecDecoder::default();
        d.media(&all[0]);
        assert!(d.fec(1, &fec).expect("parses").is_empty());
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut d = UlpfecDecoder::default();
        for round in 0..20_000 {
            let len = (seed % 80) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            if round % 2 == 0 {
                let _ = d.fec(1, &bytes);
            } else {
                let _ = d.media(&bytes);
            }
        }
    }
    /// Issue #12: the encoder's block is the RFC's, written independently (`fec_over`), and a
    /// set closes at a frame's end once its parity is cheap enough.
    #[test]
    fn issue_12_the_encoders_block_is_the_rfcs() {
        let all = frames();
        let refs: Vec<&[u8]> = all.iter().map(Vec::as_slice).collect();
        // frames() skips 103: a set as the sender sees it is consecutive.
        let mut e = UlpfecEncoder::default();
        let mut out = Vec::new();
        for p in &all[..3] {
            out.extend(e.media(p.clone(), p[1] & 0x80 != 0, 0.15));
        }
        assert_eq!(out, vec![fec_over(&refs[..3], 100)], "one parity packet for three, at the frame's end");
        assert!(e.media(all[3].clone(), false, 0.0).is_empty(), "no loss, no FEC");
    }

    /// Issue #12: over a run of frames of every size at each share, each parity packet rebuilds
    /// any one packet lost from its subset byte for byte, what FEC costs stays near the share,
    /// and no set waits more than two frames.
    #[test]
    fn issue_12_the_encoder_protects_every_packet_and_costs_about_its_share() {
        for share in [0.1, 0.15, 0.25, 0.5] {
            let mut e = UlpfecEncoder::default();
            let (mut seq, mut media, mut fecs, mut since_fec) = (1000u16, 0usize, 0usize, 0usize);
            // The packets since the last parity.
            let mut set = Vec::new();
            for frame in 0..60u32 {
                // Mostly two-packet frames, a keyframe of 13 now and then.
                let packets = if frame % 20 == 0 { 13 } else { 1 + (frame % 3) as usize };
                for i in 0..packets {
                    let body: Vec<u8> =
                        (0..(50 + (frame as usize * 7 + i * 13) % 900)).map(|b| (b as u8) ^ (frame as u8)).collect();
                    let last = i + 1 == packets;
                    let p = rtp(seq, frame * 3000, last, &[(3, &[0, 0])], &body);
                    seq = seq.wrapping_add(1);
                    media += 1;
                    set.push(p.clone());
                    let blocks = e.media(p, last, share);
                    if blocks.is_empty() {
                        continue;
                    }
                    fecs += blocks.len();
                    since_fec = 0;
                    // Each lost packet of what the blocks protect comes back whole.
                    for block in &blocks {
                        let protects = parse_fec(1, block).expect("parses").protects;
                        for &lost in &protects {
                            let mut d = UlpfecDecoder::default();
                            for m in set.iter().filter(|m| u16::from_be_bytes([m[2], m[3]]) != lost) {
                                d.media(m);
                            }
                            let rebuilt = d.fec(0x1234_5678, block).expect("parses");
                            let want =
                                set.iter().find(|m| u16::from_be_bytes([m[2], m[3]]) == lost).expect("in the set");
                            assert_eq!(rebuilt, vec![want.clone()], "share {share}, packet {lost}");
                        }
                    }
                    set.clear();
                }
                since_fec += 1;
                assert!(since_fec <= MAX_FRAMES, "share {share}: a set left open past {MAX_FRAMES} frames");
            }
            let cost = fecs as f64 / media as f64;
            assert!(cost >= share * 0.8 && cost <= share + EXCESS, "share {share}: {fecs} parity for {media} media");
        }
        assert_eq!(protection(0.005), 0.0);
        assert_eq!(protection(0.03), 0.3);
        assert_eq!(protection(0.5), MAX_SHARE);
        assert_eq!(protection(f64::NAN), 0.0);
    }

    #[test]
    fn issue_12_a_report_under_one_percent_on_a_lossy_link_keeps_the_parity_on() {
        let start = std::time::Instant::now();
        let at = |ms: u64| start + std::time::Duration::from_millis(ms);
        let mut p = Protection::default();
        assert_eq!(p.share(at(0), 0.002), 0.0, "a clean link sends no parity");
        assert_eq!(p.share(at(100), 0.04), 0.4);
        // One report in ten names under 1 % on a 3 % link: the parity stays on.
        assert_eq!(p.share(at(1_100), 0.002), MIN_SHARE);
        assert_eq!(p.share(at(2_100), 0.0), MIN_SHARE);
        assert_eq!(p.share(at(9_900), f64::NAN), MIN_SHARE);
        // Ten seconds without a lossy report: the link is clean again.
        assert_eq!(p.share(at(10_100), 0.005), 0.0);
        assert_eq!(p.share(at(10_200), 0.02), MIN_SHARE);
    }
}

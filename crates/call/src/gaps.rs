//! Which missing RTP sequence numbers of the peer's VP8 held no media. Chromium, without RTX,
//! probes the link with padding packets on the video stream itself; a lost one is never resent
//! (libwebrtc keeps no padding for retransmission), and rtc's sample builder, which needs every
//! number in order, then held the next frames for its whole wait (500 ms) and reported them
//! incomplete, so a keyframe was asked for: a freeze for a packet with nothing in it (issue #12,
//! seen on the prison profile). A gap that opens right after a frame's last packet and closes on
//! the first packet of the frame with the next picture ID lost no media: those numbers can be
//! given to the builder as padding at once. Pure: packets in, the gap's numbers out.

/// The most numbers taken as padding at once: libwebrtc's probes are a few packets; a longer gap
/// is left to the NACK round trip and the reassembly's wait.
const MAX_GAP: u16 = 16;

/// A VP8 payload descriptor's fields that say where a packet sits (RFC 7741 4.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Descriptor {
    /// The first packet of a frame (S set, partition index 0).
    starts_frame: bool,
    /// The picture ID and its width in bits (7 or 15), when the sender includes it.
    picture_id: Option<(u16, u8)>,
}

fn descriptor(payload: &[u8]) -> Option<Descriptor> {
    let first = *payload.first()?;
    let starts_frame = first & 0x10 != 0 && first & 0x07 == 0;
    let mut picture_id = None;
    if first & 0x80 != 0 {
        let ext = *payload.get(1)?;
        if ext & 0x80 != 0 {
            let b = *payload.get(2)?;
            picture_id = Some(if b & 0x80 != 0 {
                (u16::from(b & 0x7f) << 8 | u16::from(*payload.get(3)?), 15)
            } else {
                (u16::from(b), 7)
            });
        }
    }
    Some(Descriptor { starts_frame, picture_id })
}

/// An "older" number further behind than this is a new start of the peer's numbering.
const RESTART_BEHIND: u16 = 3000;

/// The last packet in sequence order: its number and, when it ended a frame (or only padding has
/// come since), that frame's picture ID and RTP timestamp, with the numbers missing since.
#[derive(Debug, Clone)]
struct Last {
    seq: u16,
    frame_end: Option<((u16, u8), u32)>,
    /// (first, count) of each run of numbers missing since that frame's end.
    missing: Vec<(u16, u16)>,
}

/// Watches the peer's video packets for gaps that held no media.
#[derive(Debug, Default)]
pub struct PaddingGaps {
    last: Option<Last>,
}

/// Numbers known to have held no media: `count` from `first`, and the timestamp of the frame
/// before them (what padding after that frame carries).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Gap {
    /// The first missing number.
    pub first: u16,
    /// How many numbers.
    pub count: u16,
    /// The RTP timestamp of the frame the gap follows.
    pub timestamp: u32,
}

impl PaddingGaps {
    /// One received packet; the numbers missing before it that held no media, once this packet
    /// shows it (the first packet of the next picture).
    pub fn packet(&mut self, seq: u16, timestamp: u32, marker: bool, payload: &[u8]) -> Vec<Gap> {
        if let Some(last) = &self.last {
            let ahead = seq.wrapping_sub(last.seq);
            if ahead == 0 || ahead >= 0x8000 {
                // A resent, reordered or repeated packet leaves the sequence's end where it is; a
                // number far behind is a sender that started again.
                if last.seq.wrapping_sub(seq) <= RESTART_BEHIND {
                    return Vec::new();
                }
                self.last = None;
            }
        }
        let (frame_end, mut missing) = match self.last.take() {
            Some(Last { seq: prev, frame_end, mut missing }) => {
                let skipped = seq.wrapping_sub(prev).wrapping_sub(1);
                if skipped > 0 {
                    missing.push((prev.wrapping_add(1), skipped));
                }
                (frame_end, missing)
            }
            None => (None, Vec::new()),
        };
        if payload.is_empty() {
            // A padding packet that arrived: still between the same two frames.
            let missing = if frame_end.is_some() { missing } else { Vec::new() };
            self.last = Some(Last { seq, frame_end, missing });
            return Vec::new();
        }
        let here = descriptor(payload);
        let total: u32 = missing.iter().map(|(_, n)| u32::from(*n)).sum();
        let mut gaps = Vec::new();
        if let (Some(((pid, bits), ts)), Some(Descriptor { starts_frame: true, picture_id: Some((next, next_bits)) })) =
            (frame_end, here)
        {
            let mask = if bits == 15 { 0x7fff } else { 0x7f };
            if bits == next_bits && next == (pid + 1) & mask && total > 0 && total <= u32::from(MAX_GAP) {
                gaps = missing.drain(..).map(|(first, count)| Gap { first, count, timestamp: ts }).collect();
            }
        }
        let frame_end = if marker { here.and_then(|d| d.picture_id).map(|pid| (pid, timestamp)) } else { None };
        self.last = Some(Last { seq, frame_end, missing: Vec::new() });
        gaps
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A VP8 payload with a 15-bit picture ID.
    fn vp8(start: bool, pid: u16) -> Vec<u8> {
        let first = 0x80 | if start { 0x10 } else { 0 };
        vec![first, 0x80, 0x80 | (pid >> 8) as u8, pid as u8, 0xaa, 0xbb]
    }

    #[test]
    fn descriptors_are_read_with_either_picture_id_width() {
        assert_eq!(
            descriptor(&vp8(true, 0x1234)),
            Some(Descriptor { starts_frame: true, picture_id: Some((0x1234, 15)) })
        );
        assert_eq!(
            descriptor(&[0x90, 0x80, 0x05, 0]),
            Some(Descriptor { starts_frame: true, picture_id: Some((5, 7)) })
        );
        // A later partition of a frame does not start it; no extension, no picture ID.
        assert_eq!(descriptor(&[0x11, 0]), Some(Descriptor { starts_frame: false, picture_id: None }));
        // Cut short: nothing read, no panic.
        assert_eq!(descriptor(&[]), None);
        assert_eq!(descriptor(&[0x80]), None);
        assert_eq!(descriptor(&[0x80, 0x80, 0x80]), None);
    }

    fn gap(first: u16, count: u16, timestamp: u32) -> Vec<Gap> {
        vec![Gap { first, count, timestamp }]
    }

    #[test]
    fn issue_12_a_lost_packet_between_consecutive_pictures_held_no_media() {
        let mut g = PaddingGaps::default();
        assert!(g.packet(100, 9000, false, &vp8(true, 7)).is_empty());
        assert!(g.packet(101, 9000, true, &vp8(false, 7)).is_empty());
        // 102 and 103 (padding) were lost; 104 starts picture 8.
        assert_eq!(g.packet(104, 12000, false, &vp8(true, 8)), gap(102, 2, 9000));
    }

    #[test]
    fn issue_12_a_lost_padding_packet_before_padding_that_arrived_held_no_media() {
        let mut g = PaddingGaps::default();
        g.packet(101, 9000, true, &vp8(true, 7));
        // 102 lost, 103 and 104 padding arrive, 106 lost, 107 starts picture 8.
        for seq in [103, 104] {
            assert!(g.packet(seq, 9000, false, &[]).is_empty());
        }
        let mut both = gap(102, 1, 9000);
        both.extend(gap(105, 2, 9000));
        assert_eq!(g.packet(107, 12000, false, &vp8(true, 8)), both);
    }

    #[test]
    fn a_gap_that_may_have_held_media_is_left_to_the_resend() {
        let mut g = PaddingGaps::default();
        g.packet(100, 9000, true, &vp8(true, 7));
        // Picture 8 was lost whole: 9 follows the gap.
        assert!(g.packet(103, 15000, false, &vp8(true, 9)).is_empty());
        // The gap opens inside picture 9 (no marker before it).
        assert!(g.packet(105, 15000, true, &vp8(false, 9)).is_empty());
        // The gap closes inside a picture (not its first packet).
        g.packet(106, 18000, true, &vp8(true, 10));
        assert!(g.packet(108, 21000, true, &vp8(false, 11)).is_empty());
        // The longest gap taken, and one more.
        g.packet(109, 24000, true, &vp8(true, 12));
        assert_eq!(g.packet(110 + MAX_GAP, 27000, true, &vp8(true, 13)), gap(110, MAX_GAP, 24000));
        assert!(g.packet(110 + 2 * MAX_GAP + 2, 30000, true, &vp8(true, 14)).is_empty());
    }

    #[test]
    fn padding_that_arrives_and_wrapping_numbers_keep_the_rule() {
        let mut g = PaddingGaps::default();
        g.packet(65_534, 9000, true, &vp8(true, 0x7fff));
        // Padding arrives (empty payload), then one is lost, then picture 0 (the ID wrapped).
        assert!(g.packet(65_535, 9000, false, &[]).is_empty());
        assert_eq!(g.packet(1, 12000, false, &vp8(true, 0)), gap(0, 1, 9000));
        // A resend of an old number changes nothing.
        assert!(g.packet(0, 9000, false, &[]).is_empty());
        assert!(g.packet(2, 12000, true, &vp8(false, 0)).is_empty());
        // A sender that starts its numbering again is followed from there.
        g.packet(40_000, 15000, true, &vp8(true, 1));
        assert_eq!(g.packet(40_002, 18000, true, &vp8(true, 2)), gap(40_001, 1, 15000));
    }
}

//! Redundant audio (RED, RFC 2198) as Chromium sends it for Opus: each packet carries the
//! previous packet's Opus frame beside its own, so a single lost packet is rebuilt whole from the
//! next one rather than from Opus's lower-rate in-band FEC or concealed. Parsing what the peer
//! sends (bytes from the network in, borrowed blocks out, every length checked), and building what
//! the kiosk sends on a lossy link with room for it ([`Repeater`]; `crate::adapt` decides when).

/// RED's payload type in the kiosk's offer (Chromium's own number for it).
pub const PAYLOAD_TYPE: u8 = 63;

/// The most blocks a packet may carry: Chromium sends one or two redundant blocks.
const MAX_BLOCKS: usize = 4;
/// 60 ms at 48 kHz: a repeated frame further back is not the previous packet's.
const MAX_OFFSET: u16 = 2880;

/// One block of a RED payload.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Block<'a> {
    /// The block's own payload type (Opus's, for what Chromium sends).
    pub payload_type: u8,
    /// How far before the packet's timestamp this block's media starts (0 for the primary).
    pub timestamp_offset: u16,
    /// The encoded media.
    pub data: &'a [u8],
}

/// A RED payload that does not parse.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum RedError {
    /// The payload ended inside a block header or a block.
    #[error("RED payload truncated")]
    Truncated,
    /// More blocks than any sender uses.
    #[error("RED payload with too many blocks")]
    TooManyBlocks,
}

/// The most a block's length field holds (10 bits).
const MAX_BLOCK_LEN: usize = 1023;

/// Builds the kiosk's own RED payloads: each frame with the one before it, as Chromium sends
/// them, so the peer rebuilds a single lost packet whole. Pure: frames and their place on the
/// stream's RTP clock in, payloads out.
#[derive(Debug, Default)]
pub struct Repeater {
    /// The last frame sent and where it starts on the RTP clock (samples since the first).
    previous: Option<(u64, Vec<u8>)>,
}

impl Repeater {
    /// The RED payload for `frame` (of `payload_type`) starting at `at` on the RTP clock: the
    /// previous frame repeated ahead of it when that one starts at most 60 ms before (a frame
    /// further back, after a gap or a pause, is no packet the peer could miss now) and fits a
    /// block; the frame alone in RED's one-byte header otherwise.
    pub fn next(&mut self, payload_type: u8, at: u64, frame: &[u8]) -> Vec<u8> {
        let payload_type = payload_type & 0x7f;
        let previous = self.previous.take().and_then(|(from, data)| {
            let offset = u16::try_from(at.checked_sub(from)?).ok()?;
            ((1..=MAX_OFFSET).contains(&offset) && !data.is_empty() && data.len() <= MAX_BLOCK_LEN)
                .then_some((offset, data))
        });
        let mut out = Vec::with_capacity(5 + frame.len() + previous.as_ref().map_or(0, |(_, d)| d.len()));
        if let Some((offset, data)) = &previous {
            // The length fits 10 bits and the offset 14 (checked above): no bits spill over.
            let len = data.len();
            out.push(0x80 | payload_type);
            out.push((offset >> 6) as u8);
            out.push((((offset & 0x3f) << 2) as u8) | ((len >> 8) as u8 & 0x03));
            out.push((len & 0xff) as u8);
        }
        out.push(payload_type);
        if let Some((_, data)) = &previous {
            out.extend_from_slice(data);
        }
        out.extend_from_slice(frame);
        self.previous = Some((at, frame.to_vec()));
        out
    }

    /// Forgets the last frame: the voice went out as plain Opus meanwhile.
    pub fn forget(&mut self) {
        self.previous = None;
    }
}

/// A parsed RED payload: the redundant blocks, oldest first, then the primary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Red<'a> {
    /// Older frames, repeated, oldest first.
    pub redundant: Vec<Block<'a>>,
    /// This packet's own frame.
    pub primary: Block<'a>,
}

impl<'a> Red<'a> {
    /// Parses a RED payload (RFC 2198 section 3): four-byte headers for the redundant blocks
    /// (F bit set, payload type, 14-bit timestamp offset, 10-bit length), a one-byte header for
    /// the primary, then the blocks in the same order, the primary taking the rest.
    pub fn parse(payload: &'a [u8]) -> Result<Self, RedError> {
        let mut headers = Vec::new();
        let mut at = 0;
        loop {
            let first = *payload.get(at).ok_or(RedError::Truncated)?;
            if first & 0x80 == 0 {
                at += 1;
                break;
            }
            let h = payload.get(at..at + 4).ok_or(RedError::Truncated)?;
            if headers.len() == MAX_BLOCKS {
                return Err(RedError::TooManyBlocks);
            }
            let offset = (u16::from(h[1]) << 6) | (u16::from(h[2]) >> 2);
            let len = (usize::from(h[2] & 0x03) << 8) | usize::from(h[3]);
            headers.push((first & 0x7f, offset, len));
            at += 4;
        }
        let primary_type = payload[at - 1] & 0x7f;
        let mut redundant = Vec::with_capacity(headers.len());
        for (payload_type, timestamp_offset, len) in headers {
            let data = payload.get(at..at + len).ok_or(RedError::Truncated)?;
            redundant.push(Block { payload_type, timestamp_offset, data });
            at += len;
        }
        // `at` is within the payload: every block before it was taken from it.
        let primary = Block { payload_type: primary_type, timestamp_offset: 0, data: &payload[at..] };
        Ok(Red { redundant, primary })
    }

    /// The newest repeated frame of `payload_type` (the previous packet's, as Chromium sends it),
    /// if it starts at most 60 ms (Opus's longest frame at 48 kHz) before this packet's.
    pub fn previous(&self, payload_type: u8) -> Option<&'a [u8]> {
        self.previous_block(payload_type).map(|b| b.data)
    }

    /// The block [`Red::previous`] takes its frame from.
    pub fn previous_block(&self, payload_type: u8) -> Option<Block<'a>> {
        self.redundant
            .iter()
            .rev()
            .find(|b| b.payload_type == payload_type && (1..=MAX_OFFSET).contains(&b.timestamp_offset))
            .filter(|b| !b.data.is_empty())
            .copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A RED payload as RFC 2198 lays it out: `(payload type, offset, data)` redundant blocks,
    /// then the primary.
    fn red(redundant: &[(u8, u16, &[u8])], primary_type: u8, primary: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        for (pt, offset, data) in redundant {
            out.push(0x80 | pt);
            out.push((offset >> 6) as u8);
            out.push((((offset & 0x3f) << 2) as u8) | ((data.len() >> 8) as u8 & 0x03));
            out.push(data.len() as u8);
        }
        out.push(primary_type);
        for (_, _, data) in redundant {
            out.extend_from_slice(data);
        }
        out.extend_from_slice(primary);
        out
    }

    #[test]
    fn a_packet_with_the_previous_frame_parses_into_both() {
        let bytes = red(&[(111, 960, b"previous frame")], 111, b"this frame");
        let r = Red::parse(&bytes).expect("parses");
        assert_eq!(r.primary, Block { payload_type: 111, timestamp_offset: 0, data: b"this frame" });
        assert_eq!(r.redundant, vec![Block { payload_type: 111, timestamp_offset: 960, data: b"previous frame" }]);
        assert_eq!(r.previous(111), Some(&b"previous frame"[..]));
        assert_eq!(r.previous(0), None, "not of that payload type");
        let far = red(&[(111, 4800, b"long ago")], 111, b"now");
        assert_eq!(Red::parse(&far).expect("parses").previous(111), None, "100 ms back is not the previous packet");
    }

    #[test]
    fn a_packet_with_no_redundancy_is_its_primary() {
        let alone = red(&[], 111, b"alone");
        let r = Red::parse(&alone).expect("parses");
        assert!(r.redundant.is_empty());
        assert_eq!(r.primary.data, b"alone");
        // Two redundant blocks, oldest first; a long one uses the length's top bits.
        let long = vec![7u8; 700];
        let bytes = red(&[(111, 1920, &long), (111, 960, b"b")], 111, b"c");
        let r = Red::parse(&bytes).expect("parses");
        assert_eq!(r.redundant[0].data.len(), 700);
        assert_eq!(r.previous(111), Some(&b"b"[..]), "the newest repeat");
        assert_eq!(r.primary.data, b"c");
    }

    #[test]
    fn issue_12_the_kiosk_repeats_each_frame_in_the_next_packet() {
        let mut r = Repeater::default();
        let first = r.next(111, 0, b"one");
        let parsed = Red::parse(&first).expect("parses");
        assert!(parsed.redundant.is_empty(), "nothing before the first frame");
        assert_eq!(parsed.primary.data, b"one");
        let second = r.next(111, 960, b"two");
        assert_eq!(second, red(&[(111, 960, b"one")], 111, b"two"), "RFC 2198's layout, as Chromium sends it");
        let parsed = Red::parse(&second).expect("parses");
        assert_eq!(parsed.previous(111), Some(&b"one"[..]));
        assert_eq!(parsed.primary, Block { payload_type: 111, timestamp_offset: 0, data: b"two" });
        // 60 ms packets on a slow link: the previous is 2880 samples back and still repeated.
        let long = r.next(111, 960 + 2880, b"three");
        assert_eq!(Red::parse(&long).expect("parses").previous(111), Some(&b"two"[..]));
        // After a gap (a pause, a packet the encoder dropped) the older frame is not repeated.
        let after_gap = Red::parse(&r.next(111, 960 + 2880 + 4800, b"four")).map(|p| p.redundant.len());
        assert_eq!(after_gap, Ok(0));
        // A frame too long for a block's 10-bit length goes alone, and the one after it too.
        let big = vec![9u8; 1500];
        let at = 960 + 2880 + 4800;
        assert_eq!(Red::parse(&r.next(111, at + 960, &big)).map(|p| p.redundant.len()), Ok(1));
        assert_eq!(Red::parse(&r.next(111, at + 1920, b"five")).map(|p| p.redundant.len()), Ok(0));
        // Back after plain Opus: nothing old is repeated.
        r.forget();
        assert_eq!(Red::parse(&r.next(111, at + 2880, b"six")).map(|p| p.redundant.len()), Ok(0));
    }

    /// Network input: every truncation and every byte string is an error or a parse, never a panic.
    #[test]
    fn garbled_payloads_are_refused_without_panicking() {
        assert_eq!(Red::parse(&[]), Err(RedError::Truncated));
        let bytes = red(&[(111, 960, b"previous frame")], 111, b"this frame");
        for cut in 0..bytes.len() {
            let parsed = Red::parse(&bytes[..cut]);
            // Cut inside the headers or the redundant block: refused; inside the primary: shorter.
            assert!(parsed.is_err() || cut >= 5 + b"previous frame".len(), "cut at {cut}: {parsed:?}");
        }
        assert_eq!(Red::parse(&[0x80 | 111; 40]), Err(RedError::TooManyBlocks));
        let mut x = 0x9e37_79b9_7f4a_7c15u64;
        for _ in 0..20_000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let len = (x % 24) as usize;
            let bytes: Vec<u8> = (0..len).map(|i| (x >> (i % 8 * 8)) as u8).collect();
            let _ = Red::parse(&bytes);
        }
    }
}

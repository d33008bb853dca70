//! The peer's retransmissions (RTX, RFC 4588) put back on the stream they repair before anything
//! counts the stream. rtc restores them only at the end of the receive chain, so its receiver
//! reports counted every repaired packet as lost: the kiosk told Chromium of the link's raw loss
//! (~3 % on the prison profile). Chromium sizes its FEC and its loss-based estimate by that
//! figure; with ULPFEC negotiated it spent a third of its rate toward the kiosk on parity packets
//! and sent 320x240 where its own pair got 640x480 (issue #12). Restored here, wire-ward of the NACK
//! generator, the TWCC receiver and the receiver reports, a repair counts as the packet it is.
//! (Chromium's own reports leave RTX repairs out of the share lost: see docs/architecture.md for
//! what reporting so measured.)

use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use std::collections::{HashMap, VecDeque};

/// See the module docs.
#[derive(Default)]
pub(crate) struct RtxRestore {
    /// RTX SSRC -> the SSRC it repairs (the remote description's FID groups, as rtc binds them).
    primaries: HashMap<u32, u32>,
    /// RTX payload type -> the payload type it repairs (`apt`). The kiosk always offers, so these
    /// are its own numbers, which the browser's answer keeps.
    apt: HashMap<u8, u8>,
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

impl RtxRestore {
    /// Restores retransmissions whose payload types map as `apt` (RTX -> repaired).
    pub(crate) fn new(apt: impl IntoIterator<Item = (u8, u8)>) -> Self {
        RtxRestore { apt: apt.into_iter().collect(), ..Default::default() }
    }

    /// `packet` as the packet it repeats, if it is a retransmission with an original number
    /// (RFC 4588 section 4: the original sequence number, then the original payload). Padding
    /// only, with no number, is left as it came: there is nothing to restore.
    fn restore(&self, packet: &mut rtc::rtp::Packet) {
        let h = &packet.header;
        let (Some(&primary), Some(&payload_type)) = (self.primaries.get(&h.ssrc), self.apt.get(&h.payload_type)) else {
            return;
        };
        let Some(&[hi, lo]) = packet.payload.get(..2) else { return };
        packet.header.ssrc = primary;
        packet.header.payload_type = payload_type;
        packet.header.sequence_number = u16::from_be_bytes([hi, lo]);
        // rtc's packet holds its payload without the padding, which the sender adds to RTX only.
        packet.header.padding = false;
        packet.payload = packet.payload.slice(2..);
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RtxRestore {
    chain_types!();
    poll_queues!();

    fn handle_read(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtp(rtp) = &mut msg.message.packet {
            self.restore(rtp);
        }
        self.reads.push_back(msg);
        Ok(())
    }

    pass_writes!();
}

impl Interceptor for RtxRestore {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, info: &StreamInfo) {
        if let Some(rtx) = info.ssrc_rtx {
            self.primaries.insert(rtx, info.ssrc);
        }
    }
    fn unbind_remote_stream(&mut self, info: &StreamInfo) {
        self.primaries.retain(|_, primary| *primary != info.ssrc);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rtc::shared::TransportContext;
    use std::time::Instant;

    fn rtp(ssrc: u32, pt: u8, seq: u16, payload: &[u8]) -> TaggedPacket {
        let mut p = rtc::rtp::Packet::default();
        p.header.ssrc = ssrc;
        p.header.payload_type = pt;
        p.header.sequence_number = seq;
        p.payload = bytes::Bytes::copy_from_slice(payload);
        TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: rtc::interceptor::AttributedPacket::new(Packet::Rtp(p)),
        }
    }

    fn through(r: &mut RtxRestore, msg: TaggedPacket) -> rtc::rtp::Packet {
        r.handle_read(msg).expect("reads");
        match r.poll_read().expect("passed on").message.packet {
            Packet::Rtp(p) => p,
            _ => panic!("an RTP packet in, something else out"),
        }
    }

    /// Issue #12: a retransmission reaches the receiver reports as the packet it repeats, on the
    /// repaired stream with its own number and payload type; padding, unknown streams and payload
    /// types pass as they came.
    #[test]
    fn issue_12_a_retransmission_is_counted_as_the_packet_it_repeats() {
        let mut r = RtxRestore::new([(97, 96), (117, 116)]);
        // Two retransmission payload types, as a stream wrapped in RED would have.
        let info = StreamInfo { ssrc: 1000, ssrc_rtx: Some(2000), ..Default::default() };
        r.bind_remote_stream(&info);
        let p = through(&mut r, rtp(2000, 117, 7, &[0x01, 0x02, 96, 0xaa, 0xbb]));
        assert_eq!((p.header.ssrc, p.header.payload_type, p.header.sequence_number), (1000, 116, 0x0102));
        assert_eq!(&p.payload[..], &[96, 0xaa, 0xbb]);
        let p = through(&mut r, rtp(2000, 97, 8, &[0x00, 0x05, 0x90]));
        assert_eq!((p.header.ssrc, p.header.payload_type, p.header.sequence_number), (1000, 96, 5));
        // Padding only: nothing to restore.
        let p = through(&mut r, rtp(2000, 97, 9, &[]));
        assert_eq!((p.header.ssrc, p.header.sequence_number), (2000, 9));
        // Media, another stream, an unknown payload type: untouched.
        for (ssrc, pt) in [(1000, 96), (3000, 97), (2000, 100)] {
            let p = through(&mut r, rtp(ssrc, pt, 11, &[0x00, 0x01, 0x02]));
            assert_eq!((p.header.ssrc, p.header.payload_type, p.header.sequence_number), (ssrc, pt, 11));
            assert_eq!(p.payload.len(), 3);
        }
        r.unbind_remote_stream(&info);
        let p = through(&mut r, rtp(2000, 97, 12, &[0x00, 0x05, 0x90]));
        assert_eq!(p.header.ssrc, 2000, "unbound: no longer restored");
    }
}

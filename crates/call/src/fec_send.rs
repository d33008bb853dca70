//! The kiosk's video protected with ULPFEC on its way out, as libwebrtc sends it: each VP8 packet
//! wrapped in RED, parity packets (`crate::ulpfec`) after every few frames' packets on the video's
//! own SSRC, and the video's sequence renumbered to make room for them. Application-ward of the
//! NACK responder and the TWCC sender, so a parity packet is kept for resending, stamped, paced
//! and counted by the estimate like any other; and the numbers a NACK names are the ones sent.
//! Chromium takes RED and ULPFEC whenever an offer names them, and receiving FEC it stops
//! adding the round trip to its jitter buffer: named but not sent, the consultant's picture froze
//! more (issue #12).

use crate::ulpfec::UlpfecEncoder;
use rtc::interceptor::{Attribute, Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::sansio::Protocol;
use rtc::shared::marshal::Marshal;
use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

// The transport-wide sequence number's header extension, whose value the TWCC sender writes
// wire-ward of here.
use rtc::sdp::extmap::TRANSPORT_CC_URI as TWCC_URI;

/// The payload types the peer agreed to for protected video.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct FecTypes {
    /// RED for video.
    pub(crate) red: u8,
    /// ULPFEC, inside RED.
    pub(crate) ulpfec: u8,
    /// Retransmissions of RED (`apt` = `red`).
    pub(crate) red_rtx: u8,
}

/// What the engine and the encoder loop tell the chain, and what it counts: shared.
#[derive(Debug, Clone, Default)]
pub(crate) struct FecSwitch(Arc<SwitchInner>);

#[derive(Debug, Default)]
struct SwitchInner {
    /// `None` until a description names RED, ULPFEC and RTX for RED for video.
    types: Mutex<Option<FecTypes>>,
    /// Parity packets per media packet (`ulpfec::protection`), as f64 bits.
    share: AtomicU64,
    /// Parity packets sent.
    sent: AtomicU64,
    /// Bytes of protected video sent (VP8's payloads, as the encoder's rate counts them), and of
    /// parity (the payloads of the parity packets): what the parity really costs (see
    /// [`Overhead`]).
    media_bytes: AtomicU64,
    parity_bytes: AtomicU64,
}

impl FecSwitch {
    /// The types the last description agreed to (`None`: send plain VP8).
    pub(crate) fn set_types(&self, types: Option<FecTypes>) {
        *crate::lock(&self.0.types) = types;
    }

    fn types(&self) -> Option<FecTypes> {
        *crate::lock(&self.0.types)
    }

    /// Parity packets to send per media packet from now.
    pub(crate) fn set_share(&self, share: f64) {
        self.0.share.store(share.to_bits(), Ordering::Relaxed);
    }

    /// The share, or 0 while nothing protected is negotiated.
    pub(crate) fn share(&self) -> f64 {
        if self.types().is_none() {
            return 0.0;
        }
        f64::from_bits(self.0.share.load(Ordering::Relaxed))
    }

    /// Parity packets sent so far.
    pub(crate) fn sent(&self) -> u64 {
        self.0.sent.load(Ordering::Relaxed)
    }

    /// Bytes of video and of parity sent so far (see [`Overhead`]).
    pub(crate) fn bytes(&self) -> (u64, u64) {
        (self.0.media_bytes.load(Ordering::Relaxed), self.0.parity_bytes.load(Ordering::Relaxed))
    }
}

/// What the parity packets really cost, as a share of the video they protect, from the bytes
/// sent. The share asked for is a floor, not the price: a set closes at a frame's end, and a
/// frame of one or two packets pays a whole parity packet (or two such frames one), so at the
/// prison profile's 30 fps a share of 0.3 came to one parity packet every two frames, 0.5 of the
/// video's bytes. Taken off the video's budget at 0.3, the rest overshot it by a sixth and ate
/// the room kept for keyframes and resends (issue #12).
#[derive(Debug, Clone, Default)]
pub(crate) struct Overhead {
    /// The counters at the last look.
    last: (u64, u64),
    /// The share so far, smoothed; `None` until enough has been sent to tell.
    ratio: Option<f64>,
}

impl Overhead {
    /// Video bytes over which a share is worth taking: a few frames' worth at the lowest rung.
    const ENOUGH: u64 = 4_000;
    /// How much of the last share each new look keeps (about two seconds at two looks a second).
    const KEEP: f64 = 0.75;

    /// The counters now ([`FecSwitch::bytes`]); returns the share parity costs, or `None` until
    /// enough video has been sent to tell.
    pub(crate) fn update(&mut self, (media, parity): (u64, u64)) -> Option<f64> {
        let (dm, dp) = (media.saturating_sub(self.last.0), parity.saturating_sub(self.last.1));
        if dm >= Self::ENOUGH {
            self.last = (media, parity);
            let now = dp as f64 / dm as f64;
            self.ratio = Some(self.ratio.map_or(now, |r| r * Self::KEEP + now * (1.0 - Self::KEEP)));
        }
        self.ratio
    }

    /// The video rate to ask the encoder for so that it and its parity together come to
    /// `video_kbps`, at a `share` asked for now (0: no parity is sent).
    pub(crate) fn media_kbps(&self, video_kbps: u32, share: f64) -> u32 {
        if share <= 0.0 {
            return video_kbps;
        }
        // At least the share: just after a stretch without loss the measured cost is still near
        // nothing.
        let cost = self.ratio.unwrap_or(share).max(share);
        (f64::from(video_kbps) / (1.0 + cost)) as u32
    }
}

/// One local video stream's protection.
#[derive(Debug, Default)]
struct Stream {
    /// The media's own payload type (the RED block's).
    media_pt: u8,
    twcc: Option<u8>,
    /// The next number sent; from the first packet's own.
    next_seq: Option<u16>,
    encoder: UlpfecEncoder,
}

/// See the module docs. Slot [`SLOT`].
#[derive(Default)]
pub(crate) struct UlpfecSend {
    switch: FecSwitch,
    /// By SSRC; kept through an unbind, as rtc binds a stream again on renegotiation and the
    /// sequence must not start over.
    streams: HashMap<u32, Stream>,
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

/// Application-ward of the NACK responder (4 000), where rtc's own FEC encoder sits.
pub(crate) const SLOT: usize = 5_000;

impl UlpfecSend {
    pub(crate) fn new(switch: FecSwitch) -> Self {
        UlpfecSend { switch, ..Default::default() }
    }

    /// `msg`, a packet of the local video stream, as it leaves: wrapped and renumbered, with the
    /// parity packets its set calls for after it.
    fn protect(&mut self, mut msg: TaggedPacket, mut rtp: rtc::rtp::Packet, types: FecTypes) {
        let share = self.switch.share();
        let Some(stream) = self.streams.get_mut(&rtp.header.ssrc) else {
            // Not a bound video stream (the caller checks): on as it came.
            self.writes.push_back(msg);
            return;
        };
        let seq = *stream.next_seq.get_or_insert(rtp.header.sequence_number);
        stream.next_seq = Some(seq.wrapping_add(1));
        rtp.header.sequence_number = seq;
        // Padding carries nothing to wrap or protect.
        if rtp.payload.is_empty() {
            msg.message.packet = Packet::Rtp(rtp);
            self.writes.push_back(msg);
            return;
        }
        // Protected as the peer will see it, the TWCC value zeroed as libwebrtc's receiver zeroes
        // it before rebuilding: the extension is put in here so the header's layout does not
        // change when the TWCC sender writes its value.
        if let Some(id) = stream.twcc {
            if let Err(e) = rtp.header.set_extension(id, bytes::Bytes::from_static(&[0, 0])) {
                tracing::debug!(error = %e, "no room for the TWCC extension");
            }
        }
        let protected = match rtp.marshal() {
            Ok(raw) => raw.to_vec(),
            Err(e) => {
                tracing::debug!(error = %e, "a video packet that does not marshal, sent unprotected");
                msg.message.packet = Packet::Rtp(rtp);
                self.writes.push_back(msg);
                return;
            }
        };
        self.switch.0.media_bytes.fetch_add(rtp.payload.len() as u64, Ordering::Relaxed);
        let blocks = stream.encoder.media(protected, rtp.header.marker, share);
        let mut wrapped = Vec::with_capacity(1 + rtp.payload.len());
        wrapped.push(stream.media_pt & 0x7f);
        wrapped.extend_from_slice(&rtp.payload);
        let mut fec_header = rtp.header.clone();
        rtp.header.payload_type = types.red;
        rtp.payload = wrapped.into();
        let (now, transport) = (msg.now, msg.transport);
        msg.message.packet = Packet::Rtp(rtp);
        self.writes.push_back(msg);
        fec_header.payload_type = types.red;
        fec_header.marker = false;
        for block in blocks {
            let seq = stream.next_seq.unwrap_or_default();
            stream.next_seq = Some(seq.wrapping_add(1));
            fec_header.sequence_number = seq;
            let mut payload = Vec::with_capacity(1 + block.len());
            payload.push(types.ulpfec & 0x7f);
            payload.extend_from_slice(&block);
            self.switch.0.parity_bytes.fetch_add(payload.len() as u64, Ordering::Relaxed);
            let packet = rtc::rtp::Packet { header: fec_header.clone(), payload: payload.into() };
            self.writes.push_back(TaggedPacket {
                now,
                transport,
                message: rtc::interceptor::AttributedPacket::new(Packet::Rtp(packet)),
            });
            self.switch.0.sent.fetch_add(1, Ordering::Relaxed);
        }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for UlpfecSend {
    chain_types!();
    poll_queues!();

    pass_reads!();

    fn handle_write(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        let types = self.switch.types();
        match (&msg.message.packet, types) {
            (Packet::Rtp(rtp), Some(types)) if self.streams.contains_key(&rtp.header.ssrc) => {
                let rtp = rtp.clone();
                self.protect(msg, rtp, types);
            }
            _ => self.writes.push_back(msg),
        }
        Ok(())
    }
}

impl Interceptor for UlpfecSend {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if !info.mime_type.to_ascii_lowercase().starts_with("video/") {
            return;
        }
        let stream = self.streams.entry(info.ssrc).or_default();
        stream.media_pt = info.payload_type;
        stream.twcc =
            info.rtp_header_extensions.iter().find(|e| e.uri == TWCC_URI).and_then(|e| u8::try_from(e.id).ok());
    }
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// Gives a resend of RED-wrapped video the payload type of RTX for RED. rtc's NACK responder
/// resends on the one RTX payload type the stream was bound with (`apt` = VP8), and Chromium,
/// restoring such a resend as VP8, would decode the RED header as VP8's. Wire-ward of the
/// responder; a resend is RED when the byte after its original sequence number is a RED header
/// naming the media or ULPFEC (VP8's descriptor never has that byte's reserved bit set).
#[derive(Default)]
pub(crate) struct RedRtx {
    switch: FecSwitch,
    /// RTX SSRCs of the local video streams, to the media's payload type.
    rtx: HashMap<u32, u8>,
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
}

/// Between the pacer (3 000) and the NACK responder (4 000).
pub(crate) const RED_RTX_SLOT: usize = 3_500;

impl RedRtx {
    pub(crate) fn new(switch: FecSwitch) -> Self {
        RedRtx { switch, ..Default::default() }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for RedRtx {
    chain_types!();
    poll_queues!();

    pass_reads!();

    fn handle_write(&mut self, mut msg: TaggedPacket) -> Result<(), Self::Error> {
        let resend = msg.message.has(&Attribute::Retransmission);
        if let (true, Some(types), Packet::Rtp(rtp)) = (resend, self.switch.types(), &mut msg.message.packet) {
            if let Some(&media_pt) = self.rtx.get(&rtp.header.ssrc) {
                let red_block = rtp.payload.get(2).map(|b| (b & 0x80 == 0, b & 0x7f));
                if matches!(red_block, Some((true, pt)) if pt == media_pt || pt == types.ulpfec) {
                    rtp.header.payload_type = types.red_rtx;
                }
            }
        }
        self.writes.push_back(msg);
        Ok(())
    }
}

impl Interceptor for RedRtx {
    fn bind_local_stream(&mut self, info: &StreamInfo) {
        if let (true, Some(rtx)) = (info.mime_type.to_ascii_lowercase().starts_with("video/"), info.ssrc_rtx) {
            self.rtx.insert(rtx, info.payload_type);
        }
    }
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

/// The protected-video payload types `sdp` (the peer's description) agrees to, if the video
/// section in which the peer receives names RED, ULPFEC and RTX for that RED. (With the
/// directions negotiated apart, `engine::split_video`, the peer's section for its own video is
/// `a=sendonly` and names none of them.)
pub(crate) fn agreed_types(sdp: &str) -> Option<FecTypes> {
    let video = sdp.split("\nm=").find(|s| {
        (s.starts_with("video") || s.starts_with("m=video"))
            && !s.lines().any(|l| matches!(l.trim_end(), "a=sendonly" | "a=inactive"))
    })?;
    let rtpmap = |name: &str| {
        video.lines().find_map(|l| {
            let (pt, codec) = l.strip_prefix("a=rtpmap:")?.split_once(' ')?;
            codec.trim().eq_ignore_ascii_case(name).then(|| pt.parse::<u8>().ok()).flatten()
        })
    };
    let red = rtpmap("red/90000")?;
    let ulpfec = rtpmap("ulpfec/90000")?;
    let red_rtx = video.lines().find_map(|l| {
        let (pt, params) = l.strip_prefix("a=fmtp:")?.split_once(' ')?;
        (params.trim() == format!("apt={red}")).then(|| pt.parse::<u8>().ok()).flatten()
    })?;
    Some(FecTypes { red, ulpfec, red_rtx })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ulpfec::UlpfecDecoder;
    use rtc::interceptor::{AttributedPacket, NackResponderBuilder, RTCPFeedback, RTPHeaderExtension};
    use rtc::rtcp::transport_feedbacks::transport_layer_nack::{nack_pairs_from_sequence_numbers, TransportLayerNack};
    use rtc::shared::TransportContext;
    use std::time::Instant;

    const VIDEO: u32 = 2;
    const RTX: u32 = 7;
    const TWCC_ID: u8 = 5;
    const TYPES: FecTypes = FecTypes { red: 116, ulpfec: 118, red_rtx: 117 };

    fn video() -> StreamInfo {
        StreamInfo {
            ssrc: VIDEO,
            ssrc_rtx: Some(RTX),
            payload_type: 96,
            payload_type_rtx: Some(97),
            mime_type: "video/VP8".into(),
            clock_rate: 90_000,
            rtcp_feedback: vec![RTCPFeedback { typ: "nack".into(), parameter: String::new() }],
            rtp_header_extensions: vec![RTPHeaderExtension { uri: TWCC_URI.into(), id: TWCC_ID.into() }],
            ..Default::default()
        }
    }

    fn tagged(p: rtc::rtp::Packet) -> TaggedPacket {
        TaggedPacket {
            now: Instant::now(),
            transport: TransportContext::default(),
            message: AttributedPacket::new(Packet::Rtp(p)),
        }
    }

    /// A VP8 packet as the kiosk's packetizer writes it.
    fn vp8(seq: u16, ts: u32, marker: bool, len: usize) -> rtc::rtp::Packet {
        let mut p = rtc::rtp::Packet::default();
        p.header.version = 2;
        p.header.ssrc = VIDEO;
        p.header.payload_type = 96;
        p.header.sequence_number = seq;
        p.header.timestamp = ts;
        p.header.marker = marker;
        p.payload = (0..len).map(|i| (i as u8) ^ (seq as u8)).collect::<Vec<u8>>().into();
        p.payload = [&[0x90u8][..], &p.payload[1..]].concat().into();
        p
    }

    fn rtp_of(msg: TaggedPacket) -> rtc::rtp::Packet {
        match msg.message.packet {
            Packet::Rtp(p) => p,
            _ => panic!("an RTP packet in, something else out"),
        }
    }

    /// Ten two-packet frames through a sender at `share`; what left, in order.
    fn send(s: &mut UlpfecSend, share: f64) -> (Vec<rtc::rtp::Packet>, Vec<rtc::rtp::Packet>) {
        s.switch.set_share(share);
        let mut originals = Vec::new();
        let mut out = Vec::new();
        for frame in 0..10u16 {
            for i in 0..2u16 {
                let p = vp8(
                    500 + frame * 2 + i,
                    u32::from(frame) * 3000,
                    i == 1,
                    300 + usize::from(frame) * 40 + usize::from(i),
                );
                originals.push(p.clone());
                s.handle_write(tagged(p)).expect("write");
                out.extend(std::iter::from_fn(|| s.poll_write()).map(rtp_of));
            }
        }
        (originals, out)
    }

    /// Issue #12: once the peer agreed to RED and ULPFEC, the video leaves wrapped in RED on
    /// consecutive numbers with parity packets among them, each with the TWCC extension in
    /// place for the TWCC sender; and any one packet lost from a parity packet's set is rebuilt
    /// from it, byte for byte, as Chromium's receiver sees it (RED taken off, TWCC value zeroed).
    /// Before the answer, and at no loss, nothing is added.
    #[test]
    fn issue_12_video_leaves_wrapped_renumbered_and_protected() {
        let switch = FecSwitch::default();
        let mut s = UlpfecSend::new(switch.clone());
        s.bind_local_stream(&video());
        let (originals, out) = send(&mut s, 0.15);
        assert_eq!(out, originals, "nothing agreed yet: plain VP8 as written");

        switch.set_types(Some(TYPES));
        let (originals, out) = send(&mut s, 0.15);
        let seqs: Vec<u16> = out.iter().map(|p| p.header.sequence_number).collect();
        let first = seqs[0];
        assert_eq!(seqs, (0..out.len() as u16).map(|i| first.wrapping_add(i)).collect::<Vec<_>>(), "consecutive");
        assert!(out.iter().all(|p| p.header.payload_type == 116 && p.header.get_extension(TWCC_ID).is_some()));
        let fec: Vec<&rtc::rtp::Packet> = out.iter().filter(|p| p.payload[0] == 118).collect();
        let media: Vec<&rtc::rtp::Packet> = out.iter().filter(|p| p.payload[0] == 96).collect();
        assert_eq!(media.len(), originals.len());
        assert!(!fec.is_empty() && fec.len() * 4 <= media.len() + 4, "{} parity for {} media", fec.len(), media.len());
        assert_eq!(switch.sent(), fec.len() as u64);
        // As Chromium's receiver rebuilds: RED off, the media's payload type back, TWCC zeroed.
        let seen = |p: &rtc::rtp::Packet| {
            let mut p = p.clone();
            p.header.payload_type = p.payload[0];
            p.payload = p.payload.slice(1..);
            p.header.set_extension(TWCC_ID, bytes::Bytes::from_static(&[0, 0])).expect("set");
            p.marshal().expect("marshals").to_vec()
        };
        for (m, o) in media.iter().zip(&originals) {
            assert_eq!(m.payload.slice(1..), o.payload, "the payload after the RED header is VP8's");
            assert_eq!((m.header.timestamp, m.header.marker), (o.header.timestamp, o.header.marker));
        }
        let mut rebuilt = 0;
        for lost in &media {
            let mut d = UlpfecDecoder::default();
            let mut got = Vec::new();
            for p in &out {
                if p.header.sequence_number == lost.header.sequence_number {
                    continue;
                }
                if p.payload[0] == 118 {
                    got.extend(d.fec(VIDEO, &p.payload[1..]).expect("parses"));
                } else {
                    got.extend(d.media(&seen(p)));
                }
            }
            assert_eq!(got, vec![seen(lost)], "packet {} rebuilt", lost.header.sequence_number);
            rebuilt += 1;
        }
        assert_eq!(rebuilt, media.len());

        // No loss measured: wrapped, no parity.
        let before = switch.sent();
        let (_, out) = send(&mut s, 0.0);
        assert!(out.iter().all(|p| p.payload[0] == 96));
        assert_eq!(switch.sent(), before);
    }

    /// Issue #12: at 30 fps a frame is one packet, and a share of 0.3 asked for costs a parity
    /// packet every two frames; the encoder is asked for what leaves the video's budget for both,
    /// from the parity's cost as sent (at the share asked for, the two came to a sixth over it).
    #[test]
    fn issue_12_video_and_its_parity_together_stay_within_the_videos_budget() {
        let switch = FecSwitch::default();
        switch.set_types(Some(TYPES));
        let mut s = UlpfecSend::new(switch.clone());
        s.bind_local_stream(&video());
        s.switch.set_share(0.3);
        let (budget_kbps, fps) = (300u32, 30u32);
        let mut overhead = Overhead::default();
        let mut media_kbps = overhead.media_kbps(budget_kbps, 0.3);
        // Four seconds, the encoder told anew every half second as the sending loop does; the
        // last two counted (RTP payloads: what the encoder's rate counts).
        let mut sent_bytes = 0usize;
        for frame in 0..4 * fps {
            if frame % (fps / 2) == 0 {
                overhead.update(switch.bytes());
                media_kbps = overhead.media_kbps(budget_kbps, 0.3);
            }
            let len = (media_kbps * 1000 / 8 / fps) as usize;
            s.handle_write(tagged(vp8(frame as u16, frame * 3000, true, len))).expect("write");
            let out: Vec<_> = std::iter::from_fn(|| s.poll_write()).map(rtp_of).collect();
            if frame >= 2 * fps {
                sent_bytes += out.iter().map(|p| p.payload.len()).sum::<usize>();
            }
        }
        let sent_kbps = sent_bytes as u32 * 8 / 2 / 1000;
        // (Within a hundredth: each video packet's RED header, and the cost's smoothing.)
        assert!(
            sent_kbps * 100 <= budget_kbps * 101,
            "video and parity sent {sent_kbps} kbit/s of a {budget_kbps} budget"
        );
        assert!(sent_kbps * 10 >= budget_kbps * 9, "and most of it used: {sent_kbps} kbit/s");
        let cost = overhead.update(switch.bytes()).expect("measured");
        assert!((0.45..0.55).contains(&cost), "a parity packet every two frames: {cost}");
        // No parity asked for: the whole budget is the video's.
        assert_eq!(overhead.media_kbps(budget_kbps, 0.0), budget_kbps);
    }

    /// Issue #12: a NACK for protected video (media or parity) is answered by rtc's responder on
    /// RTX, with the number the NACK named, its RED payload as sent, and the payload type of RTX
    /// for RED, so Chromium restores RED, not VP8; without RED agreed the resend keeps RTX for
    /// VP8.
    #[test]
    fn issue_12_a_resend_of_protected_video_goes_as_rtx_for_red() {
        let switch = FecSwitch::default();
        switch.set_types(Some(TYPES));
        switch.set_share(0.5);
        let mut s = UlpfecSend::new(switch.clone());
        let mut responder = NackResponderBuilder::new().with_size(256).build();
        let mut rewrite = RedRtx::new(switch.clone());
        for i in [&mut s as &mut dyn Interceptor, &mut responder, &mut rewrite] {
            i.bind_local_stream(&video());
        }
        let mut sent = Vec::new();
        for seq in 0..6u16 {
            s.handle_write(tagged(vp8(seq, 0, seq % 2 == 1, 200))).expect("write");
            while let Some(w) = s.poll_write() {
                let Packet::Rtp(p) = &w.message.packet else { panic!("RTP in, RTP out") };
                sent.push(p.clone());
                responder.handle_write(w).expect("write");
            }
        }
        while responder.poll_write().is_some() {}
        let fec = sent.iter().find(|p| p.payload[0] == 118).expect("a parity packet").clone();
        let media = sent.iter().find(|p| p.payload[0] == 96).expect("media").clone();
        let asked = [media.header.sequence_number, fec.header.sequence_number];
        let nack =
            TransportLayerNack { sender_ssrc: 9, media_ssrc: VIDEO, nacks: nack_pairs_from_sequence_numbers(&asked) };
        let message = AttributedPacket::new(Packet::Rtcp(vec![Box::new(nack)]));
        responder
            .handle_read(TaggedPacket { now: Instant::now(), transport: TransportContext::default(), message })
            .expect("read");
        let mut resent = Vec::new();
        while let Some(w) = responder.poll_write() {
            rewrite.handle_write(w).expect("write");
            resent.extend(std::iter::from_fn(|| rewrite.poll_write()).map(rtp_of));
        }
        assert_eq!(resent.len(), 2, "{resent:?}");
        for (r, original) in resent.iter().zip([&media, &fec]) {
            assert_eq!((r.header.ssrc, r.header.payload_type), (RTX, 117));
            assert_eq!(r.payload[..2], original.header.sequence_number.to_be_bytes());
            assert_eq!(r.payload.slice(2..), original.payload);
        }

        // Plain VP8 resent (nothing agreed): RTX for VP8, untouched.
        let mut plain = RedRtx::new(FecSwitch::default());
        plain.bind_local_stream(&video());
        let mut p = rtc::rtp::Packet::default();
        p.header.ssrc = RTX;
        p.header.payload_type = 97;
        p.payload = bytes::Bytes::from_static(&[0, 1, 0x60, 1]);
        let message = AttributedPacket::new(Packet::Rtp(p)).with(Attribute::Retransmission);
        plain
            .handle_write(TaggedPacket { now: Instant::now(), transport: TransportContext::default(), message })
            .expect("write");
        assert_eq!(rtp_of(plain.poll_write().expect("out")).header.payload_type, 97);
    }

    /// Issue #12: the types come from the peer's video section, only when all three are named.
    #[test]
    fn issue_12_the_protected_types_are_the_ones_the_peer_agreed_to() {
        let sdp = "v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111 63\r\na=rtpmap:63 red/48000/2\r\n\
                   m=video 9 UDP/TLS/RTP/SAVPF 96 97 116 117 118\r\na=rtpmap:96 VP8/90000\r\n\
                   a=rtpmap:97 rtx/90000\r\na=fmtp:97 apt=96\r\na=rtpmap:116 red/90000\r\n\
                   a=rtpmap:117 rtx/90000\r\na=fmtp:117 apt=116\r\na=rtpmap:118 ulpfec/90000\r\n\
                   m=application 9 UDP/DTLS/SCTP webrtc-datachannel\r\n";
        assert_eq!(agreed_types(sdp), Some(TYPES));
        assert_eq!(agreed_types(&sdp.replace("a=rtpmap:118 ulpfec/90000\r\n", "")), None, "no ULPFEC");
        assert_eq!(agreed_types(&sdp.replace("a=fmtp:117 apt=116\r\n", "")), None, "no RTX for RED");
        assert_eq!(agreed_types("v=0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 63\r\na=rtpmap:63 red/48000/2\r\n"), None);
        // The directions apart: the peer's own video (its send-only section, plain) comes first;
        // the types are read from the section it receives in.
        let video = sdp.find("m=video").expect("a video section");
        let apart = format!(
            "{}m=video 9 UDP/TLS/RTP/SAVPF 96 97\r\na=sendonly\r\na=rtpmap:96 VP8/90000\r\n{}",
            &sdp[..video],
            sdp[video..].replacen("\r\n", "\r\na=recvonly\r\n", 1)
        );
        assert_eq!(agreed_types(&apart), Some(TYPES));
        assert_eq!(agreed_types(&sdp.replacen("a=rtpmap:96", "a=sendonly\r\na=rtpmap:96", 1)), None, "it only sends");
    }
}

//! An interceptor that hands the peer's RTCP sender reports to lip sync (`crate::lipsync`): each
//! maps one of its streams' RTP timestamps to its wall clock. They are read as they pass; every
//! packet goes on untouched.

use crate::lipsync::LipSync;
use rtc::interceptor::{Interceptor, Packet, StreamInfo, TaggedPacket};
use rtc::rtcp::sender_report::SenderReport;
use rtc::sansio::Protocol;
use std::collections::VecDeque;
use std::sync::{Arc, Mutex};

/// See the module docs.
pub(crate) struct SenderReports {
    reads: VecDeque<TaggedPacket>,
    writes: VecDeque<TaggedPacket>,
    sync: Arc<Mutex<LipSync>>,
}

impl SenderReports {
    pub(crate) fn new(sync: Arc<Mutex<LipSync>>) -> Self {
        SenderReports { reads: VecDeque::new(), writes: VecDeque::new(), sync }
    }
}

impl Protocol<TaggedPacket, TaggedPacket, ()> for SenderReports {
    chain_types!();
    poll_queues!();

    fn handle_read(&mut self, msg: TaggedPacket) -> Result<(), Self::Error> {
        if let Packet::Rtcp(packets) = &msg.message.packet {
            for sr in packets.iter().filter_map(|p| p.as_any().downcast_ref::<SenderReport>()) {
                let mut sync = crate::lock(&self.sync);
                sync.sender_report(msg.now, sr.ssrc, sr.ntp_time, sr.rtp_time);
            }
        }
        self.reads.push_back(msg);
        Ok(())
    }

    pass_writes!();
}

impl Interceptor for SenderReports {
    fn bind_local_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_local_stream(&mut self, _info: &StreamInfo) {}
    fn bind_remote_stream(&mut self, _info: &StreamInfo) {}
    fn unbind_remote_stream(&mut self, _info: &StreamInfo) {}
}

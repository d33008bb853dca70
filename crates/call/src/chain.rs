//! What the kiosk's own interceptors (`crate::pacer`, `crate::nack`, `crate::keyframe`,
//! `crate::rtx`, `crate::fec_send`) share: the packet types of rtc's chain and the two queues each
//! keeps, `reads` and `writes`, from which the chain takes what an interceptor passes on.

/// The associated types of an interceptor in rtc's chain: packets in and out both ways, no events.
macro_rules! chain_types {
    () => {
        type Rout = rtc::interceptor::TaggedPacket;
        type Wout = rtc::interceptor::TaggedPacket;
        type Eout = ();
        type Error = rtc::shared::error::Error;
        type Time = std::time::Instant;
    };
}

/// `poll_read` and `poll_write` from the interceptor's `reads` and `writes` queues, oldest first.
macro_rules! poll_queues {
    () => {
        fn poll_read(&mut self) -> Option<Self::Rout> {
            self.reads.pop_front()
        }

        fn poll_write(&mut self) -> Option<Self::Wout> {
            self.writes.pop_front()
        }
    };
}

/// A `handle_read` that passes every inbound packet on unchanged.
macro_rules! pass_reads {
    () => {
        fn handle_read(&mut self, msg: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
            self.reads.push_back(msg);
            Ok(())
        }
    };
}

/// A `handle_write` that passes every outbound packet on unchanged.
macro_rules! pass_writes {
    () => {
        fn handle_write(&mut self, msg: rtc::interceptor::TaggedPacket) -> Result<(), Self::Error> {
            self.writes.push_back(msg);
            Ok(())
        }
    };
}

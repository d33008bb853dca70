//! The kiosk's receiver reports count a packet repaired after a report as received (issue #12).
//! rtc 0.21.1 counted every packet missing at a report as lost for good, so with retransmissions
//! the kiosk reported the link's raw loss to Chromium, which sizes its FEC and its loss-based
//! estimate by the reports (see third_party/rtc-interceptor/SECURECONSULT-PATCH.md, and
//! docs/architecture.md for what Chromium's own reports were measured to say).

use rtc::interceptor::{Interceptor, Packet, ReceiverReportBuilder, Registry, Slot};
use rtc::rtcp::receiver_report::ReceiverReport;
use rtc::sansio::Protocol;
use std::time::{Duration, Instant};

const SSRC: u32 = 21;

fn packet(seq: u16) -> Packet {
    let mut rtp = rtc::rtp::Packet::default();
    rtp.header.ssrc = SSRC;
    rtp.header.sequence_number = seq;
    // 20 ms of 48 kHz audio a packet, sent on time.
    rtp.header.timestamp = u32::from(seq) * 960;
    rtp.payload = vec![0u8; 80].into();
    Packet::Rtp(rtp)
}

/// Packets 0..100 every 20 ms with `lost` missing; each of `late` then arrives at its own instant.
/// Returns (fraction lost, cumulative lost, jitter) of each report, one a second.
fn reports(lost: &[u16], late: &[(u16, Duration)]) -> Vec<(u8, u32, u32)> {
    let mut chain = Registry::new().with(Slot::ReceiverReport, ReceiverReportBuilder::new().build()).build();
    chain.bind_remote_stream(&crate::voice_stream(SSRC));
    let t0 = Instant::now();
    let mut arrivals: Vec<(Duration, u16)> =
        (0..100u16).filter(|s| !lost.contains(s)).map(|s| (Duration::from_millis(20 * u64::from(s)), s)).collect();
    arrivals.extend(late.iter().map(|&(s, at)| (at, s)));
    arrivals.sort();
    let mut out = Vec::new();
    let mut next = arrivals.into_iter().peekable();
    for ms in (0..2_500u64).step_by(10) {
        let now = t0 + Duration::from_millis(ms);
        while let Some((at, seq)) = next.next_if(|(at, _)| t0 + *at <= now) {
            chain.handle_read(crate::tagged(t0 + at, packet(seq))).expect("read");
            while chain.poll_read().is_some() {}
        }
        chain.handle_timeout(now).expect("timeout");
        while let Some(msg) = chain.poll_write() {
            if let Packet::Rtcp(packets) = msg.message.packet {
                for p in packets {
                    if let Some(rr) = p.as_any().downcast_ref::<ReceiverReport>() {
                        if let Some(r) = rr.reports.iter().find(|r| r.ssrc == SSRC) {
                            out.push((r.fraction_lost, r.total_lost, r.jitter));
                        }
                    }
                }
            }
        }
    }
    out
}

#[test]
fn issue_12_a_packet_repaired_after_a_report_is_no_longer_counted_lost() {
    // Packet 45 (sent at 900 ms) is lost and resent 300 ms later, after the report at 1 s.
    let r = reports(&[45], &[(45, Duration::from_millis(1_200))]);
    assert!(r.len() >= 2, "{r:?}");
    assert_eq!(r[0].1, 1, "at the first report it is lost: {r:?}");
    assert_eq!(r[1].1, 0, "at the next it has come: {r:?}");
    assert_eq!(r[1].0, 0, "and the second second lost nothing: {r:?}");
    // A packet that never comes stays lost.
    let r = reports(&[45], &[]);
    assert_eq!((r[0].1, r[1].1), (1, 1), "{r:?}");
    // A repair that comes before the report was never counted.
    let r = reports(&[45], &[(45, Duration::from_millis(950))]);
    assert_eq!((r[0].1, r[1].1), (0, 0), "{r:?}");
}

#[test]
fn issue_12_a_retransmission_is_not_read_as_the_paths_jitter() {
    let clean = reports(&[], &[]);
    let repaired = reports(&[45], &[(45, Duration::from_millis(1_200))]);
    assert!(clean[1].2 <= 1, "packets on time: no jitter: {clean:?}");
    // 300 ms late on a 48 kHz clock would read as ~14 400 / 16 = 900 units.
    assert!(repaired[1].2 <= 1, "the resend is a round trip old, not jitter: {repaired:?}");
}

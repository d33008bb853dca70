//! Bad signalling from the other side reaches the engine as errors, never as a panic, and the
//! call stays usable: garbled SDP, messages out of turn, nonsense candidates.

use sc_call::consultation::MediaSetup;
use sc_call::source::{TestPattern, Tone};
use sc_call::{Call, CallEvent, Error};
use sc_proto::signal::{Candidate, FromServer, Role, ToServer};
use std::time::Duration;

async fn offerer() -> (Call, tokio::sync::mpsc::UnboundedReceiver<CallEvent>) {
    let config = crate::dead_relay_config(Box::new(TestPattern::new(320, 240)), Box::new(Tone::new(440.0, 0.1)));
    Call::start(config, Role::Offerer).await.expect("call starts")
}

/// The offer the call sends first.
async fn first_offer(events: &mut tokio::sync::mpsc::UnboundedReceiver<CallEvent>) -> String {
    tokio::time::timeout(Duration::from_secs(5), async {
        loop {
            if let Some(CallEvent::Signal(ToServer::Offer { sdp })) = events.recv().await {
                return sdp;
            }
        }
    })
    .await
    .expect("an offer")
}

#[tokio::test]
async fn garbled_and_out_of_turn_messages_are_errors_not_panics() {
    let (call, mut events) = offerer().await;
    let offer = first_offer(&mut events).await;
    assert!(offer.starts_with("v=0"));

    for garbage in [
        "",
        "not sdp",
        "v=0\r\n",
        "v=0\r\no=- 1 1 IN IP4 0.0.0.0\r\ns=-\r\nt=0 0\r\nm=video 9 UDP/TLS/RTP/SAVPF 96\r\n",
    ] {
        let e = call.handle(FromServer::Answer { sdp: garbage.into() }).await.expect_err("garbled answer refused");
        assert!(matches!(e, Error::Signalling(_)), "{e:?}");
        assert!(!call.has_remote_description(), "nothing applied for {garbage:?}");
    }
    // The offerer is never sent an offer; candidates before the answer wait, nonsense ones included.
    assert!(matches!(call.handle(FromServer::Offer { sdp: offer.clone() }).await, Err(Error::Signalling(_))));
    let nonsense = Candidate { candidate: "candidate:garbage".into(), sdp_mid: None, sdp_m_line_index: Some(7) };
    call.handle(FromServer::Candidate { candidate: nonsense }).await.expect("queued until the answer");
    // Server-side messages that mean nothing mid-call are refused, not acted on.
    assert!(call.handle(FromServer::Waiting { appointment: sample_appointment() }).await.is_err());
    call.close().await;
}

#[test]
fn synthetic_media_offers_two_cameras() {
    let media = MediaSetup::synthetic(vec![], Duration::from_secs(1));
    assert_eq!((media.cameras)().len(), 2);
    assert!((media.video)(1).is_ok());
    assert!((media.video)(2).is_err(), "no third camera");
}

fn sample_appointment() -> sc_proto::signal::Appointment {
    sc_proto::signal::Appointment {
        id: 1,
        room_code: "abcd".into(),
        consultant: "Dr".into(),
        prison: "P".into(),
        starts_at: 0,
        ends_at: 1,
        patient: None,
        consultant_hospital: None,
    }
}

/// Issue #12: libwebrtc sends RED (each voice frame repeated in the next packet) only to a peer
/// whose description lists it ahead of Opus. The first offer lists it after (the link may be fit
/// only for sound, where the repeat would double the voice); it is there to be moved up later.
#[tokio::test]
async fn issue_12_the_first_offer_lists_red_after_opus() {
    let (call, mut events) = offerer().await;
    let offer = first_offer(&mut events).await;
    let audio = offer.lines().find(|l| l.starts_with("m=audio")).expect("an audio section");
    assert!(audio.ends_with(" 111 63"), "{audio}");
    assert!(offer.contains("a=rtpmap:63 red/48000/2"), "{offer}");
    assert!(offer.contains("a=fmtp:63 111/111"), "{offer}");
    call.close().await;
}

/// Issue #12: video RED and ULPFEC (with RTX for the RED) are named in the offer only when the
/// call asks for them (`CallConfig::video_fec`, off in the kiosk), with the numbers the chain's
/// FEC stage and the receive path use.
#[tokio::test]
async fn issue_12_video_fec_is_offered_only_when_asked_for() {
    for fec in [false, true] {
        let mut config =
            crate::dead_relay_config(Box::new(TestPattern::new(320, 240)), Box::new(Tone::new(440.0, 0.1)));
        config.video_fec = fec;
        let (call, mut events) = Call::start(config, Role::Offerer).await.expect("call starts");
        let offer = first_offer(&mut events).await;
        let video = offer.lines().find(|l| l.starts_with("m=video")).expect("a video section");
        let named = ["a=rtpmap:116 red/90000", "a=fmtp:117 apt=116", "a=rtpmap:118 ulpfec/90000"]
            .map(|line| offer.contains(line));
        assert_eq!(named, [fec; 3], "video_fec {fec}: {offer}");
        assert_eq!(video.ends_with(" 116 117 118"), fec, "{video}");
        call.close().await;
    }
}

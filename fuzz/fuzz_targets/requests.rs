//! The care server's request bodies from the network: the signed envelope, and inside it the
//! activation, enrolment, hello and wipe-receipt payloads; the device channel's messages; an
//! enrolment token as typed. Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sc_proto::brick::{ChannelUp, HelloPayload, ReceiptPayload};
use sc_proto::{ActivatePayload, EnrolPayload, EnrolToken, Signed};

fuzz_target!(|data: &[u8]| {
    if let Ok(signed) = serde_json::from_slice::<Signed>(data) {
        let payload = &signed.payload.0;
        let _ = sc_proto::signing_input(sc_proto::SIG_CONTEXT_ACTIVATE, payload);
        if let Ok(p) = serde_json::from_slice::<ActivatePayload>(payload) {
            // The freshness check the server makes on any signed timestamp.
            let _ = p.timestamp.abs_diff(1_800_000_000);
        }
        let _ = serde_json::from_slice::<EnrolPayload>(payload);
        let _ = serde_json::from_slice::<HelloPayload>(payload).map(|h| h.timestamp.abs_diff(0));
        let _ = serde_json::from_slice::<ReceiptPayload>(payload);
    }
    // The same bytes as a payload directly (what a valid envelope could carry).
    let _ = serde_json::from_slice::<ActivatePayload>(data);
    let _ = serde_json::from_slice::<EnrolPayload>(data);
    let _ = serde_json::from_slice::<ChannelUp>(data);
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = text.parse::<EnrolToken>();
        let _ = text.parse::<sc_proto::DeviceId>();
    }
});

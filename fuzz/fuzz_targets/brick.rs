//! A brick command as the kiosk checks it: the input is the command's payload, signed here with
//! the pinned command key so that every payload reaches the parser and the freshness check (a
//! server can sign any value); and the device channel's messages from the server. Any panic is a
//! bug; nothing is touched on disk (`verify_command` only checks).
#![no_main]

use libfuzzer_sys::fuzz_target;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use sc_core::record::EnrolmentRecord;
use sc_proto::brick::{ChannelDown, SIG_CONTEXT_BRICK};
use sc_proto::{Bytes, DeviceId, Signed};
use std::sync::OnceLock;

fn key() -> &'static Ed25519KeyPair {
    static KEY: OnceLock<Ed25519KeyPair> = OnceLock::new();
    // A fixed seed: the same key every run, so corpora stay meaningful.
    KEY.get_or_init(|| Ed25519KeyPair::from_seed_unchecked(&[7u8; 32]).expect("a 32-byte seed is a key"))
}

fuzz_target!(|data: &[u8]| {
    let key = key();
    let mut public = [0u8; 32];
    public.copy_from_slice(key.public_key().as_ref());
    let record: EnrolmentRecord = serde_json::from_value(serde_json::json!({
        "format": 1,
        "device_id": DeviceId::from_random([1; 16]),
        "server_url": "https://care.example:8443",
        "ca_cert": Bytes(vec![0u8; 4]),
        "exchange_public": Bytes([2u8; 32]),
        "client_public": Bytes([3u8; 32]),
        "command_public_key": Bytes(public),
    }))
    .expect("a well-formed record");
    let sig = key.sign(&sc_proto::signing_input(SIG_CONTEXT_BRICK, data));
    let mut signature = [0u8; 64];
    signature.copy_from_slice(sig.as_ref());
    let signed = Signed { payload: Bytes(data.to_vec()), signature: Bytes(signature) };
    let _ = sc_core::wipe::verify_command(&record, &signed, [9u8; 16]);
    let _ = serde_json::from_slice::<ChannelDown>(data);
});

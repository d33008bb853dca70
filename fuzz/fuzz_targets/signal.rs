//! Signalling messages as the server reads them from a laptop or a page (`ToServer`) and as the
//! kiosk reads them from the server (`FromServer`). Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sc_proto::signal::{FromServer, ToServer};

fuzz_target!(|data: &[u8]| {
    if let Ok(m) = serde_json::from_slice::<ToServer>(data) {
        // What parses must serialise back (the relay re-encodes what it forwards).
        let _ = serde_json::to_vec(&m);
    }
    if let Ok(m) = serde_json::from_slice::<FromServer>(data) {
        let _ = format!("{m:?}");
    }
});

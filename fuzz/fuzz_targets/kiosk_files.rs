//! The kiosk's own files, which a thief with the disk can rewrite: the enrolment record, the
//! dead-man timer's contact state (judged at any time), and the sealed config (opened with a fixed
//! key). Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sc_core::contact::Contact;
use sc_core::record::EnrolmentRecord;
use sc_core::sealed::{self, DataKey};
use sc_proto::DeviceId;

fuzz_target!(|data: &[u8]| {
    let _ = EnrolmentRecord::parse(data);
    if let Ok(c) = serde_json::from_slice::<Contact>(data) {
        for now in [0, 1_800_000_000, i64::MIN, i64::MAX] {
            let _ = c.expired(now);
        }
    }
    let _ = sealed::open(data, &DataKey::from_bytes([5u8; 32]), &DeviceId::from_random([1; 16]));
});

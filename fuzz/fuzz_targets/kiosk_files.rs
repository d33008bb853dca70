//! The kiosk's own files, which a thief with the disk can rewrite: the enrolment record, the
//! dead-man timer's contact state (judged at any time), and the sealed config (opened with a fixed
//! key). Any panic is a bug.
#![no_main]

use libfuzzer_sys::fuzz_target;
use sc_core::clock::BootTime;
use sc_core::contact::{Contact, ContactKey, Now};
use sc_core::record::EnrolmentRecord;
use sc_core::sealed::{self, DataKey};
use sc_proto::DeviceId;

fuzz_target!(|data: &[u8]| {
    let _ = EnrolmentRecord::parse(data);
    // The sealed file under a key that did not seal it, and the count inside as if it had.
    let _ = ContactKey::generate(0).map(|k| k.open(data));
    if let Ok(c) = serde_json::from_slice::<Contact>(data) {
        for wall in [0, 1_800_000_000, i64::MIN, i64::MAX] {
            for (id, secs) in [(c.boot_id.clone(), 0), (c.boot_id.clone(), u64::MAX), ("other".to_owned(), u64::MAX)] {
                let mut c = c.clone();
                c.advance(&Now { wall, boot: BootTime { id, secs } });
                let _ = c.expired();
            }
        }
    }
    let _ = sealed::open(data, &DataKey::from_bytes([5u8; 32]), &DeviceId::from_random([1; 16]));
});

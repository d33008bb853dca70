//! Uncompressed DICOM travels deflated (issue #15 item 6): the page announces which files are,
//! gives each one's length on the way just before its chunks, and the laptop inflates it to
//! exactly the size announced before decoding. A stream that inflates to more or less, a chunk
//! before its length, or a length for a file that is not deflated fails clearly.

use crate::support::{chunks, read, text};
use sc_imaging::{ShareLimits, Viewer};
use sc_proto::share::{FromKiosk, ToKiosk};
use std::io::Write as _;
use std::time::Instant;

fn deflate(bytes: &[u8]) -> Vec<u8> {
    let mut z = flate2::write::ZlibEncoder::new(Vec::new(), flate2::Compression::default());
    z.write_all(bytes).expect("to memory");
    z.finish().expect("to memory")
}

fn failures(replies: &[FromKiosk]) -> Vec<String> {
    replies
        .iter()
        .filter_map(|r| match r {
            FromKiosk::FileFailed { message, .. } | FromKiosk::ShareFailed { message, .. } => Some(message.clone()),
            _ => None,
        })
        .collect()
}

/// Sends `files` as share 1, each deflated where `deflated` says (the stream given), raw otherwise.
fn send(v: &mut Viewer, files: &[Vec<u8>], streams: &[Option<Vec<u8>>]) -> Vec<FromKiosk> {
    let now = Instant::now();
    let sizes = files.iter().map(|f| f.len() as u64).collect();
    let deflate = streams.iter().map(Option::is_some).collect();
    let mut replies = v.on_text(now, &text(&ToKiosk::Share { share: 1, sizes, deflate }));
    for (n, (file, stream)) in files.iter().zip(streams).enumerate() {
        let wire = stream.as_ref().unwrap_or(file);
        if stream.is_some() {
            let msg = ToKiosk::Deflated { share: 1, file: n as u32, bytes: wire.len() as u64 };
            replies.extend(v.on_text(now, &text(&msg)));
        }
        // `chunks` numbers files from 0: renumber this one's.
        let mut all = vec![Vec::new(); n];
        all.push(wire.clone());
        for c in chunks(1, &all) {
            replies.extend(v.on_binary(now, &c));
        }
    }
    replies
}

#[test]
fn issue_15_a_deflated_file_shows_exactly_as_the_same_file_sent_raw() {
    let ct = read("CT_small.dcm");
    let mr = read("MR_small.dcm");
    let stream = deflate(&ct);
    assert!(stream.len() < ct.len(), "{} of {}", stream.len(), ct.len());
    let mut raw = Viewer::new(ShareLimits::default());
    let mut deflated = Viewer::new(ShareLimits::default());
    let a = send(&mut raw, &[ct.clone(), mr.clone()], &[None, None]);
    let b = send(&mut deflated, &[ct, mr], &[Some(stream), None]);
    assert!(failures(&a).is_empty() && failures(&b).is_empty(), "{a:?} {b:?}");
    assert!(b.iter().any(|r| matches!(r, FromKiosk::Done { shown: 2, failed: 0, .. })), "{b:?}");
    assert_eq!(raw.screen(), deflated.screen());
    // Progress counts the files' own bytes, so the page's bar ends full.
    let last = |r: &[FromKiosk]| {
        r.iter().rev().find_map(|m| match m {
            FromKiosk::Progress { received, total, .. } => Some((*received, *total)),
            _ => None,
        })
    };
    assert_eq!(last(&a), last(&b));
}

#[test]
fn issue_15_a_stream_that_inflates_to_another_size_fails_that_file_alone() {
    let ct = read("CT_small.dcm");
    // A bomb: a little stream of zeros that inflates far past the size announced.
    let bomb = deflate(&vec![0u8; 64 << 20]);
    let short = deflate(&ct[..ct.len() - 1]);
    let mut v = Viewer::new(ShareLimits::default());
    let replies = send(&mut v, &[ct.clone(), ct.clone(), ct.clone()], &[Some(bomb), Some(short), None]);
    let failed = failures(&replies);
    assert_eq!(failed.len(), 2, "{replies:?}");
    assert!(failed.iter().all(|m| m.contains("compression for the way is damaged")), "{failed:?}");
    assert!(replies.iter().any(|r| matches!(r, FromKiosk::Done { shown: 1, failed: 2, .. })), "{replies:?}");
}

#[test]
fn issue_15_lengths_out_of_turn_and_mismatched_flags_are_refused_clearly() {
    let ct = read("CT_small.dcm");
    let now = Instant::now();
    let share = |deflate: Vec<bool>| ToKiosk::Share { share: 1, sizes: vec![ct.len() as u64], deflate };

    // Flags for two files in a share of one.
    let mut v = Viewer::new(ShareLimits::default());
    let r = v.on_text(now, &text(&share(vec![true, false])));
    assert!(failures(&r).iter().any(|m| m.contains("encodings do not match")), "{r:?}");

    // A deflated file's chunk before its length.
    let mut v = Viewer::new(ShareLimits::default());
    v.on_text(now, &text(&share(vec![true])));
    let r = v.on_binary(now, &chunks(1, &[deflate(&ct)])[0]);
    assert!(failures(&r).iter().any(|m| m.contains("before its length")), "{r:?}");

    // A length for a file sent raw, and a length far past anything a file may be.
    for (deflate, bytes) in [(vec![false], 100), (vec![true], u64::MAX)] {
        let mut v = Viewer::new(ShareLimits::default());
        v.on_text(now, &text(&share(deflate)));
        let r = v.on_text(now, &text(&ToKiosk::Deflated { share: 1, file: 0, bytes }));
        assert!(failures(&r).iter().any(|m| m.contains("unexpected length")), "{r:?}");
    }
}

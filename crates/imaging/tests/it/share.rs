//! The kiosk's side of an image share, driven deterministically: files in chunks, stacks, the
//! consultant's view, the nurse's reset, limits, damaged files, and cut, stalled or garbled
//! transfers (the call and the images already received survive every one).

use crate::support::{announce, chunks, read, share, text};
use sc_imaging::{Preset, Rendered, ShareLimits, Viewer, Window};
use sc_proto::share::{Chunk, FromKiosk, ToKiosk, View, WindowChoice, MAX_CHUNK_DATA};
use std::time::{Duration, Instant};

fn view(v: &mut Viewer, view: View) -> Vec<FromKiosk> {
    v.on_text(Instant::now(), &text(&ToKiosk::View(view)))
}

fn share_failed(replies: &[FromKiosk]) -> Option<&str> {
    replies.iter().find_map(|r| match r {
        FromKiosk::ShareFailed { message, .. } => Some(message.as_str()),
        _ => None,
    })
}

fn grey(pixels: &Rendered) -> &[u8] {
    match pixels {
        Rendered::Grey(p) => p,
        other => panic!("expected grey, got {other:?}"),
    }
}

#[test]
fn a_ct_and_a_multi_frame_file_arrive_in_chunks_and_the_first_is_shown_at_once() {
    let mut v = Viewer::new(ShareLimits::default());
    let now = Instant::now();
    assert!(v.screen().is_none(), "nothing before a share");
    let files = vec![read("CT_small.dcm"), read("rtdose.dcm")];
    let replies = share(&mut v, now, 1, &files);
    assert_eq!(replies[0], FromKiosk::Accepted { share: 1 });
    let total: u64 = files.iter().map(|f| f.len() as u64).sum();
    assert!(replies.contains(&FromKiosk::Progress { share: 1, received: total, total, files: 2 }), "{replies:?}");
    assert!(replies.contains(&FromKiosk::Done { share: 1, shown: 2, failed: 0 }), "{replies:?}");
    let Some(FromKiosk::Stacks { stacks }) = replies.iter().rev().find(|r| matches!(r, FromKiosk::Stacks { .. }))
    else {
        panic!("{replies:?}")
    };
    assert_eq!(stacks.len(), 2);
    assert_eq!((stacks[0].frames, stacks[0].width, stacks[0].modality.as_deref()), (1, 128, Some("CT")));
    let dose_frames = sc_imaging::decode(&files[1], &Default::default()).expect("dose").frames.len() as u32;
    assert!(dose_frames > 1);
    assert_eq!(stacks[1].frames, dose_frames);
    // The share's first image is shown as soon as it is decoded, through its own window.
    let shown = replies.iter().filter(|r| matches!(r, FromKiosk::Shown { .. })).count();
    assert_eq!(shown, 1, "{replies:?}");
    let ct = sc_imaging::decode(&files[0], &Default::default()).expect("CT");
    let screen = v.screen().expect("a screen");
    assert_eq!((screen.width, screen.height, screen.zoom, screen.pointer), (128, 128, 1.0, None));
    assert_eq!(*screen.pixels, ct.render(0, ct.default_window).expect("render"));
    assert!(screen.caption.starts_with("Image 1 of 2  ·  CT"), "{}", screen.caption);
}

#[test]
fn single_frame_files_of_one_share_make_one_series_the_consultant_scrolls() {
    let mut v = Viewer::new(ShareLimits::default());
    // Five MR slices (the same slice in five transfer syntaxes: one size, one modality).
    let names = [
        "MR_small.dcm",
        "MR_small_implicit.dcm",
        "MR_small_bigendian.dcm",
        "MR_small_RLE.dcm",
        "MR_small_jp2klossless.dcm",
    ];
    let files: Vec<Vec<u8>> = names.iter().map(|n| read(n)).collect();
    let replies = share(&mut v, Instant::now(), 1, &files);
    assert!(replies.contains(&FromKiosk::Done { share: 1, shown: 5, failed: 0 }), "{replies:?}");
    assert_eq!(v.stacks(), 1);
    assert_eq!(v.frames(), 5);
    let r = view(&mut v, View { frame: 3, ..View::default() });
    assert!(
        matches!(&r[..], [FromKiosk::Shown { view, by_nurse: false, .. }, FromKiosk::Preview { .. }] if view.frame == 3),
        "{r:?}"
    );
    assert!(v.screen().expect("screen").caption.contains("slice 4 of 5"));
    // Out of range is clamped to the last slice, not an error.
    let r = view(&mut v, View { frame: 99, ..View::default() });
    assert!(matches!(&r[..], [FromKiosk::Shown { view, .. }, FromKiosk::Preview { .. }] if view.frame == 4), "{r:?}");
    // A second share starts a stack of its own even with same-sized slices.
    share(&mut v, Instant::now(), 2, &files[..1]);
    assert_eq!(v.stacks(), 2);
    assert_eq!(v.view().stack, 1, "the new share's first image is shown");
}

#[test]
fn a_preset_maps_a_known_hounsfield_value_through_the_rescale_to_the_expected_grey() {
    let mut v = Viewer::new(ShareLimits::default());
    let ct_bytes = read("CT_small.dcm");
    share(&mut v, Instant::now(), 1, std::slice::from_ref(&ct_bytes));
    let ct = sc_imaging::decode(&ct_bytes, &Default::default()).expect("CT");
    let sc_imaging::Frame::Grey(hu) = &ct.frames[0] else { panic!("grey") };
    let r = view(
        &mut v,
        View { window: WindowChoice::Preset { name: "bone".into() }, zoom: 2.5, pan_x: 0.9, ..View::default() },
    );
    let Some(FromKiosk::Shown { view: applied, center, width, .. }) = r.first() else { panic!("{r:?}") };
    assert_eq!((*center, *width), (400.0, 1800.0));
    assert_eq!((applied.zoom, applied.pan_x), (2.5, 0.5), "pan is clamped to the image");
    let screen = v.screen().expect("screen");
    let bone = Preset::Bone.window();
    for i in [0usize, 1000, 64 * 128 + 64] {
        assert_eq!(grey(&screen.pixels)[i], bone.display(f64::from(hu[i])), "pixel {i}");
    }
    // A value at the window's lower edge is black, at its upper edge white.
    assert_eq!(bone.display(400.0 - 900.0), 0);
    assert_eq!(bone.display(400.0 + 900.0), 255);
    // The consultant's own window.
    view(&mut v, View { window: WindowChoice::Custom { center: 40.0, width: 80.0 }, ..View::default() });
    assert_eq!(grey(&v.screen().expect("screen").pixels)[0], Window::linear(40.0, 80.0).display(f64::from(hu[0])));
}

#[test]
fn the_nurse_resets_the_view_but_cannot_change_it() {
    let mut v = Viewer::new(ShareLimits::default());
    share(&mut v, Instant::now(), 1, &[read("rtdose.dcm")]);
    view(
        &mut v,
        View {
            frame: 2,
            window: WindowChoice::Preset { name: "lung".into() },
            zoom: 4.0,
            pan_x: -0.2,
            pan_y: 0.3,
            ..View::default()
        },
    );
    v.on_text(Instant::now(), &text(&ToKiosk::Pointer { at: Some([0.25, 0.75]) }));
    assert_eq!(v.screen().expect("screen").pointer, Some([0.25, 0.75]));
    let r = v.reset();
    let Some(FromKiosk::Shown { view, by_nurse: true, .. }) = r.first() else { panic!("{r:?}") };
    assert_eq!(*view, View { frame: 2, ..View::default() }, "same slice, own window, no zoom or pan");
    let screen = v.screen().expect("screen");
    assert_eq!((screen.zoom, screen.pan, screen.pointer), (1.0, [0.0, 0.0], None));
}

#[test]
fn share_limits_refuse_clearly_and_keep_what_is_shown() {
    let limits = ShareLimits { max_files: 3, max_share_bytes: 100_000, ..ShareLimits::default() };
    let mut v = Viewer::new(limits);
    let ct = read("CT_small.dcm");
    share(&mut v, Instant::now(), 1, std::slice::from_ref(&ct));
    let now = Instant::now();
    let too_many = v.on_text(now, &text(&ToKiosk::Share { share: 2, sizes: vec![10; 4], deflate: Vec::new() }));
    assert_eq!(share_failed(&too_many), Some("Too many files: 4 (this laptop takes up to 3 at a time)."));
    let too_big = v.on_text(now, &text(&ToKiosk::Share { share: 3, sizes: vec![60_000, 60_000], deflate: Vec::new() }));
    assert!(share_failed(&too_big).is_some_and(|m| m.starts_with("The share is too large")), "{too_big:?}");
    let file_too_big = v.on_text(now, &text(&ToKiosk::Share { share: 4, sizes: vec![65 << 20], deflate: Vec::new() }));
    assert!(
        share_failed(&file_too_big).is_some_and(|m| m.starts_with("File 1 is too large: 65 MiB")),
        "{file_too_big:?}"
    );
    assert!(v.notice().is_some_and(|n| n.contains("too large")));
    // Chunks of a refused share are ignored; the CT is still shown.
    assert!(v.on_binary(now, &Chunk { share: 4, file: 0, offset: 0, data: b"x" }.encode()).is_empty());
    assert_eq!(v.stacks(), 1);
    assert!(v.screen().is_some());
    // Held pixels: a laptop that may hold one CT refuses a second until the consultant clears.
    let mut small = Viewer::new(ShareLimits { max_held_pixels: 128 * 128, ..ShareLimits::default() });
    share(&mut small, now, 1, std::slice::from_ref(&ct));
    let r = share(&mut small, now, 2, std::slice::from_ref(&ct));
    assert!(r.iter().any(|m| matches!(m, FromKiosk::FileFailed { message, .. } if message.contains("clear"))), "{r:?}");
    let r = small.on_text(now, &text(&ToKiosk::Clear));
    assert_eq!(r[0], FromKiosk::Cleared);
    assert!(small.screen().is_none());
    let r = share(&mut small, now, 3, &[ct]);
    assert!(r.contains(&FromKiosk::Done { share: 3, shown: 1, failed: 0 }), "{r:?}");
}

#[test]
fn a_damaged_or_unsupported_file_fails_alone_and_the_share_goes_on() {
    let mut v = Viewer::new(ShareLimits::default());
    let files =
        vec![read("MR_truncated.dcm"), read("JPEG-lossy.dcm"), b"not an image at all".to_vec(), read("CT_small.dcm")];
    let r = share(&mut v, Instant::now(), 1, &files);
    let failed: Vec<(u32, &str)> = r
        .iter()
        .filter_map(|m| match m {
            FromKiosk::FileFailed { file, message, .. } => Some((*file, message.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(failed.len(), 3, "{r:?}");
    assert!(failed[1].1.contains("12-bit JPEG") && failed[1].1.contains("cannot decode"), "{failed:?}");
    assert_eq!(failed[2].1, "this file is not a DICOM, PNG or JPEG image");
    assert!(r.contains(&FromKiosk::Done { share: 1, shown: 1, failed: 3 }), "{r:?}");
    assert_eq!(v.stacks(), 1, "the CT arrived");
    assert!(v.notice().is_some_and(|n| n.contains("could not be shown")), "{:?}", v.notice());
}

#[test]
fn a_cut_transfer_is_reported_and_what_arrived_stays() {
    let mut v = Viewer::new(ShareLimits::default());
    let files = vec![read("MR_small.dcm"), read("CT_small.dcm"), read("rtdose.dcm")];
    let now = Instant::now();
    announce(&mut v, now, 1, &files);
    let all = chunks(1, &files);
    let first_file_chunks = files[0].len().div_ceil(MAX_CHUNK_DATA);
    for c in &all[..first_file_chunks + 1] {
        v.on_binary(now, c);
    }
    assert!(v.receiving().is_some());
    let r = v.on_channel_closed();
    assert_eq!(share_failed(&r), Some("The transfer was cut: 1 of 3 files arrived."));
    assert_eq!(v.notice(), Some("The transfer was cut: 1 of 3 files arrived."));
    assert_eq!((v.stacks(), v.receiving()), (1, None));
    // Sharing again over a new channel works.
    let r = share(&mut v, now, 2, &files);
    assert!(r.contains(&FromKiosk::Done { share: 2, shown: 3, failed: 0 }), "{r:?}");
}

#[test]
fn a_stalled_transfer_is_given_up() {
    let mut v = Viewer::new(ShareLimits { stall: Duration::from_secs(30), ..ShareLimits::default() });
    let t0 = Instant::now();
    let files = vec![read("CT_small.dcm")];
    announce(&mut v, t0, 1, &files);
    v.on_binary(t0, &chunks(1, &files)[0]);
    assert!(v.on_tick(t0 + Duration::from_secs(29)).is_empty());
    let r = v.on_tick(t0 + Duration::from_secs(30));
    assert_eq!(share_failed(&r), Some("The transfer stalled: nothing arrived for 30 s; 0 of 1 files arrived."));
    assert!(v.receiving().is_none());
}

#[test]
fn garbled_messages_get_clear_errors_and_change_nothing() {
    let mut v = Viewer::new(ShareLimits::default());
    let now = Instant::now();
    let files = [read("MR_small.dcm"), read("CT_small.dcm")];
    share(&mut v, now, 1, &files[..1]);
    for bad in ["not json", "{\"type\":\"view\",\"stack\":\"x\"}", "{\"type\":\"launch_missiles\"}"] {
        let r = v.on_text(now, bad);
        assert!(
            matches!(&r[..], [FromKiosk::Error { message }] if message.starts_with("a garbled message was ignored")),
            "{bad}: {r:?}"
        );
    }
    let r = view(&mut v, View { window: WindowChoice::Preset { name: "disco".into() }, ..View::default() });
    assert_eq!(r, vec![FromKiosk::Error { message: "an unknown window preset".into() }]);
    let r = v.on_text(now, r#"{"type":"view","stack":0,"frame":0,"zoom":1e39,"pan_x":0,"pan_y":0}"#);
    assert!(
        matches!(&r[..], [FromKiosk::Error { .. }] | [FromKiosk::Shown { .. }, FromKiosk::Preview { .. }]),
        "{r:?}"
    );
    // A chunk out of order ends that share, not the viewer.
    announce(&mut v, now, 2, &files[1..]);
    let mut c = chunks(2, &files[1..]);
    let r = v.on_binary(now, &c.remove(1));
    assert!(share_failed(&r).is_some_and(|m| m.starts_with("The transfer was garbled")), "{r:?}");
    // Not a chunk at all, mid-share.
    announce(&mut v, now, 3, &files[1..]);
    let r = v.on_binary(now, b"\x00\x01garbage");
    assert!(share_failed(&r).is_some_and(|m| m.starts_with("The transfer was garbled")), "{r:?}");
    assert_eq!(v.stacks(), 1);
    assert!(v.screen().is_some());
    // A view with no images yet is refused in words.
    let mut empty = Viewer::new(ShareLimits::default());
    assert_eq!(view(&mut empty, View::default()), vec![FromKiosk::Error { message: "no image to show yet".into() }]);
}

/// The fuzz target's session (fuzz/fuzz_targets/share_session.rs) on stable:
/// valid shares of real files, then the same messages cut, flipped and shuffled; never a panic.
#[test]
fn damaged_message_runs_never_panic_the_viewer() {
    let files = vec![read("CT_small.dcm"), read("MR_small_RLE.dcm"), read("rtdose.dcm")];
    let mut messages: Vec<(bool, Vec<u8>)> = vec![(
        true,
        text(&ToKiosk::Share { share: 1, sizes: files.iter().map(|f| f.len() as u64).collect(), deflate: Vec::new() })
            .into_bytes(),
    )];
    messages.extend(chunks(1, &files).into_iter().map(|c| (false, c)));
    messages.push((true, text(&ToKiosk::View(View { frame: 2, zoom: 3.0, ..View::default() })).into_bytes()));
    let mut seed = 0x5eed_0000_0000_0001u64;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for round in 0..60 {
        let mut v = Viewer::new(ShareLimits { max_held_pixels: 1 << 20, ..ShareLimits::default() });
        let now = Instant::now();
        for (i, (is_text, m)) in messages.iter().enumerate() {
            let mut m = m.clone();
            if round > 0 && next() % 4 == 0 && !m.is_empty() {
                let at = (next() as usize) % m.len();
                m[at] ^= 1 << (next() % 8);
            }
            if round > 0 && next() % 16 == 0 {
                m.truncate((next() as usize) % (m.len() + 1));
            }
            let _ = if *is_text { v.on_text(now, &String::from_utf8_lossy(&m)) } else { v.on_binary(now, &m) };
            if next() % 32 == 0 {
                let _ = v.on_channel_closed();
            }
            if i % 7 == 0 {
                let _ = v.reset();
            }
            let _ = v.screen();
        }
        let _ = v.on_tick(now + Duration::from_secs(60));
    }
}

/// The previews among `replies`: (stack, frame, decoded PNG).
fn previews(replies: &[FromKiosk]) -> Vec<(u32, u32, image::DynamicImage)> {
    replies
        .iter()
        .filter_map(|r| match r {
            FromKiosk::Preview { stack, frame, width, height, png } => {
                let img = image::load_from_memory(&png.bytes().expect("base64")).expect("a PNG");
                assert_eq!((img.width(), img.height()), (*width, *height));
                Some((*stack, *frame, img))
            }
            _ => None,
        })
        .collect()
}

#[test]
fn issue_15_what_is_shown_goes_back_to_the_consultant_as_a_preview() {
    let mut v = Viewer::new(ShareLimits::default());
    let now = Instant::now();
    // A small image comes back pixel for pixel.
    let r = share(&mut v, now, 1, &[read("CT_small.dcm")]);
    let p = previews(&r);
    assert_eq!(p.len(), 1, "one preview after the first image is shown: {r:?}");
    let shown = v.screen().expect("screen");
    assert_eq!((p[0].0, p[0].1), (0, 0));
    assert_eq!(p[0].2.to_luma8().into_raw(), grey(&shown.pixels), "the preview is what the prisoner sees");
    // Each change of view sends a new one, at the new window.
    let r = view(&mut v, View { window: WindowChoice::Preset { name: "bone".into() }, ..View::default() });
    let bone = v.screen().expect("screen");
    assert_eq!(previews(&r)[0].2.to_luma8().into_raw(), grey(&bone.pixels));
    assert_ne!(grey(&bone.pixels), grey(&shown.pixels));
    // The nurse's reset too.
    assert_eq!(previews(&v.reset()).len(), 1);
    // A large image comes back at most 256 px on its longer side, its shape kept.
    let r = share(&mut v, now, 2, &[read("693_J2KI.dcm")]);
    let p = previews(&r);
    assert_eq!((p[0].2.width(), p[0].2.height()), (256, 256), "512x512 at half size");
    // Nothing else carries one: progress and errors do not.
    let r = v.on_text(now, "{garbled");
    assert!(previews(&r).is_empty());
}

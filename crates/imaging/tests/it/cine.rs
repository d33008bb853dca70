//! Cine (issue #15): a multi-frame file plays as a loop at its own frame rate when the consultant
//! says so, on simulated time; the consultant steps and pauses it with a view, the nurse pauses it
//! where it is, and a single frame never plays.

use crate::support::{read, share, text};
use sc_imaging::{ShareLimits, Viewer};
use sc_proto::share::{FromKiosk, ToKiosk, View};
use std::time::{Duration, Instant};

/// A viewer holding `name` (one file), shared at `t0`.
fn holding(name: &str, t0: Instant) -> (Viewer, Vec<FromKiosk>) {
    let mut v = Viewer::new(ShareLimits::default());
    let replies = share(&mut v, t0, 1, &[read(name)]);
    (v, replies)
}

fn at(v: &mut Viewer, now: Instant) -> u32 {
    v.on_tick(now);
    v.view().frame
}

#[test]
fn issue_15_a_loop_plays_at_its_own_frame_rate_and_wraps() {
    let t0 = Instant::now();
    // An ultrasound loop: 30 frames, Frame Time 33.333 ms.
    let (mut v, replies) = holding("examples_ybr_color.dcm", t0);
    let frame_ms = replies.iter().find_map(|r| match r {
        FromKiosk::Stacks { stacks } => stacks.first().map(|s| s.frame_ms),
        _ => None,
    });
    assert_eq!(frame_ms, Some(33), "the consultant is told the file's rate");
    assert_eq!(v.poll_timeout(t0), None, "nothing plays until asked");
    assert_eq!(at(&mut v, t0 + Duration::from_secs(5)), 0);

    let r = v.on_text(t0, &text(&ToKiosk::View(View { frame: 2, playing: true, ..View::default() })));
    assert!(matches!(&r[..], [FromKiosk::Shown { view, .. }, FromKiosk::Preview { .. }] if view.playing), "{r:?}");
    assert!(v.playing());
    let frame = Duration::from_secs_f64(0.033_333);
    assert_eq!(at(&mut v, t0 + frame / 2), 2, "still the first frame");
    assert_eq!(at(&mut v, t0 + frame * 3 + frame / 2), 5, "three frames on");
    // The loop wraps after the last frame: 2 + 29 = 31 -> frame 1.
    assert_eq!(at(&mut v, t0 + frame * 29 + frame / 2), 1);
    // The driver is told when the next frame is due.
    let now = t0 + frame * 40 + frame / 4;
    let due = v.poll_timeout(now).expect("playing");
    assert!(due > now && due <= now + frame, "{due:?}");
    assert!(v.screen().expect("screen").caption.contains("playing, 30 frames/s"));
}

#[test]
fn issue_15_the_consultant_steps_and_pauses_and_the_nurse_pauses_where_it_is() {
    let t0 = Instant::now();
    let (mut v, _) = holding("rtdose.dcm", t0);
    // No rate in the file: 10 frames a second.
    v.on_text(t0, &text(&ToKiosk::View(View { playing: true, ..View::default() })));
    assert_eq!(at(&mut v, t0 + Duration::from_millis(450)), 4);
    // The consultant pauses on a frame of their choosing (a view that does not play).
    v.on_text(t0 + Duration::from_millis(460), &text(&ToKiosk::View(View { frame: 7, ..View::default() })));
    assert!(!v.playing());
    assert_eq!(at(&mut v, t0 + Duration::from_secs(3)), 7, "a paused loop stays");
    assert_eq!(v.poll_timeout(t0 + Duration::from_secs(3)), None);
    // Steps are views too.
    v.on_text(t0, &text(&ToKiosk::View(View { frame: 8, ..View::default() })));
    assert_eq!(at(&mut v, t0 + Duration::from_secs(4)), 8);

    // Playing again, the nurse pauses it: on the frame shown, and the consultant is told.
    let t1 = t0 + Duration::from_secs(10);
    v.on_text(t1, &text(&ToKiosk::View(View { frame: 8, playing: true, ..View::default() })));
    assert_eq!(at(&mut v, t1 + Duration::from_millis(350)), 11);
    let r = v.pause();
    assert!(
        matches!(&r[..], [FromKiosk::Shown { view, by_nurse: true, .. }, FromKiosk::Preview { .. }] if view.frame == 11 && !view.playing),
        "{r:?}"
    );
    assert_eq!(at(&mut v, t1 + Duration::from_secs(5)), 11);
    assert!(v.pause().is_empty(), "pausing what does not play says nothing");
}

#[test]
fn issue_15_a_single_frame_never_plays() {
    let t0 = Instant::now();
    let (mut v, _) = holding("CT_small.dcm", t0);
    let r = v.on_text(t0, &text(&ToKiosk::View(View { playing: true, ..View::default() })));
    assert!(matches!(&r[..], [FromKiosk::Shown { view, .. }, FromKiosk::Preview { .. }] if !view.playing), "{r:?}");
    assert!(!v.playing());
    assert_eq!(v.poll_timeout(t0), None);
}

#[test]
fn issue_15_changing_the_window_while_it_plays_keeps_the_loop_going() {
    let t0 = Instant::now();
    let (mut v, _) = holding("rtdose.dcm", t0);
    v.on_text(t0, &text(&ToKiosk::View(View { playing: true, ..View::default() })));
    assert_eq!(at(&mut v, t0 + Duration::from_millis(350)), 3);
    // The consultant zooms; their page still holds the frame they pressed play on.
    let r = v.on_text(
        t0 + Duration::from_millis(360),
        &text(&ToKiosk::View(View { playing: true, zoom: 2.0, ..View::default() })),
    );
    assert!(
        matches!(&r[..], [FromKiosk::Shown { view, .. }, FromKiosk::Preview { .. }] if view.frame == 3 && view.playing && view.zoom == 2.0)
    );
    assert_eq!(at(&mut v, t0 + Duration::from_millis(550)), 5, "on from where it was, not from 0");
}

#[test]
fn issue_15_the_consultants_pause_stops_on_the_frame_shown() {
    let t0 = Instant::now();
    let (mut v, _) = holding("rtdose.dcm", t0);
    v.on_text(t0, &text(&ToKiosk::View(View { frame: 1, playing: true, ..View::default() })));
    assert_eq!(at(&mut v, t0 + Duration::from_millis(650)), 7);
    // Pause: the page still names frame 1, where the loop started.
    let r = v.on_text(t0 + Duration::from_millis(660), &text(&ToKiosk::View(View { frame: 1, ..View::default() })));
    assert!(
        matches!(&r[..], [FromKiosk::Shown { view, .. }, FromKiosk::Preview { .. }] if view.frame == 7 && !view.playing),
        "{r:?}"
    );
    assert_eq!(at(&mut v, t0 + Duration::from_secs(3)), 7);
}

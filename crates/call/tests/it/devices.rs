//! Real ALSA capture and playback through cpal, on ALSA's `null` device (this machine has no sound
//! card; `null` is a real PCM that gives silence and swallows what it is sent), and clear errors
//! for devices that are not there.

use sc_call::consultation::NO_CAMERA;
use sc_call::devices::{cameras, Camera, Microphone, Speaker};
use sc_call::source::{AudioSink as _, AudioSource as _, Tone};
use std::time::{Duration, Instant};

fn until(what: &str, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(10);
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn microphone_captures_through_alsa() {
    let mut mic = Microphone::open(Some("null")).expect("the null capture device opens");
    until("captured frames", || mic.frames_captured() > 4_800);
    let mut buf = vec![1i16; 1920];
    mic.fill(&mut buf);
    assert!(buf.iter().all(|&s| s == 0), "null capture is silence");
}

#[test]
fn speaker_plays_through_alsa() {
    let mut speaker = Speaker::open(Some("null")).expect("the null playback device opens");
    let mut tone = Tone::new(440.0, 0.2);
    let mut pcm = vec![0i16; 1920];
    for _ in 0..25 {
        tone.fill(&mut pcm);
        speaker.play(&pcm);
    }
    until("played frames", || speaker.frames_played() > 4_800);
}

#[test]
fn missing_devices_are_named() {
    let e = Microphone::open(Some("no-such-device")).expect_err("no such microphone");
    assert_eq!(e, "No microphone is available on this laptop.");
    let e = Speaker::open(Some("no-such-device")).expect_err("no such speaker");
    assert_eq!(e, "No speaker is available on this laptop.");
    let e = Camera::open(cameras().len(), 640, 480, 30).expect_err("one past the last camera");
    assert_eq!(e, NO_CAMERA);
}

//! Issue #12, point 6: the consultant's browser scaling its video down mid-call (as Chromium does
//! under CPU or bandwidth pressure) used to abort the kiosk (odd sizes: the chroma planes are
//! ceil(w/2) wide, the drawing loop took w/2, and a panic in GTK's draw callback cannot unwind).
//! Here the real kiosk window, in a call with Chromium, is sent 640x480, then 213x160, 427x320,
//! 160x120 and 640x480 again: each size arrives, the window keeps drawing the consultant, and the
//! kiosk never stops.

use crate::window::{screenshot, window_call, WindowCall, DISPLAY};
use sc_e2e::artifacts_dir;
use sc_e2e::browser::Driver;
use serde_json::json;
use std::time::{Duration, Instant};

/// Sizes the kiosk logged for the consultant's video ("remote video size"), in order.
fn sizes_logged(log: &str) -> Vec<(u32, u32)> {
    let log = sc_e2e::strip_ansi(log);
    let field = |line: &str, name: &str| -> Option<u32> {
        line.split_whitespace().find_map(|w| w.strip_prefix(&format!("{name}="))).and_then(|v| v.parse().ok())
    };
    log.lines()
        .filter(|l| l.contains("remote video size") || l.contains("first remote frame decoded"))
        .filter_map(|l| Some((field(l, "width")?, field(l, "height")?)))
        .collect()
}

fn luma_at(img: &image::RgbImage, x: u32, y: u32) -> u8 {
    let p = img.get_pixel(x, y).0;
    ((u32::from(p[0]) * 299 + u32::from(p[1]) * 587 + u32::from(p[2]) * 114) / 1000) as u8
}

#[tokio::test(flavor = "multi_thread")]
async fn issue_12_the_peer_changing_its_video_size_mid_call_is_drawn_without_a_crash() {
    // A call or a kiosk window: never beside a shaped call (on 2 cores the figures starve).
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let _display = DISPLAY.lock().await;
    assert!(std::env::var_os("DISPLAY").is_some(), "needs an X display: scripts/test.sh runs Xvfb");
    let WindowCall { turn, server, dr, laptop: _laptop, clip, mut kiosk } = window_call("kiosk-frame-sizes.log").await;
    let mut consultant = Driver::sharing(&server, "dr.who", &dr, clip.path());
    consultant.wait_for("the call", 90, |v| (v["event"] == "share_open").then_some(())).await;

    for (step, by) in [1.0f64, 3.0, 1.5, 4.0, 1.0].into_iter().enumerate() {
        consultant.tell(json!({ "do": "scale", "by": by })).await;
        consultant.wait_for("the sender scaled", 30, |v| (v["event"] == "scaled").then_some(())).await;
        // Chromium rounds the scaled size its own way (213 or 214): within a pixel of 640/by.
        let want = ((640.0 / by) as u32, (480.0 / by) as u32);
        let close = |(w, h): (u32, u32)| w.abs_diff(want.0) <= 1 && h.abs_diff(want.1) <= 1;
        let start = Instant::now();
        loop {
            assert!(
                kiosk.child.try_wait().expect("kiosk status").is_none(),
                "the kiosk stopped at scale {by}: {}",
                kiosk.log()
            );
            if sizes_logged(&kiosk.log()).last().copied().is_some_and(close) {
                break;
            }
            assert!(
                start.elapsed() < Duration::from_secs(30),
                "no {want:?} frames at scale {by}; sizes so far {:?}",
                sizes_logged(&kiosk.log())
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        // The window draws the consultant at that size: bright left, dark right, filling the area.
        let shot = artifacts_dir().join(format!("frame-size-{step}.png"));
        let path = shot.clone();
        let drawn = tokio::task::spawn_blocking(move || {
            let start = Instant::now();
            loop {
                screenshot(&path);
                let img = image::open(&path).expect("screenshot").to_rgb8();
                let (left, right) = (luma_at(&img, 384, 350), luma_at(&img, 896, 350));
                if (left > 150 && right < 100) || start.elapsed() > Duration::from_secs(10) {
                    return (left, right);
                }
                std::thread::sleep(Duration::from_millis(300));
            }
        })
        .await
        .expect("join");
        assert!(
            drawn.0 > 150 && drawn.1 < 100,
            "scale {by}: the window does not show the consultant {drawn:?}; see {}",
            shot.display()
        );
    }
    let sizes = sizes_logged(&kiosk.log());
    assert!(sizes.iter().any(|&(w, _)| w % 2 == 1), "an odd width was among the sizes drawn: {sizes:?}");
    assert!(kiosk.child.try_wait().expect("kiosk status").is_none(), "the kiosk is still running");
    consultant.tell(json!({ "do": "end" })).await;
    drop(kiosk);
    drop(turn);
}

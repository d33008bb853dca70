//! Issue #16 item 4: the nurse's whole flow in the kiosk window by keyboard alone: sign in on the
//! lock screen, join the appointment, end the call from its controls, and lock the laptop again.

use crate::window::{
    call_proven, luma_at, on_lock_screen, screenshot, wait_for, wait_for_colour, window_call, WindowCall, BRAND,
    DISPLAY,
};
use sc_e2e::artifacts_dir;
use sc_e2e::desktop::xdotool;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn issue_16_the_nurses_flow_from_lock_to_call_to_end_and_lock_again_needs_only_the_keyboard() {
    let _display = DISPLAY.lock().await;
    assert!(std::env::var_os("DISPLAY").is_some(), "needs an X display: scripts/test.sh runs Xvfb");
    // Signed in on the lock screen by keyboard, and joined with Return (`window::kiosk_joining`).
    let WindowCall { turn, server, dr, laptop: _laptop, clip, kiosk } = window_call("kiosk-keyboard.log").await;
    // The consultant admits the laptop and waits for the laptop to end the call.
    let mut consultant = crate::call::start_consultant_holding(&server, &dr, clip.path(), "kiosk", 0);
    call_proven(&mut consultant, &kiosk).await;
    // The call screen is up: the consultant's clip (bright left, dark right) fills the video area.
    let shot = artifacts_dir().join("keyboard-call.png");
    tokio::task::spawn_blocking(move || {
        wait_for("the call screen", Duration::from_secs(30), || {
            screenshot(&shot);
            luma_at(&shot, 384, 350) > 150.0 && luma_at(&shot, 896, 350) < 100.0
        });
    })
    .await
    .expect("join");

    // In the call the focus is on Mute; End call is four Tabs on (Camera off, Audio only, Switch
    // camera: the synthetic media has two cameras).
    tokio::task::spawn_blocking(|| {
        for _ in 0..4 {
            xdotool(&["key", "Tab"]);
        }
        xdotool(&["key", "Return"]);
    })
    .await
    .expect("join");
    let ended =
        consultant.wait_for("the laptop to end the call", 30, |v| (v["event"] == "ended").then(|| v.clone())).await;
    assert_eq!(ended["by"], "kiosk", "{ended}");
    assert!(kiosk.log().contains("consultation ended"), "{}", kiosk.log());
    wait_for_colour("the appointments after the call", artifacts_dir().join("keyboard-after-call.png"), BRAND, 30)
        .await;

    // Back on the appointments the focus is on the first Join button; the Lock button is just
    // before it.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    tokio::task::spawn_blocking(|| {
        xdotool(&["key", "shift+Tab"]);
        xdotool(&["key", "Return"]);
    })
    .await
    .expect("join");
    let shot = artifacts_dir().join("keyboard-locked.png");
    tokio::task::spawn_blocking(move || wait_for("the lock screen", Duration::from_secs(30), || on_lock_screen(&shot)))
        .await
        .expect("join");
    assert!(kiosk.log().contains("kiosk locked by the user"), "{}", kiosk.log());
    drop(kiosk);
    drop(turn);
}

//! Issue #16 item 4: each flow by keyboard alone. The nurse's in the kiosk window: sign in on the
//! lock screen, join the appointment, end the call from its controls, and lock the laptop again.
//! The consultant's in Chromium: sign in, confirm the patient and admit, share a CT and set its
//! window, end the call and send the outcome note.

use crate::window::{
    call_proven, luma_at, on_lock_screen, screenshot, wait_for, wait_for_colour, window_call, WindowCall, BRAND,
    DISPLAY,
};
use sc_e2e::artifacts_dir;
use sc_e2e::desktop::xdotool;
use std::time::Duration;

#[tokio::test(flavor = "multi_thread")]
async fn issue_16_the_nurses_flow_from_lock_to_call_to_end_and_lock_again_needs_only_the_keyboard() {
    // A call in the window and one in Chromium: kept apart from the shaped calls (their figures
    // starve beside them on 2 cores); the slot first, then the display, as nothing takes them the
    // other way round.
    let _slot = sc_e2e::shaped::one_at_a_time().await;
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
    wait_for_colour("the appointments after the call", artifacts_dir().join("keyboard-after-call.png"), BRAND, 30)
        .await;
    assert!(kiosk.log().contains("consultation ended"), "{}", kiosk.log());

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_the_consultants_flow_from_sign_in_to_admit_share_and_note_needs_only_the_keyboard() {
    use sc_e2e::media::{write_y4m, Turn};
    // A call: kept apart from the shaped calls, as above.
    let _slot = sc_e2e::shaped::one_at_a_time().await;
    let turn = Turn::start(sc_e2e::TURN_SECRET);
    let server = sc_e2e::CareServer::start_relaying(&turn).await;
    let secret = server.add_consultant("dr.who", "Dr Who");
    let appt = server.add_booking("dr.who", "HMP Testshire", 0, "A1234BC", "JS");
    // A later booking, whose laptop joins while the consultant has ticked the first patient.
    let later = server.add_booking("dr.who", "HMP Testshire", 20, "B2345CD", "AB");
    let (_second, second_kiosk) = crate::support::unlocked(&server, "HMP Testshire", "nurse.b").await;
    let mut second_waiting = None;
    let (_laptop, kiosk_core) = crate::support::unlocked(&server, "HMP Testshire", "nurse.a").await;
    let clip = tempfile::Builder::new().suffix(".y4m").tempfile().expect("y4m");
    write_y4m(clip.path(), 15);
    let ct = sc_e2e::dicom_dir().join("CT_small.dcm");
    let mut dr = sc_e2e::browser::Driver::by_keyboard(&server, "dr.who", &secret, clip.path(), &ct);
    let c = sc_call::consultation::Consultation::start(
        kiosk_core.record().expect("enrolled").clone(),
        kiosk_core.session_token().expect("unlocked"),
        appt.room_code,
        crate::call::kiosk_media(),
    );
    let mut seen = Vec::new();
    loop {
        let e = dr.wait_for("the consultant's flow", 90, |v| (v["event"] != "console").then(|| v.clone())).await;
        let event = e["event"].as_str().unwrap_or_default().to_owned();
        if event == "note_sent" {
            assert!(e.to_string().contains("A1234BC"), "{e}");
        }
        if event == "confirmed" {
            let mut k = crate::support::signalling(&second_kiosk).await.expect("signalling");
            k.send(&sc_proto::signal::ToServer::Join { room_code: later.room_code.clone() }).await.expect("join");
            second_waiting = Some(k);
        }
        if event == "redrawn" {
            // The list redrew with the second laptop waiting: the tick and the focus stayed (each
            // waiting-room update used to clear the tick, and Admit could not be reached).
            assert_eq!(
                (e["ticked"].as_bool(), e["focus"].as_str()),
                (Some(true), Some(appt.id.to_string().as_str())),
                "{e}"
            );
        }
        if event == "shown" {
            // The laptop reported the CT shown: it is on the laptop's screen.
            let width = c.images().borrow().as_ref().map(|s| s.width);
            assert_eq!(width, Some(128), "the CT on the laptop");
        }
        seen.push(event.clone());
        if event == "done" {
            break;
        }
    }
    assert_eq!(
        seen,
        [
            "signed_in",
            "confirmed",
            "redrawn",
            "admitted",
            "connected",
            "shown",
            "windowed",
            "ended",
            "note_sent",
            "done"
        ]
    );
    drop(second_waiting);
    // Each step reached the server: the patient confirmed, the call, its end, the note.
    let rows = sc_server::audit::tail(&server.state.db(), 200).expect("audit");
    for event in ["patient_confirmed", "call_started", "call_ended", "note_sent"] {
        assert!(rows.iter().any(|r| r.event == event), "no {event} in the audit log");
    }
    drop(turn);
}

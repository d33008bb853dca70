//! Signalling over pinned TLS WebSockets: the waiting room, admission, SDP/ICE relay and hang-up,
//! and every authorization rule (prison, consultant, occupancy, time, origin, session).

use crate::support::{next, signalling, unlocked};
use sc_e2e::consultant::{self, Consultant};
use sc_e2e::CareServer;
use sc_proto::signal::{Candidate, FromServer, Role, ToServer};

async fn consultant_in(server: &CareServer, username: &str, secret: &str) -> Consultant {
    let cookie =
        consultant::login(&server.url, &server.ca_der, username, &CareServer::code(secret)).await.expect("login");
    let origin = server.url.clone();
    let mut c = consultant::connect(&server.url, &server.ca_der, &cookie, &origin).await.expect("connect");
    assert!(matches!(c.recv().await, FromServer::WaitingRoom { .. }));
    c
}

/// The consultant's next message that is not a waiting-room update.
async fn consultant_next(c: &mut Consultant) -> FromServer {
    loop {
        match c.recv().await {
            FromServer::WaitingRoom { .. } => continue,
            other => return other,
        }
    }
}

fn error_kind(m: &FromServer) -> &str {
    match m {
        FromServer::Error { kind, .. } => kind,
        other => panic!("expected an error, got {other:?}"),
    }
}

#[tokio::test]
async fn wait_admit_relay_and_hang_up() {
    let server = CareServer::start().await;
    let dr = server.add_consultant("dr.who", "Dr Who");
    let appt = server.add_appointment("dr.who", "HMP Testshire", 0);
    let (_laptop, kiosk) = unlocked(&server, "HMP Testshire", "nurse.a").await;
    let listed = kiosk.appointments().await.expect("appointments");
    assert_eq!(listed.iter().map(|a| a.room_code.as_str()).collect::<Vec<_>>(), vec![appt.room_code.as_str()]);

    let mut c = consultant_in(&server, "dr.who", &dr).await;
    let mut k = signalling(&kiosk).await.expect("signalling");
    k.send(&ToServer::Join { room_code: appt.room_code.clone() }).await.expect("send");
    assert!(matches!(next(&mut k).await, FromServer::Waiting { appointment } if appointment.id == appt.id));
    let FromServer::WaitingRoom { waiting } = c.recv().await else { panic!("waiting room") };
    assert_eq!((waiting.len(), waiting[0].nurse.as_str()), (1, "Nurse nurse.a"));

    c.send(&ToServer::Admit { appointment_id: appt.id, patient_confirmed: false }).await;
    let FromServer::Admitted { role, ice_servers, .. } = consultant_next(&mut c).await else { panic!("admitted") };
    assert_eq!(role, Role::Answerer);
    assert!(ice_servers[0].username.ends_with(&format!(":appt{}-consultant", appt.id)));
    let FromServer::Admitted { role, ice_servers, .. } = next(&mut k).await else { panic!("admitted") };
    assert_eq!(role, Role::Offerer);
    let expiry: i64 = ice_servers[0].username.split(':').next().and_then(|e| e.parse().ok()).expect("expiry");
    assert!(expiry > sc_e2e::now(), "short-lived TURN credentials");

    k.send(&ToServer::Offer { sdp: "v=0 offer".into() }).await.expect("send");
    assert_eq!(consultant_next(&mut c).await, FromServer::Offer { sdp: "v=0 offer".into() });
    c.send(&ToServer::Answer { sdp: "v=0 answer".into() }).await;
    assert_eq!(next(&mut k).await, FromServer::Answer { sdp: "v=0 answer".into() });

    // Garbage gets an error back, and the connection stays usable.
    k.send_raw("{not json").await.expect("send");
    assert_eq!(error_kind(&next(&mut k).await), "bad_message");
    let cand = Candidate {
        candidate: "candidate:1 1 udp 1 127.0.0.1 5000 typ relay".into(),
        sdp_mid: Some("0".into()),
        sdp_m_line_index: Some(0),
    };
    k.send(&ToServer::Candidate { candidate: cand.clone() }).await.expect("send");
    assert_eq!(consultant_next(&mut c).await, FromServer::Candidate { candidate: cand });

    c.send(&ToServer::HangUp).await;
    assert_eq!(next(&mut k).await, FromServer::HungUp);
    let events: Vec<String> =
        sc_server::audit::tail(&server.state.db(), 50).expect("audit").into_iter().map(|r| r.event).collect();
    assert!(events.contains(&"call_started".to_owned()) && events.contains(&"call_ended".to_owned()), "{events:?}");
}

#[tokio::test]
async fn the_rules_refuse_with_clear_errors() {
    let server = CareServer::start().await;
    server.add_prison("HMP Elsewhere");
    let dr = server.add_consultant("dr.who", "Dr Who");
    let other_dr = server.add_consultant("dr.no", "Dr No");
    let ours = server.add_appointment("dr.who", "HMP Testshire", 0);
    let theirs = server.add_appointment("dr.who", "HMP Elsewhere", 0);
    let later = server.add_appointment("dr.who", "HMP Testshire", 180);
    let (_l1, kiosk) = unlocked(&server, "HMP Testshire", "nurse.a").await;
    let (_l2, second) = unlocked(&server, "HMP Testshire", "nurse.b").await;

    let mut k = signalling(&kiosk).await.expect("signalling");
    k.send(&ToServer::Join { room_code: theirs.room_code.clone() }).await.expect("send");
    assert_eq!(error_kind(&next(&mut k).await), "forbidden", "another prison's room");
    let last = sc_server::audit::tail(&server.state.db(), 1).expect("audit").pop().expect("row");
    assert_eq!(last.reason.as_deref(), Some("other_prison"));
    k.send(&ToServer::Join { room_code: "0000-0000-0000".into() }).await.expect("send");
    assert_eq!(error_kind(&next(&mut k).await), "not_found");
    k.send(&ToServer::Join { room_code: later.room_code.clone() }).await.expect("send");
    assert_eq!(error_kind(&next(&mut k).await), "not_now");
    k.send(&ToServer::Admit { appointment_id: ours.id, patient_confirmed: false }).await.expect("send");
    assert_eq!(error_kind(&next(&mut k).await), "forbidden", "a laptop cannot admit");

    k.send(&ToServer::Join { room_code: ours.room_code.clone() }).await.expect("send");
    assert!(matches!(next(&mut k).await, FromServer::Waiting { .. }));
    let mut k2 = signalling(&second).await.expect("signalling");
    k2.send(&ToServer::Join { room_code: ours.room_code.clone() }).await.expect("send");
    assert_eq!(error_kind(&next(&mut k2).await), "occupied", "a second laptop cannot take the room");

    let mut intruder = consultant_in(&server, "dr.no", &other_dr).await;
    intruder.send(&ToServer::Admit { appointment_id: ours.id, patient_confirmed: false }).await;
    assert_eq!(
        error_kind(&consultant_next(&mut intruder).await),
        "forbidden",
        "only the appointment's consultant admits"
    );

    // The consultant page: nurses cannot sign in to it; cookies need the page's own origin.
    let nurse_code = server.add_nurse("nurse.c", "Nurse C", "HMP Testshire");
    let refused = consultant::login(&server.url, &server.ca_der, "nurse.c", &CareServer::code(&nurse_code)).await;
    assert_eq!(refused.err().map(|e| e.0), Some(403));
    let cookie = consultant::login(&server.url, &server.ca_der, "dr.who", &CareServer::code(&dr)).await.expect("login");
    assert_eq!(
        consultant::connect(&server.url, &server.ca_der, &cookie, "https://evil.example").await.err(),
        Some(401)
    );
    assert_eq!(
        consultant::connect(&server.url, &server.ca_der, "__Host-sc_session=forged", &server.url).await.err(),
        Some(401)
    );

    // A locked laptop's token is dead; so is a revoked laptop's.
    let token = second.session_token().expect("token");
    second.lock();
    let record = second.record().expect("record").clone();
    let mut refused = None;
    for _ in 0..50 {
        // end-session is sent in the background on lock
        match sc_core::signal::Signalling::connect(&record, &token).await {
            Err(e) => {
                refused = Some(e);
                break;
            }
            Ok(s) => {
                s.close().await;
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
        }
    }
    assert!(matches!(refused, Some(sc_core::Error::Refused)), "{refused:?}");
    sc_server::admin::brick_device(
        &server.state.db(),
        &kiosk.record().expect("record").device_id,
        "stolen",
        "it.admin",
        sc_e2e::now(),
    )
    .expect("brick");
    assert!(matches!(signalling(&kiosk).await, Err(sc_core::Error::Refused)));
}

#[tokio::test]
async fn a_vanished_laptop_is_announced() {
    let server = CareServer::start().await;
    let dr = server.add_consultant("dr.who", "Dr Who");
    let appt = server.add_appointment("dr.who", "HMP Testshire", 0);
    let (_laptop, kiosk) = unlocked(&server, "HMP Testshire", "nurse.a").await;
    let mut c = consultant_in(&server, "dr.who", &dr).await;
    let mut k = signalling(&kiosk).await.expect("signalling");
    k.send(&ToServer::Join { room_code: appt.room_code.clone() }).await.expect("send");
    next(&mut k).await;
    c.send(&ToServer::Admit { appointment_id: appt.id, patient_confirmed: false }).await;
    assert!(matches!(consultant_next(&mut c).await, FromServer::Admitted { .. }));
    drop(k);
    assert_eq!(consultant_next(&mut c).await, FromServer::PeerLeft);
}

/// Issue #13, fix 5: locking ends the laptop's server session and, at once, its signalling socket
/// and call (the consultant is told); one laptop cannot hold two rooms on two connections; a brick
/// closes a laptop's socket though it never locked.
#[tokio::test]
async fn issue_13_locking_or_bricking_closes_the_laptop_s_signalling_and_call_at_once() {
    let server = CareServer::start().await;
    let dr = server.add_consultant("dr.who", "Dr Who");
    let appt = server.add_appointment("dr.who", "HMP Testshire", 0);
    let other = server.add_appointment("dr.who", "HMP Testshire", 0);
    let (laptop, kiosk) = unlocked(&server, "HMP Testshire", "nurse.a").await;
    let mut c = consultant_in(&server, "dr.who", &dr).await;
    let mut k = signalling(&kiosk).await.expect("signalling");
    k.send(&ToServer::Join { room_code: appt.room_code.clone() }).await.expect("send");
    next(&mut k).await;
    // The same laptop's second connection cannot take a second room.
    let mut k2 = signalling(&kiosk).await.expect("a second connection");
    k2.send(&ToServer::Join { room_code: other.room_code.clone() }).await.expect("send");
    assert_eq!(error_kind(&next(&mut k2).await), "laptop_elsewhere");
    c.send(&ToServer::Admit { appointment_id: appt.id, patient_confirmed: false }).await;
    assert!(matches!(consultant_next(&mut c).await, FromServer::Admitted { .. }));
    assert!(matches!(next(&mut k).await, FromServer::Admitted { .. }));

    kiosk.lock();
    assert_eq!(error_kind(&next(&mut k).await), "session_ended");
    let closed = tokio::time::timeout(std::time::Duration::from_secs(5), k.recv()).await.expect("closed in time");
    assert!(closed.is_none(), "the socket closed: {closed:?}");
    assert_eq!(consultant_next(&mut c).await, FromServer::PeerLeft, "the consultant is told");
    assert_eq!(error_kind(&next(&mut k2).await), "session_ended", "every connection of the session");

    // Signed in again, then bricked by IT from the CLI (another process): closed within a sweep.
    let kiosk = laptop.kiosk();
    let secret = server.add_nurse("nurse.b", "Nurse B", "HMP Testshire");
    let view = kiosk.sign_in(crate::support::creds("nurse.b", sc_e2e::PASSWORD, CareServer::code(&secret))).await;
    assert!(matches!(view, sc_core::KioskView::Unlocked { .. }), "{view:?}");
    let mut k = signalling(&kiosk).await.expect("signalling");
    let id = kiosk.record().expect("enrolled").device_id.clone();
    sc_server::admin::brick_device(&server.state.db(), &id, "stolen", "it.cli", sc_e2e::now()).expect("brick");
    let deadline = sc_server::sessions::SWEEP_EVERY + std::time::Duration::from_secs(5);
    let ended = tokio::time::timeout(deadline, async {
        loop {
            match k.recv().await {
                Some(sc_core::signal::Incoming::Message(m)) => return Some(m),
                Some(_) => continue,
                None => return None,
            }
        }
    })
    .await
    .expect("closed within a sweep");
    assert!(matches!(ended, Some(FromServer::Error { ref kind, .. }) if kind == "session_ended"), "{ended:?}");
}

#[tokio::test]
async fn issue_15_a_share_is_audited_under_its_call_and_only_as_counts() {
    let server = CareServer::start().await;
    let dr = server.add_consultant("dr.who", "Dr Who");
    let appt = server.add_appointment("dr.who", "HMP Testshire", 0);
    let (_laptop, kiosk) = unlocked(&server, "HMP Testshire", "nurse.a").await;
    let mut c = consultant_in(&server, "dr.who", &dr).await;
    let mut k = signalling(&kiosk).await.expect("signalling");
    let share = |files, shown, failed, modalities: &[&str]| ToServer::ShareDone {
        files,
        shown,
        failed,
        bytes: 123_456,
        modalities: modalities.iter().map(|m| (*m).to_owned()).collect(),
    };

    // Not in a call yet: nothing to record it under.
    c.send(&share(1, 1, 0, &["CT"])).await;
    assert_eq!(error_kind(&consultant_next(&mut c).await), "not_in_call");

    k.send(&ToServer::Join { room_code: appt.room_code.clone() }).await.expect("send");
    next(&mut k).await;
    c.send(&ToServer::Admit { appointment_id: appt.id, patient_confirmed: false }).await;
    assert!(matches!(consultant_next(&mut c).await, FromServer::Admitted { .. }));
    next(&mut k).await;

    c.send(&share(3, 2, 1, &["CT", "US", "CT", "picture"])).await;
    // Impossible counts, a modality that is not a code, or a laptop claiming to share: refused.
    c.send(&share(1, 2, 0, &["CT"])).await;
    assert_eq!(error_kind(&consultant_next(&mut c).await), "bad_message");
    c.send(&share(1, 1, 0, &["<script>"])).await;
    assert_eq!(error_kind(&consultant_next(&mut c).await), "bad_message");
    k.send(&share(1, 1, 0, &["CT"])).await.expect("send");
    assert_eq!(error_kind(&next(&mut k).await), "forbidden");

    let records = crate::support::audit_rows(&server, "image_share");
    assert_eq!(records.len(), 1, "{records:?}");
    let (outcome, detail) = &records[0];
    assert_eq!(outcome, "partial", "a file failed");
    assert_eq!(
        detail,
        &format!(
            "appointment={} consultant={} files=3 shown=2 failed=1 bytes=123456 modalities=CT,US,picture",
            appt.id,
            dr_id(&server, "dr.who")
        )
    );
}

fn dr_id(server: &CareServer, username: &str) -> i64 {
    server
        .state
        .db()
        .query_row("SELECT id FROM staff WHERE username = ?1", [username], |r| r.get(0))
        .expect("the consultant's id")
}

/// Issue #16 item 0 (the wrong-patient hazard, docs/clinical-safety.md H3): a booking names its
/// patient by prison number and initials; the nurse's list and the consultant's show them (and
/// the other prison's laptop sees nothing of it), and the consultant cannot admit until they say
/// they have checked who is there, which is audited. Item 3: the laptop is told the consultant's
/// hospital, which its call screen names.
#[tokio::test]
async fn issue_16_a_booked_patient_and_the_consultants_hospital_are_shown_and_the_patient_confirmed_before_admitting() {
    let server = CareServer::start().await;
    let dr = server.add_consultant_of("dr.who", "Dr Who", "St Elsewhere Hospital");
    server.add_prison("HMP Elsewhere");
    let appt = server.add_booking("dr.who", "HMP Testshire", 0, "A1234BC", "JS");
    let (_laptop, kiosk) = unlocked(&server, "HMP Testshire", "nurse.a").await;
    let listed = kiosk.appointments().await.expect("appointments");
    let patient = listed.iter().find(|a| a.id == appt.id).and_then(|a| a.patient.clone()).expect("the patient");
    assert_eq!((patient.prison_number.as_str(), patient.initials.as_str()), ("A1234BC", "JS"));
    // Item 3: the nurse and prisoner are told who they will talk to, and from where.
    let hospital = listed.iter().find(|a| a.id == appt.id).and_then(|a| a.consultant_hospital.clone());
    assert_eq!(hospital.as_deref(), Some("St Elsewhere Hospital"));
    let (_other, elsewhere) = unlocked(&server, "HMP Elsewhere", "nurse.b").await;
    assert!(elsewhere.appointments().await.expect("appointments").is_empty(), "another prison's laptop sees none");

    let cookie = consultant::login(&server.url, &server.ca_der, "dr.who", &CareServer::code(&dr)).await.expect("login");
    let page: serde_json::Value = reqwest::Client::builder()
        .tls_backend_preconfigured(sc_core::tls::pinned(&server.ca_der).expect("tls"))
        .no_proxy()
        .build()
        .expect("client")
        .get(format!("{}/v1/consult/appointments", server.url))
        .header("cookie", &cookie)
        .send()
        .await
        .expect("request")
        .json()
        .await
        .expect("json");
    assert_eq!(page[0]["patient"], serde_json::json!({ "prison_number": "A1234BC", "initials": "JS" }), "{page}");

    // The same sign-in (a TOTP code is good once): the page's WebSocket.
    let mut c = consultant::connect(&server.url, &server.ca_der, &cookie, &server.url.clone()).await.expect("connect");
    assert!(matches!(c.recv().await, FromServer::WaitingRoom { .. }));
    let mut k = signalling(&kiosk).await.expect("signalling");
    k.send(&ToServer::Join { room_code: appt.room_code.clone() }).await.expect("send");
    let FromServer::Waiting { appointment } = next(&mut k).await else { panic!("waiting") };
    assert_eq!(appointment.consultant_hospital.as_deref(), Some("St Elsewhere Hospital"));
    c.send(&ToServer::Admit { appointment_id: appt.id, patient_confirmed: false }).await;
    let refused = consultant_next(&mut c).await;
    assert_eq!(error_kind(&refused), "confirm_patient", "{refused:?}");
    c.send(&ToServer::Admit { appointment_id: appt.id, patient_confirmed: true }).await;
    assert!(matches!(consultant_next(&mut c).await, FromServer::Admitted { .. }));
    let audit = sc_server::audit::tail(&server.state.db(), 50).expect("audit");
    let confirmed = audit.iter().find(|r| r.event == "patient_confirmed").expect("the check is audited");
    let detail = confirmed.detail.clone().unwrap_or_default();
    assert!(detail.contains(&format!("appointment={}", appt.id)) && !detail.contains("A1234BC"), "{detail}");
}

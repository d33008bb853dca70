//! Issue #16 items 0 and 1 in a real browser: a nurse books on the prison team's page and the
//! booking reaches the consultant's page; the consultant writes an outcome note by keyboard alone;
//! the nurse reads, acknowledges and exports it; the export validates as FHIR R4 (FHIR.js, the
//! core R4 definitions); the consultant sees the acknowledgement. The server's own record is
//! checked beside what the pages showed.

use sc_e2e::browser::Driver;
use sc_e2e::{artifacts_dir, CareServer};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn issue_16_a_note_written_by_keyboard_is_read_acknowledged_and_exported_as_valid_fhir_by_the_prisons_team() {
    let server = CareServer::start().await;
    let dr = server.add_consultant_of("dr.who", "Dr Who", "St Elsewhere");
    let nurse = server.add_nurse("nurse.t", "Terry Nurse", "HMP Testshire");
    // An appointment that began five minutes ago: its note can be written.
    let earlier = server.add_booking("dr.who", "HMP Testshire", -5, "A1234BC", "JS");
    let dir = tempfile::tempdir().expect("dir");
    let export = dir.path().join("note.fhir.json");
    let shots = artifacts_dir();
    let mut driver = Driver::pathway(&server, ("dr.who", &dr), ("nurse.t", &nurse), "B2345CD", &export, &shots);
    let mut seen = std::collections::HashMap::new();
    loop {
        let e = driver.wait_for("the pathway", 180, |v| (v["event"] != "console").then(|| v.clone())).await;
        let event = e["event"].as_str().unwrap_or_default().to_owned();
        println!("{e}");
        if event == "done" {
            break;
        }
        seen.insert(event, e);
    }
    let text = |event: &str| seen.get(event).map(ToString::to_string).unwrap_or_default();

    // The booking made on the team page is on the consultant's page, for that patient.
    assert!(text("team_signed_in").contains("HMP Testshire"), "{}", text("team_signed_in"));
    assert!(text("booked").contains("B2345CD"), "{}", text("booked"));
    assert!(text("consultant_sees_booking").contains("B2345CD"), "{}", text("consultant_sees_booking"));
    let booked = sc_server::db::appointments_between(&server.state.db(), None, None, 0, i64::MAX).expect("db");
    let made = booked.iter().find(|a| a.view.patient.as_ref().is_some_and(|p| p.prison_number.as_str() == "B2345CD"));
    assert!(made.is_some_and(|a| a.view.consultant == "Dr Who" && a.view.prison == "HMP Testshire"), "{booked:?}");

    // The note, written by keyboard, reached the team whole and was acknowledged.
    assert!(text("note_sent").contains("Not yet"), "{}", text("note_sent"));
    assert!(text("team_lists").contains("Urgent") && text("team_lists").contains("A1234BC"), "{}", text("team_lists"));
    assert!(
        text("team_reads").contains("Healing well") && text("team_reads").contains("Paracetamol"),
        "{}",
        text("team_reads")
    );
    assert!(text("acknowledged").contains("Terry Nurse"), "{}", text("acknowledged"));
    assert!(text("consultant_sees_ack").contains("Yes: Terry Nurse"), "{}", text("consultant_sees_ack"));
    let dr_id = sc_server::db::staff_by_username(&server.state.db(), "dr.who").expect("db").expect("dr").id;
    let whose = sc_server::notes::Whose::Consultant(dr_id);
    let notes = sc_server::notes::headers(&server.state.db(), whose, sc_e2e::now(), 3600).expect("notes");
    assert_eq!(notes.len(), 1, "{notes:?}");
    assert_eq!((notes[0].appointment_id, notes[0].urgency), (earlier.id, sc_server::notes::Urgency::Urgent));
    assert!(notes[0].acknowledged.as_ref().is_some_and(|a| a.by == "Terry Nurse"));

    // The export is a FHIR R4 Composition that validates, about the right patient and note.
    let json: serde_json::Value =
        serde_json::from_slice(&std::fs::read(&export).expect("the exported file")).expect("JSON");
    assert_eq!(json["resourceType"], "Composition");
    assert_eq!(json["subject"]["identifier"]["value"], "A1234BC");
    assert_eq!(json["identifier"]["value"], format!("urn:uuid:{}", notes[0].uid));
    assert!(json.to_string().contains("Healing well"), "{json}");
    let (reports, valid) = Driver::validate_fhir(&[export.as_path()]).await;
    assert!(valid, "the export does not validate: {reports:?}");
    // The validator is alive: the same file with a status FHIR does not have is refused.
    let mut broken = json.clone();
    broken["status"] = "sent".into();
    let bad = dir.path().join("broken.fhir.json");
    std::fs::write(&bad, broken.to_string()).expect("write");
    let (reports, valid) = Driver::validate_fhir(&[bad.as_path()]).await;
    assert!(!valid && reports[0].to_string().contains("Composition.status"), "{reports:?}");

    // Each step is in the audit log under who did it.
    let events: Vec<(String, Option<String>)> = sc_server::audit::tail(&server.state.db(), 1000)
        .expect("audit")
        .into_iter()
        .filter(|r| r.event.starts_with("note_") || r.event.starts_with("booking_"))
        .map(|r| (r.event, r.staff))
        .collect();
    let expected = [
        ("booking_made", "nurse.t"),
        ("note_sent", "dr.who"),
        ("note_read", "nurse.t"),
        ("note_acknowledged", "nurse.t"),
        ("note_exported", "nurse.t"),
    ];
    let got: Vec<(&str, &str)> = events.iter().map(|(e, s)| (e.as_str(), s.as_deref().unwrap_or(""))).collect();
    assert_eq!(got, expected);
}

//! Issue #16 items 0 and 1: the prison's team books, moves and cancels its appointments on the
//! team page; the consultant's outcome note reaches that prison's team and nobody else, is
//! acknowledged there, shows as acknowledged to its consultant, never changes (an addendum
//! instead), goes overdue when urgent and unacknowledged, and the laptop learns only a count.
//! Every booking change, read, acknowledgement and export is in the audit log.

use crate::support::{Harness, PASSWORD};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use serde_json::{json, Value};

struct World {
    h: Harness,
    /// Nurse of HMP Alpha on the team page.
    alpha: String,
    /// Nurse of HMP Beta on the team page.
    beta: String,
    /// dr.lee, the booked consultant.
    lee: String,
    /// dr.other, another consultant.
    other: String,
    /// An unlocked laptop of each prison.
    alpha_laptop: String,
    beta_laptop: String,
}

async fn kiosk_token(h: &Harness, prison: &str, nurse: &str, secret: &str) -> String {
    let laptop = h.enrol(prison).await;
    let (body, _) = laptop.activation(nurse, PASSWORD, &h.code(secret), h.now());
    h.advance(30);
    let (status, reply) = h.post("/v1/activate", body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let s: sc_proto::ActivateResponse = serde_json::from_value(reply).expect("activation");
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(s.session.0)
}

async fn world() -> World {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    h.add_prison("HMP Beta");
    let a = h.add_staff("nurse.a", "nurse", Some("HMP Alpha"));
    let b = h.add_staff("nurse.b", "nurse", Some("HMP Beta"));
    let lee = h.add_staff("dr.lee", "consultant", None);
    let other = h.add_staff("dr.other", "consultant", None);
    let alpha_laptop = kiosk_token(&h, "HMP Alpha", "nurse.a", &a).await;
    let beta_laptop = kiosk_token(&h, "HMP Beta", "nurse.b", &b).await;
    let alpha = h.sign_in("/team/login", "nurse.a", &a).await.expect("nurse of Alpha signs in on the team page");
    let beta = h.sign_in("/team/login", "nurse.b", &b).await.expect("nurse of Beta signs in on the team page");
    let lee = h.sign_in("/consult/login", "dr.lee", &lee).await.expect("consultant");
    let other = h.sign_in("/consult/login", "dr.other", &other).await.expect("consultant");
    World { h, alpha, beta, lee, other, alpha_laptop, beta_laptop }
}

async fn kiosk_get(h: &Harness, path: &str, token: &str) -> (StatusCode, Value) {
    let req = Request::get(path).header("authorization", format!("Bearer {token}")).body(Body::empty()).expect("req");
    let resp = tower::ServiceExt::oneshot(sc_server::app(h.state.clone()), req).await.expect("infallible");
    let status = resp.status();
    let bytes = resp.into_body().collect().await.expect("body").to_bytes();
    (status, serde_json::from_slice(&bytes).unwrap_or(Value::Null))
}

fn ids(list: &Value) -> Vec<i64> {
    list.as_array().expect("a list").iter().map(|a| a["id"].as_i64().expect("id")).collect()
}

/// Books dr.lee for HMP Alpha's patient A1234BC (J.S.) from the team page, `in_secs` from now.
async fn book(w: &World, in_secs: i64) -> i64 {
    let form = json!({ "consultant": "dr.lee", "starts_at": w.h.now() + in_secs, "minutes": 20,
                       "prison_number": "a1234bc", "initials": "j.s." });
    let (status, _, made) = w.h.call("POST", "/v1/team/appointments", Some(&w.alpha), Some(form)).await;
    assert_eq!(status, StatusCode::OK, "{made}");
    made["id"].as_i64().expect("id")
}

fn note(summary: &str, urgency: &str) -> Value {
    json!({ "summary": summary, "actions": "Repeat the chest X-ray.", "medication": "Amoxicillin 500 mg three times a day for 5 days.",
            "follow_up": "Video review", "follow_up_on": "2027-01-29", "urgency": urgency })
}

fn events(h: &Harness) -> Vec<(String, Option<String>, Option<String>)> {
    h.audit_rows().into_iter().map(|r| (r.event, r.staff, r.detail)).collect()
}

#[tokio::test]
async fn issue_16_a_booking_made_on_the_team_page_appears_for_its_consultant_and_its_prisons_laptops_only() {
    let w = world().await;
    let h = &w.h;
    let id = book(&w, 3600).await;

    let (_, _, mine) = h.call("GET", "/v1/consult/appointments", Some(&w.lee), None).await;
    assert_eq!(ids(&mine), vec![id], "on the booked consultant's page");
    assert_eq!(mine[0]["patient"], json!({ "prison_number": "A1234BC", "initials": "JS" }), "{mine}");
    let (_, _, others) = h.call("GET", "/v1/consult/appointments", Some(&w.other), None).await;
    assert_eq!(ids(&others), Vec::<i64>::new(), "not on another consultant's");
    // One a fortnight away is on the consultant's list of bookings (not today's), and only theirs.
    let later = book(&w, 14 * 24 * 3600).await;
    let (_, _, today) = h.call("GET", "/v1/consult/appointments", Some(&w.lee), None).await;
    let (_, _, booked) = h.call("GET", "/v1/consult/bookings", Some(&w.lee), None).await;
    assert_eq!((ids(&today), ids(&booked)), (vec![id], vec![id, later]));
    let (_, _, others) = h.call("GET", "/v1/consult/bookings", Some(&w.other), None).await;
    assert_eq!(ids(&others), Vec::<i64>::new());
    let (status, on_alpha) = kiosk_get(h, "/v1/kiosk/appointments", &w.alpha_laptop).await;
    assert_eq!((status, ids(&on_alpha)), (StatusCode::OK, vec![id]), "on that prison's laptop");
    let (_, on_beta) = kiosk_get(h, "/v1/kiosk/appointments", &w.beta_laptop).await;
    assert_eq!(ids(&on_beta), Vec::<i64>::new(), "not on another prison's laptop");
    let (_, _, alpha_list) = h.call("GET", "/v1/team/appointments", Some(&w.alpha), None).await;
    let (_, _, beta_list) = h.call("GET", "/v1/team/appointments", Some(&w.beta), None).await;
    assert_eq!((ids(&alpha_list), ids(&beta_list)), (vec![id, later], vec![]), "each team sees its own prison's");

    // Another prison's nurse can neither move nor cancel it: to them it does not exist.
    let path = format!("/v1/team/appointments/{id}/reschedule");
    let (status, _, _) =
        h.call("POST", &path, Some(&w.beta), Some(json!({ "starts_at": h.now() + 7200, "minutes": 30 }))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, _) = h
        .call("POST", &format!("/v1/team/appointments/{id}/cancel"), Some(&w.beta), Some(json!({ "reason": "x" })))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    // Its own team moves it.
    let (status, _, body) =
        h.call("POST", &path, Some(&w.alpha), Some(json!({ "starts_at": h.now() + 7200, "minutes": 30 }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, on_alpha) = kiosk_get(h, "/v1/kiosk/appointments", &w.alpha_laptop).await;
    assert_eq!(
        (on_alpha[0]["starts_at"].as_i64(), on_alpha[0]["ends_at"].as_i64()),
        (Some(h.now() + 7200), Some(h.now() + 7200 + 1800))
    );
    // Bad input is refused in words a nurse can act on, and nothing changes.
    for (form, words) in [
        (
            json!({ "consultant": "dr.lee", "starts_at": h.now() - 3600, "minutes": 20, "prison_number": "A1234BC", "initials": "JS" }),
            "has passed",
        ),
        (
            json!({ "consultant": "nurse.b", "starts_at": h.now() + 60, "minutes": 20, "prison_number": "A1234BC", "initials": "JS" }),
            "choose a consultant",
        ),
        (
            json!({ "consultant": "dr.lee", "starts_at": h.now() + 60, "minutes": 20, "prison_number": "12345", "initials": "JS" }),
            "A1234BC",
        ),
    ] {
        let (status, _, body) = h.call("POST", "/v1/team/appointments", Some(&w.alpha), Some(form)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
        assert!(body["message"].as_str().is_some_and(|m| m.contains(words)), "{body}");
    }
    // Cancelled: gone from the consultant's page, the laptops and the team's list.
    let (status, _, body) = h
        .call(
            "POST",
            &format!("/v1/team/appointments/{id}/cancel"),
            Some(&w.alpha),
            Some(json!({ "reason": "Released" })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let (_, _, mine) = h.call("GET", "/v1/consult/bookings", Some(&w.lee), None).await;
    let (_, on_alpha) = kiosk_get(h, "/v1/kiosk/appointments", &w.alpha_laptop).await;
    assert_eq!((ids(&mine), ids(&on_alpha)), (vec![later], vec![]));

    // Audited under the nurse's name; a consultant's or IT's cookie books nothing.
    let audited: Vec<_> = events(h).into_iter().filter(|e| e.0.starts_with("booking_")).collect();
    let names: Vec<_> = audited.iter().map(|e| (e.0.as_str(), e.1.as_deref())).collect();
    assert_eq!(
        names,
        [
            ("booking_made", Some("nurse.a")),
            ("booking_made", Some("nurse.a")),
            ("booking_rescheduled", Some("nurse.a")),
            ("booking_cancelled", Some("nurse.a"))
        ]
    );
    assert!(audited[3].2.as_deref().is_some_and(|d| d.contains("reason=Released")), "{audited:?}");
    let (status, _, _) = h.call("GET", "/v1/team/appointments", Some(&w.lee), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn issue_16_a_consultant_cannot_sign_in_on_the_team_page_nor_a_nurse_on_the_consultants() {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    let nurse = h.add_staff("nurse.a", "nurse", Some("HMP Alpha"));
    let dr = h.add_staff("dr.lee", "consultant", None);
    let (status, _) = h.sign_in("/team/login", "dr.lee", &dr).await.expect_err("not a nurse");
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(h.last_reason().as_deref(), Some("wrong_role"));
    let (status, _) = h.sign_in("/consult/login", "nurse.a", &nurse).await.expect_err("not a consultant");
    assert_eq!(status, StatusCode::FORBIDDEN);
    let cookie = h.sign_in("/team/login", "nurse.a", &nurse).await.expect("a nurse signs in");
    assert!(cookie.starts_with("__Host-sc_team="), "{cookie}");
    let (_, _, me) = h.call("GET", "/v1/team/me", Some(&cookie), None).await;
    assert_eq!(me, json!({ "name": "nurse.a", "prison": "HMP Alpha" }));
    // The same TOTP rules: a code used once is refused the second time.
    let code = h.code(&nurse);
    let form = json!({ "username": "nurse.a", "password": PASSWORD, "code": code });
    let (first, _, _) = h.call("POST", "/team/login", None, Some(form.clone())).await;
    let (again, _, _) = h.call("POST", "/team/login", None, Some(form)).await;
    assert_eq!((first, again), (StatusCode::OK, StatusCode::FORBIDDEN));
    assert_eq!(h.last_reason().as_deref(), Some("reused_code"));
}

#[tokio::test]
async fn issue_16_the_outcome_note_reaches_that_prisons_team_and_no_one_else_and_its_acknowledgement_reaches_the_consultant(
) {
    let w = world().await;
    let h = &w.h;
    let id = book(&w, 60).await;
    // Before the appointment could begin there is nothing to note.
    let later = book(&w, 24 * 3600).await;
    let (status, _, body) = h
        .call("POST", &format!("/v1/consult/appointments/{later}/note"), Some(&w.lee), Some(note("x", "routine")))
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    h.advance(30 * 60);

    // Only the appointment's own consultant writes its note.
    let path = format!("/v1/consult/appointments/{id}/note");
    let (status, _, _) = h.call("POST", &path, Some(&w.other), Some(note("Not mine", "urgent"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, body) = h.call("POST", &path, Some(&w.lee), Some(note("", "urgent"))).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("summary")), "{body}");
    let (status, _, sent) =
        h.call("POST", &path, Some(&w.lee), Some(note("Right lower lobe pneumonia.", "urgent"))).await;
    assert_eq!(status, StatusCode::OK, "{sent}");
    let note_id = sent["id"].as_i64().expect("id");
    // A second note for the same appointment is an addendum, not a replacement.
    let (status, _, body) = h.call("POST", &path, Some(&w.lee), Some(note("Replaced", "routine"))).await;
    assert_eq!(status, StatusCode::CONFLICT, "{body}");
    assert!(body["message"].as_str().is_some_and(|m| m.contains("addendum")), "{body}");

    // The laptop learns a count, never the note.
    let (status, count) = kiosk_get(h, "/v1/kiosk/outcome-notes", &w.alpha_laptop).await;
    assert_eq!((status, &count), (StatusCode::OK, &json!({ "unacknowledged": 1 })));
    let (_, count) = kiosk_get(h, "/v1/kiosk/outcome-notes", &w.beta_laptop).await;
    assert_eq!(count, json!({ "unacknowledged": 0 }), "another prison's laptop");
    for path in ["/v1/team/notes", &format!("/v1/team/notes/{note_id}"), "/v1/consult/notes"] {
        let (status, body) = kiosk_get(h, path, &w.alpha_laptop).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{path}: {body}");
    }

    // That prison's team lists it (no text in the list) and reads it; nobody else can.
    let (_, _, listed) = h.call("GET", "/v1/team/notes", Some(&w.alpha), None).await;
    assert_eq!(ids(&listed), vec![note_id]);
    assert!(listed[0].get("summary").is_none(), "the list carries no clinical text: {listed}");
    assert_eq!((listed[0]["urgency"].as_str(), listed[0]["overdue"].as_bool()), (Some("urgent"), Some(false)));
    let (_, _, beta_list) = h.call("GET", "/v1/team/notes", Some(&w.beta), None).await;
    assert_eq!(ids(&beta_list), Vec::<i64>::new(), "not another prison's team");
    let read = format!("/v1/team/notes/{note_id}");
    for (who, cookie) in
        [("Beta's nurse", &w.beta), ("another consultant", &w.other), ("the consultant on the team page", &w.lee)]
    {
        let (status, _, body) = h.call("GET", &read, Some(cookie.as_str()), None).await;
        assert!(matches!(status, StatusCode::NOT_FOUND | StatusCode::UNAUTHORIZED), "{who}: {status} {body}");
        assert!(!body.to_string().contains("pneumonia"), "{who}");
    }
    let (status, _, body) = h.call("GET", &format!("/v1/consult/notes/{note_id}"), Some(&w.other), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    let (_, _, others) = h.call("GET", "/v1/consult/notes", Some(&w.other), None).await;
    assert_eq!(ids(&others), Vec::<i64>::new(), "not in another consultant's list");
    let (status, _, whole) = h.call("GET", &read, Some(&w.alpha), None).await;
    assert_eq!(status, StatusCode::OK, "{whole}");
    assert_eq!(whole["summary"], "Right lower lobe pneumonia.");
    assert_eq!((whole["follow_up_on"].as_str(), whole["consultant"].as_str()), (Some("2027-01-29"), Some("dr.lee")));
    assert_eq!(whole["patient"]["prison_number"], "A1234BC");

    // Urgent and unacknowledged past the configured time: overdue, on both sides.
    h.advance(h.state.config.urgent_note_ack_secs);
    let (_, _, listed) = h.call("GET", "/v1/team/notes", Some(&w.alpha), None).await;
    assert_eq!(listed[0]["overdue"], true);
    let (_, _, mine) = h.call("GET", "/v1/consult/notes", Some(&w.lee), None).await;
    assert_eq!((mine[0]["overdue"].as_bool(), &mine[0]["acknowledged"]), (Some(true), &Value::Null));

    // Acknowledged by that team: the consultant sees by whom; a repeat changes nothing.
    let ack = format!("/v1/team/notes/{note_id}/acknowledge");
    let (status, _, _) = h.call("POST", &ack, Some(&w.beta), None).await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another prison cannot acknowledge it");
    let (status, _, header) = h.call("POST", &ack, Some(&w.alpha), None).await;
    assert_eq!(status, StatusCode::OK, "{header}");
    let acked_at = h.now();
    h.advance(60);
    let (_, _, again) = h.call("POST", &ack, Some(&w.alpha), None).await;
    assert_eq!(again["acknowledged"], json!({ "by": "nurse.a", "at": acked_at }), "the first acknowledgement stands");
    let (_, _, mine) = h.call("GET", "/v1/consult/notes", Some(&w.lee), None).await;
    assert_eq!(mine[0]["acknowledged"], json!({ "by": "nurse.a", "at": acked_at }));
    assert_eq!(mine[0]["overdue"], false);
    // What the laptops' count reads (their sessions' lease has run out by now).
    let alpha = sc_server::db::prison_by_name(&h.state.db(), "HMP Alpha").expect("prison").id;
    assert_eq!(sc_server::notes::unacknowledged(&h.state.db(), alpha).expect("count"), 0);

    // Every read, acknowledgement and export is audited, under who did it; the text never is.
    let (status, _, _) = h.call("GET", &format!("/v1/team/notes/{note_id}/fhir"), Some(&w.alpha), None).await;
    assert_eq!(status, StatusCode::OK);
    let log = events(h);
    let note_events: Vec<_> =
        log.iter().filter(|e| e.0.starts_with("note_")).map(|e| (e.0.as_str(), e.1.as_deref())).collect();
    assert_eq!(
        note_events,
        [
            ("note_sent", Some("dr.lee")),
            ("note_read", Some("nurse.a")),
            ("note_acknowledged", Some("nurse.a")),
            ("note_exported", Some("nurse.a"))
        ]
    );
    assert!(!format!("{log:?}").contains("pneumonia") && !format!("{log:?}").contains("Amoxicillin"));
}

#[tokio::test]
async fn issue_16_a_sent_note_never_changes_and_an_addendum_is_its_own_acknowledged_note() {
    let w = world().await;
    let h = &w.h;
    let id = book(&w, 0).await;
    let (_, _, sent) = h
        .call("POST", &format!("/v1/consult/appointments/{id}/note"), Some(&w.lee), Some(note("First words.", "soon")))
        .await;
    let first = sent["id"].as_i64().expect("id");
    // Not by another consultant.
    let add = format!("/v1/consult/notes/{first}/addendum");
    let (status, _, _) = h.call("POST", &add, Some(&w.other), Some(note("Mine now", "routine"))).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    let (status, _, added) =
        h.call("POST", &add, Some(&w.lee), Some(note("Correction: five days, not seven.", "soon"))).await;
    assert_eq!(status, StatusCode::OK, "{added}");
    let second = added["id"].as_i64().expect("id");
    let (_, _, listed) = h.call("GET", "/v1/team/notes", Some(&w.alpha), None).await;
    assert_eq!(ids(&listed), vec![second, first], "newest first");
    assert_eq!(listed[0]["addendum_to"].as_i64(), Some(first));
    let (_, _, original) = h.call("GET", &format!("/v1/team/notes/{first}"), Some(&w.alpha), None).await;
    assert_eq!(original["summary"], "First words.", "the note itself is unchanged");

    // Not even the database lets a note change or go.
    {
        let c = h.state.db();
        let err =
            c.execute("UPDATE outcome_notes SET urgency = 'routine' WHERE id = ?1", [first]).expect_err("immutable");
        assert!(err.to_string().contains("never changed"), "{err}");
        let err = c.execute("DELETE FROM outcome_notes WHERE id = ?1", [first]).expect_err("kept");
        assert!(err.to_string().contains("never deleted"), "{err}");
        // The text is sealed at rest, and bound to its note.
        let body: String =
            c.query_row("SELECT body FROM outcome_notes WHERE id = ?1", [first], |r| r.get(0)).expect("row");
        assert!(!body.contains("First words"), "sealed");
        let drop_trigger = match c.dialect() {
            sc_server::store::Dialect::Postgres => "DROP TRIGGER outcome_notes_immutable ON outcome_notes",
            _ => "DROP TRIGGER outcome_notes_immutable",
        };
        c.execute_batch(drop_trigger).expect("an attacker with the database");
        c.execute(
            "UPDATE outcome_notes SET body = (SELECT body FROM outcome_notes WHERE id = ?2) WHERE id = ?1",
            [first, second],
        )
        .expect("swap");
    }
    let (status, _, body) = h.call("GET", &format!("/v1/team/notes/{first}"), Some(&w.alpha), None).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR, "text moved from another note does not open: {body}");
    assert_eq!(body["message"], "internal error");
}

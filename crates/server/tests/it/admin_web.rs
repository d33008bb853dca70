//! IT staff's admin page: only IT staff sign in (password + TOTP), they see each laptop's prison,
//! last contact and state, brick with a reason recorded under their name, follow each brick from
//! pending to wiped, and read the audit log with the chain checked.

use crate::support::{self, Harness, PASSWORD};
use axum::http::StatusCode;
use serde_json::json;

async fn setup() -> (Harness, String, crate::support::Laptop) {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    let it = h.add_staff("it.sam", "it", None);
    let laptop = h.enrol("HMP Alpha").await;
    let cookie = h.sign_in("/admin/login", "it.sam", &it).await.expect("IT signs in");
    (h, cookie, laptop)
}

#[tokio::test]
async fn it_staff_see_each_laptop_with_its_prison_last_contact_and_state() {
    let (h, cookie, laptop) = setup().await;
    assert!(cookie.starts_with("__Host-sc_admin="), "{cookie}");
    sc_server::db::touch_device(&h.state.db(), &laptop.id(), h.now() - 5).expect("contact");
    let (status, _, me) = h.call("GET", "/v1/admin/me", Some(&cookie), None).await;
    assert_eq!((status, me["name"].as_str()), (StatusCode::OK, Some("it.sam")));
    let (status, _, devices) = h.call("GET", "/v1/admin/devices", Some(&cookie), None).await;
    assert_eq!(status, StatusCode::OK, "{devices}");
    let d = &devices[0];
    assert_eq!(d["id"].as_str(), Some(laptop.id().as_str()));
    assert_eq!(d["prison"], "HMP Alpha");
    // Issue #14: the asset tag and serial number sent at enrolment, by which IT staff know it.
    assert_eq!((d["asset_tag"].as_str(), d["serial"].as_str()), (Some("HMP Alpha laptop 3"), Some("PF2ABCDE")));
    assert_eq!(d["last_contact"].as_i64(), Some(h.now() - 5));
    assert_eq!((d["state"].as_str(), &d["brick"]), (Some("active"), &serde_json::Value::Null));
    // Issue #14: the last posture report, with what its prison's policy found wrong.
    assert_eq!(d["posture"]["stage"], "enrolment", "{d}");
    assert_eq!(d["posture"]["failing"], serde_json::json!([]));
    let report = sc_proto::Posture { secure_boot: Some(false), ..support::posture() };
    let failing = vec![sc_server::posture::Failing::SecureBootOff];
    sc_server::posture::keep(
        &h.state.db(),
        &laptop.id(),
        &report,
        &failing,
        h.now(),
        sc_server::posture::When::Activation,
    )
    .expect("keep");
    let (_, _, devices) = h.call("GET", "/v1/admin/devices", Some(&cookie), None).await;
    let p = &devices[0]["posture"];
    assert_eq!((p["stage"].as_str(), &p["failing"]), (Some("activation"), &serde_json::json!(["secure_boot_off"])));
    assert!(p["summary"].as_str().is_some_and(|s| s.contains("Secure Boot off")), "{p}");
}

#[tokio::test]
async fn only_it_staff_get_in_and_sessions_do_not_cross_roles() {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    let consultant = h.add_staff("dr.lee", "consultant", None);
    let nurse = h.add_staff("nurse.a", "nurse", Some("HMP Alpha"));
    let it = h.add_staff("it.sam", "it", None);

    for (user, secret) in [("dr.lee", &consultant), ("nurse.a", &nurse)] {
        let (status, body) = h.sign_in("/admin/login", user, secret).await.expect_err("not IT");
        assert_eq!((status, body["error"].as_str()), (StatusCode::FORBIDDEN, Some("refused")), "{user}");
        assert_eq!(
            h.audit().last().cloned(),
            Some(("admin_login".into(), "refused".into(), Some("wrong_role".into())))
        );
    }
    let (status, _) = h.sign_in("/consult/login", "it.sam", &it).await.expect_err("IT is not a consultant");
    assert_eq!(status, StatusCode::FORBIDDEN);

    // A consultant's live session, presented as an admin cookie, is not an IT session.
    let consult = h.sign_in("/consult/login", "dr.lee", &consultant).await.expect("consultant");
    let forged = consult.replacen("__Host-sc_session=", "__Host-sc_admin=", 1);
    for cookie in [None, Some(consult.as_str()), Some(forged.as_str())] {
        let (status, _, _) = h.call("GET", "/v1/admin/devices", cookie, None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{cookie:?}");
    }
    // And the other way round.
    let admin = h.sign_in("/admin/login", "it.sam", &it).await.expect("IT");
    let forged = admin.replacen("__Host-sc_admin=", "__Host-sc_session=", 1);
    for cookie in [admin.as_str(), forged.as_str()] {
        let (status, _, _) = h.call("GET", "/v1/consult/appointments", Some(cookie), None).await;
        assert_eq!(status, StatusCode::UNAUTHORIZED, "{cookie}");
    }
    // A wrong password is refused like anywhere else.
    let form = json!({ "username": "it.sam", "password": format!("{PASSWORD}!"), "code": h.code(&it) });
    let (status, cookie, _) = h.call("POST", "/admin/login", None, Some(form)).await;
    assert_eq!((status, cookie), (StatusCode::FORBIDDEN, None));
    // Signing out ends the session.
    let (status, _, _) = h.call("POST", "/admin/logout", Some(&admin), None).await;
    assert_eq!(status, StatusCode::OK);
    let (status, _, _) = h.call("GET", "/v1/admin/me", Some(&admin), None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
}

#[tokio::test]
async fn a_brick_from_the_page_shreds_at_once_records_who_and_why_and_goes_from_pending_to_wiped() {
    let (h, cookie, laptop) = setup().await;
    let path = format!("/v1/admin/devices/{}/brick", laptop.id());
    let (status, _, body) =
        h.call("POST", &path, Some(&cookie), Some(json!({ "reason": "stolen from the van" }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let command_id = body["command_id"].as_str().expect("command id").to_owned();

    let device = sc_server::db::device(&h.state.db(), &laptop.id()).expect("db").expect("device");
    assert!(device.exchange_secret.is_none(), "the secret is shredded by the page's brick");
    let row = sc_server::audit::tail(&h.state.db(), 1).expect("audit").pop().expect("row");
    assert_eq!((row.event.as_str(), row.staff.as_deref()), ("brick", Some("it.sam")));
    assert!(
        row.detail.as_deref().is_some_and(|d| d.contains("stolen from the van") && d.contains(&command_id)),
        "{row:?}"
    );

    let (_, _, devices) = h.call("GET", "/v1/admin/devices", Some(&cookie), None).await;
    assert_eq!(
        (devices[0]["state"].as_str(), devices[0]["brick"]["state"].as_str()),
        (Some("bricked"), Some("pending"))
    );
    let (_, _, bricks) = h.call("GET", "/v1/admin/bricks", Some(&cookie), None).await;
    assert_eq!(bricks[0]["command_id"].as_str(), Some(command_id.as_str()));
    assert_eq!(
        (bricks[0]["by"].as_str(), bricks[0]["reason"].as_str(), bricks[0]["state"].as_str()),
        (Some("it.sam"), Some("stolen from the van"), Some("pending"))
    );

    // A second brick of the same laptop is the same command.
    let (_, _, again) = h.call("POST", &path, Some(&cookie), Some(json!({ "reason": "again" }))).await;
    assert_eq!(again["command_id"].as_str(), Some(command_id.as_str()));

    // The laptop's verified receipt (the path is tested in brick.rs) turns the brick to wiped.
    assert!(sc_server::db::record_receipt(&h.state.db(), &laptop.id(), &command_id, b"receipt", h.now()).expect("db"));
    let (_, _, devices) = h.call("GET", "/v1/admin/devices", Some(&cookie), None).await;
    assert_eq!((devices[0]["state"].as_str(), devices[0]["brick"]["state"].as_str()), (Some("wiped"), Some("wiped")));
    assert_eq!(devices[0]["brick"]["wiped_at"].as_i64(), Some(h.now()));
}

#[tokio::test]
async fn a_brick_without_a_reason_or_session_or_for_no_such_laptop_is_refused_and_bricks_nothing() {
    let (h, cookie, laptop) = setup().await;
    let path = format!("/v1/admin/devices/{}/brick", laptop.id());
    let cases = [
        (
            Some(cookie.as_str()),
            path.as_str(),
            json!({ "reason": "  " }),
            StatusCode::BAD_REQUEST,
            "give a reason for the audit log",
        ),
        (
            Some(cookie.as_str()),
            path.as_str(),
            json!({ "reason": "x".repeat(501) }),
            StatusCode::BAD_REQUEST,
            "keep the reason under 500 characters",
        ),
        (
            Some(cookie.as_str()),
            "/v1/admin/devices/not-a-device/brick",
            json!({ "reason": "lost" }),
            StatusCode::BAD_REQUEST,
            "not a device id",
        ),
        (None, path.as_str(), json!({ "reason": "lost" }), StatusCode::UNAUTHORIZED, "sign in first"),
    ];
    for (cookie, path, form, expected, message) in cases {
        let (status, _, body) = h.call("POST", path, cookie, Some(form)).await;
        assert_eq!((status, body["message"].as_str()), (expected, Some(message)), "{path}");
    }
    let other = sc_proto::DeviceId::from_random([7; 16]);
    let (status, _, body) = h
        .call("POST", &format!("/v1/admin/devices/{other}/brick"), Some(&cookie), Some(json!({ "reason": "lost" })))
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "{body}");
    assert!(sc_server::db::bricks(&h.state.db()).expect("db").is_empty());
    let device = sc_server::db::device(&h.state.db(), &laptop.id()).expect("db").expect("device");
    assert!(device.exchange_secret.is_some(), "nothing was shredded");
}

#[tokio::test]
async fn the_audit_view_checks_the_chain_and_names_an_edited_row() {
    let (h, cookie, _) = setup().await;
    let (status, _, view) = h.call("GET", "/v1/admin/audit?limit=2", Some(&cookie), None).await;
    assert_eq!(status, StatusCode::OK, "{view}");
    let total = sc_server::audit::tail(&h.state.db(), 1000).expect("audit").len();
    assert_eq!((view["chain"]["state"].as_str(), view["chain"]["rows"].as_u64()), (Some("intact"), Some(total as u64)));
    assert_eq!(view["chain"]["head"].as_str().map(str::len), Some(64));
    let rows = view["rows"].as_array().expect("rows");
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[1]["event"], "admin_login", "newest last: the sign-in itself");

    h.state.db().execute("UPDATE audit SET detail = 'nothing happened' WHERE id = 2", []).expect("tamper");
    // A refresh checks only what was added since; the whole chain is checked again every
    // FULL_CHECK_SECS (issue #13: no re-hash of the whole chain under the lock each refresh).
    let (_, _, view) = h.call("GET", "/v1/admin/audit", Some(&cookie), None).await;
    assert_eq!(view["chain"]["state"], "intact", "{}", view["chain"]);
    h.advance(sc_server::admin_web::FULL_CHECK_SECS);
    let (_, _, view) = h.call("GET", "/v1/admin/audit", Some(&cookie), None).await;
    assert_eq!(
        (view["chain"]["state"].as_str(), view["chain"]["id"].as_i64()),
        (Some("broken"), Some(2)),
        "{}",
        view["chain"]
    );

    let (status, _, body) = h.call("GET", "/v1/admin/audit?limit=0", Some(&cookie), None).await;
    assert_eq!((status, body["message"].as_str()), (StatusCode::BAD_REQUEST, Some("limit is 1 to 1000")));
}

#[tokio::test]
async fn issue_13_a_refresh_of_the_audit_page_reads_only_the_new_rows() {
    let (h, cookie, _) = setup().await;
    let (_, _, first) = h.call("GET", "/v1/admin/audit", Some(&cookie), None).await;
    let before = first["chain"]["rows"].as_u64().expect("rows");
    let verified = h.state.audit_verified.lock().expect("lock").clone().expect("verified").0;
    // New rows: a prison added, and three tries with made-up names (counted, then one row).
    h.add_prison("HMP Beta");
    let junk = serde_json::to_vec(&serde_json::json!({"username": "x", "password": "p", "code": "1"})).expect("json");
    for _ in 0..3 {
        h.post("/admin/login", junk.clone()).await;
    }
    h.state.tally.flush(&h.state.db(), h.now()).expect("flush");
    let (checked, walked) = sc_server::audit::verify_from(&h.state.db(), Some(&verified)).expect("db").expect("intact");
    assert_eq!(walked, checked.rows - before, "only the rows added since were read");
    assert_eq!(walked, 2, "{walked} of {}", checked.rows);
    let (_, _, view) = h.call("GET", "/v1/admin/audit", Some(&cookie), None).await;
    assert_eq!(view["chain"]["rows"].as_u64(), Some(checked.rows));
    // Truncating the newest verified rows is seen at the next refresh.
    h.state.db().execute("DELETE FROM audit WHERE id >= ?1", [checked.last_id - 1]).expect("truncate");
    let (_, _, view) = h.call("GET", "/v1/admin/audit", Some(&cookie), None).await;
    assert_eq!(view["chain"]["state"], "broken", "{}", view["chain"]);
}

#[tokio::test]
async fn the_page_is_served_with_a_strict_content_security_policy() {
    let h = Harness::new();
    for path in [
        "/admin/",
        "/admin/admin.js",
        "/admin/common.js",
        "/admin/style.css",
        "/consult/common.js",
        "/consult/share.js",
    ] {
        let req = axum::http::Request::get(path).body(axum::body::Body::empty()).expect("request");
        let resp = tower::ServiceExt::oneshot(sc_server::app(h.state.clone()), req).await.expect("infallible");
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        let csp = resp.headers().get("content-security-policy").expect("csp").to_str().expect("ascii");
        assert!(csp.contains("default-src 'none'") && csp.contains("script-src 'self'"), "{csp}");
    }
}

//! Issue #13, fix 5: a laptop's session ends everywhere at once (its signalling connection is
//! registered and closed; the end-to-end tests close real sockets), staff cookies are `__Host-`,
//! and every answer carries HSTS, `no-store` and `nosniff`.

use crate::support::{Harness, PASSWORD};
use axum::body::Body;
use axum::http::{Request, StatusCode};
use sc_server::sessions::Ended;

#[tokio::test]
async fn issue_13_ending_locking_bricking_or_expiring_a_session_closes_its_connections() {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    let secret = h.add_staff("nurse.a", "nurse", Some("HMP Alpha"));
    let it = h.add_staff("it.sam", "it", None);
    let laptop = h.enrol("HMP Alpha").await;
    let token = |h: &Harness| {
        let (body, _) = laptop.activation("nurse.a", PASSWORD, &h.code(&secret), h.now());
        h.advance(30);
        body
    };
    let session = |reply: serde_json::Value| {
        let s: sc_proto::ActivateResponse = serde_json::from_value(reply).expect("activation");
        s.session.0.to_vec()
    };
    let sessions = h.state.sessions.clone();

    // The laptop locks: its end-session call closes its connection.
    let (_, reply) = h.post("/v1/activate", token(&h)).await;
    let t = session(reply);
    let closed = sessions.register(1, laptop.id(), sc_server::db::token_hash(&t));
    let bearer = format!("Bearer {}", base64_url(&t));
    let req = Request::post("/v1/kiosk/end-session").header("authorization", bearer).body(Body::empty()).expect("req");
    let resp = tower::ServiceExt::oneshot(sc_server::app(h.state.clone()), req).await.expect("infallible");
    assert_eq!(resp.status(), StatusCode::OK);
    assert_eq!(closed.await.ok(), Some(Ended::Locked));

    // IT bricks it from the admin page: closed at once.
    let (_, reply) = h.post("/v1/activate", token(&h)).await;
    let closed = sessions.register(2, laptop.id(), sc_server::db::token_hash(&session(reply)));
    let cookie = h.sign_in("/admin/login", "it.sam", &it).await.expect("IT signs in");
    let path = format!("/v1/admin/devices/{}/brick", laptop.id());
    let (status, _, body) = h.call("POST", &path, Some(&cookie), Some(serde_json::json!({ "reason": "stolen" }))).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(closed.await.ok(), Some(Ended::Revoked));
    assert_eq!(sessions.live(), 0);
}

#[tokio::test]
async fn issue_13_the_sweep_closes_sessions_that_ended_elsewhere() {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    let secret = h.add_staff("nurse.a", "nurse", Some("HMP Alpha"));
    let laptop = h.enrol("HMP Alpha").await;
    let (body, _) = laptop.activation("nurse.a", PASSWORD, &h.code(&secret), h.now());
    let (_, reply) = h.post("/v1/activate", body).await;
    let s: sc_proto::ActivateResponse = serde_json::from_value(reply).expect("activation");
    let mut closed = h.state.sessions.register(7, laptop.id(), sc_server::db::token_hash(&s.session.0));
    assert_eq!(h.state.sessions.sweep(&h.state.db(), h.now()).expect("sweep"), 0, "a live session stays");
    assert!(closed.try_recv().is_err());
    // The lease runs out (nothing else happens): the next sweep closes it.
    h.advance(i64::try_from(h.state.config.policy.lease_secs).expect("lease") + 1);
    assert_eq!(h.state.sessions.sweep(&h.state.db(), h.now()).expect("sweep"), 1);
    assert_eq!(closed.await.ok(), Some(Ended::Locked));
    // A brick from the CLI (another process: only the database changes) is found the same way.
    let (body, _) = laptop.activation("nurse.a", PASSWORD, &h.code(&secret), h.now());
    let (_, reply) = h.post("/v1/activate", body).await;
    let s: sc_proto::ActivateResponse = serde_json::from_value(reply).expect("activation");
    let closed = h.state.sessions.register(8, laptop.id(), sc_server::db::token_hash(&s.session.0));
    sc_server::admin::brick_device(&h.state.db(), &laptop.id(), "stolen", "it.cli", h.now()).expect("brick");
    assert_eq!(h.state.sessions.sweep(&h.state.db(), h.now()).expect("sweep"), 1);
    assert!(closed.await.is_ok());
}

fn base64_url(bytes: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

#[tokio::test]
async fn issue_13_staff_cookies_are_host_only_and_every_answer_forbids_caching() {
    let h = Harness::new();
    let it = h.add_staff("it.sam", "it", None);
    let dr = h.add_staff("dr.b", "consultant", None);
    for (path, user, secret) in [("/admin/login", "it.sam", &it), ("/consult/login", "dr.b", &dr)] {
        let form = serde_json::json!({ "username": user, "password": PASSWORD, "code": h.code(secret) });
        let (status, set_cookie, _) = h.call("POST", path, None, Some(form)).await;
        h.advance(30);
        assert_eq!(status, StatusCode::OK);
        let set_cookie = set_cookie.expect("a cookie");
        assert!(
            set_cookie.starts_with("__Host-")
                && set_cookie.contains("; Path=/;")
                && set_cookie.contains("Secure")
                && !set_cookie.contains("Domain"),
            "{set_cookie}"
        );
    }
    // Pages, assets, APIs, refusals and unknown paths alike.
    for (method, path) in [
        ("GET", "/admin/"),
        ("GET", "/consult/app.js"),
        ("GET", "/v1/health"),
        ("GET", "/v1/consult/appointments"),
        ("GET", "/v1/admin/audit"),
        ("POST", "/consult/login"),
        ("GET", "/no/such/page"),
    ] {
        let req = Request::builder().method(method).uri(path).header("content-type", "application/json");
        let resp =
            tower::ServiceExt::oneshot(sc_server::app(h.state.clone()), req.body(Body::from("{}")).expect("req"))
                .await
                .expect("infallible");
        let header = |name: &str| resp.headers().get(name).map(|v| v.to_str().expect("ascii").to_owned());
        assert_eq!(header("strict-transport-security").as_deref(), Some("max-age=31536000"), "{method} {path}");
        assert_eq!(header("cache-control").as_deref(), Some("no-store"), "{method} {path}");
        assert_eq!(header("x-content-type-options").as_deref(), Some("nosniff"), "{method} {path}");
    }
}

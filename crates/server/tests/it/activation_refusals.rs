//! Every activation refusal: the laptop hears only "refused"; the audit log records the reason.

use crate::support::{refused, Harness, Laptop, PASSWORD};
use axum::http::StatusCode;
use sc_proto::ActivateResponse;

struct World {
    h: Harness,
    laptop: Laptop,
    secret: String,
}

async fn world() -> World {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    h.add_prison("HMP Beta");
    let secret = h.add_staff("nurse.a", "nurse", Some("HMP Alpha"));
    let laptop = h.enrol("HMP Alpha").await;
    World { h, laptop, secret }
}

/// Refused with a plain answer, and the reason recorded: in the audit log, or, for what the
/// device's key did not sign for, in the refusal counts (issue #13).
async fn expect_refused(w: &World, body: Vec<u8>, reason: &str) {
    let (rows, counted) = (w.h.audit().len(), w.h.state.tally.pending("activate", reason));
    let (status, reply) = w.h.post("/v1/activate", body).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{reason}: {reply}");
    assert_eq!(reply, refused(), "{reason}: the laptop learns nothing more");
    if ["unknown_device", "bad_signature", "replayed_nonce", "stale_time"].contains(&reason) {
        assert_eq!(w.h.state.tally.pending("activate", reason), counted + 1, "{reason} counted");
        assert_eq!(w.h.audit().len(), rows, "{reason}: no row of its own");
    } else {
        assert_eq!(w.h.last_reason().as_deref(), Some(reason));
        assert_eq!(w.h.audit().last().map(|r| r.1.clone()).as_deref(), Some("refused"));
    }
}

#[tokio::test]
async fn valid_request_releases_the_provisioned_key() {
    let w = world().await;
    let (body, blinding) = w.laptop.activation("nurse.a", PASSWORD, &w.h.code(&w.secret), w.h.now());
    let (status, reply) = w.h.post("/v1/activate", body).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    let reply: ActivateResponse = serde_json::from_value(reply).expect("reply");
    let key = blinding.unblind(&reply.evaluated.0, &w.laptop.exchange_public).expect("unblind");
    assert_eq!(*key, w.laptop.shared_key);
    assert_eq!(
        w.h.audit().last().map(|r| (r.0.as_str().to_owned(), r.1.clone())),
        Some(("activate".into(), "ok".into()))
    );
}

#[tokio::test]
async fn bad_password_is_refused() {
    let w = world().await;
    let (body, _) = w.laptop.activation("nurse.a", "wrong password!!", &w.h.code(&w.secret), w.h.now());
    expect_refused(&w, body, "bad_password").await;
}

#[tokio::test]
async fn bad_code_is_refused() {
    let w = world().await;
    let good = w.h.code(&w.secret);
    let bad = if good == "000000" { "111111" } else { "000000" };
    let (body, _) = w.laptop.activation("nurse.a", PASSWORD, bad, w.h.now());
    expect_refused(&w, body, "bad_code").await;
}

#[tokio::test]
async fn reused_code_is_refused() {
    let w = world().await;
    let code = w.h.code(&w.secret);
    let (body, _) = w.laptop.activation("nurse.a", PASSWORD, &code, w.h.now());
    assert_eq!(w.h.post("/v1/activate", body).await.0, StatusCode::OK);
    let (body, _) = w.laptop.activation("nurse.a", PASSWORD, &code, w.h.now());
    expect_refused(&w, body, "reused_code").await;
}

#[tokio::test]
async fn staff_of_another_prison_is_refused() {
    let w = world().await;
    let other = w.h.add_staff("nurse.b", "nurse", Some("HMP Beta"));
    let (body, _) = w.laptop.activation("nurse.b", PASSWORD, &w.h.code(&other), w.h.now());
    expect_refused(&w, body, "other_prison").await;
}

#[tokio::test]
async fn a_consultant_cannot_unlock_a_laptop() {
    let w = world().await;
    let consultant = w.h.add_staff("dr.c", "consultant", None);
    let (body, _) = w.laptop.activation("dr.c", PASSWORD, &w.h.code(&consultant), w.h.now());
    expect_refused(&w, body, "wrong_role").await;
}

#[tokio::test]
async fn revoked_device_is_refused() {
    let w = world().await;
    // Revoked without a brick command (the dead-man path): plainly refused.
    sc_server::db::shred_device(&w.h.state.db(), &w.laptop.id(), "dead-man timer", w.h.now()).expect("shred");
    let (body, _) = w.laptop.activation("nurse.a", PASSWORD, &w.h.code(&w.secret), w.h.now());
    expect_refused(&w, body, "revoked_device").await;
}

#[tokio::test]
async fn unknown_device_is_refused() {
    let w = world().await;
    let mut stranger = Laptop::new_key();
    stranger.id = Some(sc_proto::DeviceId::from_random([7; 16]));
    stranger.client_public = w.laptop.client_public;
    let (body, _) = stranger.activation("nurse.a", PASSWORD, &w.h.code(&w.secret), w.h.now());
    expect_refused(&w, body, "unknown_device").await;
}

#[tokio::test]
async fn bad_signature_is_refused() {
    let w = world().await;
    let mut forger = Laptop::new_key();
    forger.id = w.laptop.id.clone();
    forger.client_public = w.laptop.client_public;
    let (body, _) = forger.activation("nurse.a", PASSWORD, &w.h.code(&w.secret), w.h.now());
    expect_refused(&w, body, "bad_signature").await;
}

#[tokio::test]
async fn replayed_nonce_is_refused() {
    let w = world().await;
    let (body, _) = w.laptop.activation("nurse.a", PASSWORD, &w.h.code(&w.secret), w.h.now());
    assert_eq!(w.h.post("/v1/activate", body.clone()).await.0, StatusCode::OK);
    expect_refused(&w, body, "replayed_nonce").await;
}

#[tokio::test]
async fn stale_time_is_refused() {
    let w = world().await;
    let (body, _) = w.laptop.activation("nurse.a", PASSWORD, &w.h.code(&w.secret), w.h.now() - 600);
    expect_refused(&w, body, "stale_time").await;
    let (body, _) = w.laptop.activation("nurse.a", PASSWORD, &w.h.code(&w.secret), w.h.now() + 600);
    expect_refused(&w, body, "stale_time").await;
}

#[tokio::test]
async fn unknown_staff_is_refused() {
    let w = world().await;
    let (body, _) = w.laptop.activation("nobody", PASSWORD, "123456", w.h.now());
    expect_refused(&w, body, "unknown_staff").await;
}

#[tokio::test]
async fn garbled_requests_get_a_clear_400() {
    let w = world().await;
    for body in [b"not json".to_vec(), br#"{"payload":"!!","signature":"x"}"#.to_vec()] {
        let (status, reply) = w.h.post("/v1/activate", body).await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(reply["error"], "bad_request");
        assert!(reply["message"].as_str().is_some_and(|m| m.contains("signed request")), "{reply}");
    }
}

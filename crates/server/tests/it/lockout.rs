//! Five failures lock an account or a device out, with doubling back-off.

use crate::support::{Harness, PASSWORD};
use axum::http::StatusCode;

#[tokio::test]
async fn sixth_attempt_after_five_failures_is_locked_out() {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    let secret = h.add_staff("nurse.a", "nurse", Some("HMP Alpha"));
    let laptop = h.enrol("HMP Alpha").await;
    for i in 1..=5 {
        let (body, _) = laptop.activation("nurse.a", "wrong password!!", &h.code(&secret), h.now());
        let (status, _) = h.post("/v1/activate", body).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "failure {i} is a plain refusal");
    }
    // Even the right credentials are not checked while locked out.
    let (body, _) = laptop.activation("nurse.a", PASSWORD, &h.code(&secret), h.now());
    let (status, reply) = h.post("/v1/activate", body).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(reply, serde_json::json!({ "error": "locked_out", "retry_after_secs": 300 }));
    let reason = h.last_reason();
    assert!(matches!(reason.as_deref(), Some("staff_locked_out" | "device_locked_out")), "{reason:?}");

    // After the lock-out, the right credentials work again.
    h.advance(301);
    let (body, _) = laptop.activation("nurse.a", PASSWORD, &h.code(&secret), h.now());
    assert_eq!(h.post("/v1/activate", body).await.0, StatusCode::OK);
}

#[tokio::test]
async fn repeated_lockouts_back_off() {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    h.add_staff("nurse.a", "nurse", Some("HMP Alpha"));
    let laptop = h.enrol("HMP Alpha").await;
    let mut lengths = Vec::new();
    for _round in 0..2 {
        for _ in 0..5 {
            let (body, _) = laptop.activation("nurse.a", "wrong password!!", "000000", h.now());
            h.post("/v1/activate", body).await;
        }
        let (body, _) = laptop.activation("nurse.a", "wrong password!!", "000000", h.now());
        let (status, reply) = h.post("/v1/activate", body).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
        let secs = reply["retry_after_secs"].as_i64().expect("retry");
        lengths.push(secs);
        h.advance(secs + 1);
    }
    assert_eq!(lengths, vec![300, 600]);
}

#[tokio::test]
async fn a_device_trying_many_names_is_locked_out() {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    let laptop = h.enrol("HMP Alpha").await;
    for i in 0..5 {
        let (body, _) = laptop.activation(&format!("guess{i}"), "whatever password", "000000", h.now());
        assert_eq!(h.post("/v1/activate", body).await.0, StatusCode::FORBIDDEN);
    }
    let (body, _) = laptop.activation("guess9", "whatever password", "000000", h.now());
    assert_eq!(h.post("/v1/activate", body).await.0, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(h.last_reason().as_deref(), Some("device_locked_out"));
}

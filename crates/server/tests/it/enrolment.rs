//! Enrolment tokens are one-time, expiring and prison-scoped; the device proves its key.

use crate::support::{refused, Harness, Laptop};
use axum::http::StatusCode;

#[tokio::test]
async fn a_token_enrols_one_device_into_its_prison() {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    h.add_prison("HMP Beta");
    let token = h.token("HMP Beta");
    let (status, reply) = h.post("/v1/enrol", Laptop::new_key().enrol_request(&token)).await;
    assert_eq!(status, StatusCode::OK, "{reply}");
    assert_eq!(reply["prison"]["name"], "HMP Beta");
    assert_eq!(reply["command_public_key"], sc_proto::Bytes(h.state.command_public).to_string());

    let (status, reply) = h.post("/v1/enrol", Laptop::new_key().enrol_request(&token)).await;
    assert_eq!((status, reply), (StatusCode::FORBIDDEN, refused()));
    assert_eq!(h.state.tally.pending("enrol", "token_used"), 1);
    assert_eq!(sc_server::admin::list_devices(&h.state.db()).expect("list").len(), 1);
}

#[tokio::test]
async fn expired_and_unknown_tokens_are_refused() {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    let token = h.token("HMP Alpha");
    h.advance(3601);
    let (status, _) = h.post("/v1/enrol", Laptop::new_key().enrol_request(&token)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(h.state.tally.pending("enrol", "token_expired"), 1);

    let (status, _) = h.post("/v1/enrol", Laptop::new_key().enrol_request("AAAAAAAAAAAAAAAAAAAAAAAA")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(h.state.tally.pending("enrol", "token_unknown"), 1);
}

#[tokio::test]
async fn enrolment_must_be_signed_by_the_key_it_registers() {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    let token = h.token("HMP Alpha");
    let mut body: serde_json::Value = serde_json::from_slice(&Laptop::new_key().enrol_request(&token)).expect("json");
    body["signature"] = serde_json::Value::String(sc_proto::Bytes([1u8; 64]).to_string());
    let (status, _) = h.post("/v1/enrol", serde_json::to_vec(&body).expect("json")).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    assert_eq!(h.state.tally.pending("enrol", "bad_signature"), 1);
    // The token was not consumed by the forged attempt.
    let (status, _) = h.post("/v1/enrol", Laptop::new_key().enrol_request(&token)).await;
    assert_eq!(status, StatusCode::OK);
}

//! Issue #13, fix 2 and 7: what a request nobody authenticated can cost the server. Its refusal is
//! counted, not written with its text; bodies are capped per route; stored fields are capped;
//! time arithmetic on a signed timestamp cannot panic.

use crate::support::{Harness, Laptop, PASSWORD};
use axum::http::StatusCode;
use sc_proto::brick::{HelloPayload, SIG_CONTEXT_HELLO};
use sc_proto::Bytes;

#[tokio::test]
async fn issue_13_a_flood_from_unknown_devices_is_one_counted_row_without_its_text() {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    let secret = h.add_staff("nurse.a", "nurse", Some("HMP Alpha"));
    let laptop = h.enrol("HMP Alpha").await;
    let rows = h.audit().len();
    let attacker_text = "DROP-TABLE-".repeat(350);
    for i in 0..300u16 {
        let mut stranger = Laptop::new_key();
        let mut id = [0u8; 16];
        id[..2].copy_from_slice(&i.to_le_bytes());
        stranger.id = Some(sc_proto::DeviceId::from_random(id));
        stranger.client_public = laptop.client_public;
        let (body, _) = stranger.activation(&attacker_text, "password!!", "000000", h.now());
        assert_eq!(h.post("/v1/activate", body).await.0, StatusCode::FORBIDDEN);
    }
    assert_eq!(h.audit().len(), rows, "nothing written per request");
    assert_eq!(h.state.tally.pending("activate", "unknown_device"), 300);
    // A minute on, the next refusal writes the counts out as one row.
    h.advance(sc_server::tally::FLUSH_SECS);
    let (body, _) = laptop.activation("nurse.a", "wrong password!!", &h.code(&secret), h.now());
    h.post("/v1/activate", body).await;
    let mut stranger = Laptop::new_key();
    stranger.id = Some(sc_proto::DeviceId::from_random([0xee; 16]));
    stranger.client_public = laptop.client_public;
    let (body, _) = stranger.activation("x", PASSWORD, "000000", h.now());
    h.post("/v1/activate", body).await;
    let new: Vec<_> = h.audit_rows().into_iter().skip(rows).collect();
    assert_eq!(new.len(), 2, "the wrong password, and the counts: {new:?}");
    assert_eq!(new[1].event, "anonymous_refusals");
    assert_eq!(new[1].detail.as_deref(), Some("activate/unknown_device=301"));
    let stored = serde_json::to_string(&h.audit_rows()).expect("json");
    assert!(!stored.contains("DROP-TABLE"), "the attacker's text is nowhere in the log");
}

#[tokio::test]
async fn issue_13_request_bodies_are_capped_per_route() {
    let h = Harness::new();
    let body = |n: usize| format!("{{\"x\":\"{}\"}}", "a".repeat(n)).into_bytes();
    for path in ["/v1/activate", "/consult/login", "/admin/login"] {
        assert_eq!(h.post(path, body(9 * 1024)).await.0, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
    for path in ["/v1/enrol", "/v1/device/poll", "/v1/device/receipt"] {
        assert_eq!(h.post(path, body(9 * 1024)).await.0, StatusCode::BAD_REQUEST, "{path}: read, then refused");
        assert_eq!(h.post(path, body(17 * 1024)).await.0, StatusCode::PAYLOAD_TOO_LARGE, "{path}");
    }
}

#[test]
fn issue_13_stored_text_is_capped() {
    let h = Harness::new();
    let entry = sc_server::audit::Entry {
        event: "test",
        outcome: "ok",
        staff: Some(&"n".repeat(10_000)),
        detail: Some("é".repeat(100_000)),
        ..Default::default()
    };
    sc_server::audit::record(&h.state.db(), h.now(), &entry).expect("record");
    let row = h.audit_rows().pop().expect("row");
    assert_eq!(row.staff.map(|s| s.chars().count()), Some(sc_server::audit::MAX_NAME + 3));
    assert_eq!(row.detail.map(|s| s.chars().count()), Some(sc_server::audit::MAX_DETAIL + 3));
    assert!(sc_server::audit::verify(&h.state.db()).expect("db").is_ok(), "the capped row chains");
}

#[tokio::test]
async fn issue_13_a_signed_timestamp_at_either_end_of_i64_is_stale_not_a_panic() {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    let secret = h.add_staff("nurse.a", "nurse", Some("HMP Alpha"));
    let laptop = h.enrol("HMP Alpha").await;
    for t in [i64::MIN, i64::MAX] {
        let (body, _) = laptop.activation("nurse.a", PASSWORD, &h.code(&secret), t);
        assert_eq!(h.post("/v1/activate", body).await.0, StatusCode::FORBIDDEN, "activation at {t}");
        let hello = HelloPayload { version: 1, device_id: laptop.id(), timestamp: t, challenge: Bytes([1; 16]) };
        let signed = laptop.sign(SIG_CONTEXT_HELLO, serde_json::to_vec(&hello).expect("json"));
        let (status, reply) = h.post("/v1/device/poll", serde_json::to_vec(&signed).expect("json")).await;
        assert_eq!((status, reply["type"].as_str()), (StatusCode::OK, Some("refused")), "hello at {t}: {reply}");
    }
    assert_eq!(h.state.tally.pending("activate", "stale_time"), 2);
    assert_eq!(h.state.tally.pending("hello", "stale_time"), 2);
}

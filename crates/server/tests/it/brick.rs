//! Bricking, server side: the secret goes at once, the signed command answers polls, channel
//! hellos and activations (bound to the laptop's challenge), and a receipt signed with the device
//! key closes the brick. Forged, foreign or stale requests get nothing.

use crate::support::{Harness, Laptop, PASSWORD};
use axum::http::StatusCode;
use ring::signature::{UnparsedPublicKey, ED25519};
use sc_proto::brick::{
    BrickCommand, ChannelDown, HelloPayload, ReceiptPayload, WipeCause, SIG_CONTEXT_BRICK, SIG_CONTEXT_HELLO,
    SIG_CONTEXT_RECEIPT,
};
use sc_proto::{Bytes, Signed};

async fn setup() -> (Harness, Laptop, String) {
    let h = Harness::new();
    h.add_prison("HMP Alpha");
    let secret = h.add_staff("nurse.a", "nurse", Some("HMP Alpha"));
    let laptop = h.enrol("HMP Alpha").await;
    (h, laptop, secret)
}

fn hello(laptop: &Laptop, timestamp: i64, challenge: [u8; 16]) -> Vec<u8> {
    let payload = HelloPayload { version: 1, device_id: laptop.id(), timestamp, challenge: Bytes(challenge) };
    serde_json::to_vec(&laptop.sign(SIG_CONTEXT_HELLO, serde_json::to_vec(&payload).expect("json"))).expect("json")
}

/// Checks the command's signature under the server's command key and returns it.
fn open_command(h: &Harness, signed: &Signed) -> BrickCommand {
    let message = sc_proto::signing_input(SIG_CONTEXT_BRICK, &signed.payload.0);
    UnparsedPublicKey::new(&ED25519, &h.state.command_public)
        .verify(&message, &signed.signature.0)
        .expect("signed by the command key");
    serde_json::from_slice(&signed.payload.0).expect("command")
}

async fn poll(h: &Harness, body: Vec<u8>) -> (StatusCode, ChannelDown) {
    let (status, reply) = h.post("/v1/device/poll", body).await;
    (status, serde_json::from_value(reply.clone()).unwrap_or_else(|e| panic!("{e}: {reply}")))
}

#[tokio::test]
async fn a_brick_answers_polls_and_activations_with_a_signed_bound_command() {
    let (h, laptop, secret) = setup().await;
    let (status, down) = poll(&h, hello(&laptop, h.now(), [1; 16])).await;
    assert_eq!((status, down), (StatusCode::OK, ChannelDown::Ok { server_time: h.now() }));

    let id = sc_server::admin::brick_device(&h.state.db(), &laptop.id(), "stolen from car", "it.sam", h.now())
        .expect("brick");
    assert_eq!(
        sc_server::admin::brick_device(&h.state.db(), &laptop.id(), "again", "it.sam", h.now()).expect("twice"),
        id
    );
    let device = sc_server::db::device(&h.state.db(), &laptop.id()).expect("db").expect("device");
    assert!(device.exchange_secret.is_none(), "the secret is gone at once");

    let (_, down) = poll(&h, hello(&laptop, h.now(), [2; 16])).await;
    let ChannelDown::Brick { command } = down else { panic!("expected a brick, got {down:?}") };
    let c = open_command(&h, &command);
    assert_eq!(
        (c.command_id.as_str(), &c.device_id, c.challenge.0, c.issued_at),
        (id.as_str(), &laptop.id(), [2; 16], h.now())
    );

    // Valid staff credentials cannot activate; the answer is the command, bound to the request's nonce.
    let (body, _) = laptop.activation("nurse.a", PASSWORD, &h.code(&secret), h.now());
    let nonce: [u8; 16] = {
        let signed: Signed = serde_json::from_slice(&body).expect("signed");
        let p: sc_proto::ActivatePayload = serde_json::from_slice(&signed.payload.0).expect("payload");
        p.nonce.0
    };
    let (status, reply) = h.post("/v1/activate", body).await;
    assert_eq!(status, StatusCode::GONE, "{reply}");
    let refusal: sc_proto::Refusal = serde_json::from_value(reply).expect("refusal");
    let sc_proto::Refusal::Bricked { command } = refusal else { panic!("{refusal:?}") };
    assert_eq!(open_command(&h, &command).challenge.0, nonce);
    assert_eq!(h.last_reason().as_deref(), Some("revoked_device"));
    let states: Vec<_> =
        sc_server::admin::list_devices(&h.state.db()).expect("list").into_iter().map(|d| d.state).collect();
    assert_eq!(states, vec!["bricked"]);
}

#[tokio::test]
async fn forged_hellos_get_nothing_and_stale_ones_only_a_refusal() {
    let (h, laptop, _) = setup().await;
    let (_, down) = poll(&h, hello(&laptop, h.now() - 3600, [3; 16])).await;
    assert!(matches!(down, ChannelDown::Refused { .. }), "a laptop in good standing an hour out: {down:?}");
    sc_server::admin::brick_device(&h.state.db(), &laptop.id(), "stolen", "it.sam", h.now()).expect("brick");
    let mut impostor = Laptop::new_key();
    impostor.id = laptop.id.clone();
    let (_, down) = poll(&h, hello(&impostor, h.now(), [3; 16])).await;
    assert!(matches!(down, ChannelDown::Refused { .. }), "{down:?}");
    let (status, _) = h.post("/v1/device/poll", b"{not json".to_vec()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
}

/// Issue #14: a skewed laptop's hello was refused ("the clock is wrong") before the server looked
/// for a brick, so a stolen laptop with its clock set two hours out was never wiped.
#[tokio::test]
async fn issue_14_a_bricked_laptop_two_hours_fast_or_slow_gets_its_brick() {
    let (h, laptop, _) = setup().await;
    let id = sc_server::admin::brick_device(&h.state.db(), &laptop.id(), "stolen", "it.sam", h.now()).expect("brick");
    for (skew, challenge) in [(2 * 3600, [4; 16]), (-2 * 3600, [5; 16])] {
        let (_, down) = poll(&h, hello(&laptop, h.now() + skew, challenge)).await;
        let ChannelDown::Brick { command } = down else { panic!("{skew}: expected a brick, got {down:?}") };
        let c = open_command(&h, &command);
        assert_eq!((c.command_id.as_str(), c.challenge.0), (id.as_str(), challenge), "bound to this hello");
    }
}

#[tokio::test]
async fn a_receipt_signed_by_the_device_closes_the_brick() {
    let (h, laptop, _) = setup().await;
    let id = sc_server::admin::brick_device(&h.state.db(), &laptop.id(), "stolen", "it.sam", h.now()).expect("brick");
    let receipt = |signer: &Laptop, command_id: &str| {
        let payload = ReceiptPayload {
            version: 1,
            device_id: laptop.id(),
            cause: WipeCause::Brick { command_id: command_id.into() },
            wiped_at: h.now(),
        };
        serde_json::to_vec(&signer.sign(SIG_CONTEXT_RECEIPT, serde_json::to_vec(&payload).expect("json")))
            .expect("json")
    };
    let (status, _) = h.post("/v1/device/receipt", receipt(&Laptop::new_key(), &id)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "another key's receipt");
    let (status, _) = h.post("/v1/device/receipt", receipt(&laptop, "0000")).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "a receipt for another brick");
    assert!(sc_server::db::brick_of(&h.state.db(), &laptop.id()).expect("db").expect("brick").wiped_at.is_none());
    let (status, reply) = h.post("/v1/device/receipt", receipt(&laptop, &id)).await;
    assert_eq!((status, reply["state"].as_str()), (StatusCode::OK, Some("wiped")));
    let (status, _) = h.post("/v1/device/receipt", receipt(&laptop, &id)).await;
    assert_eq!(status, StatusCode::OK, "a re-sent receipt is fine");
    assert_eq!(sc_server::admin::list_devices(&h.state.db()).expect("list")[0].state, "wiped");
    assert!(h.audit().iter().any(|(e, o, _)| e == "wipe_receipt" && o == "ok"));
}

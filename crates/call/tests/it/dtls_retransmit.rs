//! Issue #12, point 8: a DTLS flight lost on the way is sent again. rtc-dtls stopped the server's
//! retransmit timer on any handshake record, so when its flight 4 was lost and the browser (whose
//! timer runs shorter, ~2x the round trip) repeated flight 3 first, the kiosk never sent flight 4
//! again and the call sat "connecting" until its 30 s limit (patched in third_party/rtc-dtls).
//! Two sans-I/O endpoints on simulated time, the datagrams between them handed over directly.

use bytes::BytesMut;
use rtc::dtls::config::ConfigBuilder;
use rtc::dtls::crypto::Certificate;
use rtc::dtls::endpoint::{Endpoint, EndpointEvent};
use rtc::shared::TransportProtocol;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The DTLS handshake message types of the server's flight 4 (RFC 6347 4.2.4's flight table).
const FLIGHT_4: [u8; 5] = [2 /* ServerHello */, 11, 12, 13, 14 /* ... ServerHelloDone */];

/// The handshake message type of a datagram's first record, if it is a handshake record.
fn first_handshake_type(datagram: &[u8]) -> Option<u8> {
    // Record header: content type (22 = handshake), version, epoch, sequence, length: 13 bytes.
    (datagram.first() == Some(&22)).then(|| datagram.get(13).copied()).flatten()
}

/// Runs a handshake, dropping the server's first flight 4 if `lose_flight_4`, for at most 30 s
/// of simulated time; returns when each side completed (from the start), or the error that ended
/// it.
fn handshake(lose_flight_4: bool) -> Result<(Duration, Duration), String> {
    let provider = rtc::crypto::default_provider().map_err(|e| e.to_string())?;
    let cert =
        Certificate::generate_self_signed(vec!["kiosk".to_owned()], provider.crypto()).map_err(|e| e.to_string())?;
    let (client_addr, server_addr): (SocketAddr, SocketAddr) =
        ("10.0.0.1:5000".parse().map_err(|_| "addr")?, "10.0.0.2:5000".parse().map_err(|_| "addr")?);
    let server_config = ConfigBuilder::default()
        .with_crypto_provider(provider.clone())
        .with_certificates(vec![cert])
        .build(false, None)
        .map_err(|e| e.to_string())?;
    // The browser's first retransmission comes well before the kiosk's (1 s).
    let client_config = ConfigBuilder::default()
        .with_crypto_provider(provider)
        // Test only: the certificate is this test's own; the handshake's timing is under test.
        .with_insecure_skip_verify(true)
        .with_flight_interval(Duration::from_millis(400))
        .build(true, Some(server_addr))
        .map_err(|e| e.to_string())?;
    let mut client = Endpoint::new(client_addr, TransportProtocol::UDP, None);
    let mut server = Endpoint::new(server_addr, TransportProtocol::UDP, Some(Arc::new(server_config)));

    let start = Instant::now();
    let mut now = start;
    client.connect(now, server_addr, Arc::new(client_config), None).map_err(|e| e.to_string())?;
    let (mut client_done, mut server_done) = (None, None);
    let mut flight_4_lost = !lose_flight_4;
    let complete = |events: Vec<EndpointEvent>| events.iter().any(|e| matches!(e, EndpointEvent::HandshakeComplete));
    while now < start + Duration::from_secs(30) {
        // Hand every queued datagram over, at once, until both sides are quiet.
        loop {
            let mut moved = false;
            while let Some(m) = client.poll_transmit() {
                moved = true;
                let events = server.read(now, client_addr, None, m.message).map_err(|e| format!("server: {e}"))?;
                if complete(events) {
                    server_done.get_or_insert(now - start);
                }
            }
            let mut dropped = false;
            while let Some(m) = server.poll_transmit() {
                moved = true;
                if !flight_4_lost && first_handshake_type(&m.message).is_some_and(|t| FLIGHT_4.contains(&t)) {
                    dropped = true;
                    continue;
                }
                let events = client
                    .read(now, server_addr, None, BytesMut::from(&m.message[..]))
                    .map_err(|e| format!("client: {e}"))?;
                if complete(events) {
                    client_done.get_or_insert(now - start);
                }
            }
            flight_4_lost |= dropped;
            if !moved {
                break;
            }
        }
        if let (Some(c), Some(s)) = (client_done, server_done) {
            return Ok((c, s));
        }
        let next = [client.poll_timeout(&server_addr), server.poll_timeout(&client_addr)].into_iter().flatten().min();
        now = next.map_or(now + Duration::from_millis(100), |t| t.max(now + Duration::from_millis(1)));
        client.handle_timeout(server_addr, now).map_err(|e| format!("client gave up: {e}"))?;
        server.handle_timeout(client_addr, now).map_err(|e| format!("server gave up: {e}"))?;
    }
    Err(format!("no handshake in 30 s (client done {client_done:?}, server done {server_done:?})"))
}

#[test]
fn a_handshake_with_nothing_lost_completes_at_once() {
    let (client, server) = handshake(false).expect("handshake");
    assert!(client.is_zero() && server.is_zero(), "no timer was needed: {client:?} {server:?}");
}

#[test]
fn issue_12_the_server_sends_a_lost_flight_4_again_after_the_client_repeats_flight_3() {
    let (client, server) = handshake(true).expect("the handshake completes after the loss");
    // The server's own retransmission, one interval (1 s) after the lost flight.
    assert!(client <= Duration::from_millis(1500) && server <= Duration::from_millis(1500), "{client:?} {server:?}");
}

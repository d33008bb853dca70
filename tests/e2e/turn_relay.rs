//! TURN credentials reach only the other peer (issue #13, fix 6): coturn, started as the tests, the
//! demo and the README start it, refuses to relay to private, loopback and link-local peers (cloud
//! metadata at 169.254.169.254 included), so a laptop's per-call credentials cannot be used to
//! probe the hospital's own networks. Driven with rtc's sans-IO TURN client over a real socket.

use rtc::sansio::Protocol as _;
use rtc::shared::{TransportContext, TransportMessage, TransportProtocol};
use rtc::turn::client::{Client, ClientConfig, Event};
use sc_e2e::media::Turn;
use std::net::{SocketAddr, UdpSocket};
use std::time::{Duration, Instant};

const SECRET: &str = "turn-relay-test-secret";

/// Runs the client over `socket` until `done` picks an event, for at most 10 s.
fn pump<T>(client: &mut Client, socket: &UdpSocket, mut done: impl FnMut(Event) -> Option<T>) -> T {
    let start = Instant::now();
    let mut buf = vec![0u8; 2048];
    loop {
        assert!(start.elapsed() < Duration::from_secs(10), "coturn did not answer");
        while let Some(t) = client.poll_write() {
            socket.send_to(&t.message, t.transport.peer_addr).expect("send");
        }
        while let Some(event) = client.poll_event() {
            if let Some(v) = done(event) {
                return v;
            }
        }
        match socket.recv_from(&mut buf) {
            Ok((n, from)) => {
                let local = socket.local_addr().expect("local");
                let msg = TransportMessage {
                    now: Instant::now(),
                    transport: TransportContext {
                        local_addr: local,
                        peer_addr: from,
                        transport_protocol: TransportProtocol::UDP,
                        ecn: None,
                    },
                    message: buf[..n].into(),
                };
                client.handle_read(msg).expect("a TURN answer");
            }
            Err(_) => client.handle_timeout(Instant::now()).expect("timeout"),
        }
    }
}

#[test]
fn issue_13_turn_credentials_cannot_reach_internal_networks() {
    let turn = Turn::start(SECRET);
    let now = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).expect("clock").as_secs();
    let creds = sc_server::turn::credentials(&[turn.url()], SECRET, "probe", i64::try_from(now).expect("now"), 600);
    let socket = UdpSocket::bind("127.0.0.1:0").expect("socket");
    socket.set_read_timeout(Some(Duration::from_millis(50))).expect("timeout");
    let config = ClientConfig {
        turn_serv_addr: format!("127.0.0.1:{}", turn.port),
        local_addr: socket.local_addr().expect("local"),
        username: creds.username.clone(),
        password: creds.credential.clone(),
        realm: "secureconsult.test".into(),
        rto_in_ms: 200,
        ..Default::default()
    };
    let mut client = Client::new(config, rtc::crypto::default_provider().expect("crypto")).expect("client");
    let asked = client.allocate(Instant::now()).expect("allocate");
    let relayed: SocketAddr = pump(&mut client, &socket, |e| match e {
        Event::AllocateResponse(t, addr) if t == asked => Some(addr),
        Event::AllocateError(_, e) => panic!("allocation refused: {e}"),
        _ => None,
    });
    let mut outcomes = Vec::new();
    // The last is the other peer's relayed address on the relay itself: the one peer allowed,
    // which shows the refusals are the deny list's and not a broken client.
    for peer in
        ["169.254.169.254:80", "10.1.2.3:3478", "192.168.0.1:53", "172.16.0.1:443", "127.0.0.2:22", "127.0.0.1:49999"]
    {
        let peer: SocketAddr = peer.parse().expect("address");
        let asked = client
            .relay(relayed)
            .expect("the allocation")
            .create_permission(Instant::now(), peer)
            .expect("request")
            .expect("a new permission");
        let granted = pump(&mut client, &socket, |e| match e {
            Event::CreatePermissionResponse(t, _) if t == asked => Some(true),
            Event::CreatePermissionError(t, _) if t == asked => Some(false),
            Event::TransactionTimeout(t) if t == asked => panic!("no answer for {peer}"),
            _ => None,
        });
        outcomes.push((peer.to_string(), granted));
    }
    let expected: Vec<(String, bool)> =
        outcomes.iter().map(|(p, _)| (p.clone(), p.starts_with("127.0.0.1:"))).collect();
    assert_eq!(outcomes, expected, "only the relay's own address may be a peer");
}

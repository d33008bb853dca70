//! TURN over TLS (`turns:`, RFC 8656 §3.1) for prison networks that let nothing but TCP 443 out.
//! webrtc 0.21 speaks TURN over UDP only (webrtc-rs#848), so the engine's TURN client talks UDP
//! to a [`TlsRelay`] on this machine's loopback, which carries each message over one TLS
//! connection to the relay, trusted as the care server is (the CA pinned at enrolment). TURN
//! messages are the same on every transport; a stream only needs them delimited ([`Framer`]) and
//! ChannelData padded to four bytes (§12.5). [`udp_answers`] tells whether the relay's UDP port
//! answers at all: TLS is the fallback, never the first choice (over TCP a lost packet holds up
//! every packet behind it).

use crate::Error;
use sc_proto::turn_url::TurnUrl;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpStream, UdpSocket};

/// STUN's fixed header; its length field counts what follows.
const STUN_HEADER: usize = 20;
/// ChannelData's header: channel number and length.
const CHANNEL_HEADER: usize = 4;
/// STUN's magic cookie (RFC 5389 §6), at bytes 4..8 of every message.
const MAGIC_COOKIE: [u8; 4] = [0x21, 0x12, 0xA4, 0x42];
/// How long the TCP connection and the TLS handshake may each take.
const CONNECT_WAIT: Duration = Duration::from_secs(5);
/// When the UDP probe asks again (from its start), and how long it waits in all: three tries
/// over a lossy prison link (5 % loss: all three lost once in 8000 calls).
const PROBE_TRIES: [Duration; 3] = [Duration::ZERO, Duration::from_millis(400), Duration::from_millis(900)];
const PROBE_WAIT: Duration = Duration::from_millis(1600);

/// Why bytes from the relay's stream are not TURN.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The first byte is neither STUN's (`00`) nor a ChannelData number (`0x40`-`0x4F`).
    #[error("byte {0:#04x} starts neither a STUN message nor channel data")]
    NotTurn(u8),
    /// A STUN header without the magic cookie, or with a length that is not a multiple of four.
    #[error("a malformed STUN header")]
    BadStun,
}

/// The length on the stream of the message `head` starts, once enough of it is there to tell.
fn stream_length(head: &[u8]) -> Result<Option<usize>, FrameError> {
    let Some(&first) = head.first() else { return Ok(None) };
    match first {
        0x00..=0x3F => {
            if head.len() < 8 {
                return Ok(None);
            }
            let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            if head[4..8] != MAGIC_COOKIE || len % 4 != 0 {
                return Err(FrameError::BadStun);
            }
            Ok(Some(STUN_HEADER + len))
        }
        0x40..=0x4F => {
            if head.len() < CHANNEL_HEADER {
                return Ok(None);
            }
            let len = usize::from(u16::from_be_bytes([head[2], head[3]]));
            Ok(Some(CHANNEL_HEADER + len.next_multiple_of(4)))
        }
        other => Err(FrameError::NotTurn(other)),
    }
}

/// Cuts the relay's byte stream back into the messages it carries.
#[derive(Debug, Default)]
pub struct Framer {
    buf: Vec<u8>,
    /// Where the next message starts in `buf` (what is before it was handed out).
    start: usize,
}

impl Framer {
    /// Bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.drain(..self.start);
        self.start = 0;
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, padding included (a datagram may carry it), if it is all here. An
    /// error means the stream is not TURN and cannot be resynchronised: close it.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        let rest = &self.buf[self.start..];
        match stream_length(rest)? {
            Some(len) if rest.len() >= len => {
                let message = rest[..len].to_vec();
                self.start += len;
                Ok(Some(message))
            }
            _ => Ok(None),
        }
    }
}

/// A datagram from the TURN client as the stream carries it: ChannelData padded to four bytes
/// (a UDP sender may leave the padding out). A datagram that is not one whole TURN message is
/// refused: on a stream it would garble everything after it.
pub fn for_stream(datagram: &[u8]) -> Result<Vec<u8>, FrameError> {
    let Some(len) = stream_length(datagram)? else { return Err(FrameError::BadStun) };
    let declared = match datagram.first() {
        Some(0x40..=0x4F) => CHANNEL_HEADER + usize::from(u16::from_be_bytes([datagram[2], datagram[3]])),
        _ => len,
    };
    if datagram.len() < declared || datagram.len() > len {
        return Err(FrameError::BadStun);
    }
    let mut out = datagram.to_vec();
    out.resize(len, 0);
    Ok(out)
}

/// A STUN Binding request with a fresh transaction ID (RFC 5389 §6; every TURN server answers
/// it without credentials).
fn binding_request() -> Result<(Vec<u8>, [u8; 12]), Error> {
    use rtc::stun::message::{Message, BINDING_REQUEST};
    let mut m = Message::new();
    m.build(&[Box::new(BINDING_REQUEST)]).map_err(Error::webrtc)?;
    m.new_transaction_id().map_err(Error::webrtc)?;
    Ok((m.raw.clone(), m.transaction_id.0))
}

/// Whether the relay at `server` answers a STUN Binding request over UDP within
/// [`PROBE_WAIT`], sent from `bind` (an address of this machine, port 0 for any).
pub async fn udp_answers(server: SocketAddr, bind: SocketAddr) -> bool {
    let socket = match UdpSocket::bind(bind).await {
        Ok(s) => s,
        Err(e) => {
            tracing::warn!(error = %e, "no UDP socket for the relay probe");
            return false;
        }
    };
    let Ok((request, id)) = binding_request() else { return false };
    let start = tokio::time::Instant::now();
    let mut tries = PROBE_TRIES.iter().peekable();
    let mut buf = [0u8; 1500];
    loop {
        let next_try = tries.peek().map_or(start + PROBE_WAIT, |&&at| start + at);
        tokio::select! {
            () = tokio::time::sleep_until(next_try) => {
                if tries.next().is_none() {
                    return false;
                }
                if let Err(e) = socket.send_to(&request, server).await {
                    tracing::debug!(error = %e, "relay probe not sent");
                }
            }
            got = socket.recv_from(&mut buf) => {
                // The answer carries the request's transaction ID (bytes 8..20).
                if let Ok((n, from)) = got {
                    if from == server && n >= STUN_HEADER && buf[8..STUN_HEADER] == id {
                        return true;
                    }
                }
            }
        }
    }
}

/// The most TURN clients one tunnel carries at once: a call has one per local address, and an
/// ICE restart adds as many again until the old ones stop.
const MAX_CLIENTS: usize = 8;
/// A connection the relay has sent nothing on for this long is dead (a call's ICE consent checks
/// come every few seconds): it is closed, and the client's next datagram opens another.
const IDLE: Duration = Duration::from_secs(20);
/// Datagrams waiting for a client's connection (being opened, or its send buffer full); past
/// it they are dropped, as a congested UDP path would.
const QUEUED: usize = 256;

/// A loopback UDP port whose datagrams go to a `turns:` relay over TLS, and back. Each local TURN
/// client (each sender) gets a TLS connection of its own, opened when it first sends: the relay
/// keys an allocation by its connection, and an ICE restart's new clients need new allocations.
/// A connection that fails or goes quiet is closed and opened again by its client's next
/// datagram (the allocation is lost; the call's ICE restart makes a new one). Dropped, it closes
/// every connection.
#[derive(Debug)]
pub struct TlsRelay {
    local: SocketAddr,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for TlsRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

type Stream = tokio_rustls::client::TlsStream<TcpStream>;

/// A TLS connection to `url`'s relay, verified by `tls`.
/// The error for `url`'s relay, `why`.
fn unreachable(url: &TurnUrl, why: impl std::fmt::Display) -> Error {
    Error::Relay(format!("{url}: {why}"))
}

async fn open(url: &TurnUrl, tls: &Arc<rustls::ClientConfig>) -> Result<Stream, Error> {
    let unreachable = |why: String| unreachable(url, why);
    let name = rustls_pki_types::ServerName::try_from(url.host.clone())
        .map_err(|_| unreachable("not a host name or address".into()))?;
    let tcp = tokio::time::timeout(CONNECT_WAIT, TcpStream::connect((url.host.as_str(), url.port)))
        .await
        .map_err(|_| unreachable("no TCP connection within 5 s".into()))?
        .map_err(|e| unreachable(e.to_string()))?;
    // Each TURN message is sent whole at once; Nagle's wait would only add latency.
    tcp.set_nodelay(true).map_err(|e| unreachable(e.to_string()))?;
    tokio::time::timeout(CONNECT_WAIT, tokio_rustls::TlsConnector::from(tls.clone()).connect(name, tcp))
        .await
        .map_err(|_| unreachable("no TLS handshake within 5 s".into()))?
        .map_err(|e| unreachable(format!("TLS: {e}")))
}

impl TlsRelay {
    /// Connects to `url`'s relay over TLS, verified by `tls` (the kiosk's pinned trust): an
    /// unreachable or unproven relay is an error now, not a silent call later. That connection
    /// serves the first client.
    pub async fn connect(url: &TurnUrl, tls: Arc<rustls::ClientConfig>) -> Result<Self, Error> {
        let first = open(url, &tls).await?;
        // Loopback only: nothing off this machine can reach the tunnel. On the port the kiosk's
        // firewall opens for it; if that is taken (a second tunnel, a test beside another), any
        // port: there may be no firewall, and if there is the call fails as it would have.
        let udp = match UdpSocket::bind(("127.0.0.1", sc_core::firewall::RELAY_TUNNEL_PORT)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "the tunnel's own port is taken: another is used");
                UdpSocket::bind("127.0.0.1:0").await.map_err(|e| unreachable(url, e))?
            }
        };
        let local = udp.local_addr().map_err(|e| unreachable(url, e))?;
        tracing::info!(relay = %url, local = %local, "TURN over TLS");
        let task = tokio::spawn(serve(Arc::new(udp), url.clone(), tls, Some(first)));
        Ok(TlsRelay { local, task })
    }

    /// The UDP TURN URL the engine's client uses in place of the `turns:` one.
    pub fn local_url(&self) -> String {
        format!("turn:{}?transport=udp", self.local)
    }
}

/// Takes the TURN clients' datagrams and hands each to its client's connection.
async fn serve(udp: Arc<UdpSocket>, url: TurnUrl, tls: Arc<rustls::ClientConfig>, mut spare: Option<Stream>) {
    let mut clients: std::collections::HashMap<SocketAddr, tokio::sync::mpsc::Sender<Vec<u8>>> = Default::default();
    let mut datagram = vec![0u8; 65_536];
    loop {
        let Ok((n, from)) = udp.recv_from(&mut datagram).await else { continue };
        let message = match for_stream(&datagram[..n]) {
            Ok(m) => m,
            Err(e) => {
                tracing::debug!(error = %e, "a datagram that is not TURN was not sent");
                continue;
            }
        };
        clients.retain(|_, queue| !queue.is_closed());
        if !clients.contains_key(&from) {
            if clients.len() >= MAX_CLIENTS {
                tracing::warn!(%from, "TURN over TLS: too many clients, datagram dropped");
                continue;
            }
            let (queue, queued) = tokio::sync::mpsc::channel(QUEUED);
            tokio::spawn(carry(udp.clone(), from, queued, url.clone(), tls.clone(), spare.take()));
            clients.insert(from, queue);
        }
        if let Some(queue) = clients.get(&from) {
            if queue.try_send(message).is_err() {
                tracing::debug!(%from, "TURN over TLS: the connection is behind, datagram dropped");
            }
        }
    }
}

/// One client's connection: its datagrams to the relay, the relay's messages back to it, until
/// the connection fails, goes quiet for [`IDLE`], or the stream is not TURN.
async fn carry(
    udp: Arc<UdpSocket>,
    client: SocketAddr,
    mut queued: tokio::sync::mpsc::Receiver<Vec<u8>>,
    url: TurnUrl,
    tls: Arc<rustls::ClientConfig>,
    spare: Option<Stream>,
) {
    let stream = match spare {
        Some(s) => s,
        None => match open(&url, &tls).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "TURN over TLS: no connection");
                return;
            }
        },
    };
    let (mut from_relay, mut to_relay) = tokio::io::split(stream);
    // Each way on its own, so a full send buffer never holds up what the relay sends back.
    let sending = async {
        while let Some(message) = queued.recv().await {
            if let Err(e) = to_relay.write_all(&message).await {
                return format!("the connection failed: {e}");
            }
        }
        "the tunnel closed".to_owned()
    };
    let receiving = async {
        let (mut framer, mut chunk, mut send_failed) = (Framer::default(), vec![0u8; 16_384], false);
        loop {
            let n = match tokio::time::timeout(IDLE, from_relay.read(&mut chunk)).await {
                Err(_) => return "nothing from the relay for 20 s".to_owned(),
                Ok(Ok(0)) => return "the relay closed the connection".to_owned(),
                Ok(Err(e)) => return format!("the connection failed: {e}"),
                Ok(Ok(n)) => n,
            };
            framer.push(&chunk[..n]);
            loop {
                match framer.next_message() {
                    Ok(Some(message)) => {
                        if let Err(e) = udp.send_to(&message, client).await {
                            // Once per connection: a firewall refusing the answers would repeat it.
                            if !std::mem::replace(&mut send_failed, true) {
                                tracing::warn!(%client, error = %e, "TURN over TLS: an answer did not reach the client");
                            }
                        }
                    }
                    Ok(None) => break,
                    Err(e) => return format!("the relay's stream is garbled: {e}"),
                }
            }
        }
    };
    let why = tokio::select! {
        why = sending => why,
        why = receiving => why,
    };
    tracing::info!(relay = %url, %client, why, "TURN over TLS: connection closed");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stun(len: u16) -> Vec<u8> {
        let mut m = vec![0x01, 0x01];
        m.extend_from_slice(&len.to_be_bytes());
        m.extend_from_slice(&MAGIC_COOKIE);
        m.extend_from_slice(&[7; 12]);
        m.extend(std::iter::repeat_n(0xAB, usize::from(len)));
        m
    }

    fn channel(number: u16, data: &[u8], padded: bool) -> Vec<u8> {
        let mut m = number.to_be_bytes().to_vec();
        m.extend_from_slice(&u16::try_from(data.len()).expect("short").to_be_bytes());
        m.extend_from_slice(data);
        if padded {
            m.resize(m.len().next_multiple_of(4), 0);
        }
        m
    }

    #[test]
    fn messages_come_out_whole_however_the_stream_is_cut() {
        let messages = [stun(8), channel(0x4000, b"hello", true), stun(0), channel(0x4FFF, b"", true)];
        let stream: Vec<u8> = messages.concat();
        for cut in 1..=stream.len() {
            let mut f = Framer::default();
            let mut out = Vec::new();
            for piece in stream.chunks(cut) {
                f.push(piece);
                while let Some(m) = f.next_message().expect("TURN") {
                    out.push(m);
                }
            }
            assert_eq!(out, messages, "pieces of {cut}");
        }
    }

    #[test]
    fn garbage_on_the_stream_is_an_error_not_a_wait() {
        for bad in [vec![0x80u8, 0, 0, 0], vec![0x50, 0, 0, 4, 1, 2, 3, 4], {
            let mut s = stun(4);
            s[4] = 0;
            s
        }] {
            let mut f = Framer::default();
            f.push(&bad);
            assert!(f.next_message().is_err(), "{bad:?}");
        }
        let mut odd = stun(4);
        odd[3] = 5;
        let mut f = Framer::default();
        f.push(&odd);
        assert_eq!(f.next_message(), Err(FrameError::BadStun));
    }

    #[test]
    fn channel_data_goes_on_the_stream_padded_and_other_datagrams_as_they_are() {
        assert_eq!(for_stream(&channel(0x4001, b"abcde", false)), Ok(channel(0x4001, b"abcde", true)));
        assert_eq!(for_stream(&channel(0x4001, b"abcde", true)), Ok(channel(0x4001, b"abcde", true)));
        assert_eq!(for_stream(&stun(12)), Ok(stun(12)));
        let mut cut = stun(12);
        cut.truncate(24);
        assert!(for_stream(&cut).is_err(), "a STUN message shorter than it says");
        let mut long = stun(4);
        long.push(0);
        assert!(for_stream(&long).is_err(), "two messages in one datagram");
        assert!(for_stream(&channel(0x4001, b"abc", false)[..5]).is_err(), "channel data cut short");
        assert!(for_stream(b"GET / HTTP/1.1").is_err());
    }

    /// An answer from another port, or to another request, is not the relay answering.
    #[tokio::test]
    async fn the_probe_takes_only_the_answer_to_its_own_request() {
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let other = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let answer = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            loop {
                let Ok((n, from)) = server.recv_from(&mut buf).await else { return };
                buf[0..2].copy_from_slice(&[0x01, 0x01]);
                // The right ID from the wrong port; the wrong ID from the right one.
                let _ = other.send_to(&buf[..n], from).await;
                buf[8] ^= 0xFF;
                let _ = server.send_to(&buf[..n], from).await;
            }
        });
        assert!(!udp_answers(addr, "127.0.0.1:0".parse().expect("addr")).await);
        answer.abort();
    }

    /// The probe hears a real answer and gives up on silence.
    #[tokio::test]
    async fn the_probe_tells_a_relay_that_answers_from_silence() {
        let server = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let addr = server.local_addr().expect("addr");
        let answer = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            let (n, from) = server.recv_from(&mut buf).await.expect("request");
            assert_eq!(n, STUN_HEADER, "a bare Binding request");
            buf[0..2].copy_from_slice(&[0x01, 0x01]);
            server.send_to(&buf[..n], from).await.expect("answer");
        });
        let any: SocketAddr = "127.0.0.1:0".parse().expect("addr");
        assert!(udp_answers(addr, any).await);
        answer.await.expect("answered");
        let silent = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        assert!(!udp_answers(silent.local_addr().expect("addr"), any).await);
    }

    /// Sends `message` from `socket` to the tunnel until it comes back (5 s at most).
    async fn round_trip(socket: &UdpSocket, tunnel: SocketAddr, message: &[u8]) -> Vec<u8> {
        let mut buf = [0u8; 1500];
        for _ in 0..25 {
            socket.send_to(message, tunnel).await.expect("send");
            if let Ok(Ok((n, _))) = tokio::time::timeout(Duration::from_millis(200), socket.recv_from(&mut buf)).await {
                return buf[..n].to_vec();
            }
        }
        panic!("nothing came back through the tunnel");
    }

    /// Each local TURN client gets a connection of its own (an ICE restart's new clients need
    /// allocations of their own), and one whose connection dropped gets a new one when it next
    /// sends; a relay whose certificate the pinned CA did not issue is refused.
    #[tokio::test]
    async fn each_client_has_its_own_connection_and_gets_another_after_a_drop() {
        let (url, ca, connections, cut) = testing::echo_relay().await;
        let trust = Arc::new(sc_core::tls::pinned_relay(&ca).expect("trust"));
        let relay = TlsRelay::connect(&url, trust).await.expect("the relay proves itself");
        let tunnel: SocketAddr =
            relay.local_url().trim_start_matches("turn:").trim_end_matches("?transport=udp").parse().expect("addr");
        let (a, b) =
            (UdpSocket::bind("127.0.0.1:0").await.expect("a"), UdpSocket::bind("127.0.0.1:0").await.expect("b"));
        assert_eq!(round_trip(&a, tunnel, &stun(8)).await, stun(8));
        assert_eq!(round_trip(&b, tunnel, &channel(0x4000, b"abc", false)).await, channel(0x4000, b"abc", true));
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 2, "one connection per client");
        cut.send(()).expect("connections to cut");
        assert_eq!(round_trip(&a, tunnel, &stun(4)).await, stun(4), "a new connection after the drop");
        assert_eq!(connections.load(std::sync::atomic::Ordering::SeqCst), 3);

        let (_, other_ca, _, _) = testing::echo_relay().await;
        let wrong = Arc::new(sc_core::tls::pinned_relay(&other_ca).expect("trust"));
        assert!(TlsRelay::connect(&url, wrong).await.is_err(), "a relay the pinned CA did not vouch for");
    }
}

/// A TLS relay stand-in for the tests of this module and the engine's route choice.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;

    /// A TLS server that sends back what it gets, counting connections; `cut` closes them all.
    pub(crate) async fn echo_relay(
    ) -> (TurnUrl, Vec<u8>, Arc<std::sync::atomic::AtomicUsize>, tokio::sync::broadcast::Sender<()>) {
        use rcgen::{BasicConstraints, CertificateParams, IsCa, Issuer, KeyPair};
        let ca_key = KeyPair::generate().expect("key");
        let mut ca = CertificateParams::new(Vec::<String>::new()).expect("params");
        ca.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        let ca_cert = ca.self_signed(&ca_key).expect("CA");
        let leaf_key = KeyPair::generate().expect("key");
        let leaf = CertificateParams::new(vec!["127.0.0.1".to_owned()])
            .expect("params")
            .signed_by(&leaf_key, &Issuer::new(ca, &ca_key))
            .expect("leaf");
        let key = rustls_pki_types::PrivateKeyDer::try_from(leaf_key.serialize_der()).expect("key");
        let config = rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![leaf.der().clone()], key)
            .expect("server config");
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.expect("bind");
        let port = listener.local_addr().expect("addr").port();
        let count = Arc::new(std::sync::atomic::AtomicUsize::new(0));
        let (cut, _) = tokio::sync::broadcast::channel(4);
        let (n, cut_tx) = (count.clone(), cut.clone());
        tokio::spawn(async move {
            let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
            while let Ok((tcp, _)) = listener.accept().await {
                n.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                let (acceptor, mut cut) = (acceptor.clone(), cut_tx.subscribe());
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut buf = vec![0u8; 4096];
                    loop {
                        tokio::select! {
                            got = tls.read(&mut buf) => match got {
                                Ok(0) | Err(_) => return,
                                Ok(k) => { let _ = tls.write_all(&buf[..k]).await; }
                            },
                            _ = cut.recv() => return,
                        }
                    }
                });
            }
        });
        let url = TurnUrl::parse(&format!("turns:127.0.0.1:{port}")).expect("url");
        (url, ca_cert.der().to_vec(), count, cut)
    }
}

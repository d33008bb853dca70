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
}

impl Framer {
    /// Bytes read from the stream.
    pub fn push(&mut self, bytes: &[u8]) {
        self.buf.extend_from_slice(bytes);
    }

    /// The next whole message, padding included (a datagram may carry it), if it is all here. An
    /// error means the stream is not TURN and cannot be resynchronised: close it.
    pub fn next_message(&mut self) -> Result<Option<Vec<u8>>, FrameError> {
        match stream_length(&self.buf)? {
            Some(len) if self.buf.len() >= len => {
                let rest = self.buf.split_off(len);
                Ok(Some(std::mem::replace(&mut self.buf, rest)))
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

/// A loopback UDP port whose datagrams go to a `turns:` relay over TLS, and back. Ends with the
/// connection (the relay's allocations go with it); dropped, it closes the connection.
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

impl TlsRelay {
    /// Connects to `url`'s relay over TLS, verified by `tls` (the kiosk's pinned trust).
    pub async fn connect(url: &TurnUrl, tls: Arc<rustls::ClientConfig>) -> Result<Self, Error> {
        let unreachable = |why: String| Error::Relay(format!("{url}: {why}"));
        let name = rustls_pki_types::ServerName::try_from(url.host.clone())
            .map_err(|_| unreachable("not a host name or address".into()))?;
        let tcp = tokio::time::timeout(CONNECT_WAIT, TcpStream::connect((url.host.as_str(), url.port)))
            .await
            .map_err(|_| unreachable("no TCP connection within 5 s".into()))?
            .map_err(|e| unreachable(e.to_string()))?;
        // Each TURN message is sent whole at once; Nagle's wait would only add latency.
        tcp.set_nodelay(true).map_err(|e| unreachable(e.to_string()))?;
        let stream = tokio::time::timeout(CONNECT_WAIT, tokio_rustls::TlsConnector::from(tls).connect(name, tcp))
            .await
            .map_err(|_| unreachable("no TLS handshake within 5 s".into()))?
            .map_err(|e| unreachable(format!("TLS: {e}")))?;
        // Loopback only: nothing off this machine can reach the tunnel. On the port the kiosk's
        // firewall opens for it; if that is taken (a second tunnel, a test beside another), any
        // port: there may be no firewall, and if there is the call fails as it would have.
        let udp = match UdpSocket::bind(("127.0.0.1", sc_core::firewall::RELAY_TUNNEL_PORT)).await {
            Ok(s) => s,
            Err(e) => {
                tracing::warn!(error = %e, "the tunnel's own port is taken: another is used");
                UdpSocket::bind("127.0.0.1:0").await.map_err(|e| unreachable(e.to_string()))?
            }
        };
        let local = udp.local_addr().map_err(|e| unreachable(e.to_string()))?;
        tracing::info!(relay = %url, local = %local, "TURN over TLS");
        let task = tokio::spawn(pump(udp, stream, url.to_string()));
        Ok(TlsRelay { local, task })
    }

    /// The UDP TURN URL the engine's client uses in place of the `turns:` one.
    pub fn local_url(&self) -> String {
        format!("turn:{}?transport=udp", self.local)
    }
}

/// Carries datagrams from the engine's TURN client (the first sender, and only it) to the
/// stream, and messages from the stream back to it, until either side ends.
async fn pump(udp: UdpSocket, stream: tokio_rustls::client::TlsStream<TcpStream>, relay: String) {
    let (mut from_relay, mut to_relay) = tokio::io::split(stream);
    let mut client: Option<SocketAddr> = None;
    let mut framer = Framer::default();
    let mut datagram = vec![0u8; 65_536];
    let mut chunk = vec![0u8; 16_384];
    loop {
        tokio::select! {
            got = udp.recv_from(&mut datagram) => {
                let Ok((n, from)) = got else { continue };
                if *client.get_or_insert(from) != from {
                    continue;
                }
                match for_stream(&datagram[..n]) {
                    Ok(message) => {
                        if let Err(e) = to_relay.write_all(&message).await {
                            tracing::warn!(%relay, error = %e, "TURN over TLS: the connection failed");
                            return;
                        }
                    }
                    Err(e) => tracing::debug!(error = %e, "a datagram that is not TURN was not sent"),
                }
            }
            got = from_relay.read(&mut chunk) => {
                let n = match got {
                    Ok(0) => {
                        tracing::info!(%relay, "TURN over TLS: the relay closed the connection");
                        return;
                    }
                    Ok(n) => n,
                    Err(e) => {
                        tracing::warn!(%relay, error = %e, "TURN over TLS: the connection failed");
                        return;
                    }
                };
                framer.push(&chunk[..n]);
                loop {
                    match framer.next_message() {
                        Ok(Some(message)) => {
                            if let Some(to) = client {
                                let _ = udp.send_to(&message, to).await;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::warn!(%relay, error = %e, "TURN over TLS: the relay's stream is garbled");
                            return;
                        }
                    }
                }
            }
        }
    }
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
}

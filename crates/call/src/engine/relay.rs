//! Which way the call reaches its relay: the TURN URLs the engine's client is given, over UDP
//! when the relay's UDP port answers, else through a TLS tunnel to its `turns:` URLs
//! (`crate::turn_tls`), kept for the call's life.

use crate::turn_tls::{udp_answers, TlsRelay};
use crate::Error;
use sc_proto::signal::IceServer;
use sc_proto::turn_url::{RelayTransport, TurnUrl};
use std::net::SocketAddr;
use std::sync::Arc;
use webrtc::peer_connection::RTCIceServer;

/// The servers to hand the ICE agent, and the tunnels their URLs lead through.
pub(super) struct Routes {
    pub servers: Vec<RTCIceServer>,
    pub tunnels: Vec<TlsRelay>,
}

/// The address the probe sends from: the first bind address's, any port.
fn probe_bind(bind_addrs: &[String]) -> SocketAddr {
    bind_addrs
        .iter()
        .find_map(|a| a.parse::<SocketAddr>().ok())
        .map_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)), |a| SocketAddr::new(a.ip(), 0))
}

/// Whether any of `urls` (UDP ones) answers.
async fn any_udp_answers(urls: &[&TurnUrl], bind: SocketAddr) -> bool {
    for url in urls {
        let addrs = match tokio::net::lookup_host((url.host.as_str(), url.port)).await {
            Ok(a) => a,
            Err(e) => {
                tracing::warn!(relay = %url, error = %e, "the relay's name does not resolve");
                continue;
            }
        };
        for addr in addrs.filter(|a| a.is_ipv4() == bind.is_ipv4()) {
            if udp_answers(addr, bind).await {
                return true;
            }
            tracing::warn!(relay = %url, "the relay's UDP port does not answer");
        }
    }
    false
}

/// A tunnel to the first of `urls` whose relay can be reached and proves who it is.
async fn first_tunnel(urls: &[&TurnUrl], trust: &Arc<rustls::ClientConfig>) -> Option<TlsRelay> {
    for url in urls {
        match TlsRelay::connect(url, trust.clone()).await {
            Ok(tunnel) => return Some(tunnel),
            Err(e) => tracing::warn!(error = %e, "TURN over TLS failed"),
        }
    }
    None
}

/// Routes for `servers`: UDP URLs as they are; `turns:` URLs only when no UDP URL of the same
/// server answers, each through a tunnel trusted by `trust`. URLs that are neither (TURN over
/// plain TCP, unparsable) are left out: the engine's client cannot use them.
pub(super) async fn routes(
    servers: &[IceServer],
    trust: Option<&Arc<rustls::ClientConfig>>,
    bind_addrs: &[String],
) -> Result<Routes, Error> {
    let mut routes = Routes { servers: Vec::new(), tunnels: Vec::new() };
    for server in servers {
        let parsed: Vec<TurnUrl> = server
            .urls
            .iter()
            .filter_map(|u| {
                TurnUrl::parse(u).map_err(|e| tracing::warn!(url = %u, error = %e, "TURN URL left out")).ok()
            })
            .collect();
        let udp: Vec<&TurnUrl> = parsed.iter().filter(|u| u.transport == RelayTransport::Udp).collect();
        let tls: Vec<&TurnUrl> = parsed.iter().filter(|u| u.transport == RelayTransport::Tls).collect();
        let mut urls: Vec<String> = udp.iter().map(ToString::to_string).collect();
        if !tls.is_empty() && !any_udp_answers(&udp, probe_bind(bind_addrs)).await {
            match trust {
                // Without a trust the UDP URLs stay: the call fails as it would have without TLS.
                None => tracing::warn!("turns: URLs given but no TLS trust for the relay: left out"),
                Some(trust) => {
                    if let Some(tunnel) = first_tunnel(&tls, trust).await {
                        urls = vec![tunnel.local_url()];
                        routes.tunnels.push(tunnel);
                    }
                }
            }
        }
        if !urls.is_empty() {
            routes.servers.push(RTCIceServer {
                urls,
                username: server.username.clone(),
                credential: server.credential.clone(),
            });
        }
    }
    if routes.servers.is_empty() {
        return Err(Error::NoRelay);
    }
    Ok(routes)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::turn_tls::testing::echo_relay;
    use tokio::net::UdpSocket;

    fn server(urls: &[String]) -> Vec<IceServer> {
        vec![IceServer { urls: urls.to_vec(), username: "u".into(), credential: "c".into() }]
    }

    /// A UDP port that answers STUN Binding requests (as a relay's does) until dropped.
    async fn answering_udp() -> (u16, tokio::task::JoinHandle<()>) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        let port = socket.local_addr().expect("addr").port();
        let task = tokio::spawn(async move {
            let mut buf = [0u8; 1500];
            while let Ok((n, from)) = socket.recv_from(&mut buf).await {
                buf[0..2].copy_from_slice(&[0x01, 0x01]);
                let _ = socket.send_to(&buf[..n], from).await;
            }
        });
        (port, task)
    }

    /// A UDP port nobody answers on, held so nothing else takes it.
    async fn silent_udp() -> (u16, UdpSocket) {
        let socket = UdpSocket::bind("127.0.0.1:0").await.expect("bind");
        (socket.local_addr().expect("addr").port(), socket)
    }

    const BIND: &[String] = &[];

    /// Issue #17: TLS is the fallback. A relay whose UDP port answers is used over UDP with no
    /// tunnel; one whose UDP port is silent is reached through a tunnel; a `turns:` URL that
    /// cannot be reached, or no trust to check it by, leaves the UDP URL as it was.
    #[tokio::test]
    async fn issue_17_tls_is_used_only_when_the_relays_udp_port_does_not_answer() {
        let (tls_url, ca, _, _) = echo_relay().await;
        let trust = Arc::new(sc_core::tls::pinned_relay(&ca).expect("trust"));
        let (answering, _responder) = answering_udp().await;
        let udp = format!("turn:127.0.0.1:{answering}?transport=udp");
        let r = routes(&server(&[udp.clone(), tls_url.to_string()]), Some(&trust), BIND).await.expect("routes");
        assert_eq!(r.servers[0].urls, vec![udp], "UDP answers: no tunnel");
        assert!(r.tunnels.is_empty());

        let (silent, _held) = silent_udp().await;
        let udp = format!("turn:127.0.0.1:{silent}?transport=udp");
        let r = routes(&server(&[udp.clone(), tls_url.to_string()]), Some(&trust), BIND).await.expect("routes");
        assert_eq!(r.tunnels.len(), 1, "UDP silent: a tunnel");
        assert_eq!(r.servers[0].urls, vec![r.tunnels[0].local_url()]);

        let closed = std::net::TcpListener::bind("127.0.0.1:0").expect("bind").local_addr().expect("addr").port();
        let unreachable = format!("turns:127.0.0.1:{closed}?transport=tcp");
        let r = routes(&server(&[udp.clone(), unreachable]), Some(&trust), BIND).await.expect("routes");
        assert_eq!((r.servers[0].urls.clone(), r.tunnels.len()), (vec![udp.clone()], 0), "TLS failed: UDP kept");
        let r = routes(&server(&[udp.clone(), tls_url.to_string()]), None, BIND).await.expect("routes");
        assert_eq!((r.servers[0].urls.clone(), r.tunnels.len()), (vec![udp], 0), "no trust: UDP kept");
    }

    /// URLs the engine cannot use are left out; none left is no relay.
    #[tokio::test]
    async fn a_server_with_no_usable_url_is_no_relay() {
        let only_tcp = server(&["turn:127.0.0.1:3478?transport=tcp".into(), "stun:127.0.0.1".into()]);
        assert!(matches!(routes(&only_tcp, None, BIND).await, Err(Error::NoRelay)));
    }
}

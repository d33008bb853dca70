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
        let Ok(addrs) = tokio::net::lookup_host((url.host.as_str(), url.port)).await else { continue };
        for addr in addrs.filter(|a| a.is_ipv4() == bind.is_ipv4()) {
            if udp_answers(addr, bind).await {
                return true;
            }
            tracing::warn!(relay = %url, "the relay's UDP port does not answer");
        }
    }
    false
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
            let Some(trust) = trust else {
                tracing::warn!("turns: URLs given but no TLS trust for the relay: left out");
                continue;
            };
            for url in tls {
                match TlsRelay::connect(url, trust.clone()).await {
                    Ok(tunnel) => {
                        urls = vec![tunnel.local_url()];
                        routes.tunnels.push(tunnel);
                        break;
                    }
                    Err(e) => tracing::warn!(error = %e, "TURN over TLS failed"),
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

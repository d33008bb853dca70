//! The kiosk's egress allow-list: the endpoints it may reach (the care server, the TURN relay),
//! taken from the enrolment record, and the firewall rules for them, generated from that one list
//! for Linux here (nftables) and for Windows in [`crate::windows_policy`], so the two cannot drift.
//! Pure, bar the name lookup of [`endpoints`]. See policy/linux/README.md.

use crate::record::EnrolmentRecord;
use crate::Error;
use sc_proto::turn_url::{host_port, RelayTransport, TurnUrl};
use std::fmt::Write as _;
use std::net::{IpAddr, ToSocketAddrs as _};

/// The transport an endpoint takes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Transport {
    /// TCP.
    Tcp,
    /// UDP.
    Udp,
}

impl Transport {
    /// As nftables and Windows Firewall spell it.
    pub fn as_str(self) -> &'static str {
        match self {
            Transport::Tcp => "tcp",
            Transport::Udp => "udp",
        }
    }
}

/// One address, transport and port the kiosk may reach.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Endpoint {
    /// What it is, for the rule's comment ("care server", "TURN relay").
    pub role: &'static str,
    /// The host as configured (a name or an address).
    pub host: String,
    /// The address the host had when the rules were made.
    pub addr: IpAddr,
    /// TCP or UDP.
    pub transport: Transport,
    /// The port.
    pub port: u16,
}

/// A parsed endpoint before its host is looked up.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Target {
    role: &'static str,
    host: String,
    transport: Transport,
    port: u16,
}

fn bad(what: &str, why: impl Into<String>) -> Error {
    Error::Corrupt { what: "the enrolment record", why: format!("{what}: {}", why.into()) }
}

/// The care server's endpoint from its `https://host[:port][/path]` URL.
fn server_target(url: &str) -> Result<Target, Error> {
    let what = "the server URL";
    let rest = url.strip_prefix("https://").ok_or_else(|| bad(what, "not https"))?;
    let auth = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port) = host_port(auth, 443).map_err(|e| bad(what, e.to_string()))?;
    Ok(Target { role: "care server", host, transport: Transport::Tcp, port })
}

/// A TURN URL's endpoint: TLS (`turns:`) is TCP to the firewall.
fn turn_target(url: &str) -> Result<Target, Error> {
    let t = TurnUrl::parse(url).map_err(|e| bad("a TURN URL", e.to_string()))?;
    let transport = match t.transport {
        RelayTransport::Udp => Transport::Udp,
        RelayTransport::Tcp | RelayTransport::Tls => Transport::Tcp,
    };
    Ok(Target { role: TURN_RELAY, host: t.host, transport, port: t.port })
}

/// Every endpoint the record names, each host looked up now (rules hold addresses). Sorted, each
/// once.
pub fn endpoints(record: &EnrolmentRecord) -> Result<Vec<Endpoint>, Error> {
    let mut targets = vec![server_target(&record.server_url)?];
    for url in &record.turn_urls {
        targets.push(turn_target(url)?);
    }
    let mut out = Vec::new();
    for t in targets {
        let addrs = (t.host.as_str(), t.port)
            .to_socket_addrs()
            .map_err(|e| Error::Io { what: "looking up an endpoint's address", source: e })?;
        for a in addrs {
            out.push(Endpoint {
                role: t.role,
                host: t.host.clone(),
                addr: a.ip(),
                transport: t.transport,
                port: t.port,
            });
        }
    }
    out.sort();
    out.dedup();
    Ok(out)
}

/// The kiosk's account name as the generated rules take it, on Linux and Windows: ours to choose,
/// so letters, digits, - and _ only, and nothing in it needs escaping.
pub(crate) fn check_account(name: &str) -> Result<(), Error> {
    if name.is_empty() || !name.bytes().all(|b| b.is_ascii_alphanumeric() || b"-_".contains(&b)) {
        return Err(Error::InvalidState("a user name is letters, digits, - and _"));
    }
    Ok(())
}

/// Who the rules confine: a user name, or a numeric uid.
fn nft_user(user: &str) -> String {
    if user.bytes().all(|b| b.is_ascii_digit()) {
        user.to_owned()
    } else {
        format!("\"{user}\"")
    }
}

/// The role of a relay's endpoint.
const TURN_RELAY: &str = "TURN relay";

/// The loopback UDP port of the kiosk's TURN-over-TLS tunnel (`sc_call::turn_tls`): its TURN
/// client talks UDP to the tunnel, which carries the messages to a `turns:` relay. Fixed so the
/// rules can let the kiosk user reach this one loopback port and no other loopback service.
pub const RELAY_TUNNEL_PORT: u16 = 24_780;

/// The nftables ruleset: the kiosk user's packets leave only for `endpoints`; everything else it
/// sends is dropped on the laptop (the sender sees EPERM at once); other users are untouched.
pub fn nftables(endpoints: &[Endpoint], user: &str) -> Result<String, Error> {
    check_account(user)?;
    let mut s = String::new();
    // Writing to a String cannot fail.
    let _ = writeln!(s, "#!/usr/sbin/nft -f");
    let _ = writeln!(s, "# SecureConsult kiosk egress allow-list, made by `secureconsult-kiosk firewall-rules`");
    let _ = writeln!(s, "# from the enrolment record. The kiosk user ({user}) may reach these endpoints and");
    let _ = writeln!(s, "# nothing else: no other host, port or protocol, no DNS (the endpoints are addresses),");
    let _ = writeln!(s, "# no loopback service (bar its own TURN-over-TLS tunnel's port when a relay is reached over");
    let _ = writeln!(s, "# TCP), no broadcast or multicast (mDNS). Other users are not confined.");
    let _ = writeln!(s, "table inet secureconsult_kiosk");
    let _ = writeln!(s, "delete table inet secureconsult_kiosk");
    let _ = writeln!(s, "table inet secureconsult_kiosk {{");
    let _ = writeln!(s, "  chain egress {{");
    let _ = writeln!(s, "    type filter hook output priority filter; policy accept;");
    let _ = writeln!(s, "    meta skuid != {} accept", nft_user(user));
    for e in endpoints {
        let family = if e.addr.is_ipv4() { "ip" } else { "ip6" };
        let _ = writeln!(
            s,
            "    {family} daddr {} {} dport {} accept comment \"{} {}\"",
            e.addr,
            e.transport.as_str(),
            e.port,
            e.role,
            e.host.replace(['"', '\\'], "")
        );
    }
    if endpoints.iter().any(|e| e.role == TURN_RELAY && e.transport == Transport::Tcp) {
        // The engine's TURN clients send from the laptop's own addresses to the tunnel on
        // loopback; its answers go back over loopback too, and only as answers (a socket of the
        // kiosk user's on the tunnel's port may not open anything else on loopback).
        let _ = writeln!(
            s,
            "    oifname \"lo\" udp dport {RELAY_TUNNEL_PORT} accept comment \"TURN over TLS: to the kiosk's own tunnel\""
        );
        let _ = writeln!(
            s,
            "    oifname \"lo\" udp sport {RELAY_TUNNEL_PORT} ct state established accept comment \"TURN over TLS: the tunnel's answers\""
        );
    }
    let _ = writeln!(s, "    counter drop comment \"anything else the kiosk user sends\"");
    let _ = writeln!(s, "  }}");
    let _ = writeln!(s, "}}");
    Ok(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_give_their_endpoints_with_the_standard_defaults() {
        assert_eq!(
            server_target("https://care.example:8443/x").expect("ok"),
            Target { role: "care server", host: "care.example".into(), transport: Transport::Tcp, port: 8443 }
        );
        assert_eq!(server_target("https://[::1]").expect("ok").port, 443);
        let t = |u: &str| turn_target(u).map(|t| (t.host, t.transport, t.port));
        assert_eq!(t("turn:10.0.0.3").expect("ok"), ("10.0.0.3".into(), Transport::Udp, 3478));
        assert_eq!(t("turn:10.0.0.3:3479?transport=tcp").expect("ok"), ("10.0.0.3".into(), Transport::Tcp, 3479));
        assert_eq!(t("turns:relay.example").expect("ok"), ("relay.example".into(), Transport::Tcp, 5349));
        for bad in ["http://x", "https://", "https://x:0", "https://x:port", "https://[::1"] {
            assert!(server_target(bad).is_err(), "{bad}");
        }
        for bad in ["stun:x", "turn:", "turn:x?transport=sctp", "turn:x:99999"] {
            assert!(turn_target(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn the_rules_confine_only_the_kiosk_user_to_the_endpoints_and_drop_the_rest() {
        let e = |addr: &str, transport, port| Endpoint {
            role: "TURN relay",
            host: addr.into(),
            addr: addr.parse().expect("ip"),
            transport,
            port,
        };
        let rules = nftables(&[e("10.0.0.3", Transport::Udp, 3478), e("fd00::3", Transport::Tcp, 3478)], "sc-kiosk")
            .expect("ok");
        assert!(rules.contains("meta skuid != \"sc-kiosk\" accept"), "{rules}");
        assert!(rules.contains("ip daddr 10.0.0.3 udp dport 3478 accept"), "{rules}");
        assert!(rules.contains("ip6 daddr fd00::3 tcp dport 3478 accept"), "{rules}");
        let last_rule = rules.lines().rev().find(|l| l.trim_start().starts_with("counter")).expect("a last rule");
        assert!(last_rule.contains("drop"), "{rules}");
        let tunnel = format!("oifname \"lo\" udp dport {RELAY_TUNNEL_PORT} accept");
        assert!(rules.contains(&tunnel), "a relay over TCP opens the tunnel's loopback port: {rules}");
        let udp_only = nftables(&[e("10.0.0.3", Transport::Udp, 3478)], "sc-kiosk").expect("ok");
        assert!(!udp_only.contains("\"lo\""), "no loopback port without a relay over TCP: {udp_only}");
        assert!(nftables(&[], "64123").expect("a uid").contains("meta skuid != 64123 accept"));
        assert!(nftables(&[], "x\"; flush ruleset").is_err(), "a user name cannot inject rules");
    }
}

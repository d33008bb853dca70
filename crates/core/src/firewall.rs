//! The kiosk's egress allow-list: the endpoints it may reach (the care server, the TURN relay),
//! taken from the enrolment record, and the firewall rules for them, generated from that one list
//! for Linux here (nftables) and for Windows in [`crate::windows_policy`], so the two cannot drift.
//! Pure, bar the name lookup of [`endpoints`]. See policy/linux/README.md.

use crate::record::EnrolmentRecord;
use crate::Error;
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

/// `host` and `port` of an authority (`host:port`, `[v6]:port`, or `host`).
fn authority(what: &str, text: &str, default_port: u16) -> Result<(String, u16), Error> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or_else(|| bad(what, "unclosed ["))?;
        (host, after.strip_prefix(':'))
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| bad(what, format!("port {p:?}")))?,
        None => default_port,
    };
    if host.is_empty() || port == 0 {
        return Err(bad(what, "no host or port"));
    }
    Ok((host.to_owned(), port))
}

/// The care server's endpoint from its `https://host[:port][/path]` URL.
fn server_target(url: &str) -> Result<Target, Error> {
    let rest = url.strip_prefix("https://").ok_or_else(|| bad("the server URL", "not https"))?;
    let auth = rest.split(['/', '?', '#']).next().unwrap_or_default();
    let (host, port) = authority("the server URL", auth, 443)?;
    Ok(Target { role: "care server", host, transport: Transport::Tcp, port })
}

/// A TURN URL's endpoint (RFC 7065: `turn:host[:port][?transport=udp|tcp]`, `turns:` over TLS).
fn turn_target(url: &str) -> Result<Target, Error> {
    let what = "a TURN URL";
    let (scheme, rest) = url.split_once(':').ok_or_else(|| bad(what, "no scheme"))?;
    let (default_port, default_transport) = match scheme {
        "turn" => (3478, Transport::Udp),
        "turns" => (5349, Transport::Tcp),
        other => return Err(bad(what, format!("scheme {other:?}"))),
    };
    let (auth, query) = rest.split_once('?').unwrap_or((rest, ""));
    let (host, port) = authority(what, auth, default_port)?;
    let transport = match query.split('&').find_map(|kv| kv.strip_prefix("transport=")) {
        None => default_transport,
        Some("udp") => Transport::Udp,
        Some("tcp") => Transport::Tcp,
        Some(other) => return Err(bad(what, format!("transport {other:?}"))),
    };
    Ok(Target { role: "TURN relay", host, transport, port })
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
    let _ = writeln!(s, "# no loopback service, no broadcast or multicast (mDNS). Other users are not confined.");
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
        assert!(nftables(&[], "64123").expect("a uid").contains("meta skuid != 64123 accept"));
        assert!(nftables(&[], "x\"; flush ruleset").is_err(), "a user name cannot inject rules");
    }
}

//! TURN URLs (RFC 7065), parsed once: the kiosk's firewall allow-list, its choice between UDP
//! and TLS to the relay, and the care server's configuration all read the same [`TurnUrl`].

use std::fmt;

/// How the TURN client reaches the relay.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum RelayTransport {
    /// `turn:...?transport=udp` (the default of `turn:`).
    Udp,
    /// `turn:...?transport=tcp`.
    Tcp,
    /// `turns:` (TLS over TCP; port 5349 unless given, 443 where only HTTPS may leave).
    Tls,
}

/// A parsed `turn:` or `turns:` URL.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct TurnUrl {
    /// The host as written: a name, an IPv4 address or an IPv6 address without its brackets.
    pub host: String,
    /// The port (3478 for `turn:`, 5349 for `turns:` unless given).
    pub port: u16,
    /// UDP, TCP or TLS.
    pub transport: RelayTransport,
}

/// Why a TURN URL was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum TurnUrlError {
    /// Not `turn:` or `turns:`.
    #[error("not a TURN URL (scheme {0:?})")]
    Scheme(String),
    /// The host or the port is missing or not a number in 1..=65535.
    #[error("{0}")]
    Authority(&'static str),
    /// A `transport=` other than `udp` or `tcp`, or `udp` on `turns:`.
    #[error("transport {0:?}")]
    Transport(String),
}

/// `host` and `port` of an authority (`host:port`, `[v6]:port`, or `host` with `default_port`).
pub fn host_port(text: &str, default_port: u16) -> Result<(String, u16), TurnUrlError> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let (host, after) = rest.split_once(']').ok_or(TurnUrlError::Authority("unclosed ["))?;
        let port = match after {
            "" => None,
            a => Some(a.strip_prefix(':').ok_or(TurnUrlError::Authority("text after ]"))?),
        };
        (host, port)
    } else {
        match text.rsplit_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (text, None),
        }
    };
    let port = match port {
        Some(p) => p.parse().map_err(|_| TurnUrlError::Authority("the port is not a number"))?,
        None => default_port,
    };
    if host.is_empty() || port == 0 {
        return Err(TurnUrlError::Authority("no host or port"));
    }
    if !text.starts_with('[') && host.contains(':') {
        return Err(TurnUrlError::Authority("an IPv6 address goes in brackets"));
    }
    Ok((host.to_owned(), port))
}

impl TurnUrl {
    /// Parses `turn:host[:port][?transport=udp|tcp]` or `turns:host[:port][?transport=tcp]`.
    pub fn parse(url: &str) -> Result<Self, TurnUrlError> {
        let (scheme, rest) = url.split_once(':').ok_or_else(|| TurnUrlError::Scheme(String::new()))?;
        let (auth, query) = rest.split_once('?').unwrap_or((rest, ""));
        let asked = query.split('&').find_map(|kv| kv.strip_prefix("transport="));
        let (default_port, transport) = match (scheme, asked) {
            ("turn", None | Some("udp")) => (3478, RelayTransport::Udp),
            ("turn", Some("tcp")) => (3478, RelayTransport::Tcp),
            ("turns", None | Some("tcp")) => (5349, RelayTransport::Tls),
            ("turn" | "turns", Some(other)) => return Err(TurnUrlError::Transport(other.to_owned())),
            (other, _) => return Err(TurnUrlError::Scheme(other.to_owned())),
        };
        let (host, port) = host_port(auth, default_port)?;
        Ok(TurnUrl { host, port, transport })
    }
}

impl fmt::Display for TurnUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (scheme, transport) = match self.transport {
            RelayTransport::Udp => ("turn", "udp"),
            RelayTransport::Tcp => ("turn", "tcp"),
            RelayTransport::Tls => ("turns", "tcp"),
        };
        if self.host.contains(':') {
            write!(f, "{scheme}:[{}]:{}?transport={transport}", self.host, self.port)
        } else {
            write!(f, "{scheme}:{}:{}?transport={transport}", self.host, self.port)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_forms_rfc_7065_allows() {
        let t = |u: &str| TurnUrl::parse(u).map(|t| (t.host, t.port, t.transport));
        assert_eq!(t("turn:10.0.0.3"), Ok(("10.0.0.3".into(), 3478, RelayTransport::Udp)));
        assert_eq!(t("turn:10.0.0.3:3479?transport=tcp"), Ok(("10.0.0.3".into(), 3479, RelayTransport::Tcp)));
        assert_eq!(t("turns:relay.example"), Ok(("relay.example".into(), 5349, RelayTransport::Tls)));
        assert_eq!(t("turns:relay.example:443?transport=tcp"), Ok(("relay.example".into(), 443, RelayTransport::Tls)));
        assert_eq!(t("turn:[::1]:3478"), Ok(("::1".into(), 3478, RelayTransport::Udp)));
        assert_eq!(t("turn:[::1]"), Ok(("::1".into(), 3478, RelayTransport::Udp)));
    }

    #[test]
    fn refuses_what_is_not_a_relay() {
        for bad in
            ["stun:x", "turn:", "turn:x?transport=sctp", "turns:x?transport=udp", "turn:x:99999", "turn:x:0", "x"]
        {
            assert!(TurnUrl::parse(bad).is_err(), "{bad}");
        }
        assert!(TurnUrl::parse("turn:[::1]x").is_err());
        assert!(TurnUrl::parse("turn:2001:db8::1").is_err(), "an unbracketed IPv6 address is no host and port");
    }

    #[test]
    fn prints_back_what_it_parsed() {
        for u in [
            "turn:10.0.0.3:3478?transport=udp",
            "turns:relay.example:443?transport=tcp",
            "turn:[::1]:3478?transport=tcp",
        ] {
            assert_eq!(TurnUrl::parse(u).expect("parses").to_string(), u);
        }
    }
}

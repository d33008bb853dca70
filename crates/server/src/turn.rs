//! TURN credentials in the TURN REST scheme coturn understands (`--use-auth-secret`): the user name
//! carries its own expiry, the password is an HMAC of it under the secret shared with coturn.

use base64::engine::general_purpose::STANDARD;
use base64::Engine as _;
use ring::hmac;
use sc_proto::signal::IceServer;

/// Mints credentials valid until `now + ttl_secs` for `id` (a label, e.g. the appointment).
pub fn credentials(urls: &[String], secret: &str, id: &str, now: i64, ttl_secs: i64) -> IceServer {
    let username = format!("{}:{id}", now + ttl_secs);
    let key = hmac::Key::new(hmac::HMAC_SHA1_FOR_LEGACY_USE_ONLY, secret.as_bytes());
    let credential = STANDARD.encode(hmac::sign(&key, username.as_bytes()).as_ref());
    IceServer { urls: urls.to_vec(), username, credential }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_turn_rest_draft() {
        // Computed independently: printf '1700003600:appt-1' | openssl dgst -sha1 -hmac north -binary | base64
        let c = credentials(&["turn:127.0.0.1:3478".into()], "north", "appt-1", 1_700_000_000, 3600);
        assert_eq!(c.username, "1700003600:appt-1");
        assert_eq!(c.credential, "Pio6mtVKdNSCnv6xymElJkGGfGQ=");
    }
}

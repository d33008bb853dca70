//! The one-time enrolment token as IT staff carry it: `sce1.<secret>.<CA SHA-256>`, base64url parts.
//! Defined once here so the server that prints it and the laptop that reads it cannot disagree.

use crate::Bytes;
use std::fmt;
use std::str::FromStr;

/// A parsed enrolment token. The fingerprint lets a laptop pin the server's CA on first contact.
#[derive(Clone, PartialEq, Eq)]
pub struct EnrolToken {
    /// The secret part (the server stores only its hash).
    pub secret: String,
    /// SHA-256 of the server CA's DER.
    pub ca_fingerprint: [u8; 32],
}

impl fmt::Debug for EnrolToken {
    // Never the secret: Debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("EnrolToken(..)")
    }
}

impl fmt::Display for EnrolToken {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sce1.{}.{}", self.secret, Bytes(self.ca_fingerprint))
    }
}

impl FromStr for EnrolToken {
    type Err = crate::IdError;
    fn from_str(s: &str) -> Result<Self, crate::IdError> {
        let mut parts = s.trim().split('.');
        let (Some("sce1"), Some(secret), Some(fp), None) = (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(crate::IdError::EnrolToken);
        };
        let secret_ok =
            secret.len() >= 16 && secret.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        let fp = Bytes::<[u8; 32]>::parse(fp).map_err(|_| crate::IdError::EnrolToken)?;
        if !secret_ok {
            return Err(crate::IdError::EnrolToken);
        }
        Ok(EnrolToken { secret: secret.to_owned(), ca_fingerprint: fp.0 })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_bad_shapes() {
        let t = EnrolToken { secret: "abcdefghijklmnopqrstuv".into(), ca_fingerprint: [3; 32] };
        assert_eq!(t.to_string().parse::<EnrolToken>(), Ok(t.clone()));
        assert_eq!(format!("{t:?}"), "EnrolToken(..)");
        for bad in ["", "sce1.short.x", "sce2.abcdefghijklmnopqrstuv.AAAA", "sce1.abcdefghijklmnopqrstuv", "sce1.a b.c"]
        {
            assert!(bad.parse::<EnrolToken>().is_err(), "{bad}");
        }
    }
}

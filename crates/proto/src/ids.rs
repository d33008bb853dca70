//! Identifiers with a fixed shape, parsed once at the edge.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A device identifier: 32 lowercase hex characters (128 random bits), chosen by the server.
#[derive(Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct DeviceId(String);

/// An identifier that does not have its required shape.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum IdError {
    /// A device id must be 32 lowercase hex characters.
    #[error("a device id is 32 lowercase hex characters")]
    DeviceId,
    /// An enrolment token is `sce1.<secret>.<fingerprint>`.
    #[error("the enrolment token is malformed")]
    EnrolToken,
}

impl DeviceId {
    /// Makes a device id from 16 random bytes.
    pub fn from_random(bytes: [u8; 16]) -> Self {
        let mut s = String::with_capacity(32);
        for b in bytes {
            s.push_str(&format!("{b:02x}"));
        }
        DeviceId(s)
    }

    /// The id as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for DeviceId {
    type Error = IdError;
    fn try_from(s: String) -> Result<Self, IdError> {
        let ok = s.len() == 32 && s.bytes().all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
        if ok {
            Ok(DeviceId(s))
        } else {
            Err(IdError::DeviceId)
        }
    }
}

impl std::str::FromStr for DeviceId {
    type Err = IdError;
    fn from_str(s: &str) -> Result<Self, IdError> {
        DeviceId::try_from(s.to_owned())
    }
}

impl From<DeviceId> for String {
    fn from(id: DeviceId) -> String {
        id.0
    }
}

impl fmt::Display for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Debug for DeviceId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DeviceId({})", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shape_is_enforced() {
        let id = DeviceId::from_random([0xab; 16]);
        assert_eq!(id.as_str().len(), 32);
        assert_eq!(id.as_str().parse::<DeviceId>(), Ok(id));
        assert!("ABAB".parse::<DeviceId>().is_err());
        assert!("../../etc/passwd0000000000000000".parse::<DeviceId>().is_err());
    }
}

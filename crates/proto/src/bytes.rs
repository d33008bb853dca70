//! Byte strings on the wire: unpadded base64url text, parsed into exact-length arrays.

use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// Bytes carried as base64url text; `T` is `[u8; N]` (exact length) or `Vec<u8>`.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct Bytes<T>(pub T);

/// A byte field that did not decode.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum DecodeError {
    /// The text is not unpadded base64url.
    #[error("not base64url")]
    Base64,
    /// The decoded bytes have the wrong length.
    #[error("expected {expected} bytes, got {got}")]
    Length {
        /// Required length.
        expected: usize,
        /// Length found.
        got: usize,
    },
}

impl<T: AsRef<[u8]>> fmt::Display for Bytes<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&URL_SAFE_NO_PAD.encode(self.0.as_ref()))
    }
}

impl<T: AsRef<[u8]>> fmt::Debug for Bytes<T> {
    // Lengths only: byte fields may be keys or nonces, and Debug output ends up in logs.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Bytes(len={})", self.0.as_ref().len())
    }
}

impl<const N: usize> Bytes<[u8; N]> {
    /// Parses base64url text into exactly `N` bytes.
    pub fn parse(text: &str) -> Result<Self, DecodeError> {
        let raw = URL_SAFE_NO_PAD.decode(text).map_err(|_| DecodeError::Base64)?;
        let got = raw.len();
        raw.try_into().map(Bytes).map_err(|_| DecodeError::Length { expected: N, got })
    }
}

impl Bytes<Vec<u8>> {
    /// Parses base64url text of any length.
    pub fn parse(text: &str) -> Result<Self, DecodeError> {
        URL_SAFE_NO_PAD.decode(text).map(Bytes).map_err(|_| DecodeError::Base64)
    }
}

impl<T: AsRef<[u8]>> Serialize for Bytes<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&self.to_string())
    }
}

impl<'de, const N: usize> Deserialize<'de> for Bytes<[u8; N]> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

impl<'de> Deserialize<'de> for Bytes<Vec<u8>> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(d)?;
        Self::parse(&text).map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exact_length_is_enforced() {
        assert_eq!(Bytes::<[u8; 2]>::parse("AAE").expect("two bytes").0, [0, 1]);
        assert_eq!(Bytes::<[u8; 3]>::parse("AAE"), Err(DecodeError::Length { expected: 3, got: 2 }));
        assert_eq!(Bytes::<[u8; 2]>::parse("!!"), Err(DecodeError::Base64));
    }

    #[test]
    fn debug_hides_content() {
        assert_eq!(format!("{:?}", Bytes([1u8, 2, 3])), "Bytes(len=3)");
    }
}

//! The server's own secret (`server.key`: 32 random bytes, 0600, beside the TLS and command keys
//! and never in the database) and the keys derived from it by HKDF, one per purpose: the audit
//! chain's link key, and the key staff TOTP seeds are sealed under. A copy of the database alone
//! (a backup, an SQL injection) then yields neither a way to rewrite the audit log nor a seed.

use crate::Error;
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, AES_256_GCM, NONCE_LEN};
use ring::hkdf::{Salt, HKDF_SHA256};

/// The server's audit key. Every row's link is an HMAC-SHA256 under it, so rewriting the log
/// with recomputed links needs this key as well as the database. Derived from `server.key`
/// (below), never in the database.
#[derive(Clone)]
pub struct AuditKey(ring::hmac::Key);

impl std::fmt::Debug for AuditKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("AuditKey(..)")
    }
}

impl AuditKey {
    /// The key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Self {
        AuditKey(ring::hmac::Key::new(ring::hmac::HMAC_SHA256, bytes))
    }

    /// The link of a row whose encoding (after the previous link) is `encoded`.
    pub fn link(&self, encoded: &[u8]) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(ring::hmac::sign(&self.0, encoded).as_ref());
        out
    }
}

/// What a sealed value starts with (a base32 TOTP seed never does: no lower case, no colon).
pub const SEALED_PREFIX: &str = "sealed1:";

/// A key sealing short secrets (TOTP seeds) with AES-256-GCM, bound to a label (the user name).
#[derive(Clone)]
pub struct SealKey(std::sync::Arc<LessSafeKey>);

impl std::fmt::Debug for SealKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SealKey(..)")
    }
}

/// The keys the database connection holds (`db::open`).
#[derive(Debug, Clone)]
pub struct ServerKeys {
    /// Links the audit chain.
    pub audit: AuditKey,
    /// Seals TOTP seeds.
    pub seal: SealKey,
    /// Seals the messages instances exchange over the database (crate::bus): PostgreSQL lets
    /// any role that may connect listen to and send notifications.
    pub bus: SealKey,
}

/// One HKDF output of 32 bytes.
struct Len32;
impl ring::hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

impl ServerKeys {
    /// The keys derived from the server secret `secret`.
    pub fn derive(secret: &[u8; 32]) -> Result<Self, Error> {
        let prk = Salt::new(HKDF_SHA256, b"secureconsult/server-key/v1").extract(secret);
        let expand = |label: &'static [u8]| -> Result<[u8; 32], Error> {
            let mut out = [0u8; 32];
            let info = [label];
            prk.expand(&info, Len32)
                .and_then(|okm| okm.fill(&mut out))
                .map_err(|_| Error::Crypto("deriving a server key".into()))?;
            Ok(out)
        };
        let audit = AuditKey::from_bytes(&expand(b"audit-link")?);
        let sealing = |label: &'static [u8]| -> Result<SealKey, Error> {
            let key = UnboundKey::new(&AES_256_GCM, &expand(label)?).map_err(|_| Error::Crypto("seal key".into()))?;
            Ok(SealKey(std::sync::Arc::new(LessSafeKey::new(key))))
        };
        Ok(ServerKeys { audit, seal: sealing(b"totp-seal")?, bus: sealing(b"rooms-bus")? })
    }

    /// Fresh random keys (an in-memory database's).
    pub fn random() -> Result<Self, Error> {
        let mut secret = [0u8; 32];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut secret)
            .map_err(|_| Error::Crypto("random server key".into()))?;
        Self::derive(&secret)
    }
}

impl SealKey {
    /// `plain` sealed for `label`: `sealed1:` and base64 of nonce || ciphertext || tag.
    pub fn seal(&self, plain: &str, label: &str) -> Result<String, Error> {
        use base64::Engine as _;
        let mut nonce = [0u8; NONCE_LEN];
        ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut nonce)
            .map_err(|_| Error::Crypto("random nonce".into()))?;
        let mut buf = plain.as_bytes().to_vec();
        self.0
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(label.as_bytes()), &mut buf)
            .map_err(|_| Error::Crypto("sealing".into()))?;
        let mut out = nonce.to_vec();
        out.extend_from_slice(&buf);
        Ok(format!("{SEALED_PREFIX}{}", base64::engine::general_purpose::STANDARD.encode(out)))
    }

    /// Opens what [`SealKey::seal`] made for `label`; anything else (another key, another label,
    /// an edit) is an error.
    pub fn open(&self, sealed: &str, label: &str) -> Result<String, Error> {
        use base64::Engine as _;
        let bad = || Error::Crypto("a sealed secret does not open under this server's key".into());
        let body = sealed.strip_prefix(SEALED_PREFIX).ok_or_else(bad)?;
        let bytes = base64::engine::general_purpose::STANDARD.decode(body).map_err(|_| bad())?;
        if bytes.len() < NONCE_LEN {
            return Err(bad());
        }
        let (nonce, rest) = bytes.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| bad())?;
        let mut rest = rest.to_vec();
        let plain = self.0.open_in_place(nonce, Aad::from(label.as_bytes()), &mut rest).map_err(|_| bad())?;
        String::from_utf8(plain.to_vec()).map_err(|_| bad())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sealed_seed_opens_only_with_its_key_and_label() {
        let keys = ServerKeys::derive(&[7; 32]).expect("keys");
        let sealed = keys.seal.seal("JBSWY3DPEHPK3PXP", "nurse.a").expect("seal");
        assert!(sealed.starts_with(SEALED_PREFIX) && !sealed.contains("JBSWY3DP"), "{sealed}");
        assert_eq!(keys.seal.open(&sealed, "nurse.a").expect("open"), "JBSWY3DPEHPK3PXP");
        assert!(keys.seal.open(&sealed, "nurse.b").is_err(), "bound to its label");
        let other = ServerKeys::derive(&[8; 32]).expect("keys");
        assert!(other.seal.open(&sealed, "nurse.a").is_err(), "bound to its key");
        assert!(keys.seal.open("JBSWY3DPEHPK3PXP", "nurse.a").is_err(), "plain text is not sealed");
        let mut edited = sealed.clone();
        edited.pop();
        edited.push(if sealed.ends_with('A') { 'B' } else { 'A' });
        assert!(keys.seal.open(&edited, "nurse.a").is_err());
        // The same key derivation each time; the two purposes differ.
        let again = ServerKeys::derive(&[7; 32]).expect("keys");
        assert_eq!(again.audit.link(b"x"), keys.audit.link(b"x"));
        assert_ne!(keys.audit.link(b"x"), other.audit.link(b"x"));
    }
}

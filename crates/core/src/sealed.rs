//! The sealed config: AEAD-encrypted with a key derived from the exchange key and the keystore
//! share, bound to the device id and format version, written atomically.

use crate::{atomic, Error};
use ring::aead::{Aad, LessSafeKey, Nonce, UnboundKey, CHACHA20_POLY1305, NONCE_LEN};
use ring::hkdf;
use ring::rand::{SecureRandom, SystemRandom};
use sc_proto::{DeviceId, Policy, PrisonInfo};
use serde::{Deserialize, Serialize};
use std::path::Path;
use zeroize::Zeroizing;

/// File magic of a sealed config.
const MAGIC: &[u8; 4] = b"SCCF";
/// Format version of the sealed file; part of the associated data.
pub const SEALED_VERSION: u16 = 1;
const HEADER_LEN: usize = 4 + 2 + NONCE_LEN;

/// What the sealed file protects: everything the kiosk needs once unlocked.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Config {
    /// Must equal the enrolment record's device id (checked after opening).
    pub device_id: DeviceId,
    /// The prison this laptop belongs to.
    pub prison: PrisonInfo,
    /// The care server's base URL.
    pub server_url: String,
    /// Lease, idle and dead-man settings.
    pub policy: Policy,
    /// When the laptop was enrolled, Unix seconds.
    pub enrolled_at: i64,
}

/// The config's encryption key; wiped on drop.
#[derive(Clone)]
pub struct DataKey(Zeroizing<[u8; 32]>);

impl std::fmt::Debug for DataKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DataKey(..)")
    }
}

struct Len32;
impl hkdf::KeyType for Len32 {
    fn len(&self) -> usize {
        32
    }
}

impl DataKey {
    /// Derives the data key: HKDF-SHA256 over the exchange key `K` and the keystore share,
    /// with the device id as context. Both inputs are needed; neither alone decrypts.
    pub fn derive(exchange_key: &[u8; 32], local_share: &[u8; 32], device_id: &DeviceId) -> Result<Self, Error> {
        let mut ikm = Zeroizing::new([0u8; 64]);
        ikm[..32].copy_from_slice(exchange_key);
        ikm[32..].copy_from_slice(local_share);
        let salt = hkdf::Salt::new(hkdf::HKDF_SHA256, b"secureconsult/config-key/v1");
        let prk = salt.extract(ikm.as_ref());
        let info = [device_id.as_str().as_bytes()];
        let okm = prk.expand(&info, Len32).map_err(|_| Error::Crypto("hkdf expand"))?;
        let mut key = Zeroizing::new([0u8; 32]);
        okm.fill(key.as_mut()).map_err(|_| Error::Crypto("hkdf fill"))?;
        Ok(DataKey(key))
    }

    /// Wraps raw key bytes (tests and tools that try keys).
    pub fn from_bytes(bytes: [u8; 32]) -> Self {
        DataKey(Zeroizing::new(bytes))
    }

    fn aead(&self) -> Result<LessSafeKey, Error> {
        UnboundKey::new(&CHACHA20_POLY1305, self.0.as_ref())
            .map(LessSafeKey::new)
            .map_err(|_| Error::Crypto("aead key"))
    }
}

fn aad(device_id: &DeviceId) -> Vec<u8> {
    let mut aad = Vec::with_capacity(6 + 32);
    aad.extend_from_slice(MAGIC);
    aad.extend_from_slice(&SEALED_VERSION.to_be_bytes());
    aad.extend_from_slice(device_id.as_str().as_bytes());
    aad
}

/// Encrypts `config` into the sealed file format.
pub fn seal(config: &Config, key: &DataKey) -> Result<Vec<u8>, Error> {
    let mut nonce = [0u8; NONCE_LEN];
    // A random nonce per write: a laptop re-seals a handful of times, far from the 2^32 bound.
    SystemRandom::new().fill(&mut nonce).map_err(|_| Error::Crypto("random nonce"))?;
    let plain = Zeroizing::new(
        serde_json::to_vec(config).map_err(|e| Error::Corrupt { what: "the config", why: e.to_string() })?,
    );
    let mut body = plain.to_vec();
    key.aead()?
        .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(aad(&config.device_id)), &mut body)
        .map_err(|_| Error::Crypto("aead seal"))?;
    let mut out = Vec::with_capacity(HEADER_LEN + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&SEALED_VERSION.to_be_bytes());
    out.extend_from_slice(&nonce);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decrypts a sealed file; the device id must match the one it was sealed for.
pub fn open(sealed: &[u8], key: &DataKey, device_id: &DeviceId) -> Result<Config, Error> {
    if sealed.len() < HEADER_LEN + CHACHA20_POLY1305.tag_len() || &sealed[..4] != MAGIC {
        return Err(Error::Corrupt { what: "the sealed config", why: "not a sealed config file".into() });
    }
    let version = u16::from_be_bytes([sealed[4], sealed[5]]);
    if version != SEALED_VERSION {
        return Err(Error::Corrupt { what: "the sealed config", why: format!("unknown format {version}") });
    }
    let mut nonce = [0u8; NONCE_LEN];
    nonce.copy_from_slice(&sealed[6..HEADER_LEN]);
    let mut body = Zeroizing::new(sealed[HEADER_LEN..].to_vec());
    let plain = key
        .aead()?
        .open_in_place(Nonce::assume_unique_for_key(nonce), Aad::from(aad(device_id)), body.as_mut())
        .map_err(|_| Error::SealBroken)?;
    let config: Config =
        serde_json::from_slice(plain).map_err(|e| Error::Corrupt { what: "the sealed config", why: e.to_string() })?;
    if &config.device_id != device_id {
        return Err(Error::SealBroken);
    }
    Ok(config)
}

/// Seals and writes atomically.
pub fn write(path: &Path, config: &Config, key: &DataKey) -> Result<(), Error> {
    atomic::write(path, &seal(config, key)?)
}

/// Reads and opens.
pub fn read(path: &Path, key: &DataKey, device_id: &DeviceId) -> Result<Config, Error> {
    let bytes = std::fs::read(path).map_err(Error::io("reading the sealed config"))?;
    open(&bytes, key, device_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(id: &DeviceId) -> Config {
        Config {
            device_id: id.clone(),
            prison: PrisonInfo { id: 1, name: "HMP Test".into() },
            server_url: "https://127.0.0.1:1".into(),
            policy: Policy { lease_secs: 3600, idle_secs: 600, dead_man_days: 14 },
            enrolled_at: 0,
        }
    }

    #[test]
    fn round_trip_and_tamper_detection() {
        let id = DeviceId::from_random([1; 16]);
        let key = DataKey::derive(&[2; 32], &[3; 32], &id).expect("derive");
        let sealed = seal(&sample(&id), &key).expect("seal");
        assert_eq!(open(&sealed, &key, &id).expect("open"), sample(&id));

        let mut flipped = sealed.clone();
        let last = flipped.len() - 1;
        flipped[last] ^= 1;
        assert!(matches!(open(&flipped, &key, &id), Err(Error::SealBroken)));

        let other_id = DeviceId::from_random([9; 16]);
        assert!(matches!(open(&sealed, &key, &other_id), Err(Error::SealBroken)), "device id is bound");

        let other_key = DataKey::derive(&[2; 32], &[4; 32], &id).expect("derive");
        assert!(matches!(open(&sealed, &other_key, &id), Err(Error::SealBroken)), "the share is needed");

        let mut bumped = sealed;
        bumped[5] = 9;
        assert!(matches!(open(&bumped, &key, &id), Err(Error::Corrupt { .. })), "version is checked");
        assert!(matches!(open(b"garbage", &key, &id), Err(Error::Corrupt { .. })));
    }
}

//! The device's secrets in the OS keystore (Secret Service via keyring-core): the Ed25519 device
//! key and the local key share, and the dead-man timer's key with the enrolment time
//! ([`ContactKey`]). There is deliberately no plain-file fallback.

use crate::contact::ContactKey;
use crate::Error;
use keyring_core::{CredentialStore, Error as KeyringError};
use ring::rand::{SecureRandom, SystemRandom};
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use sc_proto::{Bytes, Signed};
use std::sync::Arc;
use zeroize::Zeroizing;

const SERVICE: &str = "secureconsult-kiosk";
const FORMAT: u8 = 1;

/// The device's secrets; wiped from memory on drop.
pub struct DeviceSecrets {
    signing_pkcs8: Zeroizing<Vec<u8>>,
    local_share: Zeroizing<[u8; 32]>,
}

impl std::fmt::Debug for DeviceSecrets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DeviceSecrets(..)")
    }
}

impl DeviceSecrets {
    /// Generates a new device key and local share.
    pub fn generate() -> Result<Self, Error> {
        let rng = SystemRandom::new();
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&rng).map_err(|_| Error::Crypto("device key generation"))?;
        let mut share = Zeroizing::new([0u8; 32]);
        rng.fill(share.as_mut()).map_err(|_| Error::Crypto("random share"))?;
        Ok(DeviceSecrets { signing_pkcs8: Zeroizing::new(pkcs8.as_ref().to_vec()), local_share: share })
    }

    /// The signing key pair.
    pub fn signing_key(&self) -> Result<Ed25519KeyPair, Error> {
        Ed25519KeyPair::from_pkcs8(&self.signing_pkcs8).map_err(|_| Error::KeysMissing)
    }

    /// The device's public key.
    pub fn public_key(&self) -> Result<[u8; 32], Error> {
        let kp = self.signing_key()?;
        kp.public_key().as_ref().try_into().map_err(|_| Error::Crypto("ed25519 public key length"))
    }

    /// Signs `payload` with the device key under a signing `context` (`sc_proto::SIG_CONTEXT_*`),
    /// as every device-signed request and receipt is.
    pub fn sign(&self, context: &[u8], payload: Vec<u8>) -> Result<Signed, Error> {
        let sig = self.signing_key()?.sign(&sc_proto::signing_input(context, &payload));
        let signature: [u8; 64] = sig.as_ref().try_into().map_err(|_| Error::Crypto("ed25519 signature length"))?;
        Ok(Signed { payload: Bytes(payload), signature: Bytes(signature) })
    }

    /// The local key share (the half of the data key's input that never leaves the laptop).
    pub fn local_share(&self) -> &[u8; 32] {
        &self.local_share
    }

    fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(1 + 32 + self.signing_pkcs8.len()));
        out.push(FORMAT);
        out.extend_from_slice(self.local_share.as_ref());
        out.extend_from_slice(&self.signing_pkcs8);
        out
    }

    fn decode(bytes: &[u8]) -> Result<Self, Error> {
        if bytes.len() <= 33 || bytes[0] != FORMAT {
            return Err(Error::KeysMissing);
        }
        let mut share = Zeroizing::new([0u8; 32]);
        share.copy_from_slice(&bytes[1..33]);
        let secrets = DeviceSecrets { signing_pkcs8: Zeroizing::new(bytes[33..].to_vec()), local_share: share };
        secrets.signing_key()?;
        Ok(secrets)
    }
}

/// Runs a blocking keystore call (D-Bus) off the async runtime.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, Error> + Send + 'static,
) -> Result<T, Error> {
    tokio::task::spawn_blocking(f).await.map_err(|_| Error::InvalidState("keystore task panicked"))?
}

/// A handle on the OS keystore.
#[derive(Clone)]
pub struct Keystore {
    store: Arc<CredentialStore>,
}

impl std::fmt::Debug for Keystore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Keystore({})", self.store.vendor())
    }
}

fn unavailable(e: KeyringError) -> Error {
    Error::KeystoreUnavailable(e.to_string())
}

impl Keystore {
    /// Connects to the Secret Service on the session bus. Blocking: call it off the async runtime.
    pub fn secret_service() -> Result<Self, Error> {
        let store = zbus_secret_service_keyring_store::Store::new().map_err(unavailable)?;
        Ok(Keystore { store })
    }

    /// Uses another keyring-core store (for example the kernel keyutils store).
    pub fn from_store(store: Arc<CredentialStore>) -> Self {
        Keystore { store }
    }

    fn entry(&self, profile: &str) -> Result<keyring_core::Entry, Error> {
        self.store.build(SERVICE, &format!("device:{profile}"), None).map_err(unavailable)
    }

    fn contact_entry(&self, profile: &str) -> Result<keyring_core::Entry, Error> {
        self.store.build(SERVICE, &format!("contact:{profile}"), None).map_err(unavailable)
    }

    /// Stores the dead-man timer's key under `profile`.
    pub fn save_contact_key(&self, profile: &str, key: &ContactKey) -> Result<(), Error> {
        self.contact_entry(profile)?.set_secret(&key.encode()).map_err(unavailable)
    }

    /// Loads the dead-man timer's key; [`Error::KeysMissing`] when there is none.
    pub fn load_contact_key(&self, profile: &str) -> Result<ContactKey, Error> {
        match self.contact_entry(profile)?.get_secret() {
            Ok(bytes) => ContactKey::decode(&Zeroizing::new(bytes)),
            Err(KeyringError::NoEntry) => Err(Error::KeysMissing),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Stores the device's secrets under `profile`.
    pub fn save(&self, profile: &str, secrets: &DeviceSecrets) -> Result<(), Error> {
        self.entry(profile)?.set_secret(&secrets.encode()).map_err(unavailable)
    }

    /// Loads the device's secrets; [`Error::KeysMissing`] when there are none.
    pub fn load(&self, profile: &str) -> Result<DeviceSecrets, Error> {
        match self.entry(profile)?.get_secret() {
            Ok(bytes) => {
                let bytes = Zeroizing::new(bytes);
                DeviceSecrets::decode(&bytes)
            }
            Err(KeyringError::NoEntry) => Err(Error::KeysMissing),
            Err(e) => Err(unavailable(e)),
        }
    }

    /// Deletes the device's secrets and the dead-man timer's key; absent is fine.
    pub fn delete(&self, profile: &str) -> Result<(), Error> {
        for entry in [self.entry(profile)?, self.contact_entry(profile)?] {
            match entry.delete_credential() {
                Ok(()) | Err(KeyringError::NoEntry) => {}
                Err(e) => return Err(unavailable(e)),
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_encode_round_trip() {
        let s = DeviceSecrets::generate().expect("generate");
        let back = DeviceSecrets::decode(&s.encode()).expect("decode");
        assert_eq!(back.public_key().expect("pk"), s.public_key().expect("pk"));
        assert_eq!(back.local_share(), s.local_share());
        assert!(matches!(DeviceSecrets::decode(&[1, 2, 3]), Err(Error::KeysMissing)));
    }

    #[test]
    fn a_signature_verifies_under_the_device_key_and_its_context_only() {
        use ring::signature::{UnparsedPublicKey, ED25519};
        let s = DeviceSecrets::generate().expect("generate");
        let signed = s.sign(b"context-a", b"payload".to_vec()).expect("sign");
        let key = UnparsedPublicKey::new(&ED25519, s.public_key().expect("pk"));
        assert!(key.verify(&sc_proto::signing_input(b"context-a", b"payload"), &signed.signature.0).is_ok());
        assert!(key.verify(&sc_proto::signing_input(b"context-b", b"payload"), &signed.signature.0).is_err());
    }
}

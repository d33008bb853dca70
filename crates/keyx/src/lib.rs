//! The McCallum-Relyea exchange (as in Tang) over ristretto255, with one server secret per device.
//!
//! Server: per device a secret scalar `s` and public point `S = s·G`.
//! Provision (laptop, once): random `c`; keep `C = c·G`; the key is `K = c·S`; forget `c`.
//! Recover (laptop, each activation): random `e`; send `X = C + e·G`; the server answers
//! `Y = s·X`; the laptop computes `K = Y − e·S = s·C = c·S`.
//! The server sees only `X`, which is uniformly random to it, so it never learns `K`; and once `s`
//! is destroyed nobody can compute `K` from `C` and `S` (that is the Diffie-Hellman problem).
//! See docs/activation.md for how this is combined with the device key and the keystore share.
#![forbid(unsafe_code)]

use curve25519_dalek::constants::RISTRETTO_BASEPOINT_POINT as G;
use curve25519_dalek::ristretto::{CompressedRistretto, RistrettoPoint};
use curve25519_dalek::scalar::Scalar;
use curve25519_dalek::traits::Identity;
use ring::rand::{SecureRandom, SystemRandom};
use zeroize::{Zeroize, Zeroizing};

/// An exchange failure.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[non_exhaustive]
pub enum Error {
    /// A point on the wire is not a canonical ristretto255 encoding, or is the identity.
    #[error("not a valid ristretto255 point")]
    BadPoint,
    /// A stored secret is not a canonical scalar, or is zero.
    #[error("not a valid secret scalar")]
    BadScalar,
    /// The system random source failed.
    #[error("the system random source failed")]
    Random,
}

/// A shared key `K`: 32 bytes, wiped on drop.
pub type SharedKey = Zeroizing<[u8; 32]>;

fn random_scalar(rng: &SystemRandom) -> Result<Scalar, Error> {
    let mut wide = Zeroizing::new([0u8; 64]);
    rng.fill(wide.as_mut()).map_err(|_| Error::Random)?;
    // A wide reduction gives a uniform scalar; zero has probability 2^-252 but is still refused.
    let s = Scalar::from_bytes_mod_order_wide(&wide);
    if s == Scalar::ZERO {
        return Err(Error::Random);
    }
    Ok(s)
}

fn decode_point(bytes: &[u8; 32]) -> Result<RistrettoPoint, Error> {
    let p = CompressedRistretto(*bytes).decompress().ok_or(Error::BadPoint)?;
    // The identity would make the answer independent of the secret: refuse it.
    if p == RistrettoPoint::identity() {
        return Err(Error::BadPoint);
    }
    Ok(p)
}

/// One device's server-side secret `s`. Destroying it is the crypto-shred.
pub struct ServerSecret(Scalar);

impl std::fmt::Debug for ServerSecret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ServerSecret(..)")
    }
}

impl Drop for ServerSecret {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl ServerSecret {
    /// Makes a new secret and its public point `S`.
    pub fn generate() -> Result<(Self, [u8; 32]), Error> {
        let s = random_scalar(&SystemRandom::new())?;
        let public = (s * G).compress().to_bytes();
        Ok((ServerSecret(s), public))
    }

    /// Loads a stored secret.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<Self, Error> {
        let s: Option<Scalar> = Scalar::from_canonical_bytes(*bytes).into();
        match s {
            Some(s) if s != Scalar::ZERO => Ok(ServerSecret(s)),
            _ => Err(Error::BadScalar),
        }
    }

    /// The secret's bytes, for storage.
    pub fn to_bytes(&self) -> Zeroizing<[u8; 32]> {
        Zeroizing::new(self.0.to_bytes())
    }

    /// The public point `S = s·G`.
    pub fn public(&self) -> [u8; 32] {
        (self.0 * G).compress().to_bytes()
    }

    /// Answers a blinded request: `Y = s·X`.
    pub fn evaluate(&self, blinded: &[u8; 32]) -> Result<[u8; 32], Error> {
        let x = decode_point(blinded)?;
        Ok((self.0 * x).compress().to_bytes())
    }
}

/// The laptop's provisioning: returns `(C, K)`. The caller seals with `K` and keeps only `C`.
pub fn provision(server_public: &[u8; 32]) -> Result<([u8; 32], SharedKey), Error> {
    let big_s = decode_point(server_public)?;
    let mut c = random_scalar(&SystemRandom::new())?;
    let client_public = (c * G).compress().to_bytes();
    let key = Zeroizing::new((c * big_s).compress().to_bytes());
    c.zeroize();
    Ok((client_public, key))
}

/// The laptop's blinding factor `e` for one activation; wiped on drop.
pub struct Blinding(Scalar);

impl std::fmt::Debug for Blinding {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Blinding(..)")
    }
}

impl Drop for Blinding {
    fn drop(&mut self) {
        self.0.zeroize();
    }
}

impl Blinding {
    /// Starts a recovery: returns `e` and `X = C + e·G` to send.
    pub fn blind(client_public: &[u8; 32]) -> Result<(Self, [u8; 32]), Error> {
        let big_c = decode_point(client_public)?;
        let e = random_scalar(&SystemRandom::new())?;
        let x = (big_c + e * G).compress().to_bytes();
        Ok((Blinding(e), x))
    }

    /// Finishes a recovery: `K = Y − e·S`.
    pub fn unblind(self, evaluated: &[u8; 32], server_public: &[u8; 32]) -> Result<SharedKey, Error> {
        let y = decode_point(evaluated)?;
        let big_s = decode_point(server_public)?;
        Ok(Zeroizing::new((y - self.0 * big_s).compress().to_bytes()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovery_yields_the_provisioned_key() {
        let (secret, public) = ServerSecret::generate().expect("rng");
        let (client_public, key) = provision(&public).expect("valid S");
        for _ in 0..3 {
            let (blinding, x) = Blinding::blind(&client_public).expect("valid C");
            let y = secret.evaluate(&x).expect("valid X");
            assert_eq!(*blinding.unblind(&y, &public).expect("valid Y"), *key);
        }
    }

    #[test]
    fn another_secret_yields_another_key() {
        let (_, public) = ServerSecret::generate().expect("rng");
        let (other, _) = ServerSecret::generate().expect("rng");
        let (client_public, key) = provision(&public).expect("valid S");
        let (blinding, x) = Blinding::blind(&client_public).expect("valid C");
        let y = other.evaluate(&x).expect("valid X");
        assert_ne!(*blinding.unblind(&y, &public).expect("valid Y"), *key);
    }

    #[test]
    fn blinded_requests_differ_each_time() {
        let (_, public) = ServerSecret::generate().expect("rng");
        let (client_public, _) = provision(&public).expect("valid S");
        let (_, x1) = Blinding::blind(&client_public).expect("ok");
        let (_, x2) = Blinding::blind(&client_public).expect("ok");
        assert_ne!(x1, x2);
        assert_ne!(x1, client_public);
    }

    #[test]
    fn bad_points_and_scalars_are_refused() {
        let (secret, _) = ServerSecret::generate().expect("rng");
        let identity = RistrettoPoint::identity().compress().to_bytes();
        assert_eq!(secret.evaluate(&identity), Err(Error::BadPoint));
        assert_eq!(secret.evaluate(&[0xff; 32]), Err(Error::BadPoint));
        assert_eq!(ServerSecret::from_bytes(&[0; 32]).map(|_| ()), Err(Error::BadScalar));
        assert_eq!(ServerSecret::from_bytes(&[0xff; 32]).map(|_| ()), Err(Error::BadScalar));
        let round = ServerSecret::from_bytes(&secret.to_bytes()).expect("canonical");
        assert_eq!(round.public(), secret.public());
    }
}

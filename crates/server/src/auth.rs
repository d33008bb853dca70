//! Staff credentials: Argon2id password hashes and RFC 6238 TOTP codes (SHA-1, 6 digits, 30 s).

use crate::config::Argon2Params;
use crate::Error;
use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use totp_rs::{Secret, TOTP};

const ISSUER: &str = "SecureConsult";
/// TOTP time step, seconds.
pub const TOTP_STEP: i64 = 30;

fn hasher(p: Argon2Params) -> Result<Argon2<'static>, Error> {
    let params = Params::new(p.m_kib, p.t, p.p, None).map_err(|e| Error::Config(format!("argon2: {e}")))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password with Argon2id and a random salt; the PHC string carries the parameters.
pub fn hash_password(password: &str, p: Argon2Params) -> Result<String, Error> {
    let mut raw = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
        .map_err(|_| Error::Crypto("random salt".into()))?;
    let salt = SaltString::encode_b64(&raw).map_err(|e| Error::Crypto(format!("salt: {e}")))?;
    Ok(hasher(p)?
        .hash_password(password.as_bytes(), &salt)
        .map_err(|e| Error::Crypto(format!("argon2: {e}")))?
        .to_string())
}

/// Checks a password against a PHC string (using the parameters stored in it).
pub fn verify_password(phc: &str, password: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(hash) => Argon2::default().verify_password(password.as_bytes(), &hash).is_ok(),
        Err(_) => false,
    }
}

/// A fixed hash to verify against when the user does not exist, so that an unknown name costs
/// the same time as a wrong password.
pub fn dummy_hash(p: Argon2Params) -> Result<String, Error> {
    hash_password("no such user", p)
}

/// A new random TOTP secret (160 bits), base32.
pub fn new_totp_secret() -> String {
    Secret::generate_secret().to_encoded().to_string()
}

fn totp(secret_b32: &str, account: &str) -> Result<TOTP, Error> {
    let bytes =
        Secret::Encoded(secret_b32.to_owned()).to_bytes().map_err(|e| Error::Crypto(format!("totp secret: {e:?}")))?;
    TOTP::new(totp_rs::Algorithm::SHA1, 6, 1, 30, bytes, Some(ISSUER.to_owned()), account.to_owned())
        .map_err(|e| Error::Crypto(format!("totp: {e}")))
}

/// The `otpauth://` URI an authenticator app enrols from.
pub fn otpauth_uri(secret_b32: &str, username: &str) -> Result<String, Error> {
    Ok(totp(secret_b32, username)?.get_url())
}

/// The code for Unix time `at`.
pub fn totp_code(secret_b32: &str, at: i64) -> Result<String, Error> {
    Ok(totp(secret_b32, "x")?.generate(u64::try_from(at).unwrap_or(0)))
}

/// Finds which time step `code` belongs to, allowing one step of clock skew either way.
pub fn totp_step(secret_b32: &str, code: &str, now: i64) -> Result<Option<i64>, Error> {
    if code.len() != 6 || !code.bytes().all(|b| b.is_ascii_digit()) {
        return Ok(None);
    }
    let t = totp(secret_b32, "x")?;
    let step = now.div_euclid(TOTP_STEP);
    for s in [step - 1, step, step + 1] {
        let expected = t.generate(u64::try_from(s * TOTP_STEP).unwrap_or(0));
        if subtle::ConstantTimeEq::ct_eq(expected.as_bytes(), code.as_bytes()).into() {
            return Ok(Some(s));
        }
    }
    Ok(None)
}

/// Checks a staff member's code and, if it is good and newer than the last one accepted, records
/// its time step so it can never be used again. Call under the database lock; `Err(reason)` is the
/// refusal to audit.
pub fn consume_totp(
    c: &crate::conn::Conn<'_>,
    staff: &crate::db::Staff,
    code: &str,
    now: i64,
) -> Result<Result<(), crate::audit::Reason>, Error> {
    let Some(step) = totp_step(&staff.totp_secret, code, now)? else {
        return Ok(Err(crate::audit::Reason::BadCode));
    };
    if step <= staff.last_totp_step || !crate::db::set_totp_step(c, staff.id, step)? {
        return Ok(Err(crate::audit::Reason::ReusedCode));
    }
    Ok(Ok(()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc6238_sha1_vector() {
        // RFC 6238 appendix B: key "12345678901234567890", T = 59 -> 94287082 (8 digits); 6 digits: 287082.
        let b32 = Secret::Raw(b"12345678901234567890".to_vec()).to_encoded().to_string();
        assert_eq!(totp_code(&b32, 59).expect("code"), "287082");
        assert_eq!(totp_step(&b32, "287082", 59).expect("ok"), Some(1));
        assert_eq!(totp_step(&b32, "287082", 59 + 30).expect("ok"), Some(1), "one step of skew");
        assert_eq!(totp_step(&b32, "287082", 59 + 90).expect("ok"), None);
        assert_eq!(totp_step(&b32, "28708", 59).expect("ok"), None);
    }

    #[test]
    fn password_round_trip() {
        let p = Argon2Params { m_kib: 64, t: 1, p: 1 };
        let h = hash_password("correct horse", p).expect("hash");
        assert!(h.starts_with("$argon2id$"));
        assert!(verify_password(&h, "correct horse"));
        assert!(!verify_password(&h, "wrong"));
        assert!(!verify_password("garbage", "x"));
    }
}

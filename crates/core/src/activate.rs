//! Activation (nurse, every use): a device-signed, fresh request carrying staff credentials and
//! the blinded exchange point; the server's answer lets the laptop recover its data key in memory.

use crate::client::{client_for, ActivateAnswer, SessionToken};
use crate::clock::Clock;
use crate::keystore::{blocking, Keystore};
use crate::lock::Lease;
use crate::record::{DataDir, EnrolmentRecord};
use crate::sealed::{self, Config, DataKey};
use crate::Error;
use ring::rand::{SecureRandom, SystemRandom};
use sc_proto::{ActivatePayload, Bytes, PROTOCOL_VERSION, SIG_CONTEXT_ACTIVATE};
use std::time::Duration;
use zeroize::Zeroizing;

/// What the nurse types.
pub struct Credentials {
    /// Staff user name.
    pub username: String,
    /// Password; wiped on drop.
    pub password: Zeroizing<String>,
    /// The 6-digit code from the authenticator.
    pub totp: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Credentials({}, ..)", self.username)
    }
}

/// The unlocked config and the key that re-seals it; both dropped (and wiped) on lock.
#[derive(Debug)]
pub struct Unsealed {
    /// The config as sealed at enrolment.
    pub config: Config,
    /// The data key, kept only while unlocked.
    pub key: DataKey,
    /// The signed-in staff member's display name.
    pub staff_name: String,
    /// The server's clock at release, Unix seconds.
    pub server_time: i64,
    /// The bearer token proving this laptop is unlocked (appointments, signalling).
    pub session: SessionToken,
}

impl Lease for Unsealed {
    fn lease(&self) -> Duration {
        Duration::from_secs(self.config.policy.lease_secs)
    }

    fn idle_limit(&self) -> Duration {
        Duration::from_secs(self.config.policy.idle_secs)
    }
}

/// How a sign-in's activation came out, when the server answered.
#[derive(Debug)]
#[non_exhaustive]
pub enum Activation {
    /// The key was released and the config opened.
    Unlocked(Unsealed),
    /// The server answered with a brick command instead; it is verified against `challenge` (the
    /// request's nonce) before anything is wiped.
    Bricked {
        /// The signed command.
        command: Box<sc_proto::Signed>,
        /// The nonce the request carried, which the command must echo.
        challenge: [u8; 16],
    },
}

/// Asks the server to release the key, and opens the sealed config with it.
pub async fn activate(
    dir: &DataDir,
    keystore: &Keystore,
    record: &EnrolmentRecord,
    creds: &Credentials,
    posture: sc_proto::Posture,
) -> Result<Activation, Error> {
    let profile = dir.profile_id();
    let store = keystore.clone();
    let secrets = blocking(move || store.load(&profile)).await?;

    let (blinding, blinded) = sc_keyx::Blinding::blind(&record.client_public.0)
        .map_err(|e| Error::Corrupt { what: "the enrolment record", why: e.to_string() })?;
    let mut nonce = [0u8; 16];
    SystemRandom::new().fill(&mut nonce).map_err(|_| Error::Crypto("random nonce"))?;
    let payload = ActivatePayload {
        version: PROTOCOL_VERSION,
        device_id: record.device_id.clone(),
        nonce: Bytes(nonce),
        // The server checks freshness against its own clock: always the system's.
        timestamp: Clock::system().unix_now(),
        username: creds.username.clone(),
        password: creds.password.as_str().to_owned(),
        totp: creds.totp.clone(),
        blinded: Bytes(blinded),
        posture,
    };
    let payload = Zeroizing::new(serde_json::to_vec(&payload).map_err(|e| Error::Protocol(e.to_string()))?);
    let signed = secrets.sign(SIG_CONTEXT_ACTIVATE, payload.to_vec())?;

    let reply = match client_for(record)?.activate(&signed).await? {
        ActivateAnswer::Released(reply) => reply,
        ActivateAnswer::Bricked(command) => return Ok(Activation::Bricked { command, challenge: nonce }),
    };
    let exchange_key = blinding
        .unblind(&reply.evaluated.0, &record.exchange_public.0)
        .map_err(|e| Error::Protocol(format!("server answer: {e}")))?;
    let key = DataKey::derive(&exchange_key, secrets.local_share(), &record.device_id)?;
    let config = sealed::read(&dir.sealed_path(), &key, &record.device_id)?;
    Ok(Activation::Unlocked(Unsealed {
        config,
        key,
        staff_name: reply.staff_name,
        server_time: reply.server_time,
        session: SessionToken::new(reply.session.0),
    }))
}

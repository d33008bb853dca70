//! Enrolment (IT staff, once per laptop): make the device key, register it with a one-time token,
//! pin the server's CA, seal the config with the exchange key, then forget that key.

use crate::client::CareClient;
use crate::clock::Clock;
use crate::contact::{Contact, ContactKey, Now};
use crate::keystore::{blocking, DeviceSecrets, Keystore};
use crate::record::{DataDir, EnrolmentRecord, RECORD_VERSION};
use crate::sealed::{self, Config, DataKey};
use crate::{posture, tls, Error};
use sc_proto::{Bytes, EnrolPayload, PROTOCOL_VERSION, SIG_CONTEXT_ENROL};
use std::str::FromStr;

/// A one-time enrolment token as IT staff type it (the format is `sc_proto::EnrolToken`).
#[derive(Clone, Debug)]
pub struct EnrolmentToken(sc_proto::EnrolToken);

impl FromStr for EnrolmentToken {
    type Err = Error;
    fn from_str(s: &str) -> Result<Self, Error> {
        s.parse().map(EnrolmentToken).map_err(|_| Error::BadToken)
    }
}

impl EnrolmentToken {
    /// Assembles a token (the server's admin CLI does this).
    pub fn format(secret: &str, ca_der: &[u8]) -> String {
        sc_proto::EnrolToken { secret: secret.to_owned(), ca_fingerprint: tls::fingerprint(ca_der) }.to_string()
    }
}

/// Enrols this laptop without an asset tag (see [`enrol_as`]).
pub async fn enrol(
    dir: &DataDir,
    keystore: &Keystore,
    server_url: &str,
    token: &EnrolmentToken,
) -> Result<EnrolmentRecord, Error> {
    enrol_as(dir, keystore, server_url, token, "").await
}

/// Enrols this laptop under IT staff's `asset_tag` (with its firmware's serial number). Writes the
/// keystore entry, the sealed config, then the record (last, so a crash part-way leaves the laptop
/// "not enrolled" and IT staff simply enrol it again).
pub async fn enrol_as(
    dir: &DataDir,
    keystore: &Keystore,
    server_url: &str,
    token: &EnrolmentToken,
    asset_tag: &str,
) -> Result<EnrolmentRecord, Error> {
    if let Some(existing) = dir.load_record()? {
        return Err(Error::AlreadyEnrolled(existing.device_id.to_string()));
    }
    let clock = Clock::system();
    let secrets = DeviceSecrets::generate()?;
    let posture = tokio::task::spawn_blocking(posture::current)
        .await
        .map_err(|_| Error::InvalidState("posture task panicked"))?;
    let payload = EnrolPayload {
        version: PROTOCOL_VERSION,
        token: token.0.secret.clone(),
        device_public_key: Bytes(secrets.public_key()?),
        hostname: posture::hostname(),
        posture,
        asset_tag: asset_tag.trim().to_owned(),
        serial: posture::serial_number(),
    };
    let payload = serde_json::to_vec(&payload).map_err(|e| Error::Protocol(e.to_string()))?;
    let signed = secrets.sign(SIG_CONTEXT_ENROL, payload)?;

    let (tls_config, pin) = tls::bootstrap(token.0.ca_fingerprint)?;
    let client = CareClient::new(server_url, tls_config)?;
    let reply = client.enrol(&signed).await?;
    let ca_der = pin.ca_der().ok_or(Error::UntrustedServer)?;

    let profile = dir.profile_id();
    let store = keystore.clone();
    let enrolled_at = clock.unix_now();
    let contact_key = ContactKey::generate(enrolled_at)?;
    let (secrets, contact_key) = blocking(move || {
        store.save(&profile, &secrets)?;
        store.save_contact_key(&profile, &contact_key)?;
        Ok((secrets, contact_key))
    })
    .await?;

    let (client_public, exchange_key) = sc_keyx::provision(&reply.exchange_public.0)
        .map_err(|e| Error::Protocol(format!("server exchange key: {e}")))?;
    let data_key = DataKey::derive(&exchange_key, secrets.local_share(), &reply.device_id)?;
    drop(exchange_key);
    let config = Config {
        device_id: reply.device_id.clone(),
        prison: reply.prison.clone(),
        server_url: server_url.to_owned(),
        policy: reply.policy,
        enrolled_at,
    };
    sealed::write(&dir.sealed_path(), &config, &data_key)?;
    drop(data_key);
    // A laptop enrolled again (perhaps for another prison) learns its link afresh: the last
    // calls' record (`sc_call::link_memory`) was of the link it had then.
    crate::atomic::shred(&dir.link_path())?;

    let record = EnrolmentRecord {
        format: RECORD_VERSION,
        device_id: reply.device_id,
        server_url: server_url.to_owned(),
        ca_cert: Bytes(ca_der),
        command_public_key: reply.command_public_key,
        exchange_public: reply.exchange_public,
        client_public: Bytes(client_public),
        turn_urls: reply.turn_urls,
    };
    // The dead-man timer counts from enrolment (written before the record, which marks "enrolled").
    let now = Now { wall: enrolled_at, boot: clock.boot() };
    crate::contact::store(dir, &contact_key, &Contact::made(enrolled_at, config.policy.dead_man_days, &now))?;
    dir.store_record(&record)?;
    tracing::info!(device_id = %record.device_id, prison = %config.prison.name, "enrolled");
    Ok(record)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_shape_is_parsed() {
        let t = EnrolmentToken::format("abcdefghijklmnopqrstuv", b"ca");
        let parsed: EnrolmentToken = t.parse().expect("valid");
        assert_eq!(parsed.0.ca_fingerprint, tls::fingerprint(b"ca"));
        for bad in ["", "sce1.short.x", "sce2.abcdefghijklmnopqrstuv.AAAA", "sce1.abcdefghijklmnopqrstuv", "sce1.a b.c"]
        {
            assert!(bad.parse::<EnrolmentToken>().is_err(), "{bad}");
        }
    }
}

//! Bricking, the laptop's side: verifying a brick command, and the crash-safe wipe (tombstone
//! first, then the sealed config, a signed receipt, the keystore entry, other files). Every step is
//! idempotent, so a wipe cut short by `kill -9` is finished by the next start. See docs/brick.md.

use crate::client::client_for;
use crate::keystore::{blocking, Keystore};
use crate::record::{DataDir, EnrolmentRecord};
use crate::{atomic, Error};
use ring::signature::{UnparsedPublicKey, ED25519};
use sc_proto::brick::{BrickCommand, ReceiptPayload, WipeCause, SIG_CONTEXT_BRICK, SIG_CONTEXT_RECEIPT};
use sc_proto::{Signed, PROTOCOL_VERSION};
use serde::{Deserialize, Serialize};

/// Format version of `tombstone.json`.
pub const TOMBSTONE_VERSION: u32 = 1;

/// What stays on disk for ever once a wipe has begun.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Tombstone {
    /// [`TOMBSTONE_VERSION`].
    pub format: u32,
    /// Why: a brick (with its signed command) or the dead-man timer.
    pub cause: WipeCause,
    /// The signed command, for a brick.
    pub command: Option<Signed>,
    /// The signed receipt, once made (before the device key goes).
    pub receipt: Option<Signed>,
    /// Whether the server acknowledged the receipt.
    pub acknowledged: bool,
}

/// Steps of the wipe, in order (tests stop a wipe at each).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Step {
    /// The tombstone is written.
    Tombstone,
    /// The sealed config is overwritten and removed.
    Config,
    /// The receipt is signed and stored.
    Receipt,
    /// The keystore entry is deleted.
    Keystore,
    /// Other files are removed.
    Files,
}

/// Checks a brick command: signed by the pinned command key, for this laptop, answering
/// `challenge`. Nothing is touched. The challenge is fresh (made for the one hello, poll or
/// activation this answers), so it proves the command is; the laptop's clock, which may be
/// wrong or set back, plays no part (issue #14).
pub fn verify_command(record: &EnrolmentRecord, signed: &Signed, challenge: [u8; 16]) -> Result<BrickCommand, Error> {
    let message = sc_proto::signing_input(SIG_CONTEXT_BRICK, &signed.payload.0);
    UnparsedPublicKey::new(&ED25519, &record.command_public_key.0)
        .verify(&message, &signed.signature.0)
        .map_err(|_| Error::BadCommand("not signed by this laptop's server"))?;
    let command: BrickCommand =
        serde_json::from_slice(&signed.payload.0).map_err(|_| Error::BadCommand("malformed"))?;
    if command.device_id != record.device_id {
        return Err(Error::BadCommand("meant for another laptop"));
    }
    if command.challenge.0 != challenge {
        return Err(Error::BadCommand("not an answer to this laptop's request (replayed)"));
    }
    Ok(command)
}

/// The tombstone, if a wipe has begun.
pub fn tombstone(dir: &DataDir) -> Result<Option<Tombstone>, Error> {
    let bytes = match std::fs::read(dir.tombstone_path()) {
        Ok(b) => b,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(Error::Io { what: "reading the tombstone", source: e }),
    };
    // An unreadable tombstone still means "disabled": it is only ever written whole (atomically),
    // so this is tampering, and the safe reading is the strict one.
    Ok(Some(serde_json::from_slice(&bytes).unwrap_or(Tombstone {
        format: TOMBSTONE_VERSION,
        cause: WipeCause::DeadMan { last_contact: 0 },
        command: None,
        receipt: None,
        acknowledged: false,
    })))
}

fn store(dir: &DataDir, t: &Tombstone) -> Result<(), Error> {
    let bytes =
        serde_json::to_vec_pretty(t).map_err(|e| Error::Corrupt { what: "the tombstone", why: e.to_string() })?;
    atomic::write(&dir.tombstone_path(), &bytes)
}

/// Step 1: commits to the wipe. Keeps an existing tombstone (the first cause stands).
pub fn begin(dir: &DataDir, cause: WipeCause, command: Option<Signed>) -> Result<Tombstone, Error> {
    if let Some(t) = tombstone(dir)? {
        return Ok(t);
    }
    let t = Tombstone { format: TOMBSTONE_VERSION, cause, command, receipt: None, acknowledged: false };
    store(dir, &t)?;
    tracing::warn!("wipe begun: this laptop is disabled");
    Ok(t)
}

/// Steps 2 to 5, after [`begin`]: idempotent, so a start after a crash runs it again. `on_step`
/// is told as each step completes (tests stop the process there). Returns the tombstone as left.
pub async fn finish(
    dir: &DataDir,
    keystore: &Keystore,
    record: &EnrolmentRecord,
    now: i64,
    on_step: &(dyn Fn(Step) + Sync),
) -> Result<Tombstone, Error> {
    let mut t = tombstone(dir)?.ok_or(Error::InvalidState("no wipe has begun"))?;
    on_step(Step::Tombstone);
    atomic::shred(&dir.sealed_path())?;
    atomic::sync_dir(dir.root())?;
    on_step(Step::Config);
    let profile = dir.profile_id();
    if t.receipt.is_none() {
        let store_ = keystore.clone();
        let p = profile.clone();
        match blocking(move || store_.load(&p)).await {
            Ok(secrets) => {
                let payload = ReceiptPayload {
                    version: PROTOCOL_VERSION,
                    device_id: record.device_id.clone(),
                    cause: t.cause.clone(),
                    wiped_at: now,
                };
                let bytes = serde_json::to_vec(&payload).map_err(|e| Error::Protocol(e.to_string()))?;
                t.receipt = Some(secrets.sign(SIG_CONTEXT_RECEIPT, bytes)?);
                store(dir, &t)?;
            }
            // Only possible if the key went before a receipt was made: nothing left to sign with.
            Err(Error::KeysMissing) => tracing::warn!("no device key left to sign a wipe receipt"),
            Err(e) => return Err(e),
        }
    }
    on_step(Step::Receipt);
    // The receipt goes out before the device key does (kept and re-sent if the network is down).
    if !t.acknowledged {
        t = send_receipt(dir, record, t).await?;
    }
    let store_ = keystore.clone();
    blocking(move || store_.delete(&profile)).await?;
    on_step(Step::Keystore);
    atomic::shred(&dir.contact_path())?;
    atomic::shred(&dir.link_path())?;
    if let Ok(entries) = std::fs::read_dir(dir.root()) {
        for e in entries.flatten() {
            if e.file_name().to_string_lossy().ends_with(".tmp") {
                atomic::shred(&e.path())?;
            }
        }
    }
    atomic::sync_dir(dir.root())?;
    on_step(Step::Files);
    tracing::warn!(acknowledged = t.acknowledged, "wipe finished");
    Ok(t)
}

/// Sends the stored receipt if the server has not acknowledged it; records the acknowledgement.
pub async fn send_receipt(dir: &DataDir, record: &EnrolmentRecord, mut t: Tombstone) -> Result<Tombstone, Error> {
    let Some(receipt) = t.receipt.clone() else { return Ok(t) };
    if t.acknowledged {
        return Ok(t);
    }
    let sent = match client_for(record) {
        Ok(client) => client.receipt(&receipt).await,
        Err(e) => Err(e),
    };
    match sent {
        Ok(ack) => {
            tracing::info!(state = %ack.state, "wipe receipt acknowledged");
            t.acknowledged = true;
            store(dir, &t)?;
        }
        Err(e) => tracing::warn!(error = %e, "wipe receipt not sent yet; kept for the next contact"),
    }
    Ok(t)
}

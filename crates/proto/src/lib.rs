//! Wire types shared by the kiosk and the care server: versioned, serde only, no I/O.
//!
//! Byte fields travel as unpadded base64url and are parsed into fixed-size arrays on the way in
//! ("parse, don't validate"): a message that deserialises is well-formed.
#![forbid(unsafe_code)]

pub mod brick;
mod bytes;
mod ids;
pub mod share;
pub mod signal;
mod token;
pub mod turn_url;

pub use bytes::{Bytes, DecodeError};
pub use ids::{DeviceId, IdError};
pub use token::EnrolToken;

use serde::{Deserialize, Serialize};

/// The protocol version this crate speaks; bumped on any incompatible change.
pub const PROTOCOL_VERSION: u32 = 1;

/// Domain-separation prefix for a device's signature over an enrolment request.
pub const SIG_CONTEXT_ENROL: &[u8] = b"secureconsult/enrol/v1\0";
/// Domain-separation prefix for a device's signature over an activation request.
pub const SIG_CONTEXT_ACTIVATE: &[u8] = b"secureconsult/activate/v1\0";

/// The exact bytes a device signs: a context prefix, then the payload bytes as sent.
///
/// Signing the sent bytes (not a re-serialisation) means neither side needs canonical JSON.
pub fn signing_input(context: &[u8], payload: &[u8]) -> Vec<u8> {
    let mut input = Vec::with_capacity(context.len() + payload.len());
    input.extend_from_slice(context);
    input.extend_from_slice(payload);
    input
}

/// A device-signed request: the payload is JSON carried as base64url so the signed bytes are exact.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Signed {
    /// The payload's JSON bytes.
    pub payload: Bytes<Vec<u8>>,
    /// Ed25519 signature over `signing_input(context, payload)`.
    pub signature: Bytes<[u8; 64]>,
}

/// What the laptop reports about itself; the server checks it against its policy.
#[derive(Debug, Clone, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct Posture {
    /// The kiosk's own version (semver).
    pub app_version: String,
    /// Operating system name, e.g. "Debian GNU/Linux".
    pub os: String,
    /// Operating system version.
    pub os_version: String,
    /// Kernel version.
    pub kernel: String,
    /// Seconds since boot.
    pub uptime_secs: u64,
    /// Whether the root file system is on dm-crypt (`None`: could not tell).
    #[serde(default)]
    pub root_encrypted: Option<bool>,
    /// Whether Secure Boot is on (`None`: could not tell).
    #[serde(default)]
    pub secure_boot: Option<bool>,
    /// The kernel lockdown mode: "none", "integrity" or "confidentiality".
    #[serde(default)]
    pub lockdown: String,
    /// Whether the kiosk runs in its own session: as the kiosk user, under the kiosk compositor.
    #[serde(default)]
    pub kiosk_session: bool,
    /// Whether the kiosk's firewall refused a probe to an address it never admits (`None`: not
    /// probed).
    #[serde(default)]
    pub firewall: Option<bool>,
    /// The names of the processes running.
    #[serde(default)]
    pub processes: Vec<String>,
    /// The network interfaces present.
    #[serde(default)]
    pub interfaces: Vec<String>,
    /// When packages were last installed or upgraded, Unix seconds.
    #[serde(default)]
    pub patched_at: Option<i64>,
    /// The laptop's wall clock when the report was made, Unix seconds.
    #[serde(default)]
    pub clock: i64,
}

/// The policy the server seals into the laptop's config at enrolment.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Policy {
    /// How long one activation keeps the laptop unlocked.
    pub lease_secs: u64,
    /// Inactivity after which the laptop locks itself.
    pub idle_secs: u64,
    /// Days without server contact after which the laptop wipes itself.
    pub dead_man_days: u32,
}

/// A prison as the laptop knows it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct PrisonInfo {
    /// Server-side identifier.
    pub id: i64,
    /// Display name, e.g. "HMP Example".
    pub name: String,
}

/// Body of `POST /v1/enrol`, signed by the new device key (proof of possession).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnrolPayload {
    /// Protocol version the laptop speaks.
    pub version: u32,
    /// The secret part of the one-time enrolment token.
    pub token: String,
    /// The device's Ed25519 public key.
    pub device_public_key: Bytes<[u8; 32]>,
    /// The laptop's host name, for IT staff's device list.
    pub hostname: String,
    /// The laptop's posture at enrolment.
    pub posture: Posture,
    /// IT staff's name for the laptop, e.g. "HMP Example laptop 3" (empty: none given).
    #[serde(default)]
    pub asset_tag: String,
    /// The laptop's serial number from its firmware (empty: unknown).
    #[serde(default)]
    pub serial: String,
}

impl std::fmt::Debug for EnrolPayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the token: Debug output ends up in logs.
        f.debug_struct("EnrolPayload")
            .field("version", &self.version)
            .field("hostname", &self.hostname)
            .field("posture", &self.posture)
            .finish_non_exhaustive()
    }
}

/// Reply to a successful enrolment.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnrolResponse {
    /// The identifier the server gave this laptop.
    pub device_id: DeviceId,
    /// The prison the enrolment token was scoped to.
    pub prison: PrisonInfo,
    /// The device's exchange public key `S = s·G` (ristretto255); `s` never leaves the server.
    pub exchange_public: Bytes<[u8; 32]>,
    /// The server's Ed25519 command-signing public key.
    pub command_public_key: Bytes<[u8; 32]>,
    /// Policy to seal into the config.
    pub policy: Policy,
    /// The TURN relay's URLs (what the laptop's firewall must let through besides the server).
    #[serde(default)]
    pub turn_urls: Vec<String>,
}

/// Body of `POST /v1/activate`, signed by the device key.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ActivatePayload {
    /// Protocol version the laptop speaks.
    pub version: u32,
    /// The signing device.
    pub device_id: DeviceId,
    /// A fresh random nonce; the server refuses one it has seen.
    pub nonce: Bytes<[u8; 16]>,
    /// The laptop's clock, Unix seconds; the server refuses one outside its window.
    pub timestamp: i64,
    /// Staff user name.
    pub username: String,
    /// Staff password (inside pinned TLS; checked against an Argon2id hash).
    pub password: String,
    /// The current 6-digit TOTP code.
    pub totp: String,
    /// The blinded point `X = C + e·G` of the McCallum-Relyea exchange.
    pub blinded: Bytes<[u8; 32]>,
    /// The laptop's posture now.
    pub posture: Posture,
}

impl std::fmt::Debug for ActivatePayload {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password or code: Debug output ends up in logs.
        f.debug_struct("ActivatePayload")
            .field("version", &self.version)
            .field("device_id", &self.device_id)
            .field("timestamp", &self.timestamp)
            .field("username", &self.username)
            .finish_non_exhaustive()
    }
}

/// Reply to a released activation.
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ActivateResponse {
    /// `Y = s·X`, from which only the laptop (knowing `e`) can recover its key.
    pub evaluated: Bytes<[u8; 32]>,
    /// The signed-in staff member's display name.
    pub staff_name: String,
    /// Server time, Unix seconds, so the laptop can time its lease on a trusted clock.
    pub server_time: i64,
    /// Bearer token proving this laptop is unlocked, for appointments and signalling; it expires
    /// with the lease and dies with a lock or a revoke.
    pub session: Bytes<[u8; 32]>,
}

impl std::fmt::Debug for ActivateResponse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ActivateResponse").field("staff_name", &self.staff_name).finish_non_exhaustive()
    }
}

/// Why the server refused; deliberately coarse so a laptop learns nothing useful to an attacker.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "error", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Refusal {
    /// Refused, for a reason only the server's audit log records.
    Refused,
    /// Too many failures: the staff account or the device is locked out for this long.
    LockedOut {
        /// Seconds until another attempt will be considered.
        retry_after_secs: u64,
    },
    /// This laptop has been bricked: the signed command (bound to the request's nonce) says so.
    Bricked {
        /// A signed [`brick::BrickCommand`].
        command: Signed,
    },
    /// Too many requests from this network: the server will consider another after this long.
    Busy {
        /// Seconds to wait.
        retry_after_secs: u64,
    },
    /// The laptop's posture fails its prison's policy.
    Posture {
        /// What the nurse reads: what is wrong and what to do, a sentence per failing item.
        message: String,
    },
    /// The request did not parse.
    BadRequest {
        /// What was wrong with it (never secret).
        message: String,
    },
}

/// Reply to `GET /v1/health`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Health {
    /// Always "ok" when the server answers.
    pub status: String,
    /// Protocol version the server speaks.
    pub version: u32,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signed_round_trips_and_rejects_wrong_lengths() {
        let s = Signed { payload: Bytes(b"{}".to_vec()), signature: Bytes([7u8; 64]) };
        let json = serde_json::to_string(&s).expect("serialises");
        assert_eq!(serde_json::from_str::<Signed>(&json).expect("parses"), s);
        let short = json.replace(&Bytes([7u8; 64]).to_string(), &Bytes([7u8; 63]).to_string());
        assert!(serde_json::from_str::<Signed>(&short).is_err());
    }

    /// Issue #13: no wire type that carries a password, code, token, credential or session
    /// prints it in its `Debug` (what ends up in logs and panic messages).
    #[test]
    fn issue_13_debug_of_every_wire_type_prints_no_secret() {
        const MARK: &str = "S3CR3T-MARK";
        let posture = Posture {
            app_version: "0.1.0".into(),
            os: "Debian".into(),
            os_version: "12".into(),
            kernel: "6".into(),
            uptime_secs: 1,
            ..Posture::default()
        };
        let secret_bytes = [0x53u8; 32];
        let printed = [
            format!(
                "{:?}",
                EnrolPayload {
                    version: 1,
                    token: MARK.into(),
                    device_public_key: Bytes(secret_bytes),
                    hostname: "laptop".into(),
                    posture: posture.clone(),
                    asset_tag: "HMP X laptop 3".into(),
                    serial: "PF2ABCDE".into(),
                }
            ),
            format!(
                "{:?}",
                ActivatePayload {
                    version: 1,
                    device_id: DeviceId::from_random([1; 16]),
                    nonce: Bytes([2; 16]),
                    timestamp: 0,
                    username: "nurse.a".into(),
                    password: MARK.into(),
                    totp: MARK.into(),
                    blinded: Bytes(secret_bytes),
                    posture,
                }
            ),
            format!(
                "{:?}",
                ActivateResponse {
                    evaluated: Bytes(secret_bytes),
                    staff_name: "Nurse A".into(),
                    server_time: 0,
                    session: Bytes(secret_bytes),
                }
            ),
            format!("{:?}", Signed { payload: Bytes(MARK.as_bytes().to_vec()), signature: Bytes([0x53; 64]) }),
            format!(
                "{:?}",
                signal::FromServer::Admitted {
                    appointment_id: 1,
                    role: signal::Role::Offerer,
                    ice_servers: vec![signal::IceServer {
                        urls: vec!["turn:x".into()],
                        username: "1:a".into(),
                        credential: MARK.into(),
                    }],
                }
            ),
            format!("{:?}", format!("sce1.AAAAAAAAAAAAAAAAAAAAAAAA.{}", Bytes([0x53u8; 32])).parse::<EnrolToken>()),
        ];
        let hex: String = secret_bytes.iter().map(|b| format!("{b:02x}")).collect();
        let b64 = Bytes(secret_bytes).to_string();
        for p in &printed {
            assert!(!p.contains(MARK) && !p.contains(&hex) && !p.contains(&b64), "{p}");
        }
    }

    #[test]
    fn refusal_is_tagged() {
        let json = serde_json::to_string(&Refusal::LockedOut { retry_after_secs: 300 }).expect("ok");
        assert_eq!(json, r#"{"error":"locked_out","retry_after_secs":300}"#);
        assert_eq!(serde_json::to_string(&Refusal::Refused).expect("ok"), r#"{"error":"refused"}"#);
    }
}

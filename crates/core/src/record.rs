//! The laptop's data directory: the public enrolment record and where each file lives.
//!
//! Nothing here is secret: the record holds public keys, the pinned CA and the server URL. The
//! secrets are the keystore entry and the server's per-device scalar; see docs/activation.md.

use crate::{atomic, Error};
use sc_proto::{Bytes, DeviceId};
use serde::{Deserialize, Serialize};
use std::path::{Path, PathBuf};

/// Format version of `enrolment.json`.
pub const RECORD_VERSION: u32 = 1;

/// The files of one laptop profile.
#[derive(Debug, Clone)]
pub struct DataDir {
    root: PathBuf,
}

impl DataDir {
    /// Uses `root`, creating it (mode 0700) if needed.
    pub fn open(root: &Path) -> Result<Self, Error> {
        std::fs::create_dir_all(root).map_err(Error::io("creating the data directory"))?;
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            std::fs::set_permissions(root, std::fs::Permissions::from_mode(0o700))
                .map_err(Error::io("restricting the data directory"))?;
        }
        let root = root.canonicalize().map_err(Error::io("resolving the data directory"))?;
        Ok(DataDir { root })
    }

    /// The directory itself.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The public enrolment record.
    pub fn record_path(&self) -> PathBuf {
        self.root.join("enrolment.json")
    }

    /// The sealed config.
    pub fn sealed_path(&self) -> PathBuf {
        self.root.join("config.sealed")
    }

    /// The dead-man timer's contact file.
    pub fn contact_path(&self) -> PathBuf {
        self.root.join("contact.json")
    }

    /// What the last calls learnt of the link (`sc_call::link_memory`; a bitrate and a time).
    pub fn link_path(&self) -> PathBuf {
        self.root.join("link.json")
    }

    /// The tombstone: present once a wipe has begun; the app never starts again while it stands.
    pub fn tombstone_path(&self) -> PathBuf {
        self.root.join("tombstone.json")
    }

    /// A stable name for this profile's keystore entry, so two data directories never share keys.
    pub fn profile_id(&self) -> String {
        use sha2::Digest as _;
        let digest = sha2::Sha256::digest(self.root.as_os_str().as_encoded_bytes());
        hex_prefix(&digest, 8)
    }

    /// Reads the enrolment record; `Ok(None)` when the laptop is not enrolled.
    pub fn load_record(&self) -> Result<Option<EnrolmentRecord>, Error> {
        let bytes = match std::fs::read(self.record_path()) {
            Ok(b) => b,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(Error::Io { what: "reading the enrolment record", source: e }),
        };
        EnrolmentRecord::parse(&bytes).map(Some)
    }

    /// Writes the enrolment record atomically.
    pub fn store_record(&self, record: &EnrolmentRecord) -> Result<(), Error> {
        let bytes = serde_json::to_vec_pretty(record)
            .map_err(|e| Error::Corrupt { what: "the enrolment record", why: e.to_string() })?;
        atomic::write(&self.record_path(), &bytes)
    }
}

fn hex_prefix(bytes: &[u8], n: usize) -> String {
    bytes.iter().take(n).map(|b| format!("{b:02x}")).collect()
}

impl EnrolmentRecord {
    /// Parses the record file's bytes (any bytes: a clear error, never a panic).
    pub fn parse(bytes: &[u8]) -> Result<Self, Error> {
        let record: EnrolmentRecord = serde_json::from_slice(bytes)
            .map_err(|e| Error::Corrupt { what: "the enrolment record", why: e.to_string() })?;
        if record.format != RECORD_VERSION {
            return Err(Error::Corrupt {
                what: "the enrolment record",
                why: format!("unknown format {}", record.format),
            });
        }
        Ok(record)
    }
}

/// What enrolment leaves on disk in the clear.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct EnrolmentRecord {
    /// [`RECORD_VERSION`].
    pub format: u32,
    /// This laptop's id at the server.
    pub device_id: DeviceId,
    /// The care server's base URL, e.g. `https://care.example:8443`.
    pub server_url: String,
    /// The care server's CA certificate (DER), the only TLS trust anchor this laptop accepts.
    pub ca_cert: Bytes<Vec<u8>>,
    /// The server's command-signing public key (Ed25519), for signed commands such as a brick.
    pub command_public_key: Bytes<[u8; 32]>,
    /// The device's exchange public point `S` (the server holds `s`).
    pub exchange_public: Bytes<[u8; 32]>,
    /// The laptop's exchange public point `C` (its scalar `c` was forgotten after sealing).
    pub client_public: Bytes<[u8; 32]>,
    /// The TURN relay's URLs, for the firewall's allow-list (`sc_core::firewall`).
    #[serde(default)]
    pub turn_urls: Vec<String>,
}

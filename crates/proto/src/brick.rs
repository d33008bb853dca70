//! Bricking and the device channel: the device-signed hello, the server-signed brick command,
//! the device-signed wipe receipt, and the channel's messages. See docs/brick.md.

use crate::{Bytes, DeviceId, Signed};
use serde::{Deserialize, Serialize};

/// Domain-separation prefix for a device's hello (channel, poll).
pub const SIG_CONTEXT_HELLO: &[u8] = b"secureconsult/hello/v1\0";
/// Domain-separation prefix for the server's brick command.
pub const SIG_CONTEXT_BRICK: &[u8] = b"secureconsult/brick/v1\0";
/// Domain-separation prefix for a device's wipe receipt.
pub const SIG_CONTEXT_RECEIPT: &[u8] = b"secureconsult/receipt/v1\0";

/// A device introducing itself (signed with its device key): opens the channel, or is a poll.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct HelloPayload {
    /// Protocol version the laptop speaks.
    pub version: u32,
    /// The signing device.
    pub device_id: DeviceId,
    /// The laptop's clock, Unix seconds.
    pub timestamp: i64,
    /// A fresh random value; a brick command answering this hello must carry it.
    pub challenge: Bytes<[u8; 16]>,
}

/// The server's order to wipe (signed with the command key pinned at enrolment).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct BrickCommand {
    /// Protocol version.
    pub version: u32,
    /// The brick's id (also in the receipt and the audit log).
    pub command_id: String,
    /// The laptop to wipe.
    pub device_id: DeviceId,
    /// When the server signed it, Unix seconds.
    pub issued_at: i64,
    /// The challenge of the hello, poll or activation this answers.
    pub challenge: Bytes<[u8; 16]>,
}

/// What caused a wipe.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "cause", rename_all = "snake_case")]
#[non_exhaustive]
pub enum WipeCause {
    /// A verified brick command.
    Brick {
        /// The command's id.
        command_id: String,
    },
    /// The dead-man timer: no server contact for the policy's days.
    DeadMan {
        /// When the laptop last reached the server, Unix seconds.
        last_contact: i64,
    },
}

/// A laptop's signed statement that it wiped itself (signed with the device key before it goes).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReceiptPayload {
    /// Protocol version.
    pub version: u32,
    /// The wiped laptop.
    pub device_id: DeviceId,
    /// Why it wiped.
    pub cause: WipeCause,
    /// When the sealed config was destroyed, Unix seconds (laptop clock).
    pub wiped_at: i64,
}

/// From the laptop on the device channel.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChannelUp {
    /// The first message: a signed [`HelloPayload`].
    Hello {
        /// The signed hello.
        hello: Signed,
    },
    /// Heartbeat.
    Ping,
}

/// From the server on the device channel, and the answer to a poll.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ChannelDown {
    /// The device is in good standing; the server's clock.
    Ok {
        /// Unix seconds.
        server_time: i64,
    },
    /// Wipe now: a signed [`BrickCommand`].
    Brick {
        /// The signed command.
        command: Signed,
    },
    /// The hello was not accepted (unknown device, bad signature, stale time).
    Refused {
        /// Why, in general terms.
        message: String,
    },
}

/// Reply to `POST /v1/device/receipt`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct ReceiptAck {
    /// The brick's state after the receipt: "wiped".
    pub state: String,
}

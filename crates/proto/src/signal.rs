//! Signalling messages over the WebSocket: waiting room, admission, SDP and ICE relay, hang-up.
//! The same types serve the kiosk (Rust) and the consultant page (JavaScript, same JSON).

use serde::{Deserialize, Serialize};

/// TURN credentials minted for one call (TURN REST scheme: `username = "<expiry>:<id>"`,
/// `credential = base64(HMAC-SHA1(shared secret, username))`).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct IceServer {
    /// TURN URLs, e.g. `turn:turn.example:3478?transport=udp`.
    pub urls: Vec<String>,
    /// Time-limited user name.
    pub username: String,
    /// The credential for `username`.
    pub credential: String,
}

impl std::fmt::Debug for IceServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the credential: Debug output ends up in logs.
        f.debug_struct("IceServer").field("urls", &self.urls).field("username", &self.username).finish_non_exhaustive()
    }
}

/// An ICE candidate as browsers exchange it.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "camelCase")]
pub struct Candidate {
    /// The `candidate:` line.
    pub candidate: String,
    /// Media stream id tag.
    #[serde(default)]
    pub sdp_mid: Option<String>,
    /// Media line index.
    #[serde(default)]
    pub sdp_m_line_index: Option<u16>,
}

/// An appointment as the kiosk and the consultant see it (no clinical content).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Appointment {
    /// Server id.
    pub id: i64,
    /// The room code (unguessable; also typed by a nurse).
    pub room_code: String,
    /// The consultant's display name.
    pub consultant: String,
    /// The prison's name.
    pub prison: String,
    /// Start, Unix seconds.
    pub starts_at: i64,
    /// End, Unix seconds.
    pub ends_at: i64,
}

/// How a peer's connection is doing, as both screens show it (and what the other side should send).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum LinkQuality {
    /// Video at the top of the ladder, little loss.
    Good,
    /// Video, but smaller or slower, or noticeable loss.
    Weak,
    /// Too poor for video (or the nurse chose sound only): both sides send sound only.
    SoundOnly,
}

/// From a peer (kiosk or consultant page) to the server.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum ToServer {
    /// Kiosk: wait in this room.
    Join {
        /// The appointment's room code.
        room_code: String,
    },
    /// Consultant: let the waiting laptop in.
    Admit {
        /// The appointment.
        appointment_id: i64,
    },
    /// An SDP offer for the other peer.
    Offer {
        /// SDP text.
        sdp: String,
    },
    /// An SDP answer for the other peer.
    Answer {
        /// SDP text.
        sdp: String,
    },
    /// A trickled ICE candidate for the other peer.
    Candidate {
        /// The candidate.
        candidate: Candidate,
    },
    /// End the call (or leave the waiting room).
    HangUp,
    /// How this side's connection is doing; relayed to the other peer.
    Quality {
        /// The level.
        quality: LinkQuality,
    },
    /// Either peer, after its signalling connection came back mid-call (the care server
    /// restarted, or the connection dropped): take up this call again, without a new admission.
    /// Only a call the server recorded as admitted and not ended can be resumed.
    Resume {
        /// The appointment whose call this is.
        appointment_id: i64,
    },
    /// Consultant, in a call: a share of images ended; recorded in the audit log. Counts only:
    /// no file names, patient data or pixels.
    ShareDone {
        /// Files sent.
        files: u32,
        /// Files the laptop showed.
        shown: u32,
        /// Files it could not.
        failed: u32,
        /// Bytes sent.
        bytes: u64,
        /// The DICOM modalities among them (CT, MR, US...), or "picture" for PNG and JPEG.
        modalities: Vec<String>,
    },
}

/// Which side of the offer/answer exchange a peer takes.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Role {
    /// Creates the offer (the kiosk).
    Offerer,
    /// Answers (the consultant).
    Answerer,
}

/// A laptop waiting in one of the consultant's rooms.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Waiting {
    /// The appointment.
    pub appointment_id: i64,
    /// The prison the laptop belongs to.
    pub prison: String,
    /// The nurse who signed the laptop in.
    pub nurse: String,
}

/// From the server to a peer.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum FromServer {
    /// Kiosk: you are in the waiting room of this appointment.
    Waiting {
        /// The appointment.
        appointment: Appointment,
    },
    /// Consultant: the laptops now waiting in your rooms.
    WaitingRoom {
        /// Who waits where.
        waiting: Vec<Waiting>,
    },
    /// Both: the call starts; use these ICE servers with relay-only transport.
    Admitted {
        /// The appointment.
        appointment_id: i64,
        /// Offer or answer.
        role: Role,
        /// TURN servers and credentials for this call.
        ice_servers: Vec<IceServer>,
    },
    /// The other peer's offer.
    Offer {
        /// SDP text.
        sdp: String,
    },
    /// The other peer's answer.
    Answer {
        /// SDP text.
        sdp: String,
    },
    /// The other peer's candidate.
    Candidate {
        /// The candidate.
        candidate: Candidate,
    },
    /// How the other peer's connection is doing (`sound_only`: stop sending video until better).
    Quality {
        /// The level.
        quality: LinkQuality,
    },
    /// The other peer ended the call.
    HungUp,
    /// The other peer's connection dropped.
    PeerLeft,
    /// Both peers of a resumed call are linked again: relayed messages reach the other side.
    Resumed {
        /// The appointment.
        appointment_id: i64,
    },
    /// A request was refused or malformed; the connection stays open.
    Error {
        /// Machine-readable kind (e.g. `forbidden`, `occupied`, `bad_message`, `not_found`).
        kind: String,
        /// What to show.
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_json_the_browser_can_write() {
        let m: ToServer = serde_json::from_str(r#"{"type":"candidate","candidate":{"candidate":"candidate:1 1 udp 1 1.2.3.4 5 typ relay","sdpMid":"0","sdpMLineIndex":0}}"#)
            .expect("browser candidate");
        assert!(matches!(m, ToServer::Candidate { .. }));
        let j = serde_json::to_string(&FromServer::HungUp).expect("json");
        assert_eq!(j, r#"{"type":"hung_up"}"#);
        assert!(serde_json::from_str::<ToServer>(r#"{"type":"nope"}"#).is_err());
        let q = serde_json::to_string(&FromServer::Quality { quality: LinkQuality::SoundOnly }).expect("json");
        assert_eq!(q, r#"{"type":"quality","quality":"sound_only"}"#);
        let m: ToServer = serde_json::from_str(r#"{"type":"quality","quality":"weak"}"#).expect("page quality");
        assert_eq!(m, ToServer::Quality { quality: LinkQuality::Weak });
    }
}

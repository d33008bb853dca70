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
    /// The consultant's hospital, when IT recorded it (the kiosk's call screen names it). Boxed
    /// for the same reason as `patient`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consultant_hospital: Option<Box<str>>,
    /// The prison's name.
    pub prison: String,
    /// Start, Unix seconds.
    pub starts_at: i64,
    /// End, Unix seconds.
    pub ends_at: i64,
    /// Who it is for, when the booking says (older bookings and the command line's may not).
    /// Boxed: most messages carry none, and every signalling message is sized for the largest.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub patient: Option<Box<Patient>>,
}

/// What an unlocked laptop is told of its prison's outcome notes: how many nobody in the
/// healthcare team has acknowledged yet, so the nurse knows to look on the team page. Never a
/// note's text: the laptop is in front of the patient.
#[derive(Debug, Clone, Copy, Default, Serialize, Deserialize, PartialEq, Eq)]
pub struct OutcomeNotes {
    /// Notes not yet acknowledged.
    pub unacknowledged: u32,
}

/// Who an appointment is for: the least the nurse needs to bring the right person and the
/// consultant needs to confirm them (a prison number and initials; no name, nothing clinical).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Patient {
    /// The prison number (England and Wales: a letter, four digits, two letters, e.g. A1234BC).
    pub prison_number: PrisonNumber,
    /// The patient's initials (one to three letters).
    pub initials: Initials,
}

/// A prison number, checked when parsed: one letter, four digits, two letters, upper case.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct PrisonNumber(String);

impl TryFrom<String> for PrisonNumber {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let s = s.trim().to_ascii_uppercase();
        let b = s.as_bytes();
        let ok = b.len() == 7
            && b[0].is_ascii_uppercase()
            && b[1..5].iter().all(u8::is_ascii_digit)
            && b[5..].iter().all(u8::is_ascii_uppercase);
        if ok {
            Ok(PrisonNumber(s))
        } else {
            Err("a prison number is a letter, four digits and two letters, e.g. A1234BC".into())
        }
    }
}

impl From<PrisonNumber> for String {
    fn from(n: PrisonNumber) -> String {
        n.0
    }
}

impl PrisonNumber {
    /// The number, upper case.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for PrisonNumber {
    // It identifies a person: never in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("PrisonNumber(..)")
    }
}

/// A patient's initials, checked when parsed: one to three letters, upper case.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct Initials(String);

impl TryFrom<String> for Initials {
    type Error = String;
    fn try_from(s: String) -> Result<Self, String> {
        let s: String = s.chars().filter(|c| !matches!(c, '.' | ' ')).collect::<String>().to_ascii_uppercase();
        if (1..=3).contains(&s.len()) && s.bytes().all(|b| b.is_ascii_uppercase()) {
            Ok(Initials(s))
        } else {
            Err("initials are one to three letters".into())
        }
    }
}

impl From<Initials> for String {
    fn from(i: Initials) -> String {
        i.0
    }
}

impl Initials {
    /// The letters, upper case, without dots.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Initials {
    // With a prison's name and a time, identifying: never in a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Initials(..)")
    }
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
        /// The consultant has checked with the nurse that the patient is the booking's (prison
        /// number and initials); required when the appointment names a patient.
        #[serde(default)]
        patient_confirmed: bool,
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

    #[test]
    fn issue_16_a_patient_reference_is_parsed_or_refused_and_never_printed() {
        let p: Patient = serde_json::from_str(r#"{"prison_number":" a1234bc ","initials":"j.s."}"#).expect("parses");
        assert_eq!((p.prison_number.as_str(), p.initials.as_str()), ("A1234BC", "JS"));
        assert_eq!(serde_json::to_string(&p).expect("json"), r#"{"prison_number":"A1234BC","initials":"JS"}"#);
        for bad in [
            r#"{"prison_number":"A123BC","initials":"JS"}"#,
            r#"{"prison_number":"11234BC","initials":"JS"}"#,
            r#"{"prison_number":"A1234BC","initials":""}"#,
            r#"{"prison_number":"A1234BC","initials":"ABCD"}"#,
            r#"{"prison_number":"A1234BC","initials":"J5"}"#,
        ] {
            assert!(serde_json::from_str::<Patient>(bad).is_err(), "{bad}");
        }
        let shown = format!("{p:?}");
        assert!(!shown.contains("A1234BC") && !shown.contains("JS"), "{shown}");
        // An appointment without one (older bookings) still parses.
        let a: Appointment = serde_json::from_str(
            r#"{"id":1,"room_code":"x","consultant":"Dr","prison":"HMP","starts_at":0,"ends_at":1}"#,
        )
        .expect("parses");
        assert_eq!(a.patient, None);
    }
}

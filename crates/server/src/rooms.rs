//! The rooms: who waits in which appointment's room, who is in a call with whom, and where each
//! call's SDP and ICE go. A pure state machine: an [`Op`] goes in, its outcome and the messages
//! for each connection come out. Every instance of the server applies the same operations in the
//! same order (`crate::hub`, over `crate::bus` when several share a database), so each holds the
//! same rooms and delivers the messages for its own connections; the rules are tested directly.
//!
//! A call outlives its signalling: the media flows peer to peer through the relay, so when the
//! care server restarts (new, empty rooms) or the instance a peer was connected to dies, each
//! peer reconnects and asks to resume. The caller checks the call was admitted (the database
//! keeps live calls); the rooms link the two halves again as they come back, in either order.

use sc_proto::signal::{Appointment, FromServer, Waiting};
use sc_proto::DeviceId;
use serde::{Deserialize, Serialize};
use std::collections::HashMap;

/// A signalling connection's id, unique across instances: the instance's number in the high 32
/// bits, a counter of its own in the low ones.
pub type ConnId = u64;

/// The instance a connection is held by.
pub fn instance_of(conn: ConnId) -> u32 {
    // The shift leaves 32 bits: the cast cannot truncate.
    (conn >> 32) as u32
}

/// Why the rooms refused a request (sent to the peer as `FromServer::Error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error, Serialize, Deserialize)]
#[non_exhaustive]
pub enum RoomError {
    /// Another laptop is already in this room.
    #[error("another laptop is already in this room")]
    Occupied,
    /// Nobody is waiting in that room.
    #[error("no laptop is waiting in this room")]
    NotWaiting,
    /// That room is not this consultant's.
    #[error("this is not your appointment")]
    Forbidden,
    /// The connection is not in a call.
    #[error("not in a call")]
    NotInCall,
    /// A consultant can be in one call at a time.
    #[error("you are already in a call")]
    Busy,
    /// This laptop is already in another room (on another connection).
    #[error("this laptop is already in another waiting room or call")]
    LaptopElsewhere,
    /// There is no call of this appointment to resume (it ended, or was never admitted).
    #[error("this call can no longer be resumed")]
    NotResumable,
    /// The rooms shared with the other instances could not be reached (the cause is logged).
    #[error("the waiting rooms are not available; try again")]
    Unavailable,
}

impl RoomError {
    /// The `kind` the peer receives.
    pub fn kind(&self) -> &'static str {
        match self {
            RoomError::Occupied => "occupied",
            RoomError::NotWaiting => "not_waiting",
            RoomError::Forbidden => "forbidden",
            RoomError::NotInCall => "not_in_call",
            RoomError::Busy => "busy",
            RoomError::LaptopElsewhere => "laptop_elsewhere",
            RoomError::NotResumable => "not_resumable",
            RoomError::Unavailable => "unavailable",
        }
    }

    /// As a message to the peer.
    pub fn to_message(&self) -> FromServer {
        FromServer::Error { kind: self.kind().into(), message: self.to_string() }
    }
}

/// A laptop in a room.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KioskPeer {
    /// Its connection.
    pub conn: ConnId,
    /// The laptop.
    pub device_id: DeviceId,
    /// Its prison's name.
    pub prison: String,
    /// The nurse who unlocked it.
    pub nurse: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct Room {
    consultant_id: i64,
    kiosk: KioskPeer,
    /// The consultant's connection once admitted.
    call: Option<ConnId>,
    /// A call whose laptop came back after a restart, waiting for its consultant to: not a
    /// waiting room (nobody admits it again).
    resuming: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
struct ConsultantConn {
    staff_id: i64,
    room: Option<i64>,
    /// A call this page asked to resume before its laptop came back (the appointment, the laptop).
    pending: Option<(i64, DeviceId)>,
}

/// A call that just started or ended, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CallEvent {
    /// The appointment.
    pub appointment_id: i64,
    /// The laptop.
    pub device_id: DeviceId,
    /// The consultant.
    pub consultant_id: i64,
}

/// One change to the rooms. The caller has checked who may ask it (sessions, appointments,
/// live calls); the rooms check occupancy and who is in which call.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Op {
    /// A consultant's page connected: it hears its waiting room now and on every change.
    Consultant {
        /// Its connection.
        conn: ConnId,
        /// The consultant.
        staff_id: i64,
    },
    /// A laptop joins an appointment's waiting room.
    Join {
        /// The laptop.
        peer: KioskPeer,
        /// The appointment, as the laptop is told it.
        appointment: Appointment,
        /// Whose appointment it is.
        consultant_id: i64,
    },
    /// A consultant admits the laptop waiting in `appointment_id`; each side hears its own message.
    Admit {
        /// The consultant's connection.
        conn: ConnId,
        /// The appointment.
        appointment_id: i64,
        /// What the laptop hears (its role and relay credentials).
        to_kiosk: FromServer,
        /// What the consultant hears.
        to_consultant: FromServer,
    },
    /// An SDP or ICE message for the other peer of `conn`'s call.
    Relay {
        /// The sender.
        conn: ConnId,
        /// The message.
        msg: FromServer,
    },
    /// `conn` hangs up (or leaves the waiting room); the other side hears `HungUp`.
    HangUp {
        /// Who.
        conn: ConnId,
    },
    /// `conn` went away; the other side hears `PeerLeft`.
    Disconnected {
        /// Who.
        conn: ConnId,
    },
    /// A laptop takes up a call again (the caller checked it is this laptop's live call, admitted
    /// by `consultant_id`).
    ResumeKiosk {
        /// The laptop, on its new connection.
        peer: KioskPeer,
        /// The appointment.
        appointment_id: i64,
        /// Who admitted the call.
        consultant_id: i64,
    },
    /// A consultant's page takes up its call with `device_id` again (the caller checked it is
    /// this consultant's live call).
    ResumeConsultant {
        /// The page's new connection.
        conn: ConnId,
        /// The appointment.
        appointment_id: i64,
        /// The call's laptop.
        device_id: DeviceId,
    },
    /// An instance died or stopped: its connections are gone, and their calls wait to be resumed
    /// (the media goes on through the relay meanwhile).
    InstanceGone {
        /// The instance.
        instance: u32,
    },
}

/// What an operation came to: refused, or done (with the call it started, linked again or ended).
pub type Outcome = Result<Option<CallEvent>, RoomError>;

/// Messages an operation sends, each to one connection (on whichever instance holds it).
pub type Sends = Vec<(ConnId, FromServer)>;

/// The rooms (see the module docs). Serialisable: an instance that starts beside others takes a
/// copy of theirs.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Rooms {
    rooms: HashMap<i64, Room>,
    consultants: HashMap<ConnId, ConsultantConn>,
}

impl Rooms {
    /// Applies `op`: its outcome, and the messages it sends.
    pub fn apply(&mut self, op: Op) -> (Outcome, Sends) {
        let mut out = Sends::new();
        let outcome = match op {
            Op::Consultant { conn, staff_id } => {
                out.push((conn, FromServer::WaitingRoom { waiting: self.waiting_for(staff_id) }));
                self.consultants.insert(conn, ConsultantConn { staff_id, room: None, pending: None });
                Ok(None)
            }
            Op::Join { peer, appointment, consultant_id } => {
                self.join(peer, &appointment, consultant_id, &mut out).map(|()| None)
            }
            Op::Admit { conn, appointment_id, to_kiosk, to_consultant } => {
                self.admit(conn, appointment_id, to_kiosk, to_consultant, &mut out).map(Some)
            }
            Op::Relay { conn, msg } => self.relay(conn, msg, &mut out).map(|()| None),
            Op::HangUp { conn } => Ok(self.leave(conn, FromServer::HungUp, &mut out)),
            Op::Disconnected { conn } => {
                let ended = self.leave(conn, FromServer::PeerLeft, &mut out);
                self.consultants.remove(&conn);
                Ok(ended)
            }
            Op::ResumeKiosk { peer, appointment_id, consultant_id } => {
                self.resume_kiosk(peer, appointment_id, consultant_id, &mut out)
            }
            Op::ResumeConsultant { conn, appointment_id, device_id } => {
                self.resume_consultant(conn, appointment_id, &device_id, &mut out)
            }
            Op::InstanceGone { instance } => {
                self.instance_gone(instance, &mut out);
                Ok(None)
            }
        };
        (outcome, out)
    }

    /// The instances holding connections the rooms know.
    pub fn instances(&self) -> Vec<u32> {
        let kiosks = self.rooms.values().map(|r| r.kiosk.conn);
        let pages = self.consultants.keys().copied();
        let mut v: Vec<u32> = kiosks.chain(pages).map(instance_of).collect();
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Whether `conn` is in the rooms at all (a page, or a laptop in a room): a connection that
    /// is not changes nothing by leaving.
    pub fn knows_conn(&self, conn: ConnId) -> bool {
        self.consultants.contains_key(&conn) || self.room_of_kiosk(conn).is_some()
    }

    /// The call the consultant on `conn` is in, once admitted.
    pub fn call_of_consultant(&self, conn: ConnId) -> Option<CallEvent> {
        let c = self.consultants.get(&conn)?;
        let id = c.room?;
        let room = self.rooms.get(&id).filter(|r| r.call == Some(conn))?;
        Some(CallEvent {
            appointment_id: id,
            device_id: room.kiosk.device_id.clone(),
            consultant_id: room.consultant_id,
        })
    }

    /// Whether the rooms hold anything of `appointment_id`'s call (either half of a resume).
    pub fn knows_call(&self, appointment_id: i64) -> bool {
        self.rooms.get(&appointment_id).is_some_and(|r| r.call.is_some() || r.resuming)
            || self.consultants.values().any(|c| c.pending.as_ref().is_some_and(|(a, _)| *a == appointment_id))
    }

    fn waiting_for(&self, staff_id: i64) -> Vec<Waiting> {
        let mut w: Vec<Waiting> = self
            .rooms
            .iter()
            .filter(|(_, r)| r.consultant_id == staff_id && r.call.is_none() && !r.resuming)
            .map(|(id, r)| Waiting {
                appointment_id: *id,
                prison: r.kiosk.prison.clone(),
                nurse: r.kiosk.nurse.clone(),
            })
            .collect();
        w.sort_by_key(|w| w.appointment_id);
        w
    }

    fn notify_consultant(&self, staff_id: i64, out: &mut Sends) {
        let waiting = self.waiting_for(staff_id);
        let mut pages: Vec<ConnId> =
            self.consultants.iter().filter(|(_, c)| c.staff_id == staff_id).map(|(conn, _)| *conn).collect();
        // In one order on every instance, so the same operations send the same messages.
        pages.sort_unstable();
        for conn in pages {
            out.push((conn, FromServer::WaitingRoom { waiting: waiting.clone() }));
        }
    }

    fn room_of_kiosk(&self, conn: ConnId) -> Option<i64> {
        self.rooms.iter().find(|(_, r)| r.kiosk.conn == conn).map(|(id, _)| *id)
    }

    fn join(
        &mut self,
        peer: KioskPeer,
        appointment: &Appointment,
        consultant_id: i64,
        out: &mut Sends,
    ) -> Result<(), RoomError> {
        if let Some(room) = self.rooms.get_mut(&appointment.id) {
            if room.kiosk.conn == peer.conn {
                return Ok(()); // joining again is harmless
            }
            // The same laptop back on a new connection (its old one, perhaps on an instance that
            // died, not yet seen to close) takes its waiting room over; a call is resumed instead.
            if room.kiosk.device_id != peer.device_id || room.call.is_some() || room.resuming {
                return Err(RoomError::Occupied);
            }
            out.push((peer.conn, FromServer::Waiting { appointment: appointment.clone() }));
            room.kiosk = peer;
            return Ok(());
        }
        if self.rooms.values().any(|r| r.kiosk.device_id == peer.device_id && r.kiosk.conn != peer.conn) {
            return Err(RoomError::LaptopElsewhere);
        }
        if self.room_of_kiosk(peer.conn).is_some() {
            self.leave(peer.conn, FromServer::PeerLeft, out);
        }
        out.push((peer.conn, FromServer::Waiting { appointment: appointment.clone() }));
        self.rooms.insert(appointment.id, Room { consultant_id, kiosk: peer, call: None, resuming: false });
        self.notify_consultant(consultant_id, out);
        Ok(())
    }

    fn admit(
        &mut self,
        conn: ConnId,
        appointment_id: i64,
        to_kiosk: FromServer,
        to_consultant: FromServer,
        out: &mut Sends,
    ) -> Result<CallEvent, RoomError> {
        let Some(c) = self.consultants.get(&conn) else { return Err(RoomError::Forbidden) };
        // A call waiting for its laptop to come back (a resume asked, or its instance gone) keeps
        // the consultant busy: admitting another would link the page to two rooms.
        let (staff_id, busy) = (c.staff_id, c.room.is_some() || c.pending.is_some());
        let Some(room) = self.rooms.get_mut(&appointment_id) else { return Err(RoomError::NotWaiting) };
        if room.consultant_id != staff_id {
            return Err(RoomError::Forbidden);
        }
        if room.call.is_some() || room.resuming {
            return Err(RoomError::Occupied);
        }
        if busy {
            return Err(RoomError::Busy);
        }
        room.call = Some(conn);
        out.push((room.kiosk.conn, to_kiosk));
        out.push((conn, to_consultant));
        let event = CallEvent { appointment_id, device_id: room.kiosk.device_id.clone(), consultant_id: staff_id };
        if let Some(c) = self.consultants.get_mut(&conn) {
            c.room = Some(appointment_id);
        }
        self.notify_consultant(staff_id, out);
        Ok(event)
    }

    fn relay(&self, conn: ConnId, msg: FromServer, out: &mut Sends) -> Result<(), RoomError> {
        if let Some(id) = self.room_of_kiosk(conn) {
            let other = self.rooms.get(&id).and_then(|r| r.call).ok_or(RoomError::NotInCall)?;
            out.push((other, msg));
            return Ok(());
        }
        let id = self.consultants.get(&conn).and_then(|c| c.room).ok_or(RoomError::NotInCall)?;
        let room = self.rooms.get(&id).ok_or(RoomError::NotInCall)?;
        out.push((room.kiosk.conn, msg));
        Ok(())
    }

    /// Ends whatever `conn` takes part in; `to_other` is what the other side hears.
    fn leave(&mut self, conn: ConnId, to_other: FromServer, out: &mut Sends) -> Option<CallEvent> {
        if let Some(id) = self.room_of_kiosk(conn) {
            let room = self.rooms.remove(&id)?;
            // A half-resumed call ends here too (its consultant never came back).
            let mut ended = room.resuming.then(|| CallEvent {
                appointment_id: id,
                device_id: room.kiosk.device_id.clone(),
                consultant_id: room.consultant_id,
            });
            if let Some(cc) = room.call {
                if let Some(c) = self.consultants.get_mut(&cc) {
                    c.room = None;
                    out.push((cc, to_other));
                }
                ended = Some(CallEvent {
                    appointment_id: id,
                    device_id: room.kiosk.device_id.clone(),
                    consultant_id: room.consultant_id,
                });
            }
            self.notify_consultant(room.consultant_id, out);
            return ended;
        }
        let c = self.consultants.get_mut(&conn)?;
        if let Some((appointment_id, device_id)) = c.pending.take() {
            // Asked to resume, and its laptop never came back: that call is over.
            return Some(CallEvent { appointment_id, device_id, consultant_id: c.staff_id });
        }
        let id = c.room.take()?;
        let room = self.rooms.remove(&id)?;
        out.push((room.kiosk.conn, to_other));
        self.notify_consultant(room.consultant_id, out);
        Some(CallEvent { appointment_id: id, device_id: room.kiosk.device_id, consultant_id: room.consultant_id })
    }

    fn resume_kiosk(&mut self, peer: KioskPeer, appointment_id: i64, consultant_id: i64, out: &mut Sends) -> Outcome {
        if let Some(room) = self.rooms.get_mut(&appointment_id) {
            if room.kiosk.device_id != peer.device_id {
                return Err(RoomError::Occupied);
            }
            if room.call.is_none() && !room.resuming {
                return Err(RoomError::NotResumable);
            }
            // The same laptop on a new connection (the old one not yet seen to close).
            room.kiosk = peer;
            let call = room.call.filter(|cc| self.consultants.contains_key(cc));
            return Ok(call.map(|cc| linked(appointment_id, room, cc, out)));
        }
        if self.rooms.values().any(|r| r.kiosk.device_id == peer.device_id || r.kiosk.conn == peer.conn) {
            return Err(RoomError::LaptopElsewhere);
        }
        let mut back: Vec<ConnId> = self
            .consultants
            .iter()
            .filter(|(_, c)| {
                c.staff_id == consultant_id
                    && c.pending.as_ref().is_some_and(|(a, d)| *a == appointment_id && *d == peer.device_id)
            })
            .map(|(conn, _)| *conn)
            .collect();
        back.sort_unstable();
        let Some(cconn) = back.first().copied() else {
            let room = Room { consultant_id, kiosk: peer, call: None, resuming: true };
            self.rooms.insert(appointment_id, room);
            return Ok(None);
        };
        let Some(c) = self.consultants.get_mut(&cconn) else { return Err(RoomError::NotResumable) };
        c.pending = None;
        c.room = Some(appointment_id);
        let room = Room { consultant_id, kiosk: peer, call: Some(cconn), resuming: false };
        let event = linked(appointment_id, &room, cconn, out);
        self.rooms.insert(appointment_id, room);
        Ok(Some(event))
    }

    fn resume_consultant(
        &mut self,
        conn: ConnId,
        appointment_id: i64,
        device_id: &DeviceId,
        out: &mut Sends,
    ) -> Outcome {
        let Some(c) = self.consultants.get(&conn) else { return Err(RoomError::Forbidden) };
        let staff_id = c.staff_id;
        if c.room == Some(appointment_id) {
            return Ok(None);
        }
        if c.room.is_some() || c.pending.as_ref().is_some_and(|(a, _)| *a != appointment_id) {
            return Err(RoomError::Busy);
        }
        let Some(room) = self.rooms.get_mut(&appointment_id) else {
            if let Some(c) = self.consultants.get_mut(&conn) {
                c.pending = Some((appointment_id, device_id.clone()));
            }
            return Ok(None);
        };
        if room.consultant_id != staff_id || room.kiosk.device_id != *device_id {
            return Err(RoomError::NotResumable);
        }
        match room.call {
            _ if room.resuming => {}
            // This consultant's older connection, not yet seen to close: this one takes over.
            Some(old) => {
                if let Some(o) = self.consultants.get_mut(&old).filter(|o| o.staff_id == staff_id) {
                    o.room = None;
                } else {
                    return Err(RoomError::NotResumable);
                }
            }
            None => return Err(RoomError::NotResumable),
        }
        room.resuming = false;
        room.call = Some(conn);
        let Some(c) = self.consultants.get_mut(&conn) else { return Err(RoomError::Forbidden) };
        c.room = Some(appointment_id);
        c.pending = None;
        Ok(Some(linked(appointment_id, room, conn, out)))
    }

    /// `instance`'s connections are gone without a word: as after a restart, nothing ends. A
    /// laptop's waiting room goes (it joins again where it reconnects); a call waits for its
    /// absent half to resume, as if that half had asked to and the other were not back yet.
    fn instance_gone(&mut self, instance: u32, out: &mut Sends) {
        let mut rooms: Vec<i64> =
            self.rooms.iter().filter(|(_, r)| instance_of(r.kiosk.conn) == instance).map(|(id, _)| *id).collect();
        rooms.sort_unstable();
        for id in rooms {
            let Some(room) = self.rooms.remove(&id) else { continue };
            if let Some(c) = room.call.and_then(|cc| self.consultants.get_mut(&cc)) {
                c.room = None;
                c.pending = Some((id, room.kiosk.device_id.clone()));
            }
            if room.call.is_none() && !room.resuming {
                self.notify_consultant(room.consultant_id, out);
            }
        }
        let mut pages: Vec<ConnId> = self.consultants.keys().copied().filter(|c| instance_of(*c) == instance).collect();
        pages.sort_unstable();
        for conn in pages {
            let Some(c) = self.consultants.remove(&conn) else { continue };
            if let Some(room) = c.room.and_then(|id| self.rooms.get_mut(&id)).filter(|r| r.call == Some(conn)) {
                room.call = None;
                room.resuming = true;
            }
        }
    }
}

/// Tells both sides of a call linked again, and returns it.
fn linked(appointment_id: i64, room: &Room, cconn: ConnId, out: &mut Sends) -> CallEvent {
    out.push((room.kiosk.conn, FromServer::Resumed { appointment_id }));
    out.push((cconn, FromServer::Resumed { appointment_id }));
    CallEvent { appointment_id, device_id: room.kiosk.device_id.clone(), consultant_id: room.consultant_id }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use sc_proto::signal::Role;

    const A: ConnId = 1 << 32;
    const B: ConnId = 2 << 32;

    /// An appointment of consultant "Dr" at "HMP" (the other modules' tests use it too).
    pub(crate) fn appt(id: i64) -> Appointment {
        Appointment {
            id,
            room_code: format!("code{id}"),
            consultant: "Dr".into(),
            prison: "HMP".into(),
            starts_at: 0,
            ends_at: 1,
            patient: None,
            consultant_hospital: None,
        }
    }

    fn laptop(conn: ConnId, n: u8) -> KioskPeer {
        KioskPeer { conn, device_id: DeviceId::from_random([n; 16]), prison: "HMP".into(), nurse: "Jo".into() }
    }

    fn admitted(role: Role) -> FromServer {
        FromServer::Admitted { appointment_id: 7, role, ice_servers: vec![] }
    }

    /// A laptop on instance A in appointment 7's call with consultant 42 on instance B.
    fn call_across() -> Rooms {
        let mut r = Rooms::default();
        for op in [
            Op::Consultant { conn: B + 1, staff_id: 42 },
            Op::Join { peer: laptop(A + 1, 1), appointment: appt(7), consultant_id: 42 },
            Op::Admit {
                conn: B + 1,
                appointment_id: 7,
                to_kiosk: admitted(Role::Offerer),
                to_consultant: admitted(Role::Answerer),
            },
        ] {
            assert!(r.apply(op).0.is_ok());
        }
        r
    }

    fn offer(s: &str) -> FromServer {
        FromServer::Offer { sdp: s.into() }
    }

    #[test]
    fn issue_17_copies_applying_the_same_operations_agree_on_outcomes_messages_and_rooms() {
        let ops = vec![
            Op::Consultant { conn: B + 1, staff_id: 42 },
            Op::Consultant { conn: A + 2, staff_id: 42 },
            Op::Join { peer: laptop(A + 1, 1), appointment: appt(7), consultant_id: 42 },
            Op::Join { peer: laptop(B + 3, 2), appointment: appt(7), consultant_id: 42 },
            Op::Join { peer: laptop(B + 3, 2), appointment: appt(8), consultant_id: 42 },
            Op::Admit { conn: A + 2, appointment_id: 7, to_kiosk: offer("k"), to_consultant: offer("c") },
            Op::Relay { conn: A + 1, msg: offer("x") },
            Op::HangUp { conn: A + 2 },
            Op::Disconnected { conn: B + 3 },
        ];
        let (mut one, mut two) = (Rooms::default(), Rooms::default());
        for op in ops {
            let (a, b) = (one.apply(op.clone()), two.apply(op.clone()));
            assert_eq!(a, b, "{op:?}");
            assert_eq!(one, two);
        }
        // And a copy taken midway goes on as the original does.
        let mut copy: Rooms = serde_json::from_str(&serde_json::to_string(&one).expect("json")).expect("copy");
        let op = Op::Join { peer: laptop(B + 4, 3), appointment: appt(9), consultant_id: 42 };
        assert_eq!(copy.apply(op.clone()), one.apply(op));
    }

    #[test]
    fn issue_17_a_call_across_instances_relays_both_ways() {
        let mut r = call_across();
        assert!(r.knows_conn(A + 1) && r.knows_conn(B + 1) && !r.knows_conn(A + 2), "who is in the rooms");
        assert_eq!(r.apply(Op::Relay { conn: A + 1, msg: offer("o") }), (Ok(None), vec![(B + 1, offer("o"))]));
        assert_eq!(r.apply(Op::Relay { conn: B + 1, msg: offer("a") }), (Ok(None), vec![(A + 1, offer("a"))]));
    }

    #[test]
    fn issue_17_when_the_laptops_instance_dies_its_call_goes_on_and_resumes_where_it_reconnects() {
        let mut r = call_across();
        let (outcome, sends) = r.apply(Op::InstanceGone { instance: 1 });
        assert_eq!(outcome, Ok(None));
        assert!(sends.is_empty(), "the consultant is not told the laptop left: {sends:?}");
        assert!(r.knows_call(7), "the call is not over");
        assert_eq!(r.instances(), vec![2]);
        // Its consultant is still in it: another laptop waiting cannot be admitted meanwhile.
        assert!(r.apply(Op::Join { peer: laptop(B + 7, 9), appointment: appt(9), consultant_id: 42 }).0.is_ok());
        let admit = Op::Admit { conn: B + 1, appointment_id: 9, to_kiosk: offer("k"), to_consultant: offer("c") };
        assert_eq!(r.apply(admit).0, Err(RoomError::Busy));
        // The laptop is back, on instance B: both sides hear the call resumed, with no admission.
        let (outcome, sends) =
            r.apply(Op::ResumeKiosk { peer: laptop(B + 5, 1), appointment_id: 7, consultant_id: 42 });
        assert_eq!(outcome.expect("resumed").map(|c| c.appointment_id), Some(7));
        let resumed = FromServer::Resumed { appointment_id: 7 };
        assert_eq!(sends, vec![(B + 5, resumed.clone()), (B + 1, resumed)]);
        assert_eq!(r.apply(Op::Relay { conn: B + 1, msg: offer("r") }), (Ok(None), vec![(B + 5, offer("r"))]));
    }

    #[test]
    fn issue_17_when_the_consultants_instance_dies_the_call_waits_for_the_page() {
        let mut r = call_across();
        assert_eq!(r.apply(Op::InstanceGone { instance: 2 }), (Ok(None), vec![]));
        assert!(r.knows_call(7));
        assert_eq!(r.apply(Op::Relay { conn: A + 1, msg: offer("o") }).0, Err(RoomError::NotInCall));
        assert!(r.apply(Op::Consultant { conn: A + 9, staff_id: 42 }).0.is_ok());
        let (outcome, sends) =
            r.apply(Op::ResumeConsultant { conn: A + 9, appointment_id: 7, device_id: laptop(0, 1).device_id });
        assert!(outcome.expect("resumed").is_some());
        assert_eq!(sends.len(), 2, "both hear it resumed: {sends:?}");
    }

    #[test]
    fn issue_17_a_waiting_room_on_a_dead_instance_goes_and_the_laptop_may_take_its_room_back() {
        let mut r = Rooms::default();
        assert!(r.apply(Op::Consultant { conn: B + 1, staff_id: 42 }).0.is_ok());
        assert!(r.apply(Op::Join { peer: laptop(A + 1, 1), appointment: appt(7), consultant_id: 42 }).0.is_ok());
        // Back on a new connection before its old one was seen to go: its own room is its.
        let (outcome, sends) = r.apply(Op::Join { peer: laptop(B + 2, 1), appointment: appt(7), consultant_id: 42 });
        assert_eq!(outcome, Ok(None));
        assert!(matches!(&sends[..], [(c, FromServer::Waiting { .. })] if *c == B + 2), "{sends:?}");
        assert_eq!(
            r.apply(Op::Join { peer: laptop(B + 3, 2), appointment: appt(7), consultant_id: 42 }).0,
            Err(RoomError::Occupied),
            "another laptop cannot"
        );
        // Its old instance's end takes nothing from it now; a room held there goes.
        assert!(r.apply(Op::Join { peer: laptop(A + 4, 3), appointment: appt(8), consultant_id: 42 }).0.is_ok());
        let (_, sends) = r.apply(Op::InstanceGone { instance: 1 });
        assert!(
            matches!(&sends[..], [(c, FromServer::WaitingRoom { waiting })] if *c == B + 1 && waiting.len() == 1 && waiting[0].appointment_id == 7),
            "{sends:?}"
        );
    }
}

//! The rooms hub: who waits in which appointment's room, who is in a call with whom, and the relay
//! of SDP and ICE between the two peers of a call. No I/O: each connection hands in a sender, and
//! the hub decides who hears what, so its rules are tested directly.
//!
//! A call outlives its signalling: the media flows peer to peer through the relay, so when the
//! care server restarts (a new, empty hub) each peer reconnects and asks to resume. The caller
//! checks the call was admitted (the database keeps live calls); the hub links the two halves
//! again as they come back, in either order.

use sc_proto::signal::{Appointment, FromServer, Role, Waiting};
use sc_proto::DeviceId;
use std::collections::HashMap;
use std::sync::Mutex;
use tokio::sync::mpsc::UnboundedSender;

/// Where a connection's messages go.
pub type Tx = UnboundedSender<FromServer>;

/// Why the hub refused a request (sent to the peer as `FromServer::Error`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
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
        }
    }

    /// As a message to the peer.
    pub fn to_message(&self) -> FromServer {
        FromServer::Error { kind: self.kind().into(), message: self.to_string() }
    }
}

/// A laptop in a room.
#[derive(Debug, Clone)]
pub struct KioskPeer {
    /// Its connection.
    pub conn: u64,
    /// Where to send.
    pub tx: Tx,
    /// The laptop.
    pub device_id: DeviceId,
    /// Its prison's name.
    pub prison: String,
    /// The nurse who unlocked it.
    pub nurse: String,
}

#[derive(Debug)]
struct Room {
    consultant_id: i64,
    kiosk: KioskPeer,
    /// The consultant's connection once admitted.
    call: Option<u64>,
    /// A call whose laptop came back after a restart, waiting for its consultant to: not a
    /// waiting room (nobody admits it again).
    resuming: bool,
}

#[derive(Debug)]
struct ConsultantConn {
    staff_id: i64,
    tx: Tx,
    room: Option<i64>,
    /// A call this page asked to resume before its laptop came back (the appointment, the laptop).
    pending: Option<(i64, DeviceId)>,
}

/// A call that just started or ended, for the audit log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CallEvent {
    /// The appointment.
    pub appointment_id: i64,
    /// The laptop.
    pub device_id: DeviceId,
    /// The consultant.
    pub consultant_id: i64,
}

#[derive(Debug, Default)]
struct Inner {
    next_conn: u64,
    rooms: HashMap<i64, Room>,
    consultants: HashMap<u64, ConsultantConn>,
    /// The server is stopping: connections closing now end nothing (their calls go on, and
    /// resume on the next server).
    closing: bool,
}

/// The hub.
#[derive(Debug, Default)]
pub struct Hub {
    inner: Mutex<Inner>,
}

fn send(tx: &Tx, msg: FromServer) {
    // A closed receiver means that connection is ending; its own cleanup will follow.
    let _ = tx.send(msg);
}

impl Inner {
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

    fn notify_consultant(&self, staff_id: i64) {
        let waiting = self.waiting_for(staff_id);
        for c in self.consultants.values().filter(|c| c.staff_id == staff_id) {
            send(&c.tx, FromServer::WaitingRoom { waiting: waiting.clone() });
        }
    }

    fn room_of_kiosk(&self, conn: u64) -> Option<i64> {
        self.rooms.iter().find(|(_, r)| r.kiosk.conn == conn).map(|(id, _)| *id)
    }

    /// Ends whatever `conn` takes part in; `to_other` is what the other side hears.
    fn leave(&mut self, conn: u64, to_other: FromServer) -> Option<CallEvent> {
        if let Some(id) = self.room_of_kiosk(conn) {
            let room = self.rooms.remove(&id)?;
            // A half-resumed call ends here too (its consultant never came back).
            let mut ended = room.resuming.then(|| CallEvent {
                appointment_id: id,
                device_id: room.kiosk.device_id.clone(),
                consultant_id: room.consultant_id,
            });
            if let Some(c) = room.call.and_then(|cc| self.consultants.get_mut(&cc)) {
                c.room = None;
                send(&c.tx, to_other);
                ended = Some(CallEvent {
                    appointment_id: id,
                    device_id: room.kiosk.device_id.clone(),
                    consultant_id: room.consultant_id,
                });
            }
            self.notify_consultant(room.consultant_id);
            return ended;
        }
        let c = self.consultants.get_mut(&conn)?;
        if let Some((appointment_id, device_id)) = c.pending.take() {
            // Asked to resume, and its laptop never came back: that call is over.
            return Some(CallEvent { appointment_id, device_id, consultant_id: c.staff_id });
        }
        let id = c.room.take()?;
        let room = self.rooms.remove(&id)?;
        send(&room.kiosk.tx, to_other);
        self.notify_consultant(room.consultant_id);
        Some(CallEvent { appointment_id: id, device_id: room.kiosk.device_id, consultant_id: room.consultant_id })
    }
}

impl Hub {
    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // Every mutation leaves the maps consistent, so a poisoned lock's data is still sound.
        self.inner.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// A new connection id.
    pub fn connection(&self) -> u64 {
        let mut inner = self.lock();
        inner.next_conn += 1;
        inner.next_conn
    }

    /// A consultant's page connected: it hears its waiting room now and on every change.
    pub fn consultant_connected(&self, conn: u64, staff_id: i64, tx: Tx) {
        let mut inner = self.lock();
        send(&tx, FromServer::WaitingRoom { waiting: inner.waiting_for(staff_id) });
        inner.consultants.insert(conn, ConsultantConn { staff_id, tx, room: None, pending: None });
    }

    /// A laptop joins an appointment's waiting room (authorization already checked by the caller).
    pub fn join(&self, peer: KioskPeer, appointment: &Appointment, consultant_id: i64) -> Result<(), RoomError> {
        let mut inner = self.lock();
        if let Some(room) = inner.rooms.get(&appointment.id) {
            if room.kiosk.conn != peer.conn {
                return Err(RoomError::Occupied);
            }
            return Ok(()); // joining again is harmless
        }
        if inner.rooms.values().any(|r| r.kiosk.device_id == peer.device_id && r.kiosk.conn != peer.conn) {
            return Err(RoomError::LaptopElsewhere);
        }
        if inner.room_of_kiosk(peer.conn).is_some() {
            inner.leave(peer.conn, FromServer::PeerLeft);
        }
        send(&peer.tx, FromServer::Waiting { appointment: appointment.clone() });
        inner.rooms.insert(appointment.id, Room { consultant_id, kiosk: peer, call: None, resuming: false });
        inner.notify_consultant(consultant_id);
        Ok(())
    }

    /// A consultant admits the laptop waiting in `appointment_id`. Each side gets its own
    /// `Admitted` from `admitted(role)`.
    pub fn admit(
        &self,
        conn: u64,
        appointment_id: i64,
        admitted: impl Fn(Role) -> FromServer,
    ) -> Result<CallEvent, RoomError> {
        let mut inner = self.lock();
        let Some(c) = inner.consultants.get(&conn) else { return Err(RoomError::Forbidden) };
        let (staff_id, busy, ctx) = (c.staff_id, c.room.is_some(), c.tx.clone());
        let Some(room) = inner.rooms.get_mut(&appointment_id) else { return Err(RoomError::NotWaiting) };
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
        send(&room.kiosk.tx, admitted(Role::Offerer));
        send(&ctx, admitted(Role::Answerer));
        let event = CallEvent { appointment_id, device_id: room.kiosk.device_id.clone(), consultant_id: staff_id };
        if let Some(c) = inner.consultants.get_mut(&conn) {
            c.room = Some(appointment_id);
        }
        inner.notify_consultant(staff_id);
        Ok(event)
    }

    /// Relays an SDP or ICE message to the other peer of `conn`'s call.
    pub fn relay(&self, conn: u64, msg: FromServer) -> Result<(), RoomError> {
        let inner = self.lock();
        if let Some(id) = inner.room_of_kiosk(conn) {
            let room = &inner.rooms[&id];
            let other = room.call.and_then(|cc| inner.consultants.get(&cc)).ok_or(RoomError::NotInCall)?;
            send(&other.tx, msg);
            return Ok(());
        }
        let id = inner.consultants.get(&conn).and_then(|c| c.room).ok_or(RoomError::NotInCall)?;
        let room = inner.rooms.get(&id).ok_or(RoomError::NotInCall)?;
        send(&room.kiosk.tx, msg);
        Ok(())
    }

    /// `conn` hangs up (or leaves the waiting room); the other side hears `HungUp`.
    pub fn hang_up(&self, conn: u64) -> Option<CallEvent> {
        self.lock().leave(conn, FromServer::HungUp)
    }

    /// `conn` went away; the other side hears `PeerLeft`. While the server stops, nothing ends:
    /// the peers resume their call on the next server.
    pub fn disconnected(&self, conn: u64) -> Option<CallEvent> {
        let mut inner = self.lock();
        if inner.closing {
            return None;
        }
        let ended = inner.leave(conn, FromServer::PeerLeft);
        inner.consultants.remove(&conn);
        ended
    }

    /// The server is stopping: from now on a connection that closes ends no call.
    pub fn close(&self) {
        self.lock().closing = true;
    }

    /// The call the consultant on `conn` is in, once admitted.
    pub fn call_of_consultant(&self, conn: u64) -> Option<CallEvent> {
        let inner = self.lock();
        let c = inner.consultants.get(&conn)?;
        let id = c.room?;
        let room = inner.rooms.get(&id).filter(|r| r.call == Some(conn))?;
        Some(CallEvent {
            appointment_id: id,
            device_id: room.kiosk.device_id.clone(),
            consultant_id: room.consultant_id,
        })
    }

    /// Whether the hub holds anything of `appointment_id`'s call (either half of a resume).
    pub fn knows_call(&self, appointment_id: i64) -> bool {
        let inner = self.lock();
        inner.rooms.get(&appointment_id).is_some_and(|r| r.call.is_some() || r.resuming)
            || inner.consultants.values().any(|c| c.pending.as_ref().is_some_and(|(a, _)| *a == appointment_id))
    }

    /// The laptop `peer` takes up `appointment_id`'s call again (the caller checked the call was
    /// admitted to this laptop and not ended, and that `consultant_id` admitted it). Returns the
    /// call when both sides are linked again (both hear `Resumed`).
    pub fn resume_kiosk(
        &self,
        peer: KioskPeer,
        appointment_id: i64,
        consultant_id: i64,
    ) -> Result<Option<CallEvent>, RoomError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        if let Some(room) = inner.rooms.get_mut(&appointment_id) {
            if room.kiosk.device_id != peer.device_id {
                return Err(RoomError::Occupied);
            }
            if room.call.is_none() && !room.resuming {
                return Err(RoomError::NotResumable);
            }
            // The same laptop on a new connection (the old one not yet seen to close).
            room.kiosk = peer;
            return Ok(room.call.and_then(|cc| inner.consultants.get(&cc)).map(|c| linked(appointment_id, room, c)));
        }
        if inner.rooms.values().any(|r| r.kiosk.device_id == peer.device_id || r.kiosk.conn == peer.conn) {
            return Err(RoomError::LaptopElsewhere);
        }
        let back = inner.consultants.iter_mut().find(|(_, c)| {
            c.staff_id == consultant_id
                && c.pending.as_ref().is_some_and(|(a, d)| *a == appointment_id && *d == peer.device_id)
        });
        let Some((cconn, c)) = back else {
            let room = Room { consultant_id, kiosk: peer, call: None, resuming: true };
            inner.rooms.insert(appointment_id, room);
            return Ok(None);
        };
        c.pending = None;
        c.room = Some(appointment_id);
        let room = Room { consultant_id, kiosk: peer, call: Some(*cconn), resuming: false };
        let event = linked(appointment_id, &room, c);
        inner.rooms.insert(appointment_id, room);
        Ok(Some(event))
    }

    /// The consultant's connection `conn` takes up `appointment_id`'s call with `device_id` again
    /// (the caller checked it is this consultant's live call). Returns the call when both sides
    /// are linked again (both hear `Resumed`).
    pub fn resume_consultant(
        &self,
        conn: u64,
        appointment_id: i64,
        device_id: &DeviceId,
    ) -> Result<Option<CallEvent>, RoomError> {
        let mut inner = self.lock();
        let inner = &mut *inner;
        let Some(c) = inner.consultants.get(&conn) else { return Err(RoomError::Forbidden) };
        let staff_id = c.staff_id;
        if c.room == Some(appointment_id) {
            return Ok(None);
        }
        if c.room.is_some() || c.pending.as_ref().is_some_and(|(a, _)| *a != appointment_id) {
            return Err(RoomError::Busy);
        }
        let Some(room) = inner.rooms.get_mut(&appointment_id) else {
            if let Some(c) = inner.consultants.get_mut(&conn) {
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
                if let Some(o) = inner.consultants.get_mut(&old).filter(|o| o.staff_id == staff_id) {
                    o.room = None;
                } else {
                    return Err(RoomError::NotResumable);
                }
            }
            None => return Err(RoomError::NotResumable),
        }
        room.resuming = false;
        room.call = Some(conn);
        let Some(c) = inner.consultants.get_mut(&conn) else { return Err(RoomError::Forbidden) };
        c.room = Some(appointment_id);
        c.pending = None;
        Ok(Some(linked(appointment_id, room, c)))
    }
}

/// Tells both sides of a call linked again, and returns it.
fn linked(appointment_id: i64, room: &Room, consultant: &ConsultantConn) -> CallEvent {
    send(&room.kiosk.tx, FromServer::Resumed { appointment_id });
    send(&consultant.tx, FromServer::Resumed { appointment_id });
    CallEvent { appointment_id, device_id: room.kiosk.device_id.clone(), consultant_id: room.consultant_id }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

    fn appt(id: i64) -> Appointment {
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

    fn kiosk(hub: &Hub) -> (KioskPeer, UnboundedReceiver<FromServer>) {
        let (tx, rx) = unbounded_channel();
        let conn = hub.connection();
        let mut id = [1u8; 16];
        id[..8].copy_from_slice(&conn.to_le_bytes());
        let peer =
            KioskPeer { conn, tx, device_id: DeviceId::from_random(id), prison: "HMP".into(), nurse: "Jo".into() };
        (peer, rx)
    }

    fn drain(rx: &mut UnboundedReceiver<FromServer>) -> Vec<FromServer> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    fn admitted(role: Role) -> FromServer {
        FromServer::Admitted { appointment_id: 7, role, ice_servers: vec![] }
    }

    #[test]
    fn wait_admit_relay_hang_up() {
        let hub = Hub::default();
        let (ctx, mut crx) = unbounded_channel();
        let cconn = hub.connection();
        hub.consultant_connected(cconn, 42, ctx);
        assert_eq!(drain(&mut crx), vec![FromServer::WaitingRoom { waiting: vec![] }]);

        let (k, mut krx) = kiosk(&hub);
        let kconn = k.conn;
        hub.join(k, &appt(7), 42).expect("join");
        assert!(matches!(drain(&mut krx)[..], [FromServer::Waiting { .. }]));
        assert!(matches!(&drain(&mut crx)[..], [FromServer::WaitingRoom { waiting }] if waiting.len() == 1));

        assert_eq!(hub.relay(kconn, FromServer::HungUp), Err(RoomError::NotInCall), "no relay before admission");
        hub.admit(cconn, 7, admitted).expect("admit");
        assert_eq!(drain(&mut krx), vec![admitted(Role::Offerer)]);
        assert!(drain(&mut crx).contains(&admitted(Role::Answerer)));

        hub.relay(kconn, FromServer::Offer { sdp: "o".into() }).expect("relay");
        assert_eq!(drain(&mut crx), vec![FromServer::Offer { sdp: "o".into() }]);
        hub.relay(cconn, FromServer::Answer { sdp: "a".into() }).expect("relay");
        assert_eq!(drain(&mut krx), vec![FromServer::Answer { sdp: "a".into() }]);

        let ended = hub.hang_up(cconn).expect("a call ended");
        assert_eq!(ended.appointment_id, 7);
        assert_eq!(drain(&mut krx), vec![FromServer::HungUp]);
        assert_eq!(hub.relay(kconn, FromServer::HungUp), Err(RoomError::NotInCall));
    }

    #[test]
    fn a_second_laptop_cannot_take_an_occupied_room() {
        let hub = Hub::default();
        let (a, _arx) = kiosk(&hub);
        let (b, _brx) = kiosk(&hub);
        hub.join(a, &appt(1), 42).expect("first");
        assert_eq!(hub.join(b, &appt(1), 42), Err(RoomError::Occupied));
    }

    #[test]
    fn issue_13_one_laptop_cannot_hold_two_rooms() {
        let hub = Hub::default();
        let (a, _arx) = kiosk(&hub);
        let (mut b, _brx) = kiosk(&hub);
        // The same laptop on a second connection.
        b.device_id = a.device_id.clone();
        hub.join(a.clone(), &appt(1), 42).expect("first room");
        assert_eq!(hub.join(b.clone(), &appt(2), 42), Err(RoomError::LaptopElsewhere));
        // Its own connection may move rooms (it leaves the first).
        hub.join(a.clone(), &appt(2), 42).expect("moved");
        assert_eq!(hub.join(b, &appt(1), 42), Err(RoomError::LaptopElsewhere));
    }

    #[test]
    fn only_the_appointments_consultant_admits() {
        let hub = Hub::default();
        let (other_tx, _orx) = unbounded_channel();
        let other = hub.connection();
        hub.consultant_connected(other, 99, other_tx);
        let (k, _krx) = kiosk(&hub);
        hub.join(k, &appt(3), 42).expect("join");
        assert_eq!(hub.admit(other, 3, admitted), Err(RoomError::Forbidden));
        assert_eq!(hub.admit(other, 4, admitted), Err(RoomError::NotWaiting));
    }

    #[test]
    fn a_vanished_peer_is_announced() {
        let hub = Hub::default();
        let (ctx, mut crx) = unbounded_channel();
        let cconn = hub.connection();
        hub.consultant_connected(cconn, 42, ctx);
        let (k, _krx) = kiosk(&hub);
        let kconn = k.conn;
        hub.join(k, &appt(5), 42).expect("join");
        hub.admit(cconn, 5, admitted).expect("admit");
        drain(&mut crx);
        assert!(hub.disconnected(kconn).is_some());
        assert_eq!(drain(&mut crx)[0], FromServer::PeerLeft);
        assert!(hub.disconnected(cconn).is_none(), "nothing left to end");
    }

    fn consultant(hub: &Hub, staff_id: i64) -> (u64, UnboundedReceiver<FromServer>) {
        let (tx, rx) = unbounded_channel();
        let conn = hub.connection();
        hub.consultant_connected(conn, staff_id, tx);
        (conn, rx)
    }

    /// After a restart (a new hub) either side may come back first; the call is linked when both
    /// are, with no admission, and messages are relayed again.
    #[test]
    fn issue_13_a_call_resumes_on_a_new_hub_whichever_side_comes_back_first() {
        for kiosk_first in [true, false] {
            let hub = Hub::default();
            let (cconn, mut crx) = consultant(&hub, 42);
            drain(&mut crx);
            let (k, mut krx) = kiosk(&hub);
            let (kconn, device) = (k.conn, k.device_id.clone());
            if kiosk_first {
                assert_eq!(hub.resume_kiosk(k, 7, 42), Ok(None), "its consultant is not back yet");
                assert!(drain(&mut crx).is_empty(), "a resuming call is not a waiting room");
                assert_eq!(hub.admit(cconn, 7, admitted), Err(RoomError::Occupied), "nor admitted again");
                assert!(hub.knows_call(7));
                let call = hub.resume_consultant(cconn, 7, &device).expect("resume").expect("linked");
                assert_eq!(call.appointment_id, 7);
            } else {
                assert_eq!(hub.resume_consultant(cconn, 7, &device), Ok(None), "its laptop is not back yet");
                assert!(hub.knows_call(7));
                let call = hub.resume_kiosk(k, 7, 42).expect("resume").expect("linked");
                assert_eq!(call.consultant_id, 42);
            }
            assert_eq!(drain(&mut krx), vec![FromServer::Resumed { appointment_id: 7 }]);
            assert_eq!(drain(&mut crx), vec![FromServer::Resumed { appointment_id: 7 }]);
            hub.relay(kconn, FromServer::Offer { sdp: "restart".into() }).expect("relayed to the page");
            assert_eq!(drain(&mut crx), vec![FromServer::Offer { sdp: "restart".into() }]);
            hub.relay(cconn, FromServer::Answer { sdp: "a".into() }).expect("relayed to the laptop");
            assert_eq!(drain(&mut krx), vec![FromServer::Answer { sdp: "a".into() }]);
            assert!(hub.hang_up(cconn).is_some(), "the resumed call ends as any other");
            assert_eq!(drain(&mut krx), vec![FromServer::HungUp]);
        }
    }

    #[test]
    fn issue_13_only_the_calls_own_laptop_and_consultant_link_up() {
        let hub = Hub::default();
        let (k, _krx) = kiosk(&hub);
        let device = k.device_id.clone();
        hub.resume_kiosk(k, 7, 42).expect("resuming");
        let (other, _orx) = consultant(&hub, 99);
        assert_eq!(hub.resume_consultant(other, 7, &device), Err(RoomError::NotResumable), "another consultant");
        let (mine, _mrx) = consultant(&hub, 42);
        let (stranger, _srx) = kiosk(&hub);
        assert_eq!(hub.resume_consultant(mine, 7, &stranger.device_id), Err(RoomError::NotResumable));
        assert_eq!(hub.resume_kiosk(stranger, 7, 42), Err(RoomError::Occupied), "another laptop");
        // A waiting room is not a call to resume.
        let (w, _wrx) = kiosk(&hub);
        let wdev = w.device_id.clone();
        hub.join(w, &appt(8), 42).expect("waiting");
        assert_eq!(hub.resume_consultant(mine, 8, &wdev), Err(RoomError::NotResumable));
    }

    #[test]
    fn issue_13_a_stopping_server_ends_no_call() {
        let hub = Hub::default();
        let (cconn, mut crx) = consultant(&hub, 42);
        let (k, _krx) = kiosk(&hub);
        let kconn = k.conn;
        hub.join(k, &appt(5), 42).expect("join");
        hub.admit(cconn, 5, admitted).expect("admit");
        drain(&mut crx);
        hub.close();
        assert!(hub.disconnected(kconn).is_none(), "the call goes on");
        assert!(drain(&mut crx).is_empty(), "the consultant is not told the laptop left");
    }

    #[test]
    fn issue_13_half_a_resumed_call_that_goes_away_ends_it() {
        let hub = Hub::default();
        let (k, _krx) = kiosk(&hub);
        let kconn = k.conn;
        hub.resume_kiosk(k, 7, 42).expect("resuming");
        assert_eq!(hub.disconnected(kconn).map(|e| e.appointment_id), Some(7));
        assert!(!hub.knows_call(7));
        let (cconn, _crx) = consultant(&hub, 42);
        let (k2, _k2rx) = kiosk(&hub);
        hub.resume_consultant(cconn, 9, &k2.device_id).expect("pending");
        assert_eq!(hub.disconnected(cconn).map(|e| e.appointment_id), Some(9));
        assert!(!hub.knows_call(9));
    }
}

//! The rooms hub: who waits in which appointment's room, who is in a call with whom, and the relay
//! of SDP and ICE between the two peers of a call. No I/O: each connection hands in a sender, and
//! the hub decides who hears what, so its rules are tested directly.

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
}

#[derive(Debug)]
struct ConsultantConn {
    staff_id: i64,
    tx: Tx,
    room: Option<i64>,
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
            .filter(|(_, r)| r.consultant_id == staff_id && r.call.is_none())
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
            let mut ended = None;
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
        let id = self.consultants.get_mut(&conn)?.room.take()?;
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
        inner.consultants.insert(conn, ConsultantConn { staff_id, tx, room: None });
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
        inner.rooms.insert(appointment.id, Room { consultant_id, kiosk: peer, call: None });
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
        if room.call.is_some() {
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

    /// `conn` went away; the other side hears `PeerLeft`.
    pub fn disconnected(&self, conn: u64) -> Option<CallEvent> {
        let mut inner = self.lock();
        let ended = inner.leave(conn, FromServer::PeerLeft);
        inner.consultants.remove(&conn);
        ended
    }
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
}

//! This instance's side of the rooms (crate::rooms): the senders of the signalling connections it
//! holds, and the road each change takes. On a server alone a change is applied at once; when
//! instances share a PostgreSQL database it goes through the bus (crate::bus), every instance
//! applies every change in the one order the database delivers them, and each sends what concerns
//! its own connections.

use crate::rooms::{CallEvent, ConnId, KioskPeer, Op, Outcome, RoomError, Rooms};
use sc_proto::signal::{Appointment, FromServer, Role};
use sc_proto::DeviceId;
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;
use tokio::sync::mpsc::UnboundedSender;

/// Where a connection's messages go.
pub type Tx = UnboundedSender<FromServer>;

/// How long a change waits for its turn on the bus at most. It comes back in milliseconds while
/// the bus lives, and the wait ends at once when the bus is lost or the server stops; this only
/// bounds a wait nothing else would end (a change given up on may still be applied later).
const TURN_WAIT: Duration = Duration::from_secs(60);

/// Publishes changes to every instance (crate::bus).
pub(crate) trait Publish: Send + Sync + std::fmt::Debug {
    /// Sends change `id` of this instance to all, itself included.
    fn publish(&self, id: u64, op: &Op) -> Result<(), crate::Error>;
    /// This instance is stopping: its session (and so its share of the rooms) ends.
    fn stop(&self);
}

/// See the module docs.
#[derive(Debug)]
pub struct Hub {
    instance: u32,
    /// This instance's connections so far (a connection id's low 32 bits).
    next_conn: AtomicU64,
    /// This instance's changes so far (their ids on the bus).
    next_op: AtomicU64,
    rooms: Mutex<Rooms>,
    local: Mutex<HashMap<ConnId, Tx>>,
    /// The server is stopping: connections closing now end nothing (their calls go on, and
    /// resume on the next server or another instance).
    closing: AtomicBool,
    bus: Option<Box<dyn Publish>>,
    /// The bus's session ended under this instance, or it stopped: its copy of the rooms is no
    /// longer kept, and changes are refused.
    lost: AtomicBool,
    /// Told when the bus is lost (not when the server stops): the server then stops too.
    lost_signal: tokio::sync::watch::Sender<bool>,
    /// This instance's changes on the bus, waiting for their turn: their outcome goes back here.
    waiting: Mutex<HashMap<u64, std::sync::mpsc::SyncSender<Outcome>>>,
}

impl Default for Hub {
    fn default() -> Self {
        Hub {
            instance: 0,
            next_conn: AtomicU64::new(0),
            next_op: AtomicU64::new(0),
            rooms: Mutex::default(),
            local: Mutex::default(),
            closing: AtomicBool::new(false),
            bus: None,
            lost: AtomicBool::new(false),
            lost_signal: tokio::sync::watch::Sender::new(false),
            waiting: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    // Every change leaves the maps consistent, so a poisoned lock's data is still sound.
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Hub {
    /// A hub for instance `instance` whose changes go through `bus`.
    pub(crate) fn on_bus(instance: u32, bus: Box<dyn Publish>) -> Self {
        Hub { instance, bus: Some(bus), ..Hub::default() }
    }

    /// This instance's number (0 on a server alone).
    pub fn instance(&self) -> u32 {
        self.instance
    }

    /// A new connection of this instance, whose messages go to `tx`.
    pub fn connection(&self, tx: Tx) -> ConnId {
        // The low half only: a counter past 2^32 wraps rather than spill into the instance's
        // number (four billion connections later, the first are long gone).
        let n = (self.next_conn.fetch_add(1, Ordering::Relaxed) + 1) & 0xffff_ffff;
        let conn = (u64::from(self.instance) << 32) | n;
        lock(&self.local).insert(conn, tx);
        conn
    }

    /// Applies a change in its turn (from the bus, or at once on a server alone) and sends what
    /// concerns this instance's connections.
    pub(crate) fn apply(&self, op: Op) -> Outcome {
        let mut rooms = lock(&self.rooms);
        let (outcome, sends) = rooms.apply(op);
        // Sent while the rooms are held, so each connection hears the changes in their order.
        let local = lock(&self.local);
        for (conn, msg) in sends {
            if let Some(tx) = local.get(&conn) {
                // A closed receiver means that connection is ending; its own cleanup will follow.
                let _ = tx.send(msg);
            }
        }
        outcome
    }

    /// Applies change `id` of `from` in its turn on the bus; this instance's own change hands
    /// its outcome back to the caller waiting for it.
    pub(crate) fn apply_from(&self, from: u32, id: u64, op: Op) {
        let outcome = self.apply(op);
        if from == self.instance {
            if let Some(back) = lock(&self.waiting).remove(&id) {
                // The caller may have stopped waiting; its peer was told to try again.
                let _ = back.try_send(outcome);
            }
        }
    }

    /// A copy of the rooms (for an instance that starts beside this one).
    pub(crate) fn snapshot(&self) -> Rooms {
        lock(&self.rooms).clone()
    }

    /// Takes the rooms as another instance had them (this one starting).
    pub(crate) fn restore(&self, rooms: Rooms) {
        *lock(&self.rooms) = rooms;
    }

    /// The instances holding connections the rooms know.
    pub(crate) fn instances(&self) -> Vec<u32> {
        lock(&self.rooms).instances()
    }

    /// The bus is gone: changes are refused from now on, those waiting for their turn are told
    /// so, and the server stops (crate::serve; its peers reconnect to another instance).
    pub(crate) fn lost_bus(&self) {
        self.refuse_changes();
        self.lost_signal.send_replace(true);
    }

    /// Becomes true when the bus is lost.
    pub fn lost(&self) -> tokio::sync::watch::Receiver<bool> {
        self.lost_signal.subscribe()
    }

    fn refuse_changes(&self) {
        self.lost.store(true, Ordering::SeqCst);
        // Dropping the senders ends each waiter's wait.
        lock(&self.waiting).clear();
    }

    fn submit(&self, op: Op) -> Outcome {
        let Some(bus) = &self.bus else { return self.apply(op) };
        let id = self.next_op.fetch_add(1, Ordering::Relaxed) + 1;
        let (back, outcome) = std::sync::mpsc::sync_channel(1);
        lock(&self.waiting).insert(id, back);
        // Checked after the waiter is in: a loss in between has either cleared it or is seen here.
        if self.lost.load(Ordering::SeqCst) {
            lock(&self.waiting).remove(&id);
            return Err(RoomError::Unavailable);
        }
        if let Err(e) = bus.publish(id, &op) {
            lock(&self.waiting).remove(&id);
            tracing::error!(error = %e, "publishing a change to the rooms failed");
            return Err(RoomError::Unavailable);
        }
        outcome.recv_timeout(TURN_WAIT).unwrap_or_else(|e| {
            lock(&self.waiting).remove(&id);
            if matches!(e, std::sync::mpsc::RecvTimeoutError::Timeout) {
                tracing::error!("a change to the rooms did not come back from the bus");
            }
            Err(RoomError::Unavailable)
        })
    }

    /// A call's end or start the caller audits; a refusal here has no peer to tell.
    fn call(&self, op: Op) -> Option<CallEvent> {
        self.submit(op).unwrap_or_default()
    }

    /// A consultant's page connected: it hears its waiting room now and on every change.
    pub fn consultant_connected(&self, conn: ConnId, staff_id: i64) {
        let _ = self.submit(Op::Consultant { conn, staff_id });
    }

    /// A laptop joins an appointment's waiting room (authorization already checked by the caller).
    pub fn join(&self, peer: KioskPeer, appointment: &Appointment, consultant_id: i64) -> Result<(), RoomError> {
        self.submit(Op::Join { peer, appointment: appointment.clone(), consultant_id }).map(|_| ())
    }

    /// A consultant admits the laptop waiting in `appointment_id`. Each side gets its own
    /// `Admitted` from `admitted(role)`.
    pub fn admit(
        &self,
        conn: ConnId,
        appointment_id: i64,
        admitted: impl Fn(Role) -> FromServer,
    ) -> Result<CallEvent, RoomError> {
        let op = Op::Admit {
            conn,
            appointment_id,
            to_kiosk: admitted(Role::Offerer),
            to_consultant: admitted(Role::Answerer),
        };
        // An admission is always a call.
        self.submit(op)?.ok_or(RoomError::NotWaiting)
    }

    /// Relays an SDP or ICE message to the other peer of `conn`'s call.
    pub fn relay(&self, conn: ConnId, msg: FromServer) -> Result<(), RoomError> {
        self.submit(Op::Relay { conn, msg }).map(|_| ())
    }

    /// `conn` hangs up (or leaves the waiting room); the other side hears `HungUp`.
    pub fn hang_up(&self, conn: ConnId) -> Option<CallEvent> {
        self.call(Op::HangUp { conn })
    }

    /// `conn` went away; the other side hears `PeerLeft`. While the server stops, nothing ends:
    /// the peers resume their call on the next server.
    pub fn disconnected(&self, conn: ConnId) -> Option<CallEvent> {
        // A connection that never entered the rooms (a laptop that connected and joined nothing)
        // leaves without a word to the other instances: only its own operations could have put
        // it there, and they were applied here before they returned.
        let known = lock(&self.rooms).knows_conn(conn);
        let ended =
            if self.closing.load(Ordering::SeqCst) || !known { None } else { self.call(Op::Disconnected { conn }) };
        lock(&self.local).remove(&conn);
        ended
    }

    /// The server is stopping: from now on a connection that closes ends no call, and the other
    /// instances take this one's connections as gone.
    pub fn close(&self) {
        self.closing.store(true, Ordering::SeqCst);
        if let Some(bus) = &self.bus {
            self.refuse_changes();
            bus.stop();
        }
    }

    /// The call the consultant on `conn` is in, once admitted.
    pub fn call_of_consultant(&self, conn: ConnId) -> Option<CallEvent> {
        lock(&self.rooms).call_of_consultant(conn)
    }

    /// Whether the rooms hold anything of `appointment_id`'s call (either half of a resume).
    pub fn knows_call(&self, appointment_id: i64) -> bool {
        lock(&self.rooms).knows_call(appointment_id)
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
        self.submit(Op::ResumeKiosk { peer, appointment_id, consultant_id })
    }

    /// The consultant's connection `conn` takes up `appointment_id`'s call with `device_id` again
    /// (the caller checked it is this consultant's live call). Returns the call when both sides
    /// are linked again (both hear `Resumed`).
    pub fn resume_consultant(
        &self,
        conn: ConnId,
        appointment_id: i64,
        device_id: &DeviceId,
    ) -> Result<Option<CallEvent>, RoomError> {
        self.submit(Op::ResumeConsultant { conn, appointment_id, device_id: device_id.clone() })
    }

    /// Announces that `instance` is gone (whichever instance sees it first).
    pub(crate) fn instance_gone(&self, instance: u32) {
        let _ = self.submit(Op::InstanceGone { instance });
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rooms::tests::appt;
    use tokio::sync::mpsc::{unbounded_channel, UnboundedReceiver};

    fn kiosk(hub: &Hub) -> (KioskPeer, UnboundedReceiver<FromServer>) {
        let (tx, rx) = unbounded_channel();
        let conn = hub.connection(tx);
        let mut id = [1u8; 16];
        id[..8].copy_from_slice(&conn.to_le_bytes());
        let peer = KioskPeer { conn, device_id: DeviceId::from_random(id), prison: "HMP".into(), nurse: "Jo".into() };
        (peer, rx)
    }

    fn drain(rx: &mut UnboundedReceiver<FromServer>) -> Vec<FromServer> {
        std::iter::from_fn(|| rx.try_recv().ok()).collect()
    }

    fn admitted(role: Role) -> FromServer {
        FromServer::Admitted { appointment_id: 7, role, ice_servers: vec![] }
    }

    /// Issue #17: ids carry their instance in the high half; four billion connections (or, before
    /// the counters were apart, four billion relayed messages) must not spill into it.
    #[test]
    fn issue_17_a_connection_id_keeps_its_instance_when_the_counter_wraps() {
        let hub = Hub { instance: 4, next_conn: AtomicU64::new(0xffff_fffe), ..Hub::default() };
        let (tx, _rx) = unbounded_channel();
        for _ in 0..3 {
            assert_eq!(crate::rooms::instance_of(hub.connection(tx.clone())), 4);
        }
        // Relays do not use up connection ids.
        let before = hub.next_conn.load(Ordering::Relaxed);
        let _ = hub.relay(1, FromServer::HungUp);
        assert_eq!(hub.next_conn.load(Ordering::Relaxed), before);
    }

    #[test]
    fn wait_admit_relay_hang_up() {
        let hub = Hub::default();
        let (ctx, mut crx) = unbounded_channel();
        let cconn = hub.connection(ctx);
        hub.consultant_connected(cconn, 42);
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
        let other = hub.connection(other_tx);
        hub.consultant_connected(other, 99);
        let (k, _krx) = kiosk(&hub);
        hub.join(k, &appt(3), 42).expect("join");
        assert_eq!(hub.admit(other, 3, admitted), Err(RoomError::Forbidden));
        assert_eq!(hub.admit(other, 4, admitted), Err(RoomError::NotWaiting));
    }

    #[test]
    fn a_vanished_peer_is_announced() {
        let hub = Hub::default();
        let (ctx, mut crx) = unbounded_channel();
        let cconn = hub.connection(ctx);
        hub.consultant_connected(cconn, 42);
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
        let conn = hub.connection(tx);
        hub.consultant_connected(conn, staff_id);
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

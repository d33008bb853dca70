//! The rooms shared by instances on one PostgreSQL database. Every change to them is published
//! with NOTIFY and applied by every instance, the sender too, as it comes back: PostgreSQL
//! delivers notifications in the order their transactions committed, the same order to every
//! listener, so all instances hold the same rooms (crate::rooms) and each sends what concerns its
//! own connections. Any role that may connect to the database may listen and notify, so each
//! message is sealed under a key the instances derive from the server secret, bound to its sender
//! and number, and a message seen once is refused again. An instance starting beside others first
//! takes a copy of their rooms. Each holds a session lock while it lives; one whose lock is gone
//! (it stopped, or died with its session) is announced gone, and its calls wait to be resumed
//! where their peers reconnect.

use crate::conn::Store;
use crate::hub::{Hub, Publish};
use crate::keys::SealKey;
use crate::rooms::{Op, Rooms};
use crate::store::{Dialect, Session};
use crate::{params, Error};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeSet, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::oneshot;

/// The channel every instance listens on.
const CHANNEL: &str = "sc_rooms";
/// What every message starts with: an instance speaking another version of the bus is not
/// understood (its messages are refused and logged), so instances are upgraded together.
const VERSION: &str = "b1";
/// The first key of the instances' session locks; the second is the instance's number.
const LOCK_CLASS: i32 = 0x5c17;
/// A notification's payload stays under PostgreSQL's 8000 bytes: a longer message goes in parts,
/// in one transaction (delivered together and in order).
const PART: usize = 7000;
/// Messages whose parts are still coming, at most (anything more is not from an instance).
const MAX_PARTIAL: usize = 64;
/// How many message numbers of each sender are remembered, to refuse a replay.
const SEEN: usize = 4096;
/// How often the instances still holding their locks are looked for.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// How long a starting instance waits for a copy of the rooms before asking again; it starts
/// with none only when every other instance is starting too.
const COPY_WAIT: Duration = Duration::from_secs(3);
/// How long it asks before giving up (the server does not start).
const COPY_GIVE_UP: Duration = Duration::from_secs(30);
/// The bus's own messages are numbered apart from the hub's changes.
const OWN_IDS: u64 = 1 << 63;

/// What goes on the bus. Externally tagged: an internally tagged enum is read through a buffer
/// that cannot turn the rooms' numeric map keys back into numbers.
#[derive(Debug, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
enum Message {
    /// A change to the rooms.
    Op { op: Op },
    /// An instance starting: its copy comes from any instance already up.
    WantCopy,
    /// The rooms, for instance `to`, as they were when its `WantCopy` number `want` came.
    Copy { to: u32, want: u64, rooms: Rooms },
}

/// The hub's road to the others (see [`Publish`]).
#[derive(Debug)]
struct Bus {
    store: Arc<Store>,
    instance: u32,
    /// Dropped to end the session (the listener stops, the lock goes with the session).
    stop: Mutex<Option<oneshot::Sender<()>>>,
    stopped: Arc<AtomicBool>,
}

impl Publish for Bus {
    fn publish(&self, id: u64, op: &Op) -> Result<(), Error> {
        send(&self.store, self.instance, id, &Message::Op { op: op.clone() })
    }

    fn stop(&self) {
        self.stopped.store(true, Ordering::SeqCst);
        self.stop.lock().unwrap_or_else(PoisonError::into_inner).take();
    }
}

/// A number for one of the bus's own messages.
fn own_id(next: &AtomicU64) -> u64 {
    OWN_IDS | (next.fetch_add(1, Ordering::Relaxed) + 1)
}

/// `s` cut into pieces of at most `max` bytes, on character boundaries.
fn parts(s: &str, max: usize) -> Vec<&str> {
    let mut out = Vec::new();
    let mut rest = s;
    while !rest.is_empty() {
        let mut end = rest.len().min(max);
        while !rest.is_char_boundary(end) {
            end -= 1;
        }
        let (head, tail) = rest.split_at(end);
        out.push(head);
        rest = tail;
    }
    out
}

/// What a message is sealed for: its sender and number, so it cannot pass for another.
fn label(from: u32, id: u64) -> String {
    format!("rooms-bus {from} {id}")
}

/// Publishes message `id` of instance `from`, sealed: `"<version> <from> <id> <part> <parts> <sealed>"`
/// per part.
fn send(store: &Store, from: u32, id: u64, message: &Message) -> Result<(), Error> {
    let json = serde_json::to_string(message).map_err(|e| Error::Bus(format!("a message: {e}")))?;
    let sealed = store.keys().bus.seal(&json, &label(from, id))?;
    let pieces = parts(&sealed, PART);
    let c = store.conn();
    let tx = c.transaction()?;
    for (n, piece) in pieces.iter().enumerate() {
        let payload = format!("{VERSION} {from} {id} {n} {} {piece}", pieces.len());
        tx.execute("SELECT pg_notify(?1, ?2)", params![CHANNEL, payload])?;
    }
    tx.commit()?;
    Ok(())
}

/// A part as it came: (from, id, part, parts, text); `None` if it is not one of this version's.
fn parse(payload: &str) -> Option<(u32, u64, usize, usize, &str)> {
    let mut it = payload.splitn(6, ' ');
    if it.next()? != VERSION {
        return None;
    }
    let from = it.next()?.parse().ok()?;
    let id = it.next()?.parse().ok()?;
    let n = it.next()?.parse().ok()?;
    let of = it.next()?.parse().ok()?;
    Some((from, id, n, of, it.next()?))
}

/// The message numbers seen from one sender (in one of its two ranges): anything at or under the
/// floor, or seen already, is a replay.
#[derive(Debug, Default)]
struct Seen {
    floor: u64,
    ids: BTreeSet<u64>,
}

impl Seen {
    /// Whether `id` is new (and now seen).
    fn first_time(&mut self, id: u64) -> bool {
        if id <= self.floor || !self.ids.insert(id) {
            return false;
        }
        while self.ids.len() > SEEN {
            if let Some(oldest) = self.ids.pop_first() {
                self.floor = oldest;
            }
        }
        true
    }
}

/// The instances whose session (and lock) is alive.
fn live(store: &Store) -> Result<Vec<u32>, Error> {
    let ids: Vec<i64> = store.conn().query_vec(
        "SELECT objid::bigint FROM pg_locks WHERE locktype = 'advisory' AND classid::bigint = ?1 \
         AND objsubid = 2 AND granted AND database = (SELECT oid FROM pg_database WHERE datname = current_database())",
        [i64::from(LOCK_CLASS)],
        |r| r.get(0),
    )?;
    Ok(ids.into_iter().filter_map(|i| u32::try_from(i).ok()).collect())
}

/// Called when the bus's session ends under an instance (not when it stops): its signalling
/// connections should close, so their peers reconnect to another instance.
pub type OnLost = Box<dyn Fn() + Send + Sync>;

/// The hub for `store`: on its own on SQLite; on PostgreSQL, one instance of those sharing the
/// database, with the rooms copied from them and kept in step.
///
/// # Errors
/// The database could not number this instance or open its session, or no copy of the rooms
/// came from the instances already up within [`COPY_GIVE_UP`].
pub fn hub(store: &Arc<Store>, on_lost: OnLost) -> Result<Arc<Hub>, Error> {
    if store.dialect() != Dialect::Postgres {
        return Ok(Arc::default());
    }
    let number: i64 = store.conn().query_row("SELECT nextval('hub_instance')", [], |r| r.get(0))?;
    let instance = u32::try_from(number).map_err(|_| Error::Bus(format!("instance number {number}")))?;
    let lock = i32::try_from(instance).map_err(|_| Error::Bus(format!("instance number {number}")))?;
    let Some(session) = store.session(CHANNEL, (LOCK_CLASS, lock))? else { return Ok(Arc::default()) };
    let alone = live(store)?.iter().all(|i| *i == instance);
    let (stop, stopped_rx) = oneshot::channel();
    let stopped = Arc::new(AtomicBool::new(false));
    let next = Arc::new(AtomicU64::new(0));
    let bus = Bus { store: Arc::clone(store), instance, stop: Mutex::new(Some(stop)), stopped: Arc::clone(&stopped) };
    let hub = Arc::new(Hub::on_bus(instance, Box::new(bus)));
    let (ready, is_ready) = std::sync::mpsc::channel();
    let copy = if alone {
        Copying::Done
    } else {
        let want = own_id(&next);
        send(store, instance, want, &Message::WantCopy)?;
        Copying::Asked { want, seen: false, buffer: Vec::new(), starting: HashSet::new() }
    };
    let listener = Listener {
        hub: Arc::downgrade(&hub),
        store: Arc::downgrade(store),
        key: store.keys().bus.clone(),
        instance,
        next,
        partial: HashMap::new(),
        seen: HashMap::new(),
        copy,
        ready: Some(ready),
        on_lost,
    };
    store.spawn(listener.run(session, stopped_rx));
    // The listener says when the rooms are in step: at once when alone, else after the copy.
    match is_ready.recv_timeout(COPY_GIVE_UP + COPY_WAIT) {
        Ok(true) => {}
        _ => {
            hub.close();
            return Err(Error::Bus("no copy of the rooms came from the instances already up".into()));
        }
    }
    store.spawn(watch(Arc::downgrade(&hub), Arc::downgrade(store), instance, stopped));
    tracing::info!(instance, alone, "the rooms are shared with the other instances");
    Ok(hub)
}

/// Where a starting instance is with its copy of the rooms.
enum Copying {
    /// Its `WantCopy` number `want` is out; once it came back (`seen`) the changes after it wait
    /// for the copy. `starting`: the others seen asking for a copy too.
    Asked { want: u64, seen: bool, buffer: Vec<(u32, u64, Op)>, starting: HashSet<u32> },
    /// In step.
    Done,
}

struct Listener {
    hub: Weak<Hub>,
    store: Weak<Store>,
    key: SealKey,
    instance: u32,
    next: Arc<AtomicU64>,
    /// Messages whose parts are still coming.
    partial: HashMap<(u32, u64), Vec<String>>,
    /// Per sender, the message numbers seen (changes and the bus's own apart).
    seen: HashMap<(u32, bool), Seen>,
    copy: Copying,
    ready: Option<std::sync::mpsc::Sender<bool>>,
    on_lost: OnLost,
}

impl Listener {
    async fn run(mut self, mut session: Session, mut stop: oneshot::Receiver<()>) {
        if matches!(self.copy, Copying::Done) {
            self.in_step(None);
        }
        let began = tokio::time::Instant::now();
        let mut deadline = began + COPY_WAIT;
        loop {
            let waiting = matches!(self.copy, Copying::Asked { .. });
            let payload = tokio::select! {
                _ = &mut stop => return,
                () = tokio::time::sleep_until(deadline), if waiting => {
                    if began.elapsed() >= COPY_GIVE_UP {
                        tracing::error!("no copy of the rooms came from the instances already up");
                        self.ready.take();
                        return;
                    }
                    self.no_copy_yet().await;
                    deadline = tokio::time::Instant::now() + COPY_WAIT;
                    continue;
                }
                p = session.notes.recv() => p,
            };
            let Some(payload) = payload else { break };
            if self.hub.upgrade().is_none() {
                return;
            }
            if let Some((from, id, message)) = self.message(&payload) {
                self.receive(from, id, message);
            }
        }
        // The session ended under this instance (the database restarted or went away).
        if let Some(hub) = self.hub.upgrade() {
            tracing::error!("the rooms' bus was lost: this instance's signalling connections close and it stops");
            hub.lost_bus();
            (self.on_lost)();
        }
    }

    /// A whole message, opened and new, from one notification (`None` while parts are still
    /// coming, or for anything that is not a sealed message of this bus's version never seen).
    fn message(&mut self, payload: &str) -> Option<(u32, u64, Message)> {
        let Some((from, id, n, of, text)) = parse(payload) else {
            tracing::error!(
                "a message on the rooms' bus in another version or garbled (instances must be upgraded together)"
            );
            return None;
        };
        let sealed = if of <= 1 {
            text.to_owned()
        } else {
            if !self.partial.contains_key(&(from, id)) && self.partial.len() >= MAX_PARTIAL {
                tracing::error!("too many unfinished messages on the rooms' bus: dropped");
                self.partial.clear();
            }
            let parts = self.partial.entry((from, id)).or_default();
            if parts.len() != n {
                tracing::error!(from, id, "a message on the rooms' bus lost a part");
                self.partial.remove(&(from, id));
                return None;
            }
            parts.push(text.to_owned());
            if parts.len() < of {
                return None;
            }
            self.partial.remove(&(from, id)).unwrap_or_default().concat()
        };
        let Ok(json) = self.key.open(&sealed, &label(from, id)) else {
            tracing::error!(from, id, "a message on the rooms' bus that this server's key does not open: ignored");
            return None;
        };
        if !self.seen.entry((from, id & OWN_IDS != 0)).or_default().first_time(id) {
            tracing::error!(from, id, "a message on the rooms' bus seen before: ignored");
            return None;
        }
        match serde_json::from_str::<Message>(&json) {
            Ok(message) => Some((from, id, message)),
            Err(e) => {
                // Where, not what: the error's text may quote the message.
                tracing::error!(from, id, category = ?e.classify(), column = e.column(), "an unreadable message on the rooms' bus");
                None
            }
        }
    }

    fn receive(&mut self, from: u32, id: u64, message: Message) {
        let Some(hub) = self.hub.upgrade() else { return };
        match (message, &mut self.copy) {
            (Message::Op { op }, Copying::Done) => hub.apply_from(from, id, op),
            (Message::Op { op }, Copying::Asked { seen: true, buffer, .. }) => buffer.push((from, id, op)),
            // Before this instance's request: the copy has it already.
            (Message::Op { .. }, Copying::Asked { seen: false, .. }) => {}
            (Message::WantCopy, Copying::Asked { want, seen, buffer, .. }) if from == self.instance && id == *want => {
                // The copy answers this request: it holds everything before it.
                *seen = true;
                buffer.clear();
            }
            (Message::WantCopy, Copying::Asked { starting, .. }) if from != self.instance => {
                starting.insert(from);
            }
            (Message::WantCopy, Copying::Done) if from != self.instance => {
                let (rooms, store, me, mine) = (hub.snapshot(), self.store.clone(), self.instance, own_id(&self.next));
                tokio::task::spawn_blocking(move || {
                    let Some(store) = store.upgrade() else { return };
                    if let Err(e) = send(&store, me, mine, &Message::Copy { to: from, want: id, rooms }) {
                        tracing::error!(error = %e, "sending a starting instance the rooms failed");
                    }
                });
            }
            (Message::Copy { to, want: answered, rooms }, Copying::Asked { want, seen: true, .. })
                if to == self.instance && answered == *want =>
            {
                self.in_step(Some(rooms));
            }
            _ => {}
        }
    }

    /// No copy came in time: if every other live instance is starting too, there are no rooms to
    /// copy and this one starts with none; else it asks again (the copy then answers the new
    /// request, and the changes buffered for the old one are dropped when the new one comes back).
    async fn no_copy_yet(&mut self) {
        let Some(store) = self.store.upgrade() else { return };
        let me = self.instance;
        let live = tokio::task::spawn_blocking(move || live(&store)).await;
        let Copying::Asked { starting, .. } = &self.copy else { return };
        match live {
            Ok(Ok(live)) if live.iter().all(|i| *i == me || starting.contains(i)) => {
                tracing::info!("the other instances are starting too: no rooms to copy");
                self.in_step(Some(Rooms::default()));
            }
            Ok(Ok(_)) => {
                let want = own_id(&self.next);
                if let Copying::Asked { want: w, seen, .. } = &mut self.copy {
                    (*w, *seen) = (want, false);
                }
                let Some(store) = self.store.upgrade() else { return };
                tracing::warn!("no copy of the rooms came yet: asking again");
                let asked = tokio::task::spawn_blocking(move || send(&store, me, want, &Message::WantCopy)).await;
                if !matches!(asked, Ok(Ok(()))) {
                    tracing::error!("asking for a copy of the rooms failed");
                }
            }
            _ => tracing::error!("looking for the live instances failed"),
        }
    }

    /// The rooms are in step: `rooms` (a copy, or empty) and the changes since.
    fn in_step(&mut self, rooms: Option<Rooms>) {
        let Some(hub) = self.hub.upgrade() else { return };
        if let Some(rooms) = rooms {
            hub.restore(rooms);
        }
        if let Copying::Asked { buffer, .. } = std::mem::replace(&mut self.copy, Copying::Done) {
            for (from, id, op) in buffer {
                hub.apply_from(from, id, op);
            }
        }
        if let Some(ready) = self.ready.take() {
            // The starting instance may have given up waiting; it has said why.
            let _ = ready.send(true);
        }
    }
}

/// Announces the instances the rooms still hold connections of, but whose session has gone.
async fn watch(hub: Weak<Hub>, store: Weak<Store>, instance: u32, stopped: Arc<AtomicBool>) {
    let mut tick = tokio::time::interval(WATCH_EVERY);
    loop {
        tick.tick().await;
        if stopped.load(Ordering::SeqCst) {
            return;
        }
        let (Some(hub), Some(store)) = (hub.upgrade(), store.upgrade()) else { return };
        let looked = tokio::task::spawn_blocking(move || {
            let live = live(&store)?;
            for gone in hub.instances().into_iter().filter(|i| *i != instance && !live.contains(i)) {
                tracing::warn!(instance = gone, "an instance is gone: its calls wait to be resumed");
                hub.instance_gone(gone);
            }
            Ok::<_, Error>(())
        })
        .await;
        match looked {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::error!(error = %e, "looking for gone instances failed"),
            Err(e) => tracing::error!(error = %e, "looking for gone instances stopped"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn long_messages_go_in_parts_that_rejoin_on_character_boundaries() {
        let text = "é".repeat(5000) + "abc";
        let pieces = parts(&text, PART);
        assert!(pieces.len() > 1 && pieces.iter().all(|p| p.len() <= PART), "{}", pieces.len());
        assert_eq!(pieces.concat(), text);
        assert_eq!(parse("b1 3 9 0 1 sealed1:xyz"), Some((3, 9, 0, 1, "sealed1:xyz")));
        assert_eq!(parse("b1 3 x 0 1 {}"), None);
        assert_eq!(parse("b0 3 9 0 1 sealed1:xyz"), None, "another version");
    }

    #[test]
    fn a_copy_of_the_rooms_reads_back_whole() {
        let mut rooms = Rooms::default();
        let peer = crate::rooms::KioskPeer {
            conn: 1 << 32 | 1,
            device_id: sc_proto::DeviceId::from_random([1; 16]),
            prison: "HMP".into(),
            nurse: "Jo".into(),
        };
        let appointment = crate::rooms::tests::appt(8);
        assert!(rooms.apply(Op::Join { peer, appointment, consultant_id: 42 }).0.is_ok());
        let json = serde_json::to_string(&Message::Copy { to: 3, want: 5, rooms: rooms.clone() }).expect("json");
        let Ok(Message::Copy { to: 3, want: 5, rooms: back }) = serde_json::from_str(&json) else { panic!("{json}") };
        assert_eq!(back, rooms);
    }

    #[test]
    fn issue_17_a_message_seen_once_is_refused_again() {
        let mut seen = Seen::default();
        assert!(seen.first_time(5) && seen.first_time(3), "out of order is fine");
        assert!(!seen.first_time(5), "a replay");
        for id in 6..(6 + SEEN as u64 + 10) {
            assert!(seen.first_time(id));
        }
        assert!(!seen.first_time(4), "under the floor once many more came");
    }
}

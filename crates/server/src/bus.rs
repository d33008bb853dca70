//! The rooms shared by instances on one PostgreSQL database. Every change to them is published
//! with NOTIFY and applied by every instance, the sender too, as it comes back: PostgreSQL
//! delivers notifications in the order their transactions committed, the same order to every
//! listener, so all instances hold the same rooms (crate::rooms) and each sends what concerns its
//! own connections. An instance starting beside others first takes a copy of their rooms. Each
//! holds a session lock while it lives; one whose lock is gone (it stopped, or died with its
//! session) is announced gone by whichever instance sees it first, and its calls wait to be
//! resumed where their peers reconnect.

use crate::conn::Store;
use crate::hub::{Hub, Publish};
use crate::rooms::{Op, Rooms};
use crate::store::{Dialect, Session};
use crate::{params, Error};
use serde::{Deserialize, Serialize};
use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError, Weak};
use std::time::Duration;
use tokio::sync::oneshot;

/// The channel every instance listens on.
const CHANNEL: &str = "sc_rooms";
/// The first key of the instances' session locks; the second is the instance's number.
const LOCK_CLASS: i32 = 0x5c17;
/// A notification's payload stays under PostgreSQL's 8000 bytes: a longer message goes in parts,
/// in one transaction (delivered together and in order).
const PART: usize = 7000;
/// How often the instances still holding their locks are looked for.
const WATCH_EVERY: Duration = Duration::from_secs(1);
/// How long a starting instance waits for the others' copy of the rooms (none comes when they
/// are starting too, and so have nothing to copy).
const COPY_WAIT: Duration = Duration::from_secs(3);
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
    /// The rooms, for instance `to`, as they were when its `WantCopy` came.
    Copy { to: u32, rooms: Rooms },
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

/// Publishes message `id` of instance `from`: `"<from> <id> <part> <parts> <json>"` per part.
fn send(store: &Store, from: u32, id: u64, message: &Message) -> Result<(), Error> {
    let json = serde_json::to_string(message).map_err(|e| Error::Bus(format!("a bus message: {e}")))?;
    let pieces = parts(&json, PART);
    let c = store.conn();
    let tx = c.transaction()?;
    for (n, piece) in pieces.iter().enumerate() {
        let payload = format!("{from} {id} {n} {} {piece}", pieces.len());
        tx.execute("SELECT pg_notify(?1, ?2)", params![CHANNEL, payload])?;
    }
    tx.commit()?;
    Ok(())
}

/// A part as it came: (from, id, part, parts, text).
fn parse(payload: &str) -> Option<(u32, u64, usize, usize, &str)> {
    let mut it = payload.splitn(5, ' ');
    let from = it.next()?.parse().ok()?;
    let id = it.next()?.parse().ok()?;
    let n = it.next()?.parse().ok()?;
    let of = it.next()?.parse().ok()?;
    Some((from, id, n, of, it.next()?))
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
/// The database could not number this instance or open its session.
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
    let want = (!alone).then(|| own_id(&next));
    let hub = Arc::new(Hub::on_bus(instance, Box::new(bus)));
    let (ready, is_ready) = std::sync::mpsc::channel();
    let listener = Listener {
        hub: Arc::downgrade(&hub),
        store: Arc::downgrade(store),
        instance,
        next,
        partial: HashMap::new(),
        copy: if alone { Copying::Done } else { Copying::Asked { seen: false, buffer: Vec::new() } },
        ready: Some(ready),
        on_lost,
    };
    store.spawn(listener.run(session, stopped_rx));
    if let Some(id) = want {
        send(store, instance, id, &Message::WantCopy)?;
    }
    // The listener says when the rooms are in step (at once when alone, else after the copy or
    // COPY_WAIT); a listener that died first has logged why.
    if is_ready.recv_timeout(COPY_WAIT * 2).is_err() {
        return Err(Error::Bus("the rooms' bus did not start".into()));
    }
    store.spawn(watch(Arc::downgrade(&hub), Arc::downgrade(store), instance, stopped));
    tracing::info!(instance, alone, "the rooms are shared with the other instances");
    Ok(hub)
}

/// Where a starting instance is with its copy of the rooms.
enum Copying {
    /// Its `WantCopy` is out; changes after it (once `seen`) wait for the copy.
    Asked { seen: bool, buffer: Vec<(u32, u64, Op)> },
    /// In step.
    Done,
}

struct Listener {
    hub: Weak<Hub>,
    store: Weak<Store>,
    instance: u32,
    next: Arc<AtomicU64>,
    /// Messages whose parts are still coming.
    partial: HashMap<(u32, u64), Vec<String>>,
    copy: Copying,
    ready: Option<std::sync::mpsc::Sender<()>>,
    on_lost: OnLost,
}

impl Listener {
    async fn run(mut self, mut session: Session, mut stop: oneshot::Receiver<()>) {
        if matches!(self.copy, Copying::Done) {
            self.in_step(None);
        }
        let deadline = tokio::time::Instant::now() + COPY_WAIT;
        loop {
            let waiting = matches!(self.copy, Copying::Asked { .. });
            let payload = tokio::select! {
                _ = &mut stop => return,
                () = tokio::time::sleep_until(deadline), if waiting => {
                    // Nobody answered: the others are starting too, with no rooms yet.
                    tracing::warn!("no copy of the rooms came from the other instances; starting empty");
                    self.in_step(Some(Rooms::default()));
                    continue;
                }
                p = session.notes.recv() => p,
            };
            let Some(payload) = payload else { break };
            if self.hub.upgrade().is_none() {
                return;
            }
            let Some((from, id, n, of, text)) = parse(&payload) else {
                tracing::error!("a garbled message on the rooms' bus");
                continue;
            };
            let json = if of <= 1 {
                text.to_owned()
            } else {
                let parts = self.partial.entry((from, id)).or_default();
                if parts.len() != n {
                    tracing::error!(from, id, "a message on the rooms' bus lost a part");
                    self.partial.remove(&(from, id));
                    continue;
                }
                parts.push(text.to_owned());
                if parts.len() < of {
                    continue;
                }
                self.partial.remove(&(from, id)).unwrap_or_default().concat()
            };
            match serde_json::from_str::<Message>(&json) {
                Ok(message) => self.receive(from, id, message),
                Err(e) => tracing::error!(error = %e, "an unreadable message on the rooms' bus"),
            }
        }
        // The session ended under this instance (the database restarted or went away).
        if let Some(hub) = self.hub.upgrade() {
            tracing::error!("the rooms' bus was lost: this instance's signalling connections close");
            hub.lost_bus();
            (self.on_lost)();
        }
    }

    fn receive(&mut self, from: u32, id: u64, message: Message) {
        let Some(hub) = self.hub.upgrade() else { return };
        match (message, &mut self.copy) {
            (Message::Op { op }, Copying::Done) => hub.apply_from(from, id, op),
            (Message::Op { op }, Copying::Asked { seen: true, buffer }) => buffer.push((from, id, op)),
            // Before this instance's request: the copy has it already.
            (Message::Op { .. }, Copying::Asked { seen: false, .. }) => {}
            (Message::WantCopy, Copying::Asked { seen, .. }) if from == self.instance => *seen = true,
            (Message::WantCopy, Copying::Done) if from != self.instance => {
                let (rooms, store, me, id) = (hub.snapshot(), self.store.clone(), self.instance, own_id(&self.next));
                tokio::task::spawn_blocking(move || {
                    let Some(store) = store.upgrade() else { return };
                    if let Err(e) = send(&store, me, id, &Message::Copy { to: from, rooms }) {
                        tracing::error!(error = %e, "sending a starting instance the rooms failed");
                    }
                });
            }
            (Message::Copy { to, rooms }, Copying::Asked { seen: true, .. }) if to == self.instance => {
                self.in_step(Some(rooms));
            }
            _ => {}
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
            let _ = ready.send(());
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
        assert_eq!(parse("3 9 0 1 {\"kind\":\"want_copy\"}"), Some((3, 9, 0, 1, "{\"kind\":\"want_copy\"}")));
        assert_eq!(parse("3 x 0 1 {}"), None);
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
        let appointment = sc_proto::signal::Appointment {
            id: 8,
            room_code: "c".into(),
            consultant: "Dr".into(),
            prison: "HMP".into(),
            starts_at: 0,
            ends_at: 1,
            patient: None,
            consultant_hospital: None,
        };
        assert!(rooms.apply(Op::Join { peer, appointment, consultant_id: 42 }).0.is_ok());
        let json = serde_json::to_string(&Message::Copy { to: 3, rooms: rooms.clone() }).expect("json");
        let Ok(Message::Copy { to: 3, rooms: back }) = serde_json::from_str(&json) else { panic!("{json}") };
        assert_eq!(back, rooms);
    }
}

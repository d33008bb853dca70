//! The live signalling connections, by session: a session that ends (the laptop locked, its lease
//! ran out, IT bricked or revoked it; a staff member signed out, or IT disabled them or reset
//! their credentials) closes its socket, and so any waiting room or call, at once rather than when
//! the socket next fails.
//!
//! Ends this server sees happen (the laptop's end-session call, a brick from the admin page, a
//! brick its device channel notices) close the connection directly; anything else (a brick from
//! the CLI, a lease running out) is found by [`Sessions::sweep`], which the server runs every
//! [`SWEEP_EVERY`].

use crate::conn::Conn;
use crate::{db, Error};
use sc_proto::DeviceId;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;
use tokio::sync::oneshot;

/// How often live connections are checked against the database.
pub const SWEEP_EVERY: Duration = Duration::from_secs(5);

/// Why a laptop's session ended, for the message its screen and the consultant's page get.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum Ended {
    /// The laptop locked (its button, idle timeout or lease), or a session expired or was ended
    /// (signed out, credentials reset, account disabled).
    Locked,
    /// IT bricked or revoked the laptop.
    Revoked,
    /// The server is stopping (to restart): the session lives on, and the peer reconnects and
    /// resumes its call on the next server.
    Restarting,
}

impl Ended {
    /// What the laptop is told as the connection closes.
    pub fn message(self) -> &'static str {
        match self {
            Ended::Locked => "This session has ended. Sign in again.",
            Ended::Revoked => "This laptop has been disabled.",
            Ended::Restarting => "The healthcare server is restarting.",
        }
    }
}

/// Whose session a connection lives on.
#[derive(Debug)]
enum Owner {
    /// A laptop's kiosk session.
    Laptop(DeviceId),
    /// A staff member's browser session, for `role`.
    Staff(&'static str),
}

#[derive(Debug)]
struct Live {
    owner: Owner,
    token_hash: Vec<u8>,
    close: oneshot::Sender<Ended>,
}

/// See the module docs.
#[derive(Debug, Default)]
pub struct Sessions {
    live: Mutex<HashMap<u64, Live>>,
}

impl Sessions {
    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Live>> {
        // A map of senders: a panic elsewhere cannot leave it inconsistent.
        self.live.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Registers connection `conn` of `device`'s session `token_hash`; the receiver fires when
    /// the session ends.
    pub fn register(&self, conn: u64, device: DeviceId, token_hash: Vec<u8>) -> oneshot::Receiver<Ended> {
        self.insert(conn, Owner::Laptop(device), token_hash)
    }

    /// Registers connection `conn` of a staff member's browser session `token_hash` for `role`.
    pub fn register_staff(&self, conn: u64, role: &'static str, token_hash: Vec<u8>) -> oneshot::Receiver<Ended> {
        self.insert(conn, Owner::Staff(role), token_hash)
    }

    fn insert(&self, conn: u64, owner: Owner, token_hash: Vec<u8>) -> oneshot::Receiver<Ended> {
        let (close, closed) = oneshot::channel();
        self.lock().insert(conn, Live { owner, token_hash, close });
        closed
    }

    /// The connection closed by itself.
    pub fn unregister(&self, conn: u64) {
        self.lock().remove(&conn);
    }

    /// How many laptops' connections are live.
    pub fn live(&self) -> usize {
        self.lock().len()
    }

    fn end_where(&self, why: Ended, matches: impl Fn(u64, &Live) -> bool) -> usize {
        let mut live = self.lock();
        let ended: Vec<u64> = live.iter().filter(|(c, l)| matches(**c, l)).map(|(c, _)| *c).collect();
        for conn in &ended {
            if let Some(l) = live.remove(conn) {
                // A receiver already gone means the connection is closing anyway.
                let _ = l.close.send(why);
            }
        }
        ended.len()
    }

    /// Closes the connections of the session whose token hashes to `token_hash`.
    pub fn end_session(&self, token_hash: &[u8], why: Ended) -> usize {
        self.end_where(why, |_, l| l.token_hash == token_hash)
    }

    /// Closes every connection: the server is stopping.
    pub fn close_all(&self) -> usize {
        self.end_where(Ended::Restarting, |_, _| true)
    }

    /// Closes every connection of `device`.
    pub fn end_device(&self, device: &DeviceId, why: Ended) -> usize {
        self.end_where(why, |_, l| matches!(&l.owner, Owner::Laptop(d) if d == device))
    }

    /// Closes the connections whose session the database no longer holds live (ended, expired,
    /// or its laptop revoked). Returns how many.
    pub fn sweep(&self, c: &Conn<'_>, now: i64) -> Result<usize, Error> {
        let sessions: Vec<(u64, Option<&'static str>, Vec<u8>)> = self
            .lock()
            .iter()
            .map(|(c, l)| (*c, if let Owner::Staff(role) = l.owner { Some(role) } else { None }, l.token_hash.clone()))
            .collect();
        let mut gone = Vec::new();
        for (conn, staff_role, hash) in sessions {
            let live = match staff_role {
                None => db::kiosk_session_by_hash(c, &hash, now)?.is_some(),
                Some(role) => db::web_session_by_hash(c, &hash, now, role)?.is_some(),
            };
            if !live {
                gone.push(conn);
            }
        }
        // Revoked or expired alike: the laptop learns which when it next signs in.
        Ok(self.end_where(Ended::Locked, |conn, _| gone.contains(&conn)))
    }
}

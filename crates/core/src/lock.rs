//! The lock state machine: Locked -> SigningIn -> Unlocked(lease) -> Locked. Pure: the caller
//! passes the time in (and whether a call is under way), so every transition is tested
//! deterministically; of what a sign-in unseals it knows only the lease and idle limits.

use crate::Error;
use std::time::{Duration, Instant};

pub use crate::notice::Notice;

/// What a sign-in releases, as far as locking is concerned.
pub trait Lease {
    /// How long the session may last.
    fn lease(&self) -> Duration;
    /// How long the laptop may go unused before it locks.
    fn idle_limit(&self) -> Duration;
}

/// An unlocked session. Dropping it drops (and wipes) what the sign-in unsealed.
#[derive(Debug)]
pub struct Session<S> {
    /// What the sign-in unsealed (config, key, token).
    pub unsealed: S,
    /// When the lease ends.
    pub lease_until: Instant,
    /// How long the laptop may go unused.
    pub idle_limit: Duration,
    /// The last time the nurse or prisoner touched the laptop, or a call ended.
    pub last_activity: Instant,
    /// Whether a call was under way at the last tick.
    pub in_call: bool,
}

impl<S> Session<S> {
    /// Lease left at `now`.
    pub fn lease_left(&self, now: Instant) -> Duration {
        self.lease_until.saturating_duration_since(now)
    }

    /// Time until the idle lock at `now`. A call under way counts as activity: nobody touches the
    /// laptop while the prisoner watches, and an idle lock would cut the consultation off.
    pub fn idle_left(&self, now: Instant) -> Duration {
        if self.in_call {
            return self.idle_limit;
        }
        self.idle_limit.saturating_sub(now.saturating_duration_since(self.last_activity))
    }

    /// The lock that is due at `now`, if any; the lease comes first.
    fn due(&self, now: Instant) -> Option<Notice> {
        if now >= self.lease_until {
            Some(Notice::LeaseExpired)
        } else if self.idle_left(now).is_zero() {
            Some(Notice::Idle)
        } else {
            None
        }
    }
}

/// The kiosk's lock state; `S` is what a sign-in unseals.
#[derive(Debug)]
pub enum LockState<S> {
    /// No enrolment record: the laptop shows "Not enrolled" and nothing else.
    NotEnrolled,
    /// Locked, with the reason to show (none at start).
    Locked(Option<Notice>),
    /// A sign-in is under way.
    SigningIn,
    /// Unlocked until the lease or idle timeout.
    Unlocked(Box<Session<S>>),
}

impl<S: Lease> LockState<S> {
    /// Starts a sign-in; only from Locked (a lock-out that has not expired refuses).
    pub fn begin_sign_in(&mut self, now: Instant) -> Result<(), Error> {
        match self {
            LockState::Locked(Some(Notice::LockedOut { until })) if now < *until => {
                Err(Error::LockedOut(until.saturating_duration_since(now).as_secs().max(1)))
            }
            LockState::Locked(_) => {
                *self = LockState::SigningIn;
                Ok(())
            }
            LockState::NotEnrolled => Err(Error::NotEnrolled),
            LockState::SigningIn => Err(Error::InvalidState("a sign-in is already under way")),
            LockState::Unlocked(_) => Err(Error::InvalidState("already unlocked")),
        }
    }

    /// Ends a sign-in with the activation's outcome. Hands back an unlock it did not take: a lock
    /// pressed during the sign-in wins, and the caller ends that session.
    pub fn finish_sign_in(&mut self, outcome: Result<S, Error>, now: Instant) -> Option<S> {
        if !matches!(self, LockState::SigningIn) {
            return outcome.ok();
        }
        *self = match outcome {
            Ok(unsealed) => LockState::Unlocked(Box::new(Session {
                lease_until: now + unsealed.lease(),
                idle_limit: unsealed.idle_limit(),
                unsealed,
                last_activity: now,
                in_call: false,
            })),
            Err(e) => LockState::Locked(Some(Notice::from_error(&e, now))),
        };
        None
    }
}

impl<S> LockState<S> {
    /// Locks (the session and what it unsealed are dropped).
    pub fn lock(&mut self, notice: Notice) {
        if !matches!(self, LockState::NotEnrolled) {
            *self = LockState::Locked(Some(notice));
        }
    }

    /// Whether a session is open.
    pub fn is_unlocked(&self) -> bool {
        matches!(self, LockState::Unlocked(_))
    }

    /// Records activity, which postpones the idle lock.
    pub fn activity(&mut self, now: Instant) {
        if let LockState::Unlocked(s) = self {
            s.last_activity = s.last_activity.max(now);
        }
    }

    /// The lock that is due at `now` (lease or idle), without applying it.
    pub fn due(&self, now: Instant) -> Option<Notice> {
        match self {
            LockState::Unlocked(s) => s.due(now),
            _ => None,
        }
    }

    /// One step of the kiosk's timer: notes whether a call is under way (the end of a call
    /// counts as activity), then applies the lease and idle timeouts. Returns the lock applied.
    pub fn tick(&mut self, now: Instant, in_call: bool) -> Option<Notice> {
        if let LockState::Unlocked(s) = self {
            if s.in_call && !in_call {
                s.last_activity = s.last_activity.max(now);
            }
            s.in_call = in_call;
        }
        let notice = self.due(now)?;
        self.lock(notice.clone());
        Some(notice)
    }
}

//! The lock state machine: Locked -> SigningIn -> Unlocked(lease) -> Locked. Pure: the caller
//! passes the time in, so every transition is tested deterministically.

use crate::activate::Unsealed;
use crate::Error;
use std::time::{Duration, Instant};

/// Why the laptop is showing the lock screen, for the message the nurse sees.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// The healthcare server could not be reached, so the laptop stays locked.
    Unreachable,
    /// The server refused the sign-in.
    Refused,
    /// Too many failures; sign-in is refused until then.
    LockedOut {
        /// When another attempt makes sense.
        until: Instant,
    },
    /// The session lease ran out.
    LeaseExpired,
    /// Nobody used the laptop for the idle timeout.
    Idle,
    /// The nurse pressed Lock.
    UserLocked,
    /// Something else failed; the text is safe to show.
    Failed(String),
}

/// An unlocked session. Dropping it drops (and wipes) the data key.
#[derive(Debug)]
pub struct Session {
    /// The unsealed config and key.
    pub unsealed: Unsealed,
    /// When the lease ends.
    pub lease_until: Instant,
    /// The last time the nurse or prisoner touched the laptop.
    pub last_activity: Instant,
}

impl Session {
    fn idle_limit(&self) -> Duration {
        Duration::from_secs(self.unsealed.config.policy.idle_secs)
    }

    /// Seconds of lease left at `now`.
    pub fn lease_left(&self, now: Instant) -> Duration {
        self.lease_until.saturating_duration_since(now)
    }

    /// Seconds until the idle lock at `now`.
    pub fn idle_left(&self, now: Instant) -> Duration {
        self.idle_limit().saturating_sub(now.saturating_duration_since(self.last_activity))
    }
}

/// The kiosk's lock state.
#[derive(Debug)]
pub enum LockState {
    /// No enrolment record: the laptop shows "Not enrolled" and nothing else.
    NotEnrolled,
    /// Locked, with the reason to show (none at start).
    Locked(Option<Notice>),
    /// A sign-in is under way.
    SigningIn,
    /// Unlocked until the lease or idle timeout.
    Unlocked(Box<Session>),
}

impl LockState {
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

    /// Ends a sign-in with the activation's outcome.
    pub fn finish_sign_in(&mut self, outcome: Result<Unsealed, Error>, now: Instant) {
        if !matches!(self, LockState::SigningIn) {
            // A lock pressed during sign-in wins; the released key is dropped (and wiped) here.
            return;
        }
        *self = match outcome {
            Ok(unsealed) => {
                let lease = Duration::from_secs(unsealed.config.policy.lease_secs);
                LockState::Unlocked(Box::new(Session { unsealed, lease_until: now + lease, last_activity: now }))
            }
            Err(e) => LockState::Locked(Some(notice_for(e, now))),
        };
    }

    /// Locks (the session and its key are dropped).
    pub fn lock(&mut self, notice: Notice) {
        if !matches!(self, LockState::NotEnrolled) {
            *self = LockState::Locked(Some(notice));
        }
    }

    /// Records activity, which postpones the idle lock.
    pub fn activity(&mut self, now: Instant) {
        if let LockState::Unlocked(s) = self {
            s.last_activity = s.last_activity.max(now);
        }
    }

    /// Applies the lease and idle timeouts; returns true if the laptop just locked.
    pub fn tick(&mut self, now: Instant) -> bool {
        let notice = match self {
            LockState::Unlocked(s) if now >= s.lease_until => Notice::LeaseExpired,
            LockState::Unlocked(s) if s.idle_left(now).is_zero() => Notice::Idle,
            _ => return false,
        };
        self.lock(notice);
        true
    }
}

fn notice_for(e: Error, now: Instant) -> Notice {
    match e {
        Error::Unreachable => Notice::Unreachable,
        Error::Refused => Notice::Refused,
        Error::LockedOut(secs) => Notice::LockedOut { until: now + Duration::from_secs(secs) },
        other => Notice::Failed(other.to_string()),
    }
}

//! The kiosk façade the shell drives: one laptop profile, its lock state, and the view the page
//! renders. All decisions are here; the shell only forwards calls and events.

use crate::activate::{self, Credentials};
use crate::keystore::Keystore;
use crate::lock::{LockState, Session};
use crate::record::{DataDir, EnrolmentRecord};
use crate::Error;
use serde::Serialize;
use std::path::Path;
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;

pub use crate::lock::Notice;

/// How the kiosk reaches its keystore; injectable so tests can use another store.
pub type KeystoreFactory = fn() -> Result<Keystore, Error>;

/// The one kiosk instance.
#[derive(Debug)]
pub struct Kiosk {
    dir: DataDir,
    record: Option<EnrolmentRecord>,
    keystore: KeystoreFactory,
    state: Mutex<LockState>,
}

/// What the page shows, serialised as `{"screen": ..., ...}`.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
#[serde(tag = "screen", rename_all = "snake_case")]
pub enum KioskView {
    /// Not enrolled: nothing else is offered.
    NotEnrolled,
    /// The lock screen with sign-in.
    Locked {
        /// Why it is locked, if there is something to say.
        notice: Option<NoticeView>,
    },
    /// Sign-in under way.
    SigningIn,
    /// Unlocked.
    Unlocked {
        /// The prison's name.
        prison: String,
        /// The signed-in staff member.
        staff: String,
        /// Seconds of lease left.
        lease_secs_left: u64,
        /// Seconds until the idle lock.
        idle_secs_left: u64,
    },
}

/// A lock-screen message.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NoticeView {
    /// Machine-readable kind: unreachable, refused, locked_out, lease_expired, idle, locked, error.
    pub kind: &'static str,
    /// What the nurse reads.
    pub message: String,
    /// For locked_out: seconds until another try.
    pub retry_after_secs: Option<u64>,
}

impl NoticeView {
    fn from(n: &Notice, now: Instant) -> Self {
        let (kind, message, retry) = match n {
            Notice::Unreachable => (
                "unreachable",
                "Cannot reach the healthcare server - this laptop stays locked.".to_owned(),
                None,
            ),
            Notice::Refused => ("refused", "Sign-in refused. Check your details and try again.".to_owned(), None),
            Notice::LockedOut { until } => {
                let secs = until.saturating_duration_since(now).as_secs();
                let minutes = secs.div_ceil(60).max(1);
                let unit = if minutes == 1 { "minute" } else { "minutes" };
                ("locked_out", format!("Too many failed sign-ins: locked out for {minutes} {unit}."), Some(secs))
            }
            Notice::LeaseExpired => ("lease_expired", "The session has ended. Sign in again.".to_owned(), None),
            Notice::Idle => ("idle", "Locked after a period of inactivity.".to_owned(), None),
            Notice::UserLocked => ("locked", "Locked.".to_owned(), None),
            Notice::Failed(why) => ("error", why.clone(), None),
        };
        NoticeView { kind, message, retry_after_secs: retry }
    }
}

impl Kiosk {
    /// Opens the profile in `data_dir`; always starts locked (or not enrolled).
    pub fn open(data_dir: &Path, keystore: KeystoreFactory) -> Result<Self, Error> {
        let dir = DataDir::open(data_dir)?;
        let record = dir.load_record()?;
        let state = if record.is_some() { LockState::Locked(None) } else { LockState::NotEnrolled };
        Ok(Kiosk { dir, record, keystore, state: Mutex::new(state) })
    }

    fn state(&self) -> MutexGuard<'_, LockState> {
        // A panic while holding the lock is a bug; the state itself is always consistent, so go on.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The enrolment record, if enrolled.
    pub fn record(&self) -> Option<&EnrolmentRecord> {
        self.record.as_ref()
    }

    /// The view at `now`, after applying timeouts.
    pub fn view(&self, now: Instant) -> KioskView {
        let mut state = self.state();
        if state.tick(now) {
            tracing::info!("kiosk locked by timeout");
        }
        match &*state {
            LockState::NotEnrolled => KioskView::NotEnrolled,
            LockState::Locked(n) => KioskView::Locked { notice: n.as_ref().map(|n| NoticeView::from(n, now)) },
            LockState::SigningIn => KioskView::SigningIn,
            LockState::Unlocked(s) => unlocked_view(s, now),
        }
    }

    /// Signs in: asks the server to release the key and opens the config. Returns the new view.
    pub async fn sign_in(&self, creds: Credentials) -> KioskView {
        let start = Instant::now();
        let began = self.state().begin_sign_in(start);
        if let Err(e) = began {
            if let Error::LockedOut(_) = e {
                return self.view(Instant::now());
            }
            let mut state = self.state();
            if matches!(*state, LockState::Locked(_)) {
                state.lock(Notice::Failed(e.to_string()));
            }
            drop(state);
            return self.view(Instant::now());
        }
        let outcome = self.activate(&creds).await;
        match &outcome {
            Ok(_) => tracing::info!(staff = %creds.username, "kiosk unlocked"),
            Err(e) => tracing::warn!(error = %e, "sign-in did not unlock the kiosk"),
        }
        let now = Instant::now();
        self.state().finish_sign_in(outcome, now);
        self.view(now)
    }

    async fn activate(&self, creds: &Credentials) -> Result<activate::Unsealed, Error> {
        let record = self.record.as_ref().ok_or(Error::NotEnrolled)?;
        let factory = self.keystore;
        let keystore = crate::keystore::blocking(factory).await?;
        activate::activate(&self.dir, &keystore, record, creds).await
    }

    /// Checks the server answers; a dead server shows its message on the lock screen.
    pub async fn check_server(&self) -> KioskView {
        if let Some(record) = &self.record {
            let reachable = match activate::client_for(record) {
                Ok(client) => client.health().await,
                Err(e) => Err(e),
            };
            let mut state = self.state();
            let quiet = matches!(&*state, LockState::Locked(None | Some(Notice::Unreachable | Notice::Failed(_))));
            match reachable {
                // Only replace a message about the server itself; a refusal or lock-out stays shown.
                Err(Error::Unreachable) if quiet => state.lock(Notice::Unreachable),
                Err(e) if quiet => state.lock(Notice::Failed(e.to_string())),
                Ok(_) if matches!(&*state, LockState::Locked(Some(Notice::Unreachable))) => {
                    *state = LockState::Locked(None);
                }
                _ => {}
            }
        }
        self.view(Instant::now())
    }

    /// This prison's appointments around now (unlocked only).
    pub async fn appointments(&self) -> Result<Vec<sc_proto::signal::Appointment>, Error> {
        let record = self.record.as_ref().ok_or(Error::NotEnrolled)?;
        let token = self.session_token().ok_or(Error::InvalidState("locked"))?;
        activate::client_for(record)?.appointments(&token).await
    }

    /// The unlocked session's bearer token.
    pub fn session_token(&self) -> Option<activate::SessionToken> {
        self.with_session(|s| s.unsealed.session.clone())
    }

    /// Locks now; the server is told the session ended (best effort: it expires anyway).
    pub fn lock(&self) -> KioskView {
        if let (Some(token), Some(record)) = (self.session_token(), self.record.clone()) {
            if let Ok(rt) = tokio::runtime::Handle::try_current() {
                rt.spawn(async move {
                    if let Ok(client) = activate::client_for(&record) {
                        let _ = client.end_session(&token).await;
                    }
                });
            }
        }
        self.state().lock(Notice::UserLocked);
        tracing::info!("kiosk locked by the user");
        self.view(Instant::now())
    }

    /// The nurse or prisoner did something: postpones the idle lock.
    pub fn activity(&self) {
        self.state().activity(Instant::now());
    }

    /// Runs `f` on the unlocked session, if any.
    pub fn with_session<T>(&self, f: impl FnOnce(&Session) -> T) -> Option<T> {
        match &*self.state() {
            LockState::Unlocked(s) => Some(f(s)),
            _ => None,
        }
    }
}

fn unlocked_view(s: &Session, now: Instant) -> KioskView {
    KioskView::Unlocked {
        prison: s.unsealed.config.prison.name.clone(),
        staff: s.unsealed.staff_name.clone(),
        lease_secs_left: s.lease_left(now).as_secs(),
        idle_secs_left: s.idle_left(now).as_secs(),
    }
}

//! The kiosk façade the shell drives: one laptop profile, its lock state, and the view the page
//! renders. All decisions are here; the shell only forwards calls and events.

use crate::activate::{self, Credentials};
use crate::contact::{self, Contact};
use crate::keystore::Keystore;
use crate::lock::{LockState, Session};
use crate::record::{DataDir, EnrolmentRecord};
use crate::Error;
use serde::Serialize;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Instant;

pub use crate::lock::Notice;

/// How the kiosk reaches its keystore; injectable so tests can use another store.
pub type KeystoreFactory = fn() -> Result<Keystore, Error>;

/// Wall-clock time in Unix seconds, injectable so tests can move it (the dead-man timer).
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock.
pub fn system_clock() -> Clock {
    Arc::new(crate::enrol::unix_now)
}

/// Dead-man days assumed until the sealed policy is read (the server's default).
const DEFAULT_DEAD_MAN_DAYS: u32 = 14;

/// What the disabled screen says.
pub const DISABLED_MESSAGE: &str = "It can no longer be used. Return it to the IT team.";

/// The one kiosk instance.
pub struct Kiosk {
    dir: DataDir,
    record: Option<EnrolmentRecord>,
    keystore: KeystoreFactory,
    state: Mutex<LockState>,
    clock: Clock,
    contact: Mutex<Contact>,
    disabled: AtomicBool,
}

impl std::fmt::Debug for Kiosk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Kiosk").field("dir", &self.dir).field("disabled", &self.is_disabled()).finish_non_exhaustive()
    }
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
    /// Wiped: nothing else, for ever.
    Disabled {
        /// What the screen says.
        message: String,
    },
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
            Notice::Unreachable => {
                ("unreachable", "Cannot reach the healthcare server - this laptop stays locked.".to_owned(), None)
            }
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
    /// Opens the profile in `data_dir`; always starts locked (or not enrolled, or disabled).
    pub fn open(data_dir: &Path, keystore: KeystoreFactory) -> Result<Self, Error> {
        Self::open_with_clock(data_dir, keystore, system_clock())
    }

    /// As [`Kiosk::open`], with a clock of the caller's (tests move it for the dead-man timer).
    /// A standing tombstone, or a dead-man timer that ran out while the app was not running,
    /// leaves the kiosk disabled; [`Kiosk::finish_wipe`] then completes the wipe.
    pub fn open_with_clock(data_dir: &Path, keystore: KeystoreFactory, clock: Clock) -> Result<Self, Error> {
        let dir = DataDir::open(data_dir)?;
        let disabled = crate::wipe::tombstone(&dir)?.is_some();
        let record = dir.load_record()?;
        let state = if record.is_some() { LockState::Locked(None) } else { LockState::NotEnrolled };
        let contact = contact::load(&dir).unwrap_or_else(|| Contact {
            // No contact file: count from when the laptop was enrolled (the record's age).
            last_contact: std::fs::metadata(dir.record_path())
                .and_then(|m| m.modified())
                .ok()
                .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .and_then(|d| i64::try_from(d.as_secs()).ok())
                .unwrap_or_else(|| clock()),
            dead_man_days: DEFAULT_DEAD_MAN_DAYS,
        });
        let kiosk = Kiosk {
            dir,
            record,
            keystore,
            state: Mutex::new(state),
            clock,
            contact: Mutex::new(contact),
            disabled: AtomicBool::new(disabled),
        };
        kiosk.check_dead_man();
        Ok(kiosk)
    }

    /// Now, Unix seconds, on the kiosk's clock.
    pub fn now(&self) -> i64 {
        (self.clock)()
    }

    /// The profile's files.
    pub fn data_dir(&self) -> &DataDir {
        &self.dir
    }

    /// How the keystore is reached.
    pub fn keystore_factory(&self) -> KeystoreFactory {
        self.keystore
    }

    /// Whether the laptop is disabled (a wipe has begun).
    pub fn is_disabled(&self) -> bool {
        self.disabled.load(Ordering::SeqCst)
    }

    /// Records a successful contact with the server (resets the dead-man timer).
    pub fn contact_made(&self) {
        let mut c = self.contact.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        c.last_contact = self.now();
        if let Err(e) = contact::store(&self.dir, &c) {
            tracing::warn!(error = %e, "could not record server contact");
        }
    }

    /// Runs the dead-man timer: past its days without contact, begins the wipe. True when the
    /// laptop is (now) disabled.
    pub fn check_dead_man(&self) -> bool {
        if self.is_disabled() || self.record.is_none() {
            return self.is_disabled();
        }
        let c = *self.contact.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        if c.expired(self.now()) {
            tracing::warn!(last_contact = c.last_contact, days = c.dead_man_days, "dead-man timer ran out");
            self.disable(sc_proto::brick::WipeCause::DeadMan { last_contact: c.last_contact }, None);
        }
        self.is_disabled()
    }

    /// Writes the tombstone (the commitment to wipe) and drops any unlocked session.
    fn disable(&self, cause: sc_proto::brick::WipeCause, command: Option<sc_proto::Signed>) {
        if let Err(e) = crate::wipe::begin(&self.dir, cause, command) {
            // Still refuse to go on: the next start tries again.
            tracing::error!(error = %e, "could not write the tombstone");
        }
        self.disabled.store(true, Ordering::SeqCst);
        *self.state() = LockState::Locked(None);
    }

    /// Verifies a brick command answering `challenge` and, if it holds, wipes the laptop.
    /// A command that does not verify changes nothing.
    pub async fn apply_brick(&self, command: &sc_proto::Signed, challenge: [u8; 16]) -> Result<(), Error> {
        let record = self.record.as_ref().ok_or(Error::NotEnrolled)?;
        // Freshness is against the real clock (the server signs with its own); the injectable
        // clock only drives the dead-man timer.
        let verified = match crate::wipe::verify_command(record, command, challenge, crate::enrol::unix_now()) {
            Ok(c) => c,
            Err(e) => {
                tracing::warn!(error = %e, "brick command refused; nothing wiped");
                return Err(e);
            }
        };
        tracing::warn!(command_id = %verified.command_id, "verified brick command: wiping");
        self.disable(sc_proto::brick::WipeCause::Brick { command_id: verified.command_id }, Some(command.clone()));
        self.finish_wipe().await.map(|_| ())
    }

    /// Finishes a begun wipe (idempotent); `None` when no wipe has begun.
    pub async fn finish_wipe(&self) -> Result<Option<crate::wipe::Tombstone>, Error> {
        self.finish_wipe_with(&|_| {}).await
    }

    /// As [`Kiosk::finish_wipe`], telling `on_step` as each step completes.
    pub async fn finish_wipe_with(
        &self,
        on_step: &(dyn Fn(crate::wipe::Step) + Sync),
    ) -> Result<Option<crate::wipe::Tombstone>, Error> {
        let (Some(record), true) = (&self.record, self.is_disabled()) else { return Ok(None) };
        let keystore = crate::keystore::blocking(self.keystore).await?;
        crate::wipe::finish(&self.dir, &keystore, record, self.now(), on_step).await.map(Some)
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
        if self.check_dead_man() {
            return KioskView::Disabled { message: DISABLED_MESSAGE.to_owned() };
        }
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
        if self.check_dead_man() {
            return self.view(Instant::now());
        }
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
            Ok(unsealed) => {
                tracing::info!(staff = %creds.username, "kiosk unlocked");
                self.contact.lock().unwrap_or_else(std::sync::PoisonError::into_inner).dead_man_days =
                    unsealed.config.policy.dead_man_days;
                self.contact_made();
            }
            Err(Error::Bricked { command, challenge }) => {
                if let Err(e) = self.apply_brick(command, *challenge).await {
                    tracing::warn!(error = %e, "sign-in answered with a brick that did not verify");
                } else {
                    return self.view(Instant::now());
                }
            }
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
        if self.is_disabled() {
            return self.view(Instant::now());
        }
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

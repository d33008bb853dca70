//! The kiosk façade the shell drives: one laptop profile, its lock state, the decisions its timer
//! takes (lease, idle, the dead-man timer), and the view the page renders. All decisions are here;
//! the shell only forwards calls and events. [`Kiosk::view`] only reads; the steps that decide
//! ([`Kiosk::tick`], [`Kiosk::open`], [`Kiosk::sign_in`], ...) are the ones that write.

use crate::activate::{self, Activation, Credentials, Unsealed};
use crate::client::{client_for, SessionToken};
use crate::clock::Clock;
use crate::contact::{self, Contact, ContactKey, Now};
use crate::keystore::Keystore;
use crate::lock::{LockState, Session};
use crate::record::{DataDir, EnrolmentRecord};
use crate::Error;
use serde::Serialize;
use std::future::Future;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, MutexGuard};
use std::time::Instant;
use tokio::sync::watch;

pub use crate::notice::{Notice, NoticeView, DISABLED_MESSAGE};

/// How the kiosk reaches its keystore; injectable so tests can use another store.
pub type KeystoreFactory = fn() -> Result<Keystore, Error>;

/// How old the recorded contact may get before a new contact is written (an hour of slack on a timer
/// counted in days; a kill loses at most that).
pub const CONTACT_WRITE_EVERY_SECS: u64 = 3_600;

/// Dead-man days assumed until the sealed policy is read (the server's default).
const DEFAULT_DEAD_MAN_DAYS: u32 = 14;

/// The one kiosk instance.
pub struct Kiosk {
    dir: DataDir,
    record: Option<EnrolmentRecord>,
    keystore: KeystoreFactory,
    state: Mutex<LockState<Unsealed>>,
    clock: Clock,
    contact: Mutex<Contact>,
    /// The dead-man timer's memory: its key (`None` while the keystore cannot be reached) and
    /// what `contact.json` holds (`None`: nothing trustworthy).
    contact_file: Mutex<ContactFile>,
    disabled: AtomicBool,
    /// Where background work (telling the server a session ended) runs; see [`Kiosk::background`].
    runtime: Mutex<Option<tokio::runtime::Handle>>,
    /// Counts unlocked sessions that ended, so whoever runs calls can end them (see `timer`).
    sessions_ended: watch::Sender<u64>,
    /// Where the posture sent with each activation is read.
    posture: crate::posture::Sources,
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

/// The dead-man timer's file and the key that seals it.
#[derive(Debug, Default)]
struct ContactFile {
    key: Option<ContactKey>,
    on_disk: Option<Contact>,
    /// When the keystore was last asked for a missing key (boot id and seconds).
    key_asked: Option<(String, u64)>,
}

/// How often a keystore out of reach is asked again for the dead-man key.
const KEY_RETRY_SECS: u64 = 60;

/// Reads the dead-man timer's key on a thread of its own: the keystore blocks (D-Bus), and
/// opening the kiosk may happen on an async runtime's thread.
fn read_contact_key(keystore: KeystoreFactory, profile: String) -> Result<ContactKey, Error> {
    std::thread::scope(|s| {
        s.spawn(move || keystore()?.load_contact_key(&profile))
            .join()
            .unwrap_or(Err(Error::InvalidState("keystore thread panicked")))
    })
}

/// Where the count starts when the kiosk opens: the sealed file, or, without one that opens,
/// out of contact since enrolment. With no key at all (an enrolled laptop whose keystore entry
/// is gone) the enrolment time is unknown and the timer has run out; with the keystore out of
/// reach the count starts from this boot and the file is read again at the next write.
fn opening_count(dir: &DataDir, key: &Result<ContactKey, Error>, now: &Now) -> (Contact, Option<Contact>) {
    match key {
        Ok(key) => match contact::load(dir, key) {
            Some(c) => (c.clone(), Some(c)),
            None => (Contact::since_enrolment(key.enrolled_at, DEFAULT_DEAD_MAN_DAYS, now), None),
        },
        Err(Error::KeysMissing) => {
            tracing::warn!("no dead-man key in the keystore: counting from the beginning of time");
            (Contact::since_enrolment(0, DEFAULT_DEAD_MAN_DAYS, now), None)
        }
        Err(e) => {
            tracing::warn!(error = %e, "the keystore is out of reach: the dead-man count starts from this boot");
            (Contact::since_enrolment(now.wall, DEFAULT_DEAD_MAN_DAYS, now), None)
        }
    }
}

fn disabled_view() -> KioskView {
    KioskView::Disabled { message: DISABLED_MESSAGE.to_owned() }
}

impl Kiosk {
    /// Opens the profile in `data_dir`; always starts locked (or not enrolled, or disabled).
    pub fn open(data_dir: &Path, keystore: KeystoreFactory) -> Result<Self, Error> {
        Self::open_with_clock(data_dir, keystore, Clock::system())
    }

    /// As [`Kiosk::open`], with a clock of the caller's (tests move it for the timers). A standing
    /// tombstone, or a dead-man timer that ran out while the app was not running, leaves the kiosk
    /// disabled; [`Kiosk::finish_wipe`] then completes the wipe. Background work runs on the Tokio
    /// runtime this is called in, if any, until [`Kiosk::with_runtime`] gives another.
    pub fn open_with_clock(data_dir: &Path, keystore: KeystoreFactory, clock: impl Into<Clock>) -> Result<Self, Error> {
        let clock = clock.into();
        let dir = DataDir::open(data_dir)?;
        let disabled = crate::wipe::tombstone(&dir)?.is_some();
        let record = dir.load_record()?;
        let state = if record.is_some() { LockState::Locked(None) } else { LockState::NotEnrolled };
        let now = Now { wall: clock.unix_now(), boot: clock.boot() };
        let (contact, file) = if record.is_some() {
            let key = read_contact_key(keystore, dir.profile_id());
            let (count, on_disk) = opening_count(&dir, &key, &now);
            (count, ContactFile { key: key.ok(), on_disk, key_asked: Some((now.boot.id.clone(), now.boot.secs)) })
        } else {
            (Contact::made(now.wall, DEFAULT_DEAD_MAN_DAYS, &now), ContactFile::default())
        };
        let kiosk = Kiosk {
            dir,
            record,
            keystore,
            state: Mutex::new(state),
            clock,
            contact: Mutex::new(contact),
            contact_file: Mutex::new(file),
            disabled: AtomicBool::new(disabled),
            runtime: Mutex::new(tokio::runtime::Handle::try_current().ok()),
            sessions_ended: watch::Sender::new(0),
            posture: crate::posture::Sources::system(),
        };
        kiosk.check_dead_man();
        Ok(kiosk)
    }

    /// Runs background work on `runtime` from now on (the shell gives its own).
    pub fn with_runtime(self, runtime: tokio::runtime::Handle) -> Self {
        self.attach_runtime(runtime);
        self
    }

    /// Reads the posture from `sources` from now on (tests point it at prepared files).
    pub fn with_posture(mut self, sources: crate::posture::Sources) -> Self {
        self.posture = sources;
        self
    }

    /// As [`Kiosk::with_runtime`], on a shared kiosk.
    pub fn attach_runtime(&self, runtime: tokio::runtime::Handle) {
        *self.runtime() = Some(runtime);
    }

    fn runtime(&self) -> MutexGuard<'_, Option<tokio::runtime::Handle>> {
        // Only ever replaced whole: a poisoned lock still holds a sound value.
        self.runtime.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The kiosk's clock.
    pub fn clock(&self) -> &Clock {
        &self.clock
    }

    /// Now, Unix seconds, on the kiosk's clock.
    pub fn now(&self) -> i64 {
        self.clock.unix_now()
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

    fn contact(&self) -> MutexGuard<'_, Contact> {
        // A plain value replaced field by field: a poisoned lock still holds a sound one.
        self.contact.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// The time as the dead-man timer reads it.
    fn reading(&self) -> Now {
        Now { wall: self.clock.unix_now(), boot: self.clock.boot() }
    }

    /// Records a successful contact with the server at its time `server_time` (restarts the
    /// dead-man count). The file is rewritten only when the policy changed or what it holds is
    /// [`CONTACT_WRITE_EVERY_SECS`] old: the timer counts days, and a write on every heartbeat
    /// would touch the disk mid-call.
    pub fn contact_made(&self, server_time: i64) {
        let now = self.reading();
        let c = {
            let mut c = self.contact();
            *c = Contact::made(server_time, c.dead_man_days, &now);
            c.clone()
        };
        self.remember(&c, &now);
    }

    /// Sets the dead-man timer's days from the sealed policy.
    fn set_dead_man_days(&self, days: u32) {
        self.contact().dead_man_days = days;
    }

    /// Writes the count unless the file already holds one of the same policy taken within the
    /// last [`CONTACT_WRITE_EVERY_SECS`] of boot time: between writes the file's own reading of
    /// the boot clock brings the count up to date, so only a reboot with the clock set back can
    /// lose time, and no more than that.
    fn remember(&self, c: &Contact, now: &Now) {
        // Plain values replaced whole: a poisoned lock still holds sound ones.
        let mut file = self.contact_file.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
        let recent = file.on_disk.as_ref().is_some_and(|d| {
            d.dead_man_days == c.dead_man_days
                && d.boot_id == now.boot.id
                && now.boot.secs.saturating_sub(d.boot_secs) < CONTACT_WRITE_EVERY_SECS
        });
        if recent {
            return;
        }
        if file.key.is_none() {
            let asked_lately = file.key_asked.as_ref().is_some_and(|(boot, secs)| {
                *boot == now.boot.id && now.boot.secs.saturating_sub(*secs) < KEY_RETRY_SECS
            });
            if asked_lately {
                return;
            }
            file.key_asked = Some((now.boot.id.clone(), now.boot.secs));
            match read_contact_key(self.keystore, self.dir.profile_id()) {
                Ok(key) => file.key = Some(key),
                Err(e) => {
                    tracing::warn!(error = %e, "could not record the dead-man count: no key (asking again in a minute)");
                    return;
                }
            }
        }
        let Some(key) = &file.key else { return };
        match contact::store(&self.dir, key, c) {
            Ok(()) => file.on_disk = Some(c.clone()),
            Err(e) => tracing::warn!(error = %e, "could not record the dead-man count"),
        }
    }

    /// The count brought up to now. Reads only.
    fn count_now(&self) -> Contact {
        let mut c = self.contact().clone();
        c.advance(&self.reading());
        c
    }

    /// Whether the dead-man timer has run out on a laptop not yet disabled. Reads only.
    fn dead_man_due(&self) -> bool {
        !self.is_disabled() && self.record.is_some() && self.count_now().expired()
    }

    /// The dead-man timer's decision: past its days without contact, begins the wipe (writes the
    /// tombstone). True when the laptop is (now) disabled. Brings the count up to date, and
    /// writes it when the file's is an hour old.
    pub fn check_dead_man(&self) -> bool {
        if self.is_disabled() || self.record.is_none() {
            return self.is_disabled();
        }
        let now = self.reading();
        let c = {
            let mut c = self.contact();
            c.advance(&now);
            c.clone()
        };
        if c.expired() {
            tracing::warn!(
                last_contact = c.last_contact,
                out_of_contact_secs = c.out_of_contact_secs,
                "dead-man timer ran out"
            );
            self.disable(sc_proto::brick::WipeCause::DeadMan { last_contact: c.last_contact }, None);
        } else {
            self.remember(&c, &now);
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
        self.update(|s| *s = LockState::Locked(None));
    }

    /// Verifies a brick command answering `challenge` and, if it holds, wipes the laptop.
    /// A command that does not verify changes nothing.
    pub async fn apply_brick(&self, command: &sc_proto::Signed, challenge: [u8; 16]) -> Result<(), Error> {
        let record = self.record.as_ref().ok_or(Error::NotEnrolled)?;
        let verified = match crate::wipe::verify_command(record, command, challenge) {
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

    /// Finishes a begun wipe (idempotent), beginning one first if the dead-man timer has run out;
    /// `None` when no wipe has begun.
    pub async fn finish_wipe(&self) -> Result<Option<crate::wipe::Tombstone>, Error> {
        self.finish_wipe_with(&|_| {}).await
    }

    /// As [`Kiosk::finish_wipe`], telling `on_step` as each step completes.
    pub async fn finish_wipe_with(
        &self,
        on_step: &(dyn Fn(crate::wipe::Step) + Sync),
    ) -> Result<Option<crate::wipe::Tombstone>, Error> {
        let disabled = self.check_dead_man();
        let (Some(record), true) = (&self.record, disabled) else { return Ok(None) };
        let keystore = crate::keystore::blocking(self.keystore).await?;
        crate::wipe::finish(&self.dir, &keystore, record, self.now(), on_step).await.map(Some)
    }

    fn state(&self) -> MutexGuard<'_, LockState<Unsealed>> {
        // A panic while holding the lock is a bug; the state itself is always consistent, so go on.
        self.state.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Changes the lock state. When that ends an unlocked session, for whatever reason, the
    /// server is told and whoever runs calls hears of it (`sessions_ended`).
    fn update<T>(&self, change: impl FnOnce(&mut LockState<Unsealed>) -> T) -> T {
        let mut state = self.state();
        let before = match &*state {
            LockState::Unlocked(s) => Some(s.unsealed.session.clone()),
            _ => None,
        };
        let out = change(&mut state);
        let ended = before.filter(|_| !state.is_unlocked());
        drop(state);
        if let Some(token) = ended {
            self.sessions_ended.send_modify(|n| *n = n.wrapping_add(1));
            self.end_session(token);
        }
        out
    }

    /// Tells the server a session is over, in the background (best effort: it expires anyway).
    fn end_session(&self, token: SessionToken) {
        let Some(record) = self.record.clone() else { return };
        self.background(async move {
            let ended = match client_for(&record) {
                Ok(client) => client.end_session(&token).await,
                Err(e) => Err(e),
            };
            if let Err(e) = ended {
                tracing::debug!(error = %e, "could not tell the server the session ended");
            }
        });
    }

    /// Runs `task` in the background, from any thread: on the kiosk's runtime when it has one,
    /// otherwise on a thread of its own (a synchronous caller outside any runtime, such as a
    /// Tauri command on the main thread, must still reach the server).
    fn background(&self, task: impl Future<Output = ()> + Send + 'static) {
        let runtime = self.runtime().clone();
        if let Some(runtime) = runtime {
            runtime.spawn(task);
            return;
        }
        let spawned = std::thread::Builder::new().name("sc-kiosk-background".into()).spawn(move || {
            match tokio::runtime::Builder::new_current_thread().enable_all().build() {
                Ok(rt) => rt.block_on(task),
                Err(e) => tracing::warn!(error = %e, "no runtime for background work"),
            }
        });
        if let Err(e) = spawned {
            tracing::warn!(error = %e, "no thread for background work");
        }
    }

    /// Changes each time an unlocked session ends (locked by the nurse, lease, idle, refused by
    /// the server, disabled): a lock ends the call.
    pub fn sessions_ended(&self) -> watch::Receiver<u64> {
        self.sessions_ended.subscribe()
    }

    /// The enrolment record, if enrolled.
    pub fn record(&self) -> Option<&EnrolmentRecord> {
        self.record.as_ref()
    }

    /// The view at `now`. Only reads: a lock or a wipe that is due shows as such, and the next
    /// decision step ([`Kiosk::tick`] and the others) carries it out.
    pub fn view(&self, now: Instant) -> KioskView {
        if self.is_disabled() || self.dead_man_due() {
            return disabled_view();
        }
        let state = self.state();
        if let Some(due) = state.due(now) {
            return KioskView::Locked { notice: Some(due.for_nurse(now)) };
        }
        match &*state {
            LockState::NotEnrolled => KioskView::NotEnrolled,
            LockState::Locked(n) => KioskView::Locked { notice: n.as_ref().map(|n| n.for_nurse(now)) },
            LockState::SigningIn => KioskView::SigningIn,
            LockState::Unlocked(s) => unlocked_view(s, now),
        }
    }

    /// The view now, on the kiosk's clock.
    pub fn screen(&self) -> KioskView {
        self.view(self.clock.instant())
    }

    /// One step of the kiosk's timer (see `timer`): the dead-man timer, then the lease and idle
    /// timeouts, with `in_call` saying whether a call is under way (it counts as activity).
    pub fn tick(&self, in_call: bool) -> KioskView {
        if self.check_dead_man() {
            return disabled_view();
        }
        self.lock_if_traced();
        let now = self.clock.instant();
        if let Some(notice) = self.update(|s| s.tick(now, in_call)) {
            tracing::info!(?notice, "kiosk locked by its timer");
        }
        self.view(now)
    }

    /// On an installed laptop (the package's marker: the release as shipped), locks and refuses to
    /// unlock while a debugger is attached: it could read the unsealed config and the session from
    /// memory. A developer's machine, and the tests that watch the kiosk with strace, are not
    /// installed laptops. True when it locked.
    fn lock_if_traced(&self) -> bool {
        let root = &self.posture.root;
        if !crate::posture::session_required(root) || !crate::posture::traced(root) {
            return false;
        }
        let was_unlocked = self.state().is_unlocked();
        self.update(|s| s.lock(Notice::Debugger));
        if was_unlocked {
            tracing::warn!("a debugger attached: locked");
        }
        true
    }

    /// Signs in: asks the server to release the key and opens the config. Returns the new view.
    pub async fn sign_in(&self, creds: Credentials) -> KioskView {
        if self.check_dead_man() {
            return disabled_view();
        }
        if self.lock_if_traced() {
            return self.screen();
        }
        let start = self.clock.instant();
        if let Err(e) = self.update(|s| s.begin_sign_in(start)) {
            // Not enrolled, already signing in or unlocked, or a lock-out still running: the
            // screen already says so.
            tracing::debug!(error = %e, "sign-in not started");
            return self.screen();
        }
        let outcome = match self.activate(&creds).await {
            Ok(Activation::Unlocked(unsealed)) => {
                tracing::info!(staff = %creds.username, "kiosk unlocked");
                self.set_dead_man_days(unsealed.config.policy.dead_man_days);
                self.contact_made(unsealed.server_time);
                Ok(unsealed)
            }
            Ok(Activation::Bricked { command, challenge }) => match self.apply_brick(&command, challenge).await {
                Ok(()) => return self.screen(),
                Err(e) => {
                    tracing::warn!(error = %e, "sign-in answered with a brick that did not verify");
                    Err(e)
                }
            },
            Err(e) => {
                tracing::warn!(error = %e, code = e.it_code().unwrap_or("-"), "sign-in did not unlock the kiosk");
                Err(e)
            }
        };
        let now = self.clock.instant();
        if let Some(untaken) = self.update(|s| s.finish_sign_in(outcome, now)) {
            // A lock came first: the session the server just opened ends too.
            self.end_session(untaken.session.clone());
        }
        self.view(now)
    }

    async fn activate(&self, creds: &Credentials) -> Result<Activation, Error> {
        let record = self.record.as_ref().ok_or(Error::NotEnrolled)?;
        let keystore = crate::keystore::blocking(self.keystore).await?;
        let sources = self.posture.clone();
        let posture = tokio::task::spawn_blocking(move || crate::posture::collect(&sources))
            .await
            .map_err(|_| Error::InvalidState("posture task panicked"))?;
        activate::activate(&self.dir, &keystore, record, creds, posture).await
    }

    /// Checks the server answers; a dead server shows its message on the lock screen.
    pub async fn check_server(&self) -> KioskView {
        if self.is_disabled() {
            return disabled_view();
        }
        if let Some(record) = &self.record {
            let reachable = match client_for(record) {
                Ok(client) => client.health().await,
                Err(e) => Err(e),
            };
            self.update(|state| {
                let quiet = matches!(&*state, LockState::Locked(None | Some(Notice::Unreachable | Notice::Failed(_))));
                match reachable {
                    // Only replace a message about the server itself; a refusal or lock-out stays shown.
                    Err(Error::Unreachable) if quiet => state.lock(Notice::Unreachable),
                    Err(e) if quiet => {
                        // The nurse sees words and a code; IT read the cause here under that code.
                        tracing::warn!(error = %e, code = e.it_code().unwrap_or("-"), "the server check failed");
                        state.lock(Notice::Failed(e.for_nurse()));
                    }
                    Ok(_) if matches!(&*state, LockState::Locked(Some(Notice::Unreachable))) => {
                        *state = LockState::Locked(None);
                    }
                    _ => {}
                }
            });
        }
        self.screen()
    }

    /// This prison's appointments around now (unlocked only). A session the server refuses is
    /// over: the laptop locks.
    pub async fn appointments(&self) -> Result<Vec<sc_proto::signal::Appointment>, Error> {
        self.unlocked_get(|client, token| async move { client.appointments(&token).await }).await
    }

    /// How many of this prison's outcome notes nobody in its team has acknowledged (unlocked
    /// only; a count, never a note). A refused session locks, as for the appointments.
    pub async fn outcome_notes(&self) -> Result<sc_proto::signal::OutcomeNotes, Error> {
        self.unlocked_get(|client, token| async move { client.outcome_notes(&token).await }).await
    }

    async fn unlocked_get<T, F, Fut>(&self, get: F) -> Result<T, Error>
    where
        F: FnOnce(crate::client::CareClient, SessionToken) -> Fut,
        Fut: std::future::Future<Output = Result<T, Error>>,
    {
        let record = self.record.as_ref().ok_or(Error::NotEnrolled)?;
        let token = self.session_token().ok_or(Error::Locked)?;
        let got = get(client_for(record)?, token.clone()).await;
        if let Err(Error::Refused) = &got {
            self.update(|s| {
                if matches!(s, LockState::Unlocked(session) if session.unsealed.session == token) {
                    s.lock(Notice::Refused);
                }
            });
        }
        got
    }

    /// The unlocked session's bearer token; none once a lock is due.
    pub fn session_token(&self) -> Option<SessionToken> {
        let state = self.state();
        if state.due(self.clock.instant()).is_some() {
            return None;
        }
        match &*state {
            LockState::Unlocked(s) => Some(s.unsealed.session.clone()),
            _ => None,
        }
    }

    /// Locks now, from any thread; the server is told the session ended and the call ends.
    pub fn lock(&self) -> KioskView {
        self.update(|s| s.lock(Notice::UserLocked));
        tracing::info!("kiosk locked by the user");
        self.screen()
    }

    /// The nurse or prisoner did something: postpones the idle lock.
    pub fn activity(&self) {
        self.state().activity(self.clock.instant());
    }

    /// Runs `f` on the unlocked session, if any.
    pub fn with_session<T>(&self, f: impl FnOnce(&Session<Unsealed>) -> T) -> Option<T> {
        match &*self.state() {
            LockState::Unlocked(s) => Some(f(s)),
            _ => None,
        }
    }

    /// Opens a session without a server, for tests of the timer's rules.
    #[cfg(test)]
    pub(crate) fn unlock_for_test(&self, unsealed: Unsealed) {
        let now = self.clock.instant();
        let mut state = self.state();
        state.begin_sign_in(now).expect("a locked kiosk");
        assert!(state.finish_sign_in(Ok(unsealed), now).is_none(), "unlocked");
    }
}

fn unlocked_view(s: &Session<Unsealed>, now: Instant) -> KioskView {
    KioskView::Unlocked {
        prison: s.unsealed.config.prison.name.clone(),
        staff: s.unsealed.staff_name.clone(),
        lease_secs_left: s.lease_left(now).as_secs(),
        idle_secs_left: s.idle_left(now).as_secs(),
    }
}

/// A kiosk without a server, for the timer's and the view's tests.
#[cfg(test)]
pub(crate) mod test_support {
    use super::*;
    use crate::record::RECORD_VERSION;
    use crate::sealed::{Config, DataKey};
    use sc_proto::{Bytes, DeviceId, Policy, PrisonInfo};

    /// A kiosk enrolled (a record on disk, contact just made) in a fresh directory.
    pub(crate) fn enrolled(clock: Clock) -> (tempfile::TempDir, Kiosk) {
        let dir = tempfile::tempdir().expect("temp dir");
        let data = DataDir::open(dir.path()).expect("data dir");
        data.store_record(&EnrolmentRecord {
            format: RECORD_VERSION,
            device_id: DeviceId::from_random([1; 16]),
            server_url: "https://127.0.0.1:1".into(),
            // Not a certificate: any attempt to reach a server fails before the network.
            ca_cert: Bytes(b"not a certificate".to_vec()),
            command_public_key: Bytes([2; 32]),
            exchange_public: Bytes([3; 32]),
            client_public: Bytes([4; 32]),
            turn_urls: Vec::new(),
        })
        .expect("record");
        let key = ContactKey::generate(clock.unix_now()).expect("key");
        let keystore = Keystore::secret_service().expect("the session's keystore (tests run under scripts/session.sh)");
        keystore.save_contact_key(&data.profile_id(), &key).expect("save the key");
        let now = Now { wall: clock.unix_now(), boot: clock.boot() };
        contact::store(&data, &key, &Contact::made(now.wall, 14, &now)).expect("contact");
        let kiosk = Kiosk::open_with_clock(dir.path(), Keystore::secret_service, clock).expect("kiosk");
        (dir, kiosk)
    }

    /// The count in the kiosk's file.
    pub(crate) fn on_disk(data: &DataDir) -> Option<Contact> {
        let key = Keystore::secret_service().expect("keystore").load_contact_key(&data.profile_id()).expect("key");
        contact::load(data, &key)
    }

    /// What a sign-in would unseal, with these limits.
    pub(crate) fn unsealed(lease_secs: u64, idle_secs: u64) -> Unsealed {
        Unsealed {
            config: Config {
                device_id: DeviceId::from_random([1; 16]),
                prison: PrisonInfo { id: 1, name: "HMP Test".into() },
                server_url: "https://127.0.0.1:1".into(),
                policy: Policy { lease_secs, idle_secs, dead_man_days: 14 },
                enrolled_at: 0,
            },
            key: DataKey::from_bytes([5; 32]),
            staff_name: "Jo".into(),
            server_time: 0,
            session: SessionToken::new([6; 32]),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::test_support::{enrolled, unsealed};
    use super::*;
    use crate::clock::ManualClock;
    use std::time::Duration;

    const DAY: Duration = Duration::from_secs(86_400);

    /// CI failure, issue #12's session: a heartbeat rewrote `contact.json` in the middle of a call
    /// (the image-share window test watches for any file written then).
    #[test]
    fn contact_is_written_when_an_hour_old_or_the_policy_changed_not_on_every_heartbeat() {
        let hand = ManualClock::starting_at(1_700_000_000);
        let (dir, kiosk) = enrolled(hand.clock());
        let data = DataDir::open(dir.path()).expect("data");
        let on_disk = || test_support::on_disk(&data).expect("contact file");
        let enrolled_at = on_disk().last_contact;
        for i in 1..=10 {
            hand.advance(Duration::from_secs(300));
            kiosk.contact_made(enrolled_at + i * 300);
            assert!(!kiosk.check_dead_man());
        }
        assert_eq!(on_disk().last_contact, enrolled_at, "50 minutes of heartbeats write nothing");
        hand.advance(Duration::from_secs(600));
        kiosk.contact_made(enrolled_at + 3_600);
        assert_eq!(on_disk().last_contact, enrolled_at + 3_600, "an hour on, the contact is written");
        hand.advance(Duration::from_secs(60));
        kiosk.set_dead_man_days(3);
        kiosk.contact_made(enrolled_at + 3_660);
        let now = kiosk.reading();
        assert_eq!(on_disk(), Contact::made(enrolled_at + 3_660, 3, &now), "a new policy is written at once");
        // The timer itself runs on the newest contact, not on the file's.
        hand.advance(3 * DAY);
        assert!(!kiosk.check_dead_man(), "three days after the last contact, not yet past the limit");
    }

    /// Out of contact, the count is written hourly, so a kill loses at most an hour of it.
    #[test]
    fn out_of_contact_the_count_is_written_every_hour_and_survives_a_restart() {
        let hand = ManualClock::starting_at(1_700_000_000);
        let (dir, kiosk) = enrolled(hand.clock());
        let data = DataDir::open(dir.path()).expect("data");
        for _ in 0..(13 * 24) {
            hand.advance(Duration::from_secs(3_600));
            assert!(!kiosk.check_dead_man());
        }
        let written = test_support::on_disk(&data).expect("file").out_of_contact_secs;
        assert!(written >= 13 * 86_400 - 3_600, "{written}");
        drop(kiosk);
        hand.reboot(Duration::from_secs(60));
        hand.advance(DAY);
        let again = Kiosk::open_with_clock(dir.path(), Keystore::secret_service, hand.clock()).expect("kiosk");
        assert!(again.is_disabled(), "13 days counted before, one off and up after: past 14");
    }

    #[test]
    fn issue_14_setting_the_clock_back_does_not_postpone_the_wipe() {
        let hand = ManualClock::starting_at(1_700_000_000);
        let (_dir, kiosk) = enrolled(hand.clock());
        hand.advance(10 * DAY);
        assert!(!kiosk.check_dead_man());
        // Back to the moment of enrolment, and then a year before it.
        hand.set_wall(-10 * 86_400);
        hand.advance(2 * DAY);
        assert!(!kiosk.check_dead_man());
        hand.set_wall(-365 * 86_400);
        hand.advance(2 * DAY + Duration::from_secs(1));
        assert!(kiosk.check_dead_man(), "14 days and a second of boot time: wiped");
    }

    #[test]
    fn issue_14_editing_deleting_or_rolling_back_the_contact_file_does_not_postpone_the_wipe() {
        let reopen = |dir: &tempfile::TempDir, hand: &ManualClock| {
            Kiosk::open_with_clock(dir.path(), Keystore::secret_service, hand.clock()).expect("kiosk")
        };
        // The honest case first: a contact on day 13 keeps the laptop alive on day 15.
        let honest = |tamper: &dyn Fn(&DataDir, &[u8])| {
            let hand = ManualClock::starting_at(1_700_000_000);
            let (dir, kiosk) = enrolled(hand.clock());
            let data = DataDir::open(dir.path()).expect("data");
            let enrolment_file = std::fs::read(data.contact_path()).expect("file");
            hand.advance(13 * DAY);
            kiosk.contact_made(1_700_000_000 + 13 * 86_400);
            drop(kiosk);
            hand.advance(2 * DAY);
            tamper(&data, &enrolment_file);
            reopen(&dir, &hand).is_disabled()
        };
        assert!(!honest(&|_, _| {}), "untouched: two days since the last contact");
        assert!(honest(&|d, _| std::fs::remove_file(d.contact_path()).expect("rm")), "deleted");
        assert!(honest(&|d, old| std::fs::write(d.contact_path(), old).expect("write")), "rolled back");
        let edit = |d: &DataDir, _: &[u8]| {
            let text = std::fs::read_to_string(d.contact_path()).expect("read");
            let mut v: serde_json::Value = serde_json::from_str(&text).expect("json");
            v["mac"] = serde_json::Value::String("A".repeat(43));
            std::fs::write(d.contact_path(), v.to_string()).expect("write");
        };
        assert!(honest(&edit), "edited");
        let plain = |d: &DataDir, _: &[u8]| {
            std::fs::write(d.contact_path(), br#"{"last_contact":4000000000,"dead_man_days":0}"#).expect("write");
        };
        assert!(honest(&plain), "the old plain format, days set to 0");
        let foreign = |d: &DataDir, _: &[u8]| {
            let other = ContactKey::generate(0).expect("key");
            let now = Now {
                wall: 1_700_000_000 + 15 * 86_400,
                boot: crate::clock::BootTime { id: "manual-boot-0".into(), secs: 15 * 86_400 },
            };
            contact::store(d, &other, &Contact::made(now.wall, 14, &now)).expect("store");
        };
        assert!(honest(&foreign), "sealed with another key");
    }

    #[test]
    fn issue_14_an_enrolled_laptop_without_its_dead_man_key_is_disabled() {
        let hand = ManualClock::starting_at(1_700_000_000);
        let (dir, kiosk) = enrolled(hand.clock());
        drop(kiosk);
        let profile = DataDir::open(dir.path()).expect("data").profile_id();
        Keystore::secret_service().expect("keystore").delete(&profile).expect("delete");
        assert!(Kiosk::open_with_clock(dir.path(), Keystore::secret_service, hand.clock())
            .expect("kiosk")
            .is_disabled());
    }

    #[test]
    fn view_only_reads_when_the_dead_man_timer_has_run_out_and_the_tick_decides() {
        let hand = ManualClock::starting_at(1_700_000_000);
        let (dir, kiosk) = enrolled(hand.clock());
        let tombstone = DataDir::open(dir.path()).expect("data").tombstone_path();
        hand.advance(14 * DAY);
        assert!(matches!(kiosk.screen(), KioskView::Locked { .. }), "14 days is not yet past the limit");
        hand.advance(Duration::from_secs(1));
        for _ in 0..3 {
            assert_eq!(kiosk.screen(), disabled_view(), "the screen shows what is due");
        }
        assert!(!tombstone.exists(), "the view wrote nothing");
        assert!(!kiosk.is_disabled());
        assert_eq!(kiosk.tick(false), disabled_view());
        assert!(tombstone.exists() && kiosk.is_disabled(), "the tick took the decision");
    }

    #[test]
    fn issue_14_a_debugger_attaching_locks_the_kiosk_and_refuses_a_sign_in() {
        let hand = ManualClock::starting_at(1_700_000_000);
        let (_dir, kiosk) = enrolled(hand.clock());
        let root = tempfile::tempdir().expect("root");
        let status = root.path().join("proc/self/status");
        std::fs::create_dir_all(status.parent().expect("parent")).expect("mkdir");
        std::fs::write(&status, "Name:\tkiosk\nTracerPid:\t0\n").expect("write");
        let sources = crate::posture::Sources { root: root.path().to_owned(), canary: None, clock: hand.clock() };
        let kiosk = kiosk.with_posture(sources);
        kiosk.unlock_for_test(unsealed(3600, 600));
        assert!(matches!(kiosk.tick(false), KioskView::Unlocked { .. }), "no tracer");
        std::fs::write(&status, "Name:\tkiosk\nTracerPid:\t4242\n").expect("write");
        assert!(matches!(kiosk.tick(false), KioskView::Unlocked { .. }), "not an installed laptop: strace may watch");
        let marker = root.path().join(crate::posture::SESSION_ONLY_MARKER);
        std::fs::create_dir_all(marker.parent().expect("parent")).expect("mkdir");
        std::fs::write(&marker, "").expect("the package's marker");
        let KioskView::Locked { notice: Some(n) } = kiosk.tick(false) else { panic!("a tracer locks") };
        assert!(n.message.contains("another program tried to look inside"), "{n:?}");
        assert!(kiosk.with_session(|_| ()).is_none(), "the session and its key are gone");
        let creds = Credentials { username: "jo".into(), password: "x".to_owned().into(), totp: "000000".into() };
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("runtime");
        let KioskView::Locked { notice: Some(n) } = rt.block_on(kiosk.sign_in(creds)) else { panic!("refused") };
        assert!(n.message.contains("another program tried to look inside"), "no sign-in while traced: {n:?}");
    }

    #[test]
    fn view_only_reads_when_a_lease_runs_out_and_the_tick_locks() {
        let hand = ManualClock::starting_at(1_700_000_000);
        let (_dir, kiosk) = enrolled(hand.clock());
        kiosk.unlock_for_test(unsealed(60, 600));
        hand.advance(Duration::from_secs(60));
        let KioskView::Locked { notice: Some(n) } = kiosk.screen() else { panic!("the lease is over") };
        assert_eq!(n.kind, crate::notice::NoticeKind::LeaseExpired);
        assert!(kiosk.with_session(|_| ()).is_some(), "the view locked nothing");
        assert!(kiosk.session_token().is_none(), "but the token is no longer handed out");
        let ended = kiosk.sessions_ended();
        kiosk.tick(false);
        assert!(kiosk.with_session(|_| ()).is_none(), "the tick dropped the session");
        assert!(ended.has_changed().expect("sender alive"), "and said so");
    }

    #[test]
    fn a_lock_from_a_thread_without_a_runtime_is_heard() {
        let (_dir, kiosk) = enrolled(Clock::system());
        kiosk.unlock_for_test(unsealed(60, 600));
        let ended = kiosk.sessions_ended();
        let kiosk = std::sync::Arc::new(kiosk);
        let k = kiosk.clone();
        let view = std::thread::spawn(move || k.lock()).join().expect("lock from a plain thread");
        let KioskView::Locked { notice: Some(n) } = view else { panic!("{view:?}") };
        assert_eq!(n.kind, crate::notice::NoticeKind::Locked);
        assert!(ended.has_changed().expect("sender alive"));
    }
}

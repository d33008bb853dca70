//! The one staff-credential check behind the laptops' activation and both web sign-ins: which
//! role each channel admits, the password checked in a bounded Argon2 pool per channel, the
//! lock-out checked again after the hash, and failures counted only against an account the
//! channel admits.
//!
//! A name whose role may not sign in on a channel is, on that channel, a name that does not
//! exist: checked against the dummy hash (same time), refused with the same answer, and counted
//! against nobody. Before this, five anonymous tries with a nurse's name on the consultant page
//! locked that nurse out of every laptop (issue #13).

use crate::audit::Reason;
use crate::config::Lockout;
use crate::conn::Conn;
use crate::db::{self, Staff, Subject};
use crate::{auth, Error};
use std::sync::Arc;
use tokio::sync::Semaphore;

/// Where a staff member signs in; each channel admits one role.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Channel {
    /// A laptop's activation: nurses.
    Laptop,
    /// The consultant's web page.
    ConsultantPage,
    /// The IT staff's admin page.
    AdminPage,
    /// The prison healthcare team's page: nurses, with the same password and code as on the
    /// laptops.
    TeamPage,
}

impl Channel {
    /// The role this channel admits.
    pub fn role(self) -> &'static str {
        match self {
            Channel::Laptop => "nurse",
            Channel::ConsultantPage => "consultant",
            Channel::AdminPage => "it",
            Channel::TeamPage => "nurse",
        }
    }
}

/// Argon2 checks run at once, per pool: each is `m_kib` of memory and a core's worth of work, so
/// a flood of sign-ins waits here instead of exhausting the machine, and the laptops have their
/// own pool, so a flood on the web pages cannot starve activations.
#[derive(Debug)]
pub struct HashPools {
    laptop: Arc<Semaphore>,
    web: Arc<Semaphore>,
}

impl HashPools {
    /// Pools of `laptop` and `web` concurrent checks (at least one each).
    pub fn new(laptop: usize, web: usize) -> Self {
        HashPools { laptop: Arc::new(Semaphore::new(laptop.max(1))), web: Arc::new(Semaphore::new(web.max(1))) }
    }

    fn pool(&self, channel: Channel) -> &Arc<Semaphore> {
        match channel {
            Channel::Laptop => &self.laptop,
            Channel::ConsultantPage | Channel::AdminPage | Channel::TeamPage => &self.web,
        }
    }

    /// Waits for a slot in `channel`'s pool; the check runs while the permit is held.
    pub async fn acquire(&self, channel: Channel) -> Result<tokio::sync::OwnedSemaphorePermit, Error> {
        Arc::clone(self.pool(channel))
            .acquire_owned()
            .await
            .map_err(|_| Error::Crypto("password check pool closed".into()))
    }

    /// Checks free in `channel`'s pool now (for tests and the load benchmark).
    pub fn available(&self, channel: Channel) -> usize {
        self.pool(channel).available_permits()
    }
}

/// Phase one, under the database lock: the account `username` names, if its role may sign in on
/// `channel`; otherwise nothing, exactly as for an unknown name.
pub fn candidate(c: &Conn<'_>, username: &str, channel: Channel) -> Result<Option<Staff>, Error> {
    // A disabled account is checked against the dummy hash too: a leaver's password proves nothing.
    Ok(db::staff_by_username(c, username)?.filter(|s| s.role == channel.role() && s.disabled_at.is_none()))
}

/// Phase two, without the lock: the password against the candidate's hash, or against the dummy
/// hash when there is none, so both take the same time. Waits for a slot in the channel's pool.
pub async fn check_password(
    pools: &HashPools,
    dummy_hash: &str,
    channel: Channel,
    candidate: Option<&Staff>,
    password: &str,
) -> Result<bool, Error> {
    let phc = candidate.map_or_else(|| dummy_hash.to_owned(), |s| s.password_hash.clone());
    let password = zeroize::Zeroizing::new(password.to_owned());
    let permit = pools.acquire(channel).await?;
    tokio::task::spawn_blocking(move || {
        let ok = auth::verify_password(&phc, &password);
        drop(permit);
        ok
    })
    .await
    .map_err(|_| Error::Crypto("password check task failed".into()))
}

/// What phase three decided.
#[derive(Debug)]
pub enum Verdict {
    /// Every check held; the account's failure count is cleared (not its back-off history).
    Admit(Staff),
    /// The account is locked out until this Unix time; nothing was checked or counted.
    LockedOut {
        /// The account.
        staff: Staff,
        /// Locked until.
        until: i64,
    },
    /// Refused.
    Refused {
        /// The real reason, for the audit log only.
        reason: Reason,
        /// The name of an existing account, for the audit log (never a name the caller made up).
        known_name: Option<String>,
        /// Set when this failure locked the account out, for how long.
        locked_for: Option<u64>,
    },
}

/// One sign-in, as phase three sees it.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// Where.
    pub channel: Channel,
    /// The name given.
    pub username: &'a str,
    /// The TOTP code given.
    pub code: &'a str,
    /// The account phase two checked the password against (none: the dummy hash).
    pub checked: Option<&'a Staff>,
    /// Phase two's result.
    pub password_ok: bool,
}

/// Phase three, under the database lock: the account read again (another request may have
/// locked it or spent a code meanwhile), its lock-out, the password's result, and the TOTP code,
/// spent on success. A failure counts against the account only when the channel admits it.
pub fn verdict(c: &Conn<'_>, a: &Attempt<'_>, now: i64, lockout: &Lockout) -> Result<Verdict, Error> {
    // The account is read, judged and written in one transaction with its row locked (on
    // PostgreSQL; SQLite's single writer does the same), so parallel attempts take turns.
    c.atomically(|c| {
        c.lock_rows("staff", "username", a.username)?;
        judge(c, a, now, lockout)
    })
}

fn judge(c: &Conn<'_>, a: &Attempt<'_>, now: i64, lockout: &Lockout) -> Result<Verdict, Error> {
    let (channel, username, code, checked, password_ok) = (a.channel, a.username, a.code, a.checked, a.password_ok);
    let Some(staff) = db::staff_by_username(c, username)? else {
        return Ok(Verdict::Refused { reason: Reason::UnknownStaff, known_name: None, locked_for: None });
    };
    // Checked against the dummy hash in phase two (another role, or disabled), or changed
    // meanwhile (another account of that name, or its password reset since phase two read it):
    // refused as an unknown name would be, counted against nobody.
    if staff.role != channel.role()
        || staff.disabled_at.is_some()
        || checked.is_none_or(|s| s.id != staff.id || s.password_hash != staff.password_hash)
    {
        let reason = if staff.disabled_at.is_some() {
            Reason::StaffDisabled
        } else if staff.role != channel.role() {
            Reason::WrongRole
        } else {
            Reason::UnknownStaff
        };
        return Ok(Verdict::Refused { reason, known_name: Some(staff.username), locked_for: None });
    }
    if staff.locked_until > now {
        let until = staff.locked_until;
        return Ok(Verdict::LockedOut { staff, until });
    }
    let failed = if !password_ok { Some(Reason::BadPassword) } else { auth::consume_totp(c, &staff, code, now)?.err() };
    if let Some(reason) = failed {
        let locked_for = db::record_failure(c, Subject::Staff(staff.id), lockout, now)?;
        return Ok(Verdict::Refused { reason, known_name: Some(staff.username), locked_for });
    }
    db::clear_failures(c, Subject::Staff(staff.id))?;
    Ok(Verdict::Admit(staff))
}

/// The seconds left of a lock-out, at least one (a client is told to wait, never zero).
pub fn retry_after(until: i64, now: i64) -> u64 {
    u64::try_from(until.saturating_sub(now)).unwrap_or(1).max(1)
}

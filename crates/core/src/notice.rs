//! What the nurse is told: the one place where every core error and every lock-screen notice is
//! put into words, beside the machine-readable kind the page (ui/app.js) receives. Pure.

use crate::Error;
use serde::Serialize;
use std::time::{Duration, Instant};

/// What the disabled screen says.
pub const DISABLED_MESSAGE: &str = "It can no longer be used. Return it to the IT team.";

/// The kind of a message, as the page receives it (`"kind": "locked_out"`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum NoticeKind {
    /// The healthcare server could not be reached.
    Unreachable,
    /// The server refused (a sign-in, or a session it no longer accepts).
    Refused,
    /// Too many failed sign-ins.
    LockedOut,
    /// The session's lease ran out.
    LeaseExpired,
    /// Nobody used the laptop for the idle timeout.
    Idle,
    /// The laptop is locked (by the nurse, or this needs a signed-in session).
    Locked,
    /// Anything else; the message says what.
    Error,
    /// What the nurse typed does not have the expected shape (the shell checks it).
    InvalidInput,
    /// A consultation is already under way.
    Busy,
    /// The laptop's posture fails its prison's policy; the message says what to do.
    Posture,
}

impl NoticeKind {
    /// The kind as the page reads it (the same string serde writes).
    pub fn as_str(self) -> &'static str {
        match self {
            NoticeKind::Unreachable => "unreachable",
            NoticeKind::Refused => "refused",
            NoticeKind::LockedOut => "locked_out",
            NoticeKind::LeaseExpired => "lease_expired",
            NoticeKind::Idle => "idle",
            NoticeKind::Locked => "locked",
            NoticeKind::Error => "error",
            NoticeKind::InvalidInput => "invalid_input",
            NoticeKind::Busy => "busy",
            NoticeKind::Posture => "posture",
        }
    }
}

impl PartialEq<&str> for NoticeKind {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

impl std::fmt::Display for NoticeKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A message for the nurse: its kind and words. Serialised as `{"kind": ..., "message": ...}`,
/// which is also how a failed command's error reaches the page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Wording {
    /// Machine-readable kind.
    pub kind: NoticeKind,
    /// What the nurse reads.
    pub message: String,
}

impl Wording {
    /// A message of `kind`.
    pub fn new(kind: NoticeKind, message: impl Into<String>) -> Self {
        Wording { kind, message: message.into() }
    }
}

/// Why the laptop is showing the lock screen, for the message the nurse sees.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Notice {
    /// The healthcare server could not be reached, so the laptop stays locked.
    Unreachable,
    /// The server refused the sign-in (or the session).
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
    /// A debugger attached to the kiosk (someone trying to read its memory).
    Debugger,
    /// Something else failed: the error's wording.
    Failed(Wording),
}

/// A lock-screen message as the page receives it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct NoticeView {
    /// Machine-readable kind.
    pub kind: NoticeKind,
    /// What the nurse reads.
    pub message: String,
    /// For `locked_out`: seconds until another try.
    pub retry_after_secs: Option<u64>,
}

impl Error {
    /// The short code a nurse reads out to IT for a fault they cannot act on themselves (the
    /// error's own text, which IT staff need, goes to the kiosk's log under the same code).
    pub fn it_code(&self) -> Option<&'static str> {
        Some(match self {
            Error::AlreadyEnrolled(_) => "SC-ENROLLED",
            Error::KeystoreUnavailable(_) => "SC-KEYSTORE",
            Error::KeysMissing => "SC-KEYS",
            Error::UntrustedServer => "SC-TLS-PIN",
            Error::Protocol(_) => "SC-PROTOCOL",
            Error::SealBroken => "SC-SEAL",
            Error::Corrupt { .. } => "SC-DAMAGED",
            Error::BadToken => "SC-TOKEN",
            Error::InvalidState(_) => "SC-STATE",
            Error::Io { .. } => "SC-DISK",
            Error::Crypto(_) => "SC-CRYPTO",
            Error::BadCommand(_) => "SC-COMMAND",
            Error::NotEnrolled
            | Error::Unreachable
            | Error::Refused
            | Error::PostureRefused(_)
            | Error::LockedOut(_)
            | Error::ServerBusy(_)
            | Error::Locked
            | Error::Disabled => return None,
        })
    }

    /// What the nurse is told about this error, wherever it reaches them (lock screen, a failed
    /// command, a call that ended): what happened in plain words and what to do next; for a
    /// fault only IT can fix, a short code to give them (never the error's inner text).
    pub fn for_nurse(&self) -> Wording {
        let for_it = |what_to_do: &str| {
            // Every fault without its own words has a code (`it_code`).
            let code = self.it_code().unwrap_or("SC-OTHER");
            Wording::new(NoticeKind::Error, format!("{what_to_do} For IT: {code}."))
        };
        match self {
            Error::Unreachable => Wording::new(
                NoticeKind::Unreachable,
                "Cannot reach the healthcare server. Check the laptop's network cable, then try again.",
            ),
            Error::Refused => Wording::new(
                NoticeKind::Refused,
                "Refused by the healthcare server. Check your details and sign in again.",
            ),
            Error::LockedOut(secs) => {
                let minutes = secs.div_ceil(60).max(1);
                let unit = if minutes == 1 { "minute" } else { "minutes" };
                Wording::new(
                    NoticeKind::LockedOut,
                    format!("Too many failed sign-ins: locked out for {minutes} {unit}."),
                )
            }
            Error::ServerBusy(secs) => Wording::new(
                NoticeKind::Busy,
                format!("The healthcare server is busy. Try again in {} seconds.", secs.max(&1)),
            ),
            Error::PostureRefused(message) => Wording::new(NoticeKind::Posture, message.clone()),
            Error::Locked => Wording::new(NoticeKind::Locked, "Sign in first."),
            Error::NotEnrolled => Wording::new(NoticeKind::Error, "This laptop is not set up yet. Ask IT to enrol it."),
            Error::Disabled => {
                Wording::new(NoticeKind::Error, format!("This laptop has been disabled. {DISABLED_MESSAGE}"))
            }
            Error::UntrustedServer => for_it(
                "The healthcare server could not be confirmed as genuine, so nothing was sent. Do not sign in \
                 on this network; tell IT.",
            ),
            Error::KeystoreUnavailable(_) => {
                for_it("The laptop's secure storage is not working. Restart the laptop; if this comes back, tell IT.")
            }
            Error::KeysMissing | Error::SealBroken | Error::Corrupt { .. } => {
                for_it("This laptop's protected settings cannot be opened, so it cannot be used. Return it to IT.")
            }
            Error::Protocol(_) => for_it(
                "The healthcare server's answer was not understood. Try again; if this keeps happening, tell IT.",
            ),
            Error::AlreadyEnrolled(_) => for_it("This laptop is already set up."),
            Error::BadToken => for_it("The enrolment code is not valid. Ask IT for a new one."),
            Error::InvalidState(_) => for_it("That cannot be done just now. Wait a moment and try again."),
            Error::Io { .. } => {
                for_it("The laptop could not read or save its files. Restart the laptop; if this comes back, tell IT.")
            }
            Error::Crypto(_) => {
                for_it("A security check on this laptop failed. Restart the laptop; if this comes back, tell IT.")
            }
            Error::BadCommand(_) => for_it("A command sent to this laptop was not genuine and was ignored. Tell IT."),
        }
    }
}

impl Notice {
    /// The lock-screen notice for a sign-in that failed with `e` at `now`.
    pub fn from_error(e: &Error, now: Instant) -> Notice {
        match e {
            Error::Unreachable => Notice::Unreachable,
            Error::Refused => Notice::Refused,
            Error::LockedOut(secs) => Notice::LockedOut { until: now + Duration::from_secs(*secs) },
            other => Notice::Failed(other.for_nurse()),
        }
    }

    /// What the lock screen says at `now`. Notices that stand for an error use the error's words.
    pub fn for_nurse(&self, now: Instant) -> NoticeView {
        let (wording, retry_after_secs) = match self {
            Notice::Unreachable => (Error::Unreachable.for_nurse(), None),
            Notice::Refused => (Error::Refused.for_nurse(), None),
            Notice::LockedOut { until } => {
                let secs = until.saturating_duration_since(now).as_secs();
                (Error::LockedOut(secs).for_nurse(), Some(secs))
            }
            Notice::LeaseExpired => {
                (Wording::new(NoticeKind::LeaseExpired, "The session has ended. Sign in again."), None)
            }
            Notice::Idle => (Wording::new(NoticeKind::Idle, "Locked after a period of inactivity."), None),
            Notice::UserLocked => (Wording::new(NoticeKind::Locked, "Locked."), None),
            Notice::Debugger => (
                Wording::new(
                    NoticeKind::Locked,
                    "Locked: another program tried to look inside SecureConsult. Restart the laptop; if this \
                     message comes back, return it to the IT team.",
                ),
                None,
            ),
            Notice::Failed(wording) => (wording.clone(), None),
        };
        NoticeView { kind: wording.kind, message: wording.message, retry_after_secs }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// One of every error. The match below has no wildcard, so a new variant does not compile
    /// until it is listed here (and so worded and tested).
    fn every_error() -> Vec<Error> {
        let all = vec![
            Error::NotEnrolled,
            Error::AlreadyEnrolled("dev".into()),
            Error::KeystoreUnavailable("no bus".into()),
            Error::KeysMissing,
            Error::Unreachable,
            Error::UntrustedServer,
            Error::Refused,
            Error::LockedOut(300),
            Error::ServerBusy(6),
            Error::PostureRefused("Secure Boot is off on this laptop.".into()),
            Error::Protocol("odd".into()),
            Error::SealBroken,
            Error::Corrupt { what: "the record", why: "bad".into() },
            Error::BadToken,
            Error::Locked,
            Error::InvalidState("busy"),
            Error::Io { what: "reading", source: std::io::Error::other("disk") },
            Error::Crypto("rng"),
            Error::BadCommand("stale"),
            Error::Disabled,
        ];
        for e in &all {
            match e {
                Error::NotEnrolled
                | Error::AlreadyEnrolled(_)
                | Error::KeystoreUnavailable(_)
                | Error::KeysMissing
                | Error::Unreachable
                | Error::UntrustedServer
                | Error::Refused
                | Error::LockedOut(_)
                | Error::ServerBusy(_)
                | Error::PostureRefused(_)
                | Error::Protocol(_)
                | Error::SealBroken
                | Error::Corrupt { .. }
                | Error::BadToken
                | Error::Locked
                | Error::InvalidState(_)
                | Error::Io { .. }
                | Error::Crypto(_)
                | Error::BadCommand(_)
                | Error::Disabled => {}
            }
        }
        all
    }

    #[test]
    fn a_failed_sign_in_shows_the_errors_own_words() {
        let now = Instant::now();
        for e in every_error() {
            let view = Notice::from_error(&e, now).for_nurse(now);
            let words = e.for_nurse();
            assert_eq!((view.kind, view.message.as_str()), (words.kind, words.message.as_str()), "{e:?}");
        }
    }

    #[test]
    fn kinds_serialise_as_the_page_reads_them() {
        for kind in [
            NoticeKind::Unreachable,
            NoticeKind::Refused,
            NoticeKind::LockedOut,
            NoticeKind::LeaseExpired,
            NoticeKind::Idle,
            NoticeKind::Locked,
            NoticeKind::Error,
            NoticeKind::InvalidInput,
            NoticeKind::Busy,
            NoticeKind::Posture,
        ] {
            assert_eq!(serde_json::to_value(kind).expect("json"), serde_json::json!(kind.as_str()));
            assert_eq!(kind, kind.as_str());
        }
        let w = serde_json::to_value(Error::Refused.for_nurse()).expect("json");
        assert_eq!(w["kind"], "refused");
    }

    /// Issue #16 item 4: every message says what to do next in plain words; a fault only IT can
    /// fix carries its short code, and never the error's inner text.
    #[test]
    fn issue_16_every_error_tells_the_nurse_what_to_do_and_hides_its_inner_text_behind_a_code() {
        for e in every_error() {
            let w = e.for_nurse();
            assert!(w.message.ends_with('.'), "{e:?}: {}", w.message);
            assert!(!w.message.starts_with(|c: char| c.is_lowercase()), "{e:?}: {}", w.message);
            match e.it_code() {
                Some(code) => {
                    assert!(w.message.ends_with(&format!("For IT: {code}.")), "{e:?}: {}", w.message);
                    assert!(code.starts_with("SC-") && code.len() <= 12, "{code}");
                }
                None => assert!(!w.message.contains("For IT"), "{e:?}: {}", w.message),
            }
            // The inner texts of `every_error` never reach the nurse.
            for inner in ["dev", "no bus", "odd", "the record", "bad", "busy", "disk", "rng", "stale", "pinned"] {
                if e.it_code().is_some() {
                    assert!(!w.message.contains(inner), "{e:?}: {}", w.message);
                }
            }
        }
        let pin = Error::UntrustedServer.for_nurse().message;
        assert!(pin.contains("could not be confirmed as genuine") && pin.ends_with("For IT: SC-TLS-PIN."), "{pin}");
    }

    #[test]
    fn a_lock_out_counts_down_in_minutes() {
        let now = Instant::now();
        let view = Notice::LockedOut { until: now + Duration::from_secs(61) }.for_nurse(now);
        assert_eq!(view.message, "Too many failed sign-ins: locked out for 2 minutes.");
        assert_eq!(view.retry_after_secs, Some(61));
        let view = Notice::LockedOut { until: now + Duration::from_secs(5) }.for_nurse(now);
        assert_eq!(view.message, "Too many failed sign-ins: locked out for 1 minute.");
    }
}

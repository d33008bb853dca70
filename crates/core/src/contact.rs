//! The dead-man timer's memory: when the laptop last reached its server, and after how many days
//! without contact it wipes itself. Kept in `contact.json` beside the record (written atomically);
//! a missing or unreadable file counts as "no contact since enrolment". See docs/brick.md.

use crate::record::DataDir;
use crate::{atomic, Error};
use serde::{Deserialize, Serialize};

/// What the timer needs.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Contact {
    /// Last successful contact, Unix seconds.
    pub last_contact: i64,
    /// Days without contact before the laptop wipes itself (0: never).
    pub dead_man_days: u32,
}

impl Contact {
    /// Whether the timer has run out at `now`.
    pub fn expired(&self, now: i64) -> bool {
        // Saturating: the file is on the laptop's disk, so any value may be in it.
        self.dead_man_days > 0 && now.saturating_sub(self.last_contact) > i64::from(self.dead_man_days) * 86_400
    }
}

/// Reads the contact file; `None` when missing or unreadable.
pub fn load(dir: &DataDir) -> Option<Contact> {
    let bytes = std::fs::read(dir.contact_path()).ok()?;
    match serde_json::from_slice(&bytes) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "contact file unreadable: counting from enrolment");
            None
        }
    }
}

/// Writes the contact file atomically.
pub fn store(dir: &DataDir, contact: &Contact) -> Result<(), Error> {
    let bytes =
        serde_json::to_vec(contact).map_err(|e| Error::Corrupt { what: "the contact file", why: e.to_string() })?;
    atomic::write(&dir.contact_path(), &bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn expiry_is_strictly_after_the_days() {
        let c = Contact { last_contact: 1_000, dead_man_days: 2 };
        assert!(!c.expired(1_000 + 2 * 86_400));
        assert!(c.expired(1_000 + 2 * 86_400 + 1));
        assert!(!Contact { dead_man_days: 0, ..c }.expired(i64::MAX), "0 days: never");
    }

    #[test]
    fn issue_13_any_stored_time_is_judged_without_overflow() {
        let c = Contact { last_contact: i64::MIN, dead_man_days: 14 };
        assert!(c.expired(i64::MAX), "a time before all time is long expired");
        let c = Contact { last_contact: i64::MAX, dead_man_days: u32::MAX };
        assert!(!c.expired(i64::MIN), "a contact in the future is not");
    }
}

//! The dead-man timer's count and its memory: how long the laptop has been out of contact with
//! its server, counted so that neither editing the file nor setting the clock back postpones the
//! wipe. Pure rules ([`Contact`]) and a MAC-sealed file; the kiosk drives them. See docs/brick.md.
//!
//! - Each contact (an answer on the pinned channel, an activation) restarts the count at zero and
//!   records the server's time; the laptop's own wall clock plays no part in it.
//! - Between contacts the count grows by the boot-time clock (which counts suspend and which no
//!   one can set). Across a reboot it grows by the wall-clock gap while the laptop was off (never
//!   negative, so a clock set back adds nothing but takes nothing away) and the new boot's time.
//! - `contact.json` holds the count under an HMAC-SHA256 whose key ([`ContactKey`]) is in the OS
//!   keystore with the enrolment time. A file that is missing, altered or not sealed with this
//!   key counts as out of contact since enrolment. An older copy of the file holds a smaller
//!   count taken at an earlier boot time, so within a boot it brings back the same count.

use crate::clock::BootTime;
use crate::record::DataDir;
use crate::{atomic, Error};
use ring::hmac;
use ring::rand::{SecureRandom as _, SystemRandom};
use serde::{Deserialize, Serialize};
use zeroize::Zeroizing;

/// The file format.
const FORMAT: u32 = 2;
/// The keystore entry's format.
const KEY_FORMAT: u8 = 1;
const SECS_PER_DAY: u64 = 86_400;

/// The time as the timer reads it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Now {
    /// The wall clock, Unix seconds (whatever it is set to).
    pub wall: i64,
    /// The boot-time clock.
    pub boot: BootTime,
}

/// The count: out of contact since `last_contact`, for `out_of_contact_secs`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct Contact {
    /// The server's time at the last contact, Unix seconds (0: none since enrolment).
    pub last_contact: i64,
    /// Days out of contact before the laptop wipes itself (0: never), from the server's policy.
    pub dead_man_days: u32,
    /// Seconds counted out of contact so far.
    pub out_of_contact_secs: u64,
    /// The boot the count was last brought up to date in.
    pub boot_id: String,
    /// The boot-time clock then.
    pub boot_secs: u64,
    /// The wall clock then (to count the time a laptop spends switched off).
    pub wall: i64,
}

impl Contact {
    /// A contact made now, at the server's time `server_time`.
    pub fn made(server_time: i64, dead_man_days: u32, now: &Now) -> Self {
        Contact {
            last_contact: server_time,
            dead_man_days,
            out_of_contact_secs: 0,
            boot_id: now.boot.id.clone(),
            boot_secs: now.boot.secs,
            wall: now.wall,
        }
    }

    /// No trustworthy memory: out of contact since enrolment at `enrolled_at`, by the wall clock,
    /// and at least since this boot began.
    pub fn since_enrolment(enrolled_at: i64, dead_man_days: u32, now: &Now) -> Self {
        let by_wall = u64::try_from(now.wall.saturating_sub(enrolled_at)).unwrap_or(0);
        Contact { out_of_contact_secs: by_wall.max(now.boot.secs), ..Contact::made(0, dead_man_days, now) }
    }

    /// Brings the count up to `now`.
    pub fn advance(&mut self, now: &Now) {
        let more = if now.boot.id == self.boot_id {
            now.boot.secs.saturating_sub(self.boot_secs)
        } else {
            // Another boot: the time off (by the wall clock, never negative), then this boot's.
            let booted_at = now.wall.saturating_sub(i64::try_from(now.boot.secs).unwrap_or(i64::MAX));
            let off = u64::try_from(booted_at.saturating_sub(self.wall)).unwrap_or(0);
            off.saturating_add(now.boot.secs)
        };
        self.out_of_contact_secs = self.out_of_contact_secs.saturating_add(more);
        self.boot_id.clone_from(&now.boot.id);
        self.boot_secs = now.boot.secs;
        self.wall = now.wall;
    }

    /// Whether the timer has run out: strictly more than its days out of contact.
    pub fn expired(&self) -> bool {
        self.dead_man_days > 0 && self.out_of_contact_secs > u64::from(self.dead_man_days) * SECS_PER_DAY
    }
}

/// The key that seals `contact.json`, and when the laptop was enrolled; kept in the OS keystore.
pub struct ContactKey {
    key: Zeroizing<[u8; 32]>,
    /// When the laptop was enrolled, Unix seconds.
    pub enrolled_at: i64,
}

impl std::fmt::Debug for ContactKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ContactKey(enrolled_at {})", self.enrolled_at)
    }
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    format: u32,
    /// The count as JSON, exactly the bytes the MAC covers.
    count: sc_proto::Bytes<Vec<u8>>,
    mac: sc_proto::Bytes<[u8; 32]>,
}

impl ContactKey {
    /// A new random key for a laptop enrolled at `enrolled_at`.
    pub fn generate(enrolled_at: i64) -> Result<Self, Error> {
        let mut key = Zeroizing::new([0u8; 32]);
        SystemRandom::new().fill(key.as_mut()).map_err(|_| Error::Crypto("random contact key"))?;
        Ok(ContactKey { key, enrolled_at })
    }

    /// The keystore's bytes.
    pub(crate) fn encode(&self) -> Zeroizing<Vec<u8>> {
        let mut out = Zeroizing::new(Vec::with_capacity(41));
        out.push(KEY_FORMAT);
        out.extend_from_slice(self.key.as_ref());
        out.extend_from_slice(&self.enrolled_at.to_be_bytes());
        out
    }

    /// Parses the keystore's bytes.
    pub(crate) fn decode(bytes: &[u8]) -> Result<Self, Error> {
        let [KEY_FORMAT, rest @ ..] = bytes else { return Err(Error::KeysMissing) };
        let (Some(key), Some(at)) =
            (rest.first_chunk::<32>(), rest.get(32..).and_then(|r| <[u8; 8]>::try_from(r).ok()))
        else {
            return Err(Error::KeysMissing);
        };
        Ok(ContactKey { key: Zeroizing::new(*key), enrolled_at: i64::from_be_bytes(at) })
    }

    fn mac_key(&self) -> hmac::Key {
        hmac::Key::new(hmac::HMAC_SHA256, self.key.as_ref())
    }

    /// The file's bytes for `contact`.
    pub fn seal(&self, contact: &Contact) -> Result<Vec<u8>, Error> {
        let count = serde_json::to_vec(contact)
            .map_err(|e| Error::Corrupt { what: "the contact count", why: e.to_string() })?;
        let tag = hmac::sign(&self.mac_key(), &count);
        // A SHA-256 tag is 32 bytes, always.
        let mac: [u8; 32] = tag.as_ref().try_into().map_err(|_| Error::Crypto("hmac length"))?;
        let sealed = Sealed { format: FORMAT, count: sc_proto::Bytes(count), mac: sc_proto::Bytes(mac) };
        serde_json::to_vec(&sealed).map_err(|e| Error::Corrupt { what: "the contact file", why: e.to_string() })
    }

    /// The count in the file's bytes, if this key sealed them.
    pub fn open(&self, bytes: &[u8]) -> Result<Contact, Error> {
        let bad = |why: &str| Error::Corrupt { what: "the contact file", why: why.to_owned() };
        let sealed: Sealed = serde_json::from_slice(bytes).map_err(|e| bad(&e.to_string()))?;
        if sealed.format != FORMAT {
            return Err(bad("unknown format"));
        }
        hmac::verify(&self.mac_key(), &sealed.count.0, &sealed.mac.0).map_err(|_| bad("not sealed by this laptop"))?;
        serde_json::from_slice(&sealed.count.0).map_err(|e| bad(&e.to_string()))
    }
}

/// The count the file holds, if it is there and sealed with `key`. Otherwise the reason, logged.
pub fn load(dir: &DataDir, key: &ContactKey) -> Option<Contact> {
    let bytes = match std::fs::read(dir.contact_path()) {
        Ok(b) => b,
        Err(e) => {
            tracing::warn!(error = %e, "no contact file: counting from enrolment");
            return None;
        }
    };
    match key.open(&bytes) {
        Ok(c) => Some(c),
        Err(e) => {
            tracing::warn!(error = %e, "contact file refused: counting from enrolment");
            None
        }
    }
}

/// Writes the file atomically.
pub fn store(dir: &DataDir, key: &ContactKey, contact: &Contact) -> Result<(), Error> {
    atomic::write(&dir.contact_path(), &key.seal(contact)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: u64 = 86_400;

    fn at(wall: i64, boot: &str, secs: u64) -> Now {
        Now { wall, boot: BootTime { id: boot.into(), secs } }
    }

    #[test]
    fn expiry_is_strictly_after_the_days_on_the_boot_clock_whatever_the_wall_says() {
        let mut c = Contact::made(1_000, 2, &at(1_000, "a", 50));
        c.advance(&at(1_000 - 5 * DAY as i64, "a", 50 + 2 * DAY));
        assert!(!c.expired(), "exactly two days");
        c.advance(&at(-1, "a", 51 + 2 * DAY));
        assert!(c.expired(), "a second more, with the wall clock set back to before 1970");
        assert!(!Contact { dead_man_days: 0, ..c }.expired(), "0 days: never");
    }

    #[test]
    fn issue_13_any_stored_count_is_judged_without_overflow() {
        let mut c = Contact {
            last_contact: i64::MIN,
            dead_man_days: u32::MAX,
            out_of_contact_secs: u64::MAX - 1,
            boot_id: "a".into(),
            boot_secs: u64::MAX,
            wall: i64::MIN,
        };
        for now in [at(i64::MAX, "a", u64::MAX), at(i64::MAX, "b", u64::MAX), at(i64::MIN, "c", 0)] {
            c.advance(&now);
            assert!(c.expired(), "a count at the end of u64 is long past any limit");
        }
        let mut c = Contact::made(i64::MAX, 14, &at(i64::MAX, "a", 0));
        c.advance(&at(i64::MIN, "b", u64::MAX));
        assert_eq!(c.out_of_contact_secs, u64::MAX, "saturates");
    }

    #[test]
    fn a_reboot_counts_the_time_off_by_the_wall_never_less_than_nothing() {
        let mut c = Contact::made(0, 14, &at(10_000, "a", 100));
        c.advance(&at(10_500, "a", 600));
        // Off for 1000 s, then up for 30 s.
        c.advance(&at(11_530, "b", 30));
        assert_eq!(c.out_of_contact_secs, 500 + 1_000 + 30);
        // Off again, and the clock set back a year: only the new boot's time counts.
        c.advance(&at(11_530 - 365 * DAY as i64, "c", 40));
        assert_eq!(c.out_of_contact_secs, 1_530 + 40);
    }

    #[test]
    fn since_enrolment_counts_by_the_wall_and_at_least_this_boot() {
        assert_eq!(Contact::since_enrolment(1_000, 14, &at(1_000 + 86_400, "a", 30)).out_of_contact_secs, DAY);
        assert_eq!(Contact::since_enrolment(1_000, 14, &at(0, "a", 30)).out_of_contact_secs, 30, "clock set back");
        assert!(Contact::since_enrolment(0, 14, &at(1_700_000_000, "a", 30)).expired(), "enrolment unknown");
    }

    #[test]
    fn the_file_opens_only_unaltered_and_under_its_own_key() {
        let key = ContactKey::generate(5).expect("key");
        let c = Contact::made(7, 14, &at(7, "a", 1));
        let bytes = key.seal(&c).expect("seal");
        assert_eq!(key.open(&bytes).expect("open"), c);
        assert!(ContactKey::generate(5).expect("key").open(&bytes).is_err(), "another laptop's key");
        let edited = String::from_utf8(bytes.clone()).expect("utf8").replace("\"format\":2", "\"format\":3");
        assert!(key.open(edited.as_bytes()).is_err());
        let mut flipped = bytes.clone();
        let i = flipped.len() / 3;
        flipped[i] ^= 1;
        assert!(key.open(&flipped).is_err());
        assert!(key.open(b"").is_err() && key.open(b"{\"last_contact\":1,\"dead_man_days\":0}").is_err());
    }

    #[test]
    fn the_key_round_trips_and_garbage_is_no_key() {
        let key = ContactKey::generate(-42).expect("key");
        let back = ContactKey::decode(&key.encode()).expect("decode");
        assert_eq!((back.enrolled_at, back.key.as_ref()), (-42, key.key.as_ref()));
        for bad in [&[][..], &[1], &[2; 41], &[1; 40], &[1; 42]] {
            assert!(ContactKey::decode(bad).is_err(), "{bad:?}");
        }
    }
}

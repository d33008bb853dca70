//! Booking from the prison's team page: a nurse books a consultant for one of their prison's
//! patients (time, length, prison number and initials), moves it or cancels it. Each change is
//! audited under the nurse's name; a booking of another prison is, to them, one that does not
//! exist. A cancelled booking is kept (for the audit trail) and never listed or joined again.

use crate::conn::Conn;
use crate::store::params;
use crate::{admin, audit, calls, db, Error};
use sc_proto::signal::Patient;
use serde::Deserialize;

/// The shortest and longest appointment the team page books, in minutes.
pub const MINUTES: std::ops::RangeInclusive<i64> = 5..=240;
/// How far ahead a booking may be, in seconds (a year and a day).
pub const MAX_AHEAD_SECS: i64 = 366 * 24 * 3600;
/// How far in the past a start may be, in seconds (a booking made for "now" a little late).
pub const GRACE_SECS: i64 = 5 * 60;

/// The nurse making a change: who they are and which prison's bookings are theirs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Nurse {
    /// Staff row id.
    pub staff_id: i64,
    /// Login name (what the audit log records).
    pub username: String,
    /// Display name.
    pub name: String,
    /// Their prison.
    pub prison_id: i64,
    /// Its name.
    pub prison: String,
}

/// When, as the form sends it.
#[derive(Debug, Clone, Copy, Deserialize)]
pub struct SlotForm {
    /// Start, Unix seconds.
    pub starts_at: i64,
    /// Length, minutes.
    pub minutes: i64,
}

/// A start and a length that a booking may have.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Slot {
    starts_at: i64,
    ends_at: i64,
}

impl Slot {
    /// Checks `form` at `now`.
    pub fn parse(form: SlotForm, now: i64) -> Result<Slot, Error> {
        if !MINUTES.contains(&form.minutes) {
            return Err(Error::BadRequest(format!(
                "an appointment lasts {} to {} minutes",
                MINUTES.start(),
                MINUTES.end()
            )));
        }
        if form.starts_at < now - GRACE_SECS {
            return Err(Error::BadRequest("that time has passed: choose a time from now on".into()));
        }
        if form.starts_at > now + MAX_AHEAD_SECS {
            return Err(Error::BadRequest("book no more than a year ahead".into()));
        }
        Ok(Slot { starts_at: form.starts_at, ends_at: form.starts_at + form.minutes * 60 })
    }
}

/// What the booking form sends.
#[derive(Debug, Clone, Deserialize)]
pub struct BookingForm {
    /// The consultant's user name (from the page's list).
    pub consultant: String,
    /// When.
    #[serde(flatten)]
    pub slot: SlotForm,
    /// The patient's prison number.
    pub prison_number: String,
    /// The patient's initials.
    pub initials: String,
}

/// The patient a form names, parsed, with the words a nurse can act on.
pub fn patient(prison_number: &str, initials: &str) -> Result<Patient, Error> {
    let prison_number = prison_number.trim().to_ascii_uppercase().try_into().map_err(|_| {
        Error::BadRequest("give the prison number as one letter, four digits, two letters (A1234BC)".into())
    })?;
    let initials = initials
        .trim()
        .replace(['.', ' '], "")
        .to_ascii_uppercase()
        .try_into()
        .map_err(|_| Error::BadRequest("give the patient's initials: one to three letters".into()))?;
    Ok(Patient { prison_number, initials })
}

fn record(c: &Conn<'_>, nurse: &Nurse, event: &str, detail: String, now: i64) -> Result<(), Error> {
    audit::record(
        c,
        now,
        &audit::Entry {
            event,
            outcome: "ok",
            staff: Some(&nurse.username),
            prison_id: Some(nurse.prison_id),
            detail: Some(detail),
            ..Default::default()
        },
    )
}

/// Books `form` for the nurse's prison.
pub fn book(c: &Conn<'_>, nurse: &Nurse, form: &BookingForm, now: i64) -> Result<admin::NewAppointment, Error> {
    let slot = Slot::parse(form.slot, now)?;
    let patient = patient(&form.prison_number, &form.initials)?;
    // An unknown name and a non-consultant are the same answer: the page only offers consultants.
    let consultant = db::staff_by_username(c, &form.consultant)?
        .filter(|s| s.role == "consultant" && s.disabled_at.is_none())
        .ok_or_else(|| Error::BadRequest("choose a consultant from the list".into()))?;
    let room_code = admin::room_code()?;
    let tx = c.transaction()?;
    let id = db::insert_appointment(
        &tx,
        &db::NewAppointmentRow {
            consultant_id: consultant.id,
            prison_id: nurse.prison_id,
            starts_at: slot.starts_at,
            ends_at: slot.ends_at,
            room_code: &room_code,
            patient: Some(&patient),
        },
    )?;
    record(
        &tx,
        nurse,
        "booking_made",
        format!("appointment={id} consultant={} starts_at={}", consultant.username, slot.starts_at),
        now,
    )?;
    tx.commit()?;
    Ok(admin::NewAppointment { id, room_code })
}

/// The nurse's prison's booking `id`, not cancelled; another prison's is not found.
fn own(c: &Conn<'_>, nurse: &Nurse, id: i64) -> Result<db::AppointmentRow, Error> {
    db::appointment(c, id)?
        .filter(|a| a.prison_id == nurse.prison_id)
        .ok_or_else(|| Error::NotFound(format!("appointment {id}")))
}

fn not_in_a_call(c: &Conn<'_>, id: i64) -> Result<(), Error> {
    if calls::live(c, id)?.is_some() {
        return Err(Error::NotNow("the call for this appointment is in progress: change it after it ends".into()));
    }
    Ok(())
}

/// Moves booking `id` to `form`'s time.
pub fn reschedule(c: &Conn<'_>, nurse: &Nurse, id: i64, form: SlotForm, now: i64) -> Result<(), Error> {
    let slot = Slot::parse(form, now)?;
    let tx = c.transaction()?;
    // Checked and changed with the row locked: a call starting meanwhile waits, then is seen.
    tx.lock_rows("appointments", "id", id)?;
    let before = own(&tx, nurse, id)?;
    not_in_a_call(&tx, id)?;
    tx.execute(
        "UPDATE appointments SET starts_at = ?2, ends_at = ?3 WHERE id = ?1",
        params![id, slot.starts_at, slot.ends_at],
    )?;
    record(
        &tx,
        nurse,
        "booking_rescheduled",
        format!("appointment={id} from={} to={}", before.view.starts_at, slot.starts_at),
        now,
    )?;
    tx.commit()?;
    Ok(())
}

/// Cancels booking `id`, with the nurse's reason.
pub fn cancel(c: &Conn<'_>, nurse: &Nurse, id: i64, reason: &str, now: i64) -> Result<(), Error> {
    let reason = reason.trim();
    if reason.is_empty() || reason.chars().count() > 200 {
        return Err(Error::BadRequest("give a short reason for cancelling (up to 200 characters)".into()));
    }
    let tx = c.transaction()?;
    tx.lock_rows("appointments", "id", id)?;
    own(&tx, nurse, id)?;
    not_in_a_call(&tx, id)?;
    tx.execute("UPDATE appointments SET cancelled_at = ?2 WHERE id = ?1", params![id, now])?;
    record(&tx, nurse, "booking_cancelled", format!("appointment={id} reason={reason}"), now)?;
    tx.commit()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_slot_is_checked_against_now() {
        let now = 1_000_000;
        assert_eq!(
            Slot::parse(SlotForm { starts_at: now + 60, minutes: 20 }, now).expect("ok"),
            Slot { starts_at: now + 60, ends_at: now + 60 + 1200 }
        );
        for (form, words) in [
            (SlotForm { starts_at: now, minutes: 4 }, "5 to 240"),
            (SlotForm { starts_at: now, minutes: 241 }, "5 to 240"),
            (SlotForm { starts_at: now - GRACE_SECS - 1, minutes: 20 }, "has passed"),
            (SlotForm { starts_at: now + MAX_AHEAD_SECS + 1, minutes: 20 }, "a year"),
        ] {
            let err = Slot::parse(form, now).expect_err(words).to_string();
            assert!(err.contains(words), "{err}");
        }
    }

    #[test]
    fn a_patient_is_read_as_a_nurse_types_it() {
        let p = patient(" a1234bc ", "j.s.").expect("ok");
        assert_eq!((p.prison_number.as_str(), p.initials.as_str()), ("A1234BC", "JS"));
        assert!(patient("1234", "JS").expect_err("number").to_string().contains("A1234BC"));
        assert!(patient("A1234BC", "J4").expect_err("initials").to_string().contains("initials"));
    }
}

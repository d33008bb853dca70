//! Outcome notes: what the consultant tells the prison's healthcare team after a call (summary,
//! actions, medication advice, follow-up, urgency), parsed from the page's form, kept sealed and
//! immutable (a correction is an addendum), acknowledged once by a nurse of that prison, and
//! overdue when urgent and unacknowledged too long. Who may see which note is decided by the
//! callers (`team_web`, `web`); this module only stores and reads.

use crate::conn::Conn;
use crate::store::{params, OptionalExtension as _};
use crate::Error;
use serde::{Deserialize, Serialize};

/// How soon the prison's team must act on a note.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Urgency {
    /// At the next routine opportunity.
    Routine,
    /// Within days.
    Soon,
    /// Today: overdue when nobody has acknowledged it within the configured time.
    Urgent,
}

impl Urgency {
    /// The stored text.
    pub fn as_str(self) -> &'static str {
        match self {
            Urgency::Routine => "routine",
            Urgency::Soon => "soon",
            Urgency::Urgent => "urgent",
        }
    }

    fn parse(text: &str) -> Option<Self> {
        match text {
            "routine" => Some(Urgency::Routine),
            "soon" => Some(Urgency::Soon),
            "urgent" => Some(Urgency::Urgent),
            _ => None,
        }
    }
}

/// What the consultant's form sends, unchecked.
#[derive(Debug, Clone, Deserialize)]
pub struct NoteForm {
    /// What was found and discussed.
    pub summary: String,
    /// What the prison's team should do.
    #[serde(default)]
    pub actions: String,
    /// Medication advice.
    #[serde(default)]
    pub medication: String,
    /// The follow-up, in words.
    #[serde(default)]
    pub follow_up: String,
    /// The follow-up's date, `YYYY-MM-DD`, or empty.
    #[serde(default)]
    pub follow_up_on: String,
    /// routine, soon or urgent.
    pub urgency: String,
}

/// The longest any one field of a note may be, in characters.
pub const MAX_FIELD: usize = 4000;

/// The note's text, checked: what is sealed in the database.
#[derive(Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NoteBody {
    /// What was found and discussed (never empty).
    pub summary: String,
    /// What the prison's team should do.
    pub actions: String,
    /// Medication advice.
    pub medication: String,
    /// The follow-up, in words.
    pub follow_up: String,
}

impl std::fmt::Debug for NoteBody {
    // Clinical text never reaches a log.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("NoteBody(..)")
    }
}

/// A note as written, parsed from its form.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NoteDraft {
    /// The text.
    pub body: NoteBody,
    /// When to follow up.
    pub follow_up_on: Option<time::Date>,
    /// How soon.
    pub urgency: Urgency,
}

/// The format of a follow-up date.
const DATE: &[time::format_description::BorrowedFormatItem<'static>] =
    time::macros::format_description!("[year]-[month]-[day]");

/// Parses a `YYYY-MM-DD` date.
pub fn parse_date(text: &str) -> Option<time::Date> {
    time::Date::parse(text, DATE).ok()
}

/// A date as `YYYY-MM-DD`.
pub fn format_date(d: time::Date) -> String {
    // The format has only numeric parts, so it fits every date in range.
    d.format(DATE).unwrap_or_default()
}

fn field(name: &str, text: &str, required: bool) -> Result<String, Error> {
    let text = text.trim();
    if required && text.is_empty() {
        return Err(Error::BadRequest(format!("write the {name}")));
    }
    if text.chars().count() > MAX_FIELD {
        return Err(Error::BadRequest(format!("keep the {name} under {MAX_FIELD} characters")));
    }
    if text.chars().any(|c| c.is_control() && c != '\n' && c != '\r' && c != '\t') {
        return Err(Error::BadRequest(format!("the {name} has characters that cannot be shown")));
    }
    Ok(text.to_owned())
}

impl TryFrom<NoteForm> for NoteDraft {
    type Error = Error;
    fn try_from(form: NoteForm) -> Result<Self, Error> {
        let urgency = Urgency::parse(form.urgency.trim())
            .ok_or_else(|| Error::BadRequest("choose how urgent this is: routine, soon or urgent".into()))?;
        let follow_up_on = match form.follow_up_on.trim() {
            "" => None,
            d => Some(parse_date(d).ok_or_else(|| Error::BadRequest("give the follow-up date as YYYY-MM-DD".into()))?),
        };
        let body = NoteBody {
            summary: field("summary", &form.summary, true)?,
            actions: field("actions for the prison team", &form.actions, false)?,
            medication: field("medication advice", &form.medication, false)?,
            follow_up: field("follow-up", &form.follow_up, false)?,
        };
        if follow_up_on.is_some() && body.follow_up.is_empty() {
            return Err(Error::BadRequest("say what the follow-up on that date is".into()));
        }
        Ok(NoteDraft { body, follow_up_on, urgency })
    }
}

/// Whether a note is overdue at `now`: urgent, unacknowledged, and older than `after` seconds.
pub fn overdue(urgency: Urgency, created_at: i64, acknowledged: bool, now: i64, after: i64) -> bool {
    urgency == Urgency::Urgent && !acknowledged && now.saturating_sub(created_at) >= after
}

/// Who acknowledged a note, and when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Ack {
    /// The nurse's display name.
    pub by: String,
    /// Unix seconds.
    pub at: i64,
}

/// A note without its text: what lists show.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct NoteHeader {
    /// Row id.
    pub id: i64,
    /// The note's own identifier (random; the FHIR export's identifier).
    pub uid: String,
    /// The appointment it is about.
    pub appointment_id: i64,
    /// The note this one adds to, for an addendum.
    pub addendum_to: Option<i64>,
    /// When it was sent.
    pub created_at: i64,
    /// The consultant's display name.
    pub consultant: String,
    /// The consultant's hospital.
    pub hospital: Option<String>,
    /// The prison's name.
    pub prison: String,
    /// The appointment's start.
    pub appointment_starts_at: i64,
    /// Who it is about, when the booking says.
    pub patient: Option<Box<sc_proto::signal::Patient>>,
    /// How soon.
    pub urgency: Urgency,
    /// When to follow up.
    pub follow_up_on: Option<String>,
    /// Who acknowledged it.
    pub acknowledged: Option<Ack>,
    /// Urgent and unacknowledged for too long.
    pub overdue: bool,
    /// The consultant's staff id (for the callers' checks; not sent).
    #[serde(skip)]
    pub consultant_id: i64,
    /// The prison's id (for the callers' checks; not sent).
    #[serde(skip)]
    pub prison_id: i64,
}

/// A whole note.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Note {
    /// Everything a list shows.
    #[serde(flatten)]
    pub header: NoteHeader,
    /// The text.
    #[serde(flatten)]
    pub body: NoteBody,
}

/// The label a note's text is sealed under: bound to the note, so text moved to another row does
/// not open.
fn seal_label(uid: &str) -> String {
    format!("outcome-note:{uid}")
}

fn new_uid() -> Result<String, Error> {
    let mut raw = [0u8; 16];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut raw)
        .map_err(|_| Error::Crypto("random note id".into()))?;
    // As a UUID (version 4, RFC 9562), which the FHIR export's `urn:uuid:` identifier needs.
    raw[6] = (raw[6] & 0x0f) | 0x40;
    raw[8] = (raw[8] & 0x3f) | 0x80;
    let hex: String = raw.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("{}-{}-{}-{}-{}", &hex[..8], &hex[8..12], &hex[12..16], &hex[16..20], &hex[20..]))
}

/// A note to store.
#[derive(Debug, Clone, Copy)]
pub struct NewNote<'a> {
    /// The appointment.
    pub appointment_id: i64,
    /// Its consultant.
    pub consultant_id: i64,
    /// Its prison.
    pub prison_id: i64,
    /// The note this one adds to.
    pub addendum_to: Option<i64>,
    /// The parsed note.
    pub draft: &'a NoteDraft,
}

/// Stores a note; returns its id and uid. The first note of an appointment is its only
/// non-addendum note (a second is refused as a conflict: the consultant adds an addendum).
pub fn insert(c: &Conn<'_>, n: &NewNote<'_>, now: i64) -> Result<(i64, String), Error> {
    let uid = new_uid()?;
    let body = serde_json::to_string(&n.draft.body).map_err(|e| Error::Crypto(format!("note: {e}")))?;
    let res = c.query_row(
        "INSERT INTO outcome_notes
           (uid, appointment_id, consultant_id, prison_id, addendum_to, created_at, urgency, follow_up_on, body)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9) RETURNING id",
        params![
            uid,
            n.appointment_id,
            n.consultant_id,
            n.prison_id,
            n.addendum_to,
            now,
            n.draft.urgency.as_str(),
            n.draft.follow_up_on.map(format_date),
            c.keys().seal.seal(&body, &seal_label(&uid))?
        ],
        |r| r.get(0),
    );
    match res {
        Ok(id) => Ok((id, uid)),
        Err(e) if e.is_constraint_violation() => {
            Err(Error::NotNow("this appointment already has an outcome note: add an addendum to it instead".into()))
        }
        Err(e) => Err(e.into()),
    }
}

const HEADER_SELECT: &str = "SELECT n.id, n.uid, n.appointment_id, n.addendum_to, n.created_at, s.display_name,
        s.hospital, p.name, a.starts_at, a.patient_number, a.patient_initials, n.urgency, n.follow_up_on,
        k.display_name, ack.at, n.consultant_id, n.prison_id
     FROM outcome_notes n
     JOIN staff s ON s.id = n.consultant_id
     JOIN prisons p ON p.id = n.prison_id
     JOIN appointments a ON a.id = n.appointment_id
     LEFT JOIN note_acks ack ON ack.note_id = n.id
     LEFT JOIN staff k ON k.id = ack.staff_id";

fn header_from_row(r: &crate::store::Row<'_>, now: i64, overdue_after: i64) -> crate::store::Result<NoteHeader> {
    let urgency_text: String = r.get(11)?;
    // Written parsed; anything else was edited outside the server, and is treated as urgent
    // rather than hidden.
    let urgency = Urgency::parse(&urgency_text).unwrap_or(Urgency::Urgent);
    let created_at: i64 = r.get(4)?;
    let acknowledged = match (r.get::<_, Option<String>>(13)?, r.get::<_, Option<i64>>(14)?) {
        (Some(by), Some(at)) => Some(Ack { by, at }),
        _ => None,
    };
    Ok(NoteHeader {
        id: r.get(0)?,
        uid: r.get(1)?,
        appointment_id: r.get(2)?,
        addendum_to: r.get(3)?,
        created_at,
        consultant: r.get(5)?,
        hospital: r.get(6)?,
        prison: r.get(7)?,
        appointment_starts_at: r.get(8)?,
        patient: crate::db::patient_from(r.get(9)?, r.get(10)?),
        urgency,
        follow_up_on: r.get(12)?,
        overdue: overdue(urgency, created_at, acknowledged.is_some(), now, overdue_after),
        acknowledged,
        consultant_id: r.get(15)?,
        prison_id: r.get(16)?,
    })
}

/// Which notes a list holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Whose {
    /// A prison's (its healthcare team's list).
    Prison(i64),
    /// A consultant's own.
    Consultant(i64),
}

/// The notes of a prison or a consultant, newest first.
pub fn headers(c: &Conn<'_>, whose: Whose, now: i64, overdue_after: i64) -> Result<Vec<NoteHeader>, Error> {
    let (column, id) = match whose {
        Whose::Prison(id) => ("n.prison_id", id),
        Whose::Consultant(id) => ("n.consultant_id", id),
    };
    let mut stmt = c.prepare(&format!("{HEADER_SELECT} WHERE {column} = ?1 ORDER BY n.created_at DESC, n.id DESC"))?;
    let rows = stmt.query_map(params![id], |r| header_from_row(r, now, overdue_after))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// One note's header.
pub fn header(c: &Conn<'_>, id: i64, now: i64, overdue_after: i64) -> Result<Option<NoteHeader>, Error> {
    Ok(c.query_row(&format!("{HEADER_SELECT} WHERE n.id = ?1"), params![id], |r| {
        header_from_row(r, now, overdue_after)
    })
    .optional()?)
}

/// One whole note, its text unsealed.
pub fn note(c: &Conn<'_>, id: i64, now: i64, overdue_after: i64) -> Result<Option<Note>, Error> {
    let Some(header) = header(c, id, now, overdue_after)? else { return Ok(None) };
    let sealed: String = c.query_row("SELECT body FROM outcome_notes WHERE id = ?1", params![id], |r| r.get(0))?;
    let json = c.keys().seal.open(&sealed, &seal_label(&header.uid))?;
    let body = serde_json::from_str(&json).map_err(|e| Error::Crypto(format!("outcome note {id}: {e}")))?;
    Ok(Some(Note { header, body }))
}

/// Records that nurse `staff_id` acknowledged note `id` (the first acknowledgement stands).
/// Returns whether this call was that first one.
pub fn acknowledge(c: &Conn<'_>, id: i64, staff_id: i64, now: i64) -> Result<bool, Error> {
    let n = c.execute(
        "INSERT INTO note_acks (note_id, staff_id, at) VALUES (?1, ?2, ?3) ON CONFLICT(note_id) DO NOTHING",
        params![id, staff_id, now],
    )?;
    Ok(n == 1)
}

/// How many of a prison's notes nobody has acknowledged yet.
pub fn unacknowledged(c: &Conn<'_>, prison_id: i64) -> Result<u32, Error> {
    Ok(c.query_row(
        "SELECT COUNT(*) FROM outcome_notes n LEFT JOIN note_acks k ON k.note_id = n.id
         WHERE n.prison_id = ?1 AND k.note_id IS NULL",
        params![prison_id],
        |r| r.get(0),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn form(summary: &str, urgency: &str, date: &str) -> NoteForm {
        NoteForm {
            summary: summary.into(),
            actions: String::new(),
            medication: String::new(),
            follow_up: "Review".into(),
            follow_up_on: date.into(),
            urgency: urgency.into(),
        }
    }

    #[test]
    fn a_note_is_parsed_or_refused_in_words() {
        let d = NoteDraft::try_from(form("  Chest clear. ", "soon", "2026-12-14")).expect("good");
        assert_eq!((d.body.summary.as_str(), d.urgency), ("Chest clear.", Urgency::Soon));
        assert_eq!(d.follow_up_on.map(format_date).as_deref(), Some("2026-12-14"));
        for (f, words) in [
            (form(" ", "soon", ""), "write the summary"),
            (form("x", "later", ""), "how urgent"),
            (form("x", "urgent", "14/12/2026"), "YYYY-MM-DD"),
            (form("x", "urgent", "2026-02-30"), "YYYY-MM-DD"),
            (form(&"x".repeat(MAX_FIELD + 1), "urgent", ""), "under 4000"),
            (form("a\u{0}b", "urgent", ""), "cannot be shown"),
        ] {
            let err = NoteDraft::try_from(f).expect_err(words).to_string();
            assert!(err.contains(words), "{err}");
        }
        assert!(!format!("{d:?}").contains("Chest"), "clinical text is not in Debug output");
    }

    #[test]
    fn only_an_urgent_unacknowledged_note_goes_overdue_and_only_after_the_time() {
        assert!(overdue(Urgency::Urgent, 0, false, 100, 100));
        assert!(!overdue(Urgency::Urgent, 0, false, 99, 100));
        assert!(!overdue(Urgency::Urgent, 0, true, 1000, 100));
        assert!(!overdue(Urgency::Soon, 0, false, 1000, 100));
    }

    #[test]
    fn uids_are_version_4_uuids() {
        let u = new_uid().expect("uid");
        assert_eq!((u.len(), &u[14..15]), (36, "4"), "{u}");
        assert!(matches!(&u[19..20], "8" | "9" | "a" | "b"), "{u}");
        assert_ne!(u, new_uid().expect("uid"));
    }
}

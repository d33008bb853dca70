//! An outcome note as a FHIR R4 Composition, for the prison's clinical record: the patient by
//! prison number, the consultant as author, one section per part of the note, an addendum
//! related to the note it appends, and a narrative of the whole. Built from `serde_json` values
//! (one resource, one shape; a FHIR model crate would bring thousands of types for it).

use crate::notes::{Note, Urgency};
use serde_json::{json, Value};

/// The identifier system of a prison number. A prison number has no published FHIR naming
/// system; a deployment that has one maps this at import.
pub const PRISON_NUMBER_SYSTEM: &str = "urn:secureconsult:prison-number";

/// LOINC 11488-4, "Consult note".
const CONSULT_NOTE: (&str, &str, &str) = ("http://loinc.org", "11488-4", "Consult note");

/// `text` escaped for XHTML, each line its own line.
fn xhtml(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for (i, line) in text.lines().enumerate() {
        if i > 0 {
            out.push_str("<br/>");
        }
        for ch in line.chars() {
            match ch {
                '&' => out.push_str("&amp;"),
                '<' => out.push_str("&lt;"),
                '>' => out.push_str("&gt;"),
                '"' => out.push_str("&quot;"),
                '\'' => out.push_str("&#39;"),
                c => out.push(c),
            }
        }
    }
    out
}

fn div(inner: &str) -> String {
    format!("<div xmlns=\"http://www.w3.org/1999/xhtml\">{inner}</div>")
}

/// Unix seconds as a FHIR `dateTime` (UTC).
fn date_time(secs: i64) -> String {
    let t = time::OffsetDateTime::from_unix_timestamp(secs).unwrap_or(time::OffsetDateTime::UNIX_EPOCH);
    // RFC 3339 fits every time from 0000 to 9999, which a Unix time the database holds is.
    t.format(&time::format_description::well_known::Rfc3339).unwrap_or_default()
}

fn urgency_words(u: Urgency) -> &'static str {
    match u {
        Urgency::Routine => "Routine",
        Urgency::Soon => "Soon (within days)",
        Urgency::Urgent => "Urgent (today)",
    }
}

/// The note's sections: title and text (an empty part says so rather than being left out, so
/// the record shows it was considered).
fn sections(note: &Note) -> Vec<(&'static str, String)> {
    let or_none = |s: &str| if s.is_empty() { "None given.".to_owned() } else { s.to_owned() };
    let follow_up = match (&note.header.follow_up_on, note.body.follow_up.as_str()) {
        (Some(date), text) => format!("{date}: {text}"),
        (None, text) => or_none(text),
    };
    vec![
        ("Summary", note.body.summary.clone()),
        ("Actions for the prison healthcare team", or_none(&note.body.actions)),
        ("Medication advice", or_none(&note.body.medication)),
        ("Follow-up", follow_up),
        ("Urgency", urgency_words(note.header.urgency).to_owned()),
    ]
}

/// `note` as a FHIR R4 Composition; `appends` is the uid of the note an addendum adds to.
pub fn composition(note: &Note, appends: Option<&str>) -> Value {
    let h = &note.header;
    let author = match &h.hospital {
        Some(hospital) => format!("{}, {hospital}", h.consultant),
        None => h.consultant.clone(),
    };
    let title = if appends.is_some() { "Addendum to a consultation outcome note" } else { "Consultation outcome note" };
    let parts = sections(note);
    let narrative: String = std::iter::once(format!("<h1>{}</h1>", xhtml(title)))
        .chain(std::iter::once(format!("<p>From {} to {}.</p>", xhtml(&author), xhtml(&h.prison))))
        .chain(parts.iter().map(|(t, text)| format!("<h2>{}</h2><p>{}</p>", xhtml(t), xhtml(text))))
        .collect();
    let mut c = json!({
        "resourceType": "Composition",
        "id": h.uid,
        "text": { "status": "generated", "div": div(&narrative) },
        "identifier": { "system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{}", h.uid) },
        "status": "final",
        "type": {
            "coding": [{ "system": CONSULT_NOTE.0, "code": CONSULT_NOTE.1, "display": CONSULT_NOTE.2 }],
            "text": "Consultation outcome note"
        },
        "date": date_time(h.created_at),
        "author": [{ "display": author }],
        "title": title,
        "confidentiality": "R",
        "event": [{ "period": { "start": date_time(h.appointment_starts_at) } }],
        "custodian": { "display": h.prison },
        "section": parts.iter().map(|(t, text)| json!({
            "title": t,
            "text": { "status": "additional", "div": div(&format!("<p>{}</p>", xhtml(text))) }
        })).collect::<Vec<_>>(),
    });
    // A note always has a subject in FHIR terms; without a booked patient reference it is the
    // appointment's, named so the record's reader knows to match it by hand.
    c["subject"] = match &h.patient {
        Some(p) => json!({
            "identifier": { "system": PRISON_NUMBER_SYSTEM, "value": p.prison_number.as_str() },
            "display": format!("Patient {} ({})", p.prison_number.as_str(), p.initials.as_str())
        }),
        None => json!({ "display": format!("The patient of appointment {} at {}", h.appointment_id, h.prison) }),
    };
    if let Some(uid) = appends {
        c["relatesTo"] = json!([{
            "code": "appends",
            "targetIdentifier": { "system": "urn:ietf:rfc:3986", "value": format!("urn:uuid:{uid}") }
        }]);
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_xhtml() {
        assert_eq!(xhtml("a<b & 'c'\n\"d\">"), "a&lt;b &amp; &#39;c&#39;<br/>&quot;d&quot;&gt;");
    }

    #[test]
    fn times_are_fhir_date_times() {
        assert_eq!(date_time(1_800_000_000), "2027-01-15T08:00:00Z");
    }
}

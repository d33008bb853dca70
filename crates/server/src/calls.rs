//! Live calls in the database: a call admitted and not yet ended is kept here, so that after the
//! care server restarts (its rooms hub starts empty) the laptop and the consultant's page can
//! resume it without a new admission, and nobody else can.

use crate::conn::Conn;
use crate::rooms::CallEvent;
use crate::store::{params, OptionalExtension as _};
use crate::Error;
use sc_proto::DeviceId;

/// A call that may be resumed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveCall {
    /// The laptop admitted.
    pub device_id: DeviceId,
    /// The consultant who admitted it.
    pub consultant_id: i64,
    /// When it was admitted (Unix seconds).
    pub started_at: i64,
}

/// Records an admitted call.
pub fn started(c: &Conn<'_>, call: &CallEvent, now: i64) -> Result<(), Error> {
    // With the appointment's row locked, as a reschedule or cancel checks it.
    c.atomically(|c| {
        c.lock_rows("appointments", "id", call.appointment_id)?;
        started_locked(c, call, now)
    })
}

fn started_locked(c: &Conn<'_>, call: &CallEvent, now: i64) -> Result<(), Error> {
    c.execute(
        "INSERT INTO live_calls (appointment_id, device_id, consultant_id, started_at) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (appointment_id) DO UPDATE SET device_id = excluded.device_id,
         consultant_id = excluded.consultant_id, started_at = excluded.started_at",
        params![call.appointment_id, call.device_id.to_string(), call.consultant_id, now],
    )?;
    Ok(())
}

/// The call ended: it can no longer be resumed.
pub fn ended(c: &Conn<'_>, appointment_id: i64) -> Result<(), Error> {
    c.execute("DELETE FROM live_calls WHERE appointment_id = ?1", params![appointment_id])?;
    Ok(())
}

/// The live call of `appointment_id`, if any.
pub fn live(c: &Conn<'_>, appointment_id: i64) -> Result<Option<LiveCall>, Error> {
    c.query_row(
        "SELECT device_id, consultant_id, started_at FROM live_calls WHERE appointment_id = ?1",
        params![appointment_id],
        |r| {
            let device: String = r.get(0)?;
            let device_id = DeviceId::try_from(device).map_err(|e| crate::store::Error::conversion(0, e))?;
            Ok(LiveCall { device_id, consultant_id: r.get(1)?, started_at: r.get(2)? })
        },
    )
    .optional()
    .map_err(Error::from)
}

/// Every live call's appointment.
pub fn all(c: &Conn<'_>) -> Result<Vec<i64>, Error> {
    let mut stmt = c.prepare("SELECT appointment_id FROM live_calls ORDER BY appointment_id")?;
    let ids = stmt.query_map([], |r| r.get(0))?.collect::<Result<Vec<i64>, _>>()?;
    Ok(ids)
}

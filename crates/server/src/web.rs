//! Staff in a browser: sign-in with password + TOTP into a cookie session per role, and the
//! consultant's page with today's appointments (IT's page is in `admin_web`).

use crate::audit::{self, Reason};
use crate::db;
use crate::{signin, AppState, Error};
use axum::extract::State;
use axum::http::header::{CACHE_CONTROL, CONTENT_SECURITY_POLICY, CONTENT_TYPE, COOKIE, SET_COOKIE};
use axum::http::{HeaderMap, HeaderValue};
use axum::response::{IntoResponse, Response};
use axum::Json;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use base64::Engine as _;
use sc_proto::signal::Appointment;
use serde::{Deserialize, Serialize};

const PAGE_CSP: &str = "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' blob: data:; \
    media-src 'self' blob: mediastream:; connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'";

/// A static page asset with the page's CSP, never cached.
pub fn asset(body: &'static str, content_type: &'static str) -> Response {
    (
        [
            (CONTENT_TYPE, HeaderValue::from_static(content_type)),
            (CONTENT_SECURITY_POLICY, HeaderValue::from_static(PAGE_CSP)),
            (CACHE_CONTROL, HeaderValue::from_static("no-store")),
        ],
        body,
    )
        .into_response()
}

/// `GET /consult/`
pub async fn page() -> Response {
    asset(include_str!("../web/index.html"), "text/html; charset=utf-8")
}

/// `GET /consult/app.js`
pub async fn script() -> Response {
    asset(include_str!("../web/app.js"), "text/javascript; charset=utf-8")
}

/// `GET /consult/share.js`: sending images over the call and driving the laptop's viewer.
pub async fn share_script() -> Response {
    asset(include_str!("../web/share.js"), "text/javascript; charset=utf-8")
}

/// `GET /consult/common.js` and `/admin/common.js`: what both pages share.
pub async fn common_script() -> Response {
    asset(include_str!("../web/common.js"), "text/javascript; charset=utf-8")
}

/// `GET /consult/style.css`
pub async fn style() -> Response {
    asset(include_str!("../web/style.css"), "text/css; charset=utf-8")
}

/// What the sign-in form sends.
#[derive(Deserialize)]
pub struct Login {
    username: String,
    password: String,
    code: String,
}

impl std::fmt::Debug for Login {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Login({}, ..)", self.username)
    }
}

/// A signed-in staff member.
#[derive(Debug, Serialize)]
pub struct Me {
    /// Display name.
    pub name: String,
}

/// Which staff role a browser page is for: each has its own cookie, audit event and page.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebRole {
    /// The consultant's page (`/consult/`).
    Consultant,
    /// IT staff's admin page (`/admin/`).
    It,
    /// The prison healthcare team's page (`/team/`): nurses.
    Team,
}

impl WebRole {
    /// The role this page admits.
    pub fn role(self) -> &'static str {
        self.channel().role()
    }

    /// `__Host-`: a browser keeps such a cookie only when it is `Secure`, `Path=/` and has no
    /// `Domain`, so no other host under the same domain can set or shadow it.
    fn cookie(self) -> &'static str {
        match self {
            WebRole::Consultant => "__Host-sc_session",
            WebRole::It => "__Host-sc_admin",
            WebRole::Team => "__Host-sc_team",
        }
    }

    fn channel(self) -> signin::Channel {
        match self {
            WebRole::Consultant => signin::Channel::ConsultantPage,
            WebRole::It => signin::Channel::AdminPage,
            WebRole::Team => signin::Channel::TeamPage,
        }
    }

    fn event(self) -> &'static str {
        match self {
            WebRole::Consultant => "consultant_login",
            WebRole::It => "admin_login",
            WebRole::Team => "team_login",
        }
    }
}

/// Signs a staff member of `role` in, through the check the laptops' activation uses
/// (`crate::signin`): a name whose role may not sign in here is refused as an unknown one.
pub async fn sign_in(state: &AppState, form: Login, role: WebRole) -> Result<Response, Error> {
    let now = state.now();
    let event = role.event();
    let channel = role.channel();
    let audit_refusal = |c: &crate::conn::Conn<'_>, reason: Reason, name: Option<&str>, detail: Option<String>| {
        let entry =
            audit::Entry { event, outcome: "refused", reason: Some(reason), staff: name, detail, ..Default::default() };
        audit::record(c, now, &entry)
    };
    let candidate = {
        let c = state.db();
        let candidate = signin::candidate(&c, &form.username, channel)?;
        if let Some(s) = candidate.as_ref().filter(|s| s.locked_until > now) {
            audit_refusal(&c, Reason::StaffLockedOut, Some(&s.username), None)?;
            return Err(Error::LockedOut(signin::retry_after(s.locked_until, now)));
        }
        candidate
    };
    let password_ok =
        signin::check_password(&state.hash_pools, &state.dummy_hash, channel, candidate.as_ref(), &form.password)
            .await?;
    let c = state.db();
    let attempt = signin::Attempt {
        channel,
        username: &form.username,
        code: &form.code,
        checked: candidate.as_ref(),
        password_ok,
    };
    let fresh = match signin::verdict(&c, &attempt, now, &state.config.lockout)? {
        signin::Verdict::Admit(staff) => staff,
        signin::Verdict::LockedOut { staff, until } => {
            audit_refusal(&c, Reason::StaffLockedOut, Some(&staff.username), None)?;
            return Err(Error::LockedOut(signin::retry_after(until, now)));
        }
        signin::Verdict::Refused { reason, known_name: None, .. } => {
            // A made-up name: counted, not logged one by one (`crate::tally`).
            state.tally.note(&c, now, event, reason)?;
            return Err(Error::Refused);
        }
        signin::Verdict::Refused { reason, known_name: Some(name), locked_for } => {
            let detail = locked_for.map(|secs| format!("staff locked out for {secs} s"));
            audit_refusal(&c, reason, Some(&name), detail)?;
            return Err(Error::Refused);
        }
    };
    let mut token = [0u8; 32];
    ring::rand::SecureRandom::fill(&ring::rand::SystemRandom::new(), &mut token)
        .map_err(|_| Error::Crypto("random session".into()))?;
    db::insert_web_session(&c, &token, fresh.id, now, now + state.config.web_session_secs)?;
    audit::record(&c, now, &audit::Entry { event, outcome: "ok", staff: Some(&fresh.username), ..Default::default() })?;
    let cookie = format!(
        "{}={}; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age={}",
        role.cookie(),
        URL_SAFE_NO_PAD.encode(token),
        state.config.web_session_secs
    );
    let cookie = HeaderValue::from_str(&cookie).map_err(|_| Error::Crypto("cookie".into()))?;
    Ok(([(SET_COOKIE, cookie)], Json(Me { name: fresh.display_name })).into_response())
}

fn session_token(headers: &HeaderMap, cookie: &str) -> Option<Vec<u8>> {
    headers.get_all(COOKIE).iter().filter_map(|v| v.to_str().ok()).flat_map(|v| v.split(';')).find_map(|part| {
        let (name, value) = part.trim().split_once('=')?;
        (name == cookie).then(|| URL_SAFE_NO_PAD.decode(value).ok()).flatten()
    })
}

/// The signed-in staff member of `role`, from that role's session cookie.
pub fn session(state: &AppState, headers: &HeaderMap, role: WebRole) -> Result<db::WebSession, Error> {
    session_and_hash(state, headers, role).map(|(session, _)| session)
}

/// The signed-in staff member of `role` and the hash of their session's token (what a live
/// connection is registered under, `crate::sessions`).
pub fn session_and_hash(
    state: &AppState,
    headers: &HeaderMap,
    role: WebRole,
) -> Result<(db::WebSession, Vec<u8>), Error> {
    let token = session_token(headers, role.cookie()).ok_or(Error::Unauthorized)?;
    let session = db::web_session(&state.db(), &token, state.now(), role.role())?.ok_or(Error::Unauthorized)?;
    Ok((session, db::token_hash(&token)))
}

/// Ends the session of `role` and expires its cookie.
pub fn sign_out(state: &AppState, headers: &HeaderMap, role: WebRole) -> Result<Response, Error> {
    if let Some(token) = session_token(headers, role.cookie()) {
        db::delete_web_session(&state.db(), &token)?;
        // The page's signalling connection ends with it.
        state.sessions.end_session(&db::token_hash(&token), crate::sessions::Ended::Locked);
    }
    let expired = format!("{}=; Path=/; Secure; HttpOnly; SameSite=Strict; Max-Age=0", role.cookie());
    let expired = HeaderValue::from_str(&expired).map_err(|_| Error::Crypto("cookie".into()))?;
    Ok(([(SET_COOKIE, expired)], Json(serde_json::json!({}))).into_response())
}

/// `POST /consult/login`
pub async fn login(State(state): State<AppState>, Json(form): Json<Login>) -> Result<Response, Error> {
    sign_in(&state, form, WebRole::Consultant).await
}

/// The signed-in consultant, from the session cookie.
pub fn consultant(state: &AppState, headers: &HeaderMap) -> Result<db::WebSession, Error> {
    session(state, headers, WebRole::Consultant)
}

/// `POST /consult/logout`
pub async fn logout(State(state): State<AppState>, headers: HeaderMap) -> Result<Response, Error> {
    sign_out(&state, &headers, WebRole::Consultant)
}

/// Who is signed in.
pub async fn me(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Me>, Error> {
    Ok(Json(Me { name: consultant(&state, &headers)?.name }))
}

/// Appointments overlapping the next day (and the last half-day).
pub fn upcoming(
    state: &AppState,
    prison_id: Option<i64>,
    consultant_id: Option<i64>,
) -> Result<Vec<Appointment>, Error> {
    let now = state.now();
    let rows = db::appointments_between(&state.db(), prison_id, consultant_id, now - 12 * 3600, now + 24 * 3600)?;
    Ok(rows.into_iter().map(|r| r.view).collect())
}

/// `GET /v1/consult/appointments`
pub async fn appointments(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Vec<Appointment>>, Error> {
    let me = consultant(&state, &headers)?;
    upcoming(&state, None, Some(me.staff_id)).map(Json)
}

/// How far ahead the consultant's list of bookings reaches.
pub const BOOKINGS_AHEAD_SECS: i64 = 90 * 24 * 3600;

/// `GET /v1/consult/bookings`: the consultant's bookings from now to 90 days ahead, however far
/// off (today's are also in `appointments`, with the waiting room).
pub async fn bookings(State(state): State<AppState>, headers: HeaderMap) -> Result<Json<Vec<Appointment>>, Error> {
    let me = consultant(&state, &headers)?;
    let now = state.now();
    let rows = db::appointments_between(&state.db(), None, Some(me.staff_id), now, now + BOOKINGS_AHEAD_SECS)?;
    Ok(Json(rows.into_iter().map(|r| r.view).collect()))
}

//! The HTTP surface: `app(state)` builds the router; `main` only binds it to a TLS socket.

use crate::{
    activation, admin_staff, admin_web, consult_notes, device, enrolment, kiosk_api, signal, team_web, web, AppState,
    Error,
};
use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::routing::{get, post};
use axum::{Json, Router};
use sc_proto::{ActivateResponse, EnrolResponse, Health, Signed, PROTOCOL_VERSION};

/// Requests are small JSON documents; anything bigger is not ours. Each route group has its own
/// cap: a sign-in is well under 2 KiB, a laptop's signed enrolment, hello or receipt under 4 KiB.
const BODY_LIMIT: usize = 64 * 1024;
const SIGN_IN_BODY_LIMIT: usize = 8 * 1024;
const DEVICE_BODY_LIMIT: usize = 16 * 1024;

/// The whole router. Serve it with `into_make_service_with_connect_info::<SocketAddr>()`: the
/// sign-in routes are limited per client address.
pub fn app(state: AppState) -> Router {
    // Every route where a password is tried, each limited per source.
    let sign_in = Router::new()
        .route("/consult/login", post(web::login))
        .route("/admin/login", post(admin_web::login))
        .route("/team/login", post(team_web::login))
        .route_layer(axum::middleware::from_fn_with_state(state.sign_in_limiter.clone(), limit))
        .merge(
            Router::new()
                .route("/v1/activate", post(activate))
                .route_layer(axum::middleware::from_fn_with_state(state.activation_limiter.clone(), limit)),
        )
        .layer(DefaultBodyLimit::max(SIGN_IN_BODY_LIMIT));
    let device = Router::new()
        .route("/v1/enrol", post(enrol))
        .route("/v1/device/poll", post(device::poll))
        .route("/v1/device/receipt", post(device::receipt))
        .layer(DefaultBodyLimit::max(DEVICE_BODY_LIMIT));
    Router::new()
        .merge(sign_in)
        .merge(device)
        .route("/v1/health", get(health))
        .route("/v1/device/channel", get(device::channel))
        .route("/v1/kiosk/appointments", get(kiosk_api::appointments))
        .route("/v1/kiosk/outcome-notes", get(kiosk_api::outcome_notes))
        .route("/v1/kiosk/end-session", post(kiosk_api::end_session))
        .route("/v1/kiosk/signal", get(signal::kiosk))
        .route("/consult/", get(web::page))
        .route("/consult/app.js", get(web::script))
        .route("/consult/style.css", get(web::style))
        .route("/consult/common.js", get(web::common_script))
        .route("/consult/share.js", get(web::share_script))
        .route("/consult/logout", post(web::logout))
        .route("/v1/consult/me", get(web::me))
        .route("/v1/consult/appointments", get(web::appointments))
        .route("/v1/consult/bookings", get(web::bookings))
        .route("/v1/consult/signal", get(signal::consultant))
        .route("/v1/consult/appointments/{id}/note", post(consult_notes::send))
        .route("/v1/consult/notes", get(consult_notes::list))
        .route("/v1/consult/notes/{id}", get(consult_notes::read))
        .route("/v1/consult/notes/{id}/addendum", post(consult_notes::addendum))
        .route("/admin/", get(admin_web::page))
        .route("/admin/admin.js", get(admin_web::script))
        .route("/admin/style.css", get(web::style))
        .route("/admin/common.js", get(web::common_script))
        .route("/admin/logout", post(admin_web::logout))
        .route("/v1/admin/me", get(admin_web::me))
        .route("/v1/admin/devices", get(admin_web::devices))
        .route("/v1/admin/devices/{id}/brick", post(admin_web::brick))
        .route("/v1/admin/bricks", get(admin_web::bricks))
        .route("/v1/admin/staff", get(admin_staff::list))
        .route("/v1/admin/staff/{username}/disable", post(admin_staff::disable))
        .route("/v1/admin/staff/{username}/password", post(admin_staff::reset_password))
        .route("/v1/admin/staff/{username}/totp", post(admin_staff::reset_totp))
        .route("/v1/admin/staff/{username}/unlock", post(admin_staff::lift_lockout))
        .route("/v1/admin/audit", get(admin_web::audit_log))
        .route("/team/", get(team_web::page))
        .route("/team/team.js", get(team_web::script))
        .route("/team/style.css", get(web::style))
        .route("/team/common.js", get(web::common_script))
        .route("/team/logout", post(team_web::logout))
        .route("/v1/team/me", get(team_web::me))
        .route("/v1/team/consultants", get(team_web::consultants))
        .route("/v1/team/appointments", get(team_web::appointments).post(team_web::book))
        .route("/v1/team/appointments/{id}/reschedule", post(team_web::reschedule))
        .route("/v1/team/appointments/{id}/cancel", post(team_web::cancel))
        .route("/v1/team/notes", get(team_web::list_notes))
        .route("/v1/team/notes/{id}", get(team_web::read_note))
        .route("/v1/team/notes/{id}/acknowledge", post(team_web::acknowledge))
        .route("/v1/team/notes/{id}/fhir", get(team_web::export_note))
        .layer(DefaultBodyLimit::max(BODY_LIMIT))
        .layer(axum::middleware::map_response(security_headers))
        .with_state(state)
}

/// A per-source limit (`limits`) in front of a group of sign-in routes.
async fn limit(
    State(limiter): State<std::sync::Arc<crate::limits::SignInLimiter>>,
    req: axum::extract::Request,
    next: axum::middleware::Next,
) -> axum::response::Response {
    use axum::response::IntoResponse as _;
    match limiter.check_request(&req) {
        Ok(()) => next.run(req).await,
        Err(e) => {
            limiter.hold_refusal().await;
            e.into_response()
        }
    }
}

/// On every answer, errors and unknown paths included: HTTPS only from now on (HSTS; the server
/// has no plain-HTTP side), nothing stored by a browser or proxy (the staff pages and the
/// laptops' API carry names and appointments), no content sniffing.
async fn security_headers(mut resp: axum::response::Response) -> axum::response::Response {
    use axum::http::header::{CACHE_CONTROL, STRICT_TRANSPORT_SECURITY, X_CONTENT_TYPE_OPTIONS};
    use axum::http::HeaderValue;
    let h = resp.headers_mut();
    h.insert(STRICT_TRANSPORT_SECURITY, HeaderValue::from_static("max-age=31536000"));
    h.insert(CACHE_CONTROL, HeaderValue::from_static("no-store"));
    h.insert(X_CONTENT_TYPE_OPTIONS, HeaderValue::from_static("nosniff"));
    resp
}

async fn health() -> Json<Health> {
    Json(Health { status: "ok".into(), version: PROTOCOL_VERSION })
}

fn parse_signed(body: &[u8]) -> Result<Signed, Error> {
    serde_json::from_slice(body).map_err(|e| Error::BadRequest(format!("signed request: {e}")))
}

async fn enrol(State(state): State<AppState>, body: Bytes) -> Result<Json<EnrolResponse>, Error> {
    let signed = parse_signed(&body)?;
    enrolment::enrol(&state, &signed).map(Json)
}

async fn activate(State(state): State<AppState>, body: Bytes) -> Result<Json<ActivateResponse>, Error> {
    let signed = parse_signed(&body)?;
    activation::activate(&state, &signed).await.map(Json)
}

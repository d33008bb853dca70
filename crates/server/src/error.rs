//! The server's one error type, and how each kind reaches an HTTP client.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use sc_proto::Refusal;

/// Everything the server can fail with.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The request is malformed; the text says how (never secret).
    #[error("bad request: {0}")]
    BadRequest(String),
    /// The request is refused; the reason went to the audit log only.
    #[error("refused")]
    Refused,
    /// Too many failures: retry after this many seconds.
    #[error("locked out for {0} s")]
    LockedOut(u64),
    /// Too many sign-in attempts from one network: retry after this many seconds.
    #[error("rate limited for {0} s")]
    RateLimited(u64),
    /// The device is bricked: here is its signed command (bound to the request's challenge).
    #[error("bricked")]
    Bricked(Box<sc_proto::Signed>),
    /// The laptop's posture fails its prison's policy: what the nurse reads, one sentence per
    /// failing item (the audit log records the items).
    #[error("posture refused: {0}")]
    Posture(String),
    /// No valid session: sign in first.
    #[error("not signed in")]
    Unauthorized,
    /// A named thing does not exist (admin operations).
    #[error("{0} not found")]
    NotFound(String),
    /// A named thing already exists (admin operations).
    #[error("{0} already exists")]
    Conflict(String),
    /// The request cannot be done in the thing's present state; the text says why and what to do.
    #[error("{0}")]
    NotNow(String),
    /// The database failed.
    #[error("database: {0}")]
    Db(#[from] crate::store::Error),
    /// A file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The configuration is invalid.
    #[error("configuration: {0}")]
    Config(String),
    /// A cryptographic operation failed.
    #[error("crypto: {0}")]
    Crypto(String),
    /// The rooms shared with the other instances (crate::bus) failed.
    #[error("the instances' rooms: {0}")]
    Bus(String),
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub fn io(what: impl Into<String>) -> impl FnOnce(std::io::Error) -> Error {
        let what = what.into();
        move |source| Error::Io { what, source }
    }
}

impl IntoResponse for Error {
    fn into_response(self) -> Response {
        let (status, body) = match self {
            Error::BadRequest(message) => (StatusCode::BAD_REQUEST, Refusal::BadRequest { message }),
            Error::Refused => (StatusCode::FORBIDDEN, Refusal::Refused),
            Error::LockedOut(retry_after_secs) => {
                (StatusCode::TOO_MANY_REQUESTS, Refusal::LockedOut { retry_after_secs })
            }
            Error::RateLimited(retry_after_secs) => {
                let mut resp =
                    (StatusCode::TOO_MANY_REQUESTS, axum::Json(Refusal::Busy { retry_after_secs })).into_response();
                resp.headers_mut().insert(axum::http::header::RETRY_AFTER, retry_after_secs.into());
                return resp;
            }
            Error::Bricked(command) => (StatusCode::GONE, Refusal::Bricked { command: *command }),
            Error::Posture(message) => (StatusCode::FORBIDDEN, Refusal::Posture { message }),
            Error::Unauthorized => (StatusCode::UNAUTHORIZED, Refusal::BadRequest { message: "sign in first".into() }),
            Error::Conflict(what) => {
                (StatusCode::CONFLICT, Refusal::BadRequest { message: format!("{what} already exists") })
            }
            Error::NotNow(message) => (StatusCode::CONFLICT, Refusal::BadRequest { message }),
            Error::NotFound(what) => {
                (StatusCode::NOT_FOUND, Refusal::BadRequest { message: format!("{what} not found") })
            }
            internal => {
                // Internal causes are logged, never shown: they may name files or SQL.
                tracing::error!(error = %internal, "internal error");
                (StatusCode::INTERNAL_SERVER_ERROR, Refusal::BadRequest { message: "internal error".into() })
            }
        };
        (status, axum::Json(body)).into_response()
    }
}

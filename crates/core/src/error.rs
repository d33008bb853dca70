//! The kiosk core's one error type.

/// Everything that can go wrong in the kiosk core. Messages are safe to show and to log:
/// none carries a secret.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The laptop has not been enrolled (no enrolment record in its data directory).
    #[error("this laptop is not enrolled")]
    NotEnrolled,
    /// The laptop is already enrolled; enrolling again would orphan its sealed config.
    #[error("this laptop is already enrolled as device {0}")]
    AlreadyEnrolled(String),
    /// No OS keystore (Secret Service) could be reached; there is deliberately no file fallback.
    #[error("the OS keystore is not available: {0}")]
    KeystoreUnavailable(String),
    /// The keystore answered but the device's secrets are missing or malformed.
    #[error("the device's keys are missing from the OS keystore")]
    KeysMissing,
    /// The healthcare server could not be reached (network down, server stopped, timeout).
    #[error("cannot reach the healthcare server")]
    Unreachable,
    /// The server's TLS certificate is not the one pinned at enrolment.
    #[error("the server's certificate is not the pinned one")]
    UntrustedServer,
    /// The server refused the request; its audit log holds the reason.
    #[error("refused by the healthcare server")]
    Refused,
    /// The laptop's posture fails its prison's policy; what the nurse reads (the server's words:
    /// what is wrong and what to do).
    #[error("{0}")]
    PostureRefused(String),
    /// Too many failed attempts; try again after this many seconds.
    #[error("locked out for {0} seconds")]
    LockedOut(u64),
    /// The server is limiting requests from this network; try again after this many seconds.
    #[error("the healthcare server is busy: try again in {0} seconds")]
    ServerBusy(u64),
    /// The server answered with something that is not the protocol.
    #[error("unexpected answer from the server: {0}")]
    Protocol(String),
    /// The recovered key did not open the sealed config (wrong key, or the file was altered).
    #[error("the sealed config could not be opened")]
    SealBroken,
    /// A local file is malformed.
    #[error("{what} is malformed: {why}")]
    Corrupt {
        /// Which file.
        what: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The enrolment token does not have the expected shape.
    #[error("the enrolment token is malformed")]
    BadToken,
    /// The laptop is locked: this needs a signed-in session.
    #[error("the laptop is locked")]
    Locked,
    /// The state machine was asked for a transition that does not apply now.
    #[error("not possible now: {0}")]
    InvalidState(&'static str),
    /// A local file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The underlying error.
        source: std::io::Error,
    },
    /// A cryptographic primitive failed (random source, key parsing).
    #[error("cryptographic failure: {0}")]
    Crypto(&'static str),
    /// A brick command did not verify; nothing was wiped.
    #[error("a wipe command was refused: {0}")]
    BadCommand(&'static str),
    /// The laptop has been disabled (wiped); nothing more is possible.
    #[error("this laptop has been disabled")]
    Disabled,
}

impl Error {
    /// Wraps an I/O error with what was being done.
    pub(crate) fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> Error {
        move |source| Error::Io { what, source }
    }
}

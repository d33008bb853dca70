//! The call engine's one error type.

/// What can go wrong in a call. Messages are safe to show.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// The WebRTC stack refused an operation.
    #[error("WebRTC: {0}")]
    WebRtc(String),
    /// The other side sent something that does not fit the call's state.
    #[error("unexpected signalling message: {0}")]
    Signalling(String),
    /// A codec could not be set up or failed.
    #[error("codec: {0}")]
    Codec(String),
    /// No TURN server was given: the kiosk only ever talks through the relay.
    #[error("no relay (TURN) server was given for this call")]
    NoRelay,
    /// A `turns:` relay could not be reached or did not prove who it is.
    #[error("the relay could not be reached: {0}")]
    Relay(String),
    /// The call has ended.
    #[error("the call has ended")]
    Ended,
}

impl Error {
    pub(crate) fn webrtc(e: impl std::fmt::Display) -> Self {
        Error::WebRtc(e.to_string())
    }
}

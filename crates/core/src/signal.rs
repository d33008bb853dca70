//! The kiosk's signalling connection: a WebSocket over TLS pinned to the care server's CA,
//! authenticated by the unlocked session's bearer token, carrying typed messages.

use crate::client::SessionToken;
use crate::record::EnrolmentRecord;
use crate::{tls, Error};
use futures_util::{SinkExt as _, StreamExt as _};
use sc_proto::signal::{FromServer, ToServer};
use std::sync::Arc;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

pub(crate) type Stream = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Opens a WebSocket to `path` on the enrolled server over the pinned TLS, with the session's
/// bearer token when given.
pub(crate) async fn open(
    record: &EnrolmentRecord,
    path: &str,
    session: Option<&SessionToken>,
) -> Result<Stream, Error> {
    let url = record
        .server_url
        .strip_prefix("https://")
        .map(|rest| format!("wss://{}{path}", rest.trim_end_matches('/')))
        .ok_or_else(|| Error::Corrupt { what: "the enrolment record", why: "the server URL is not https".into() })?;
    let mut request = url.into_client_request().map_err(|e| Error::Protocol(format!("WebSocket URL: {e}")))?;
    if let Some(session) = session {
        let bearer = session.bearer();
        let value = bearer.parse().map_err(|_| Error::Crypto("bearer header"))?;
        request.headers_mut().insert("authorization", value);
    }
    let connector = Connector::Rustls(Arc::new(tls::pinned(&record.ca_cert.0)?));
    let config = WebSocketConfig::default().max_message_size(Some(64 * 1024));
    let (ws, _) = tokio_tungstenite::connect_async_tls_with_config(request, Some(config), true, Some(connector))
        .await
        .map_err(|e| match e {
            tokio_tungstenite::tungstenite::Error::Http(resp) if resp.status() == 401 => Error::Refused,
            tokio_tungstenite::tungstenite::Error::Io(io) if crate::client::is_certificate_error(&io) => {
                Error::UntrustedServer
            }
            tokio_tungstenite::tungstenite::Error::Tls(_) => Error::UntrustedServer,
            other => {
                tracing::debug!(error = %other, "WebSocket connection failed");
                Error::Unreachable
            }
        })?;
    Ok(ws)
}

/// An open signalling connection.
#[derive(Debug)]
pub struct Signalling {
    ws: Stream,
}

/// What arrived.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Incoming {
    /// A well-formed message.
    Message(FromServer),
    /// Something that is not a signalling message (logged and skipped by callers).
    Garbled(String),
    /// A ping or the answer to [`Signalling::ping`]: the server is reachable right now.
    Alive,
}

impl Signalling {
    /// Connects to `/v1/kiosk/signal` on the enrolled server.
    pub async fn connect(record: &EnrolmentRecord, session: &SessionToken) -> Result<Self, Error> {
        Ok(Signalling { ws: open(record, "/v1/kiosk/signal", Some(session)).await? })
    }

    /// Sends a message.
    pub async fn send(&mut self, msg: &ToServer) -> Result<(), Error> {
        let json = serde_json::to_string(msg).map_err(|e| Error::Protocol(e.to_string()))?;
        self.ws.send(Message::Text(json.into())).await.map_err(|_| Error::Unreachable)
    }

    /// Asks the server for a sign of life (its answer comes as [`Incoming::Alive`]).
    pub async fn ping(&mut self) -> Result<(), Error> {
        self.ws.send(Message::Ping(Vec::new().into())).await.map_err(|_| Error::Unreachable)
    }

    /// Sends raw text (tests use it to send garbage).
    pub async fn send_raw(&mut self, text: &str) -> Result<(), Error> {
        self.ws.send(Message::Text(text.to_owned().into())).await.map_err(|_| Error::Unreachable)
    }

    /// The next message; `None` when the connection closed.
    pub async fn recv(&mut self) -> Option<Incoming> {
        loop {
            match self.ws.next().await? {
                Ok(Message::Text(t)) => {
                    return Some(match serde_json::from_str(t.as_str()) {
                        Ok(m) => Incoming::Message(m),
                        Err(e) => Incoming::Garbled(e.to_string()),
                    })
                }
                Ok(Message::Close(_)) | Err(_) => return None,
                // Pings are answered by tungstenite itself; both show the server is there.
                Ok(Message::Ping(_) | Message::Pong(_)) => return Some(Incoming::Alive),
                Ok(_) => {}
            }
        }
    }

    /// Closes politely.
    pub async fn close(mut self) {
        let _ = self.ws.close(None).await;
    }
}

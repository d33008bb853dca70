//! The kiosk's HTTPS client for the care server: pinned TLS, no proxies, short timeouts, and
//! server answers mapped onto the core's error type.

use crate::record::EnrolmentRecord;
use crate::{tls, Error};
use sc_proto::brick::{ChannelDown, ReceiptAck};
use sc_proto::signal::Appointment;
use sc_proto::{ActivateResponse, EnrolResponse, Health, Refusal, Signed};
use serde::de::DeserializeOwned;
use std::time::Duration;
use zeroize::Zeroizing;

/// An unlocked laptop's bearer token; wiped on drop, never printed.
#[derive(Clone)]
pub struct SessionToken(Zeroizing<[u8; 32]>);

impl SessionToken {
    /// Wraps token bytes.
    pub fn new(bytes: [u8; 32]) -> Self {
        SessionToken(Zeroizing::new(bytes))
    }

    /// The `Authorization` header value.
    pub fn bearer(&self) -> Zeroizing<String> {
        use base64::Engine as _;
        Zeroizing::new(format!("Bearer {}", base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(self.0.as_ref())))
    }
}

/// Two tokens are equal when their bytes are (the kiosk compares its own tokens, never an
/// attacker's guess, so the comparison need not be constant-time).
impl PartialEq for SessionToken {
    fn eq(&self, other: &Self) -> bool {
        *self.0 == *other.0
    }
}

impl Eq for SessionToken {}

impl std::fmt::Debug for SessionToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SessionToken(..)")
    }
}

/// A client for the enrolled server, pinned to the CA in its record.
pub fn client_for(record: &EnrolmentRecord) -> Result<CareClient, Error> {
    CareClient::new(&record.server_url, tls::pinned(&record.ca_cert.0)?)
}

/// The server's answer to an activation: the key released, or a brick command instead (a laptop
/// IT staff disabled learns it when someone tries to sign in).
#[derive(Debug)]
#[non_exhaustive]
pub enum ActivateAnswer {
    /// The evaluated point, the staff member and a session token.
    Released(ActivateResponse),
    /// The signed brick command (still to be verified against the request's nonce).
    Bricked(Box<Signed>),
}

/// A connection to one care server.
#[derive(Debug, Clone)]
pub struct CareClient {
    http: reqwest::Client,
    base: String,
}

impl CareClient {
    /// A client that trusts only what `tls` trusts (see [`crate::tls`]).
    pub fn new(base_url: &str, tls: rustls::ClientConfig) -> Result<Self, Error> {
        let http = reqwest::Client::builder()
            .tls_backend_preconfigured(tls)
            // The laptop talks only to approved endpoints: never through a system proxy.
            .no_proxy()
            .https_only(true)
            .connect_timeout(Duration::from_secs(5))
            .timeout(Duration::from_secs(20))
            .build()
            .map_err(|e| Error::Protocol(format!("building the HTTPS client: {e}")))?;
        Ok(CareClient { http, base: base_url.trim_end_matches('/').to_owned() })
    }

    /// `GET /v1/health`.
    pub async fn health(&self) -> Result<Health, Error> {
        let resp = self.http.get(format!("{}/v1/health", self.base)).send().await.map_err(classify)?;
        decode(resp).await
    }

    /// `POST /v1/enrol`.
    pub async fn enrol(&self, signed: &Signed) -> Result<EnrolResponse, Error> {
        self.post("/v1/enrol", signed).await
    }

    /// `POST /v1/activate`.
    pub async fn activate(&self, signed: &Signed) -> Result<ActivateAnswer, Error> {
        let resp = self.send_post("/v1/activate", signed).await?;
        match answer(resp).await? {
            Ok(released) => Ok(ActivateAnswer::Released(released)),
            Err(Refusal::Bricked { command }) => Ok(ActivateAnswer::Bricked(Box::new(command))),
            Err(refusal) => Err(refused(refusal)),
        }
    }

    /// `POST /v1/device/poll`: a signed hello; the answer is "ok" or a brick command.
    pub async fn poll(&self, hello: &Signed) -> Result<ChannelDown, Error> {
        self.post("/v1/device/poll", hello).await
    }

    /// `POST /v1/device/receipt`: a wiped laptop's signed receipt.
    pub async fn receipt(&self, receipt: &Signed) -> Result<ReceiptAck, Error> {
        self.post("/v1/device/receipt", receipt).await
    }

    /// `GET /v1/kiosk/appointments`: this prison's appointments around now.
    pub async fn appointments(&self, session: &SessionToken) -> Result<Vec<Appointment>, Error> {
        self.kiosk_get("/v1/kiosk/appointments", session).await
    }

    /// `GET /v1/kiosk/outcome-notes`: how many of this prison's outcome notes await its team.
    pub async fn outcome_notes(&self, session: &SessionToken) -> Result<sc_proto::signal::OutcomeNotes, Error> {
        self.kiosk_get("/v1/kiosk/outcome-notes", session).await
    }

    /// A GET of the unlocked laptop's API; a refused session is `Error::Refused`.
    async fn kiosk_get<T: serde::de::DeserializeOwned>(&self, path: &str, session: &SessionToken) -> Result<T, Error> {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .header(reqwest::header::AUTHORIZATION, session.bearer().as_str())
            .send()
            .await
            .map_err(classify)?;
        if resp.status() == reqwest::StatusCode::UNAUTHORIZED {
            return Err(Error::Refused);
        }
        decode(resp).await
    }

    /// `POST /v1/kiosk/end-session`: best effort when the laptop locks.
    pub async fn end_session(&self, session: &SessionToken) -> Result<(), Error> {
        self.http
            .post(format!("{}/v1/kiosk/end-session", self.base))
            .header(reqwest::header::AUTHORIZATION, session.bearer().as_str())
            .send()
            .await
            .map_err(classify)?;
        Ok(())
    }

    async fn send_post(&self, path: &str, body: &Signed) -> Result<reqwest::Response, Error> {
        self.http.post(format!("{}{path}", self.base)).json(body).send().await.map_err(classify)
    }

    async fn post<T: DeserializeOwned>(&self, path: &str, body: &Signed) -> Result<T, Error> {
        decode(self.send_post(path, body).await?).await
    }
}

/// The reply, or the server's refusal as it sent it (transport and parse failures are errors).
async fn answer<T: DeserializeOwned>(resp: reqwest::Response) -> Result<Result<T, Refusal>, Error> {
    let status = resp.status();
    let bytes = resp.bytes().await.map_err(classify)?;
    if status.is_success() {
        return serde_json::from_slice(&bytes).map(Ok).map_err(|e| Error::Protocol(format!("bad reply: {e}")));
    }
    serde_json::from_slice::<Refusal>(&bytes).map(Err).map_err(|_| Error::Protocol(format!("HTTP {status}")))
}

async fn decode<T: DeserializeOwned>(resp: reqwest::Response) -> Result<T, Error> {
    answer(resp).await?.map_err(refused)
}

fn refused(refusal: Refusal) -> Error {
    match refusal {
        Refusal::Refused => Error::Refused,
        Refusal::LockedOut { retry_after_secs } => Error::LockedOut(retry_after_secs),
        Refusal::Busy { retry_after_secs } => Error::ServerBusy(retry_after_secs),
        Refusal::BadRequest { message } => Error::Protocol(message),
        // The server's sentences, cut to a length a lock screen can show.
        Refusal::Posture { message } => Error::PostureRefused(message.chars().take(600).collect()),
        // Only an activation is answered with a brick (see `CareClient::activate`).
        other => Error::Protocol(format!("refusal {other:?}")),
    }
}

/// A certificate problem is an untrusted server; everything else at the transport is unreachable.
pub(crate) fn classify(e: reqwest::Error) -> Error {
    if is_certificate_error(&e) {
        return Error::UntrustedServer;
    }
    tracing::debug!(error = %e, "care server unreachable");
    Error::Unreachable
}

/// Walks an error chain looking for a rustls certificate error. `io::Error` hides what it wraps
/// from `source()`, so it is opened with `get_ref()` (hyper nests one inside another).
pub(crate) fn is_certificate_error(e: &(dyn std::error::Error + 'static)) -> bool {
    if let Some(tls) = e.downcast_ref::<rustls::Error>() {
        return matches!(tls, rustls::Error::InvalidCertificate(_));
    }
    if let Some(inner) = e.downcast_ref::<std::io::Error>().and_then(|io| io.get_ref()) {
        if is_certificate_error(inner) {
            return true;
        }
    }
    e.source().is_some_and(is_certificate_error)
}

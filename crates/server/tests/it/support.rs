//! A server with a database of its own (in-memory SQLite, or PostgreSQL when
//! SC_TEST_DATABASE_URL names a cluster) and a clock the test moves, plus a simulated laptop that
//! signs requests exactly as the kiosk does.

use axum::body::Body;
use axum::http::{Request, StatusCode};
use http_body_util::BodyExt as _;
use ring::rand::SystemRandom;
use ring::signature::{Ed25519KeyPair, KeyPair as _};
use sc_proto::{ActivatePayload, Bytes, DeviceId, EnrolPayload, EnrolResponse, Posture, Signed};
use sc_server::config::ServerConfig;
use sc_server::{admin, audit, AppState};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::Arc;
use tower::ServiceExt as _;

pub const PASSWORD: &str = "correct horse battery staple";
pub const START: i64 = 1_800_000_000;

pub struct Harness {
    pub state: AppState,
    pub clock: Arc<AtomicI64>,
    pub ca_der: Vec<u8>,
    // After `state`: the scratch PostgreSQL database (SC_TEST_DATABASE_URL), dropped last.
    _scratch: Option<sc_server::scratch::Scratch>,
}

/// A fresh command-signing key.
pub fn command_key() -> Arc<ring::signature::Ed25519KeyPair> {
    let rng = ring::rand::SystemRandom::new();
    let pkcs8 = ring::signature::Ed25519KeyPair::generate_pkcs8(&rng).expect("generate");
    Arc::new(ring::signature::Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("parse"))
}

pub fn posture() -> Posture {
    Posture {
        app_version: "0.1.0".into(),
        os: "Debian".into(),
        os_version: "12".into(),
        kernel: "6".into(),
        uptime_secs: 1,
        ..Posture::default()
    }
}

impl Harness {
    /// The default configuration, but with sign-in rate limits out of the way (every request
    /// here comes from one address); `sign_in_limits` tests them.
    pub fn new() -> Self {
        let mut config = ServerConfig::default();
        config.sign_in.burst = 10_000;
        config.sign_in.laptop_burst = 10_000;
        Self::with_config(config)
    }

    pub fn with_config(config: ServerConfig) -> Self {
        let clock = Arc::new(AtomicI64::new(START));
        let c = clock.clone();
        let (store, scratch) = sc_server::scratch::test_store().expect("db");
        let state =
            AppState::new(store, config, command_key(), Arc::new(move || c.load(Ordering::SeqCst))).expect("state");
        Harness { state, clock, ca_der: b"test CA".to_vec(), _scratch: scratch }
    }

    pub fn now(&self) -> i64 {
        self.clock.load(Ordering::SeqCst)
    }

    pub fn advance(&self, secs: i64) {
        self.clock.fetch_add(secs, Ordering::SeqCst);
    }

    pub fn add_prison(&self, name: &str) {
        admin::add_prison(&self.state.db(), name, self.now()).expect("prison");
    }

    /// Adds a staff member; returns the TOTP secret.
    pub fn add_staff(&self, username: &str, role: &str, prison: Option<&str>) -> String {
        let spec = admin::StaffSpec { username, display_name: username, role, prison, hospital: None };
        admin::add_staff(&self.state.db(), &self.state.config, spec, PASSWORD, self.now()).expect("staff").totp_secret
    }

    pub fn token(&self, prison: &str) -> String {
        let token = admin::issue_enrol_token(&self.state.db(), &self.ca_der, prison, 3600, self.now()).expect("token");
        token.split('.').nth(1).expect("secret part").to_owned()
    }

    pub async fn post(&self, path: &str, body: Vec<u8>) -> (StatusCode, serde_json::Value) {
        let req =
            Request::post(path).header("content-type", "application/json").body(Body::from(body)).expect("request");
        let resp = sc_server::app(self.state.clone()).oneshot(req).await.expect("infallible");
        let status = resp.status();
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    /// A POST from the client address `from`, as a socket would report it; returns the status,
    /// the `Retry-After` header and the JSON answer.
    pub async fn post_from(
        &self,
        from: &str,
        path: &str,
        body: Vec<u8>,
    ) -> (StatusCode, Option<String>, serde_json::Value) {
        let addr: std::net::SocketAddr = format!("{from}:40000").parse().expect("address");
        let req = Request::post(path)
            .header("content-type", "application/json")
            .extension(axum::extract::ConnectInfo(addr))
            .body(Body::from(body))
            .expect("request");
        let resp = sc_server::app(self.state.clone()).oneshot(req).await.expect("infallible");
        let status = resp.status();
        let retry = resp.headers().get("retry-after").map(|v| v.to_str().expect("ascii").to_owned());
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, retry, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    /// Every audit row, oldest first.
    pub fn audit_rows(&self) -> Vec<sc_server::audit::Row> {
        audit::tail(&self.state.db(), 10_000).expect("audit")
    }

    /// Any request, with an optional `Cookie` header and JSON body; returns the status, the
    /// `Set-Cookie` value (if any) and the JSON answer.
    pub async fn call(
        &self,
        method: &str,
        path: &str,
        cookie: Option<&str>,
        body: Option<serde_json::Value>,
    ) -> (StatusCode, Option<String>, serde_json::Value) {
        let mut req = Request::builder().method(method).uri(path);
        if let Some(cookie) = cookie {
            req = req.header("cookie", cookie);
        }
        let body = match body {
            Some(json) => {
                req = req.header("content-type", "application/json");
                Body::from(serde_json::to_vec(&json).expect("json"))
            }
            None => Body::empty(),
        };
        let resp =
            sc_server::app(self.state.clone()).oneshot(req.body(body).expect("request")).await.expect("infallible");
        let status = resp.status();
        let set_cookie = resp.headers().get("set-cookie").map(|v| v.to_str().expect("ascii").to_owned());
        let bytes = resp.into_body().collect().await.expect("body").to_bytes();
        (status, set_cookie, serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null))
    }

    /// Signs `username` in at `/admin/login` or `/consult/login`; returns the `name=value` cookie.
    pub async fn sign_in(
        &self,
        path: &str,
        username: &str,
        secret: &str,
    ) -> Result<String, (StatusCode, serde_json::Value)> {
        let form = serde_json::json!({ "username": username, "password": PASSWORD, "code": self.code(secret) });
        let (status, cookie, body) = self.call("POST", path, None, Some(form)).await;
        // Each sign-in spends the current TOTP step; the next one needs a fresh code.
        self.advance(30);
        match (status, cookie) {
            (StatusCode::OK, Some(c)) => Ok(c.split(';').next().expect("name=value").to_owned()),
            _ => Err((status, body)),
        }
    }

    pub async fn enrol(&self, prison: &str) -> Laptop {
        let token = self.token(prison);
        let laptop = Laptop::new_key();
        let (status, body) = self.post("/v1/enrol", laptop.enrol_request(&token)).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let reply: EnrolResponse = serde_json::from_value(body).expect("enrol reply");
        laptop.with(reply)
    }

    /// (event, outcome, reason) of every audit row, oldest first.
    pub fn audit(&self) -> Vec<(String, String, Option<String>)> {
        audit::tail(&self.state.db(), 10_000)
            .expect("audit")
            .into_iter()
            .map(|r| (r.event, r.outcome, r.reason))
            .collect()
    }

    pub fn last_reason(&self) -> Option<String> {
        self.audit().last().and_then(|r| r.2.clone())
    }

    pub fn code(&self, secret: &str) -> String {
        sc_server::auth::totp_code(secret, self.now()).expect("code")
    }
}

pub struct Laptop {
    pub key: Ed25519KeyPair,
    pub id: Option<DeviceId>,
    pub exchange_public: [u8; 32],
    pub client_public: [u8; 32],
    pub shared_key: [u8; 32],
}

impl Laptop {
    pub fn new_key() -> Self {
        let pkcs8 = Ed25519KeyPair::generate_pkcs8(&SystemRandom::new()).expect("key");
        Laptop {
            key: Ed25519KeyPair::from_pkcs8(pkcs8.as_ref()).expect("key"),
            id: None,
            exchange_public: [0; 32],
            client_public: [0; 32],
            shared_key: [0; 32],
        }
    }

    fn with(mut self, reply: EnrolResponse) -> Self {
        let (c, k) = sc_keyx::provision(&reply.exchange_public.0).expect("provision");
        self.id = Some(reply.device_id);
        self.exchange_public = reply.exchange_public.0;
        self.client_public = c;
        self.shared_key = *k;
        self
    }

    pub fn id(&self) -> DeviceId {
        self.id.clone().expect("enrolled")
    }

    pub fn sign(&self, context: &[u8], payload: Vec<u8>) -> Signed {
        let sig = self.key.sign(&sc_proto::signing_input(context, &payload));
        Signed { payload: Bytes(payload), signature: Bytes(sig.as_ref().try_into().expect("64 bytes")) }
    }

    pub fn enrol_request(&self, token: &str) -> Vec<u8> {
        let payload = EnrolPayload {
            version: 1,
            token: token.into(),
            device_public_key: Bytes(self.key.public_key().as_ref().try_into().expect("32 bytes")),
            hostname: "test-laptop".into(),
            posture: posture(),
            asset_tag: "HMP Alpha laptop 3".into(),
            serial: "PF2ABCDE".into(),
        };
        let signed = self.sign(sc_proto::SIG_CONTEXT_ENROL, serde_json::to_vec(&payload).expect("json"));
        serde_json::to_vec(&signed).expect("json")
    }

    /// A signed activation; returns the request body and the blinding to finish with.
    pub fn activation(&self, user: &str, password: &str, code: &str, timestamp: i64) -> (Vec<u8>, sc_keyx::Blinding) {
        let (blinding, x) = sc_keyx::Blinding::blind(&self.client_public).expect("blind");
        let mut nonce = [0u8; 16];
        ring::rand::SecureRandom::fill(&SystemRandom::new(), &mut nonce).expect("rng");
        let payload = ActivatePayload {
            version: 1,
            device_id: self.id(),
            nonce: Bytes(nonce),
            timestamp,
            username: user.into(),
            password: password.into(),
            totp: code.into(),
            blinded: Bytes(x),
            posture: posture(),
        };
        let signed = self.sign(sc_proto::SIG_CONTEXT_ACTIVATE, serde_json::to_vec(&payload).expect("json"));
        (serde_json::to_vec(&signed).expect("json"), blinding)
    }
}

pub fn refused() -> serde_json::Value {
    serde_json::json!({ "error": "refused" })
}

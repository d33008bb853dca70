//! A scripted consultant: signs in over HTTPS and speaks the signalling protocol over a WebSocket,
//! exactly as the consultant page does (cookie session, same-origin `Origin`).

use futures_util::{SinkExt as _, StreamExt as _};
use sc_proto::signal::{FromServer, ToServer};
use std::sync::Arc;
use std::time::Duration;
use tokio_tungstenite::tungstenite::client::IntoClientRequest as _;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::{Connector, MaybeTlsStream, WebSocketStream};

type Stream = WebSocketStream<MaybeTlsStream<tokio::net::TcpStream>>;

/// Signs in; returns the `Cookie` header value.
pub async fn login(url: &str, ca: &[u8], username: &str, code: &str) -> Result<String, (u16, serde_json::Value)> {
    login_at(url, ca, "/consult/login", username, code).await
}

/// Signs in at `path` (`/consult/login` or `/admin/login`); returns the `Cookie` header value.
pub async fn login_at(
    url: &str,
    ca: &[u8],
    path: &str,
    username: &str,
    code: &str,
) -> Result<String, (u16, serde_json::Value)> {
    let client = reqwest::Client::builder()
        .tls_backend_preconfigured(sc_core::tls::pinned(ca).expect("tls"))
        .no_proxy()
        .build()
        .expect("client");
    let resp = client
        .post(format!("{url}{path}"))
        .json(&serde_json::json!({ "username": username, "password": crate::PASSWORD, "code": code }))
        .send()
        .await
        .expect("login request");
    let status = resp.status().as_u16();
    let cookie = resp.headers().get("set-cookie").and_then(|v| v.to_str().ok()).map(str::to_owned);
    let body: serde_json::Value = resp.json().await.unwrap_or_default();
    match cookie {
        Some(c) if status == 200 => Ok(c.split(';').next().unwrap_or_default().to_owned()),
        _ => Err((status, body)),
    }
}

/// An open consultant signalling connection.
#[derive(Debug)]
pub struct Consultant {
    ws: Stream,
}

/// Opens the signalling WebSocket with `cookie` and `origin`; `Err(status)` when refused.
pub async fn connect(url: &str, ca: &[u8], cookie: &str, origin: &str) -> Result<Consultant, u16> {
    let ws_url = url.replacen("https://", "wss://", 1) + "/v1/consult/signal";
    let mut request = ws_url.into_client_request().expect("request");
    request.headers_mut().insert("cookie", cookie.parse().expect("cookie header"));
    request.headers_mut().insert("origin", origin.parse().expect("origin header"));
    let connector = Connector::Rustls(Arc::new(sc_core::tls::pinned(ca).expect("tls")));
    match tokio_tungstenite::connect_async_tls_with_config(request, None, true, Some(connector)).await {
        Ok((ws, _)) => Ok(Consultant { ws }),
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => Err(resp.status().as_u16()),
        Err(e) => panic!("consultant websocket: {e}"),
    }
}

impl Consultant {
    /// Sends a message.
    pub async fn send(&mut self, msg: &ToServer) {
        let json = serde_json::to_string(msg).expect("json");
        self.ws.send(Message::Text(json.into())).await.expect("send");
    }

    /// The next message within 10 s.
    pub async fn recv(&mut self) -> FromServer {
        let next = tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                match self.ws.next().await {
                    Some(Ok(Message::Text(t))) => return serde_json::from_str(t.as_str()).expect("server message"),
                    Some(Ok(_)) => continue,
                    other => panic!("consultant connection ended: {other:?}"),
                }
            }
        });
        next.await.expect("a message within 10 s")
    }
}

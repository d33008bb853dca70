//! Serving `app()` over rustls (TLS 1.3, ring) on a socket, with a handle to stop it.

use crate::pki::Pki;
use crate::{app, AppState, Error};
use axum_server::tls_rustls::RustlsConfig;
use axum_server::Handle;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

/// A running server.
#[derive(Debug)]
pub struct Running {
    /// The bound address (useful with port 0).
    pub addr: SocketAddr,
    handle: Handle<SocketAddr>,
    task: tokio::task::JoinHandle<std::io::Result<()>>,
    /// Closes the laptops' connections whose session ended elsewhere.
    sweeper: tokio::task::JoinHandle<()>,
    /// Ends the calls recorded live that nobody resumed after the server started.
    unresumed: tokio::task::JoinHandle<()>,
    /// For writing out what is only counted in memory when the server stops.
    state: AppState,
}

impl Running {
    /// Stops accepting, closes the signalling connections (their calls go on, to resume on the
    /// next server), lets requests in flight finish (up to 5 s), and waits.
    pub async fn stop(self) {
        // In this order: no closing connection may end a call or tell a peer the other left.
        self.state.hub.close();
        let closed = self.state.sessions.close_all();
        tracing::info!(closed, "signalling connections closed for the restart");
        self.handle.graceful_shutdown(Some(Duration::from_secs(5)));
        self.sweeper.abort();
        self.unresumed.abort();
        let _ = self.task.await;
        if let Err(e) = self.state.tally.flush(&self.state.db(), self.state.now()) {
            tracing::error!(error = %e, "writing the refusal counts out at shutdown");
        }
    }

    /// Waits until the server ends (it ends only on error or `stop`).
    pub async fn wait(mut self) -> Result<(), Error> {
        self.ended().await
    }

    /// As [`Running::wait`], leaving the server to [`Running::stop`] if the caller stops waiting
    /// first. Not to be awaited again once it returned.
    pub async fn ended(&mut self) -> Result<(), Error> {
        // An instance whose share of the rooms is lost (its database session ended) stops, to be
        // started again with a fresh copy; its peers reconnect to the others meanwhile.
        let mut lost = self.state.hub.lost();
        let served = tokio::select! {
            served = &mut self.task => served,
            Ok(_) = lost.wait_for(|lost| *lost) => {
                self.handle.shutdown();
                self.sweeper.abort();
                self.unresumed.abort();
                return Err(Error::Bus("the rooms shared with the other instances were lost".into()));
            }
        };
        self.sweeper.abort();
        self.unresumed.abort();
        match served {
            Ok(r) => r.map_err(Error::io("serving")),
            Err(e) => Err(Error::Io { what: "server task".into(), source: std::io::Error::other(e.to_string()) }),
        }
    }
}

/// The rustls server config: the private CA's leaf, and the operator's chain for the pages'
/// host names when `pages` is configured (`crate::identity`).
pub fn tls_config(pki: &Pki, pages: Option<&crate::config::PagesTls>) -> Result<rustls::ServerConfig, Error> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let resolver = crate::identity::Resolver::new(&provider, pki.chain.clone(), &pki.key, pages)?;
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| Error::Crypto(e.to_string()))?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(config)
}

/// Closes the laptops' connections whose session ended elsewhere (a lease that ran out, a brick
/// from the CLI), every `SWEEP_EVERY`, until aborted with the server.
async fn sweep_sessions(state: AppState) {
    let mut tick = tokio::time::interval(crate::sessions::SWEEP_EVERY);
    loop {
        tick.tick().await;
        // Off the runtime's threads: the sweep takes the database lock for one query per laptop.
        let s = state.clone();
        let swept = tokio::task::spawn_blocking(move || s.sessions.sweep(&s.db(), s.now())).await;
        match swept {
            Ok(Ok(n)) if n > 0 => tracing::info!(closed = n, "ended sessions' signalling closed"),
            Ok(Err(e)) => tracing::error!(error = %e, "sweeping ended sessions"),
            _ => {}
        }
    }
}

/// Once [`crate::signal::RESUME_WITHIN`] has passed since the server started, ends the calls an
/// earlier server recorded live that neither side resumed (they ended while it was down), so they
/// cannot be resumed later.
async fn end_unresumed(state: AppState) {
    tokio::time::sleep(crate::signal::RESUME_WITHIN).await;
    let s = state.clone();
    let ended = tokio::task::spawn_blocking(move || crate::signal::end_unresumed(&s)).await;
    if let Ok(Err(e)) = ended {
        tracing::error!(error = %e, "ending the calls nobody resumed");
    }
}

/// Binds `listen` and serves until stopped. Must be called inside a tokio runtime.
pub fn start(state: AppState, pki: &Pki, listen: SocketAddr) -> Result<Running, Error> {
    let listener = std::net::TcpListener::bind(listen).map_err(Error::io(format!("binding {listen}")))?;
    listener.set_nonblocking(true).map_err(Error::io("configuring the socket"))?;
    let addr = listener.local_addr().map_err(Error::io("reading the bound address"))?;
    let tls = RustlsConfig::from_config(Arc::new(tls_config(pki, state.config.pages_tls.as_ref())?));
    let handle = Handle::new();
    let server = axum_server::from_tcp_rustls(listener, tls).map_err(Error::io("starting TLS"))?.handle(handle.clone());
    let router = app(state.clone());
    let task =
        tokio::spawn(async move { server.serve(router.into_make_service_with_connect_info::<SocketAddr>()).await });
    let sweeper = tokio::spawn(sweep_sessions(state.clone()));
    let unresumed = tokio::spawn(end_unresumed(state.clone()));
    Ok(Running { addr, handle, task, sweeper, unresumed, state })
}

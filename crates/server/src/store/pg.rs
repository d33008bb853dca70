//! The PostgreSQL backend: a pool of tokio-postgres connections whose I/O runs on a runtime of
//! its own (two threads), so the synchronous facade can wait for a query from any thread,
//! including a handler's, without nesting runtimes.

use super::{to_postgres, Error, Result, Value};
use deadpool_postgres::{Manager, ManagerConfig, Object, Pool, RecyclingMethod};
use std::cell::RefCell;
use std::time::Duration;
use tokio_postgres::types::ToSql;
use tokio_postgres_rustls::MakeRustlsConnect;

/// How long a decision waits for a free connection, or for a new one to open.
const WAIT: Duration = Duration::from_secs(10);

/// Waits for `f` on this thread. Unconstrained: called from inside a tokio task (a handler),
/// tokio's cooperative budget would otherwise, once spent, defer the wake-up to that task's
/// scheduler, which is this blocked thread: it would never come.
fn wait<F: std::future::Future>(f: F) -> F::Output {
    futures_executor::block_on(tokio::task::unconstrained(f))
}

/// The pool and the runtime its connections live on.
pub(super) struct Pg {
    pool: Pool,
    /// For sessions outside the pool ([`Pg::session`]).
    config: tokio_postgres::Config,
    /// TLS to the server, when a CA was given.
    tls: Option<MakeRustlsConnect>,
    handle: tokio::runtime::Handle,
    // Dropping it ends the runtime's thread (a runtime cannot be dropped inside another's task).
    _stop: std::sync::mpsc::Sender<()>,
}

impl Pg {
    /// Connects (one connection, to fail early on a wrong URL or a server that is down); over
    /// TLS verified against `ca` (PEM) when it is given.
    pub(super) fn connect(url: &str, max: usize, ca: Option<&[u8]>) -> Result<Self> {
        let mut config: tokio_postgres::Config =
            url.parse().map_err(|e: tokio_postgres::Error| Error::Config(e.to_string()))?;
        let tls = ca.map(tls_to).transpose()?;
        if tls.is_some() {
            // Refused unless the server speaks TLS: the CA is only worth anything if it is used.
            config.ssl_mode(tokio_postgres::config::SslMode::Require);
        } else {
            refuse_remote_hosts(&config)?;
        }
        // A decision waits at most this long for a row or advisory lock, a statement runs at most
        // this long, and a transaction left open is ended: a handler's thread is never held for
        // ever (its wait blocks a worker).
        let options = config.get_options().unwrap_or_default().to_owned();
        config.options(format!(
            "{options} -c lock_timeout=5s -c statement_timeout=30s -c idle_in_transaction_session_timeout=60s \
             -c tcp_keepalives_idle=10 -c tcp_keepalives_interval=5 -c tcp_keepalives_count=3"
        ));
        // A database or an instance whose machine vanished (no FIN, no RST) is noticed in ~25 s
        // from either end, not the system's two hours: the instances' bus takes an instance whose
        // session lock is gone as gone, and an instance whose bus session died stops.
        config
            .keepalives(true)
            .keepalives_idle(Duration::from_secs(10))
            .keepalives_interval(Duration::from_secs(5))
            .keepalives_retries(3);
        let (handle_tx, handle_rx) = std::sync::mpsc::channel();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::Builder::new()
            .name("postgres".into())
            .spawn(move || {
                let rt = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build();
                match rt {
                    Ok(rt) => {
                        // The receiver waits for the handle; if it is gone there is nobody to serve.
                        let _ = handle_tx.send(Ok(rt.handle().clone()));
                        // Until the store is dropped (the sender closes).
                        let _ = stopped.recv();
                        rt.shutdown_background();
                    }
                    Err(e) => {
                        let _ = handle_tx.send(Err(e));
                    }
                }
            })
            .map_err(|source| Error::Io { what: "starting the PostgreSQL thread", source })?;
        let handle = handle_rx
            .recv()
            .map_err(|_| Error::Pool("the PostgreSQL thread stopped".into()))?
            .map_err(|source| Error::Io { what: "starting the PostgreSQL runtime", source })?;
        let recycling = || ManagerConfig { recycling_method: RecyclingMethod::Fast };
        let manager = match &tls {
            Some(tls) => Manager::from_config(config.clone(), tls.clone(), recycling()),
            None => Manager::from_config(config.clone(), tokio_postgres::NoTls, recycling()),
        };
        let pool = Pool::builder(manager)
            .max_size(max.max(1))
            .runtime(deadpool_postgres::Runtime::Tokio1)
            .wait_timeout(Some(WAIT))
            .create_timeout(Some(WAIT))
            .build()
            .map_err(|e| Error::Config(e.to_string()))?;
        let pg = Pg { pool, config, tls, handle, _stop: stop };
        drop(pg.get()?);
        Ok(pg)
    }

    /// A connection, waiting at most [`WAIT`].
    fn get(&self) -> Result<Object> {
        let pool = self.pool.clone();
        // Opening a connection spawns its I/O task: on this store's runtime, never the caller's.
        let task = self.handle.spawn(async move { pool.get().await });
        wait(task).map_err(|e| Error::Pool(e.to_string()))?.map_err(|e| Error::Pool(with_causes(&e)))
    }

    /// A session of its own, outside the pool, listening on `channel` and holding the session
    /// advisory lock `lock` (both end with the session, when the returned client is dropped or
    /// the process dies). Notifications arrive on the receiver, which closes when the session
    /// ends.
    pub(super) fn session(&self, channel: &str, lock: (i32, i32)) -> Result<Session> {
        // An identifier, not a value: only the bus's own constant names get here.
        if channel.is_empty() || !channel.bytes().all(|b| b.is_ascii_lowercase() || b == b'_') {
            return Err(Error::Config(format!("not a channel name: {channel:?}")));
        }
        let (config, tls, sql) = (self.config.clone(), self.tls.clone(), format!("LISTEN {channel}"));
        let task = self.handle.spawn(async move {
            let (tx, notes) = tokio::sync::mpsc::unbounded_channel();
            let client = match tls {
                Some(tls) => {
                    let (client, connection) = config.connect(tls).await?;
                    tokio::spawn(forward(connection, tx));
                    client
                }
                None => {
                    let (client, connection) = config.connect(tokio_postgres::NoTls).await?;
                    tokio::spawn(forward(connection, tx));
                    client
                }
            };
            client.batch_execute(&sql).await?;
            client.execute("SELECT pg_advisory_lock($1, $2)", &[&lock.0, &lock.1]).await?;
            Ok::<_, Error>(Session { notes, _client: client })
        });
        wait(task).map_err(|e| Error::Pool(e.to_string()))?
    }

    /// Runs `f` on the store's runtime.
    pub(super) fn spawn(&self, f: impl std::future::Future<Output = ()> + Send + 'static) {
        drop(self.handle.spawn(f));
    }

    /// A connection taken on first use.
    pub(super) fn lazy(&self) -> Lazy<'_> {
        Lazy { pg: self, client: RefCell::new(None) }
    }
}

/// `e` and each error under it: the pool's own message ("db error") hides why a connection
/// failed (a refused password, an unknown CA, a server that wants TLS).
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let next = c.to_string();
        if !text.ends_with(&next) {
            text = format!("{text}: {next}");
        }
        cause = c.source();
    }
    text
}

/// Drives a session's connection, handing its notifications' payloads to `tx`, until it ends.
async fn forward<S, T>(mut connection: tokio_postgres::Connection<S, T>, tx: tokio::sync::mpsc::UnboundedSender<String>)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    use futures_util::StreamExt as _;
    let mut messages = futures_util::stream::poll_fn(move |cx| connection.poll_message(cx));
    while let Some(Ok(message)) = messages.next().await {
        if let tokio_postgres::AsyncMessage::Notification(n) = message {
            if tx.send(n.payload().to_owned()).is_err() {
                break;
            }
        }
    }
}

/// TLS to PostgreSQL trusting only the CA certificates in `ca` (PEM): the server's certificate
/// must chain to one of them and name the host the URL gives (rustls checks both).
fn tls_to(ca: &[u8]) -> Result<MakeRustlsConnect> {
    use rustls_pki_types::pem::PemObject as _;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls_pki_types::CertificateDer::pem_slice_iter(ca) {
        let cert = cert.map_err(|e| Error::Config(format!("database CA: {e}")))?;
        roots.add(cert).map_err(|e| Error::Config(format!("database CA: {e}")))?;
    }
    if roots.is_empty() {
        return Err(Error::Config("database CA: no certificate in the file".into()));
    }
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| Error::Config(format!("database TLS: {e}")))?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(MakeRustlsConnect::new(config))
}

/// A session outside the pool (see [`Pg::session`]).
pub struct Session {
    /// The payloads of the notifications on its channel, in the order PostgreSQL delivers them
    /// (the order their transactions committed); closed when the session ends.
    pub notes: tokio::sync::mpsc::UnboundedReceiver<String>,
    _client: tokio_postgres::Client,
}

impl std::fmt::Debug for Session {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Session").finish_non_exhaustive()
    }
}

/// Without TLS only a local socket or loopback is spoken to: medical data and the database
/// password must not cross a network in the clear.
fn refuse_remote_hosts(config: &tokio_postgres::Config) -> Result<()> {
    use tokio_postgres::config::Host;
    for host in config.get_hosts() {
        let local = match host {
            Host::Unix(_) => true,
            Host::Tcp(name) => name == "localhost" || name.parse::<std::net::IpAddr>().is_ok_and(|ip| ip.is_loopback()),
        };
        if !local {
            return Err(Error::Config(format!(
                "database_url names {host:?}: without a database CA (TLS) only a Unix socket or loopback is allowed"
            )));
        }
    }
    // The driver connects to `hostaddr` when it is given, whatever `host` says.
    if let Some(addr) = config.get_hostaddrs().iter().find(|a| !a.is_loopback()) {
        return Err(Error::Config(format!("hostaddr {addr}: without a database CA (TLS) only loopback is allowed")));
    }
    Ok(())
}

/// One decision's connection, taken from the pool on its first statement.
pub(super) struct Lazy<'a> {
    pg: &'a Pg,
    client: RefCell<Option<Object>>,
}

impl Lazy<'_> {
    /// Closes the connection instead of returning it to the pool.
    pub(super) fn discard(&self) {
        if let Some(client) = self.client.borrow_mut().take() {
            drop(Object::take(client));
        }
    }

    fn with<T>(&self, f: impl FnOnce(&Object) -> Result<T>) -> Result<T> {
        let mut slot = self.client.borrow_mut();
        let client = match slot.take() {
            Some(c) => c,
            None => self.pg.get()?,
        };
        let out = f(&client);
        *slot = Some(client);
        out
    }

    fn bind<'v>(values: &'v [Value<'v>]) -> Vec<&'v (dyn ToSql + Sync)> {
        values.iter().map(|v| v as &(dyn ToSql + Sync)).collect()
    }

    pub(super) fn execute(&self, sql: &str, values: &[Value<'_>]) -> Result<usize> {
        let sql = to_postgres(sql);
        self.with(|c| {
            wait(async {
                let stmt = c.prepare_cached(&sql).await?;
                let n = c.execute(&stmt, &Self::bind(values)).await?;
                Ok(usize::try_from(n).unwrap_or(usize::MAX))
            })
        })
    }

    pub(super) fn query(&self, sql: &str, values: &[Value<'_>]) -> Result<Vec<tokio_postgres::Row>> {
        let sql = to_postgres(sql);
        self.with(|c| {
            wait(async {
                let stmt = c.prepare_cached(&sql).await?;
                Ok(c.query(&stmt, &Self::bind(values)).await?)
            })
        })
    }

    pub(super) fn batch(&self, sql: &str) -> Result<()> {
        self.with(|c| Ok(wait(c.batch_execute(sql))?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_remote_database_without_tls_is_refused() {
        for url in ["host=/run/pg dbname=care", "postgresql://care@127.0.0.1/care", "host=localhost"] {
            assert!(refuse_remote_hosts(&url.parse().expect("url")).is_ok(), "{url}");
        }
        for url in [
            "postgresql://care@db.example.org/care",
            "host=10.0.0.5 dbname=care",
            "host=localhost hostaddr=10.0.0.5",
            "hostaddr=10.0.0.5",
        ] {
            let e = refuse_remote_hosts(&url.parse().expect("url")).expect_err(url);
            assert!(e.to_string().contains("TLS"), "{e}");
        }
    }
}

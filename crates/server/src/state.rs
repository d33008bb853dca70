//! Shared server state handed to every handler.

use crate::config::ServerConfig;
use crate::conn::{Conn, Store};
use crate::Error;
use std::sync::{Arc, Mutex};

/// The clock, injectable so tests can move time.
pub type Clock = Arc<dyn Fn() -> i64 + Send + Sync>;

/// The system clock in Unix seconds.
pub fn system_clock() -> Clock {
    Arc::new(|| {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
            .unwrap_or(0)
    })
}

/// What handlers share.
#[derive(Clone)]
pub struct AppState {
    /// The database (SQLite or PostgreSQL); a connection is held for each whole decision.
    pub db: Arc<Store>,
    /// Configuration.
    pub config: Arc<ServerConfig>,
    /// The command-signing public key, handed to laptops at enrolment.
    pub command_public: [u8; 32],
    /// The command-signing key (brick commands).
    pub command_key: Arc<ring::signature::Ed25519KeyPair>,
    /// An Argon2 hash checked when a user is unknown, to equalise timing.
    pub dummy_hash: Arc<str>,
    /// The clock.
    pub clock: Clock,
    /// Waiting rooms and calls.
    pub hub: Arc<crate::hub::Hub>,
    /// Concurrent Argon2 checks, per channel.
    pub hash_pools: Arc<crate::signin::HashPools>,
    /// Web sign-in attempts per source.
    pub sign_in_limiter: Arc<crate::limits::SignInLimiter>,
    /// Activation attempts per source.
    pub activation_limiter: Arc<crate::limits::SignInLimiter>,
    /// The laptops' live signalling connections, closed when their session ends.
    pub sessions: Arc<crate::sessions::Sessions>,
    /// Refusals nobody authenticated made, counted rather than logged one by one.
    pub tally: Arc<crate::tally::Tally>,
    /// The audit chain as far as it was last verified, and when it was last verified whole (the
    /// admin page goes on from there).
    pub audit_verified: Arc<Mutex<Option<(crate::audit::Verified, i64)>>>,
}

impl std::fmt::Debug for AppState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("AppState").field("config", &self.config).finish_non_exhaustive()
    }
}

impl AppState {
    /// Builds the state.
    pub fn new(
        store: Store,
        config: ServerConfig,
        command_key: Arc<ring::signature::Ed25519KeyPair>,
        clock: Clock,
    ) -> Result<Self, Error> {
        use ring::signature::KeyPair as _;
        let dummy_hash = crate::auth::dummy_hash(config.argon2)?.into();
        let mut command_public = [0u8; 32];
        command_public.copy_from_slice(command_key.public_key().as_ref());
        // By default the laptops may use every core, the web pages half of them: a flood of
        // anonymous web sign-ins can never take more than half the CPU activations need.
        let (laptop_checks, web_checks) = match config.sign_in.hash_checks {
            0 => {
                let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
                (cores, cores / 2)
            }
            n => (n, n),
        };
        let db = Arc::new(store);
        let sessions: Arc<crate::sessions::Sessions> = Arc::default();
        // Shared with the other instances on PostgreSQL (crate::bus); if that ends under this
        // instance, its signalling connections close and their peers reconnect to another.
        let lost = Arc::downgrade(&sessions);
        let hub = crate::bus::hub(
            &db,
            Box::new(move || {
                if let Some(s) = lost.upgrade() {
                    s.close_all();
                }
            }),
        )?;
        Ok(AppState {
            hash_pools: Arc::new(crate::signin::HashPools::new(laptop_checks, web_checks)),
            sign_in_limiter: Arc::new(crate::limits::SignInLimiter::web(&config.sign_in)),
            activation_limiter: Arc::new(crate::limits::SignInLimiter::laptops(&config.sign_in)),
            tally: Arc::default(),
            sessions,
            audit_verified: Arc::default(),
            db,
            config: Arc::new(config),
            command_public,
            command_key,
            dummy_hash,
            clock,
            hub,
        })
    }

    /// A database connection for one decision.
    pub fn db(&self) -> Conn<'_> {
        self.db.conn()
    }

    /// Now, Unix seconds.
    pub fn now(&self) -> i64 {
        (self.clock)()
    }
}

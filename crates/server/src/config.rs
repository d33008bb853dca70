//! The server's configuration: one TOML file, with environment overrides for the usual knobs.

use crate::Error;
use sc_proto::Policy;
use serde::{Deserialize, Serialize};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

/// Argon2id cost.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
pub struct Argon2Params {
    /// Memory in KiB.
    pub m_kib: u32,
    /// Iterations.
    pub t: u32,
    /// Parallelism.
    pub p: u32,
}

impl Default for Argon2Params {
    /// OWASP's recommended Argon2id minimum: 19 MiB, 2 iterations, 1 lane.
    fn default() -> Self {
        Argon2Params { m_kib: 19 * 1024, t: 2, p: 1 }
    }
}

/// Lock-out after repeated failures.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct Lockout {
    /// Failures in a row that lock an account or device.
    pub max_failures: u32,
    /// The first lock-out's length; each further one doubles it.
    pub base_secs: u64,
    /// The longest lock-out.
    pub max_secs: u64,
    /// A lock-out this long past is forgotten for the back-off (a success forgets nothing).
    pub forget_secs: u64,
}

impl Default for Lockout {
    fn default() -> Self {
        Lockout { max_failures: 5, base_secs: 300, max_secs: 24 * 3600, forget_secs: 24 * 3600 }
    }
}

/// Limits on the sign-in routes: the web pages' (consultant, IT), and separately the laptops'
/// activation (a prison's laptops share its address; an activation from an unknown device is
/// refused before any password check, so its budget can be set apart).
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct SignInLimits {
    /// Web sign-ins a minute from one source (an IPv4 address or an IPv6 /64) once its burst is spent.
    pub per_minute: u32,
    /// Web sign-ins one source may make at once.
    pub burst: u32,
    /// Activations a minute from one source once its burst is spent.
    pub laptop_per_minute: u32,
    /// Activations one source may make at once.
    pub laptop_burst: u32,
    /// Password checks (Argon2) at once, for the laptops and, separately, for the web pages;
    /// 0: one per core for the laptops, one per two cores for the web pages.
    pub hash_checks: usize,
    /// How long a request over its source's limit is held before its 429 is sent: a flooding
    /// client that waits for answers (as HTTP/1.1 does) slows itself to one try per connection
    /// per hold, costing the server a sleeping task instead of CPU the activations need. At
    /// most [`crate::limits::MAX_HELD`] are held at once; beyond that they are answered at once.
    pub hold_refused_ms: u64,
}

impl Default for SignInLimits {
    /// A prison's laptops or a hospital's consultants share one address behind NAT: 20 at once,
    /// then 10 a minute, is a morning's sign-ins and a tenth of a guessing run's.
    fn default() -> Self {
        SignInLimits {
            per_minute: 10,
            burst: 20,
            laptop_per_minute: 10,
            laptop_burst: 20,
            hash_checks: 0,
            hold_refused_ms: 1000,
        }
    }
}

/// Where the server's data lives: the embedded SQLite file in the data directory unless `url`
/// names a PostgreSQL database (several instances share one; crate::store).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseConfig {
    /// A libpq connection string or URL (`host=/run/postgresql dbname=care user=care`).
    /// Without [`DatabaseConfig::ca`], a Unix socket or loopback only. `SC_DATABASE_URL` overrides.
    pub url: Option<String>,
    /// Connections each instance may hold open.
    pub max_connections: usize,
    /// The CA (PEM) that signed the PostgreSQL server's certificate. Given, every connection uses
    /// TLS, the server's certificate verified against this CA and the host name in `url`, and
    /// the database may be on another machine (as several instances on several machines need).
    pub ca: Option<std::path::PathBuf>,
}

impl Default for DatabaseConfig {
    fn default() -> Self {
        DatabaseConfig { url: None, max_connections: 16, ca: None }
    }
}

impl std::fmt::Debug for DatabaseConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the password: the parsed form's Debug leaves it out.
        let url = self.url.as_deref().map(|u| match u.parse::<tokio_postgres::Config>() {
            Ok(c) => format!("{:?} {:?} {:?}", c.get_hosts(), c.get_dbname(), c.get_user()),
            Err(_) => "(invalid)".to_owned(),
        });
        f.debug_struct("DatabaseConfig")
            .field("url", &url)
            .field("max_connections", &self.max_connections)
            .field("ca", &self.ca)
            .finish()
    }
}

/// The certificate the staff pages are served with, from the operator (a hospital or public CA,
/// which browsers already trust), for the host names the pages answer to (`crate::identity`).
/// The laptops' API keeps the private CA they pin.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct PagesTls {
    /// The chain, PEM: the leaf first, then its intermediates.
    pub cert: PathBuf,
    /// Its private key, PEM (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// The host names (SNI) that get this chain, e.g. `consult.hospital.nhs.uk`.
    pub names: Vec<String>,
}

/// The TURN servers the calls relay through (coturn with `--use-auth-secret`, one shared secret).
#[derive(Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct TurnConfig {
    /// One relay's TURN URLs, handed to both peers, when `relays` is empty. A relay may list a
    /// `turns:` URL (TLS, e.g. on port 443): laptops whose UDP to it gets no answer use that.
    pub urls: Vec<String>,
    /// Several relays: each call is given one of them, both its peers the same one.
    pub relays: Vec<RelayUrls>,
    /// The secret shared with coturn (`--static-auth-secret`); `SC_TURN_SECRET` overrides it.
    pub secret: String,
    /// How long minted credentials last.
    pub ttl_secs: i64,
}

impl std::fmt::Debug for TurnConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the shared secret (the server's configuration is logged at start-up).
        f.debug_struct("TurnConfig")
            .field("urls", &self.urls)
            .field("relays", &self.relays)
            .field("secret_set", &!self.secret.is_empty())
            .field("ttl_secs", &self.ttl_secs)
            .finish()
    }
}

impl Default for TurnConfig {
    fn default() -> Self {
        TurnConfig {
            urls: vec!["turn:127.0.0.1:3478?transport=udp".into()],
            relays: Vec::new(),
            secret: String::new(),
            ttl_secs: 3 * 3600,
        }
    }
}

/// One relay (a coturn instance): the URLs it answers on.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct RelayUrls {
    /// Its TURN URLs, e.g. `turn:relay1.example:3478` and `turns:relay1.example:443?transport=tcp`.
    pub urls: Vec<String>,
}

impl TurnConfig {
    /// Every relay, each as its URLs (`relays`, or the one `urls` names).
    pub fn relays(&self) -> Vec<&[String]> {
        if self.relays.is_empty() {
            vec![self.urls.as_slice()].into_iter().filter(|u| !u.is_empty()).collect()
        } else {
            self.relays.iter().map(|r| r.urls.as_slice()).filter(|u| !u.is_empty()).collect()
        }
    }

    /// The relay for the call of appointment `id`: spread over the relays, the same for both
    /// peers and for a call set up again. `None` when no relay is configured.
    pub fn relay_for(&self, id: i64) -> Option<&[String]> {
        let relays = self.relays();
        let n = i64::try_from(relays.len()).ok().filter(|n| *n > 0)?;
        // rem_euclid of a positive count is in 0..n, so the index fits.
        relays.get(usize::try_from(id.rem_euclid(n)).ok()?).copied()
    }

    /// Every URL of every relay: the laptops' firewall allows exactly these.
    pub fn all_urls(&self) -> Vec<String> {
        self.relays().into_iter().flatten().cloned().collect()
    }

    /// Every URL must be a TURN URL: a typo is refused at start, not at the first call. `urls`
    /// changed beside `relays` would be ignored: refused too.
    fn check(&self) -> Result<(), Error> {
        if !self.relays.is_empty() && self.urls != TurnConfig::default().urls {
            return Err(Error::Config("[turn]: set urls (one relay) or [[turn.relays]] (several), not both".into()));
        }
        for url in self.relays().into_iter().flatten() {
            sc_proto::turn_url::TurnUrl::parse(url).map_err(|e| Error::Config(format!("[turn] {url:?}: {e}")))?;
        }
        Ok(())
    }
}

/// What a prison requires of its laptops. Every item is reported whatever the policy; only the
/// items set here refuse. The default requires nothing (a test bench or a pilot); the production
/// set is [`PosturePolicy::production`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PosturePolicy {
    /// The root file system must be on dm-crypt.
    pub require_encrypted_root: bool,
    /// Secure Boot must be on.
    pub require_secure_boot: bool,
    /// The kernel must be locked down (integrity or confidentiality).
    pub require_lockdown: bool,
    /// The kiosk must run in its session (the kiosk user, under cage). Activation only: at
    /// enrolment IT staff run the installer outside it.
    pub require_kiosk_session: bool,
    /// The kiosk's firewall must be in force. Activation only, as the session.
    pub require_firewall: bool,
    /// Process names that must not be running. Activation only.
    pub disallowed_processes: Vec<String>,
    /// Network interface name prefixes that must not be present ("wl": Wi-Fi, "ww": mobile data,
    /// "tun", "wg": VPNs).
    pub disallowed_interfaces: Vec<String>,
    /// The longest since packages were last installed or upgraded.
    pub max_patch_age_days: Option<u32>,
    /// The furthest the laptop's clock may be from the server's.
    pub max_clock_skew_secs: Option<u32>,
}

impl PosturePolicy {
    /// What a prison deployment requires (installer/care-server.toml ships it).
    pub fn production() -> Self {
        PosturePolicy {
            require_encrypted_root: true,
            require_secure_boot: true,
            require_lockdown: true,
            require_kiosk_session: true,
            require_firewall: true,
            disallowed_processes: [
                "sshd",
                "ssh",
                "telnet",
                "nc",
                "ncat",
                "socat",
                "openvpn",
                "wireguard",
                "wpa_supplicant",
                "ModemManager",
                "firefox",
                "chromium",
                "Xorg",
                "gdb",
                "strace",
            ]
            .map(str::to_owned)
            .to_vec(),
            disallowed_interfaces: ["wl", "ww", "tun", "tap", "wg", "ppp", "usb"].map(str::to_owned).to_vec(),
            max_patch_age_days: Some(45),
            max_clock_skew_secs: Some(120),
        }
    }
}

/// The whole configuration.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    /// Where to listen (loopback by default).
    pub listen: SocketAddr,
    /// Holds the database, keys and certificates.
    pub data_dir: PathBuf,
    /// Host names and IPs the TLS certificate is valid for.
    pub tls_names: Vec<String>,
    /// Seconds a signed request's timestamp may differ from the server's clock.
    pub freshness_secs: i64,
    /// Lifetime of an enrolment token, seconds.
    pub enrol_token_secs: i64,
    /// Failures and back-off.
    pub lockout: Lockout,
    /// Password hashing cost.
    pub argon2: Argon2Params,
    /// Per-source limits and Argon2 concurrency on sign-in.
    pub sign_in: SignInLimits,
    /// The policy sealed into each laptop at enrolment.
    pub policy: Policy,
    /// The oldest kiosk version allowed to activate.
    pub min_app_version: String,
    /// The posture policy of a prison IT have not given one of its own (`care-server
    /// posture-policy`). The default requires nothing; `installer/care-server.toml` sets the
    /// production set.
    pub posture: PosturePolicy,
    /// TURN relay for calls.
    pub turn: TurnConfig,
    /// How long a consultant's browser session lasts.
    pub web_session_secs: i64,
    /// How early before its start a laptop may join an appointment's waiting room.
    pub join_early_secs: i64,
    /// How long an urgent outcome note may wait unacknowledged before the team page flags it
    /// overdue.
    pub urgent_note_ack_secs: i64,
    /// The operator's certificate for the staff pages; none: the pages use the private CA's leaf
    /// too (a browser then needs that CA imported).
    pub pages_tls: Option<PagesTls>,
    /// SQLite (the default) or PostgreSQL.
    pub database: DatabaseConfig,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            listen: SocketAddr::from(([127, 0, 0, 1], 8443)),
            data_dir: PathBuf::from("care-data"),
            tls_names: vec!["localhost".into(), "127.0.0.1".into()],
            freshness_secs: 120,
            enrol_token_secs: 24 * 3600,
            lockout: Lockout::default(),
            argon2: Argon2Params::default(),
            sign_in: SignInLimits::default(),
            policy: Policy { lease_secs: 4 * 3600, idle_secs: 15 * 60, dead_man_days: 14 },
            min_app_version: "0.1.0".into(),
            posture: PosturePolicy::default(),
            turn: TurnConfig::default(),
            web_session_secs: 12 * 3600,
            join_early_secs: 30 * 60,
            urgent_note_ack_secs: 4 * 3600,
            pages_tls: None,
            database: DatabaseConfig::default(),
        }
    }
}

impl ServerConfig {
    /// Reads `path` if given (defaults otherwise), then applies `SC_LISTEN`, `SC_DATA_DIR`,
    /// `SC_DATABASE_URL` and `SC_TURN_SECRET`.
    pub fn load(path: Option<&Path>) -> Result<Self, Error> {
        Self::load_with_env(path, |key| std::env::var(key).ok())
    }

    /// As [`ServerConfig::load`], reading overrides through `env`.
    pub fn load_with_env(path: Option<&Path>, env: impl Fn(&str) -> Option<String>) -> Result<Self, Error> {
        let mut config = match path {
            Some(p) => {
                let text = std::fs::read_to_string(p).map_err(Error::io(format!("reading {}", p.display())))?;
                toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", p.display())))?
            }
            None => ServerConfig::default(),
        };
        if let Some(listen) = env("SC_LISTEN") {
            config.listen = listen.parse().map_err(|e| Error::Config(format!("SC_LISTEN: {e}")))?;
        }
        if let Some(dir) = env("SC_DATA_DIR") {
            config.data_dir = PathBuf::from(dir);
        }
        if let Some(url) = env("SC_DATABASE_URL").filter(|u| !u.is_empty()) {
            config.database.url = Some(url);
        }
        if let Some(secret) = env("SC_TURN_SECRET") {
            config.turn.secret = secret;
        }
        config.turn.check()?;
        Ok(config)
    }

    /// The database file.
    pub fn db_path(&self) -> PathBuf {
        self.data_dir.join("care.sqlite")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_then_environment() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("care-server.toml");
        std::fs::write(
            &path,
            "listen = \"127.0.0.1:9443\"\n[lockout]\nmax_failures = 3\nbase_secs = 60\nmax_secs = 600\n",
        )
        .expect("write");
        let c = ServerConfig::load_with_env(Some(&path), |_| None).expect("load");
        assert_eq!(c.listen, "127.0.0.1:9443".parse().expect("addr"));
        assert_eq!(c.lockout.max_failures, 3);
        assert_eq!(c.argon2, Argon2Params::default(), "unset keys keep their defaults");

        let env = |k: &str| match k {
            "SC_LISTEN" => Some("127.0.0.1:7443".to_owned()),
            "SC_DATA_DIR" => Some("/srv/care".to_owned()),
            _ => None,
        };
        let c = ServerConfig::load_with_env(Some(&path), env).expect("load");
        assert_eq!(c.listen, "127.0.0.1:7443".parse().expect("addr"));
        assert_eq!(c.data_dir, PathBuf::from("/srv/care"));
    }

    /// Issue #13: the configuration is logged at start-up; its TURN secret never is.
    #[test]
    fn issue_13_debug_of_the_configuration_prints_no_secret() {
        let mut c = ServerConfig::default();
        c.turn.secret = "S3CR3T-MARK".into();
        let printed = format!("{c:?}");
        assert!(!printed.contains("S3CR3T-MARK") && printed.contains("secret_set: true"), "{printed}");
    }

    #[test]
    fn the_documented_example_is_the_defaults() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/care-server.example.toml");
        let c = ServerConfig::load_with_env(Some(&path), |_| None).expect("the example parses");
        assert_eq!(c, ServerConfig::default(), "docs/care-server.example.toml says the defaults");
    }

    #[test]
    fn bad_files_and_values_are_named() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("bad.toml");
        std::fs::write(&path, "lisen = 1\n").expect("write");
        let err = ServerConfig::load_with_env(Some(&path), |_| None).expect_err("unknown key");
        assert!(err.to_string().contains("bad.toml") && err.to_string().contains("lisen"), "{err}");
        let err = ServerConfig::load_with_env(None, |_| Some("nonsense".into())).expect_err("bad env");
        assert!(err.to_string().contains("SC_LISTEN"), "{err}");
    }

    /// Issue #17: several relays, each call given one (both peers the same), every URL allowed
    /// through the laptops' firewall, and a URL that is not TURN refused at start.
    #[test]
    fn issue_17_several_relays_are_spread_over_calls() {
        let dir = tempfile::tempdir().expect("dir");
        let path = dir.path().join("care-server.toml");
        std::fs::write(
            &path,
            "[turn]\nsecret = \"s\"\n[[turn.relays]]\nurls = [\"turn:a.example:3478\", \"turns:a.example:443?transport=tcp\"]\n\
             [[turn.relays]]\nurls = [\"turn:b.example:3478\"]\n",
        )
        .expect("write");
        let c = ServerConfig::load_with_env(Some(&path), |_| None).expect("load");
        assert_eq!(c.turn.relays().len(), 2);
        let a = c.turn.relay_for(2).expect("a relay");
        let b = c.turn.relay_for(7).expect("a relay");
        assert_eq!(a[0], "turn:a.example:3478");
        assert_eq!(b, ["turn:b.example:3478"]);
        assert_eq!(c.turn.relay_for(2), Some(a), "the same relay for the same call");
        assert_eq!(c.turn.all_urls().len(), 3);
        // One relay named by `urls` alone, as before.
        let one = TurnConfig::default();
        assert_eq!(one.relay_for(5), Some(one.urls.as_slice()));
        assert_eq!(TurnConfig { urls: Vec::new(), ..TurnConfig::default() }.relay_for(5), None);
        let both = "[turn]\nurls = [\"turn:c.example\"]\n[[turn.relays]]\nurls = [\"turn:a.example\"]\n";
        std::fs::write(&path, both).expect("write");
        let err = ServerConfig::load_with_env(Some(&path), |_| None).expect_err("both");
        assert!(err.to_string().contains("not both"), "{err}");
        std::fs::write(&path, "[turn]\nurls = [\"http://relay.example\"]\n").expect("write");
        let err = ServerConfig::load_with_env(Some(&path), |_| None).expect_err("not TURN");
        assert!(err.to_string().contains("http://relay.example"), "{err}");
    }
}

//! `care-server`: runs the healthcare team's server and its admin CLI for IT staff.
#![forbid(unsafe_code)]

use clap::{Parser, Subcommand};
use sc_server::config::ServerConfig;
use sc_server::{admin, audit, db, pki, serve, state, AppState, Error};
use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "care-server", version, about = "SecureConsult care server and admin CLI")]
struct Cli {
    /// Configuration file (TOML). Defaults to <data-dir>/care-server.toml when that exists.
    #[arg(long, global = true)]
    config: Option<PathBuf>,
    /// Data directory (database, keys); overrides the config file.
    #[arg(long, global = true, env = "SC_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Creates the data directory, database, CA, TLS certificate and command key.
    Init {
        /// Extra host names or IPs for the TLS certificate (localhost and 127.0.0.1 are included).
        #[arg(long = "tls-name")]
        tls_names: Vec<String>,
    },
    /// Issues a TLS certificate for a TURN relay (coturn's --cert and --pkey) from the server's
    /// CA, so laptops trust its `turns:` URL (TLS, e.g. on port 443) by their pin.
    RelayCert {
        /// The relay's host name or IP, as its `turns:` URL names it (repeatable).
        #[arg(long = "name", required = true)]
        names: Vec<String>,
        /// Directory to write relay.crt.pem and relay.key.pem into.
        #[arg(long)]
        out: std::path::PathBuf,
    },
    /// Serves the API over TLS.
    Serve {
        /// Address to listen on; overrides the config (and SC_LISTEN).
        #[arg(long)]
        listen: Option<std::net::SocketAddr>,
    },
    /// Adds a prison.
    AddPrison {
        /// The prison's name.
        name: String,
    },
    /// Adds a staff member; reads the password from standard input; prints the TOTP secret once.
    AddStaff {
        /// Login name.
        #[arg(long)]
        username: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// nurse, it or consultant.
        #[arg(long, default_value = "nurse")]
        role: String,
        /// The prison (required for nurses).
        #[arg(long)]
        prison: Option<String>,
        /// A consultant's hospital, named to the nurse and prisoner in the call.
        #[arg(long)]
        hospital: Option<String>,
    },
    /// Issues a one-time enrolment token scoped to a prison.
    EnrolToken {
        /// The prison.
        #[arg(long)]
        prison: String,
        /// Validity in hours (default: the config's enrol_token_secs, 24 h).
        #[arg(long)]
        ttl_hours: Option<i64>,
    },
    /// Books an appointment; prints its id and room code.
    AddAppointment {
        /// The consultant's user name.
        #[arg(long)]
        consultant: String,
        /// The prison.
        #[arg(long)]
        prison: String,
        /// Start, Unix seconds (default: now plus --in-minutes).
        #[arg(long)]
        at: Option<i64>,
        /// Start this many minutes from now (when --at is not given).
        #[arg(long, default_value_t = 0)]
        in_minutes: i64,
        /// The patient's prison number (e.g. A1234BC), shown to the nurse and the consultant to
        /// check they have the right person; with --initials.
        #[arg(long, requires = "initials")]
        patient: Option<String>,
        /// The patient's initials, with --patient.
        #[arg(long, requires = "patient")]
        initials: Option<String>,
        /// Length in minutes.
        #[arg(long, default_value_t = 30)]
        minutes: i64,
    },
    /// Lists enrolled devices.
    ListDevices {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Bricks a device: destroys its server-side secret at once (its config can never be unsealed
    /// again) and orders the laptop to wipe itself on its next contact. Prints the command id.
    #[command(alias = "revoke-device")]
    BrickDevice {
        /// Device id.
        id: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
        /// Who is bricking it (recorded in the audit log).
        #[arg(long, env = "USER", default_value = "admin")]
        by: String,
    },
    /// Lists bricks and their state: pending, or wiped (a verified receipt came back).
    ListBricks,
    /// Shows a prison's posture policy (its own, or the server's default), or sets it from a TOML
    /// file (the keys of `[posture]` in the config; docs/posture.md) or to the production set.
    PosturePolicy {
        /// The prison.
        prison: String,
        /// Sets the policy from this TOML file.
        #[arg(long, conflicts_with = "production")]
        file: Option<std::path::PathBuf>,
        /// Sets the production set (every item required).
        #[arg(long)]
        production: bool,
        /// Who is changing it (recorded in the audit log).
        #[arg(long, env = "USER", default_value = "admin")]
        by: String,
    },
    /// Lists the staff accounts: role, prison and state (active, locked, disabled).
    ListStaff {
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Disables a leaver's account at once: no sign-in anywhere, every session ended.
    DisableStaff {
        /// User name.
        username: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
        /// Who is doing it (recorded in the audit log).
        #[arg(long, env = "USER", default_value = "admin")]
        by: String,
    },
    /// Sets a new password (read from standard input) for an account; its sessions end.
    ResetPassword {
        /// User name.
        username: String,
        /// Who is doing it (recorded in the audit log).
        #[arg(long, env = "USER", default_value = "admin")]
        by: String,
    },
    /// Gives an account a new TOTP seed, printed once; its sessions end.
    ResetTotp {
        /// User name.
        username: String,
        /// Who is doing it (recorded in the audit log).
        #[arg(long, env = "USER", default_value = "admin")]
        by: String,
    },
    /// Lifts an account's lock-out now (the back-off history stays).
    LiftLockout {
        /// User name.
        username: String,
        /// Why (recorded in the audit log).
        #[arg(long)]
        reason: String,
        /// Who is doing it (recorded in the audit log).
        #[arg(long, env = "USER", default_value = "admin")]
        by: String,
    },
    /// Verifies the audit log's chain (each link an HMAC under a key from `server.key`); names the first
    /// broken link. With `--checkpoint`, also checks checkpoints kept off this machine, which
    /// catch the newest rows being removed.
    AuditVerify {
        /// A checkpoint file `audit-checkpoint` wrote (repeatable).
        #[arg(long)]
        checkpoint: Vec<PathBuf>,
    },
    /// Prints a checkpoint of the audit chain's head, signed with the command key, as JSON: keep
    /// it off this machine (for example, mail it to IT daily) for `audit-verify --checkpoint`.
    AuditCheckpoint,
    /// Prints the newest audit events as JSON lines.
    Audit {
        /// How many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
    },
}

fn load_config(cli: &Cli) -> Result<ServerConfig, Error> {
    let default_path = cli.data_dir.as_ref().map(|d| d.join("care-server.toml"));
    let path = cli.config.clone().or(default_path.filter(|p| p.exists()));
    let mut config = ServerConfig::load(path.as_deref())?;
    if let Some(dir) = &cli.data_dir {
        config.data_dir = dir.clone();
    }
    Ok(config)
}

fn now() -> i64 {
    (state::system_clock())()
}

fn run(cli: Cli) -> Result<(), Error> {
    let mut config = load_config(&cli)?;
    match cli.command {
        Command::Init { tls_names } => {
            let mut names = config.tls_names.clone();
            names.extend(tls_names);
            pki::init(&config.data_dir, &names)?;
            database(&config)?;
            println!("initialised {}", config.data_dir.display());
        }
        Command::RelayCert { names, out } => {
            pki::write_relay_cert(&config.data_dir, &names, &out)?;
            println!("wrote {}/relay.crt.pem and relay.key.pem", out.display());
        }
        Command::Serve { listen } => {
            if let Some(l) = listen {
                config.listen = l;
            }
            let keys = pki::load(&config.data_dir)?;
            let conn = database(&config)?;
            let listen = config.listen;
            let state = AppState::new(conn, config, keys.command_key.clone(), state::system_clock())?;
            let rt = tokio::runtime::Runtime::new().map_err(Error::io("starting the runtime"))?;
            let counted = state.clone();
            rt.block_on(async move {
                let mut running = serve::start(state, &keys, listen)?;
                // Scripts wait for this line to know the port.
                println!("listening on https://{}", running.addr);
                tracing::info!(addr = %running.addr, "care server listening");
                let ended = tokio::select! {
                    r = running.ended() => Some(r),
                    r = stop_signal() => { r?; None }
                };
                match ended {
                    Some(r) => r,
                    // Stopped on purpose (a restart): the signalling sockets close with "service
                    // restart", and every call goes on, to be resumed on the next server.
                    None => {
                        running.stop().await;
                        Ok(())
                    }
                }
            })?;
            // What was only counted in memory goes into the audit log before the process ends.
            counted.tally.flush(&counted.db(), counted.now())?;
        }
        Command::AddPrison { name } => {
            let p = admin::add_prison(&database(&config)?.conn(), &name, now())?;
            println!("prison {} added (id {})", p.name, p.id);
        }
        Command::AddStaff { username, name, role, prison, hospital } => {
            let password = read_password()?;
            let store = database(&config)?;
            let conn = store.conn();
            let secret = admin::add_staff(
                &conn,
                &config,
                admin::StaffSpec {
                    username: &username,
                    display_name: &name,
                    role: &role,
                    prison: prison.as_deref(),
                    hospital: hospital.as_deref(),
                },
                &password,
                now(),
            )?;
            println!("staff {username} added as {role}");
            println!("TOTP secret (shown once): {}", secret.totp_secret);
            println!("otpauth URI (shown once): {}", secret.otpauth_uri);
        }
        Command::EnrolToken { prison, ttl_hours } => {
            let keys = pki::load(&config.data_dir)?;
            let store = database(&config)?;
            let conn = store.conn();
            let ttl = ttl_hours.map_or(config.enrol_token_secs, |h| h.saturating_mul(3600));
            if ttl <= 0 {
                return Err(Error::BadRequest("a token must be valid for some time".into()));
            }
            let token = admin::issue_enrol_token(&conn, &keys.ca_der, &prison, ttl, now())?;
            println!("{token}");
        }
        Command::AddAppointment { consultant, prison, at, in_minutes, minutes, patient, initials } => {
            let now = now();
            let starts = at.unwrap_or(now + in_minutes * 60);
            let patient = match (patient, initials) {
                (Some(number), Some(initials)) => Some(sc_proto::signal::Patient {
                    prison_number: number.try_into().map_err(Error::BadRequest)?,
                    initials: initials.try_into().map_err(Error::BadRequest)?,
                }),
                _ => None,
            };
            let a = admin::add_appointment(
                &database(&config)?.conn(),
                &consultant,
                &prison,
                starts,
                minutes,
                patient.as_ref(),
                now,
            )?;
            println!("appointment {} room code {}", a.id, a.room_code);
        }
        Command::ListDevices { json } => {
            let devices = admin::list_devices(&database(&config)?.conn())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&devices).map_err(|e| Error::Config(e.to_string()))?);
            } else {
                println!(
                    "{:<24}  {:<16}  {:<32}  {:<8}  {:<20}  {:<20}  last contact",
                    "asset tag", "serial", "device", "state", "prison", "host"
                );
                for d in devices {
                    let last = d.last_contact.map_or_else(|| "never".to_owned(), |t| t.to_string());
                    println!(
                        "{:<24}  {:<16}  {:<32}  {:<8}  {:<20}  {:<20}  {last}",
                        d.asset_tag, d.serial, d.id, d.state, d.prison, d.hostname
                    );
                }
            }
        }
        Command::ListStaff { json } => {
            let rows = sc_server::staff::list(&database(&config)?.conn(), now())?;
            if json {
                println!("{}", serde_json::to_string_pretty(&rows).map_err(|e| Error::Config(e.to_string()))?);
            } else {
                println!("{:<24}  {:<10}  {:<20}  state", "user", "role", "prison");
                for r in rows {
                    let prison = r.prison.unwrap_or_default();
                    println!("{:<24}  {:<10}  {prison:<20}  {}", r.username, r.role, r.state);
                }
            }
        }
        Command::DisableStaff { username, reason, by } => {
            let ended = sc_server::staff::disable(&database(&config)?.conn(), &username, &reason, &by, now())?;
            // A running server closes their live connections within its sweep.
            println!("{username} disabled; {} session(s) ended", ended.0.len());
        }
        Command::ResetPassword { username, by } => {
            let password = read_password()?;
            let ended = sc_server::staff::reset_password(
                &database(&config)?.conn(),
                &config,
                &username,
                &password,
                &by,
                now(),
            )?;
            println!("{username}'s password reset; {} session(s) ended", ended.0.len());
        }
        Command::ResetTotp { username, by } => {
            let (seed, ended) = sc_server::staff::reset_totp(&database(&config)?.conn(), &username, &by, now())?;
            println!("{username}'s new TOTP secret (shown once): {}", seed.totp_secret);
            println!("otpauth URI: {}", seed.otpauth_uri);
            println!("{} session(s) ended", ended.0.len());
        }
        Command::LiftLockout { username, reason, by } => {
            sc_server::staff::lift_lockout(&database(&config)?.conn(), &username, &reason, &by, now())?;
            println!("{username}'s lock-out lifted");
        }
        Command::BrickDevice { id, reason, by } => {
            let id = id.parse().map_err(|e| Error::BadRequest(format!("{e}")))?;
            let command = admin::brick_device(&database(&config)?.conn(), &id, &reason, &by, now())?;
            println!(
                "device {id} bricked: its secret is destroyed; wipe command {command} goes out on its next contact"
            );
        }
        Command::PosturePolicy { prison, file, production, by } => {
            let store = database(&config)?;
            let c = store.conn();
            let policy = match (file, production) {
                (Some(path), _) => {
                    let text =
                        std::fs::read_to_string(&path).map_err(Error::io(format!("reading {}", path.display())))?;
                    Some(toml::from_str(&text).map_err(|e| Error::Config(format!("{}: {e}", path.display())))?)
                }
                (None, true) => Some(sc_server::posture::PosturePolicy::production()),
                (None, false) => None,
            };
            if let Some(policy) = policy {
                admin::set_posture_policy(&c, &prison, &policy, &by, now())?;
                println!("{prison}'s posture policy is set");
            }
            let p = db::prison_by_name(&c, &prison)?;
            let (policy, whose) = match db::posture_policy(&c, p.id)? {
                Some(own) => (own, "its own"),
                None => (config.posture.clone(), "the server's default"),
            };
            println!("# {prison}: {whose}");
            print!("{}", toml::to_string(&policy).map_err(|e| Error::Config(e.to_string()))?);
        }
        Command::ListBricks => {
            println!("{:<32}  {:<32}  {:<8}  {:<12}  reason", "command", "device", "state", "by");
            for b in db::bricks(&database(&config)?.conn())? {
                let state = if b.wiped_at.is_some() { "wiped" } else { "pending" };
                println!("{:<32}  {:<32}  {state:<8}  {:<12}  {}", b.command_id, b.device_id, b.by_staff, b.reason);
            }
        }
        Command::AuditVerify { checkpoint } => {
            let store = database(&config)?;
            let c = store.conn();
            match audit::verify(&c)? {
                Ok(v) => {
                    let head: String = v.head.iter().map(|b| format!("{b:02x}")).collect();
                    println!("audit chain intact: {} rows, head {head}", v.rows);
                }
                Err(broken) => return Err(Error::Config(format!("audit chain broken at {broken}"))),
            }
            let public = pki::load(&config.data_dir)?.command_public();
            for path in checkpoint {
                let text = std::fs::read(&path).map_err(Error::io(format!("reading {}", path.display())))?;
                let signed: sc_proto::Signed = serde_json::from_slice(&text)
                    .map_err(|e| Error::Config(format!("{}: not a checkpoint: {e}", path.display())))?;
                match audit::check_checkpoint(&c, &signed, &public)? {
                    Ok(cp) => println!("checkpoint {} holds: row {} of {} rows", path.display(), cp.last_id, cp.rows),
                    Err(m) => return Err(Error::Config(format!("checkpoint {}: {m}", path.display()))),
                }
            }
        }
        Command::AuditCheckpoint => {
            let keys = pki::load(&config.data_dir)?;
            match audit::checkpoint(&database(&config)?.conn(), &keys.command_key, now())? {
                Ok(signed) => println!("{}", serde_json::to_string(&signed).map_err(|e| Error::Config(e.to_string()))?),
                Err(broken) => return Err(Error::Config(format!("no checkpoint of a broken chain: {broken}"))),
            }
        }
        Command::Audit { limit } => {
            for row in audit::tail(&database(&config)?.conn(), limit)? {
                println!("{}", serde_json::to_string(&row).map_err(|e| Error::Config(e.to_string()))?);
            }
        }
    }
    Ok(())
}

/// A password from the first line of standard input (never the command line).
fn read_password() -> Result<zeroize::Zeroizing<String>, Error> {
    let mut password = zeroize::Zeroizing::new(String::new());
    std::io::stdin().lock().read_line(&mut password).map_err(Error::io("reading the password"))?;
    Ok(zeroize::Zeroizing::new(password.trim_end_matches(['\r', '\n']).to_owned()))
}

/// The database the configuration names, with the server's keys from the data directory.
fn database(config: &ServerConfig) -> Result<sc_server::conn::Store, Error> {
    db::open_configured(config)
}

/// Ctrl-C or SIGTERM (what systemd and the test harness send).
async fn stop_signal() -> Result<(), Error> {
    let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
        .map_err(Error::io("listening for SIGTERM"))?;
    tokio::select! {
        r = tokio::signal::ctrl_c() => r.map_err(Error::io("listening for Ctrl-C")),
        _ = term.recv() => Ok(()),
    }
}

fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("care-server: {e}");
            ExitCode::FAILURE
        }
    }
}

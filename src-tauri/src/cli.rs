//! The process entry and its command line: no subcommand opens the kiosk; `enrol` (IT staff)
//! enrols this laptop; `status`, `firewall-rules`, `windows-policy` and `posture` print or write
//! what IT staff need.

use clap::{Parser, Subcommand};
use sc_core::keystore::Keystore;
use sc_core::record::DataDir;
use sc_core::Kiosk;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(Parser, Debug)]
#[command(name = "secureconsult-kiosk", version, about = "SecureConsult prison telemedicine kiosk")]
struct Cli {
    /// Where the enrolment record and sealed config live.
    #[arg(long, env = "SC_KIOSK_DATA_DIR")]
    data_dir: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Enrols this laptop with the care server (IT staff, once).
    Enrol {
        /// The care server's URL, e.g. https://care.example:8443.
        #[arg(long)]
        server: String,
        /// Where to read the one-time enrolment token (`care-server enrol-token`) from: a file,
        /// or `-` for standard input. Never the command line, where `ps` and the shell's history
        /// would keep it.
        #[arg(long, value_name = "PATH|-")]
        token_file: PathBuf,
        /// IT staff's name for this laptop, shown on the admin page (e.g. "HMP Example laptop 3").
        #[arg(long, default_value = "")]
        asset_tag: String,
    },
    /// Prints the kiosk's state (enrolled or not, device id, whether this user's keystore holds
    /// the device keys) and exits; fails when enrolled but the keys cannot be read.
    Status,
    /// Prints the nftables ruleset that confines `user` to the endpoints in the enrolment record
    /// (the care server, the TURN relay; nothing before enrolment); policy/linux loads it at boot.
    FirewallRules {
        /// The user the kiosk session runs as (a name, or a numeric uid).
        #[arg(long, default_value = sc_core::posture::KIOSK_USER)]
        user: String,
    },
    /// Writes the Windows lock-down for this enrolment into `out`: ShellLauncher.xml,
    /// AppLocker.xml and Firewall.ps1, the firewall from the same endpoints as `firewall-rules`
    /// (see policy/windows/README.md).
    WindowsPolicy {
        /// The folder to write the three files into (made if missing).
        #[arg(long)]
        out: PathBuf,
        /// The local account the kiosk runs as.
        #[arg(long, default_value = sc_core::posture::KIOSK_USER)]
        account: String,
    },
    /// Prints the posture report this laptop would send, as JSON (what the server will judge).
    Posture,
}

fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("secureconsult")
}

/// The token from `path` (`-`: standard input), trimmed; kept in memory only while parsed.
fn read_token(path: &std::path::Path) -> Result<zeroize::Zeroizing<String>, String> {
    use std::io::Read as _;
    let mut text = zeroize::Zeroizing::new(String::new());
    let read = if path.as_os_str() == "-" {
        std::io::stdin().read_to_string(&mut text).map(|_| ())
    } else {
        std::fs::File::open(path).and_then(|mut f| f.read_to_string(&mut text).map(|_| ()))
    };
    read.map_err(|e| format!("reading the enrolment token from {}: {e}", path.display()))?;
    let token = zeroize::Zeroizing::new(text.trim().to_owned());
    if token.is_empty() {
        return Err(format!("no enrolment token in {}", path.display()));
    }
    Ok(token)
}

/// On an installed laptop (the package's marker), the kiosk window opens only in its session: as
/// the kiosk user under the kiosk compositor (policy/linux), never from a shell or another session.
fn session_allows(root: &std::path::Path) -> Result<(), String> {
    if sc_core::posture::session_required(root) && !sc_core::posture::kiosk_session(root) {
        return Err(format!(
            "on this laptop SecureConsult runs only in its kiosk session (user {} under {}); \
             restart the laptop",
            sc_core::posture::KIOSK_USER,
            sc_core::posture::KIOSK_COMPOSITOR
        ));
    }
    Ok(())
}

fn run() -> Result<(), String> {
    let cli = Cli::parse();
    let data_dir = cli.data_dir.unwrap_or_else(default_data_dir);
    match cli.command {
        None => {
            session_allows(std::path::Path::new("/"))?;
            let kiosk = Kiosk::open(&data_dir, Keystore::secret_service).map_err(|e| e.to_string())?;
            tracing::info!(enrolled = kiosk.record().is_some(), "kiosk starting locked");
            crate::run_window(kiosk)
        }
        Some(Command::Status) => {
            let dir = DataDir::open(&data_dir).map_err(|e| e.to_string())?;
            let Some(r) = dir.load_record().map_err(|e| e.to_string())? else {
                println!("not enrolled");
                return Ok(());
            };
            println!("enrolled as device {} with {}", r.device_id, r.server_url);
            // The keys are in the keystore of the user who enrolled: the kiosk user's, through
            // secureconsult-admin on an installed laptop. Anywhere else the kiosk cannot sign in.
            let keys = Keystore::secret_service().and_then(|k| k.load(&dir.profile_id()));
            match keys {
                Ok(_) => {
                    println!("device keys: in this user's keystore");
                    Ok(())
                }
                Err(sc_core::Error::KeysMissing) => {
                    Err("device keys: not in this user's keystore (enrol as the kiosk user: secureconsult-admin enrol)"
                        .into())
                }
                Err(e) => Err(format!("device keys: the keystore cannot be read: {e}")),
            }
        }
        Some(Command::FirewallRules { user }) => {
            let endpoints = enrolled_endpoints(&data_dir)?;
            print!("{}", sc_core::firewall::nftables(&endpoints, &user).map_err(|e| e.to_string())?);
            Ok(())
        }
        Some(Command::WindowsPolicy { out, account }) => {
            let endpoints = enrolled_endpoints(&data_dir)?;
            let policy = sc_core::windows_policy::generate(&endpoints, &account).map_err(|e| e.to_string())?;
            std::fs::create_dir_all(&out).map_err(|e| format!("cannot make {}: {e}", out.display()))?;
            for (name, text) in policy.files() {
                let path = out.join(name);
                std::fs::write(&path, text).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
            }
            println!("wrote the Windows lock-down for {} endpoint(s) to {}", endpoints.len(), out.display());
            Ok(())
        }
        Some(Command::Posture) => {
            let report = serde_json::to_string_pretty(&sc_core::posture::current()).map_err(|e| e.to_string())?;
            println!("{report}");
            Ok(())
        }
        Some(Command::Enrol { server, token_file, asset_tag }) => {
            let token = read_token(&token_file)?.parse().map_err(|e: sc_core::Error| e.to_string())?;
            let dir = DataDir::open(&data_dir).map_err(|e| e.to_string())?;
            let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            rt.block_on(async {
                let keystore =
                    tokio::task::spawn_blocking(Keystore::secret_service).await.map_err(|e| e.to_string())?;
                let keystore = keystore.map_err(|e| e.to_string())?;
                let record = sc_core::enrol::enrol_as(&dir, &keystore, &server, &token, &asset_tag)
                    .await
                    .map_err(|e| e.to_string())?;
                println!("enrolled as device {}", record.device_id);
                Ok(())
            })
        }
    }
}

/// The endpoints the enrolment record names; none before enrolment, so nothing is allowed (IT
/// enrol as root or an administrator, whom the rules leave alone).
fn enrolled_endpoints(data_dir: &std::path::Path) -> Result<Vec<sc_core::firewall::Endpoint>, String> {
    let dir = DataDir::open(data_dir).map_err(|e| e.to_string())?;
    match dir.load_record().map_err(|e| e.to_string())? {
        Some(record) => sc_core::firewall::endpoints(&record).map_err(|e| e.to_string()),
        None => Ok(Vec::new()),
    }
}

/// The process entry point.
pub fn main() -> ExitCode {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| "info".into()))
        .with_writer(std::io::stderr)
        .init();
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("secureconsult-kiosk: {message}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn put(root: &std::path::Path, rel: &str, text: &str) {
        let path = root.join(rel);
        std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    #[test]
    fn issue_14_an_installed_laptop_opens_the_kiosk_only_in_its_session() {
        let dir = tempfile::tempdir().expect("dir");
        let root = dir.path();
        put(root, "proc/self/status", "PPid:\t42\nUid:\t1001\t1001\t1001\t1001\n");
        put(root, "proc/42/comm", "bash\n");
        put(root, "etc/passwd", "sc-kiosk:x:1001:1001::/var/lib/sc-kiosk:/usr/sbin/nologin\n");
        assert!(session_allows(root).is_ok(), "a developer's machine (no marker) runs it anywhere");
        put(root, sc_core::posture::SESSION_ONLY_MARKER, "");
        let e = session_allows(root).expect_err("from a shell, on an installed laptop");
        assert!(e.contains("runs only in its kiosk session"), "{e}");
        put(root, "proc/42/comm", "cage\n");
        assert!(session_allows(root).is_ok(), "in the session");
    }
}

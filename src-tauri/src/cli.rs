//! The process entry and its command line: no subcommand opens the kiosk; `enrol` (IT staff)
//! enrols this laptop.

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
        /// The one-time enrolment token from `care-server enrol-token`.
        #[arg(long)]
        token: String,
    },
    /// Prints the kiosk's state (enrolled or not, device id) and exits.
    Status,
}

fn default_data_dir() -> PathBuf {
    let base = std::env::var_os("XDG_DATA_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".local/share")))
        .unwrap_or_else(|| PathBuf::from("."));
    base.join("secureconsult")
}

fn run() -> Result<(), String> {
    let cli = Cli::parse();
    let data_dir = cli.data_dir.unwrap_or_else(default_data_dir);
    match cli.command {
        None => {
            let kiosk = Kiosk::open(&data_dir, Keystore::secret_service).map_err(|e| e.to_string())?;
            tracing::info!(enrolled = kiosk.record().is_some(), "kiosk starting locked");
            crate::run_window(kiosk)
        }
        Some(Command::Status) => {
            let dir = DataDir::open(&data_dir).map_err(|e| e.to_string())?;
            match dir.load_record().map_err(|e| e.to_string())? {
                Some(r) => println!("enrolled as device {} with {}", r.device_id, r.server_url),
                None => println!("not enrolled"),
            }
            Ok(())
        }
        Some(Command::Enrol { server, token }) => {
            let token = token.parse().map_err(|e: sc_core::Error| e.to_string())?;
            let dir = DataDir::open(&data_dir).map_err(|e| e.to_string())?;
            let rt = tokio::runtime::Runtime::new().map_err(|e| e.to_string())?;
            rt.block_on(async {
                let keystore =
                    tokio::task::spawn_blocking(Keystore::secret_service).await.map_err(|e| e.to_string())?;
                let keystore = keystore.map_err(|e| e.to_string())?;
                let record =
                    sc_core::enrol::enrol(&dir, &keystore, &server, &token).await.map_err(|e| e.to_string())?;
                println!("enrolled as device {}", record.device_id);
                Ok(())
            })
        }
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

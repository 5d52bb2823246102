//! `sc-hsm-emulator`: an emulated SmartCard-HSM in a vpcd virtual reader.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use emulator::{Card, RedbStore};
use vpcd_bridge::Endpoint;

/// An emulated CardContact SmartCard-HSM for pcscd's vpcd virtual reader.
///
/// The card keeps its state (PINs, keys, objects) in a redb database file, so it survives
/// restarts like a real card. Point OpenSC at it as at a real SmartCard-HSM.
#[derive(Parser)]
#[command(name = "sc-hsm-emulator", version, about, long_about)]
struct Cli {
    /// More log output (-v: every APDU, -vv: everything). RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Insert the card into vpcd and serve it until SIGINT/SIGTERM.
    ///
    /// pcscd must run with the vsmartcard vpcd driver (Debian: pcscd, vsmartcard-vpcd).
    /// The card reconnects whenever pcscd restarts.
    Run {
        /// Card database; created (mode 0600) with a new card if it does not exist.
        /// [default: $XDG_DATA_HOME/sc-hsm-emulator/card.redb]
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,

        /// Where vpcd listens: slot 0 is port 35963, slot 1 is 35964.
        #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:35963")]
        vpcd: Endpoint,
    },
}

fn default_db() -> Result<PathBuf, String> {
    let data_home = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|home| PathBuf::from(home).join(".local/share"))
            .ok_or("neither XDG_DATA_HOME nor HOME is set: give --db PATH")?,
    };
    Ok(data_home.join("sc-hsm-emulator").join("card.redb"))
}

fn init_logging(verbose: u8) {
    let default = match verbose {
        0 => "info",
        1 => "debug",
        _ => "trace",
    };
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(default));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .init();
}

/// Completes on the first SIGINT or SIGTERM.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        tracing::error!("cannot install signal handlers; stop with SIGKILL");
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
        _ = int.recv() => tracing::info!("SIGINT: shutting down"),
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Run { db, vpcd } => {
            let path = match db {
                Some(path) => path,
                None => default_db()?,
            };
            let store = RedbStore::open(&path).map_err(|e| e.to_string())?;
            let mut card = Card::open(Box::new(store)).map_err(|e| e.to_string())?;
            tracing::info!(db = %path.display(), serial = card.serial(), vpcd = %vpcd, "SmartCard-HSM emulator ready");
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .map_err(|e| format!("cannot start the runtime: {e}"))?;
            runtime.block_on(vpcd_bridge::run(&mut card, &vpcd, shutdown_signal()));
            Ok(())
        }
    }
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("sc-hsm-emulator: {message}");
            ExitCode::FAILURE
        }
    }
}

//! `sc-hsm-emulator`: an emulated SmartCard-HSM in a vpcd virtual reader.

use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod sandbox;
use emulator::{Card, Limits, RedbStore};
use vpcd_bridge::Endpoint;

/// An emulated CardContact SmartCard-HSM for pcscd's vpcd virtual reader.
///
/// The card keeps its state (PINs, keys, objects) in a redb database file, so it survives
/// restarts like a real card. Point OpenSC at it as at a real SmartCard-HSM.
#[cfg(test)]
mod tests {
    #[test]
    fn databases_of_several_cards() {
        use std::path::Path;
        assert_eq!(
            super::card_db(Path::new("/d/card.redb"), 0),
            Path::new("/d/card.redb")
        );
        assert_eq!(
            super::card_db(Path::new("/d/card.redb"), 1),
            Path::new("/d/card-1.redb")
        );
        assert_eq!(
            super::card_db(Path::new("/d/card"), 2),
            Path::new("/d/card-2")
        );
    }
}

#[derive(Parser)]
#[command(name = "sc-hsm-emulator", version, about, long_about)]
struct Cli {
    /// More log output (-v: every APDU, -vv: everything). RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    verbose: u8,

    #[command(subcommand)]
    command: Command,
}

/// Ready-made cards.
#[derive(Clone, Copy, Debug, clap::ValueEnum)]
enum Profile {
    /// The card of the OpenSC wiki page's `pkcs15-tool -D` listing.
    Demo,
}

/// How a new card is made: shared by `init`, `run` and `sandbox`.
#[derive(clap::Args, Debug, Clone, Copy)]
struct Making {
    /// Deterministic, INSECURE card for reproducible tests: the same seed and the same
    /// commands give the same serial and keys. A card made with a seed needs it every time.
    #[arg(long, value_name = "N")]
    seed: Option<u64>,

    /// Make the card from a profile: `demo` is the card of the OpenSC wiki's
    /// `pkcs15-tool -D` listing (PIN 648219, SO-PIN 3537363231383830, seven "Joe Doe" keys
    /// with certificates).
    #[arg(long, value_enum, value_name = "NAME")]
    profile: Option<Profile>,
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

        /// Serve N cards from this one process: card i uses vpcd port PORT+i and its own
        /// database (PATH for card 0, PATH with "-i" before the extension for the others).
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
        cards: u16,

        /// Storage of each card in bytes: files and keys, 16 bytes per object on top.
        /// A full card answers 6A84 (a real SmartCard-HSM 4K has about 76 KB).
        #[arg(long, value_name = "BYTES", default_value_t = Limits::default().storage_bytes)]
        storage: usize,

        /// Largest file of each card, in bytes.
        #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_file_size)]
        max_file_size: usize,

        /// Most keys on each card, besides the device key.
        #[arg(long, value_name = "N", default_value_t = Limits::default().max_keys)]
        max_keys: usize,

        #[command(flatten)]
        making: Making,
        /// Write a trace of every APDU to FILE: time, command, what P1/P2 mean, lengths,
        /// status word and its meaning, duration. Never PINs, keys or other data.
        /// With several cards, card i writes FILE with "-i" before the extension.
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,

        /// As --trace, as JSON lines (one object per APDU).
        #[arg(long, value_name = "FILE")]
        trace_json: Option<PathBuf>,

        /// Create this file once pcscd has seen every card (used by `sandbox`).
        #[arg(long, value_name = "PATH", hide = true)]
        ready_file: Option<PathBuf>,
    },

    /// Run COMMAND against the card in a private pcscd, then tear everything down.
    ///
    /// Starts pcscd with the vpcd driver and the card(s) in private namespaces (no system pcscd
    /// is touched or needed), waits until the card is present, runs COMMAND with
    /// PCSCLITE_CSOCK_NAME pointing at that pcscd, and exits with COMMAND's exit code:
    ///
    ///     sc-hsm-emulator sandbox -- pkcs11-tool -L
    ///     sc-hsm-emulator sandbox --db card.redb -- ./run-my-pkcs11-tests.sh
    ///
    /// Without --db the card is a new one, thrown away afterwards. Runs as root, or as a
    /// normal user where user namespaces are enabled. Needs pcscd, vsmartcard-vpcd,
    /// util-linux and iproute2.
    Sandbox {
        /// Card database to use (for example one made with `init`). [default: a new card]
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,

        #[command(flatten)]
        making: Making,

        /// Write an APDU trace to FILE (see `run --trace`).
        #[arg(long, value_name = "FILE")]
        trace: Option<PathBuf>,

        /// Write an APDU trace as JSON lines to FILE.
        #[arg(long, value_name = "FILE")]
        trace_json: Option<PathBuf>,

        /// Number of cards (vpcd slots 0..N-1; one pcscd has two).
        #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=2))]
        cards: u16,

        /// The command and its arguments.
        #[arg(last = true, required = true, value_name = "COMMAND")]
        command: Vec<String>,
    },

    /// Initialise a card offline, as `sc-hsm-tool --initialize` would through a reader.
    ///
    /// Creates the card if the database does not exist. Re-initialising an initialised card
    /// needs its SO-PIN (a wrong one costs an SO-PIN try) and erases every key and object.
    /// The card must not be running.
    Init {
        /// Card database. [default: $XDG_DATA_HOME/sc-hsm-emulator/card.redb]
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,

        /// Security officer PIN: 16 hexadecimal digits (8 bytes).
        #[arg(long, value_name = "HEX16", default_value = "3537363231383830")]
        so_pin: String,

        /// User PIN: 6 to 16 characters.
        #[arg(long, value_name = "PIN", default_value = "648219")]
        pin: String,

        /// Token label shown by PKCS#11 (without one, middleware shows "SmartCard-HSM").
        #[arg(long)]
        label: Option<String>,

        /// Number of DKEK shares to import later; 0 makes the card generate a DKEK; without
        /// the option the card has no DKEK and cannot wrap keys.
        #[arg(long, value_name = "N")]
        dkek_shares: Option<u8>,

        /// User PIN retry counter.
        #[arg(long, value_name = "N", default_value_t = 3)]
        pin_retry: u8,

        #[command(flatten)]
        making: Making,
    },

    /// Write a portable snapshot of a card (versioned, checksummed) to FILE.
    ///
    /// The snapshot holds the card's keys as its database does: keep it as private (it is
    /// written with mode 0600). `import` makes the same card (serial, keys, counters) again.
    /// The card must not be running.
    Export {
        /// Card database. [default: $XDG_DATA_HOME/sc-hsm-emulator/card.redb]
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,

        /// The snapshot file to write.
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
    },

    /// Make a card from a snapshot written by `export`; a damaged snapshot is refused.
    Import {
        /// Card database to create; it must not hold a card yet.
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,

        /// The snapshot file to read.
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,
    },

    /// Show a card: serial, version, PIN tries, DKEK, keys, certificates and data objects.
    ///
    /// The card must not be running (its database is locked while it is).
    Status {
        /// Card database. [default: $XDG_DATA_HOME/sc-hsm-emulator/card.redb]
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,
    },
}

/// A tracer writing text and/or JSON lines to files (created or truncated).
#[allow(clippy::type_complexity)]
fn tracer(
    text: Option<&Path>,
    json: Option<&Path>,
) -> Result<Option<Box<dyn FnMut(&emulator::tools::trace::TraceEvent) + Send>>, String> {
    use std::io::Write;
    let open = |path: &Path| {
        std::fs::File::create(path)
            .map(std::io::LineWriter::new)
            .map_err(|e| format!("cannot write the trace {}: {e}", path.display()))
    };
    let mut text = text.map(open).transpose()?;
    let mut json = json.map(open).transpose()?;
    if text.is_none() && json.is_none() {
        return Ok(None);
    }
    Ok(Some(Box::new(move |event| {
        let now = std::time::SystemTime::now();
        if let Some(out) = text.as_mut() {
            let _ = writeln!(out, "{}", event.to_text(now));
        }
        if let Some(out) = json.as_mut() {
            let _ = writeln!(out, "{}", event.to_json(now));
        }
    })))
}

/// `--db`, or the default database.
fn db_path(db: Option<PathBuf>) -> Result<PathBuf, String> {
    match db {
        Some(path) => Ok(path),
        None => default_db(),
    }
}

/// The database of card `index` when a process serves several.
fn card_db(base: &Path, index: u16) -> PathBuf {
    if index == 0 {
        return base.to_path_buf();
    }
    let stem = base
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match base.extension() {
        Some(ext) => format!("{stem}-{index}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{index}"),
    };
    base.with_file_name(name)
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

fn runtime() -> Result<tokio::runtime::Runtime, String> {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the runtime: {e}"))
}

/// Opens an existing card (or a new one for `init`) from its database, seeded or not.
fn open_card(path: &Path, create: bool, seed: Option<u64>) -> Result<Card, String> {
    if !create && !path.exists() {
        return Err(format!("no card database at {}", path.display()));
    }
    let store = Box::new(RedbStore::open(path).map_err(|e| e.to_string())?);
    match seed {
        Some(seed) => Card::open_seeded(store, seed),
        None => Card::open(store),
    }
    .map_err(|e| e.to_string())
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Init {
            db,
            so_pin,
            pin,
            label,
            dkek_shares,
            pin_retry,
            making: Making { seed, profile },
        } => {
            let path = db_path(db)?;
            let mut card = open_card(&path, true, seed)?;
            if let Some(Profile::Demo) = profile {
                emulator::tools::profile::demo(&mut card)?;
                println!("Made the demo card {} in {}", card.serial(), path.display());
                return Ok(());
            }
            let options = emulator::tools::admin::InitOptions {
                so_pin,
                pin,
                label,
                dkek_shares,
                pin_retry,
            };
            emulator::tools::admin::initialize(&mut card, &options)?;
            println!(
                "Initialised the card {} in {}",
                card.serial(),
                path.display()
            );
            Ok(())
        }
        Command::Export { db, out } => {
            let path = db_path(db)?;
            if !path.exists() {
                return Err(format!("no card database at {}", path.display()));
            }
            let snapshot = RedbStore::open(&path)
                .and_then(|s| s.snapshot())
                .map_err(|e| e.to_string())?;
            let mut file = std::fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&out)
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            std::io::Write::write_all(&mut file, &snapshot)
                .map_err(|e| format!("cannot write {}: {e}", out.display()))?;
            println!("Exported {} to {}", path.display(), out.display());
            Ok(())
        }
        Command::Import { db, input } => {
            let path = db_path(db)?;
            let snapshot = zeroize::Zeroizing::new(
                std::fs::read(&input)
                    .map_err(|e| format!("cannot read {}: {e}", input.display()))?,
            );
            let existed = path.exists();
            let mut store = RedbStore::open(&path).map_err(|e| e.to_string())?;
            if let Err(e) = store.restore(&snapshot) {
                drop(store);
                if !existed {
                    let _ = std::fs::remove_file(&path);
                }
                return Err(e.to_string());
            }
            println!("Imported {} into {}", input.display(), path.display());
            Ok(())
        }
        Command::Sandbox {
            db,
            making: Making { seed, profile },
            trace,
            trace_json,
            cards,
            command,
        } => {
            let absolute = |p: PathBuf| std::path::absolute(&p).unwrap_or(p);
            let mut run_args = Vec::new();
            if let Some(seed) = seed {
                run_args.extend(["--seed".to_string(), seed.to_string()]);
            }
            if let Some(Profile::Demo) = profile {
                run_args.extend(["--profile".to_string(), "demo".to_string()]);
            }
            for (flag, file) in [("--trace", trace), ("--trace-json", trace_json)] {
                if let Some(file) = file {
                    run_args.push(flag.to_string());
                    run_args.push(absolute(file).to_string_lossy().into_owned());
                }
            }
            let status = sandbox::run(sandbox::Options {
                db: db.map(absolute),
                run_args,
                cards,
                verbose: cli.verbose,
                command,
            })?;
            // COMMAND's exit code becomes ours (128 + signal if it was killed).
            let code = status.code().unwrap_or_else(|| {
                128 + std::os::unix::process::ExitStatusExt::signal(&status).unwrap_or(0)
            });
            std::process::exit(code);
        }
        Command::Status { db } => {
            let path = db_path(db)?;
            if !path.exists() {
                return Err(format!("no card database at {}", path.display()));
            }
            // Status changes nothing and draws no randomness: seeded cards open too.
            let store = RedbStore::open(&path).map_err(|e| e.to_string())?;
            let card = Card::open_with_rng(Box::new(store), emulator::crypto::rng::system())
                .map_err(|e| e.to_string())?;
            print!("{}", emulator::tools::report::Report::of(&card));
            Ok(())
        }
        Command::Run {
            db,
            vpcd,
            cards,
            storage,
            max_file_size,
            max_keys,
            making: Making { seed, profile },
            trace,
            trace_json,
            ready_file,
        } => {
            let base = db_path(db)?;
            let limits = Limits {
                storage_bytes: storage,
                max_file_size,
                max_keys,
            };
            // Open every card first: a locked or damaged database stops the start.
            let mut opened = Vec::new();
            for index in 0..cards {
                let path = card_db(&base, index);
                // Each card of a seeded process gets its own seed (seed + index).
                let seed = seed.map(|s| s.wrapping_add(u64::from(index)));
                let new = !path.exists();
                let mut card = open_card(&path, true, seed)?.with_limits(limits);
                if let (true, Some(Profile::Demo)) = (new, profile) {
                    emulator::tools::profile::demo(&mut card)?;
                }
                let text = trace.as_ref().map(|f| card_db(f, index));
                let json = trace_json.as_ref().map(|f| card_db(f, index));
                card.set_tracer(tracer(text.as_deref(), json.as_deref())?);
                let endpoint = Endpoint {
                    host: vpcd.host.clone(),
                    port: vpcd
                        .port
                        .checked_add(index)
                        .ok_or("vpcd port out of range")?,
                };
                tracing::info!(db = %path.display(), serial = card.serial(), vpcd = %endpoint, "SmartCard-HSM emulator ready");
                opened.push((card, endpoint));
            }
            // One thread per card, so that a slow command (RSA-4096 key generation) on one
            // card never holds up another.
            let (stop, stopped) = tokio::sync::watch::channel(false);
            let present = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
            let total = opened.len();
            let threads: Vec<_> = opened
                .into_iter()
                .map(|(mut card, endpoint)| {
                    let mut stopped = stopped.clone();
                    let present = std::sync::Arc::clone(&present);
                    let ready_file = ready_file.clone();
                    std::thread::spawn(move || -> Result<(), String> {
                        let on_present = move || {
                            let seen = present.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
                            if let (true, Some(file)) = (seen == total, ready_file) {
                                if let Err(e) = std::fs::write(&file, b"") {
                                    tracing::error!(file = %file.display(), error = %e, "cannot write the ready file");
                                }
                            }
                        };
                        let shutdown = async move {
                            let _ = stopped.wait_for(|stop| *stop).await;
                        };
                        runtime()?.block_on(vpcd_bridge::link::run_notifying(&mut card, &endpoint, shutdown, on_present));
                        Ok(())
                    })
                })
                .collect();
            runtime()?.block_on(shutdown_signal());
            let _ = stop.send(true);
            for thread in threads {
                thread
                    .join()
                    .map_err(|_| "a card thread panicked".to_string())??;
            }
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

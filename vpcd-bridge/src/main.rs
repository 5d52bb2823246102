//! `sc-hsm-emulator`: an emulated SmartCard-HSM in a vpcd virtual reader. `main` parses the
//! command line ([`cli`]) and hands each subcommand to its function: `run` ([`serve`]),
//! `sandbox` ([`sandbox`]), `init`, `status`, `export`, `import` ([`offline`]).

// No unwrap or expect outside tests: every failure is a message for the user.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod cli;
mod fleet;
mod fleet_config;
mod offline;
mod sandbox;
mod serve;

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use cli::{Cli, Command, Making, PkiCommand, WhichPki};
use emulator::model::pki::Pki;
use emulator::store::pki_file;
use emulator::{Card, RedbStore, Store};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match run(cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("sc-hsm-emulator: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the subcommand; its exit code, or an error sentence for the user.
fn run(cli: Cli) -> Result<ExitCode, String> {
    let done = |result: Result<(), String>| result.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Run(args) => done(serve::run(args)),
        Command::Serve {
            config,
            check: true,
        } => done(fleet::check(&config)),
        Command::Serve { config, .. } => done(fleet::serve(&config)),
        Command::Sandbox(args) => sandbox::run(args, cli.verbose),
        Command::Init(args) => done(offline::init(args)),
        Command::Export {
            db,
            out,
            encrypt,
            passphrase_file,
        } => {
            let passphrase = encrypt.then_some(passphrase_file.as_deref());
            done(offline::export(&db_path(db)?, &out, passphrase))
        }
        Command::Import {
            db,
            input,
            passphrase_file,
        } => done(offline::import(
            &db_path(db)?,
            &input,
            passphrase_file.as_deref(),
        )),
        Command::Status { db, json } => done(offline::status(&db_path(db)?, json)),
        Command::Pki(PkiCommand::Export {
            which,
            out,
            out_dir,
        }) => done(offline::pki_export(
            &pki_path(which)?,
            out.as_deref(),
            out_dir.as_deref(),
        )),
        Command::Pki(PkiCommand::Show { which }) => done(offline::pki_show(&pki_path(which)?)),
        Command::ReaderConfig { cards, dir } => {
            let conf = vpcd_bridge::private_pcscd::write_reader_config(&dir, cards)?;
            println!("{}", conf.display());
            Ok(ExitCode::SUCCESS)
        }
    }
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

/// `--db`, or the default database `$XDG_DATA_HOME/sc-hsm-emulator/card.redb`.
fn db_path(db: Option<PathBuf>) -> Result<PathBuf, String> {
    if let Some(path) = db {
        return Ok(path);
    }
    let data_home = match std::env::var_os("XDG_DATA_HOME").filter(|v| !v.is_empty()) {
        Some(dir) => PathBuf::from(dir),
        None => std::env::var_os("HOME")
            .filter(|v| !v.is_empty())
            .map(|home| PathBuf::from(home).join(".local/share"))
            .ok_or("neither XDG_DATA_HOME nor HOME is set: give --db PATH")?,
    };
    Ok(data_home.join("sc-hsm-emulator").join("card.redb"))
}

/// `path` with `-index` before the extension: the database (or trace) of card `index` when
/// one process serves several.
fn numbered(path: &Path, index: u16) -> PathBuf {
    if index == 0 {
        return path.to_path_buf();
    }
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = match path.extension() {
        Some(ext) => format!("{stem}-{index}.{}", ext.to_string_lossy()),
        None => format!("{stem}-{index}"),
    };
    path.with_file_name(name)
}

/// Whether the database at `path` is missing or empty: opening it makes a new card (which a
/// profile or the wiki's initialisation then sets up).
fn holds_no_card_yet(path: &Path) -> bool {
    !path.exists() || std::fs::metadata(path).is_ok_and(|m| m.len() == 0)
}

/// The PKI file kept beside the card database `db`.
fn pki_beside(db: &Path) -> PathBuf {
    db.with_file_name("emulator-pki.bin")
}

/// The PKI file `pki` works on: `--pki`, or the one beside `--db` (or the default database).
fn pki_path(which: WhichPki) -> Result<PathBuf, String> {
    match which.pki {
        Some(file) => Ok(file),
        None => Ok(pki_beside(&db_path(which.db)?)),
    }
}

/// Where a new card's PKI comes from: `--pki FILE`, the seed of `--seed`, or the file beside
/// its database. Cards of one `run --cards N --seed S` share the PKI of S.
#[derive(Clone, Debug)]
struct PkiChoice {
    file: Option<PathBuf>,
    seed: Option<u64>,
}

impl PkiChoice {
    fn of(making: &Making) -> PkiChoice {
        PkiChoice {
            file: making.pki.clone(),
            seed: making.seed,
        }
    }

    /// The PKI for a new card whose database is `db`.
    fn resolve(&self, db: &Path) -> Result<Pki, String> {
        let file = match (&self.file, self.seed) {
            (Some(file), _) => file.clone(),
            (None, Some(seed)) => {
                return Pki::from_seed(seed)
                    .map_err(|e| format!("cannot make the PKI of --seed {seed}: {e:?}"))
            }
            (None, None) => pki_beside(db),
        };
        pki_file::load_or_create(&file, &mut *emulator::crypto::rng::system())
            .map_err(|e| e.to_string())
    }
}

/// Opens an existing card (or a new one when `create`) from its database, seeded or not; a
/// new card is made under the PKI `pki` names.
fn open_card(
    path: &Path,
    create: bool,
    seed: Option<u64>,
    pki: &PkiChoice,
) -> Result<Card, String> {
    if !create && !path.exists() {
        return Err(format!("no card database at {}", path.display()));
    }
    let mut store = RedbStore::open(path).map_err(|e| e.to_string())?;
    // Only a new card needs (and may create) the PKI.
    let is_new = store.load().map_err(|e| e.to_string())?.identity.is_none();
    let pki = if is_new {
        Some(pki.resolve(path)?)
    } else {
        None
    };
    Card::open_issued(Box::new(store), seed, pki.as_ref()).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    #[test]
    fn databases_of_several_cards() {
        use std::path::Path;
        assert_eq!(
            super::numbered(Path::new("/d/card.redb"), 0),
            Path::new("/d/card.redb")
        );
        assert_eq!(
            super::numbered(Path::new("/d/card.redb"), 1),
            Path::new("/d/card-1.redb")
        );
        assert_eq!(
            super::numbered(Path::new("/d/card"), 2),
            Path::new("/d/card-2")
        );
    }
}

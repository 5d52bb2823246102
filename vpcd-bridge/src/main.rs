//! `sc-hsm-emulator`: an emulated SmartCard-HSM in a vpcd virtual reader. `main` parses the
//! command line ([`cli`]) and hands each subcommand to its function: `run` ([`run`]),
//! `serve` ([`fleet`]), `sandbox` ([`sandbox`]), `init`, `status`, `export`, `import` and `pki`
//! ([`offline`]). Cards are opened or made in [`cards`] and served by [`worker`]s.

// No unwrap or expect outside tests: every failure is a message for the user.
#![cfg_attr(not(test), deny(clippy::unwrap_used, clippy::expect_used))]

mod cards;
mod cli;
mod control;
mod fleet;
mod fleet_config;
mod http;
mod manual;
mod offline;
mod run;
mod sandbox;
mod trace;
mod worker;

use std::path::PathBuf;
use std::process::ExitCode;

use cards::{db_path, pki_beside};
use clap::Parser;
use cli::{Cli, Command, PkiCommand, WhichPki};

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging(cli.verbose);
    match dispatch(cli) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("sc-hsm-emulator: {message}");
            ExitCode::FAILURE
        }
    }
}

/// Runs the subcommand; its exit code, or an error sentence for the user.
fn dispatch(cli: Cli) -> Result<ExitCode, String> {
    let done = |result: Result<(), String>| result.map(|()| ExitCode::SUCCESS);
    match cli.command {
        Command::Run(args) => done(run::run(args)),
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
        Command::Control(args) => control::client::run(args),
        Command::Trace(command) => trace::run(command),
        Command::Completions { shell } => done(manual::completions(shell)),
        Command::Man { out_dir } => done(manual::man(out_dir.as_deref())),
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

/// The PKI file `pki` works on: `--pki`, or the one beside `--db` (or the default database).
fn pki_path(which: WhichPki) -> Result<PathBuf, String> {
    match which.pki {
        Some(file) => Ok(file),
        None => Ok(pki_beside(&db_path(which.db)?)),
    }
}

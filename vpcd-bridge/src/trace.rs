//! `trace show` and `trace replay`: a data trace read by a person, and a recording (a data
//! trace, an OpenSC debug log, pcsc-spy output) replayed against a copy of a card.

use std::io::{IsTerminal, Read, Write};
use std::path::Path;
use std::process::ExitCode;

use emulator::tools::replay::{self, Outcome, Secrets};
use emulator::DataTraceEvent;

use crate::cards::{holds_no_card_yet, open_card, PkiChoice};
use std::path::PathBuf;

use clap::Subcommand;

use crate::cli::Making;

/// What `trace` does.
#[derive(Subcommand)]
pub enum TraceCommand {
    /// Print a trace for a person: every exchange with its fields decoded, aligned, in colour
    /// on a terminal. Reads the JSON lines of --trace-data-json (or the one-line events of
    /// --trace-json).
    Show {
        /// The trace file ("-": standard input).
        file: PathBuf,

        /// Only the exchanges of this command (its name, as "VERIFY" or "sign", or its INS in
        /// hex, as "20"); repeatable.
        #[arg(long, value_name = "NAME")]
        only: Vec<String>,

        /// Colour: auto (on a terminal), always or never.
        #[arg(long, value_name = "WHEN", default_value = "auto")]
        color: ColorWhen,
    },

    /// Send the commands of a recording to a card, in order, and report per command where the
    /// answer differs: status word, then field by field (signatures, challenges, generated
    /// keys and, unless --exact, what depends on the card's contents, compared by shape).
    /// Exits 0 only when nothing differs.
    ///
    /// Recordings: --trace-data-json traces, OpenSC debug logs (old "Outgoing APDU data [ n
    /// bytes]" and new "Outgoing APDU (n bytes)" blocks) and pcsc-spy output. The card is a
    /// temporary copy of --db (made new, with --profile and --seed, if --db does not exist):
    /// the database itself is not changed. Secrets a data trace took out are given back with
    /// --secret (the first user PIN and SO-PIN default to the wiki's 648219 and
    /// 3537363231383830); a command needing one that is not given is skipped and said so, as
    /// are commands under secure messaging.
    #[command(after_help = "Examples:
  sc-hsm-emulator run --seed 7 --profile demo --db a.redb --trace-data-json t.json
  sc-hsm-emulator trace replay t.json --db fresh.redb --seed 7 --profile demo
  sc-hsm-emulator trace replay opensc-debug.log --db card.redb
  sc-hsm-emulator trace replay t.json --db b.redb --secret user-pin#2=ascii:123456")]
    Replay {
        /// The recording.
        file: PathBuf,

        /// The card to replay against (copied; never changed).
        #[arg(long, value_name = "PATH")]
        db: PathBuf,

        #[command(flatten)]
        making: Making,

        /// A secret the recording took out: KIND#N=HEX or KIND#N=ascii:TEXT (KIND: user-pin,
        /// so-pin, dkek-share, wrapped-key-body, ...; N: which value of that kind, from 1, as
        /// the trace numbers them). Repeatable.
        #[arg(long, value_name = "KIND#N=VALUE")]
        secret: Vec<String>,

        /// Compare what depends on the card's contents (serials, files, KCVs) exactly too.
        #[arg(long)]
        exact: bool,

        /// Select the SmartCard-HSM application first (for a recording that starts after the
        /// host selected it, as an excerpt of a debug log does).
        #[arg(long)]
        select: bool,

        /// Print every command, not only those that differ or were skipped.
        #[arg(long)]
        all: bool,
    },
}

/// When `trace show` colours its output.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ColorWhen {
    Auto,
    Always,
    Never,
}

pub fn run(command: TraceCommand) -> Result<ExitCode, String> {
    match command {
        TraceCommand::Show { file, only, color } => show(&file, &only, color),
        TraceCommand::Replay {
            file,
            db,
            making,
            secret,
            exact,
            select,
            all,
        } => {
            let mut secrets = Secrets::default();
            for s in &secret {
                secrets.add(s)?;
            }
            replay_file(
                &file,
                &db,
                &making,
                &mut secrets,
                replay::Options { exact, select },
                all,
            )
        }
    }
}

fn read(file: &Path) -> Result<String, String> {
    if file == Path::new("-") {
        let mut text = String::new();
        std::io::stdin()
            .read_to_string(&mut text)
            .map_err(|e| format!("cannot read standard input: {e}"))?;
        return Ok(text);
    }
    let bytes = std::fs::read(file).map_err(|e| format!("cannot read {}: {e}", file.display()))?;
    Ok(String::from_utf8_lossy(&bytes).into_owned())
}

/// Whether an exchange named `command` with INS `ins` passes `--only`.
fn wanted(only: &[String], command: &str, ins: &str) -> bool {
    only.is_empty()
        || only
            .iter()
            .any(|o| o.eq_ignore_ascii_case(command) || o.eq_ignore_ascii_case(ins))
}

fn show(file: &Path, only: &[String], color: ColorWhen) -> Result<ExitCode, String> {
    let text = read(file)?;
    let colour = match color {
        ColorWhen::Always => true,
        ColorWhen::Never => false,
        ColorWhen::Auto => std::io::stdout().is_terminal(),
    };
    let mut out = std::io::stdout().lock();
    let mut shown = 0usize;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(line).map_err(|e| {
            format!(
                "{}: line {}: not a trace of --trace-data-json or --trace-json: {e}",
                file.display(),
                i + 1
            )
        })?;
        let rendered = if value.get("apdu").is_some() {
            let event = DataTraceEvent::from_json(line)
                .map_err(|e| format!("{}: line {}: {e}", file.display(), i + 1))?;
            let ins = event
                .apdu
                .split_whitespace()
                .nth(1)
                .unwrap_or("")
                .to_string();
            if !wanted(only, &event.command, &ins) {
                continue;
            }
            event.to_text(colour)
        } else {
            let command = value.get("command").and_then(|v| v.as_str()).unwrap_or("");
            let ins = value.get("ins").and_then(|v| v.as_str()).unwrap_or("");
            if !wanted(only, command, ins) {
                continue;
            }
            format!("{}\n", emulator::tools::trace::short_line(&value, colour))
        };
        shown += 1;
        if out.write_all(rendered.as_bytes()).is_err() {
            // A closed pipe (`| head`): stop quietly.
            return Ok(ExitCode::SUCCESS);
        }
    }
    if shown == 0 && !only.is_empty() {
        eprintln!(
            "sc-hsm-emulator: no exchange of {} in {}",
            only.join(", "),
            file.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}

fn replay_file(
    file: &Path,
    db: &Path,
    making: &Making,
    secrets: &mut Secrets,
    options: replay::Options,
    all: bool,
) -> Result<ExitCode, String> {
    let steps = replay::load(&read(file)?).map_err(|e| format!("{}: {e}", file.display()))?;
    if steps.is_empty() {
        return Err(format!("{}: no command to replay", file.display()));
    }
    // A copy of the card: the replay changes what it holds.
    let dir = tempfile::tempdir().map_err(|e| format!("cannot make a temporary directory: {e}"))?;
    let copy = dir.path().join("card.redb");
    let new = holds_no_card_yet(db);
    if !new {
        std::fs::copy(db, &copy).map_err(|e| format!("cannot copy {}: {e}", db.display()))?;
    }
    let pki = PkiChoice {
        file: making.pki.clone(),
        seed: making.seed,
    };
    let mut card = open_card(&copy, true, making.seed, &pki)?;
    if new {
        making.profile.unwrap_or_default().make(&mut card)?;
    }
    card.power_on();
    let report = replay::replay(&mut card, steps, secrets, options);
    for note in &secrets.defaults_used {
        println!("note: {note}");
    }
    for (at, command, outcome) in &report.steps {
        match outcome {
            Outcome::Matched if all => println!("{at:<10} {command:<30} same"),
            Outcome::Matched => {}
            Outcome::Skipped(why) => println!("{at:<10} {command:<30} skipped: {why}"),
            Outcome::Differs(lines) => {
                println!("{at:<10} {command:<30} DIFFERS");
                for line in lines {
                    println!("{:<12}{line}", "");
                }
            }
        }
    }
    let (matched, differed, skipped) = (report.matched(), report.differed(), report.skipped());
    println!(
        "{} commands: {} compared, {matched} the same, {differed} different, {skipped} skipped",
        report.steps.len(),
        matched + differed
    );
    Ok(if differed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

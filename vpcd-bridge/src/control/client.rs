//! `sc-hsm-emulator control [--socket PATH] [--json] VERB`: one request to a running card's
//! control socket (`$SC_HSM_EMULATOR_CONTROL` when `--socket` is not given, as `sandbox`
//! sets it). Prints the answer's line (or its JSON with `--json`); exits non-zero with the
//! card's or its own error otherwise.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use emulator::FaultRule;

use super::server::own_uid;

/// How long the client waits for an answer: a verb waits for the command the card is running,
/// and an RSA-4096 key generation can take a while.
const ANSWER_TIMEOUT: Duration = Duration::from_secs(300);

/// The options of `control`.
#[derive(Args, Debug)]
pub struct ControlArgs {
    /// The card's control socket. [default: $SC_HSM_EMULATOR_CONTROL]
    #[arg(long, value_name = "PATH")]
    pub socket: Option<PathBuf>,

    /// Print the answer as one JSON object ({"ok":..,"message":..,"data":..}).
    #[arg(long)]
    pub json: bool,

    #[command(subcommand)]
    pub verb: Verb,
}

#[derive(Subcommand, Debug)]
pub enum Verb {
    /// Pull the card out of the reader (pcscd and its clients see it leave). It stays out until
    /// `insert`.
    Remove,
    /// Put the card back into the reader.
    Insert,
    /// Power the card off and on: its session ends, pcscd sees it leave and come back.
    Reset,
    /// The card as JSON (what `status --json` shows), whether it is in the reader, its timing
    /// and its fault rules.
    State,
    /// Save the whole card under a name, or load a saved one in its place (a load is a removal
    /// and an insertion).
    #[command(subcommand)]
    Snapshot(SnapshotVerb),
    /// Fault rules: make commands fail, slow down, go unanswered, pull the card or cut its
    /// power.
    #[command(subcommand)]
    Fault(FaultVerb),
    /// The timing profile: `physical` (each command takes about as long as on the physical
    /// card) or `none` (as fast as possible); without a value, the one in force.
    Timing {
        #[arg(value_parser = ["physical", "none"])]
        profile: Option<String>,
    },
}

#[derive(Subcommand, Debug)]
pub enum SnapshotVerb {
    /// Save the whole card (kept by the running emulator, in memory, until it stops).
    Save { name: String },
    /// Put the card saved under NAME in the reader instead (same serial, keys, counters).
    Load { name: String },
    /// The names of the saved snapshots.
    List,
}

#[derive(Subcommand, Debug)]
pub enum FaultVerb {
    /// Add a rule (after the others; the first rule that fires on a command acts).
    Add(Box<FaultArgs>),
    /// The rules, with how often each saw its command and fired.
    List,
    /// Remove every rule.
    Clear,
}

/// A rule, as options or in its text form (`on=SIGN,status=6F00`).
#[derive(Args, Debug, Default)]
#[command(group(clap::ArgGroup::new("when").args(["nth", "every", "after", "probability"])))]
#[command(group(clap::ArgGroup::new("action").args(["status", "delay", "remove", "remove_after", "tear", "mute", "corrupt"])))]
pub struct FaultArgs {
    /// The rule in its text form, instead of the options.
    #[arg(value_name = "RULE", conflicts_with_all = ["on", "when", "action", "times", "seed"])]
    pub rule: Option<String>,
    /// The command: its name in the command table (SIGN, VERIFY, "UPDATE BINARY", ...) or its
    /// INS in hex.
    #[arg(long, value_name = "NAME|INS", required_unless_present = "rule")]
    pub on: Option<String>,
    /// Fire on the Nth such command only.
    #[arg(long, value_name = "N")]
    pub nth: Option<u64>,
    /// Fire on every Nth such command.
    #[arg(long, value_name = "N")]
    pub every: Option<u64>,
    /// Fire on every such command after the first N.
    #[arg(long, value_name = "N")]
    pub after: Option<u64>,
    /// Fire on each such command with probability P (0 to 1).
    #[arg(long, value_name = "P")]
    pub probability: Option<String>,
    /// The seed of --probability's draws. [default: 0]
    #[arg(long, value_name = "S", requires = "probability")]
    pub seed: Option<u64>,
    /// Fire at most N times (`forever`: no limit). [default: 1]
    #[arg(long, value_name = "N|forever")]
    pub times: Option<String>,
    /// Answer this status word instead of running the command.
    #[arg(long, value_name = "XXXX")]
    pub status: Option<String>,
    /// Run the command, answer MS milliseconds late.
    #[arg(long, value_name = "MS")]
    pub delay: Option<u64>,
    /// Pull the card before the command runs.
    #[arg(long)]
    pub remove: bool,
    /// Pull the card after the command ran and committed, before its answer.
    #[arg(long)]
    pub remove_after: bool,
    /// Cut the power during the command: committed whole or not at all, no answer.
    #[arg(long)]
    pub tear: bool,
    /// Never answer (until `reset`, `remove` or `insert`).
    #[arg(long)]
    pub mute: bool,
    /// Flip one bit of the answer's data.
    #[arg(long)]
    pub corrupt: bool,
}

impl FaultArgs {
    /// The rule's text form, checked.
    fn rule(&self) -> Result<FaultRule, String> {
        if let Some(text) = &self.rule {
            return text.parse().map_err(|e| format!("bad fault rule: {e}"));
        }
        let mut parts = vec![format!("on={}", self.on.as_deref().unwrap_or(""))];
        let numbers = [
            ("nth", self.nth),
            ("every", self.every),
            ("after", self.after),
        ];
        for (key, value) in numbers {
            if let Some(n) = value {
                parts.push(format!("{key}={n}"));
            }
        }
        if let Some(p) = &self.probability {
            parts.push(format!("probability={p},seed={}", self.seed.unwrap_or(0)));
        }
        if let Some(times) = &self.times {
            parts.push(format!("times={times}"));
        }
        if let Some(status) = &self.status {
            parts.push(format!("status={status}"));
        }
        if let Some(delay) = self.delay {
            parts.push(format!("delay={delay}"));
        }
        let flags = [
            ("remove", self.remove),
            ("remove-after", self.remove_after),
            ("tear", self.tear),
            ("mute", self.mute),
            ("corrupt", self.corrupt),
        ];
        parts.extend(
            flags
                .iter()
                .filter(|(_, on)| *on)
                .map(|(name, _)| name.to_string()),
        );
        parts
            .join(",")
            .parse()
            .map_err(|e| format!("bad fault rule: {e}"))
    }
}

impl Verb {
    /// The request line.
    fn line(&self) -> Result<String, String> {
        Ok(match self {
            Verb::Remove => "remove".into(),
            Verb::Insert => "insert".into(),
            Verb::Reset => "reset".into(),
            Verb::State => "state".into(),
            Verb::Snapshot(SnapshotVerb::Save { name }) => format!("snapshot save {name}"),
            Verb::Snapshot(SnapshotVerb::Load { name }) => format!("snapshot load {name}"),
            Verb::Snapshot(SnapshotVerb::List) => "snapshot list".into(),
            Verb::Fault(FaultVerb::Add(args)) => format!("fault add {}", args.rule()?),
            Verb::Fault(FaultVerb::List) => "fault list".into(),
            Verb::Fault(FaultVerb::Clear) => "fault clear".into(),
            Verb::Timing { profile: None } => "timing".into(),
            Verb::Timing {
                profile: Some(profile),
            } => format!("timing {profile}"),
        })
    }
}

/// Sends the verb, prints the answer; the exit code says whether the card did it.
pub fn run(args: ControlArgs) -> Result<ExitCode, String> {
    let socket = match args.socket.clone() {
        Some(path) => path,
        None => std::env::var_os("SC_HSM_EMULATOR_CONTROL")
            .filter(|v| !v.is_empty())
            .map(PathBuf::from)
            .ok_or("no control socket: give --socket PATH or set SC_HSM_EMULATOR_CONTROL (sandbox sets it for its command)")?,
    };
    let line = args.verb.line()?;
    let meta = std::fs::metadata(&socket)
        .map_err(|e| format!("no control socket at {}: {e}", socket.display()))?;
    if !meta.file_type().is_socket() {
        return Err(format!("{} is not a control socket", socket.display()));
    }
    match own_uid() {
        Some(me) if me != 0 && meta.uid() != me => {
            return Err(format!(
                "the control socket {} belongs to user {}, not to you (user {me}): refused",
                socket.display(),
                meta.uid()
            ))
        }
        _ => {}
    }
    let mut stream = std::os::unix::net::UnixStream::connect(&socket)
        .map_err(|e| format!("cannot reach the card at {}: {e}", socket.display()))?;
    stream
        .set_read_timeout(Some(ANSWER_TIMEOUT))
        .map_err(|e| e.to_string())?;
    stream
        .write_all(format!("{line}\n").as_bytes())
        .map_err(|e| format!("cannot send to {}: {e}", socket.display()))?;
    let mut reader = BufReader::new(stream);
    let (mut text, mut json) = (String::new(), String::new());
    reader
        .read_line(&mut text)
        .and_then(|_| reader.read_line(&mut json))
        .map_err(|e| format!("no answer from {}: {e}", socket.display()))?;
    let ok = text.starts_with("ok: ");
    if !ok && !text.starts_with("error: ") {
        return Err(format!(
            "{} answered something that is not a control answer: {:?}",
            socket.display(),
            text.trim_end()
        ));
    }
    match (args.json, ok) {
        (true, _) => println!("{}", json.trim_end()),
        (false, true) => println!("{}", &text.trim_end()["ok: ".len()..]),
        (false, false) => eprintln!("sc-hsm-emulator: {}", &text.trim_end()["error: ".len()..]),
    }
    Ok(if ok {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

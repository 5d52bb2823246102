//! The option groups several subcommands share: how a new card is made, how a test drives a
//! running card, and its traces.

use std::path::PathBuf;

use crate::cards::NewCard;

/// How a new card is made: shared by `init`, `run` and `sandbox`.
#[derive(clap::Args, Debug, Clone)]
pub struct Making {
    /// The emulator PKI new cards are certified under (made there if the file does not exist;
    /// mode 0600, it holds the CA keys). Cards of one PKI can verify each other (public-key
    /// authentication, XKEK key domains); give a fleet the same file. Existing cards keep
    /// their chain. [default: emulator-pki.bin beside the card database; with --seed: derived
    /// from the seed]
    #[arg(long, value_name = "FILE")]
    pub pki: Option<PathBuf>,

    /// Deterministic, INSECURE card for reproducible tests: the same seed and the same
    /// commands give the same serial and keys. A card made with a seed needs it every time.
    #[arg(long, value_name = "N")]
    pub seed: Option<u64>,

    /// What a new card is made as: `blank` (as from the factory), `initialized` (the OpenSC
    /// wiki's PINs: user PIN 648219, SO-PIN 3537363231383830) or `demo` (the card of the OpenSC
    /// wiki's `pkcs15-tool -D` listing: those PINs and seven "Joe Doe" keys with
    /// certificates). An existing card is served as it is. [default: run: blank; sandbox and
    /// init: initialized]
    #[arg(long, value_enum, value_name = "NAME")]
    pub profile: Option<NewCard>,
}

/// How a test drives the running card: shared by `run` and `sandbox`.
#[derive(clap::Args, Debug, Clone)]
pub struct Driving {
    /// A fault rule in force from the start (repeatable), in its text form:
    /// on=COMMAND[,nth=N|every=N|after=N|probability=P,seed=S][,times=N|forever],ACTION with
    /// ACTION one of status=XXXX, delay=MS, remove, remove-after, tear, mute, corrupt.
    /// Example: --fault 'on=SIGN,status=6F00'. See `control fault add --help`.
    #[arg(long, value_name = "RULE")]
    pub fault: Vec<String>,

    /// `physical`: each command takes about as long as on the physical card (key generation,
    /// signatures, PIN checks, file writes; the README's table); `none`: as fast as possible.
    #[arg(long, value_name = "PROFILE", default_value = "none", value_parser = parse_timing)]
    pub timing: emulator::Timing,
}

fn parse_timing(text: &str) -> Result<emulator::Timing, String> {
    text.parse()
}

/// APDU traces: shared by `run` and `sandbox`.
#[derive(clap::Args, Debug, Clone)]
pub struct Traces {
    /// Write a trace of every APDU to FILE: time, command, what P1/P2 mean, lengths,
    /// status word and its meaning, duration. Never PINs, keys or other data.
    /// With several cards, card i writes FILE with "-i" before the extension.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,

    /// As --trace, as JSON lines (one object per APDU).
    #[arg(long, value_name = "FILE")]
    pub trace_json: Option<PathBuf>,

    /// Write every command and answer in full to FILE, each data field decoded (TLV trees,
    /// CV certificates and requests, FCI/FCP, key and domain status, wrapped-key headers,
    /// secure messaging both protected and plain). PINs, session PINs, DKEK shares,
    /// deciphered data, key material and wrapped keys' bodies are taken out by field and
    /// marked with their length. Read it with `trace show`.
    #[arg(long, value_name = "FILE")]
    pub trace_data: Option<PathBuf>,

    /// As --trace-data, as JSON lines (one object per APDU): what `trace show` and
    /// `trace replay` read.
    #[arg(long, value_name = "FILE")]
    pub trace_data_json: Option<PathBuf>,
}

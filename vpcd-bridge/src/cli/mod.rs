//! The command line: every subcommand and option, parsed by clap. What each subcommand does
//! is in its own module ([`crate::run`], [`crate::fleet`], [`crate::sandbox`],
//! [`crate::offline`]).

use std::path::PathBuf;

use clap::{Parser, Subcommand};
use emulator::Limits;
use vpcd_bridge::Endpoint;

use crate::control::client::ControlArgs;

mod groups;
pub use groups::{Driving, Making, Traces};

/// An emulated CardContact SmartCard-HSM for pcscd's vpcd virtual reader.
///
/// The card keeps its state (PINs, keys, objects) in a redb database file, so it survives
/// restarts like a real card. Point OpenSC at it as at a real SmartCard-HSM.
#[derive(Parser)]
#[command(name = "sc-hsm-emulator", version, about, long_about)]
pub struct Cli {
    /// More log output (-v: every APDU, -vv: everything). RUST_LOG overrides it.
    #[arg(short, long, action = clap::ArgAction::Count, global = true)]
    pub verbose: u8,

    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand)]
pub enum Command {
    /// Insert the card into vpcd and serve it until SIGINT/SIGTERM.
    ///
    /// pcscd must run with the vsmartcard vpcd driver (Debian: pcscd, vsmartcard-vpcd).
    /// The card reconnects whenever pcscd restarts.
    Run(RunArgs),

    /// Serve the cards of a configuration file (TOML), each with its own database and vpcd
    /// slot, until SIGINT/SIGTERM; SIGHUP reads the file again.
    ///
    /// Each card connects, reconnects and fails on its own. SIGHUP stops the cards that left
    /// the file or changed and starts the new ones; a file with a mistake is reported and
    /// the running cards stay. With `http = "ADDRESS:PORT"`, GET /healthz and /metrics
    /// (Prometheus) are answered there.
    #[command(after_help = "The file:
  pki = \"emulator-pki.bin\"        # optional; relative paths start at the file's directory
  http = \"127.0.0.1:9180\"         # optional
  [[card]]
  name = \"room1-01\"               # unique
  db = \"room1-01.redb\"            # unique
  vpcd = \"10.0.0.5:35963\"         # unique
  profile = \"initialized\"         # optional: blank (default), initialized, demo")]
    Serve {
        /// The configuration file.
        #[arg(long, value_name = "FILE")]
        config: PathBuf,

        /// Only check the file (with the environment's ${NAME} values) and print the cards it
        /// names; serve nothing.
        #[arg(long)]
        check: bool,
    },

    /// Run COMMAND against the card in a private pcscd, then tear everything down.
    ///
    /// Starts pcscd with the vpcd driver and the card(s) in private namespaces (no system pcscd
    /// is touched or needed), waits until the card is present, runs COMMAND with
    /// PCSCLITE_CSOCK_NAME pointing at that pcscd, and exits with COMMAND's exit code (127 if
    /// COMMAND is not found, 126 if it cannot be run, 128 + N after signal N). COMMAND finds the
    /// card's control socket in SC_HSM_EMULATOR_CONTROL (see `control`) and this program in
    /// SC_HSM_EMULATOR.
    ///
    /// Without --db the card is new, initialised with the OpenSC wiki's PINs (user PIN 648219,
    /// SO-PIN 3537363231383830; --blank for a card as from the factory), and thrown away
    /// afterwards. Runs as root, or as a normal user where user namespaces are enabled. Needs
    /// pcscd, vsmartcard-vpcd, util-linux and iproute2 (found also outside PATH, in /usr/sbin
    /// and pcsc-lite's driver directories).
    ///
    /// Where no namespace can be made (a container without --privileged or CAP_SYS_ADMIN) and
    /// no pcscd runs, pcscd and the card run directly in the container, pcscd on the standard
    /// socket (-v says so); one sandbox at a time there.
    #[command(after_help = "Examples:
  sc-hsm-emulator sandbox -- pkcs11-tool -L
  sc-hsm-emulator sandbox --profile demo -- pkcs15-tool -D
  sc-hsm-emulator sandbox --db card.redb -- ./run-my-pkcs11-tests.sh")]
    Sandbox(SandboxArgs),

    /// Initialise a card offline, as `sc-hsm-tool --initialize` would through a reader.
    ///
    /// Creates the card if the database does not exist. Re-initialising an initialised card
    /// needs its SO-PIN (a wrong one costs an SO-PIN try) and erases every key and object: a
    /// card that holds keys or objects is initialised only with --force, and what was erased
    /// is said. The card must not be running.
    Init(InitArgs),

    /// Write a portable snapshot of a card (versioned, checksummed) to FILE.
    ///
    /// The snapshot holds the card's keys as its database does: keep it as private (it is
    /// written with mode 0600). `import` makes the same card (serial, keys, counters) again.
    /// The card must not be running.
    Export {
        /// Card database. [default: $XDG_DATA_HOME/sc-hsm-emulator/card.redb]
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,

        /// The snapshot file to write (mode 0600; replaced only once the new one is whole).
        #[arg(long, value_name = "FILE")]
        out: PathBuf,

        /// Encrypt the snapshot under a passphrase (Argon2id, XChaCha20-Poly1305), for backups
        /// that leave the machine. The passphrase is asked for on the terminal, or read from
        /// --passphrase-file.
        #[arg(long)]
        encrypt: bool,

        /// Read the passphrase from the first line of FILE instead of the terminal.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },

    /// Make a card from a snapshot written by `export`; a damaged snapshot is refused.
    Import {
        /// Card database to create; it must not hold a card yet.
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,

        /// The snapshot file to read (plain or encrypted).
        #[arg(long = "in", value_name = "FILE")]
        input: PathBuf,

        /// The passphrase of an encrypted snapshot, from the first line of FILE instead of the
        /// terminal.
        #[arg(long, value_name = "FILE")]
        passphrase_file: Option<PathBuf>,
    },

    /// Write a pcscd reader configuration with N vpcd slots into DIR.
    ///
    /// One vpcd reader entry has two slots; more need a copy of the vpcd driver each, which
    /// this writes to DIR/drivers. Start pcscd with `pcscd --config DIR/reader.conf.d` and the
    /// cards with `run --cards N`. Readers: "Virtual PCD 00 00", "Virtual PCD 00 01",
    /// "Virtual PCD 1 00 00", "Virtual PCD 1 00 01", ...
    ReaderConfig {
        /// Number of vpcd slots (ports 35963 onwards).
        #[arg(long, value_name = "N", value_parser = clap::value_parser!(u16).range(1..=16))]
        cards: u16,

        /// Where to write reader.conf.d/ and drivers/.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
    },

    /// Show a card: serial, version, PIN tries, DKEK, keys, certificates and data objects.
    ///
    /// The card must not be running (its database is locked while it is).
    Status {
        /// Card database. [default: $XDG_DATA_HOME/sc-hsm-emulator/card.redb]
        #[arg(long, value_name = "PATH")]
        db: Option<PathBuf>,

        /// One JSON object instead of text, for scripts.
        #[arg(long)]
        json: bool,
    },

    /// The emulator PKI: the root and device issuer CAs that certify new cards.
    #[command(subcommand)]
    Pki(PkiCommand),

    /// Drive a running card through its control socket: pull it out, put it back, reset it,
    /// show it, save and load snapshots, add fault rules, set its timing.
    #[command(
        after_help = "Examples (inside `sandbox`, which sets SC_HSM_EMULATOR_CONTROL):
  sc-hsm-emulator control remove
  sc-hsm-emulator control insert
  sc-hsm-emulator control fault add --on SIGN --status 6F00
  sc-hsm-emulator control fault add --on VERIFY --nth 2 --times 3 --delay 2000
  sc-hsm-emulator control fault add 'on=UPDATE BINARY,tear'
  sc-hsm-emulator control snapshot save clean
  sc-hsm-emulator control --json state"
    )]
    Control(ControlArgs),

    /// Read a data trace (`trace show`), or replay a recording against a card (`trace replay`).
    #[command(subcommand)]
    Trace(crate::trace::TraceCommand),

    /// Print a completion script for SHELL (bash, zsh or fish) to standard output.
    ///
    /// The Debian package installs them; by hand, put the output where the shell looks:
    /// bash: ~/.local/share/bash-completion/completions/sc-hsm-emulator; zsh: a file
    /// `_sc-hsm-emulator` in a directory of $fpath; fish:
    /// ~/.config/fish/completions/sc-hsm-emulator.fish.
    #[command(after_help = "Examples:
  sc-hsm-emulator completions bash > ~/.local/share/bash-completion/completions/sc-hsm-emulator
  source <(sc-hsm-emulator completions bash)")]
    Completions {
        /// The shell.
        #[arg(value_enum)]
        shell: crate::manual::Shell,
    },

    /// Write the manual pages, made from this program's own help: one for the program
    /// (sc-hsm-emulator.1) and one for each command (sc-hsm-emulator-sandbox.1,
    /// sc-hsm-emulator-pki-export.1, ...).
    ///
    /// With --out-dir every page is written into DIR and each file's path printed; without it,
    /// only the program's page is printed to standard output (`man -l -` shows it).
    #[command(after_help = "Examples:
  sc-hsm-emulator man --out-dir ~/.local/share/man/man1
  sc-hsm-emulator man | man -l -")]
    Man {
        /// The directory to write every page into (made if missing; pages there are replaced).
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },
}

/// What `pki` does.
#[derive(Subcommand)]
pub enum PkiCommand {
    /// Write the root's CV certificate to FILE (for host trust stores such as OpenPACE's,
    /// which look certificates up by the holder reference this prints). Makes the PKI first
    /// if there is none yet.
    Export {
        #[command(flatten)]
        which: WhichPki,

        /// Where to write the root certificate (binary CV certificate).
        #[arg(
            long,
            value_name = "FILE",
            required_unless_present = "out_dir",
            conflicts_with = "out_dir"
        )]
        out: Option<PathBuf>,

        /// Write it into DIR, named by its holder reference, as OpenPACE's CVC directory
        /// wants it (Debian: /etc/eac/cvc).
        #[arg(long, value_name = "DIR")]
        out_dir: Option<PathBuf>,
    },

    /// Show the PKI's file, root and issuer names.
    Show {
        #[command(flatten)]
        which: WhichPki,
    },
}

/// Which PKI file `pki` works on.
#[derive(clap::Args, Debug)]
pub struct WhichPki {
    /// The PKI file. [default: emulator-pki.bin beside --db]
    #[arg(long, value_name = "FILE")]
    pub pki: Option<PathBuf>,

    /// Card database whose directory holds the PKI. [default:
    /// $XDG_DATA_HOME/sc-hsm-emulator/card.redb]
    #[arg(long, value_name = "PATH", conflicts_with = "pki")]
    pub db: Option<PathBuf>,
}

/// The options of `run`.
#[derive(clap::Args, Debug)]
pub struct RunArgs {
    /// Card database; created (mode 0600) with a new card if it does not exist.
    /// [default: $XDG_DATA_HOME/sc-hsm-emulator/card.redb]
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// Where vpcd listens: slot 0 is port 35963, slot 1 is 35964.
    #[arg(long, value_name = "HOST:PORT", default_value = "127.0.0.1:35963")]
    pub vpcd: Endpoint,

    /// Serve N cards from this one process: card i uses vpcd port PORT+i and its own
    /// database (PATH for card 0, PATH with "-i" before the extension for the others).
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub cards: u16,

    /// Storage of each card in bytes: files and keys, 16 bytes per object on top.
    /// A full card answers 6A84 (a real SmartCard-HSM 4K has about 76 KB).
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().storage_bytes)]
    pub storage: usize,

    /// Largest file of each card, in bytes (at most 65535: files are addressed with 2-byte
    /// offsets).
    #[arg(long, value_name = "BYTES", default_value_t = Limits::default().max_file_size, value_parser = file_size)]
    pub max_file_size: usize,

    /// Most keys on each card, besides the device key.
    #[arg(long, value_name = "N", default_value_t = Limits::default().max_keys)]
    pub max_keys: usize,

    #[command(flatten)]
    pub making: Making,

    #[command(flatten)]
    pub traces: Traces,

    #[command(flatten)]
    pub driving: Driving,

    /// The control socket of the card (card i: PATH with "-i" before the extension), mode
    /// 0600. [default: beside the database, with the extension .control]
    #[arg(long, value_name = "PATH")]
    pub control: Option<PathBuf>,

    /// Create this file once pcscd has seen every card (used by `sandbox`).
    #[arg(long, value_name = "PATH", hide = true)]
    pub ready_file: Option<PathBuf>,

    /// Create this file once every card is open and trying to connect (used by `sandbox`).
    #[arg(long, value_name = "PATH", hide = true)]
    pub started_file: Option<PathBuf>,
}

/// The options of `sandbox`.
#[derive(clap::Args, Debug)]
pub struct SandboxArgs {
    /// Card database to use as it is (for example one made with `init`); it must exist
    /// unless --create is given. [default: a new card, initialised with user PIN 648219 and
    /// SO-PIN 3537363231383830, thrown away afterwards]
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// Make a new card in --db if that file does not exist yet (as --profile says, else
    /// initialised with the wiki's PINs), and keep it there.
    #[arg(long, requires = "db")]
    pub create: bool,

    /// Make the new card blank, as from the factory: not initialised, no PIN.
    #[arg(long, conflicts_with_all = ["db", "profile"])]
    pub blank: bool,

    #[command(flatten)]
    pub making: Making,

    #[command(flatten)]
    pub traces: Traces,

    #[command(flatten)]
    pub driving: Driving,

    /// Number of cards, in readers "Virtual PCD 00 00", "Virtual PCD 00 01", "Virtual PCD 1 00 00",
    /// "Virtual PCD 1 00 01", "Virtual PCD 2 00 00"...
    #[arg(long, value_name = "N", default_value_t = 1, value_parser = clap::value_parser!(u16).range(1..=16))]
    pub cards: u16,

    /// The command and its arguments.
    #[arg(last = true, required = true, value_name = "COMMAND")]
    pub command: Vec<String>,
}

/// The options of `init`.
#[derive(clap::Args, Debug)]
pub struct InitArgs {
    /// Card database. [default: $XDG_DATA_HOME/sc-hsm-emulator/card.redb]
    #[arg(long, value_name = "PATH")]
    pub db: Option<PathBuf>,

    /// Security officer PIN: 16 hexadecimal digits (8 bytes).
    #[arg(long, value_name = "HEX16", default_value = "3537363231383830")]
    pub so_pin: String,

    /// User PIN: 6 to 16 characters.
    #[arg(long, value_name = "PIN", default_value = "648219")]
    pub pin: String,

    /// Token label shown by PKCS#11 (without one, middleware shows "SmartCard-HSM").
    #[arg(long)]
    pub label: Option<String>,

    /// Number of DKEK shares to import later; 0 makes the card generate a DKEK; without
    /// the option the card has no DKEK and cannot wrap keys.
    #[arg(long, value_name = "N")]
    pub dkek_shares: Option<u8>,

    /// User PIN retry counter.
    #[arg(long, value_name = "N", default_value_t = 3)]
    pub pin_retry: u8,

    /// Key domain slots, domain 0 (the default DKEK of --dkek-shares) included: 1 to 16.
    #[arg(long, value_name = "N", conflicts_with = "profile")]
    pub key_domains: Option<u8>,

    /// After initialising, create key domain KD with its own DKEK from SHARES shares
    /// (imported with `80 52 00 KD`); SHARES 0 or left out: the card generates the domain's
    /// DKEK. Repeatable; KD must be below --key-domains.
    #[arg(long, value_name = "KD[:SHARES]", value_parser = dkek_domain, conflicts_with = "profile")]
    pub create_dkek_domain: Vec<(u8, u8)>,

    /// Make the user PIN a transport PIN (option 0002): VERIFY answers 6984 until the PIN
    /// is changed (PKCS#11: CKF_USER_PIN_TO_BE_CHANGED, then C_SetPIN).
    #[arg(long, conflicts_with = "profile")]
    pub transport_pin: bool,

    /// Allow session PINs (option 0004): GENERATE SESSION PIN in a secure channel opened by
    /// chip authentication (OpenSC with OpenPACE: pkcs15-tool --test-session-pin).
    #[arg(long, conflicts_with = "profile")]
    pub session_pin: bool,

    /// Public-key authentication with N keys (INITIALIZE tag 93), as sc-hsm-tool's
    /// --public-key-auth; register them with sc-hsm-tool --register-public-key.
    #[arg(long, value_name = "N", conflicts_with = "profile")]
    pub public_key_auth: Option<u8>,

    /// How many of the --public-key-auth keys must authenticate.
    #[arg(
        long,
        value_name = "N",
        default_value_t = 1,
        requires = "public_key_auth"
    )]
    pub required_pub_keys: u8,

    /// A registered public key may be replaced (option 0008).
    #[arg(long, requires = "public_key_auth")]
    pub pka_replaceable: bool,

    /// The user PIN and the public keys are both required (option 0010; without it, either).
    #[arg(long, requires = "public_key_auth")]
    pub pka_and_pin: bool,

    /// Initialise a card that holds keys or objects, erasing them (as sc-hsm-tool
    /// --initialize does to a physical card).
    #[arg(long)]
    pub force: bool,

    #[command(flatten)]
    pub making: Making,
}

/// A `--create-dkek-domain KD[:SHARES]`.
fn dkek_domain(text: &str) -> Result<(u8, u8), String> {
    let (kd, shares) = text.split_once(':').unwrap_or((text, "0"));
    let number = |what: &str, v: &str| {
        v.parse::<u8>()
            .map_err(|_| format!("{what} must be a number from 0 to 255, not {v:?}"))
    };
    Ok((
        number("the key domain", kd)?,
        number("the number of shares", shares)?,
    ))
}

/// A `--max-file-size`: 1 to 65535 bytes.
fn file_size(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(n @ 1..=65_535) => Ok(n),
        Ok(_) => Err("files are addressed with 2-byte offsets: at most 65535 bytes".into()),
        Err(e) => Err(e.to_string()),
    }
}

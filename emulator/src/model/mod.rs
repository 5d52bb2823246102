//! What the card holds: its persistent state ([`CardState`]: identity, configuration, PINs,
//! key domains with their DKEKs, files, keys), and the changes a command makes to it.
//!
//! A command never mutates [`CardState`] directly: it builds a [`Batch`] of [`Change`]s, the
//! store commits the batch in one transaction, and only then is it applied in memory. A failed
//! commit therefore leaves both the file and the in-memory card as they were.

pub mod dkek;
pub mod identity;
pub mod key;
pub mod objects;
pub mod pin;
pub mod pka;
pub mod pki;

use std::collections::BTreeMap;

use dkek::Dkek;
use key::KeyRecord;
use pin::{PinRecord, PinRef};

pub use identity::Identity;

/// The configuration INITIALIZE DEVICE sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Option bits of tag 80 (`OPTION_*`).
    pub options: u16,
    /// Key domain slots (tag 97), domain 0 included: domains `0..key_domains` exist or can
    /// be created. At least 1.
    pub key_domains: u8,
}

impl Config {
    /// The configuration of INITIALIZE without tag 97: domain 0 only.
    pub fn with_options(options: u16) -> Config {
        Config {
            options,
            key_domains: 1,
        }
    }
}

/// Option bit: the user PIN may be reset with the SO-PIN.
pub const OPTION_RESET_RETRY_COUNTER: u16 = 0x0001;
/// Option bit: the user PIN is a transport PIN, to be changed before its first use.
pub const OPTION_TRANSPORT_PIN: u16 = 0x0002;
/// Option bit: session PINs (for secure messaging); stored and reported only.
pub const OPTION_SESSION_PIN: u16 = 0x0004;
/// Option bits of public-key authentication (`0008` a registered key may be replaced, `0010`
/// the user PIN and the key quorum are both required).
pub const OPTION_PKA_REPLACEABLE: u16 = 0x0008;
pub const OPTION_PKA_AND_PIN: u16 = 0x0010;

/// The option bits set in `options`, in words.
pub fn option_names(options: u16) -> Vec<&'static str> {
    [
        (
            OPTION_RESET_RETRY_COUNTER,
            "user PIN reset with the SO-PIN allowed",
        ),
        (OPTION_TRANSPORT_PIN, "transport PIN"),
        (OPTION_SESSION_PIN, "session PINs"),
        (
            OPTION_PKA_REPLACEABLE,
            "public-key authentication keys replaceable",
        ),
        (
            OPTION_PKA_AND_PIN,
            "user PIN and public-key authentication both required",
        ),
    ]
    .into_iter()
    .filter(|(bit, _)| options & bit != 0)
    .map(|(_, name)| name)
    .collect()
}

/// Most key domain slots INITIALIZE tag 97 can allocate.
pub const MAX_KEY_DOMAINS: u8 = 16;

/// One elementary file of the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Creation order, for ENUMERATE OBJECTS.
    pub seq: u64,
    pub data: Vec<u8>,
}

/// Everything the card remembers across power cycles.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct CardState {
    pub identity: Option<Identity>,
    /// `None` until the first INITIALIZE DEVICE.
    pub config: Option<Config>,
    pub user_pin: Option<PinRecord>,
    pub so_pin: Option<PinRecord>,
    /// Key domain 0: the DKEK of IMPORT DKEK SHARE.
    pub dkek: Dkek,
    /// Key domains 1 and up that MANAGE KEY DOMAIN created (never [`Dkek::Absent`]).
    pub domains: BTreeMap<u8, Dkek>,
    pub files: BTreeMap<u16, FileEntry>,
    pub keys: BTreeMap<u8, KeyRecord>,
    /// For a card made with `--seed`: the seed and how often the card was opened.
    pub seed: Option<(u64, u64)>,
    /// Public-key authentication, when INITIALIZE configured it (tag 93).
    pub pka: Option<pka::Pka>,
}

impl CardState {
    pub fn pin(&self, which: PinRef) -> Option<&PinRecord> {
        match which {
            PinRef::User => self.user_pin.as_ref(),
            PinRef::So => self.so_pin.as_ref(),
        }
    }

    /// Key domain slots: INITIALIZE's tag 97, 1 before any initialisation.
    pub fn key_domain_slots(&self) -> u8 {
        self.config.map_or(1, |c| c.key_domains.max(1))
    }

    /// Key domain `kd`: `None` past the allocated slots, [`Dkek::Absent`] for a slot not
    /// created (or deleted).
    pub fn domain(&self, kd: u8) -> Option<&Dkek> {
        const NOT_CREATED: &Dkek = &Dkek::Absent;
        match kd {
            _ if kd >= self.key_domain_slots() => None,
            0 => Some(&self.dkek),
            _ => Some(self.domains.get(&kd).unwrap_or(NOT_CREATED)),
        }
    }

    /// How the user authenticates on this card.
    pub fn user_rule(&self) -> pka::UserRule {
        pka::UserRule::of(self.pka.as_ref(), self.options())
    }

    /// The option bits of the configuration (0 before any initialisation).
    pub fn options(&self) -> u16 {
        self.config.map_or(0, |c| c.options)
    }

    /// The sequence number the next created file gets.
    pub fn next_seq(&self) -> u64 {
        self.files.values().map(|f| f.seq + 1).max().unwrap_or(0)
    }

    /// Applies one committed change.
    pub fn apply(&mut self, change: Change) {
        match change {
            Change::Identity(identity) => self.identity = Some(identity),
            Change::Config(config) => self.config = config,
            Change::Pin(PinRef::User, record) => self.user_pin = record,
            Change::Pin(PinRef::So, record) => self.so_pin = record,
            Change::Domain(0, dkek) => self.dkek = dkek,
            Change::Domain(kd, Dkek::Absent) => {
                self.domains.remove(&kd);
            }
            Change::Domain(kd, dkek) => {
                self.domains.insert(kd, dkek);
            }
            Change::PutFile(fid, entry) => {
                self.files.insert(fid, entry);
            }
            Change::DeleteFile(fid) => {
                self.files.remove(&fid);
            }
            Change::PutKey(id, key) => {
                self.keys.insert(id, key);
            }
            Change::DeleteKey(id) => {
                self.keys.remove(&id);
            }
            Change::Seed(seed, boots) => self.seed = Some((seed, boots)),
            Change::Pka(pka) => self.pka = pka,
        }
    }
}

/// One change to the persistent state.
#[derive(Clone, Debug)]
pub enum Change {
    Identity(Identity),
    Config(Option<Config>),
    Pin(PinRef, Option<PinRecord>),
    /// Key domain `kd`'s key encryption key (domain 0: the DKEK); [`Dkek::Absent`] deletes
    /// a domain.
    Domain(u8, Dkek),
    PutFile(u16, FileEntry),
    DeleteFile(u16),
    PutKey(u8, KeyRecord),
    DeleteKey(u8),
    /// A deterministic (insecure) test card: its seed and boot count.
    Seed(u64, u64),
    /// The public-key authentication configuration and its registered keys.
    Pka(Option<pka::Pka>),
}

/// The changes of one command, committed together or not at all.
pub type Batch = Vec<Change>;

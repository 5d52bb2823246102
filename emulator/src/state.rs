//! The card's persistent state, and the changes a command makes to it.
//!
//! A command never mutates [`CardState`] directly: it builds a [`Batch`] of [`Change`]s, the
//! store commits the batch in one transaction, and only then is it applied in memory. A failed
//! commit therefore leaves both the file and the in-memory card as they were.

use std::collections::BTreeMap;

use crate::dkek::Dkek;
use crate::keystore::KeyRecord;
use crate::pin::{PinRecord, PinRef};

/// Facts fixed when the card is made: they never change afterwards.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Identity {
    /// Card holder reference of the device certificate, e.g. `ZZEM123456700000`.
    pub device_chr: String,
    /// The self-made root CV certificate that anchors the device chain.
    pub root_certificate: Vec<u8>,
}

impl Identity {
    /// The serial number OpenSC shows: the device CHR minus its last five characters.
    pub fn serial(&self) -> &str {
        let n = self.device_chr.len().saturating_sub(5);
        &self.device_chr[..n]
    }
}

/// The configuration INITIALIZE DEVICE sets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Config {
    /// Option bits of tag 80 (`0001`: RESET RETRY COUNTER with the SO-PIN allowed).
    pub options: u16,
}

/// Option bit: the user PIN may be reset with the SO-PIN.
pub const OPTION_RESET_RETRY_COUNTER: u16 = 0x0001;

/// One elementary file of the application.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FileEntry {
    /// Creation order, for ENUMERATE OBJECTS.
    pub seq: u64,
    pub data: Vec<u8>,
}

/// Everything the card remembers across power cycles.
#[derive(Debug, Default)]
pub struct CardState {
    pub identity: Option<Identity>,
    /// `None` until the first INITIALIZE DEVICE.
    pub config: Option<Config>,
    pub user_pin: Option<PinRecord>,
    pub so_pin: Option<PinRecord>,
    pub dkek: Dkek,
    pub files: BTreeMap<u16, FileEntry>,
    pub keys: BTreeMap<u8, KeyRecord>,
    /// For a card made with `--seed`: the seed and how often the card was opened.
    pub seed: Option<(u64, u64)>,
}

impl CardState {
    pub fn pin(&self, which: PinRef) -> Option<&PinRecord> {
        match which {
            PinRef::User => self.user_pin.as_ref(),
            PinRef::So => self.so_pin.as_ref(),
        }
    }

    /// Bytes in use: every file's content and every key's stored form, plus the per-object
    /// overhead.
    pub fn storage_used(&self) -> usize {
        let files: usize = self
            .files
            .values()
            .map(|f| f.data.len() + crate::limits::OBJECT_OVERHEAD)
            .sum();
        let keys: usize = self
            .keys
            .values()
            .map(|k| k.encode().len() + crate::limits::OBJECT_OVERHEAD)
            .sum();
        files + keys
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
            Change::Dkek(dkek) => self.dkek = dkek,
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
        }
    }
}

/// One change to the persistent state.
#[derive(Clone, Debug)]
pub enum Change {
    Identity(Identity),
    Config(Option<Config>),
    Pin(PinRef, Option<PinRecord>),
    Dkek(Dkek),
    PutFile(u16, FileEntry),
    DeleteFile(u16),
    PutKey(u8, KeyRecord),
    DeleteKey(u8),
    /// A deterministic (insecure) test card: its seed and boot count.
    Seed(u64, u64),
}

/// The changes of one command, committed together or not at all.
pub type Batch = Vec<Change>;

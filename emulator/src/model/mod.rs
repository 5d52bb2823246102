//! What the card holds: its persistent state ([`CardState`]: identity, configuration, PINs,
//! DKEK, files, keys), and the changes a command makes to it.
//!
//! A command never mutates [`CardState`] directly: it builds a [`Batch`] of [`Change`]s, the
//! store commits the batch in one transaction, and only then is it applied in memory. A failed
//! commit therefore leaves both the file and the in-memory card as they were.

pub mod dkek;
pub mod identity;
pub mod key;
pub mod objects;
pub mod pin;

use std::collections::BTreeMap;

use dkek::Dkek;
use key::KeyRecord;
use pin::{PinRecord, PinRef};

use crate::limits::OBJECT_OVERHEAD;

pub use identity::Identity;

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
#[derive(Debug, Default, PartialEq, Eq)]
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
            .map(|f| f.data.len() + OBJECT_OVERHEAD)
            .sum();
        let keys: usize = self
            .keys
            .values()
            .map(|k| crate::store::record::stored_len(k) + OBJECT_OVERHEAD)
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

//! How much the card holds: like a real card's EEPROM, the emulated card is full at some point,
//! and then answers `6A84` without writing anything. What an object costs in storage is its
//! stored form plus a fixed overhead ([`cost`]); what a command may add is checked by the
//! `admit_*` calls before it commits.

use crate::apdu::Status;
use crate::model::key::KeyRecord;
use crate::model::CardState;
use crate::store::record;

/// The card's capacity. A real SmartCard-HSM 4K has about 76 KB of EEPROM for keys and
/// objects; the emulator's defaults are larger but finite, and every one is configurable.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Limits {
    /// Bytes of files and keys together, each object counted with 16 bytes of overhead.
    pub storage_bytes: usize,
    /// Largest single file.
    pub max_file_size: usize,
    /// Most keys besides the device key.
    pub max_keys: usize,
}

/// Objects an ENUMERATE OBJECTS answer may list: OpenSC reads it into 1014 bytes.
pub const MAX_OBJECTS: usize = 507;

/// Bytes each stored object costs beyond its content.
pub const OBJECT_OVERHEAD: usize = 16;

impl Default for Limits {
    fn default() -> Limits {
        Limits {
            storage_bytes: 1024 * 1024,
            max_file_size: 32 * 1024,
            max_keys: 150,
        }
    }
}

/// An object the card stores.
#[derive(Clone, Copy)]
pub enum Stored<'a> {
    Key(&'a KeyRecord),
    /// A file of this many bytes.
    File(usize),
}

/// What `object` costs in storage: its stored form (a key's record, a file's content) and the
/// per-object overhead.
pub fn cost(object: Stored<'_>) -> usize {
    let content = match object {
        Stored::Key(key) => record::stored_len(key),
        Stored::File(len) => len,
    };
    content + OBJECT_OVERHEAD
}

/// Bytes in use: the cost of every file and every key.
pub fn storage_used(state: &CardState) -> usize {
    let files = state.files.values().map(|f| Stored::File(f.data.len()));
    let keys = state.keys.values().map(Stored::Key);
    files.chain(keys).map(cost).sum()
}

/// What a command would add to the card.
struct Growth {
    keys: usize,
    files: usize,
    bytes: usize,
}

impl Limits {
    /// Room for `keys` more keys and `files` more files whose contents are not known yet (a
    /// key about to be generated or unwrapped, the certificate file of a new key).
    pub(crate) fn admit_objects(
        &self,
        state: &CardState,
        keys: usize,
        files: usize,
    ) -> Result<(), Status> {
        self.admit(
            state,
            Growth {
                keys,
                files,
                bytes: 0,
            },
        )
    }

    /// Room for `key` as key `id`: a new key, or one that replaces the key of that id.
    pub(crate) fn admit_key(
        &self,
        state: &CardState,
        id: u8,
        key: &KeyRecord,
    ) -> Result<(), Status> {
        let replaced = state.keys.get(&id).map(|old| cost(Stored::Key(old)));
        self.admit(
            state,
            Growth {
                keys: usize::from(replaced.is_none()),
                files: 0,
                bytes: cost(Stored::Key(key)).saturating_sub(replaced.unwrap_or(0)),
            },
        )
    }

    /// Room for file `fid` with `len` bytes of content: a new file, or new content for it.
    pub(crate) fn admit_file(&self, state: &CardState, fid: u16, len: usize) -> Result<(), Status> {
        let growth = match state.files.get(&fid) {
            Some(old) => Growth {
                keys: 0,
                files: 0,
                bytes: len.saturating_sub(old.data.len()),
            },
            None => Growth {
                keys: 0,
                files: 1,
                bytes: cost(Stored::File(len)),
            },
        };
        self.admit(state, growth)
    }

    /// Whether `state` can take `growth`: `6A84` if not.
    fn admit(&self, state: &CardState, growth: Growth) -> Result<(), Status> {
        let objects = state.files.len() + state.keys.len() + growth.keys + growth.files;
        // The device key does not count.
        let keys = state.keys.len().saturating_sub(1) + growth.keys;
        let bytes = storage_used(state) + growth.bytes;
        if objects > MAX_OBJECTS || keys > self.max_keys || bytes > self.storage_bytes {
            return Err(Status::NotEnoughMemory);
        }
        Ok(())
    }
}
